import Foundation

/// Writes GGUF v3 files: metadata of any value type and tensors of any `GGMLType`, each tensor's data aligned to
/// `alignment` (written as `general.alignment` when it is not the default 32). Used by tests and synthetic models.
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
        func fail(_ reason: String) -> FormatError { FormatError(path: "GGUFWriter", reason: "tensor '\(name)': \(reason)") }
        guard (1 ... 4).contains(shape.count), shape.allSatisfy({ $0 > 0 }) else { throw fail("invalid shape \(shape)") }
        guard !tensors.contains(where: { $0.info.name == name }) else { throw fail("duplicate name") }
        let info = TensorInfo(name: name, type: type, shape: shape)
        guard info.rowLength % type.blockSize == 0, let size = type.byteCount(elements: info.elementCount) else {
            throw fail("row length \(info.rowLength) is not a multiple of the \(type) block size \(type.blockSize)")
        }
        guard size == data.count else { throw fail("\(data.count) bytes given, \(type) shape \(shape) needs \(size)") }
        tensors.append((info, data))
    }

    /// Adds an F32 tensor.
    public mutating func addTensor(_ name: String, shape: [Int], values: [Float]) throws {
        let data = values.withUnsafeBytes { Array($0) }
        try addTensor(name, type: .f32, shape: shape, data: data)
    }

    /// The complete file.
    public func serialized() throws -> [UInt8] {
        let (header, offsets) = try headerBytes()
        var out = header
        for (i, (_, data)) in tensors.enumerated() {
            out.append(contentsOf: repeatElement(0, count: header.count + offsets[i] - out.count))
            out.append(contentsOf: data)
        }
        return out
    }

    /// Writes the file to `path`, streaming the tensor data (no second copy of the model in memory).
    public func write(to path: String) throws {
        let (header, offsets) = try headerBytes()
        guard FileManager.default.createFile(atPath: path, contents: nil), let handle = FileHandle(forWritingAtPath: path) else {
            throw FormatError(path: path, reason: "cannot create the file")
        }
        defer { try? handle.close() }
        do {
            try handle.write(contentsOf: header)
            var written = header.count
            for (i, (_, data)) in tensors.enumerated() {
                try handle.write(contentsOf: [UInt8](repeating: 0, count: header.count + offsets[i] - written))
                try handle.write(contentsOf: data)
                written = header.count + offsets[i] + data.count
            }
        } catch {
            throw FormatError(path: path, reason: "cannot write: \(error.localizedDescription)")
        }
    }

    /// Header, metadata and tensor infos, padded to the alignment; and each tensor's offset in the data section.
    private func headerBytes() throws -> ([UInt8], [Int]) {
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
        append(&out, UInt64(tensors.count))
        append(&out, UInt64(meta.count))
        for (key, value) in meta {
            appendString(&out, key)
            append(&out, value.typeID)
            appendValue(&out, value)
        }
        var offset = 0
        var offsets: [Int] = []
        for (info, data) in tensors {
            offsets.append(offset)
            appendString(&out, info.name)
            append(&out, UInt32(info.shape.count))
            for n in info.shape.reversed() { append(&out, UInt64(n)) }
            append(&out, info.type.rawValue)
            append(&out, UInt64(offset))
            offset = (offset + data.count + alignment - 1) / alignment * alignment
        }
        pad(&out)
        return (out, offsets)
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
