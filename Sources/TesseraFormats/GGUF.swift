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
    private let regions = RegionRegistry()
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

    /// Rows of a tensor (all when nil) mapped on their own, page-aligned: touching them never maps bytes of other
    /// tensors or other ranks' slices. The file is re-opened for it; an in-memory file gives the ordinary view.
    public func isolatedView(_ name: String, rows: Range<Int>?) throws -> TensorView {
        let plain = try rows.map { try view(name, rows: $0) } ?? view(name)
        guard let file = bytes.file, let base = bytes.buffer.baseAddress, let start = plain.data.baseAddress else { return plain }
        let label = rows.map { "\(name)[\($0.lowerBound)..<\($0.upperBound)]" } ?? name
        let region = try MappedRegion(path: file.path, offset: start - base, count: plain.data.count, name: label)
        regions.add(region)
        return TensorView(info: plain.info, data: region.bytes, owner: region)
    }

    /// Resident bytes of the isolated views handed out and still alive, except those named in `excluded` (a
    /// whole tensor by its name, rows of it as `name[start..<end]`).
    public func residentIsolatedBytes(excluding excluded: Set<String> = []) -> Int {
        regions.residentBytes { !excluded.contains($0) }
    }

    private func locate(_ name: String) throws -> (TensorInfo, UnsafeRawPointer, Int) {
        guard let info = tensorInfos[name], let range = offsets[name], let base = bytes.buffer.baseAddress else {
            throw FormatError(path: path, reason: "no tensor named '\(name)'")
        }
        return (info, base + range.start, range.count)
    }
}
