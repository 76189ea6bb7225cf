/// Renders parsed template nodes against a context, with Jinja2's scoping: a `for` body gets a fresh scope
/// per iteration (so `set` inside a loop does not leak out; `namespace()` is the way out), macros and
/// `with` get their own scope, `if` does not.
final class JinjaInterpreter {
    enum Flow { case normal, breakLoop, continueLoop }

    /// scopes[0] holds the context and top-level `set`s; later entries are loop / macro / with scopes.
    private(set) var scopes: [[String: JinjaValue]]
    private var macroDepth = 0
    private static let maxMacroDepth = 64
    private static let maxOutputBytes = 64 << 20

    init(context: [String: JinjaValue]) {
        scopes = [context]
    }

    func render(_ nodes: [Node]) throws -> String {
        var out = ""
        _ = try execute(nodes, into: &out)
        return out
    }

    // MARK: statements

    private func execute(_ nodes: [Node], into out: inout String) throws -> Flow {
        for node in nodes {
            let flow = try execute(node, into: &out)
            guard out.utf8.count <= Self.maxOutputBytes else {
                throw ChatTemplateError.runtime(line: node.line, reason: "output larger than \(Self.maxOutputBytes >> 20) MiB")
            }
            if flow != .normal { return flow }
        }
        return .normal
    }

    private func execute(_ node: Node, into out: inout String) throws -> Flow {
        switch node.kind {
        case .text(let text):
            out += text
        case .output(let expr):
            out += try evaluate(expr).pythonString
        case .ifChain(let branches, let otherwise):
            for branch in branches where try evaluate(branch.condition).isTruthy {
                return try execute(branch.body, into: &out)
            }
            return try execute(otherwise, into: &out)
        case .forLoop(let loop):
            try executeFor(loop, line: node.line, into: &out)
        case .set(let target, let expr):
            try assign(try evaluate(expr), to: target, line: node.line)
        case .setBlock(let target, let body, let filters):
            var captured = ""
            _ = try execute(body, into: &captured)
            try assign(try applyFilterChain(filters, to: .string(captured), line: node.line), to: target, line: node.line)
        case .filterBlock(let body, let filters):
            var captured = ""
            _ = try execute(body, into: &captured)
            out += try applyFilterChain(filters, to: .string(captured), line: node.line).pythonString
        case .with(let assignments, let body):
            var scope: [String: JinjaValue] = [:]
            for (name, expr) in assignments { scope[name] = try evaluate(expr) }
            scopes.append(scope)
            defer { scopes.removeLast() }
            return try execute(body, into: &out)
        case .macro(let definition):
            scopes[scopes.count - 1][definition.name] =
                .callable(JinjaCallable(name: definition.name, kind: .macro(definition)))
        case .breakLoop:
            return .breakLoop
        case .continueLoop:
            return .continueLoop
        }
        return .normal
    }

    private func executeFor(_ loop: ForLoop, line: Int, into out: inout String) throws {
        var items: [JinjaValue] = []
        for item in try iterate(try evaluate(loop.iterable), line: line) {
            if let condition = loop.condition {
                scopes.append(try bind(loop.targets, to: item, line: line))
                defer { scopes.removeLast() }
                guard try evaluate(condition).isTruthy else { continue }
            }
            items.append(item)
        }
        if items.isEmpty {
            _ = try execute(loop.otherwise, into: &out)
            return
        }
        let count = items.count
        for (i, item) in items.enumerated() {
            var scope = try bind(loop.targets, to: item, line: line)
            scope["loop"] = .object([
                ("index", .int(i + 1)), ("index0", .int(i)),
                ("revindex", .int(count - i)), ("revindex0", .int(count - i - 1)),
                ("first", .bool(i == 0)), ("last", .bool(i == count - 1)), ("length", .int(count)),
                ("previtem", i > 0 ? items[i - 1] : .undefined(hint: "there is no previous item")),
                ("nextitem", i + 1 < count ? items[i + 1] : .undefined(hint: "there is no next item")),
                ("depth", .int(1)), ("depth0", .int(0)),
            ])
            scopes.append(scope)
            let flow = try execute(loop.body, into: &out)
            scopes.removeLast()
            if flow == .breakLoop { break }
        }
    }

