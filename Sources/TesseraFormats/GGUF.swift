/// A GGUF file (versions 2 and 3), mapped read-only. Header, metadata and tensor infos are parsed and validated
/// against the file size when opened; tensor data is never copied: views point into the mapping.
public final class GGUFFile: TensorStore {
    public let path: String
    public let version: UInt32
    /// Alignment of the data section and of every tensor offset (`general.alignment`, default 32).
    public let alignment: Int
    public let metadata: [String: GGUFValue]
    /// Metadata keys in file order.
    public let metadataKeys: [String]
    public let tensorInfos: [String: TensorInfo]
    /// Tensor names in file order.
    public let tensorNames: [String]
    /// Byte offset of the tensor data section in the file.
    public let dataOffset: Int
    private let bytes: MappedBytes
    private let offsets: [String: (start: Int, count: Int)]   // absolute byte range of each tensor

    /// Maps and parses the file at `path`. Throws `FormatError` naming the path and what is wrong.
    public convenience init(path: String) throws {
        try self.init(mapped: MappedBytes(path: path), path: path)
    }

    /// Parses an in-memory copy of `bytes` as if it were the file at `path` (tests, fuzzing, generated models).
    public convenience init(bytes: [UInt8], path: String) throws {
        guard !bytes.isEmpty else { throw FormatError(path: path, reason: "empty file (0 bytes)") }
        try self.init(mapped: MappedBytes(copying: bytes), path: path)
    }

    private init(mapped: MappedBytes, path: String) throws {
        let layout = try GGUFParser.parse(mapped.buffer, path: path)
        self.path = path
        self.bytes = mapped
        version = layout.version
        alignment = layout.alignment
        metadata = layout.metadata
        metadataKeys = layout.metadataKeys
        dataOffset = layout.dataOffset
        tensorNames = layout.tensors.map(\.name)
        var infos: [String: TensorInfo] = [:]
        var ranges: [String: (start: Int, count: Int)] = [:]
        for (i, info) in layout.tensors.enumerated() {
            infos[info.name] = info
            ranges[info.name] = (layout.tensorOffsets[i], info.type.byteCount(elements: info.elementCount) ?? 0)
        }
        tensorInfos = infos
        offsets = ranges
    }

    /// `metadata["general.architecture"]`.
    public var architecture: String? { metadata["general.architecture"]?.string }

    /// The whole mapped file.
    public var fileBytes: UnsafeRawBufferPointer { bytes.buffer }

    public func view(_ name: String) throws -> TensorView {
        let (info, base, count) = try locate(name)
        return TensorSlicing.whole(info, base: base, byteCount: count, owner: bytes)
    }

    public func view(_ name: String, rows: Range<Int>) throws -> TensorView {
        let (info, base, _) = try locate(name)
        return try TensorSlicing.rows(info, base: base, rows: rows, path: path, owner: bytes)
    }

    private func locate(_ name: String) throws -> (TensorInfo, UnsafeRawPointer, Int) {
        guard let info = tensorInfos[name], let range = offsets[name], let base = bytes.buffer.baseAddress else {
            throw FormatError(path: path, reason: "no tensor named '\(name)'")
        }
        return (info, base + range.start, range.count)
    }
}
