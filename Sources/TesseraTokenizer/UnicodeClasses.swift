// Character classes of the pre-tokenizer regexes (\p{L}, \p{N}, \s), with an ASCII fast path, and UTF-8 helpers.

enum ScalarClass: UInt8 { case letter, number, space, other }

@inline(__always)
func scalarClass(_ s: Unicode.Scalar) -> ScalarClass {
    let v = s.value
    if v < 0x80 {
        if (v >= 0x61 && v <= 0x7A) || (v >= 0x41 && v <= 0x5A) { return .letter }
        if v >= 0x30 && v <= 0x39 { return .number }
        if v == 0x20 || (v >= 0x09 && v <= 0x0D) { return .space }
        return .other
    }
    if s.properties.isWhitespace { return .space }
    switch s.properties.generalCategory {
    case .uppercaseLetter, .lowercaseLetter, .titlecaseLetter, .modifierLetter, .otherLetter: return .letter
    case .decimalNumber, .letterNumber, .otherNumber: return .number
    default: return .other
    }
}

/// Calls `body` with each UTF-8 byte of `s`.
@inline(__always)
func appendUTF8(_ s: Unicode.Scalar, _ body: (UInt8) -> Void) {
    let v = s.value
    switch v {
    case 0..<0x80:
        body(UInt8(v))
    case 0x80..<0x800:
        body(UInt8(0xC0 | (v >> 6))); body(UInt8(0x80 | (v & 0x3F)))
    case 0x800..<0x10000:
        body(UInt8(0xE0 | (v >> 12))); body(UInt8(0x80 | ((v >> 6) & 0x3F))); body(UInt8(0x80 | (v & 0x3F)))
    default:
        body(UInt8(0xF0 | (v >> 18))); body(UInt8(0x80 | ((v >> 12) & 0x3F)))
        body(UInt8(0x80 | ((v >> 6) & 0x3F))); body(UInt8(0x80 | (v & 0x3F)))
    }
}

/// Length of the UTF-8 sequence a lead byte announces (1 for ASCII and for bytes that cannot start one).
@inline(__always)
func utf8SequenceLength(lead b: UInt8) -> Int {
    switch b {
    case 0xC2...0xDF: return 2
    case 0xE0...0xEF: return 3
    case 0xF0...0xF4: return 4
    default: return 1
    }
}