    /// Loop targets bound to one item (several targets unpack a list, as `for k, v in d.items()`).
    private func bind(_ targets: [String], to item: JinjaValue, line: Int) throws -> [String: JinjaValue] {
        if targets.count == 1 { return [targets[0]: item] }
        let parts = try iterate(item, line: line)
        guard parts.count == targets.count else {
            throw ChatTemplateError.runtime(
                line: line, reason: "cannot unpack \(parts.count) values into \(targets.count) names")
        }
        return Dictionary(uniqueKeysWithValues: zip(targets, parts))
    }

    private func assign(_ value: JinjaValue, to target: SetTarget, line: Int) throws {
        switch target {
        case .names(let names):
            if names.count == 1 {
                scopes[scopes.count - 1][names[0]] = value
            } else {
                for (name, part) in try bind(names, to: value, line: line) { scopes[scopes.count - 1][name] = part }
            }
        case .attribute(let object, let attribute):
            guard case .namespace(let ns) = lookup(object) else {
                throw ChatTemplateError.runtime(
                    line: line, reason: "cannot assign attribute '\(attribute)' on '\(object)': not a namespace")
            }
            ns.values[attribute] = value
        }
    }

    func lookup(_ name: String) -> JinjaValue {
        for scope in scopes.reversed() {
            if let value = scope[name] { return value }
        }
        if JinjaBuiltins.names.contains(name) {
            return .callable(JinjaCallable(name: name, kind: .builtin))
        }
        return .undefined(hint: "'\(name)' is undefined")
    }

    /// Python iteration: list items, dict keys, string characters; Undefined iterates as empty.
    func iterate(_ value: JinjaValue, line: Int) throws -> [JinjaValue] {
        switch value {
        case .list(let items): return items
        case .dict(let dict): return dict.keys.map { .string($0) }
        case .string(let s): return s.unicodeScalars.map { .string(String($0)) }
        case .undefined: return []
        default:
            throw ChatTemplateError.runtime(line: line, reason: "'\(value.typeName)' object is not iterable")
        }
    }

    // MARK: expressions

    func evaluate(_ expr: Expr) throws -> JinjaValue {
        let line = expr.line
        switch expr.kind {
        case .literal(let value):
            return value
        case .name(let name):
            return lookup(name)
        case .list(let items):
            return .list(try items.map(evaluate))
        case .dict(let pairs):
            var dict = JinjaDict()
            for (keyExpr, valueExpr) in pairs {
                guard case .string(let key) = try evaluate(keyExpr) else {
                    throw ChatTemplateError.unsupported(line: line, construct: "dict key that is not a string")
                }
                dict[key] = try evaluate(valueExpr)
            }
            return .dict(dict)
        case .attribute(let objectExpr, let name):
            return try attribute(of: try evaluate(objectExpr), name, line: line)
        case .index(let objectExpr, let keyExpr):
            return try element(try evaluate(objectExpr), try evaluate(keyExpr), line: line)
        case .slice(let objectExpr, let start, let stop, let step):
            return try slice(try evaluate(objectExpr), start: try start.map(evaluate), stop: try stop.map(evaluate),
                             step: try step.map(evaluate), line: line)
        case .call(let callee, let arguments):
            return try call(callee, arguments, line: line)
        case .filter(let operand, let name, let arguments):
            return try applyFilter(name, to: try evaluate(operand), try evaluateArguments(arguments), line: line)
        case .test(let operand, let name, let arguments, let negated):
            let result = try applyTest(name, to: try evaluate(operand), try evaluateArguments(arguments), line: line)
            return .bool(result != negated)
        case .not(let operand):
            return .bool(!(try evaluate(operand).isTruthy))
        case .negate(let operand):
            return try JinjaOperators.negate(try evaluate(operand), line: line)
        case .plus(let operand):
            let value = try evaluate(operand)
            guard value.number != nil else {
                throw ChatTemplateError.runtime(line: line, reason: "bad operand type for unary +: '\(value.typeName)'")
            }
            return value
        case .binary(let op, let left, let right):
            return try JinjaOperators.apply(op, try evaluate(left), try evaluate(right), line: line)
        case .and(let left, let right):
            let l = try evaluate(left)
            return l.isTruthy ? try evaluate(right) : l
        case .or(let left, let right):
            let l = try evaluate(left)
            return l.isTruthy ? l : try evaluate(right)
        case .conditional(let condition, let then, let otherwise):
            if try evaluate(condition).isTruthy { return try evaluate(then) }
            return try otherwise.map(evaluate) ?? .undefined(hint: "the inline if expression had no else branch")
        }
    }

