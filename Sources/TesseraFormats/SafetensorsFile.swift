// Safetensors layout: u64 LE header length N, N bytes of JSON
//   {"name": {"dtype": "F32", "shape": [..], "data_offsets": [begin, end]}, ..., "__metadata__": {string: string}}
// then the data buffer; offsets are relative to its start (byte 8 + N).

/// One parsed safetensors file: its tensors (validated against the file size), dtypes and `__metadata__`.
struct SafetensorsFile {
    struct Entry {
        var info: TensorInfo?          // nil for dtypes this reader does not decode
        var dtype: String
        var start: Int                 // absolute byte offset in the file
        var count: Int
    }

    /// Largest header accepted (the reference implementation's limit is 100 MB too).
    static let maxHeaderBytes = 100 << 20
    /// Bytes per element of every dtype in the safetensors spec; only F32, F16 and BF16 map to `GGMLType`.
    static let dtypeSizes: [String: Int] = [
        "F64": 8, "F32": 4, "F16": 2, "BF16": 2, "I64": 8, "U64": 8, "I32": 4, "U32": 4, "I16": 2, "U16": 2,
        "I8": 1, "U8": 1, "BOOL": 1, "F8_E4M3": 1, "F8_E5M2": 1, "F8_E8M0": 1,
    ]
    static let supported: [String: GGMLType] = ["F32": .f32, "F16": .f16, "BF16": .bf16]

    let path: String
    let mapped: MappedBytes
    var entries: [String: Entry] = [:]
    var metadata: [String: String] = [:]

    init(mapped: MappedBytes, path: String) throws {
        self.path = path
        self.mapped = mapped
        let bytes = mapped.buffer
        func fail(_ reason: String) -> FormatError { FormatError(path: path, reason: reason) }

        guard bytes.count >= 8 else {
            throw fail("truncated: a safetensors file starts with an 8-byte header length, the file has \(bytes.count) bytes")
        }
        let n = UInt64(littleEndian: bytes.loadUnaligned(fromByteOffset: 0, as: UInt64.self))
        guard n <= UInt64(SafetensorsFile.maxHeaderBytes) else {
            throw fail("header length \(n) exceeds the limit of \(SafetensorsFile.maxHeaderBytes) bytes (not a safetensors file?)")
        }
        guard n <= UInt64(bytes.count - 8) else {
            throw fail("truncated: header length \(n) exceeds the \(bytes.count - 8) bytes after the length field")
        }
        let headerEnd = 8 + Int(n)
        let dataSize = bytes.count - headerEnd
        let header = try JSONValue.parse(UnsafeRawBufferPointer(rebasing: bytes[8 ..< headerEnd]), path: path + " (header)")
        guard case .object(let members) = header else { throw fail("header is not a JSON object") }

        for (name, value) in members {
            if name == "__metadata__" {
                guard case .object(let meta) = value else { throw fail("__metadata__ is not an object") }
                for (k, v) in meta { if case .string(let s) = v { metadata[k] = s } }
                continue
            }
            guard let dtype = value["dtype"]?.string else { throw fail("tensor '\(name)' has no string 'dtype'") }
            guard let elementSize = SafetensorsFile.dtypeSizes[dtype] else {
                throw fail("tensor '\(name)' has unknown dtype '\(dtype)'")
            }
            guard let dims = value["shape"]?.array else { throw fail("tensor '\(name)' has no 'shape' array") }
            var shape: [Int] = []
            var elements = 1
            for d in dims {
                guard let n = d.int, n >= 0 else { throw fail("tensor '\(name)' has an invalid shape \(dims)") }
                let (p, o) = elements.multipliedReportingOverflow(by: n)
                guard !o else { throw fail("tensor '\(name)' has too many elements (shape \(dims))") }
                shape.append(n); elements = p
            }
            guard let offsets = value["data_offsets"]?.array, offsets.count == 2,
                  let begin = offsets[0].int, let end = offsets[1].int else {
                throw fail("tensor '\(name)' has no valid 'data_offsets' [begin, end]")
            }
            guard 0 <= begin, begin <= end, end <= dataSize else {
                throw fail("tensor '\(name)' has data_offsets [\(begin), \(end)] outside the \(dataSize)-byte data buffer (truncated file?)")
            }
            let (size, o) = elements.multipliedReportingOverflow(by: elementSize)
            guard !o, size == end - begin else {
                throw fail("tensor '\(name)' has \(end - begin) bytes of data, but shape \(shape) of \(dtype) needs \(o ? "too many" : String(size))")
            }
            let info = SafetensorsFile.supported[dtype].map { TensorInfo(name: name, type: $0, shape: shape) }
            entries[name] = Entry(info: info, dtype: dtype, start: headerEnd + begin, count: size)
        }
    }
}
