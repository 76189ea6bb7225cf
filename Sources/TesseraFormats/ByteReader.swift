/// A bounds-checked little-endian cursor over a byte buffer. Every read checks the remaining length first and
/// throws `FormatError` ("truncated ...") instead of reading past the end.
struct ByteReader {
    let bytes: UnsafeRawBufferPointer
    let path: String
    private(set) var offset: Int = 0

    init(_ bytes: UnsafeRawBufferPointer, path: String) {
        self.bytes = bytes; self.path = path
    }

    var remaining: Int { bytes.count - offset }

    func error(_ reason: String) -> FormatError { FormatError(path: path, reason: reason) }

    /// Throws unless `count` more bytes are available for `what`.
    func need(_ count: Int, for what: @autoclosure () -> String) throws {
        guard count >= 0, count <= remaining else {
            throw error("truncated: \(what()) needs \(count) bytes at offset \(offset), but the file has only \(remaining) left")
        }
    }

    mutating func load<T: FixedWidthInteger>(_: T.Type, _ what: @autoclosure () -> String) throws -> T {
        try need(MemoryLayout<T>.size, for: what())
        let v = bytes.loadUnaligned(fromByteOffset: offset, as: T.self)
        offset += MemoryLayout<T>.size
        return T(littleEndian: v)
    }

    /// `count` bytes in place.
    mutating func take(_ count: Int, _ what: @autoclosure () -> String) throws -> UnsafeRawBufferPointer {
        try need(count, for: what())
        let slice = UnsafeRawBufferPointer(rebasing: bytes[offset ..< offset + count])
        offset += count
        return slice
    }

    mutating func skip(to newOffset: Int) { offset = newOffset }
}

/// `value` rounded up to a multiple of `alignment` (a power of two), nil on overflow.
func alignUp(_ value: Int, _ alignment: Int) -> Int? {
    let (sum, overflow) = value.addingReportingOverflow(alignment - 1)
    return overflow ? nil : sum & ~(alignment - 1)
}
