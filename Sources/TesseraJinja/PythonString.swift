import Foundation

/// Python `str` operations as chat templates use them, working on Unicode scalars (Python code points).
enum PythonString {
    /// `str.strip / lstrip / rstrip(chars)`; `chars == nil` strips whitespace.
    static func strip(_ s: String, _ chars: String?, leading: Bool, trailing: Bool) -> String {
        let set = chars.map { Set($0.unicodeScalars) }
        func strippable(_ c: Unicode.Scalar) -> Bool { set?.contains(c) ?? PythonFormat.isSpace(c) }
        var scalars = Substring(s).unicodeScalars
        if leading { while let f = scalars.first, strippable(f) { scalars.removeFirst() } }
        if trailing { while let l = scalars.last, strippable(l) { scalars.removeLast() } }
        return String(scalars)
    }

    /// `str.lower()`, including Greek final sigma (Σ at the end of a word becomes ς).
    static func lower(_ s: String) -> String {
        guard s.unicodeScalars.contains("\u{03A3}") else { return s.lowercased() }
        let scalars = Array(s.unicodeScalars)
        func cased(from start: Int, step: Int) -> Bool {
            var i = start
            while i >= 0 && i < scalars.count {
                let p = scalars[i].properties
                if !p.isCaseIgnorable { return p.isCased }
                i += step
            }
            return false
        }
        var out = ""
        for (i, scalar) in scalars.enumerated() {
            if scalar == "\u{03A3}" && cased(from: i - 1, step: -1) && !cased(from: i + 1, step: 1) {
                out += "\u{03C2}"
            } else {
                out += String(scalar).lowercased()
            }
        }
        return out
    }

    /// `str.capitalize()`: first character title-cased, the rest lower-cased.
    static func capitalize(_ s: String) -> String {
        guard let first = s.unicodeScalars.first else { return s }
        return first.properties.titlecaseMapping + lower(String(s.unicodeScalars.dropFirst()))
    }

    /// `str.title()`: a cased character after an uncased one is title-cased, other cased ones lower-cased.
    static func title(_ s: String) -> String {
        var out = ""
        var previousCased = false
        for scalar in s.unicodeScalars {
            out += previousCased ? scalar.properties.lowercaseMapping : scalar.properties.titlecaseMapping
            previousCased = scalar.properties.isCased
        }
        return out
    }

    /// Jinja's `wordcount`: the number of `\w+` runs (letters, digits, underscore).
    static func wordCount(_ s: String) -> Int {
        var count = 0
        var inWord = false
        for scalar in s.unicodeScalars {
            let p = scalar.properties
            let isWord = p.isAlphabetic || p.numericType != nil || scalar == "_"
                || p.generalCategory == .nonspacingMark || p.generalCategory == .spacingMark
            if isWord && !inWord { count += 1 }
            inWord = isWord
        }
        return count
    }

    /// Jinja's `title` filter: words split at whitespace, '-', and opening brackets; each word capitalized.
    static func jinjaTitle(_ s: String) -> String {
        var out = ""
        var word = ""
        func flush() {
            if !word.isEmpty { out += capitalizeFirstOnly(word) }
            word = ""
        }
        for scalar in s.unicodeScalars {
            if PythonFormat.isSpace(scalar) || "-({[<".unicodeScalars.contains(scalar) {
                flush()
                out.unicodeScalars.append(scalar)
            } else {
                word.unicodeScalars.append(scalar)
            }
        }
        flush()
        return out
    }

    private static func capitalizeFirstOnly(_ word: String) -> String {
        guard let first = word.unicodeScalars.first else { return word }
        return String(first).uppercased() + lower(String(word.unicodeScalars.dropFirst()))
    }

    /// `str.split(sep=None, maxsplit=-1)`.
    static func split(_ s: String, separator: String?, maxSplit: Int) -> [String] {
        let scalars = Array(s.unicodeScalars)
        var parts: [String] = []
        if let separator {
            let sep = Array(separator.unicodeScalars)
            guard !sep.isEmpty else { return [s] }
            var start = 0
            var i = 0
            while i + sep.count <= scalars.count && (maxSplit < 0 || parts.count < maxSplit) {
                if Array(scalars[i..<(i + sep.count)]) == sep {
                    parts.append(string(scalars[start..<i]))
                    i += sep.count
                    start = i
                } else {
                    i += 1
                }
            }
            parts.append(string(scalars[start...]))
            return parts
        }
        // Runs of whitespace separate; no empty strings at the ends.
        var i = 0
        while i < scalars.count {
            while i < scalars.count && PythonFormat.isSpace(scalars[i]) { i += 1 }
            guard i < scalars.count else { break }
            if maxSplit >= 0 && parts.count == maxSplit {
                var end = scalars.count
                while end > i && PythonFormat.isSpace(scalars[end - 1]) { end -= 1 }
                parts.append(string(scalars[i..<end]))
                break
            }
            let start = i
            while i < scalars.count && !PythonFormat.isSpace(scalars[i]) { i += 1 }
            parts.append(string(scalars[start..<i]))
        }
        return parts
    }

