/// Expression grammar of `JinjaParser`, lowest precedence first (as Jinja2's parser): `x if c else y`, `or`,
/// `and`, `not`, comparisons and `in` (chained: `a < b < c`), `+ -`, `~`, `* / // %`, `**` (left-associative,
/// as in Jinja), unary `- +`, then postfix `.a` / `[i]` / `[a:b:c]` / calls, and filters `|f(...)` / tests `is t`.
extension JinjaParser {
    /// An expression, or several separated by commas (a tuple, kept as a list).
    mutating func parseTuple() throws -> Expr {
        let line = current.line
        let first = try parseExpression()
        guard case .op(",") = current.kind else { return first }
        var items = [first]
        while consumeOp(",") {
            switch current.kind {
            case .blockEnd, .variableEnd, .op(")"): break
            default: items.append(try parseExpression())
            }
        }
        return try make(.list(items), line: line)
    }

    mutating func parseExpression(conditional: Bool = true) throws -> Expr {
        try enter()
        defer { depth -= 1 }
        return conditional ? try parseConditional() : try parseOr()
    }

    /// A new expression node, refused when the tree gets taller than `maxDepth` (long operator or filter chains).
    func make(_ kind: ExprKind, line: Int) throws -> Expr {
        let expr = Expr(kind: kind, line: line)
        guard expr.height <= Self.maxDepth else {
            throw ChatTemplateError.syntax(line: line, reason: "expression nested deeper than \(Self.maxDepth) levels")
        }
        return expr
    }

    mutating func enter() throws {
        depth += 1
        guard depth <= Self.maxDepth else {
            throw ChatTemplateError.syntax(line: current.line, reason: "nested deeper than \(Self.maxDepth) levels")
        }
    }

    mutating func parseConditional() throws -> Expr {
        try enter()
        defer { depth -= 1 }
        var expr = try parseOr()
        while consumeName("if") {
            let condition = try parseOr()
            let otherwise = consumeName("else") ? try parseConditional() : nil
            expr = try make(.conditional(condition: condition, then: expr, otherwise: otherwise), line: expr.line)
        }
        return expr
    }

    mutating func parseOr() throws -> Expr {
        var left = try parseAnd()
        while consumeName("or") { left = try make(.or(left, try parseAnd()), line: left.line) }
        return left
    }

    mutating func parseAnd() throws -> Expr {
        var left = try parseNot()
        while consumeName("and") { left = try make(.and(left, try parseNot()), line: left.line) }
        return left
    }

    mutating func parseNot() throws -> Expr {
        try enter()
        defer { depth -= 1 }
        let line = current.line
        if consumeName("not") { return try make(.not(try parseNot()), line: line) }
        return try parseCompare()
    }

    mutating func parseCompare() throws -> Expr {
        var operand = try parseMath1()
        var result: Expr?
        while true {
            let op: BinaryOperator
            switch current.kind {
            case .op(let o) where ["==", "!=", "<", "<=", ">", ">="].contains(o):
                guard let parsed = BinaryOperator(rawValue: o) else { return operand }
                op = parsed
                advance()
            case .name("in"):
                op = .contains
                advance()
            case .name("not") where peek(1).kind == .name("in"):
                op = .notContains
                advance(2)
            default:
                return result ?? operand
            }
            let right = try parseMath1()
            let comparison = try make(.binary(op, operand, right), line: operand.line)
            // Chained comparisons: a < b < c means (a < b) and (b < c).
            result = try result.map { try make(.and($0, comparison), line: $0.line) } ?? comparison
            operand = right
        }
    }

    mutating func parseMath1() throws -> Expr {
        var left = try parseConcat()
        while true {
            if consumeOp("+") {
                left = try make(.binary(.add, left, try parseConcat()), line: left.line)
            } else if consumeOp("-") {
                left = try make(.binary(.subtract, left, try parseConcat()), line: left.line)
            } else {
                return left
            }
        }
    }

    mutating func parseConcat() throws -> Expr {
        var left = try parseMath2()
        while consumeOp("~") { left = try make(.binary(.concat, left, try parseMath2()), line: left.line) }
        return left
    }

    mutating func parseMath2() throws -> Expr {
        var left = try parsePow()
        while case .op(let o) = current.kind, ["*", "/", "//", "%"].contains(o), let op = BinaryOperator(rawValue: o) {
            advance()
            left = try make(.binary(op, left, try parsePow()), line: left.line)
        }
        return left
    }

    mutating func parsePow() throws -> Expr {
        var left = try parseUnary()
        while consumeOp("**") { left = try make(.binary(.power, left, try parseUnary()), line: left.line) }
        return left
    }

    mutating func parseUnary(withFilter: Bool = true) throws -> Expr {
        try enter()
        defer { depth -= 1 }
        let line = current.line
        var node: Expr
        if consumeOp("-") {
            node = try make(.negate(try parseUnary(withFilter: false)), line: line)
        } else if consumeOp("+") {
            node = try make(.plus(try parseUnary(withFilter: false)), line: line)
        } else {
            node = try parsePrimary()
        }
        node = try parsePostfix(node)
        return withFilter ? try parseFilterExpression(node) : node
    }

