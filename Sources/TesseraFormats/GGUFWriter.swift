import Foundation

/// Writes GGUF v3 files: metadata of any value type and tensors of any `GGMLType`, each tensor's data aligned to
/// `alignment` (written as `general.alignment` when it is not the default 32). Used by tests, synthetic models and
/// `infer-worker quantize`.
public struct GGUFWriter: Sendable {
    public let alignment: Int
    /// Metadata in the order it will be written.
    public private(set) var metadata: [(key: String, value: GGUFValue)] = []
    /// Tensors in the order they will be written, with their raw (already encoded) bytes.
    public private(set) var tensors: [(info: TensorInfo, data: [UInt8])] = []

    /// `alignment` must be a power of two.
    public init(alignment: Int = 32) throws {
        guard alignment > 0, alignment & (alignment - 1) == 0, alignment <= GGUFParser.maxAlignment else {
            throw FormatError(path: "GGUFWriter", reason: "alignment \(alignment) is not a power of two up to 2^30")
        }
        self.alignment = alignment
    }

    /// Sets metadata `key` (replacing an earlier value in place). Arrays must hold elements of one type.
    public mutating func set(_ key: String, _ value: GGUFValue) throws {
        try GGUFWriter.checkHomogeneous(value, key: key)
        if let i = metadata.firstIndex(where: { $0.key == key }) { metadata[i].value = value } else { metadata.append((key, value)) }
    }

    /// Adds a tensor from its encoded bytes; `shape` is row-major (the file stores it innermost first).
    public mutating func addTensor(_ name: String, type: GGMLType, shape: [Int], data: [UInt8]) throws {
        let info = TensorInfo(name: name, type: type, shape: shape)
        let size = try GGUFWriter.checkedSize(info, after: tensors.lazy.map(\.info.name))
        guard size == data.count else { throw GGUFWriter.tensorError(name, "\(data.count) bytes given, \(type) shape \(shape) needs \(size)") }
        tensors.append((info, data))
    }

    /// Adds an F32 tensor.
    public mutating func addTensor(_ name: String, shape: [Int], values: [Float]) throws {
        let data = values.withUnsafeBytes { Array($0) }
        try addTensor(name, type: .f32, shape: shape, data: data)
    }

    /// The complete file.
    public func serialized() throws -> [UInt8] {
        let (header, offsets) = try headerBytes(tensors.map(\.info))
        var out = header
        for (i, (_, data)) in tensors.enumerated() {
            out.append(contentsOf: repeatElement(0, count: header.count + offsets[i] - out.count))
            out.append(contentsOf: data)
        }
        return out
    }

    /// Writes the file to `path`, streaming the tensor data (no second copy of the model in memory). The file appears
    /// at `path` only once complete: it is written beside it under a temporary name, then renamed over `path`.
    public func write(to path: String) throws {
        try write(to: path, tensors: tensors.map(\.info)) { i, emit in
            try tensors[i].data.withUnsafeBytes { try emit($0) }
        }
    }

    /// Writes the metadata set here and the tensors `infos`, declared up front and then produced one at a time, in
    /// order: `produce(i, emit)` passes tensor `i`'s encoded bytes (`type.byteCount` of its elements) to `emit`, so a
    /// converted model is written holding one tensor at a time. Tensors added with `addTensor` are not written. As
    /// with `write(to:)`, the file appears at `path` only once complete; an error (the producer's too) leaves no file.
    public func write(to path: String, tensors infos: [TensorInfo],
                      produce: (_ index: Int, _ emit: (UnsafeRawBufferPointer) throws -> Void) throws -> Void) throws {
        var names = Set<String>()
        for info in infos { _ = try GGUFWriter.checkedSize(info, after: names); names.insert(info.name) }
        let (header, offsets) = try headerBytes(infos)
        let temporary = path + ".partial-\(getpid())-\(UInt32.random(in: 0 ... .max))"
        guard FileManager.default.createFile(atPath: temporary, contents: nil),
              let handle = FileHandle(forWritingAtPath: temporary) else {
            throw FormatError(path: path, reason: "cannot create \(temporary) to write it: \(String(cString: strerror(errno)))")
        }
        var complete = false
        defer {
            try? handle.close()
            if !complete { unlink(temporary) }
        }
        func put<D: DataProtocol>(_ bytes: D, sync: Bool = false) throws {
            do {
                try handle.write(contentsOf: bytes)
                if sync { try handle.synchronize() }
            } catch {
                throw FormatError(path: path, reason: "cannot write: \(error.localizedDescription)")
            }
        }
        try put(header)
        var written = header.count
        for (i, info) in infos.enumerated() {
            try put([UInt8](repeating: 0, count: header.count + offsets[i] - written))
            let size = info.type.byteCount(elements: info.elementCount) ?? 0
            var emitted = 0
            try produce(i) { bytes in
                emitted += bytes.count
                if emitted <= size { try put(bytes) }
            }
            guard emitted == size else {
                throw GGUFWriter.tensorError(info.name, "\(emitted) bytes given, \(info.type) shape \(info.shape) needs \(size)")
            }
            written = header.count + offsets[i] + size
        }
        try put([UInt8](), sync: true)
        guard rename(temporary, path) == 0 else {
            throw FormatError(path: path, reason: MappedBytes.errnoText(errno, action: "cannot rename \(temporary) to it"))
        }
        complete = true
    }

