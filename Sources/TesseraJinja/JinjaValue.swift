/// A value inside a Jinja template, with Python's semantics as Jinja2 gives them
/// (truthiness, `str()`, equality, ordering).
public enum JinjaValue: Sendable {
    /// Jinja's default `Undefined`: falsy, renders empty, iterates as empty; any other use is an error
    /// whose message is `hint` (e.g. "'foo' is undefined").
    case undefined(hint: String)
    case none
    case bool(Bool)
    case int(Int)
    case double(Double)
    case string(String)
    case list([JinjaValue])
    /// Insertion-ordered, as Python dicts (and `tojson` output) are.
    case dict(JinjaDict)
    /// The mutable object `namespace()` returns.
    case namespace(JinjaNamespace)
    /// A global function or a macro.
    case callable(JinjaCallable)

    /// An `Undefined` with a generic hint.
    public static let missing = JinjaValue.undefined(hint: "value is undefined")

    /// A dict from ordered pairs (later duplicates replace earlier values, keeping the first position).
    public static func object(_ pairs: [(String, JinjaValue)]) -> JinjaValue {
        .dict(JinjaDict(pairs))
    }

    /// The text of a `.string`, else nil.
    public var stringValue: String? { if case .string(let s) = self { return s } else { return nil } }
    /// The items of a `.list`, else nil.
    public var listValue: [JinjaValue]? { if case .list(let l) = self { return l } else { return nil } }
    /// The member `key` of a `.dict`, else nil.
    public subscript(key: String) -> JinjaValue? { if case .dict(let d) = self { return d[key] } else { return nil } }

    public var isUndefined: Bool { if case .undefined = self { return true } else { return false } }
    public var isNone: Bool { if case .none = self { return true } else { return false } }

    /// Python truthiness.
    public var isTruthy: Bool {
        switch self {
        case .undefined, .none: return false
        case .bool(let b): return b
        case .int(let i): return i != 0
        case .double(let d): return d != 0
        case .string(let s): return !s.isEmpty
        case .list(let l): return !l.isEmpty
        case .dict(let d): return !d.isEmpty
        case .namespace, .callable: return true
        }
    }

    /// Python's `str()` of the value (what `{{ }}` prints); `Undefined` prints as "".
    public var pythonString: String {
        switch self {
        case .undefined: return ""
        case .string(let s): return s
        default: return pythonRepr
        }
    }

    /// Python's `repr()` (used for values printed inside lists and dicts).
    public var pythonRepr: String {
        switch self {
        case .undefined: return ""
        case .none: return "None"
        case .bool(let b): return b ? "True" : "False"
        case .int(let i): return String(i)
        case .double(let d): return PythonFormat.float(d)
        case .string(let s): return PythonFormat.stringRepr(s)
        case .list(let l): return "[" + l.map(\.pythonRepr).joined(separator: ", ") + "]"
        case .dict(let d):
            return "{" + d.pairs.map { PythonFormat.stringRepr($0.0) + ": " + $0.1.pythonRepr }
                .joined(separator: ", ") + "}"
        case .namespace(let ns): return "<Namespace " + JinjaValue.dict(ns.values).pythonRepr + ">"
        case .callable(let c): return "<function \(c.name)>"
        }
    }

    /// Python type name, for error messages.
    var typeName: String {
        switch self {
        case .undefined: return "Undefined"
        case .none: return "NoneType"
        case .bool: return "bool"
        case .int: return "int"
        case .double: return "float"
        case .string: return "str"
        case .list: return "list"
        case .dict: return "dict"
        case .namespace: return "Namespace"
        case .callable: return "function"
        }
    }

    /// Numeric view (bool counts as int, as in Python).
    var number: Double? {
        switch self {
        case .bool(let b): return b ? 1 : 0
        case .int(let i): return Double(i)
        case .double(let d): return d
        default: return nil
        }
    }

    /// Integer view (bool counts as int).
    var integer: Int? {
        switch self {
        case .bool(let b): return b ? 1 : 0
        case .int(let i): return i
        default: return nil
        }
    }
}

extension JinjaValue: Equatable {
    /// Python `==`: 1 == 1.0 == True; strings compare by code point; Undefined equals only Undefined.
    public static func == (a: JinjaValue, b: JinjaValue) -> Bool {
        switch (a, b) {
        case (.undefined, .undefined), (.none, .none): return true
        case (.string(let x), .string(let y)): return x.unicodeScalars.elementsEqual(y.unicodeScalars)
        case (.list(let x), .list(let y)): return x == y
        case (.dict(let x), .dict(let y)):
            return x.count == y.count && x.pairs.allSatisfy { y[$0.0] == $0.1 }
        case (.namespace(let x), .namespace(let y)): return x === y
        case (.callable(let x), .callable(let y)): return x.name == y.name
        default:
            if let x = a.integer, let y = b.integer { return x == y }
            if let x = a.number, let y = b.number { return x == y }
            return false
        }
    }
}

/// An insertion-ordered string-keyed dictionary.
public struct JinjaDict: Sendable {
    private(set) var keys: [String] = []
    private var storage: [String: JinjaValue] = [:]

    public init() {}
    public init(_ pairs: [(String, JinjaValue)]) {
        for (k, v) in pairs { self[k] = v }
    }

    public var count: Int { keys.count }
    public var isEmpty: Bool { keys.isEmpty }
    public var pairs: [(String, JinjaValue)] { keys.map { ($0, storage[$0] ?? .none) } }

    public subscript(key: String) -> JinjaValue? {
        get { storage[key] }
        set {
            if let newValue {
                if storage.updateValue(newValue, forKey: key) == nil { keys.append(key) }
            } else if storage.removeValue(forKey: key) != nil {
                keys.removeAll { $0 == key }
            }
        }
    }
}

/// The object `namespace(...)` creates: attributes assignable with `{% set ns.x = ... %}` from any scope.
public final class JinjaNamespace: @unchecked Sendable {
    var values: JinjaDict
    init(_ values: JinjaDict) { self.values = values }
}

/// A function value: a global (`range`, `namespace`, `raise_exception`, ...) or a template macro.
public struct JinjaCallable: Sendable {
    enum Kind: Sendable {
        case builtin
        case macro(MacroDefinition)
    }
    let name: String
    let kind: Kind
}

extension JinjaValue: ExpressibleByStringLiteral, ExpressibleByIntegerLiteral, ExpressibleByFloatLiteral,
    ExpressibleByBooleanLiteral, ExpressibleByArrayLiteral, ExpressibleByDictionaryLiteral, ExpressibleByNilLiteral {
    public init(stringLiteral value: String) { self = .string(value) }
    public init(integerLiteral value: Int) { self = .int(value) }
    public init(floatLiteral value: Double) { self = .double(value) }
    public init(booleanLiteral value: Bool) { self = .bool(value) }
    public init(arrayLiteral elements: JinjaValue...) { self = .list(elements) }
    /// Keys in literal order.
    public init(dictionaryLiteral elements: (String, JinjaValue)...) { self = .dict(JinjaDict(elements)) }
    public init(nilLiteral: ()) { self = .none }
}