    /// `str.rsplit(sep, maxsplit)`.
    static func rsplit(_ s: String, separator: String?, maxSplit: Int) -> [String] {
        guard maxSplit >= 0 else { return split(s, separator: separator, maxSplit: -1) }
        let reversed = String(String.UnicodeScalarView(s.unicodeScalars.reversed()))
        let reversedSeparator = separator.map { String(String.UnicodeScalarView($0.unicodeScalars.reversed())) }
        return split(reversed, separator: reversedSeparator, maxSplit: maxSplit)
            .map { String(String.UnicodeScalarView($0.unicodeScalars.reversed())) }.reversed()
    }

    /// `str.splitlines()` (line breaks: \n, \r, \r\n, \v, \f, \x1c-\x1e, \x85, \u2028, \u2029).
    static func splitLines(_ s: String) -> [String] {
        let scalars = Array(s.unicodeScalars)
        var lines: [String] = []
        var start = 0
        var i = 0
        while i < scalars.count {
            let v = scalars[i].value
            if [0x0A, 0x0B, 0x0C, 0x0D, 0x1C, 0x1D, 0x1E, 0x85, 0x2028, 0x2029].contains(v) {
                lines.append(string(scalars[start..<i]))
                if v == 0x0D && i + 1 < scalars.count && scalars[i + 1] == "\n" { i += 1 }
                start = i + 1
            }
            i += 1
        }
        if start < scalars.count { lines.append(string(scalars[start...])) }
        return lines
    }

    /// `str.replace(old, new, count)`.
    static func replace(_ s: String, _ old: String, _ new: String, count: Int) -> String {
        if old.isEmpty {
            // Python inserts `new` between every character (and at both ends).
            var out = new
            var n = 1
            for scalar in s.unicodeScalars {
                out.unicodeScalars.append(scalar)
                if count < 0 || n < count { out += new; n += 1 }
            }
            return out
        }
        let parts = split(s, separator: old, maxSplit: count)
        return parts.joined(separator: new)
    }

    /// `str.find(sub)` as a code point offset, or -1.
    static func find(_ s: String, _ sub: String, last: Bool) -> Int {
        let hay = Array(s.unicodeScalars), needle = Array(sub.unicodeScalars)
        guard needle.count <= hay.count else { return -1 }
        let starts = Array(0...(hay.count - needle.count))
        for i in (last ? starts.reversed() : starts) where Array(hay[i..<(i + needle.count)]) == needle {
            return i
        }
        return -1
    }

    /// Jinja's `|int`: ints, truncated floats, numeric strings (`int(s, base)`, then `int(float(s))`).
    static func toInt(_ value: JinjaValue, base: Int) -> JinjaValue? {
        switch value {
        case .int, .bool: return value.integer.map { .int($0) }
        case .double(let d):
            guard d.isFinite, Swift.abs(d) < 9.2e18 else { return nil }
            return .int(Int(d))
        case .string(let raw):
            var s = strip(raw, nil, leading: true, trailing: true).replacingOccurrences(of: "_", with: "")
            var negative = false
            if s.hasPrefix("-") || s.hasPrefix("+") {
                negative = s.hasPrefix("-")
                s.removeFirst()
            }
            var radix = base
            let lower = s.lowercased()
            for (prefix, r) in [("0x", 16), ("0o", 8), ("0b", 2)] where lower.hasPrefix(prefix) && (base == r || base == 0) {
                s.removeFirst(2)
                radix = r
            }
            if radix >= 2 && radix <= 36, let i = Int(s, radix: radix) { return .int(negative ? -i : i) }
            if let d = Double(raw.trimmingSpaces), d.isFinite, Swift.abs(d) < 9.2e18 { return .int(Int(d)) }
            return nil
        default:
            return nil
        }
    }

    /// HTML escaping as Jinja's `escape` filter does it.
    static func htmlEscape(_ s: String) -> String {
        var out = ""
        for ch in s {
            switch ch {
            case "&": out += "&amp;"
            case "<": out += "&lt;"
            case ">": out += "&gt;"
            case "\"": out += "&#34;"
            case "'": out += "&#39;"
            default: out.append(ch)
            }
        }
        return out
    }

    private static func string<C: Collection>(_ scalars: C) -> String where C.Element == Unicode.Scalar {
        var view = String.UnicodeScalarView()
        view.append(contentsOf: scalars)
        return String(view)
    }
}

private extension String {
    var trimmingSpaces: String { PythonString.strip(self, nil, leading: true, trailing: true) }
}
