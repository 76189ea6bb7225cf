// GPT-2's reversible byte <-> printable-character mapping used by byte-level BPE vocabularies:
// printable Latin-1 bytes map to themselves, the other 68 bytes to U+0100 upward in byte order.

enum ByteLevelMapping {
    /// byte -> character (scalar value) of the vocabulary alphabet; (256)
    static let byteToScalar: [Unicode.Scalar] = {
        var table = [Unicode.Scalar](repeating: " ", count: 256)
        var next: UInt32 = 256
        for b in 0..<256 {
            let printable = (0x21...0x7E).contains(b) || (0xA1...0xAC).contains(b) || (0xAE...0xFF).contains(b)
            if printable {
                table[b] = Unicode.Scalar(UInt8(b))
            } else {
                table[b] = Unicode.Scalar(next) ?? " "  // next < 0x200: always a valid scalar
                next += 1
            }
        }
        return table
    }()

    /// character -> byte, for the 256 scalars of the alphabet.
    static let scalarToByte: [UInt32: UInt8] = {
        var map: [UInt32: UInt8] = [:]
        for (b, s) in byteToScalar.enumerated() { map[s.value] = UInt8(b) }
        return map
    }()

    /// The UTF-8 bytes of `scalars`, each mapped to its alphabet character.
    static func encode(_ scalars: ArraySlice<Unicode.Scalar>) -> [Unicode.Scalar] {
        var out: [Unicode.Scalar] = []
        out.reserveCapacity(scalars.count * 2)
        for s in scalars {
            appendUTF8(s) { out.append(byteToScalar[Int($0)]) }
        }
        return out
    }

    /// A vocabulary piece back to bytes; characters outside the alphabet keep their own UTF-8 bytes.
    static func decode(_ piece: String) -> [UInt8] {
        var out: [UInt8] = []
        for s in piece.unicodeScalars {
            if let b = scalarToByte[s.value] { out.append(b) } else { appendUTF8(s) { out.append($0) } }
        }
        return out
    }
}
