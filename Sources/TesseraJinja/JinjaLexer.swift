/// One lexical token of a template; `line` is 1-based.
struct JinjaToken: Equatable {
    enum Kind: Equatable {
        case text(String)
        case blockBegin, blockEnd, variableBegin, variableEnd
        case name(String)
        case string(String)
        case int(Int)
        case float(Double)
        case op(String)
        case eof
    }
    let kind: Kind
    let line: Int
}

/// Splits template source into text and tag tokens, applying Jinja's whitespace control as Hugging Face
/// configures it: `trim_blocks` (drop the newline after `%}` / `#}`), `lstrip_blocks` (drop spaces and tabs
/// before `{%` / `{#` at the start of a line), `-` / `+` modifiers, and one trailing newline removed.
struct JinjaLexer {
    var trimBlocks = true
    var lstripBlocks = true

    private enum TagKind { case block, variable, comment }

    func tokenize(_ source: String) throws -> [JinjaToken] {
        var state = State(bytes: Array(Self.normalizeNewlines(source).utf8))
        try state.run(trimBlocks: trimBlocks, lstripBlocks: lstripBlocks)
        return state.tokens
    }

    /// "\r\n" and "\r" become "\n"; one trailing newline is dropped (`keep_trailing_newline=False`).
    static func normalizeNewlines(_ source: String) -> String {
        var out = source.replacingOccurrences(of: "\r\n", with: "\n").replacingOccurrences(of: "\r", with: "\n")
        if out.hasSuffix("\n") { out.removeLast() }
        return out
    }

    private struct State {
        let bytes: [UInt8]  // UTF-8 source; all delimiters are ASCII
        var pos = 0
        var line = 1
        var tokens: [JinjaToken] = []
        var lineStarting = true  // did the previous match end with "\n" (lstrip_blocks rule)

        init(bytes: [UInt8]) { self.bytes = bytes }

        mutating func run(trimBlocks: Bool, lstripBlocks: Bool) throws {
            while pos < bytes.count {
                guard let (start, kind) = nextTagStart() else {
                    emitText(string(pos, bytes.count))
                    pos = bytes.count
                    break
                }
                let sign: UInt8? = (start + 2 < bytes.count && (bytes[start + 2] == 45 || bytes[start + 2] == 43))
                    ? bytes[start + 2] : nil  // '-' or '+'
                var text = string(pos, start)
                if sign == 45 {
                    text = Self.rstripped(text)
                } else if sign != 43 && lstripBlocks && kind != .variable {
                    text = Self.lstripBlockIndent(text, lineStarting: lineStarting)
                }
                let textLines = countNewlines(pos, start)
                emitText(text)
                line += textLines
                pos = start + 2 + (sign == nil ? 0 : 1)
                switch kind {
                case .comment: try skipComment(trimBlocks: trimBlocks)
                case .variable: try lexTag(block: false, trimBlocks: trimBlocks)
                case .block:
                    if try !lexRawBlock(trimBlocks: trimBlocks) {
                        try lexTag(block: true, trimBlocks: trimBlocks)
                    }
                }
                lineStarting = bytes[pos - 1] == 10  // the tag's end consumed a newline
            }
            tokens.append(JinjaToken(kind: .eof, line: line))
        }

        // MARK: text

        private func nextTagStart() -> (Int, TagKind)? {
            var i = pos
            while i + 1 < bytes.count {
                if bytes[i] == 123 {  // '{'
                    switch bytes[i + 1] {
                    case 123: return (i, .variable)
                    case 37: return (i, .block)
                    case 35: return (i, .comment)
                    default: break
                    }
                }
                i += 1
            }
            return nil
        }

        private mutating func emitText(_ text: String) {
            guard !text.isEmpty else { return }
            if case .text(let previous)? = tokens.last?.kind, let last = tokens.last {
                tokens[tokens.count - 1] = JinjaToken(kind: .text(previous + text), line: last.line)
            } else {
                tokens.append(JinjaToken(kind: .text(text), line: line))
            }
        }

        /// All trailing whitespace removed (`{%-`).
        static func rstripped(_ text: String) -> String {
            var scalars = Substring(text).unicodeScalars
            while let last = scalars.last, PythonFormat.isSpace(last) { scalars.removeLast() }
            return String(scalars)
        }

