// The public tokenizer: text <-> token ids for SentencePiece-BPE (byte fallback) and byte-level BPE models,
// built from a GGUF file's tokenizer.* metadata or a Hugging Face tokenizer.json (+ tokenizer_config.json).
import TesseraFormats

/// Encodes text to token ids and decodes ids to text, the way the model's own tokenizer does.
public final class Tokenizer: Sendable {
    let spec: TokenizerSpec
    /// single-scalar piece -> id, the starting symbols of BPE
    let scalarIDs: [UInt32: Int32]
    /// piece -> id over the model vocabulary, then added tokens
    let pieceIDs: [String: Int]
    let matcher: AddedTokenMatcher
    /// Bytes each id decodes to: `decodeBytes[decodeOffsets[id] ..< decodeOffsets[id + 1]]`; (vocabularySize + 1)
    let decodeOffsets: [Int]
    let decodeBytes: [UInt8]
    /// id -> skipped by `skipSpecialTokens`; (vocabularySize)
    let isSpecial: [Bool]

    /// Number of ids (model vocabulary and added tokens).
    public let vocabularySize: Int

    init(spec: TokenizerSpec) {
        self.spec = spec
        var scalarIDs: [UInt32: Int32] = [:]
        var pieceIDs: [String: Int] = [:]
        pieceIDs.reserveCapacity(spec.pieces.count)
        for (id, piece) in spec.pieces.enumerated() where !piece.isEmpty {
            if pieceIDs[piece] == nil { pieceIDs[piece] = id }
            let scalars = piece.unicodeScalars
            if scalars.count == 1, let s = scalars.first, scalarIDs[s.value] == nil { scalarIDs[s.value] = Int32(id) }
        }
        for t in spec.addedTokens where pieceIDs[t.content] == nil { pieceIDs[t.content] = t.id }
        self.scalarIDs = scalarIDs
        self.pieceIDs = pieceIDs
        self.matcher = AddedTokenMatcher(spec.addedTokens)

        let size = max(spec.pieces.count, (spec.addedTokens.map(\.id).max() ?? -1) + 1)
        vocabularySize = size
        var added: [Int: AddedToken] = [:]
        for t in spec.addedTokens where added[t.id] == nil { added[t.id] = t }
        var bytePiece = [Int16](repeating: -1, count: size)
        for (b, id) in spec.bytePieceIDs.enumerated() where id >= 0 && Int(id) < size { bytePiece[Int(id)] = Int16(b) }

        var offsets = [0]
        offsets.reserveCapacity(size + 1)
        var bytes: [UInt8] = []
        var special = [Bool](repeating: false, count: size)
        let space = Array(String(spec.spaceReplacement).utf8)
        for id in 0..<size {
            if let t = added[id] {
                special[id] = t.special
                bytes += spec.byteLevel ? Array(t.content.utf8) : Tokenizer.unescapeSpaces(t.content, space)
            } else if bytePiece[id] >= 0 && !spec.byteLevel {
                bytes.append(UInt8(bytePiece[id]))
            } else if id < spec.pieces.count {
                let piece = spec.pieces[id]
                bytes += spec.byteLevel ? ByteLevelMapping.decode(piece) : Tokenizer.unescapeSpaces(piece, space)
            }
            offsets.append(bytes.count)
        }
        decodeOffsets = offsets
        decodeBytes = bytes
        isSpecial = special
    }

    /// SentencePiece piece -> UTF-8 with the space stand-in turned back into spaces.
    private static func unescapeSpaces(_ piece: String, _ stand: [UInt8]) -> [UInt8] {
        let utf8 = Array(piece.utf8)
        guard stand.count > 0, utf8.count >= stand.count else { return utf8 }
        var out: [UInt8] = []
        out.reserveCapacity(utf8.count)
        var i = 0
        while i < utf8.count {
            if i + stand.count <= utf8.count && utf8[i..<(i + stand.count)].elementsEqual(stand) {
                out.append(0x20); i += stand.count
            } else {
                out.append(utf8[i]); i += 1
            }
        }
        return out
    }

    // MARK: public API

    /// Token ids of `text`. Added and special tokens written in the text (e.g. "<|im_start|>") are matched as
    /// whole tokens. `addSpecialTokens`: put the model's own BOS/EOS around the text, as its tokenizer does.
    public func encode(_ text: String, addSpecialTokens: Bool = true) -> [Int] {
        var out: [Int] = addSpecialTokens ? spec.prefixIDs : []
        for segment in matcher.segments(text) {
            switch segment {
            case .token(let id): out.append(id)
            case .text(let scalars, let atStart): encodeText(scalars, atStart: atStart, into: &out)
            }
        }
        if addSpecialTokens { out += spec.suffixIDs }
        return out
    }

