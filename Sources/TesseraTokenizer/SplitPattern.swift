// The pre-tokenizer split regexes of byte-level BPE models, as hand-written scanners over Unicode scalars.
// Each scanner returns, at a position, the end of the match the regex (leftmost alternative first) would make.

/// A known pre-tokenizer split regex. `split` gives exactly the matches of `regex` (Unicode-scalar semantics).
public enum SplitPattern: String, Sendable, CaseIterable {
    /// GPT-2 (also the ByteLevel pre-tokenizer's built-in regex; SmolLM, StarCoder after digit splitting).
    case gpt2
    /// Llama 3: case-insensitive contractions, numbers in groups of up to three.
    case llama3
    /// Qwen2: as Llama 3 but every digit on its own.
    case qwen2

    /// The regex this scanner implements, as written in tokenizer.json files.
    public var regex: String {
        switch self {
        case .gpt2:
            return #"'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+"#
        case .llama3:
            return #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,3}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        case .qwen2:
            return #"(?i:'s|'t|'re|'ve|'m|'ll|'d)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+"#
        }
    }

    /// The pattern whose regex is exactly `regex`, if it is one of the known ones.
    public init?(regex: String) {
        guard let match = SplitPattern.allCases.first(where: { $0.regex == regex }) else { return nil }
        self = match
    }

    /// The pieces of `text` this pattern matches (they cover the whole text).
    public func split(_ text: String) -> [String] {
        let scalars = Array(text.unicodeScalars)
        return matches(scalars[...]).map { String(String.UnicodeScalarView(scalars[$0])) }
    }

    /// Match ranges (indices of `s`), in order, covering all of `s`.
    func matches(_ s: ArraySlice<Unicode.Scalar>) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var i = s.startIndex
        while i < s.endIndex {
            let end: Int
            switch self {
            case .gpt2: end = SplitPattern.gpt2Match(s, at: i)
            case .llama3: end = SplitPattern.llamaMatch(s, at: i, maxDigits: 3)
            case .qwen2: end = SplitPattern.llamaMatch(s, at: i, maxDigits: 1)
            }
            out.append(i..<end)
            i = end
        }
        return out
    }

    // MARK: scanners

    @inline(__always)
    private static func run(_ s: ArraySlice<Unicode.Scalar>, from i: Int, _ cls: ScalarClass) -> Int {
        var j = i
        while j < s.endIndex && scalarClass(s[j]) == cls { j += 1 }
        return j
    }

    /// `\s+(?!\S)|\s+` at a whitespace scalar.
    @inline(__always)
    private static func whitespaceMatch(_ s: ArraySlice<Unicode.Scalar>, at i: Int) -> Int {
        let k = run(s, from: i, .space)
        if k == s.endIndex || k - i < 2 { return k }
        return k - 1  // leave the last whitespace to the word that follows
    }

    /// Length of a contraction ('s 't 're 've 'm 'll 'd) at `i`, or 0.
    @inline(__always)
    private static func contraction(_ s: ArraySlice<Unicode.Scalar>, at i: Int, caseInsensitive: Bool) -> Int {
        guard s[i] == "'", i + 1 < s.endIndex else { return 0 }
        func lower(_ c: Unicode.Scalar) -> Unicode.Scalar {
            guard caseInsensitive else { return c }
            if c.value >= 0x41 && c.value <= 0x5A { return Unicode.Scalar(UInt8(c.value + 0x20)) }
            if c == "\u{17F}" { return "s" }  // LATIN SMALL LETTER LONG S folds to s
            return c
        }
        let a = lower(s[i + 1])
        if a == "s" || a == "t" || a == "m" || a == "d" { return 2 }
        guard i + 2 < s.endIndex else { return 0 }
        let b = lower(s[i + 2])
        if (a == "r" && b == "e") || (a == "v" && b == "e") || (a == "l" && b == "l") { return 3 }
        return 0
    }

    /// GPT-2: `'s|'t|'re|'ve|'m|'ll|'d| ?\p{L}+| ?\p{N}+| ?[^\s\p{L}\p{N}]+|\s+(?!\S)|\s+`
    private static func gpt2Match(_ s: ArraySlice<Unicode.Scalar>, at i: Int) -> Int {
        let c = contraction(s, at: i, caseInsensitive: false)
        if c > 0 { return i + c }
        let cls = scalarClass(s[i])
        if s[i] == " " && i + 1 < s.endIndex {
            let next = scalarClass(s[i + 1])
            if next != .space { return run(s, from: i + 1, next) }
        }
        if cls == .space { return whitespaceMatch(s, at: i) }
        return run(s, from: i, cls)
    }

    /// Llama 3 / Qwen2: `(?i:'s|…)|[^\r\n\p{L}\p{N}]?\p{L}+|\p{N}{1,k}| ?[^\s\p{L}\p{N}]+[\r\n]*|\s*[\r\n]+|\s+(?!\S)|\s+`
    private static func llamaMatch(_ s: ArraySlice<Unicode.Scalar>, at i: Int, maxDigits: Int) -> Int {
        let c = contraction(s, at: i, caseInsensitive: true)
        if c > 0 { return i + c }
        let cls = scalarClass(s[i])
        let isNewline = s[i] == "\r" || s[i] == "\n"
        // [^\r\n\p{L}\p{N}]?\p{L}+
        if cls == .letter { return run(s, from: i, .letter) }
        if !isNewline && cls != .number && i + 1 < s.endIndex && scalarClass(s[i + 1]) == .letter {
            return run(s, from: i + 1, .letter)
        }
        // \p{N}{1,k}
        if cls == .number { return min(run(s, from: i, .number), i + maxDigits) }
        // ` ?[^\s\p{L}\p{N}]+[\r\n]*`
        var start = -1
        if cls == .other { start = i } else if s[i] == " " && i + 1 < s.endIndex && scalarClass(s[i + 1]) == .other { start = i + 1 }
        if start >= 0 {
            var j = run(s, from: start, .other)
            while j < s.endIndex && (s[j] == "\r" || s[j] == "\n") { j += 1 }
            return j
        }
        // \s*[\r\n]+ : through the last newline of the whitespace run
        let k = run(s, from: i, .space)
        var j = k - 1
        while j >= i && !(s[j] == "\r" || s[j] == "\n") { j -= 1 }
        if j >= i { return j + 1 }
        return whitespaceMatch(s, at: i)
    }
}
