import Foundation

/// A parsed JSON document. Integers that fit in 64 bits are kept exactly as `.int`; other numbers are `.double`.
public enum JSONValue: Sendable, Equatable, Decodable {
    case null, bool(Bool), int(Int64), double(Double), string(String), array([JSONValue]), object([String: JSONValue])

    /// Parses `data` (UTF-8 JSON, RFC 8259). Errors are `FormatError`s naming `path` and the byte offset.
    public static func parse(_ data: Data, path: String) throws -> JSONValue {
        try data.withUnsafeBytes { try parse($0, path: path) }
    }

    /// Parses JSON bytes in place.
    public static func parse(_ bytes: UnsafeRawBufferPointer, path: String) throws -> JSONValue {
        var parser = JSONParser(bytes: bytes, path: path)
        return try parser.parseDocument()
    }

    public init(from decoder: Decoder) throws {
        let c = try decoder.singleValueContainer()
        if c.decodeNil() { self = .null }
        else if let v = try? c.decode(Bool.self) { self = .bool(v) }
        else if let v = try? c.decode(Int64.self) { self = .int(v) }
        else if let v = try? c.decode(Double.self) { self = .double(v) }
        else if let v = try? c.decode(String.self) { self = .string(v) }
        else if let v = try? c.decode([JSONValue].self) { self = .array(v) }
        else if let v = try? c.decode([String: JSONValue].self) { self = .object(v) }
        else { throw DecodingError.dataCorruptedError(in: c, debugDescription: "not a JSON value") }
    }

    /// Object member, or nil (also when this is not an object).
    public subscript(key: String) -> JSONValue? {
        if case .object(let o) = self { return o[key] } else { return nil }
    }

    public var string: String? { if case .string(let v) = self { return v } else { return nil } }
    /// An integer, also from an integer-valued double that fits.
    public var int: Int? {
        switch self {
        case .int(let v): return Int(exactly: v)
        case .double(let v): return v.rounded() == v ? Int(exactly: v) : nil
        default: return nil
        }
    }
    public var double: Double? {
        switch self {
        case .int(let v): return Double(v)
        case .double(let v): return v
        default: return nil
        }
    }
    public var bool: Bool? { if case .bool(let v) = self { return v } else { return nil } }
    public var array: [JSONValue]? { if case .array(let v) = self { return v } else { return nil } }
    public var object: [String: JSONValue]? { if case .object(let v) = self { return v } else { return nil } }
}