    /// The text of `ids`. Ids out of range are ignored; invalid UTF-8 becomes U+FFFD.
    public func decode(_ ids: [Int], skipSpecialTokens: Bool = true) -> String {
        var bytes: [UInt8] = []
        for id in ids { appendBytes(of: id, skipSpecialTokens: skipSpecialTokens, to: &bytes) }
        if spec.stripLeadingSpace && bytes.first == 0x20 { bytes.removeFirst() }
        return String(decoding: bytes, as: UTF8.self)
    }

    /// A decoder to feed generated ids one at a time; it returns only complete UTF-8 text.
    public func streamingDecoder(skipSpecialTokens: Bool = true) -> StreamingDecoder {
        StreamingDecoder(tokenizer: self, skipSpecialTokens: skipSpecialTokens)
    }

    /// The beginning-of-sequence id, if the model has one (whether or not `encode` adds it: see `prefixIDs`).
    public var bosID: Int? { spec.bosID }
    /// Ids that end generation: the EOS token and any end-of-turn ids the model declares.
    public var eosIDs: Set<Int> { spec.eosIDs }
    /// BOS / EOS as text, for chat templates (`bos_token`, `eos_token`).
    public var bosToken: String? { spec.bosToken }
    public var eosToken: String? { spec.eosToken }
    /// The model's Jinja chat template, if it ships one.
    public var chatTemplate: String? { spec.chatTemplate }
    /// Ids `encode(_:addSpecialTokens: true)` puts before / after the text.
    public var prefixIDs: [Int] { spec.prefixIDs }
    public var suffixIDs: [Int] { spec.suffixIDs }

    /// The id of a vocabulary piece or added token, written as stored (e.g. "▁the", "Ġthe", "<|im_end|>").
    public func tokenID(_ piece: String) -> Int? { pieceIDs[piece] }

    /// The vocabulary piece or added token of `id`, as stored.
    public func tokenText(_ id: Int) -> String? {
        guard id >= 0 && id < vocabularySize else { return nil }
        if let t = spec.addedTokens.first(where: { $0.id == id }) { return t.content }
        return id < spec.pieces.count ? spec.pieces[id] : nil
    }

    /// Whether `decode(skipSpecialTokens: true)` leaves `id` out.
    public func isSpecialToken(_ id: Int) -> Bool { id >= 0 && id < vocabularySize && isSpecial[id] }

    // MARK: internals

    @inline(__always)
    func appendBytes(of id: Int, skipSpecialTokens: Bool, to bytes: inout [UInt8]) {
        guard id >= 0 && id < vocabularySize, !(skipSpecialTokens && isSpecial[id]) else { return }
        bytes.append(contentsOf: decodeBytes[decodeOffsets[id]..<decodeOffsets[id + 1]])
    }

    private func encodeText(_ scalars: [Unicode.Scalar], atStart: Bool, into out: inout [Int]) {
        var scalars = scalars
        if !spec.normalizers.isEmpty {
            var text = String(String.UnicodeScalarView(scalars))
            for step in spec.normalizers { text = step.apply(text) }
            scalars = Array(text.unicodeScalars)
        }
        var pieces = [TextPiece(scalars: scalars, atStart: atStart)]
        for step in spec.preTokenizers { pieces = step.apply(pieces) }
        var symbols: [Int32] = []
        for piece in pieces where !piece.scalars.isEmpty {
            if spec.ignoreMerges, let id = pieceIDs[String(String.UnicodeScalarView(piece.scalars))], id < spec.pieces.count {
                out.append(id); continue
            }
            initialSymbols(piece.scalars, into: &symbols)
            spec.merges.apply(&symbols)
            for s in symbols { out.append(Int(s)) }
        }
    }

    /// One symbol per character: its piece, else its byte pieces, else the unknown token (or nothing).
    private func initialSymbols(_ scalars: [Unicode.Scalar], into symbols: inout [Int32]) {
        symbols.removeAll(keepingCapacity: true)
        var lastUnknown = false
        for s in scalars {
            if let id = scalarIDs[s.value] { symbols.append(id); lastUnknown = false; continue }
            if spec.byteFallback {
                var ok = true
                appendUTF8(s) { if spec.bytePieceIDs[Int($0)] < 0 { ok = false } }
                if ok {
                    appendUTF8(s) { symbols.append(spec.bytePieceIDs[Int($0)]) }
                    lastUnknown = false
                    continue
                }
            }
            guard let unk = spec.unknownID else { continue }
            if !(spec.fuseUnknown && lastUnknown) { symbols.append(Int32(unk)) }
            lastUnknown = true
        }
    }
}