    struct Arguments {
        var positional: [JinjaValue] = []
        var keyword: [(String, JinjaValue)] = []

        func keywordValue(_ name: String) -> JinjaValue? { keyword.first { $0.0 == name }?.1 }
        /// Positional argument `index`, else keyword `name`.
        func value(_ index: Int, _ name: String) -> JinjaValue? {
            index < positional.count ? positional[index] : keywordValue(name)
        }
    }

    func evaluateArguments(_ arguments: CallArguments) throws -> Arguments {
        Arguments(positional: try arguments.positional.map(evaluate),
                  keyword: try arguments.keyword.map { ($0.0, try evaluate($0.1)) })
    }

    /// `a.b`: a dict key, a namespace attribute, or Undefined (Jinja never fails on a missing attribute,
    /// only on an attribute of something already undefined).
    func attribute(of object: JinjaValue, _ name: String, line: Int) throws -> JinjaValue {
        switch object {
        case .undefined(let hint):
            throw ChatTemplateError.runtime(line: line, reason: hint)
        case .dict(let dict):
            return dict[name] ?? .undefined(hint: "'dict object' has no attribute '\(name)'")
        case .namespace(let ns):
            return ns.values[name] ?? .undefined(hint: "'Namespace' object has no attribute '\(name)'")
        default:
            return .undefined(hint: "'\(object.typeName) object' has no attribute '\(name)'")
        }
    }

    /// `a[k]`: list / string index (negative from the end), dict key; misses give Undefined.
    func element(_ object: JinjaValue, _ key: JinjaValue, line: Int) throws -> JinjaValue {
        switch (object, key) {
        case (.undefined(let hint), _):
            throw ChatTemplateError.runtime(line: line, reason: hint)
        case (.list(let items), _):
            guard let i = key.integer else { break }
            let index = i < 0 ? items.count + i : i
            guard index >= 0 && index < items.count else {
                return .undefined(hint: "list object has no element \(i)")
            }
            return items[index]
        case (.string(let s), _):
            guard let i = key.integer else { break }
            let scalars = Array(s.unicodeScalars)
            let index = i < 0 ? scalars.count + i : i
            guard index >= 0 && index < scalars.count else {
                return .undefined(hint: "str object has no element \(i)")
            }
            return .string(String(scalars[index]))
        case (.dict(let dict), .string(let k)):
            return dict[k] ?? .undefined(hint: "'dict object' has no attribute '\(k)'")
        case (.namespace, .string(let k)):
            return try attribute(of: object, k, line: line)
        default:
            break
        }
        if case .string(let k) = key { return try attribute(of: object, k, line: line) }
        return .undefined(hint: "'\(object.typeName) object' has no element \(key.pythonRepr)")
    }

    /// `a[start:stop:step]` on lists and strings, with Python's slice rules.
    private func slice(_ object: JinjaValue, start: JinjaValue?, stop: JinjaValue?, step: JinjaValue?,
                       line: Int) throws -> JinjaValue {
        func bound(_ v: JinjaValue?) throws -> Int? {
            guard let v, !v.isNone else { return nil }
            guard let i = v.integer else {
                throw ChatTemplateError.runtime(line: line, reason: "slice indices must be integers or None")
            }
            return i
        }
        let indices = { (count: Int) throws -> [Int] in
            try PythonSlice.indices(count: count, start: bound(start), stop: bound(stop), step: bound(step), line: line)
        }
        switch object {
        case .undefined(let hint):
            throw ChatTemplateError.runtime(line: line, reason: hint)
        case .list(let items):
            return .list(try indices(items.count).map { items[$0] })
        case .string(let s):
            let scalars = Array(s.unicodeScalars)
            var view = String.UnicodeScalarView()
            for i in try indices(scalars.count) { view.append(scalars[i]) }
            return .string(String(view))
        default:
            throw ChatTemplateError.runtime(line: line, reason: "'\(object.typeName)' object is not subscriptable")
        }
    }

