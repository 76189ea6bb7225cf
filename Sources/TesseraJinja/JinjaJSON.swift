/// JSON in and out of `JinjaValue`, key order preserved both ways.
/// Output matches transformers' `tojson` filter: Python `json.dumps(x, ensure_ascii=False, indent=...)`.
enum JinjaJSON {
    static func serialize(_ value: JinjaValue, indent: JinjaValue?, separators: JinjaValue?, sortKeys: Bool,
                          line: Int) throws -> String {
        var indentUnit: String?
        switch indent {
        case .string(let s)?: indentUnit = s
        case let v? where v.integer != nil: indentUnit = String(repeating: " ", count: Swift.max(0, v.integer ?? 0))
        default: indentUnit = nil
        }
        var itemSeparator = indentUnit == nil ? ", " : ","
        var keySeparator = ": "
        if case .list(let seps)? = separators, seps.count == 2 {
            itemSeparator = seps[0].pythonString
            keySeparator = seps[1].pythonString
        }
        var out = ""
        try write(value, into: &out, level: 0, indent: indentUnit, itemSeparator: itemSeparator,
                  keySeparator: keySeparator, sortKeys: sortKeys, line: line)
        return out
    }

    private static func write(_ value: JinjaValue, into out: inout String, level: Int, indent: String?,
                              itemSeparator: String, keySeparator: String, sortKeys: Bool, line: Int) throws {
        func newline(_ depth: Int) {
            guard let indent else { return }
            out += "\n" + String(repeating: indent, count: depth)
        }
        switch value {
        case .none: out += "null"
        case .bool(let b): out += b ? "true" : "false"
        case .int(let i): out += String(i)
        case .double(let d):
            out += d.isNaN ? "NaN" : (d.isInfinite ? (d < 0 ? "-Infinity" : "Infinity") : PythonFormat.float(d))
        case .string(let s): out += quoted(s)
        case .list(let items):
            guard !items.isEmpty else { out += "[]"; return }
            out += "["
            for (i, item) in items.enumerated() {
                if i > 0 { out += itemSeparator }
                newline(level + 1)
                try write(item, into: &out, level: level + 1, indent: indent, itemSeparator: itemSeparator,
                          keySeparator: keySeparator, sortKeys: sortKeys, line: line)
            }
            newline(level)
            out += "]"
        case .dict(let dict):
            guard !dict.isEmpty else { out += "{}"; return }
            var pairs = dict.pairs
            if sortKeys { pairs.sort { $0.0.unicodeScalars.lexicographicallyPrecedes($1.0.unicodeScalars) } }
            out += "{"
            for (i, (key, item)) in pairs.enumerated() {
                if i > 0 { out += itemSeparator }
                newline(level + 1)
                out += quoted(key) + keySeparator
                try write(item, into: &out, level: level + 1, indent: indent, itemSeparator: itemSeparator,
                          keySeparator: keySeparator, sortKeys: sortKeys, line: line)
            }
            newline(level)
            out += "}"
        case .undefined, .namespace, .callable:
            throw ChatTemplateError.runtime(line: line, reason: "Object of type \(value.typeName) is not JSON serializable")
        }
    }

    /// A JSON string literal with Python's escapes (non-ASCII kept as is: ensure_ascii=False).
    static func quoted(_ s: String) -> String {
        var out = "\""
        for scalar in s.unicodeScalars {
            switch scalar {
            case "\"": out += "\\\""
            case "\\": out += "\\\\"
            case "\n": out += "\\n"
            case "\r": out += "\\r"
            case "\t": out += "\\t"
            case "\u{08}": out += "\\b"
            case "\u{0C}": out += "\\f"
            default:
                if scalar.value < 0x20 {
                    let hex = String(scalar.value, radix: 16)
                    out += "\\u" + String(repeating: "0", count: 4 - hex.count) + hex
                } else {
                    out.unicodeScalars.append(scalar)
                }
            }
        }
        return out + "\""
    }
}

/// Why JSON text could not be read into a `JinjaValue`; `offset` is a UTF-8 byte offset.
public struct JinjaJSONError: Error, CustomStringConvertible {
    public let offset: Int
    public let reason: String
    public var description: String { "JSON at byte \(offset): \(reason)" }
}

extension JinjaValue {
    /// Parses JSON keeping object key order (integers that fit stay integers), e.g. messages or tools
    /// of an API request.
    public init(json: String) throws {
        var parser = JSONReader(bytes: Array(json.utf8))
        self = try parser.readDocument()
    }
}

private struct JSONReader {
    let bytes: [UInt8]
    var pos = 0
    static let maxDepth = 512

    init(bytes: [UInt8]) { self.bytes = bytes }

    mutating func readDocument() throws -> JinjaValue {
        let value = try readValue(depth: 0)
        skipSpace()
        guard pos == bytes.count else { throw error("trailing characters") }
        return value
    }

    private func error(_ reason: String) -> JinjaJSONError { JinjaJSONError(offset: pos, reason: reason) }

    private mutating func skipSpace() {
        while pos < bytes.count, [0x20, 0x09, 0x0A, 0x0D].contains(bytes[pos]) { pos += 1 }
    }

