// Copying a column range of every row of a tensor into compact memory, reading only those bytes.
#if canImport(Glibc)
import Glibc
#elseif canImport(Darwin)
import Darwin
#endif

extension TensorView {
    /// Bytes of columns `columns` of one row; nil unless the range lies in the row and on block boundaries.
    public func columnSliceBytes(_ columns: Range<Int>) -> Int? {
        guard columns.lowerBound >= 0, columns.upperBound <= info.rowLength,
              info.type.byteCount(elements: columns.lowerBound) != nil else { return nil }
        return info.type.byteCount(elements: columns.count)
    }

    /// Copies columns `columns` of every row into `destination`: `rowCount × columnSliceBytes(columns)` bytes, compact.
    ///
    /// A view into a mapped file is read with pread(2), so the pages holding the other columns are never mapped into
    /// this process (a tensor-parallel rank keeps only its share resident); an in-memory view is copied directly.
    /// Throws `FormatError` naming the tensor when the range is not block-aligned, `destination` is too small, or the
    /// file was replaced since it was mapped.
    public func copyColumns(_ columns: Range<Int>, into destination: UnsafeMutableRawBufferPointer) throws {
        let mapped = owner as? MappedBytes
        let path = mapped?.file?.path ?? "<memory>"
        guard let sliceBytes = columnSliceBytes(columns), let start = info.type.byteCount(elements: columns.lowerBound) else {
            throw FormatError(path: path, reason: "columns \(columns) of tensor '\(info.name)' (\(info.type), shape "
                + "\(info.shape)) are out of range or do not start and end on blocks of \(info.type.blockSize)")
        }
        let rows = info.rowCount, rowBytes = info.rowBytes
        guard let dst = destination.baseAddress, destination.count >= rows * sliceBytes,
              data.count >= rows * rowBytes, let src = data.baseAddress else {
            throw FormatError(path: path, reason: "tensor '\(info.name)': cannot copy \(rows) rows of \(sliceBytes) bytes "
                + "from \(data.count) bytes into \(destination.count)")
        }
        guard let mapped, let file = mapped.file, let base = mapped.buffer.baseAddress else {
            for r in 0..<rows { (dst + r * sliceBytes).copyMemory(from: src + r * rowBytes + start, byteCount: sliceBytes) }
            return
        }
        let fd = open(file.path, O_RDONLY | O_CLOEXEC)
        guard fd >= 0 else { throw FormatError(path: file.path, reason: MappedBytes.errnoText(errno, action: "cannot reopen")) }
        defer { close(fd) }
        var st = stat()
        guard fstat(fd, &st) == 0, UInt64(st.st_dev) == file.device, UInt64(st.st_ino) == file.inode else {
            throw FormatError(path: file.path, reason: "the file was replaced since it was opened; cannot read tensor '\(info.name)'")
        }
        let offset = src - base   // the view's byte offset in the file
        for r in 0..<rows {
            try readFully(fd, into: dst + r * sliceBytes, count: sliceBytes, at: offset + r * rowBytes + start, path: file.path)
        }
    }

    private func readFully(_ fd: Int32, into dst: UnsafeMutableRawPointer, count: Int, at offset: Int, path: String) throws {
        var done = 0
        while done < count {
            let n = pread(fd, dst + done, count - done, off_t(offset + done))
            if n < 0 && errno == EINTR { continue }
            guard n > 0 else {
                throw FormatError(path: path, reason: n == 0 ? "unexpected end of file reading tensor '\(info.name)'"
                    : MappedBytes.errnoText(errno, action: "cannot read tensor '\(info.name)'"))
            }
            done += n
        }
    }
}