    private func call(_ callee: Expr, _ argumentExprs: CallArguments, line: Int) throws -> JinjaValue {
        // obj.method(...) on strings, dicts and lists.
        if case .attribute(let objectExpr, let method) = callee.kind {
            let object = try evaluate(objectExpr)
            if case .dict(let dict) = object, case .callable(let c)? = dict[method] {
                return try invoke(c, try evaluateArguments(argumentExprs), line: line)
            }
            if case .namespace(let ns) = object, case .callable(let c)? = ns.values[method] {
                return try invoke(c, try evaluateArguments(argumentExprs), line: line)
            }
            if case .undefined(let hint) = object { throw ChatTemplateError.runtime(line: line, reason: hint) }
            return try callMethod(method, on: object, try evaluateArguments(argumentExprs), line: line)
        }
        let function = try evaluate(callee)
        switch function {
        case .callable(let c):
            return try invoke(c, try evaluateArguments(argumentExprs), line: line)
        case .undefined(let hint):
            throw ChatTemplateError.runtime(line: line, reason: hint)
        default:
            throw ChatTemplateError.runtime(line: line, reason: "'\(function.typeName)' object is not callable")
        }
    }

    private func invoke(_ callable: JinjaCallable, _ arguments: Arguments, line: Int) throws -> JinjaValue {
        switch callable.kind {
        case .builtin:
            return try JinjaBuiltins.call(callable.name, arguments, line: line)
        case .macro(let definition):
            return try callMacro(definition, arguments, line: line)
        }
    }

    private func callMacro(_ macro: MacroDefinition, _ arguments: Arguments, line: Int) throws -> JinjaValue {
        guard macroDepth < Self.maxMacroDepth else {
            throw ChatTemplateError.runtime(line: line, reason: "macro '\(macro.name)' nested deeper than \(Self.maxMacroDepth) calls")
        }
        guard arguments.positional.count <= macro.parameters.count else {
            throw ChatTemplateError.runtime(
                line: line, reason: "macro '\(macro.name)' takes \(macro.parameters.count) arguments, got \(arguments.positional.count)")
        }
        // Parameters see the template's top-level variables, not the caller's locals.
        let savedScopes = scopes
        scopes = [scopes[0], [:]]
        macroDepth += 1
        defer {
            scopes = savedScopes
            macroDepth -= 1
        }
        for (name, _) in arguments.keyword where !macro.parameters.contains(where: { $0.name == name }) {
            throw ChatTemplateError.runtime(line: line, reason: "macro '\(macro.name)' has no parameter '\(name)'")
        }
        for (i, parameter) in macro.parameters.enumerated() {
            let value: JinjaValue
            if let given = arguments.value(i, parameter.name) {
                value = given
            } else if let defaultExpr = parameter.defaultValue {
                value = try evaluate(defaultExpr)
            } else {
                value = .undefined(hint: "'\(parameter.name)' is undefined")
            }
            scopes[1][parameter.name] = value
        }
        var out = ""
        _ = try execute(macro.body, into: &out)
        return .string(out)
    }

    private func applyFilterChain(_ filters: [(String, CallArguments)], to value: JinjaValue, line: Int) throws -> JinjaValue {
        var result = value
        for (name, arguments) in filters {
            result = try applyFilter(name, to: result, try evaluateArguments(arguments), line: line)
        }
        return result
    }
}

/// Python's slice index arithmetic (`range(*slice(start, stop, step).indices(count))`).
enum PythonSlice {
    static func indices(count: Int, start: Int?, stop: Int?, step: Int?, line: Int) throws -> [Int] {
        let step = step ?? 1
        guard step != 0 else { throw ChatTemplateError.runtime(line: line, reason: "slice step cannot be zero") }
        func clamp(_ v: Int?, _ defaultValue: Int, low: Int, high: Int) -> Int {
            guard var v else { return defaultValue }
            if v < 0 { v += count }
            return Swift.min(Swift.max(v, low), high)
        }
        var result: [Int] = []
        if step > 0 {
            var i = clamp(start, 0, low: 0, high: count)
            let end = clamp(stop, count, low: 0, high: count)
            while i < end { result.append(i); i += step }
        } else {
            var i = clamp(start, count - 1, low: -1, high: count - 1)
            let end = clamp(stop, -1, low: -1, high: count - 1)
            while i > end { result.append(i); i += step }
        }
        return result
    }
}
