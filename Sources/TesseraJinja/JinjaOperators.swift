import Foundation

/// Binary and unary operators with Python's semantics (int / float promotion, floor division and modulo
/// rounding toward negative infinity, str and list concatenation and repetition, ordered comparisons).
enum JinjaOperators {
    static func apply(_ op: BinaryOperator, _ a: JinjaValue, _ b: JinjaValue, line: Int) throws -> JinjaValue {
        switch op {
        case .concat: return .string(a.pythonString + b.pythonString)
        case .equal: return .bool(a == b)
        case .notEqual: return .bool(a != b)
        case .contains: return .bool(try contains(b, a, line: line))
        case .notContains: return .bool(!(try contains(b, a, line: line)))
        case .less, .lessEqual, .greater, .greaterEqual:
            let order = try compare(a, b, op: op.rawValue, line: line)
            switch op {
            case .less: return .bool(order < 0)
            case .lessEqual: return .bool(order <= 0)
            case .greater: return .bool(order > 0)
            default: return .bool(order >= 0)
            }
        default:
            try checkDefined(a, line: line)
            try checkDefined(b, line: line)
            return try arithmetic(op, a, b, line: line)
        }
    }

    static func negate(_ value: JinjaValue, line: Int) throws -> JinjaValue {
        try checkDefined(value, line: line)
        if let i = value.integer {
            guard i != Int.min else { throw overflow(line) }
            return .int(-i)
        }
        if case .double(let d) = value { return .double(-d) }
        throw ChatTemplateError.runtime(line: line, reason: "bad operand type for unary -: '\(value.typeName)'")
    }

    /// Python `needle in container`.
    static func contains(_ container: JinjaValue, _ needle: JinjaValue, line: Int) throws -> Bool {
        switch container {
        case .string(let s):
            guard case .string(let n) = needle else {
                throw ChatTemplateError.runtime(
                    line: line, reason: "'in <string>' requires string as left operand, not \(needle.typeName)")
            }
            return n.isEmpty || s.unicodeScalars.firstRange(of: n.unicodeScalars) != nil
        case .list(let items): return items.contains(needle)
        case .dict(let dict):
            if case .string(let k) = needle { return dict[k] != nil }
            return false
        case .undefined: return false
        default:
            throw ChatTemplateError.runtime(line: line, reason: "argument of type '\(container.typeName)' is not iterable")
        }
    }

    /// Python ordering: -1, 0 or 1; numbers, strings (by code point) and lists (lexicographic).
    static func compare(_ a: JinjaValue, _ b: JinjaValue, op: String, line: Int) throws -> Int {
        switch (a, b) {
        case (.string(let x), .string(let y)):
            let xs = Array(x.unicodeScalars), ys = Array(y.unicodeScalars)
            for (p, q) in zip(xs, ys) where p != q { return p.value < q.value ? -1 : 1 }
            return xs.count == ys.count ? 0 : (xs.count < ys.count ? -1 : 1)
        case (.list(let x), .list(let y)):
            for (p, q) in zip(x, y) where p != q { return try compare(p, q, op: op, line: line) }
            return x.count == y.count ? 0 : (x.count < y.count ? -1 : 1)
        default:
            if let x = a.integer, let y = b.integer { return x == y ? 0 : (x < y ? -1 : 1) }
            if let x = a.number, let y = b.number { return x == y ? 0 : (x < y ? -1 : 1) }
            if case .undefined(let hint) = a { throw ChatTemplateError.runtime(line: line, reason: hint) }
            if case .undefined(let hint) = b { throw ChatTemplateError.runtime(line: line, reason: hint) }
            throw ChatTemplateError.runtime(
                line: line, reason: "'\(op)' not supported between instances of '\(a.typeName)' and '\(b.typeName)'")
        }
    }