    mutating func parsePrimary() throws -> Expr {
        let token = current
        let line = token.line
        switch token.kind {
        case .name(let name):
            advance()
            switch name {
            case "true", "True": return try make(.literal(.bool(true)), line: line)
            case "false", "False": return try make(.literal(.bool(false)), line: line)
            case "none", "None": return try make(.literal(.none), line: line)
            default: return try make(.name(name), line: line)
            }
        case .string(var text):
            advance()
            while case .string(let more) = current.kind {  // adjacent literals concatenate
                text += more
                advance()
            }
            return try make(.literal(.string(text)), line: line)
        case .int(let i):
            advance()
            return try make(.literal(.int(i)), line: line)
        case .float(let d):
            advance()
            return try make(.literal(.double(d)), line: line)
        case .op("("):
            advance()
            if consumeOp(")") { return try make(.list([]), line: line) }
            let inner = try parseTuple()
            try expectOp(")")
            return inner
        case .op("["):
            advance()
            var items: [Expr] = []
            while !consumeOp("]") {
                if !items.isEmpty {
                    try expectOp(",")
                    if consumeOp("]") { break }
                }
                items.append(try parseExpression())
            }
            return try make(.list(items), line: line)
        case .op("{"):
            advance()
            var pairs: [(Expr, Expr)] = []
            while !consumeOp("}") {
                if !pairs.isEmpty {
                    try expectOp(",")
                    if consumeOp("}") { break }
                }
                let key = try parseExpression()
                try expectOp(":")
                pairs.append((key, try parseExpression()))
            }
            return try make(.dict(pairs), line: line)
        default:
            throw ChatTemplateError.syntax(line: line, reason: "unexpected \(describe(token))")
        }
    }

    mutating func parsePostfix(_ start: Expr) throws -> Expr {
        var node = start
        while true {
            let line = current.line
            if consumeOp(".") {
                switch current.kind {
                case .name(let name):
                    advance()
                    node = try make(.attribute(node, name), line: line)
                case .int(let i):
                    advance()
                    node = try make(.index(node, try make(.literal(.int(i)), line: line)), line: line)
                default:
                    throw ChatTemplateError.syntax(line: line, reason: "expected an attribute name after '.'")
                }
            } else if consumeOp("[") {
                node = try parseSubscript(node, line: line)
            } else if case .op("(") = current.kind {
                node = try make(.call(node, try parseOptionalCallArguments()), line: line)
            } else {
                return node
            }
        }
    }

    mutating func parseSubscript(_ object: Expr, line: Int) throws -> Expr {
        var start: Expr?
        if case .op(":") = current.kind {} else { start = try parseExpression() }
        guard consumeOp(":") else {
            try expectOp("]")
            guard let start else { throw ChatTemplateError.syntax(line: line, reason: "empty subscript") }
            return try make(.index(object, start), line: line)
        }
        var stop: Expr?
        var step: Expr?
        switch current.kind {
        case .op("]"), .op(":"): break
        default: stop = try parseExpression()
        }
        if consumeOp(":") {
            if case .op("]") = current.kind {} else { step = try parseExpression() }
        }
        try expectOp("]")
        return try make(.slice(object, start: start, stop: stop, step: step), line: line)
    }

    mutating func parseFilterExpression(_ start: Expr) throws -> Expr {
        var node = start
        while true {
            let line = current.line
            if consumeOp("|") {
                var name = try expectName()
                while consumeOp(".") { name += "." + (try expectName()) }
                try checkFilter(name, line: line)
                node = try make(.filter(node, name: name, try parseOptionalCallArguments()), line: line)
            } else if consumeName("is") {
                let negated = consumeName("not")
                let name = try expectName()
                guard JinjaPredicates.supported.contains(name) else {
                    throw ChatTemplateError.unsupported(line: line, construct: "test '\(name)'")
                }
                var arguments = CallArguments()
                switch current.kind {
                case .op("("):
                    arguments = try parseOptionalCallArguments()
                case .name("else"), .name("or"), .name("and"):
                    break
                case .name, .string, .int, .float, .op("["), .op("{"):
                    arguments.positional = [try parsePostfix(try parsePrimary())]
                default:
                    break
                }
                node = try make(.test(node, name: name, arguments, negated: negated), line: line)
            } else if case .op("(") = current.kind {
                node = try make(.call(node, try parseOptionalCallArguments()), line: line)
            } else {
                return node
            }
        }
    }

    /// `(a, b, key=c)` if the next token opens it, else no arguments.
    mutating func parseOptionalCallArguments() throws -> CallArguments {
        var arguments = CallArguments()
        guard consumeOp("(") else { return arguments }
        while !consumeOp(")") {
            if !arguments.positional.isEmpty || !arguments.keyword.isEmpty {
                try expectOp(",")
                if consumeOp(")") { break }
            }
            if case .op(let o) = current.kind, o == "*" || o == "**" {
                throw ChatTemplateError.unsupported(line: current.line, construct: "'\(o)' argument unpacking")
            }
            if case .name(let key) = current.kind, peek(1).kind == .op("=") {
                advance(2)
                arguments.keyword.append((key, try parseExpression()))
            } else {
                if !arguments.keyword.isEmpty {
                    throw ChatTemplateError.syntax(line: current.line, reason: "positional argument after keyword argument")
                }
                arguments.positional.append(try parseExpression())
            }
        }
        return arguments
    }

    func checkFilter(_ name: String, line: Int) throws {
        guard JinjaFilters.supported.contains(name) else {
            throw ChatTemplateError.unsupported(line: line, construct: "filter '\(name)'")
        }
    }
}
