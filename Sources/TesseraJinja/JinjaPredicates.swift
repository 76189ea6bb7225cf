/// Jinja tests (`x is defined`, `x is divisibleby 3`, `x is not none`, ...).
enum JinjaPredicates {
    static let supported: Set<String> = [
        "defined", "undefined", "none", "boolean", "true", "false", "integer", "float", "number", "string",
        "mapping", "iterable", "sequence", "callable", "sameas", "lower", "upper", "odd", "even", "divisibleby",
        "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le", "<=", "gt", "greaterthan", ">", "ge", ">=",
        "in", "escaped",
    ]
}

extension JinjaInterpreter {
    func applyTest(_ name: String, to value: JinjaValue, _ args: Arguments, line: Int) throws -> Bool {
        func argument() throws -> JinjaValue {
            guard let a = args.positional.first ?? args.keyword.first?.1 else {
                throw ChatTemplateError.runtime(line: line, reason: "test '\(name)' needs an argument")
            }
            return a
        }
        let takesArgument = ["sameas", "divisibleby", "eq", "equalto", "==", "ne", "!=", "lt", "lessthan", "<", "le", "<=",
                             "gt", "greaterthan", ">", "ge", ">=", "in"].contains(name)
        guard takesArgument || (args.positional.isEmpty && args.keyword.isEmpty) else {
            throw ChatTemplateError.runtime(line: line, reason: "test '\(name)' takes no arguments")
        }
        switch name {
        case "defined": return !value.isUndefined
        case "undefined": return value.isUndefined
        case "none": return value.isNone
        case "boolean":
            if case .bool = value { return true }
            return false
        case "true":
            if case .bool(true) = value { return true }
            return false
        case "false":
            if case .bool(false) = value { return true }
            return false
        case "integer":
            if case .int = value { return true }
            return false
        case "float":
            if case .double = value { return true }
            return false
        case "number":
            return value.number != nil
        case "string":
            if case .string = value { return true }
            return false
        case "mapping":
            if case .dict = value { return true }
            return false
        case "iterable":
            switch value {
            case .list, .dict, .string, .undefined: return true
            default: return false
            }
        case "sequence":
            switch value {
            case .list, .dict, .string: return true
            default: return false
            }
        case "callable":
            if case .callable = value { return true }
            return false
        case "sameas":
            let other = try argument()
            switch (value, other) {
            case (.none, .none): return true
            case (.bool(let a), .bool(let b)): return a == b
            case (.namespace(let a), .namespace(let b)): return a === b
            default: return false
            }
        case "escaped": return false
        case "lower":
            if case .string(let s) = value { return s == s.lowercased() && s != s.uppercased() }
            return false
        case "upper":
            if case .string(let s) = value { return s == s.uppercased() && s != s.lowercased() }
            return false
        case "odd", "even", "divisibleby":
            guard let i = value.integer else {
                throw ChatTemplateError.runtime(line: line, reason: "test '\(name)' needs an integer, got '\(value.typeName)'")
            }
            if name == "odd" { return i % 2 != 0 }
            if name == "even" { return i % 2 == 0 }
            guard let d = try argument().integer, d != 0 else {
                throw ChatTemplateError.runtime(line: line, reason: "divisibleby needs a non-zero integer")
            }
            return i % d == 0
        case "eq", "equalto", "==": return value == (try argument())
        case "ne", "!=": return value != (try argument())
        case "lt", "lessthan", "<": return try JinjaOperators.compare(value, try argument(), op: "<", line: line) < 0
        case "le", "<=": return try JinjaOperators.compare(value, try argument(), op: "<=", line: line) <= 0
        case "gt", "greaterthan", ">": return try JinjaOperators.compare(value, try argument(), op: ">", line: line) > 0
        case "ge", ">=": return try JinjaOperators.compare(value, try argument(), op: ">=", line: line) >= 0
        case "in": return try JinjaOperators.contains(try argument(), value, line: line)
        default:
            throw ChatTemplateError.unsupported(line: line, construct: "test '\(name)'")
        }
    }
}