    private static func arithmetic(_ op: BinaryOperator, _ a: JinjaValue, _ b: JinjaValue, line: Int) throws -> JinjaValue {
        // Sequences first: str + str, list + list, str * int, list * int.
        switch (op, a, b) {
        case (.add, .string(let x), .string(let y)): return .string(x + y)
        case (.add, .list(let x), .list(let y)): return .list(x + y)
        case (.multiply, .string(let s), _) where b.integer != nil: return .string(try repeated(s, b.integer ?? 0, line: line))
        case (.multiply, _, .string(let s)) where a.integer != nil: return .string(try repeated(s, a.integer ?? 0, line: line))
        case (.multiply, .list(let l), _) where b.integer != nil: return .list(try repeated(l, b.integer ?? 0, line: line))
        case (.multiply, _, .list(let l)) where a.integer != nil: return .list(try repeated(l, a.integer ?? 0, line: line))
        case (.modulo, .string, _):
            throw ChatTemplateError.unsupported(line: line, construct: "'%' string formatting")
        default: break
        }
        guard let x = a.number, let y = b.number else {
            throw ChatTemplateError.runtime(
                line: line, reason: "unsupported operand type(s) for \(op.rawValue): '\(a.typeName)' and '\(b.typeName)'")
        }
        if let i = a.integer, let j = b.integer {
            return try integerArithmetic(op, i, j, line: line)
        }
        switch op {
        case .add: return .double(x + y)
        case .subtract: return .double(x - y)
        case .multiply: return .double(x * y)
        case .divide:
            guard y != 0 else { throw zeroDivision(line) }
            return .double(x / y)
        case .floorDivide:
            guard y != 0 else { throw zeroDivision(line) }
            return .double((x / y).rounded(.down))
        case .modulo:
            guard y != 0 else { throw zeroDivision(line) }
            let r = x.truncatingRemainder(dividingBy: y)
            return .double(r != 0 && (r < 0) != (y < 0) ? r + y : r)
        case .power:
            guard x != 0 || y >= 0 else { throw zeroDivision(line) }
            return .double(pow(x, y))
        default: throw ChatTemplateError.runtime(line: line, reason: "bad operator \(op.rawValue)")
        }
    }

    private static func integerArithmetic(_ op: BinaryOperator, _ i: Int, _ j: Int, line: Int) throws -> JinjaValue {
        switch op {
        case .add:
            let (r, o) = i.addingReportingOverflow(j)
            if o { throw overflow(line) }
            return .int(r)
        case .subtract:
            let (r, o) = i.subtractingReportingOverflow(j)
            if o { throw overflow(line) }
            return .int(r)
        case .multiply:
            let (r, o) = i.multipliedReportingOverflow(by: j)
            if o { throw overflow(line) }
            return .int(r)
        case .divide:
            guard j != 0 else { throw zeroDivision(line) }
            return .double(Double(i) / Double(j))
        case .floorDivide, .modulo:
            guard j != 0 else { throw zeroDivision(line) }
            guard !(i == Int.min && j == -1) else { throw overflow(line) }
            var q = i / j
            var r = i % j
            if r != 0 && ((r < 0) != (j < 0)) {
                q -= 1
                r += j
            }
            return .int(op == .floorDivide ? q : r)
        case .power:
            if j < 0 {
                guard i != 0 else { throw zeroDivision(line) }
                return .double(pow(Double(i), Double(j)))
            }
            var result = 1
            for _ in 0..<j {
                let (r, o) = result.multipliedReportingOverflow(by: i)
                if o { throw overflow(line) }
                result = r
                if result == 0 || result == 1 { break }
            }
            return .int(result)
        default:
            throw ChatTemplateError.runtime(line: line, reason: "bad operator \(op.rawValue)")
        }
    }

    private static let maxRepeatedLength = 1 << 24

    private static func repeated(_ s: String, _ n: Int, line: Int) throws -> String {
        guard n > 0 else { return "" }
        guard s.utf8.count <= maxRepeatedLength / n else {
            throw ChatTemplateError.runtime(line: line, reason: "string repetition too large")
        }
        return String(repeating: s, count: n)
    }

    private static func repeated(_ l: [JinjaValue], _ n: Int, line: Int) throws -> [JinjaValue] {
        guard n > 0 else { return [] }
        guard l.count <= maxRepeatedLength / n else {
            throw ChatTemplateError.runtime(line: line, reason: "list repetition too large")
        }
        return Array([[JinjaValue]](repeating: l, count: n).joined())
    }

    private static func checkDefined(_ value: JinjaValue, line: Int) throws {
        if case .undefined(let hint) = value { throw ChatTemplateError.runtime(line: line, reason: hint) }
    }

    private static func zeroDivision(_ line: Int) -> ChatTemplateError {
        .runtime(line: line, reason: "division by zero")
    }

    private static func overflow(_ line: Int) -> ChatTemplateError {
        .runtime(line: line, reason: "integer overflow")
    }
}