    private mutating func readValue(depth: Int) throws -> JinjaValue {
        guard depth < Self.maxDepth else { throw error("nested deeper than \(Self.maxDepth)") }
        skipSpace()
        guard pos < bytes.count else { throw error("unexpected end") }
        switch bytes[pos] {
        case UInt8(ascii: "{"):
            pos += 1
            var dict = JinjaDict()
            skipSpace()
            if pos < bytes.count && bytes[pos] == UInt8(ascii: "}") { pos += 1; return .dict(dict) }
            while true {
                skipSpace()
                guard pos < bytes.count, bytes[pos] == UInt8(ascii: "\"") else { throw error("expected a key string") }
                let key = try readString()
                skipSpace()
                guard pos < bytes.count, bytes[pos] == UInt8(ascii: ":") else { throw error("expected ':'") }
                pos += 1
                dict[key] = try readValue(depth: depth + 1)
                skipSpace()
                guard pos < bytes.count else { throw error("unterminated object") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                guard bytes[pos] == UInt8(ascii: "}") else { throw error("expected ',' or '}'") }
                pos += 1
                return .dict(dict)
            }
        case UInt8(ascii: "["):
            pos += 1
            var items: [JinjaValue] = []
            skipSpace()
            if pos < bytes.count && bytes[pos] == UInt8(ascii: "]") { pos += 1; return .list(items) }
            while true {
                items.append(try readValue(depth: depth + 1))
                skipSpace()
                guard pos < bytes.count else { throw error("unterminated array") }
                if bytes[pos] == UInt8(ascii: ",") { pos += 1; continue }
                guard bytes[pos] == UInt8(ascii: "]") else { throw error("expected ',' or ']'") }
                pos += 1
                return .list(items)
            }
        case UInt8(ascii: "\""):
            return .string(try readString())
        case UInt8(ascii: "t"): return try readWord("true", .bool(true))
        case UInt8(ascii: "f"): return try readWord("false", .bool(false))
        case UInt8(ascii: "n"): return try readWord("null", .none)
        default:
            return try readNumber()
        }
    }

    private mutating func readWord(_ word: String, _ value: JinjaValue) throws -> JinjaValue {
        let w = Array(word.utf8)
        guard pos + w.count <= bytes.count, Array(bytes[pos..<(pos + w.count)]) == w else {
            throw error("invalid literal")
        }
        pos += w.count
        return value
    }

    private mutating func readNumber() throws -> JinjaValue {
        let start = pos
        var isInteger = true
        while pos < bytes.count {
            let b = bytes[pos]
            if (b >= 0x30 && b <= 0x39) || b == UInt8(ascii: "-") || b == UInt8(ascii: "+") {
                pos += 1
            } else if b == UInt8(ascii: ".") || b == UInt8(ascii: "e") || b == UInt8(ascii: "E") {
                isInteger = false
                pos += 1
            } else {
                break
            }
        }
        let text = String(decoding: bytes[start..<pos], as: UTF8.self)
        if isInteger, let i = Int(text) { return .int(i) }
        guard !text.isEmpty, let d = Double(text) else { throw JinjaJSONError(offset: start, reason: "invalid number '\(text)'") }
        return .double(d)
    }

    private mutating func readString() throws -> String {
        pos += 1  // opening quote
        var out = String.UnicodeScalarView()
        var runStart = pos
        func flushRun() { out.append(contentsOf: String(decoding: bytes[runStart..<pos], as: UTF8.self).unicodeScalars) }
        while pos < bytes.count {
            let b = bytes[pos]
            if b == UInt8(ascii: "\"") {
                flushRun()
                pos += 1
                return String(out)
            }
            guard b == UInt8(ascii: "\\") else { pos += 1; continue }
            flushRun()
            guard pos + 1 < bytes.count else { throw error("unterminated escape") }
            let e = bytes[pos + 1]
            pos += 2
            switch e {
            case UInt8(ascii: "\""): out.append("\"")
            case UInt8(ascii: "\\"): out.append("\\")
            case UInt8(ascii: "/"): out.append("/")
            case UInt8(ascii: "b"): out.append("\u{08}")
            case UInt8(ascii: "f"): out.append("\u{0C}")
            case UInt8(ascii: "n"): out.append("\n")
            case UInt8(ascii: "r"): out.append("\r")
            case UInt8(ascii: "t"): out.append("\t")
            case UInt8(ascii: "u"):
                var code = try readHex4()
                if (0xD800..<0xDC00).contains(code), pos + 1 < bytes.count,
                   bytes[pos] == UInt8(ascii: "\\"), bytes[pos + 1] == UInt8(ascii: "u") {
                    pos += 2
                    let low = try readHex4()
                    guard (0xDC00..<0xE000).contains(low) else { throw error("unpaired surrogate") }
                    code = 0x10000 + ((code - 0xD800) << 10) + (low - 0xDC00)
                }
                out.append(Unicode.Scalar(code) ?? "\u{FFFD}")
            default:
                throw error("invalid escape")
            }
            runStart = pos
        }
        throw error("unterminated string")
    }

    private mutating func readHex4() throws -> UInt32 {
        guard pos + 4 <= bytes.count,
              let v = UInt32(String(decoding: bytes[pos..<(pos + 4)], as: UTF8.self), radix: 16) else {
            throw error("invalid \\u escape")
        }
        pos += 4
        return v
    }
}
