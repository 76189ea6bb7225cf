import Foundation

/// Tensors of one safetensors file, or of a sharded set listed by `model.safetensors.index.json`; every file mapped
/// read-only. Only F32, F16 and BF16 tensors appear in `tensorInfos`; other dtypes are listed in `unsupportedDTypes`
/// and `view` names them in its error. Tensors named as aliases in `__metadata__` (tied weights) are exposed too.
/// Note: safetensors data is not necessarily aligned to the element size; read it with unaligned loads.
public final class SafetensorsStore: TensorStore {
    /// The file, or the folder of a sharded set.
    public let path: String
    /// The files read, in the order opened.
    public let files: [String]
    public let tensorInfos: [String: TensorInfo]
    /// Tensors stored with a dtype this reader does not decode: name -> safetensors dtype (e.g. "I64").
    public let unsupportedDTypes: [String: String]
    /// `__metadata__` of all files merged.
    public let metadata: [String: String]
    private let mappings: [MappedBytes]
    private let locations: [String: (file: Int, start: Int, count: Int)]

    /// One safetensors file.
    public convenience init(file: String) throws {
        try self.init(path: file, parsed: [SafetensorsFile(mapped: MappedBytes(path: file), path: file)], expected: nil)
    }

    /// Parses an in-memory copy of a safetensors file as if it were at `path` (tests, fuzzing).
    public convenience init(bytes: [UInt8], path: String) throws {
        guard !bytes.isEmpty else { throw FormatError(path: path, reason: "empty file (0 bytes)") }
        try self.init(path: path, parsed: [SafetensorsFile(mapped: MappedBytes(copying: bytes), path: path)], expected: nil)
    }

    /// The weights of a Hugging Face folder: `model.safetensors.index.json` (sharded), else `model.safetensors`,
    /// else every `*.safetensors` file. A folder with only PyTorch pickles is refused with how to convert it.
    public convenience init(folder: String) throws {
        let fm = FileManager.default
        let url = URL(fileURLWithPath: folder)
        let indexPath = url.appendingPathComponent("model.safetensors.index.json").path
        if fm.fileExists(atPath: indexPath) {
            let index = try JSONValue.parse(file: indexPath)
            guard let weightMap = index["weight_map"]?.object else {
                throw FormatError(path: indexPath, reason: "no 'weight_map' object")
            }
            var shards: [String] = []
            var expected: [String: String] = [:]             // tensor -> shard file name
            for (tensor, value) in weightMap.sorted(by: { $0.key < $1.key }) {
                guard let shard = value.string, !shard.isEmpty, !shard.contains("/"), shard != "..", shard != "." else {
                    throw FormatError(path: indexPath, reason: "weight_map entry '\(tensor)' is not a file name in the folder: \(value)")
                }
                if !shards.contains(shard) { shards.append(shard) }
                expected[tensor] = shard
            }
            let parsed = try shards.map { name -> SafetensorsFile in
                let file = url.appendingPathComponent(name).path
                return try SafetensorsFile(mapped: MappedBytes(path: file), path: file)
            }
            try self.init(path: folder, parsed: parsed, expected: (indexPath, expected))
            return
        }
        let single = url.appendingPathComponent("model.safetensors").path
        if fm.fileExists(atPath: single) {
            try self.init(path: folder, parsed: [SafetensorsFile(mapped: MappedBytes(path: single), path: single)], expected: nil)
            return
        }
        let names = try WeightFiles.list(folder)
        let found = names.filter { $0.hasSuffix(".safetensors") }
        guard !found.isEmpty else { throw WeightFiles.noSafetensorsError(folder: folder, names: names) }
        let parsed = try found.map { name -> SafetensorsFile in
            let file = url.appendingPathComponent(name).path
            return try SafetensorsFile(mapped: MappedBytes(path: file), path: file)
        }
        try self.init(path: folder, parsed: parsed, expected: nil)
    }

    private init(path: String, parsed: [SafetensorsFile], expected: (index: String, map: [String: String])?) throws {
        var infos: [String: TensorInfo] = [:]
        var unsupported: [String: String] = [:]
        var locations: [String: (file: Int, start: Int, count: Int)] = [:]
        var metadata: [String: String] = [:]
        var owner: [String: String] = [:]
        for (i, file) in parsed.enumerated() {
            metadata.merge(file.metadata) { first, _ in first }
            for (name, entry) in file.entries {
                if let other = owner[name] {
                    throw FormatError(path: path, reason: "tensor '\(name)' is stored in both \(other) and \(file.path)")
                }
                owner[name] = file.path
                locations[name] = (i, entry.start, entry.count)
                if let info = entry.info { infos[name] = info } else { unsupported[name] = entry.dtype }
            }
        }
        // Tied weights: `__metadata__` maps an omitted tensor's name to the stored tensor it shares (transformers).
        for (alias, target) in metadata where locations[alias] == nil {
            guard let location = locations[target] else { continue }
            locations[alias] = location
            owner[alias] = owner[target]
            if var info = infos[target] { info.name = alias; infos[alias] = info }
            if let dtype = unsupported[target] { unsupported[alias] = dtype }
        }
        if let (indexPath, map) = expected {
            for (tensor, shard) in map.sorted(by: { $0.key < $1.key }) where owner[tensor] == nil {
                throw FormatError(path: indexPath, reason: "tensor '\(tensor)' is listed in weight_map but missing from \(shard)")
            }
        }
        self.path = path
        self.files = parsed.map(\.path)
        self.mappings = parsed.map(\.mapped)
        self.tensorInfos = infos
        self.unsupportedDTypes = unsupported
        self.metadata = metadata
        self.locations = locations
    }

    public func view(_ name: String) throws -> TensorView {
        let (info, base, count, file) = try locate(name)
        return TensorSlicing.whole(info, base: base, byteCount: count, owner: mappings[file])
    }

    public func view(_ name: String, rows: Range<Int>) throws -> TensorView {
        let (info, base, _, file) = try locate(name)
        return try TensorSlicing.rows(info, base: base, rows: rows, path: files[file], owner: mappings[file])
    }

    private func locate(_ name: String) throws -> (TensorInfo, UnsafeRawPointer, Int, Int) {
        guard let loc = locations[name], let base = mappings[loc.file].buffer.baseAddress else {
            throw FormatError(path: path, reason: "no tensor named '\(name)'")
        }
        guard let info = tensorInfos[name] else {
            throw FormatError(path: files[loc.file], reason: "tensor '\(name)' has dtype \(unsupportedDTypes[name] ?? "?"); "
                + "only F32, F16 and BF16 are supported")
        }
        return (info, base + loc.start, loc.count, loc.file)
    }
}