        /// lstrip_blocks: drop the whitespace between the last newline (or a line start) and the tag.
        static func lstripBlockIndent(_ text: String, lineStarting: Bool) -> String {
            let scalars = Array(text.unicodeScalars)
            let lastNewline = scalars.lastIndex(of: "\n")
            let lpos = lastNewline.map { $0 + 1 } ?? 0
            guard lpos > 0 || lineStarting, lpos < scalars.count,
                  scalars[lpos...].allSatisfy({ PythonFormat.isSpace($0) }) else { return text }
            var out = String.UnicodeScalarView()
            out.append(contentsOf: scalars[..<lpos])
            return String(out)
        }

        // MARK: comments and raw blocks

        private mutating func skipComment(trimBlocks: Bool) throws {
            let startLine = line
            var i = pos
            while i + 1 < bytes.count {
                if bytes[i] == 35 && bytes[i + 1] == 125 {  // "#}"
                    let minus = i > pos && bytes[i - 1] == 45
                    let plus = i > pos && bytes[i - 1] == 43
                    line += countNewlines(pos, i)
                    pos = i + 2
                    if minus { skipWhitespace() } else if !plus && trimBlocks { skipOneNewline() }
                    return
                }
                i += 1
            }
            throw ChatTemplateError.syntax(line: startLine, reason: "unterminated comment '{#'")
        }

        /// `{% raw %}...{% endraw %}`: the content is text, untouched. Returns false if this block is not `raw`.
        private mutating func lexRawBlock(trimBlocks: Bool) throws -> Bool {
            var i = pos
            while i < bytes.count && Self.isSpace(bytes[i]) { i += 1 }
            guard i + 3 <= bytes.count, bytes[i..<(i + 3)].elementsEqual("raw".utf8) else { return false }
            i += 3
            if i < bytes.count && Self.isNameByte(bytes[i]) { return false }
            while i < bytes.count && Self.isSpace(bytes[i]) { i += 1 }
            let stripAfter = i < bytes.count && bytes[i] == 45
            if stripAfter { i += 1 }
            guard i + 1 < bytes.count, bytes[i] == 37, bytes[i + 1] == 125 else {
                throw ChatTemplateError.syntax(line: line, reason: "expected '%}' after 'raw'")
            }
            line += countNewlines(pos, i + 2)
            pos = i + 2
            if stripAfter { skipWhitespace() }
            // Find "{%[-+]? endraw [-+]?%}".
            var j = pos
            while j + 1 < bytes.count {
                if bytes[j] == 123 && bytes[j + 1] == 37, let (end, sign, endSign) = matchEndRaw(at: j) {
                    var text = string(pos, j)
                    if sign == 45 { text = Self.rstripped(text) }
                    line += countNewlines(pos, j)
                    emitText(text)
                    line += countNewlines(j, end)
                    pos = end
                    if endSign == 45 { skipWhitespace() } else if endSign != 43 && trimBlocks { skipOneNewline() }
                    return true
                }
                j += 1
            }
            throw ChatTemplateError.syntax(line: line, reason: "missing '{% endraw %}'")
        }

        private func matchEndRaw(at start: Int) -> (end: Int, sign: UInt8?, endSign: UInt8?)? {
            var i = start + 2
            var sign: UInt8?
            if i < bytes.count && (bytes[i] == 45 || bytes[i] == 43) { sign = bytes[i]; i += 1 }
            while i < bytes.count && Self.isSpace(bytes[i]) { i += 1 }
            guard i + 6 <= bytes.count, bytes[i..<(i + 6)].elementsEqual("endraw".utf8) else { return nil }
            i += 6
            while i < bytes.count && Self.isSpace(bytes[i]) { i += 1 }
            var endSign: UInt8?
            if i < bytes.count && (bytes[i] == 45 || bytes[i] == 43) { endSign = bytes[i]; i += 1 }
            guard i + 1 < bytes.count, bytes[i] == 37, bytes[i + 1] == 125 else { return nil }
            return (i + 2, sign, endSign)
        }

        // MARK: tags

