// GGUF layout (little-endian): "GGUF", u32 version, u64 tensor count, u64 metadata count, metadata key/values,
// tensor infos (name, u32 n_dims, u64 ne[n_dims] innermost first, u32 ggml type, u64 offset), padding to the
// alignment, then the tensor data section. Every count and length is checked against the bytes left before use.

/// What the header, metadata and tensor infos of a GGUF file say, validated against the file size.
struct GGUFLayout {
    var version: UInt32 = 0
    var alignment = 32
    var metadata: [String: GGUFValue] = [:]
    var metadataKeys: [String] = []          // file order
    var tensors: [TensorInfo] = []           // file order
    var tensorOffsets: [Int] = []            // absolute byte offset of each tensor's data
    var dataOffset = 0                       // start of the data section
}

enum GGUFParser {
    static let magic: [UInt8] = Array("GGUF".utf8)
    /// Deepest nesting of arrays inside arrays accepted (real files use 1).
    static let maxArrayDepth = 8
    static let maxAlignment = 1 << 30

    static func parse(_ bytes: UnsafeRawBufferPointer, path: String) throws -> GGUFLayout {
        var r = ByteReader(bytes, path: path)
        var layout = GGUFLayout()

        let head = try r.take(4, "the GGUF magic")
        guard head.elementsEqual(magic) else {
            let hex = head.map { String($0, radix: 16, uppercase: true) }.joined(separator: " ")
            throw r.error("not a GGUF file: starts with bytes \(hex), expected the magic 'GGUF'")
        }
        let version = try r.load(UInt32.self, "the header (version)")
        switch version {
        case 2, 3: break
        case 1: throw r.error("GGUF version 1 is not supported (only versions 2 and 3)")
        case 2 << 24, 3 << 24: throw r.error("big-endian GGUF files are not supported (version field \(version))")
        default: throw r.error("unsupported GGUF version \(version) (only versions 2 and 3)")
        }
        layout.version = version
        let tensorCount = try r.load(UInt64.self, "the header (tensor count)")
        let kvCount = try r.load(UInt64.self, "the header (metadata count)")
        // Smallest metadata entry: key length (8) + type (4) + 1 byte; smallest tensor info: 8 + 4 + 8 + 4 + 8.
        guard kvCount <= UInt64(r.remaining / 13) else {
            throw r.error("corrupt header: metadata count \(kvCount) cannot fit in the \(r.remaining) bytes left")
        }
        guard tensorCount <= UInt64(r.remaining / 32) else {
            throw r.error("corrupt header: tensor count \(tensorCount) cannot fit in the \(r.remaining) bytes left")
        }

        layout.metadataKeys.reserveCapacity(Int(kvCount))
        for i in 0 ..< Int(kvCount) {
            let key = try readString(&r, "metadata key #\(i)")
            let type = try r.load(UInt32.self, "the value type of metadata key '\(key)'")
            let value = try readValue(&r, type: type, key: key, depth: 0)
            guard layout.metadata.updateValue(value, forKey: key) == nil else {
                throw r.error("duplicate metadata key '\(key)'")
            }
            layout.metadataKeys.append(key)
        }
        if let value = layout.metadata["general.alignment"] {
            guard let a = value.int, a > 0, a <= maxAlignment, a & (a - 1) == 0 else {
                throw r.error("metadata key 'general.alignment' must be a power of two up to 2^30, got \(value)")
            }
            layout.alignment = a
        }

        var sizes: [Int] = []
        var relative: [Int] = []
        var seen = Set<String>()
        for i in 0 ..< Int(tensorCount) {
            let (info, offset, size) = try readTensorInfo(&r, index: i)
            guard seen.insert(info.name).inserted else { throw r.error("duplicate tensor name '\(info.name)'") }
            layout.tensors.append(info); relative.append(offset); sizes.append(size)
        }

        guard let dataOffset = alignUp(r.offset, layout.alignment) else { throw r.error("corrupt alignment") }
        layout.dataOffset = dataOffset
        for (i, info) in layout.tensors.enumerated() {
            guard relative[i] % layout.alignment == 0 else {
                throw r.error("tensor '\(info.name)' has offset \(relative[i]), not a multiple of the alignment \(layout.alignment)")
            }
            let (start, o1) = dataOffset.addingReportingOverflow(relative[i])
            let (end, o2) = start.addingReportingOverflow(sizes[i])
            guard !o1, !o2, end <= bytes.count else {
                throw r.error("truncated: tensor '\(info.name)' (\(info.type), \(sizes[i]) bytes at data offset \(relative[i])) "
                    + "extends past the end of the file (\(bytes.count) bytes)")
            }
            layout.tensorOffsets.append(start)
        }
        return layout
    }

    /// u64 length + UTF-8 bytes (invalid UTF-8 is repaired, never fatal).
    static func readString(_ r: inout ByteReader, _ what: @autoclosure () -> String) throws -> String {
        let length = try r.load(UInt64.self, "the length of \(what())")
        guard length <= UInt64(r.remaining) else {
            throw r.error("truncated or corrupt: \(what()) has length \(length) but only \(r.remaining) bytes are left")
        }
        let raw = try r.take(Int(length), what())
        return String(decoding: raw, as: UTF8.self)
    }

