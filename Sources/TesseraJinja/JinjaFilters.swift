import Foundation

/// Jinja filters (`x | trim`, `xs | selectattr("role", "equalto", "user")`, `x | tojson(indent=2)`, ...).
enum JinjaFilters {
    static let supported: Set<String> = [
        "abs", "attr", "capitalize", "count", "d", "default", "dictsort", "e", "escape", "first", "float",
        "forceescape", "indent", "int", "items", "join", "last", "length", "list", "lower", "map", "max", "min",
        "reject", "rejectattr", "replace", "reverse", "round", "safe", "select", "selectattr", "sort", "string",
        "sum", "title", "tojson", "trim", "unique", "upper", "wordcount",
    ]
}

extension JinjaInterpreter {
    /// A filter's runtime error, naming it.
    private func filterError(_ name: String, _ line: Int, _ reason: String) -> ChatTemplateError {
        .runtime(line: line, reason: "filter '\(name)': \(reason)")
    }

    func applyFilter(_ name: String, to value: JinjaValue, _ args: Arguments, line: Int) throws -> JinjaValue {
        if case .undefined(let hint) = value, name == "int" || name == "float" || name == "abs" || name == "round" {
            throw ChatTemplateError.runtime(line: line, reason: hint)
        }
        for group in [textFilter, numberFilter, sequenceFilter, orderingFilter, itemFilter] {
            if let result = try group(name, value, args, line) { return result }
        }
        throw ChatTemplateError.unsupported(line: line, construct: "filter '\(name)'")
    }

    /// String filters (`default` too: it is how templates print optional strings). nil when `name` is not one of them.
    private func textFilter(_ name: String, _ value: JinjaValue, _ args: Arguments, _ line: Int) throws -> JinjaValue? {
        switch name {
        case "default", "d":
            let fallback = args.value(0, "default_value") ?? .string("")
            let boolean = args.value(1, "boolean")?.isTruthy ?? false
            return value.isUndefined || (boolean && !value.isTruthy) ? fallback : value
        case "trim":
            let chars = args.value(0, "chars").flatMap { $0.isNone ? nil : $0.pythonString }
            return .string(PythonString.strip(value.pythonString, chars, leading: true, trailing: true))
        case "upper": return .string(value.pythonString.uppercased())
        case "lower": return .string(PythonString.lower(value.pythonString))
        case "capitalize": return .string(PythonString.capitalize(value.pythonString))
        case "title": return .string(PythonString.jinjaTitle(value.pythonString))
        case "string": return .string(value.pythonString)
        case "safe", "e", "escape", "forceescape":
            return name == "safe" ? value : .string(PythonString.htmlEscape(value.pythonString))
        case "wordcount":
            return .int(PythonString.wordCount(value.pythonString))
        case "replace":
            guard let old = args.value(0, "old"), let new = args.value(1, "new") else { throw filterError(name, line, "needs old and new") }
            let count = args.value(2, "count").flatMap { $0.isNone ? nil : $0.integer } ?? -1
            return .string(PythonString.replace(value.pythonString, old.pythonString, new.pythonString, count: count))
        case "indent":
            return .string(indent(value.pythonString, args))
        default:
            return nil
        }
    }

    /// Number filters. nil when `name` is not one of them.
    private func numberFilter(_ name: String, _ value: JinjaValue, _ args: Arguments, _ line: Int) throws -> JinjaValue? {
        switch name {
        case "int":
            let fallback = args.value(0, "default") ?? .int(0)
            let base = args.value(1, "base")?.integer ?? 10
            return PythonString.toInt(value, base: base) ?? fallback
        case "float":
            let fallback = args.value(0, "default") ?? .double(0)
            if let d = value.number { return .double(d) }
            if case .string(let s) = value,
               let d = Double(PythonString.strip(s, nil, leading: true, trailing: true).replacingOccurrences(of: "_", with: "")) {
                return .double(d)
            }
            return fallback
        case "abs":
            if let i = value.integer { return .int(i == Int.min ? i : Swift.abs(i)) }
            if case .double(let d) = value { return .double(Swift.abs(d)) }
            throw filterError(name, line, "bad operand type '\(value.typeName)'")
        case "round":
            return try round(value, args, line: line)
        default:
            return nil
        }
    }