    /// Header, metadata and tensor infos, padded to the alignment; and each tensor's offset in the data section.
    private func headerBytes(_ infos: [TensorInfo]) throws -> ([UInt8], [Int]) {
        var meta = metadata
        if let existing = meta.first(where: { $0.key == "general.alignment" }) {
            guard existing.value.int == alignment else {
                throw FormatError(path: "GGUFWriter", reason: "general.alignment \(existing.value) differs from alignment \(alignment)")
            }
        } else if alignment != 32 {
            meta.insert(("general.alignment", .uint32(UInt32(alignment))), at: 0)
        }
        var out: [UInt8] = []
        out.append(contentsOf: Array("GGUF".utf8))
        append(&out, UInt32(3))
        append(&out, UInt64(infos.count))
        append(&out, UInt64(meta.count))
        for (key, value) in meta {
            appendString(&out, key)
            append(&out, value.typeID)
            appendValue(&out, value)
        }
        var offset = 0
        var offsets: [Int] = []
        for info in infos {
            offsets.append(offset)
            appendString(&out, info.name)
            append(&out, UInt32(info.shape.count))
            for n in info.shape.reversed() { append(&out, UInt64(n)) }
            append(&out, info.type.rawValue)
            append(&out, UInt64(offset))
            let size = info.type.byteCount(elements: info.elementCount) ?? 0
            offset = (offset + size + alignment - 1) / alignment * alignment
        }
        pad(&out)
        return (out, offsets)
    }

    /// The encoded size of a valid tensor `info` whose name is not among `earlier`.
    private static func checkedSize(_ info: TensorInfo, after earlier: some Sequence<String>) throws -> Int {
        guard (1 ... 4).contains(info.shape.count), info.shape.allSatisfy({ $0 > 0 }) else {
            throw tensorError(info.name, "invalid shape \(info.shape)")
        }
        guard !earlier.contains(info.name) else { throw tensorError(info.name, "duplicate name") }
        if let problem = info.type.rowLengthProblem(info.rowLength) { throw tensorError(info.name, problem) }
        return info.type.byteCount(elements: info.elementCount) ?? 0
    }

    private static func tensorError(_ name: String, _ reason: String) -> FormatError {
        FormatError(path: "GGUFWriter", reason: "tensor '\(name)': \(reason)")
    }

    private func pad(_ out: inout [UInt8]) {
        let target = (out.count + alignment - 1) / alignment * alignment
        out.append(contentsOf: repeatElement(0, count: target - out.count))
    }

    private func append<T: FixedWidthInteger>(_ out: inout [UInt8], _ v: T) {
        withUnsafeBytes(of: v.littleEndian) { out.append(contentsOf: $0) }
    }

    private func appendString(_ out: inout [UInt8], _ s: String) {
        append(&out, UInt64(s.utf8.count))
        out.append(contentsOf: s.utf8)
    }

    private func appendValue(_ out: inout [UInt8], _ value: GGUFValue) {
        switch value {
        case .uint8(let v): append(&out, v)
        case .int8(let v): append(&out, v)
        case .uint16(let v): append(&out, v)
        case .int16(let v): append(&out, v)
        case .uint32(let v): append(&out, v)
        case .int32(let v): append(&out, v)
        case .float32(let v): append(&out, v.bitPattern)
        case .bool(let v): append(&out, UInt8(v ? 1 : 0))
        case .string(let v): appendString(&out, v)
        case .array(let items):
            append(&out, items.first?.typeID ?? 0)     // an empty array is written as uint8[0]
            append(&out, UInt64(items.count))
            for item in items { appendValue(&out, item) }
        case .uint64(let v): append(&out, v)
        case .int64(let v): append(&out, v)
        case .float64(let v): append(&out, v.bitPattern)
        }
    }

    private static func checkHomogeneous(_ value: GGUFValue, key: String) throws {
        guard case .array(let items) = value else { return }
        if let first = items.first, items.contains(where: { $0.typeID != first.typeID }) {
            throw FormatError(path: "GGUFWriter", reason: "metadata key '\(key)': array elements of different types")
        }
        for item in items { try checkHomogeneous(item, key: key) }
    }
}
