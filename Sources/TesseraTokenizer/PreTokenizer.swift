// Pre-tokenization: a text segment becomes the words that BPE merges independently.

/// A word in progress. `atStart`: it begins at offset 0 of the input (for the "first" prepend scheme).
struct TextPiece {
    var scalars: [Unicode.Scalar]
    var atStart: Bool
}

extension PreTokenizerStep {
    func apply(_ pieces: [TextPiece]) -> [TextPiece] {
        var out: [TextPiece] = []
        out.reserveCapacity(pieces.count)
        for piece in pieces { apply(piece, into: &out) }
        return out
    }

    private func apply(_ piece: TextPiece, into out: inout [TextPiece]) {
        switch self {
        case .metaspace(let rep, let prepend, let split):
            var s = piece.scalars.map { $0 == " " ? rep : $0 }
            let wantsPrefix = prepend == .always || (prepend == .first && piece.atStart)
            if wantsPrefix && s.first != rep { s.insert(rep, at: 0) }
            if !split { out.append(TextPiece(scalars: s, atStart: piece.atStart)); return }
            var start = 0
            for i in 1..<max(s.count, 1) where s[i] == rep {
                out.append(TextPiece(scalars: Array(s[start..<i]), atStart: piece.atStart && start == 0))
                start = i
            }
            if start < s.count { out.append(TextPiece(scalars: Array(s[start...]), atStart: piece.atStart && start == 0)) }

        case .byteLevel(let addPrefixSpace, let useRegex):
            var s = piece.scalars
            if addPrefixSpace && s.first != " " { s.insert(" ", at: 0) }
            let ranges = useRegex ? SplitPattern.gpt2.matches(s[...]) : [0..<s.count]
            for r in ranges {
                out.append(TextPiece(scalars: ByteLevelMapping.encode(s[r]), atStart: piece.atStart && r.lowerBound == 0))
            }

        case .split(let splitter, let behavior, let invert):
            let s = piece.scalars
            var matches: [Range<Int>]
            switch splitter {
            case .known(let p): matches = p.matches(s[...])
            case .regex(let r): matches = r.matches(s[...])
            case .literal(let lit): matches = PreTokenizerStep.literalMatches(lit, in: s)
            }
            if invert { matches = PreTokenizerStep.gaps(between: matches, count: s.count) }
            for r in PreTokenizerStep.pieces(matches: matches, count: s.count, behavior: behavior) where !r.isEmpty {
                out.append(TextPiece(scalars: Array(s[r]), atStart: piece.atStart && r.lowerBound == 0))
            }

        case .digits(let individual):
            let s = piece.scalars
            var matches: [Range<Int>] = []
            var i = 0
            while i < s.count {
                guard scalarClass(s[i]) == .number else { i += 1; continue }
                var j = i + 1
                if !individual { while j < s.count && scalarClass(s[j]) == .number { j += 1 } }
                matches.append(i..<j); i = j
            }
            for r in PreTokenizerStep.pieces(matches: matches, count: s.count, behavior: .isolated) where !r.isEmpty {
                out.append(TextPiece(scalars: Array(s[r]), atStart: piece.atStart && r.lowerBound == 0))
            }
        }
    }

    private static func literalMatches(_ lit: [Unicode.Scalar], in s: [Unicode.Scalar]) -> [Range<Int>] {
        guard !lit.isEmpty, s.count >= lit.count else { return [] }
        var out: [Range<Int>] = []
        var i = 0
        while i + lit.count <= s.count {
            if s[i..<(i + lit.count)].elementsEqual(lit) { out.append(i..<(i + lit.count)); i += lit.count } else { i += 1 }
        }
        return out
    }

    private static func gaps(between matches: [Range<Int>], count: Int) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var last = 0
        for m in matches {
            if m.lowerBound > last { out.append(last..<m.lowerBound) }
            last = m.upperBound
        }
        if last < count { out.append(last..<count) }
        return out
    }

    /// Words from sorted, disjoint `matches` over `0..<count` (the gaps between them are words too).
    private static func pieces(matches: [Range<Int>], count: Int, behavior: SplitBehavior) -> [Range<Int>] {
        var out: [Range<Int>] = []
        var last = 0
        var pendingStart: Int?  // mergedWithNext: start of the match waiting for the following gap
        for m in matches {
            let gap = last..<m.lowerBound
            switch behavior {
            case .isolated:
                out.append(gap); out.append(m)
            case .removed:
                out.append(gap)
            case .mergedWithPrevious:
                out.append(gap.lowerBound..<m.upperBound)
            case .mergedWithNext:
                out.append((pendingStart ?? gap.lowerBound)..<gap.upperBound)
                pendingStart = m.lowerBound
            }
            last = m.upperBound
        }
        out.append((pendingStart ?? last)..<count)
        return out
    }
}