    /// Length, element and joining filters. nil when `name` is not one of them.
    private func sequenceFilter(_ name: String, _ value: JinjaValue, _ args: Arguments, _ line: Int) throws -> JinjaValue? {
        switch name {
        case "length", "count":
            return .int(try length(of: value, line: line))
        case "first", "last":
            let items = try iterate(value, line: line)
            return (name == "first" ? items.first : items.last) ?? .undefined(hint: "No \(name) item, sequence was empty.")
        case "list":
            return .list(try iterate(value, line: line))
        case "reverse":
            if case .string(let s) = value { return .string(String(String.UnicodeScalarView(s.unicodeScalars.reversed()))) }
            return .list(try iterate(value, line: line).reversed())
        case "join":
            let separator = args.value(0, "d").map(\.pythonString) ?? ""
            var items = try iterate(value, line: line)
            if let attribute = args.keywordValue("attribute") ?? args.positional.dropFirst().first {
                items = try items.map { try lookupPath($0, attribute, line: line) }
            }
            return .string(items.map(\.pythonString).joined(separator: separator))
        case "items":
            switch value {
            case .dict(let dict): return .list(dict.pairs.map { .list([.string($0.0), $0.1]) })
            case .undefined: return .list([])
            default: throw filterError(name, line, "can only get item pairs from a mapping, not '\(value.typeName)'")
            }
        default:
            return nil
        }
    }

    /// Sorting, deduplicating and aggregating filters. nil when `name` is not one of them.
    private func orderingFilter(_ name: String, _ value: JinjaValue, _ args: Arguments, _ line: Int) throws -> JinjaValue? {
        switch name {
        case "dictsort":
            guard case .dict(let dict) = value else { throw filterError(name, line, "needs a mapping, not '\(value.typeName)'") }
            let caseSensitive = args.value(0, "case_sensitive")?.isTruthy ?? false
            let byValue = args.value(1, "by").map(\.pythonString) == "value"
            let reverse = args.value(2, "reverse")?.isTruthy ?? false
            let pairs = dict.pairs.map { JinjaValue.list([.string($0.0), $0.1]) }
            return .list(try sorted(pairs, key: { try self.element($0, .int(byValue ? 1 : 0), line: line) },
                                    caseSensitive: caseSensitive, reverse: reverse, line: line))
        case "sort":
            let reverse = args.value(0, "reverse")?.isTruthy ?? false
            let caseSensitive = args.value(1, "case_sensitive")?.isTruthy ?? false
            let attribute = args.value(2, "attribute")
            return .list(try sorted(try iterate(value, line: line), key: { item in
                try attribute.map { try self.lookupPath(item, $0, line: line) } ?? item
            }, caseSensitive: caseSensitive, reverse: reverse, line: line))
        case "unique":
            let caseSensitive = args.value(0, "case_sensitive")?.isTruthy ?? false
            let attribute = args.value(1, "attribute")
            var seen: [JinjaValue] = []
            var result: [JinjaValue] = []
            for item in try iterate(value, line: line) {
                var key = try attribute.map { try lookupPath(item, $0, line: line) } ?? item
                if !caseSensitive, case .string(let s) = key { key = .string(s.lowercased()) }
                if !seen.contains(key) {
                    seen.append(key)
                    result.append(item)
                }
            }
            return .list(result)
        case "min", "max":
            let caseSensitive = args.value(0, "case_sensitive")?.isTruthy ?? false
            let attribute = args.value(1, "attribute")
            let items = try sorted(try iterate(value, line: line), key: { item in
                try attribute.map { try self.lookupPath(item, $0, line: line) } ?? item
            }, caseSensitive: caseSensitive, reverse: false, line: line)
            return (name == "min" ? items.first : items.last) ?? .undefined(hint: "No aggregated item, sequence was empty.")
        case "sum":
            let attribute = args.value(0, "attribute")
            var total = args.value(1, "start") ?? .int(0)
            for item in try iterate(value, line: line) {
                let term = try attribute.map { try lookupPath(item, $0, line: line) } ?? item
                total = try JinjaOperators.apply(.add, total, term, line: line)
            }
            return total
        default:
            return nil
        }
    }