    static func readValue(_ r: inout ByteReader, type: UInt32, key: String, depth: Int) throws -> GGUFValue {
        func what() -> String { "the value of metadata key '\(key)'" }
        switch type {
        case 0: return .uint8(try r.load(UInt8.self, what()))
        case 1: return .int8(try r.load(Int8.self, what()))
        case 2: return .uint16(try r.load(UInt16.self, what()))
        case 3: return .int16(try r.load(Int16.self, what()))
        case 4: return .uint32(try r.load(UInt32.self, what()))
        case 5: return .int32(try r.load(Int32.self, what()))
        case 6: return .float32(Float(bitPattern: try r.load(UInt32.self, what())))
        case 7:
            let b = try r.load(UInt8.self, what())
            guard b <= 1 else { throw r.error("metadata key '\(key)' has an invalid bool byte \(b)") }
            return .bool(b == 1)
        case 8: return .string(try readString(&r, what()))
        case 9: return .array(try readArray(&r, key: key, depth: depth))
        case 10: return .uint64(try r.load(UInt64.self, what()))
        case 11: return .int64(try r.load(Int64.self, what()))
        case 12: return .float64(Double(bitPattern: try r.load(UInt64.self, what())))
        default: throw r.error("metadata key '\(key)' has unknown value type \(type)")
        }
    }

    static func readArray(_ r: inout ByteReader, key: String, depth: Int) throws -> [GGUFValue] {
        guard depth < maxArrayDepth else {
            throw r.error("metadata key '\(key)' nests arrays deeper than \(maxArrayDepth) levels")
        }
        let type = try r.load(UInt32.self, "the element type of metadata key '\(key)'")
        let count = try r.load(UInt64.self, "the element count of metadata key '\(key)'")
        let minSize: Int
        switch type {
        case 8: minSize = 8                    // string: its length field
        case 9: minSize = 12                   // array: element type + count
        default:
            guard let size = GGUFValue.fixedSize(ofType: type) else {
                throw r.error("metadata key '\(key)' is an array of unknown value type \(type)")
            }
            minSize = size
        }
        guard count <= UInt64(r.remaining / minSize) else {
            throw r.error("truncated or corrupt: metadata key '\(key)' has \(count) array elements, "
                + "which cannot fit in the \(r.remaining) bytes left")
        }
        var items: [GGUFValue] = []
        items.reserveCapacity(Int(count))
        for _ in 0 ..< Int(count) {
            items.append(try readValue(&r, type: type, key: key, depth: depth + 1))
        }
        return items
    }

    /// One tensor info: its row-major `TensorInfo`, data offset relative to the data section, and byte size.
    static func readTensorInfo(_ r: inout ByteReader, index: Int) throws -> (TensorInfo, Int, Int) {
        let name = try readString(&r, "the name of tensor #\(index)")
        let nDims = try r.load(UInt32.self, "the dimension count of tensor '\(name)'")
        guard (1 ... 4).contains(nDims) else {
            throw r.error("tensor '\(name)' has \(nDims) dimensions (1 to 4 are supported)")
        }
        var ne: [Int] = []                      // innermost first, as GGUF stores them
        for d in 0 ..< Int(nDims) {
            let n = try r.load(UInt64.self, "dimension \(d) of tensor '\(name)'")
            guard n > 0, n <= UInt64(Int.max) else { throw r.error("tensor '\(name)' has invalid dimension \(d) = \(n)") }
            ne.append(Int(n))
        }
        let typeID = try r.load(UInt32.self, "the type of tensor '\(name)'")
        guard let type = GGMLType(rawValue: typeID) else {
            let known = ggmlTypeNames[typeID].map { " (\($0))" } ?? ""
            throw r.error("tensor '\(name)' has unsupported tensor type id \(typeID)\(known)")
        }
        let offset = try r.load(UInt64.self, "the data offset of tensor '\(name)'")
        guard offset <= UInt64(Int.max) else { throw r.error("tensor '\(name)' has invalid data offset \(offset)") }

        var elements = 1
        for n in ne {
            let (p, o) = elements.multipliedReportingOverflow(by: n)
            guard !o else { throw r.error("tensor '\(name)' has too many elements (shape \(ne.reversed()))") }
            elements = p
        }
        guard ne[0] % type.blockSize == 0 else {
            throw r.error("tensor '\(name)' has row length \(ne[0]), not a multiple of the \(type) block size \(type.blockSize)")
        }
        let (size, o) = (elements / type.blockSize).multipliedReportingOverflow(by: type.blockBytes)
        guard !o else { throw r.error("tensor '\(name)' is too large (shape \(ne.reversed()))") }
        return (TensorInfo(name: name, type: type, shape: ne.reversed()), Int(offset), size)
    }

    /// GGML type ids this reader does not decode, named for error messages.
    static let ggmlTypeNames: [UInt32: String] = [
        4: "Q4_2 (removed)", 5: "Q4_3 (removed)", 16: "IQ2_XXS", 17: "IQ2_XS", 18: "IQ3_XXS", 19: "IQ1_S",
        21: "IQ3_S", 22: "IQ2_S", 24: "I8", 25: "I16", 26: "I32", 27: "I64", 28: "F64",
        29: "IQ1_M", 31: "Q4_0_4_4 (removed)", 32: "Q4_0_4_8 (removed)", 33: "Q4_0_8_8 (removed)", 34: "TQ1_0",
        35: "TQ2_0", 36: "IQ4_NL_4_4 (removed)", 37: "IQ4_NL_4_8 (removed)", 38: "IQ4_NL_8_8 (removed)", 39: "MXFP4",
        40: "NVFP4", 41: "Q1_0",
    ]
}
