// Incremental decoding for generation: text is released only once its UTF-8 sequences are complete.

/// Feed ids one at a time; each call returns the text completed so far (possibly empty). A multi-byte character
/// split across tokens (byte-fallback pieces, byte-level pieces) is held back until its last byte arrives.
public struct StreamingDecoder: Sendable {
    private let tokenizer: Tokenizer
    private let skipSpecialTokens: Bool
    /// bytes of an incomplete trailing UTF-8 sequence (at most 3)
    private var pending: [UInt8] = []
    private var started = false

    init(tokenizer: Tokenizer, skipSpecialTokens: Bool) {
        self.tokenizer = tokenizer
        self.skipSpecialTokens = skipSpecialTokens
    }

    /// Adds one id; returns the newly completed text.
    public mutating func feed(_ id: Int) -> String {
        var scalars: [Unicode.Scalar] = []
        feed(id, into: &scalars)
        var text = ""
        text.unicodeScalars.append(contentsOf: scalars)
        return text
    }

    /// Adds one id and appends the newly completed characters to `scalars` (no allocation once `scalars` and the
    /// decoder's own buffer have grown to a token's length).
    public mutating func feed(_ id: Int, into scalars: inout [Unicode.Scalar]) {
        if pending.capacity < 64 { pending.reserveCapacity(64) }
        tokenizer.appendBytes(of: id, skipSpecialTokens: skipSpecialTokens, to: &pending)
        let cut = completePrefixLength(pending)
        guard cut > 0 else { return }
        var skip = 0
        if !started {
            started = true
            if tokenizer.spec.stripLeadingSpace && pending.first == 0x20 { skip = 1 }
        }
        Self.decode(pending[skip..<cut], into: &scalars)
        pending.removeFirst(cut)
    }

    /// Appends the scalars of complete UTF-8 `bytes` (U+FFFD for a malformed sequence).
    private static func decode(_ bytes: ArraySlice<UInt8>, into scalars: inout [Unicode.Scalar]) {
        var iterator = bytes.makeIterator(), utf8 = UTF8()
        while true {
            switch utf8.decode(&iterator) {
            case .scalarValue(let scalar): scalars.append(scalar)
            case .error: scalars.append("\u{FFFD}")
            case .emptyInput: return
            }
        }
    }

    /// Flushes what is left: an incomplete sequence at the very end becomes U+FFFD.
    public mutating func finish() -> String {
        defer { pending.removeAll() }
        if !started && tokenizer.spec.stripLeadingSpace && pending.first == 0x20 { pending.removeFirst() }
        started = true
        return String(decoding: pending, as: UTF8.self)
    }

    /// Length of the longest prefix of `bytes` that does not end inside an incomplete UTF-8 sequence.
    private func completePrefixLength(_ bytes: [UInt8]) -> Int {
        let n = bytes.count
        var i = n - 1
        while i >= 0 && i >= n - 4 {
            let b = bytes[i]
            if b & 0xC0 != 0x80 {  // a lead byte (or ASCII)
                return n - i < utf8SequenceLength(lead: b) ? i : n
            }
            i -= 1
        }
        return n
    }
}
