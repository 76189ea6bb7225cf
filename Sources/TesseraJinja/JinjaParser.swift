/// Turns tokens into statements (this file) and expressions (JinjaExpressionParser.swift) with Jinja2's grammar.
struct JinjaParser {
    let tokens: [JinjaToken]
    var index = 0
    var loopDepth = 0
    var depth = 0  // nesting of statements and sub-expressions, bounded so deep input cannot overflow the stack
    static let maxDepth = 200

    init(tokens: [JinjaToken]) { self.tokens = tokens }

    mutating func parseTemplate() throws -> [Node] {
        let (nodes, end) = try parseBody(until: [])
        if let end {
            throw ChatTemplateError.syntax(line: previous.line, reason: "unexpected '\(end)'")
        }
        return nodes
    }

    // MARK: statements

    /// Nodes up to a block tag named in `endTags`; returns that name (its tag's remainder is left to the caller).
    mutating func parseBody(until endTags: Set<String>) throws -> ([Node], String?) {
        var nodes: [Node] = []
        while true {
            let token = current
            switch token.kind {
            case .eof:
                return (nodes, nil)
            case .text(let text):
                advance()
                nodes.append(Node(kind: .text(text), line: token.line))
            case .variableBegin:
                advance()
                let expr = try parseTuple()
                try expect(.variableEnd, "'}}'")
                nodes.append(Node(kind: .output(expr), line: token.line))
            case .blockBegin:
                advance()
                guard case .name(let tag) = current.kind else {
                    throw ChatTemplateError.syntax(line: current.line, reason: "expected a tag name after '{%'")
                }
                if endTags.contains(tag) {
                    advance()
                    return (nodes, tag)
                }
                advance()
                nodes += try parseStatement(tag, line: token.line)
            default:
                throw ChatTemplateError.syntax(line: token.line, reason: "unexpected \(describe(token))")
            }
        }
    }

    /// Parses a body that must close with one of `endTags`, naming the opening tag if it never does.
    mutating func parseBlockBody(_ opener: String, line: Int, until endTags: Set<String>) throws -> ([Node], String) {
        let (body, end) = try parseBody(until: endTags)
        guard let end else {
            let expected = endTags.sorted().map { "'\($0)'" }.joined(separator: " or ")
            throw ChatTemplateError.syntax(line: line, reason: "'\(opener)' is never closed (expected \(expected))")
        }
        return (body, end)
    }

    mutating func parseStatement(_ tag: String, line: Int) throws -> [Node] {
        try enter()
        defer { depth -= 1 }
        switch tag {
        case "if": return [try parseIf(line: line)]
        case "for": return [try parseFor(line: line)]
        case "set": return [try parseSet(line: line)]
        case "macro": return [try parseMacro(line: line)]
        case "with": return [try parseWith(line: line)]
        case "filter":
            let filters = try parseFilterChain(leadingBar: false)
            try expect(.blockEnd, "'%}'")
            let (body, _) = try parseBlockBody("filter", line: line, until: ["endfilter"])
            try expect(.blockEnd, "'%}'")
            return [Node(kind: .filterBlock(body: body, filters: filters), line: line)]
        case "generation":  // transformers' AssistantTracker tag: renders its body unchanged
            try expect(.blockEnd, "'%}'")
            let (body, _) = try parseBlockBody("generation", line: line, until: ["endgeneration"])
            try expect(.blockEnd, "'%}'")
            return body
        case "break", "continue":
            guard loopDepth > 0 else {
                throw ChatTemplateError.syntax(line: line, reason: "'\(tag)' outside of a for loop")
            }
            try expect(.blockEnd, "'%}'")
            return [Node(kind: tag == "break" ? .breakLoop : .continueLoop, line: line)]
        case "elif", "else", "endif", "endfor", "endset", "endmacro", "endwith", "endfilter", "endgeneration", "endraw":
            throw ChatTemplateError.syntax(line: line, reason: "unexpected '\(tag)'")
        default:
            throw ChatTemplateError.unsupported(line: line, construct: "tag '\(tag)'")
        }
    }

    mutating func parseIf(line: Int) throws -> Node {
        var branches: [(condition: Expr, body: [Node])] = []
        var condition = try parseExpression(conditional: false)
        try expect(.blockEnd, "'%}'")
        while true {
            let (body, end) = try parseBlockBody("if", line: line, until: ["elif", "else", "endif"])
            branches.append((condition, body))
            switch end {
            case "elif":
                condition = try parseExpression(conditional: false)
                try expect(.blockEnd, "'%}'")
            case "else":
                try expect(.blockEnd, "'%}'")
                let (otherwise, _) = try parseBlockBody("if", line: line, until: ["endif"])
                try expect(.blockEnd, "'%}'")
                return Node(kind: .ifChain(branches: branches, otherwise: otherwise), line: line)
            default:
                try expect(.blockEnd, "'%}'")
                return Node(kind: .ifChain(branches: branches, otherwise: []), line: line)
            }
        }
    }

