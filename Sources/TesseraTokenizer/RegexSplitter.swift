// Fallback for split regexes that have no hand-written scanner: Swift Regex with Unicode-scalar semantics.

/// A compiled split regex. Immutable after init, so sharing it between threads is safe.
final class RegexSplitter: @unchecked Sendable {
    let source: String
    private let regex: Regex<AnyRegexOutput>

    init(_ source: String) throws {
        self.source = source
        self.regex = try Regex(source).matchingSemantics(.unicodeScalar)
    }

    /// Match ranges as scalar offsets into `scalars`.
    func matches(_ scalars: ArraySlice<Unicode.Scalar>) -> [Range<Int>] {
        let text = String(String.UnicodeScalarView(scalars))
        let view = text.unicodeScalars
        var out: [Range<Int>] = []
        var offset = scalars.startIndex, index = view.startIndex
        for m in text.matches(of: regex) where m.range.lowerBound < m.range.upperBound {
            offset += view.distance(from: index, to: m.range.lowerBound)
            let length = view.distance(from: m.range.lowerBound, to: m.range.upperBound)
            out.append(offset..<(offset + length))
            offset += length
            index = m.range.upperBound
        }
        return out
    }
}