    /// Filters that look up attributes, apply filters or tests per item, or serialise. nil when `name` is not one of them.
    private func itemFilter(_ name: String, _ value: JinjaValue, _ args: Arguments, _ line: Int) throws -> JinjaValue? {
        switch name {
        case "attr":
            guard let attribute = args.value(0, "name") else { throw filterError(name, line, "needs an attribute name") }
            return try attributeValue(value, attribute.pythonString, line: line)
        case "map":
            return .list(try map(value, args, line: line))
        case "select", "reject", "selectattr", "rejectattr":
            return .list(try select(value, args, byAttribute: name.hasSuffix("attr"),
                                    keep: name.hasPrefix("select"), line: line))
        case "tojson":
            let indent = args.value(0, "indent")
            let separators = args.keywordValue("separators")
            let sortKeys = args.keywordValue("sort_keys")?.isTruthy ?? false
            return .string(try JinjaJSON.serialize(value, indent: indent, separators: separators,
                                                   sortKeys: sortKeys, line: line))
        default:
            return nil
        }
    }

    /// Python `len()`; Undefined has length 0.
    func length(of value: JinjaValue, line: Int) throws -> Int {
        switch value {
        case .string(let s): return s.unicodeScalars.count
        case .list(let l): return l.count
        case .dict(let d): return d.count
        case .undefined: return 0
        default: throw ChatTemplateError.runtime(line: line, reason: "object of type '\(value.typeName)' has no len()")
        }
    }

    /// `attribute="a.b"` lookups of map/sort/selectattr (dotted paths and integer indices allowed).
    func lookupPath(_ item: JinjaValue, _ path: JinjaValue, line: Int) throws -> JinjaValue {
        if let i = path.integer { return try element(item, .int(i), line: line) }
        var current = item
        for part in path.pythonString.split(separator: ".", omittingEmptySubsequences: false) {
            current = try attributeValue(current, String(part), line: line)
        }
        return current
    }

    /// Jinja's `environment.getattr`-style lookup that turns a missing key into Undefined.
    private func attributeValue(_ object: JinjaValue, _ name: String, line: Int) throws -> JinjaValue {
        if let i = Int(name), case .list = object { return try element(object, .int(i), line: line) }
        return try attribute(of: object, name, line: line)
    }

    private func map(_ value: JinjaValue, _ args: Arguments, line: Int) throws -> [JinjaValue] {
        let items = try iterate(value, line: line)
        if let attribute = args.keywordValue("attribute") {
            let fallback = args.keywordValue("default")
            return try items.map { item in
                let v = try lookupPath(item, attribute, line: line)
                if v.isUndefined, let fallback { return fallback }
                return v
            }
        }
        guard case .string(let filter)? = args.positional.first else {
            throw ChatTemplateError.runtime(line: line, reason: "map() needs a filter name or attribute=")
        }
        guard JinjaFilters.supported.contains(filter) else {
            throw ChatTemplateError.unsupported(line: line, construct: "filter '\(filter)'")
        }
        let rest = Arguments(positional: Array(args.positional.dropFirst()), keyword: args.keyword)
        return try items.map { try applyFilter(filter, to: $0, rest, line: line) }
    }

