/// Python methods callable from templates: `s.strip()`, `s.startswith(p)`, `s.split(sep)`, `d.items()`,
/// `d.get(k, default)`, ... Mutating methods (`append`, `update`, `pop`) are refused, as in the immutable
/// sandbox transformers renders with.
extension JinjaInterpreter {
    func callMethod(_ name: String, on object: JinjaValue, _ args: Arguments, line: Int) throws -> JinjaValue {
        switch object {
        case .string(let s): return try stringMethod(name, s, args, line: line)
        case .dict(let d): return try dictMethod(name, d, args, line: line)
        case .list(let l): return try listMethod(name, l, args, line: line)
        default:
            throw ChatTemplateError.unsupported(line: line, construct: "method '\(object.typeName).\(name)'")
        }
    }

    private func stringMethod(_ name: String, _ s: String, _ args: Arguments, line: Int) throws -> JinjaValue {
        func text(_ i: Int, _ key: String) -> String? {
            guard let v = args.value(i, key), !v.isNone else { return nil }
            return v.pythonString
        }
        func affixes() throws -> [String] {
            switch args.value(0, "prefix") ?? args.value(0, "suffix") {
            case .string(let p)?: return [p]
            case .list(let items)?: return items.map(\.pythonString)
            default: throw ChatTemplateError.runtime(line: line, reason: "str.\(name)() needs a string or a tuple of strings")
            }
        }
        switch name {
        case "strip": return .string(PythonString.strip(s, text(0, "chars"), leading: true, trailing: true))
        case "lstrip": return .string(PythonString.strip(s, text(0, "chars"), leading: true, trailing: false))
        case "rstrip": return .string(PythonString.strip(s, text(0, "chars"), leading: false, trailing: true))
        case "upper": return .string(s.uppercased())
        case "lower": return .string(PythonString.lower(s))
        case "title": return .string(PythonString.title(s))
        case "capitalize": return .string(PythonString.capitalize(s))
        case "startswith": return .bool(try affixes().contains { s.unicodeScalars.starts(with: $0.unicodeScalars) })
        case "endswith":
            return .bool(try affixes().contains { s.unicodeScalars.reversed().starts(with: $0.unicodeScalars.reversed()) })
        case "split", "rsplit":
            let separator = text(0, "sep")
            if separator == "" { throw ChatTemplateError.runtime(line: line, reason: "str.\(name)(): empty separator") }
            let maxSplit = args.value(1, "maxsplit")?.integer ?? -1
            let parts = name == "split" ? PythonString.split(s, separator: separator, maxSplit: maxSplit)
                                        : PythonString.rsplit(s, separator: separator, maxSplit: maxSplit)
            return .list(parts.map { .string($0) })
        case "splitlines": return .list(PythonString.splitLines(s).map { .string($0) })
        case "replace":
            guard let old = text(0, "old"), let new = text(1, "new") else {
                throw ChatTemplateError.runtime(line: line, reason: "str.replace() needs old and new")
            }
            return .string(PythonString.replace(s, old, new, count: args.value(2, "count")?.integer ?? -1))
        case "find", "rfind", "index", "rindex":
            guard let sub = text(0, "sub") else { throw ChatTemplateError.runtime(line: line, reason: "str.\(name)() needs a string") }
            let found = PythonString.find(s, sub, last: name.hasPrefix("r"))
            if found < 0 && name.hasSuffix("index") { throw ChatTemplateError.runtime(line: line, reason: "substring not found") }
            return .int(found)
        case "count":
            guard let sub = text(0, "sub") else { throw ChatTemplateError.runtime(line: line, reason: "str.count() needs a string") }
            if sub.isEmpty { return .int(s.unicodeScalars.count + 1) }
            return .int(PythonString.split(s, separator: sub, maxSplit: -1).count - 1)
        case "join":
            guard let items = args.value(0, "iterable") else {
                throw ChatTemplateError.runtime(line: line, reason: "str.join() needs an iterable")
            }
            return .string(try iterate(items, line: line).map(\.pythonString).joined(separator: s))
        case "removeprefix", "removesuffix":
            guard let affix = text(0, "affix"), !affix.isEmpty else { return .string(s) }
            let scalars = Array(s.unicodeScalars), a = Array(affix.unicodeScalars)
            if name == "removeprefix", scalars.starts(with: a) { return .string(String(String.UnicodeScalarView(scalars.dropFirst(a.count)))) }
            if name == "removesuffix", scalars.reversed().starts(with: a.reversed()) {
                return .string(String(String.UnicodeScalarView(scalars.dropLast(a.count))))
            }
            return .string(s)
        case "isdigit", "isnumeric", "isdecimal":
            return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.numericType != nil })
        case "isalpha": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic })
        case "isalnum":
            return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy { $0.properties.isAlphabetic || $0.properties.numericType != nil })
        case "isspace": return .bool(!s.isEmpty && s.unicodeScalars.allSatisfy(PythonFormat.isSpace))
        case "islower": return .bool(s == PythonString.lower(s) && s != s.uppercased())
        case "isupper": return .bool(s == s.uppercased() && s != s.lowercased())
        default:
            throw ChatTemplateError.unsupported(line: line, construct: "method 'str.\(name)'")
        }
    }

    private func dictMethod(_ name: String, _ d: JinjaDict, _ args: Arguments, line: Int) throws -> JinjaValue {
        switch name {
        case "items": return .list(d.pairs.map { .list([.string($0.0), $0.1]) })
        case "keys": return .list(d.keys.map { .string($0) })
        case "values": return .list(d.pairs.map(\.1))
        case "get":
            guard let key = args.value(0, "key") else { throw ChatTemplateError.runtime(line: line, reason: "dict.get() needs a key") }
            let fallback = args.value(1, "default") ?? .none
            guard case .string(let k) = key else { return fallback }
            return d[k] ?? fallback
        default:
            throw ChatTemplateError.unsupported(line: line, construct: "method 'dict.\(name)'")
        }
    }

    private func listMethod(_ name: String, _ l: [JinjaValue], _ args: Arguments, line: Int) throws -> JinjaValue {
        switch name {
        case "count":
            guard let x = args.value(0, "value") else { throw ChatTemplateError.runtime(line: line, reason: "list.count() needs a value") }
            return .int(l.filter { $0 == x }.count)
        case "index":
            guard let x = args.value(0, "value") else { throw ChatTemplateError.runtime(line: line, reason: "list.index() needs a value") }
            guard let i = l.firstIndex(of: x) else {
                throw ChatTemplateError.runtime(line: line, reason: "\(x.pythonRepr) is not in list")
            }
            return .int(i)
        default:
            throw ChatTemplateError.unsupported(line: line, construct: "method 'list.\(name)'")
        }
    }
}