        private mutating func lexTag(block: Bool, trimBlocks: Bool) throws {
            let tagLine = line
            tokens.append(JinjaToken(kind: block ? .blockBegin : .variableBegin, line: line))
            var brackets: [UInt8] = []
            while true {
                skipWhitespace()
                guard pos < bytes.count else {
                    throw ChatTemplateError.syntax(
                        line: tagLine, reason: "unterminated tag '\(block ? "{%" : "{{")'")
                }
                if brackets.isEmpty, let endLength = matchTagEnd(block: block) {
                    let stripAfter = bytes[pos] == 45
                    let keep = bytes[pos] == 43
                    tokens.append(JinjaToken(kind: block ? .blockEnd : .variableEnd, line: line))
                    pos += endLength
                    if stripAfter {
                        skipWhitespace()
                    } else if block && !keep && trimBlocks {
                        skipOneNewline()
                    }
                    return
                }
                let b = bytes[pos]
                if Self.isNameStart(b) {
                    let start = pos
                    while pos < bytes.count && Self.isNameByte(bytes[pos]) { pos += 1 }
                    tokens.append(JinjaToken(kind: .name(string(start, pos)), line: line))
                } else if b >= 48 && b <= 57 {
                    try lexNumber()
                } else if b == 39 || b == 34 {
                    try lexString(quote: b)
                } else {
                    try lexOperator(&brackets)
                }
            }
        }

        /// Length of the tag end at `pos` ("-%}", "+%}", "%}", "-}}", "}}"), or nil.
        private func matchTagEnd(block: Bool) -> Int? {
            let rest = bytes.count - pos
            if block {
                if rest >= 3 && (bytes[pos] == 45 || bytes[pos] == 43) && bytes[pos + 1] == 37 && bytes[pos + 2] == 125 {
                    return 3
                }
                if rest >= 2 && bytes[pos] == 37 && bytes[pos + 1] == 125 { return 2 }
            } else {
                if rest >= 3 && bytes[pos] == 45 && bytes[pos + 1] == 125 && bytes[pos + 2] == 125 { return 3 }
                if rest >= 2 && bytes[pos] == 125 && bytes[pos + 1] == 125 { return 2 }
            }
            return nil
        }

        private mutating func lexNumber() throws {
            let start = pos
            func digits() { while pos < bytes.count && ((bytes[pos] >= 48 && bytes[pos] <= 57) || bytes[pos] == 95) { pos += 1 } }
            digits()
            var isFloat = false
            if pos + 1 < bytes.count && bytes[pos] == 46 && bytes[pos + 1] >= 48 && bytes[pos + 1] <= 57 {
                isFloat = true
                pos += 1
                digits()
            }
            if pos < bytes.count && (bytes[pos] == 101 || bytes[pos] == 69) {  // exponent
                var k = pos + 1
                if k < bytes.count && (bytes[k] == 43 || bytes[k] == 45) { k += 1 }
                if k < bytes.count && bytes[k] >= 48 && bytes[k] <= 57 {
                    isFloat = true
                    pos = k
                    digits()
                }
            }
            let text = string(start, pos).replacingOccurrences(of: "_", with: "")
            if isFloat, let d = Double(text) {
                tokens.append(JinjaToken(kind: .float(d), line: line))
            } else if let i = Int(text) {
                tokens.append(JinjaToken(kind: .int(i), line: line))
            } else {
                throw ChatTemplateError.syntax(line: line, reason: "invalid number '\(text)'")
            }
        }

        private mutating func lexString(quote: UInt8) throws {
            let startLine = line
            var i = pos + 1
            while i < bytes.count && bytes[i] != quote {
                if bytes[i] == 92 { i += 1 }  // backslash escapes the next byte
                i += 1
            }
            guard i < bytes.count else {
                throw ChatTemplateError.syntax(line: startLine, reason: "unterminated string")
            }
            let raw = string(pos + 1, i)
            line += countNewlines(pos, i)
            pos = i + 1
            tokens.append(JinjaToken(kind: .string(Self.unescape(raw)), line: startLine))
        }

        private static let operators = ["//", "**", "==", "!=", ">=", "<=",
                                        "+", "-", "/", "*", "%", "~", "[", "]", "(", ")", "{", "}",
                                        "<", ">", "=", ".", ":", "|", ",", ";"]

        private mutating func lexOperator(_ brackets: inout [UInt8]) throws {
            for op in Self.operators where pos + op.utf8.count <= bytes.count
                && bytes[pos..<(pos + op.utf8.count)].elementsEqual(op.utf8) {
                switch op {
                case "(", "[", "{": brackets.append(op.utf8.first ?? 0)
                case ")", "]", "}":
                    let open: UInt8 = op == ")" ? 40 : (op == "]" ? 91 : 123)
                    guard brackets.last == open else {
                        throw ChatTemplateError.syntax(line: line, reason: "unexpected '\(op)'")
                    }
                    brackets.removeLast()
                default: break
                }
                tokens.append(JinjaToken(kind: .op(op), line: line))
                pos += op.utf8.count
                return
            }
            let char = String(decoding: bytes[pos..<min(pos + 4, bytes.count)], as: UTF8.self).prefix(1)
            throw ChatTemplateError.syntax(line: line, reason: "unexpected character '\(char)'")
        }

        // MARK: helpers

        private mutating func skipWhitespace() {
            while pos < bytes.count && Self.isSpace(bytes[pos]) {
                if bytes[pos] == 10 { line += 1 }
                pos += 1
            }
        }

        private mutating func skipOneNewline() {
            if pos < bytes.count && bytes[pos] == 10 {
                pos += 1
                line += 1
            }
        }

        private func string(_ from: Int, _ to: Int) -> String {
            String(decoding: bytes[from..<to], as: UTF8.self)
        }

        private func countNewlines(_ from: Int, _ to: Int) -> Int {
            var n = 0
            for i in from..<to where bytes[i] == 10 { n += 1 }
            return n
        }

        static func isSpace(_ b: UInt8) -> Bool { b == 32 || (b >= 9 && b <= 13) }
        static func isNameStart(_ b: UInt8) -> Bool { (b >= 65 && b <= 90) || (b >= 97 && b <= 122) || b == 95 }
        static func isNameByte(_ b: UInt8) -> Bool { isNameStart(b) || (b >= 48 && b <= 57) }

        /// Python "unicode-escape" decoding of a string literal's body, as Jinja applies it.
        static func unescape(_ raw: String) -> String {
            guard raw.contains("\\") else { return raw }
            var out = String.UnicodeScalarView()
            let s = Array(raw.unicodeScalars)
            var i = 0
            func hexValue(_ count: Int) -> UInt32? {
                guard i + count < s.count else { return nil }
                var v: UInt32 = 0
                for k in 1...count {
                    guard let d = Int(String(s[i + k]), radix: 16) else { return nil }
                    v = v * 16 + UInt32(d)
                }
                return v
            }
            while i < s.count {
                let c = s[i]
                guard c == "\\", i + 1 < s.count else { out.append(c); i += 1; continue }
                let n = s[i + 1]
                switch n {
                case "\\": out.append("\\"); i += 2
                case "'": out.append("'"); i += 2
                case "\"": out.append("\""); i += 2
                case "n": out.append("\n"); i += 2
                case "t": out.append("\t"); i += 2
                case "r": out.append("\r"); i += 2
                case "a": out.append("\u{07}"); i += 2
                case "b": out.append("\u{08}"); i += 2
                case "f": out.append("\u{0C}"); i += 2
                case "v": out.append("\u{0B}"); i += 2
                case "\n": i += 2  // line continuation
                case "x", "u", "U":
                    let count = n == "x" ? 2 : (n == "u" ? 4 : 8)
                    i += 1
                    if let v = hexValue(count), let scalar = Unicode.Scalar(v) {
                        out.append(scalar)
                        i += count + 1
                    } else {
                        out.append("\\")
                    }
                case "0"..."7":
                    var v: UInt32 = 0
                    var k = i + 1
                    while k < s.count && k < i + 4, ("0"..."7").contains(s[k]) {
                        v = v * 8 + (s[k].value - 48)
                        k += 1
                    }
                    if let scalar = Unicode.Scalar(v) { out.append(scalar) }
                    i = k
                default:
                    out.append("\\")
                    i += 1
                }
            }
            return String(out)
        }
    }
}