    private func select(_ value: JinjaValue, _ args: Arguments, byAttribute: Bool, keep: Bool,
                        line: Int) throws -> [JinjaValue] {
        var positional = args.positional
        var attribute: JinjaValue?
        if byAttribute {
            guard !positional.isEmpty else {
                throw ChatTemplateError.runtime(line: line, reason: "selectattr/rejectattr need an attribute name")
            }
            attribute = positional.removeFirst()
        }
        var test: String?
        if !positional.isEmpty {
            test = positional.removeFirst().pythonString
            if let test, !JinjaPredicates.supported.contains(test) {
                throw ChatTemplateError.unsupported(line: line, construct: "test '\(test)'")
            }
        }
        let testArgs = Arguments(positional: positional, keyword: [])
        return try iterate(value, line: line).filter { item in
            let subject = try attribute.map { try lookupPath(item, $0, line: line) } ?? item
            let passed = try test.map { try applyTest($0, to: subject, testArgs, line: line) } ?? subject.isTruthy
            return passed == keep
        }
    }

    private func sorted(_ items: [JinjaValue], key: (JinjaValue) throws -> JinjaValue, caseSensitive: Bool,
                        reverse: Bool, line: Int) throws -> [JinjaValue] {
        let keyed = try items.map { item -> (JinjaValue, JinjaValue) in
            var k = try key(item)
            if !caseSensitive, case .string(let s) = k { k = .string(s.lowercased()) }
            return (k, item)
        }
        // Stable insertion sort keeps Python's stable-sort order and lets comparison errors propagate.
        var result: [(JinjaValue, JinjaValue)] = []
        for entry in keyed {
            var index = result.count
            while index > 0 {
                let order = try JinjaOperators.compare(entry.0, result[index - 1].0, op: "<", line: line)
                if reverse ? order <= 0 : order >= 0 { break }
                index -= 1
            }
            result.insert(entry, at: index)
        }
        return result.map(\.1)
    }

    private func round(_ value: JinjaValue, _ args: Arguments, line: Int) throws -> JinjaValue {
        let precision = args.value(0, "precision")?.integer ?? 0
        let method = args.value(1, "method")?.pythonString ?? "common"
        guard let x = value.number else {
            throw ChatTemplateError.runtime(line: line, reason: "filter 'round': needs a number, not '\(value.typeName)'")
        }
        var scale = 1.0
        for _ in 0..<Swift.min(Swift.abs(precision), 308) { scale *= 10 }
        let scaled = precision >= 0 ? x * scale : x / scale
        let rule: FloatingPointRoundingRule
        switch method {
        case "common": rule = .toNearestOrEven
        case "ceil": rule = .up
        case "floor": rule = .down
        default: throw ChatTemplateError.runtime(line: line, reason: "filter 'round': method must be common, ceil or floor")
        }
        let rounded = scaled.rounded(rule)
        if method == "common", value.integer != nil { return value }
        return .double(precision >= 0 ? rounded / scale : rounded * scale)
    }

    /// Jinja's `indent(width=4, first=False, blank=False)`.
    private func indent(_ text: String, _ args: Arguments) -> String {
        let width = args.value(0, "width") ?? .int(4)
        let indentation: String
        if case .string(let s) = width { indentation = s } else { indentation = String(repeating: " ", count: Swift.max(0, width.integer ?? 4)) }
        let first = args.value(1, "first")?.isTruthy ?? false
        let blank = args.value(2, "blank")?.isTruthy ?? false
        let lines = PythonString.splitLines(text + "\n")
        var result: String
        if blank {
            result = lines.joined(separator: "\n" + indentation)
        } else {
            result = lines.first ?? ""
            let rest = lines.dropFirst()
            if !rest.isEmpty {
                result += "\n" + rest.map { $0.isEmpty ? $0 : indentation + $0 }.joined(separator: "\n")
            }
        }
        return first ? indentation + result : result
    }
}
