// Finds added / special tokens (e.g. "<|im_start|>") in the input text before anything else touches it:
// leftmost match first, the longest token at a position.

/// A stretch of input: plain text to tokenize, or an added token's id.
enum InputSegment {
    case text([Unicode.Scalar], atStart: Bool)
    case token(Int)
}

struct AddedTokenMatcher: Sendable {
    private struct Entry: Sendable {
        var scalars: [Unicode.Scalar]
        var id: Int
        var lstrip: Bool
        var rstrip: Bool
    }
    /// first scalar -> tokens starting with it, longest first
    private var byFirst: [UInt32: [Entry]] = [:]

    init(_ tokens: [AddedToken]) {
        for t in tokens {
            let s = Array(t.content.unicodeScalars)
            guard let first = s.first else { continue }
            byFirst[first.value, default: []].append(Entry(scalars: s, id: t.id, lstrip: t.lstrip, rstrip: t.rstrip))
        }
        for k in byFirst.keys { byFirst[k]?.sort { $0.scalars.count > $1.scalars.count } }
    }

    func segments(_ text: String) -> [InputSegment] {
        let s = Array(text.unicodeScalars)
        guard !byFirst.isEmpty else { return s.isEmpty ? [] : [.text(s, atStart: true)] }
        var out: [InputSegment] = []
        var textStart = 0, i = 0
        while i < s.count {
            guard let candidates = byFirst[s[i].value],
                  let hit = candidates.first(where: { matches($0.scalars, s, at: i) }) else { i += 1; continue }
            var textEnd = i
            if hit.lstrip { while textEnd > textStart && s[textEnd - 1].properties.isWhitespace { textEnd -= 1 } }
            if textEnd > textStart { out.append(.text(Array(s[textStart..<textEnd]), atStart: textStart == 0)) }
            out.append(.token(hit.id))
            i += hit.scalars.count
            if hit.rstrip { while i < s.count && s[i].properties.isWhitespace { i += 1 } }
            textStart = i
        }
        if textStart < s.count { out.append(.text(Array(s[textStart...]), atStart: textStart == 0)) }
        return out
    }

    @inline(__always)
    private func matches(_ token: [Unicode.Scalar], _ s: [Unicode.Scalar], at i: Int) -> Bool {
        guard i + token.count <= s.count else { return false }
        for k in 1..<token.count where s[i + k] != token[k] { return false }
        return true
    }
}
