/// An expression with the template line it starts on and the height of its tree (1 for a leaf).
struct Expr: Sendable {
    let kind: ExprKind
    let line: Int
    let height: Int

    init(kind: ExprKind, line: Int) {
        self.kind = kind
        self.line = line
        height = 1 + (kind.children.map(\.height).max() ?? 0)
    }
}

extension ExprKind {
    var children: [Expr] {
        switch self {
        case .literal, .name: return []
        case .list(let items): return items
        case .dict(let pairs): return pairs.flatMap { [$0.0, $0.1] }
        case .attribute(let e, _), .not(let e), .negate(let e), .plus(let e): return [e]
        case .index(let a, let b), .binary(_, let a, let b), .and(let a, let b), .or(let a, let b): return [a, b]
        case .slice(let e, let start, let stop, let step): return [e] + [start, stop, step].compactMap { $0 }
        case .call(let e, let args), .filter(let e, _, let args), .test(let e, _, let args, _):
            return [e] + args.positional + args.keyword.map(\.1)
        case .conditional(let c, let t, let o): return [c, t] + (o.map { [$0] } ?? [])
        }
    }
}

indirect enum ExprKind: Sendable {
    case literal(JinjaValue)
    case name(String)
    case list([Expr])
    case dict([(Expr, Expr)])
    case attribute(Expr, String)
    case index(Expr, Expr)
    case slice(Expr, start: Expr?, stop: Expr?, step: Expr?)
    case call(Expr, CallArguments)
    case filter(Expr, name: String, CallArguments)
    case test(Expr, name: String, CallArguments, negated: Bool)
    case not(Expr)
    case negate(Expr)
    case plus(Expr)
    case binary(BinaryOperator, Expr, Expr)
    case and(Expr, Expr)
    case or(Expr, Expr)
    case conditional(condition: Expr, then: Expr, otherwise: Expr?)
}

enum BinaryOperator: String, Sendable {
    case add = "+", subtract = "-", multiply = "*", divide = "/", floorDivide = "//", modulo = "%", power = "**"
    case concat = "~"
    case equal = "==", notEqual = "!=", less = "<", lessEqual = "<=", greater = ">", greaterEqual = ">="
    case contains = "in", notContains = "not in"
}

struct CallArguments: Sendable {
    var positional: [Expr] = []
    var keyword: [(String, Expr)] = []
}

/// A statement (template node) with its line.
struct Node: Sendable {
    let kind: NodeKind
    let line: Int
}

indirect enum NodeKind: Sendable {
    case text(String)
    case output(Expr)
    case ifChain(branches: [(condition: Expr, body: [Node])], otherwise: [Node])
    case forLoop(ForLoop)
    case set(SetTarget, Expr)
    case setBlock(SetTarget, body: [Node], filters: [(String, CallArguments)])
    case filterBlock(body: [Node], filters: [(String, CallArguments)])
    case with(assignments: [(String, Expr)], body: [Node])
    case macro(MacroDefinition)
    case breakLoop
    case continueLoop
}

struct ForLoop: Sendable {
    let targets: [String]  // one name, or several to unpack
    let iterable: Expr
    let condition: Expr?
    let body: [Node]
    let otherwise: [Node]
}

enum SetTarget: Sendable {
    case names([String])
    case attribute(object: String, attribute: String)  // {% set ns.x = ... %}
}

struct MacroDefinition: Sendable {
    let name: String
    let parameters: [(name: String, defaultValue: Expr?)]
    let body: [Node]
}