    mutating func parseFor(line: Int) throws -> Node {
        var targets = [try expectName()]
        while consumeOp(",") { targets.append(try expectName()) }
        guard consumeName("in") else {
            throw ChatTemplateError.syntax(line: current.line, reason: "expected 'in' in 'for' tag, got \(describe(current))")
        }
        let iterable = try parseExpression(conditional: false)
        var condition: Expr?
        if consumeName("if") { condition = try parseExpression() }
        if case .name("recursive") = current.kind {
            throw ChatTemplateError.unsupported(line: current.line, construct: "recursive for loop")
        }
        try expect(.blockEnd, "'%}'")
        loopDepth += 1
        let (body, end) = try parseBlockBody("for", line: line, until: ["else", "endfor"])
        loopDepth -= 1
        try expect(.blockEnd, "'%}'")
        var otherwise: [Node] = []
        if end == "else" {
            (otherwise, _) = try parseBlockBody("for", line: line, until: ["endfor"])
            try expect(.blockEnd, "'%}'")
        }
        let loop = ForLoop(targets: targets, iterable: iterable, condition: condition, body: body, otherwise: otherwise)
        return Node(kind: .forLoop(loop), line: line)
    }

    mutating func parseSet(line: Int) throws -> Node {
        let first = try expectName()
        var target = SetTarget.names([first])
        if consumeOp(".") {
            target = .attribute(object: first, attribute: try expectName())
        } else if case .op(",") = current.kind {
            var names = [first]
            while consumeOp(",") { names.append(try expectName()) }
            target = .names(names)
        }
        if consumeOp("=") {
            let value = try parseTuple()
            try expect(.blockEnd, "'%}'")
            return Node(kind: .set(target, value), line: line)
        }
        let filters = try parseFilterChain(leadingBar: true)
        try expect(.blockEnd, "'%}'")
        let (body, _) = try parseBlockBody("set", line: line, until: ["endset"])
        try expect(.blockEnd, "'%}'")
        return Node(kind: .setBlock(target, body: body, filters: filters), line: line)
    }

    mutating func parseMacro(line: Int) throws -> Node {
        let name = try expectName()
        try expectOp("(")
        var parameters: [(name: String, defaultValue: Expr?)] = []
        while !consumeOp(")") {
            if !parameters.isEmpty { try expectOp(",") }
            if consumeOp(")") { break }
            let parameter = try expectName()
            parameters.append((parameter, consumeOp("=") ? try parseExpression() : nil))
        }
        try expect(.blockEnd, "'%}'")
        let outerDepth = loopDepth
        loopDepth = 0
        let (body, _) = try parseBlockBody("macro", line: line, until: ["endmacro"])
        loopDepth = outerDepth
        try expect(.blockEnd, "'%}'")
        return Node(kind: .macro(MacroDefinition(name: name, parameters: parameters, body: body)), line: line)
    }

    mutating func parseWith(line: Int) throws -> Node {
        var assignments: [(String, Expr)] = []
        while current.kind != .blockEnd {
            if !assignments.isEmpty { try expectOp(",") }
            let name = try expectName()
            try expectOp("=")
            assignments.append((name, try parseExpression()))
        }
        try expect(.blockEnd, "'%}'")
        let (body, _) = try parseBlockBody("with", line: line, until: ["endwith"])
        try expect(.blockEnd, "'%}'")
        return Node(kind: .with(assignments: assignments, body: body), line: line)
    }

    /// `name(args) | name2 ...` as used by `{% filter %}` and, after a leading '|', by `{% set x | f %}`.
    mutating func parseFilterChain(leadingBar: Bool) throws -> [(String, CallArguments)] {
        var filters: [(String, CallArguments)] = []
        if leadingBar && !consumeOp("|") { return filters }
        repeat {
            let line = current.line
            let name = try expectName()
            try checkFilter(name, line: line)
            filters.append((name, try parseOptionalCallArguments()))
        } while consumeOp("|")
        return filters
    }

    // MARK: token helpers

    var current: JinjaToken { tokens[min(index, tokens.count - 1)] }
    var previous: JinjaToken { tokens[max(0, min(index, tokens.count) - 1)] }
    func peek(_ offset: Int) -> JinjaToken { tokens[min(index + offset, tokens.count - 1)] }
    mutating func advance(_ count: Int = 1) { index = min(index + count, tokens.count - 1) }

    mutating func consumeOp(_ op: String) -> Bool {
        guard current.kind == .op(op) else { return false }
        advance()
        return true
    }

    mutating func consumeName(_ name: String) -> Bool {
        guard current.kind == .name(name) else { return false }
        advance()
        return true
    }

    mutating func expectOp(_ op: String) throws {
        guard consumeOp(op) else {
            throw ChatTemplateError.syntax(line: current.line, reason: "expected '\(op)', got \(describe(current))")
        }
    }

    mutating func expectName() throws -> String {
        guard case .name(let name) = current.kind else {
            throw ChatTemplateError.syntax(line: current.line, reason: "expected a name, got \(describe(current))")
        }
        advance()
        return name
    }

    mutating func expect(_ kind: JinjaToken.Kind, _ what: String) throws {
        guard current.kind == kind else {
            throw ChatTemplateError.syntax(line: current.line, reason: "expected \(what), got \(describe(current))")
        }
        advance()
    }

    func describe(_ token: JinjaToken) -> String {
        switch token.kind {
        case .text: return "text"
        case .blockBegin: return "'{%'"
        case .blockEnd: return "'%}'"
        case .variableBegin: return "'{{'"
        case .variableEnd: return "'}}'"
        case .name(let n): return "'\(n)'"
        case .string(let s): return "string '\(s.prefix(20))'"
        case .int(let i): return "'\(i)'"
        case .float(let d): return "'\(d)'"
        case .op(let o): return "'\(o)'"
        case .eof: return "end of template"
        }
    }
}
