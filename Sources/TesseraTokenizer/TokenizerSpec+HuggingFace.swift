// Reads a tokenizer from Hugging Face files: tokenizer.json (model BPE, normalizer, pre_tokenizer,
// post_processor, decoder, added_tokens) with tokenizer_config.json and generation_config.json.
import Foundation
import TesseraFormats

/// The Hugging Face files a tokenizer is read from; `folder` (optional) is searched for chat_template.jinja.
struct HuggingFaceTokenizerFiles {
    var tokenizer: JSONValue
    var tokenizerPath: String
    var tokenizerConfig: JSONValue?
    var generationConfig: JSONValue?
    var modelConfig: JSONValue?
    var folder: String?
}

extension TokenizerSpec {
    /// Largest token id accepted from a file (guards allocations sized by ids).
    static let maxTokenID = 1 << 22

    init(huggingFace files: HuggingFaceTokenizerFiles) throws {
        let path = files.tokenizerPath
        func fail(_ key: String, _ reason: String) -> TokenizerError { TokenizerError(path: path, key: key, reason: reason) }
        let tj = files.tokenizer
        guard tj.object != nil else { throw fail("(root)", "not a JSON object") }
        guard let model = tj["model"], model.object != nil else { throw fail("model", "missing or not an object") }
        let ids = try readBPEModel(model, fail: fail)
        try readAddedTokens(tj["added_tokens"], fail: fail)
        normalizers = try TokenizerSpec.normalizers(tj["normalizer"], key: "normalizer", fail: fail)
        preTokenizers = try TokenizerSpec.preTokenizers(tj["pre_tokenizer"], key: "pre_tokenizer", fail: fail)
        try readDecoder(tj["decoder"], fail: fail)
        if preTokenizers.contains(where: { if case .byteLevel = $0 { return true }; return false }) { byteLevel = true }
        let eosID = readSpecialTokens(files, ids: ids)
        // BOS / EOS added by encode: the post-processor template, overridden by explicit config flags
        (prefixIDs, suffixIDs) = try TokenizerSpec.template(tj["post_processor"], key: "post_processor", fail: fail)
        applyTokenizerClass(files.tokenizerConfig, eosID: eosID)
        chatTemplate = TokenizerSpec.chatTemplate(files.tokenizerConfig, folder: files.folder)
    }

    /// The BPE model: vocabulary, merges (`"a b"` strings or `["a", "b"]` arrays, in rank order) and flags; returns
    /// the piece → id map.
    private mutating func readBPEModel(_ model: JSONValue, fail: (String, String) -> TokenizerError) throws -> [String: Int] {
        let type = model["type"]?.string ?? (model["merges"] != nil ? "BPE" : "(none)")
        guard type == "BPE" else {
            throw fail("model.type", "tokenizer model '\(type)' is not supported (supported: BPE)")
        }
        for key in ["continuing_subword_prefix", "end_of_word_suffix"] {
            if let v = model[key]?.string, !v.isEmpty { throw fail("model.\(key)", "'\(v)' is not supported") }
        }
        guard let vocab = model["vocab"]?.object else { throw fail("model.vocab", "missing or not an object") }
        var ids: [String: Int] = [:]
        ids.reserveCapacity(vocab.count)
        var maxID = -1
        for (piece, v) in vocab {
            guard let id = v.int, id >= 0, id < TokenizerSpec.maxTokenID else {
                throw fail("model.vocab[\"\(piece)\"]", "id is not an integer in 0..<\(TokenizerSpec.maxTokenID)")
            }
            ids[piece] = id
            maxID = max(maxID, id)
        }
        var pieces = [String](repeating: "", count: maxID + 1)
        for (piece, id) in ids { pieces[id] = piece }
        self.pieces = pieces
        for (id, piece) in pieces.enumerated() {
            if let b = TokenizerSpec.bytePieceValue(piece), bytePieceIDs[Int(b)] < 0 { bytePieceIDs[Int(b)] = Int32(id) }
        }
        let pairs: [(String, String)?] = (model["merges"]?.array ?? []).map { m in
            if let s = m.string { return TokenizerSpec.splitMerge(s) }
            if let a = m.array, a.count == 2, let l = a[0].string, let r = a[1].string { return (l, r) }
            return nil
        }
        merges = try TokenizerSpec.mergesFromPairs(pairs, ids: ids) { fail("model.merges[\($0)]", $1) }
        byteFallback = model["byte_fallback"]?.bool ?? false
        fuseUnknown = model["fuse_unk"]?.bool ?? false
        ignoreMerges = model["ignore_merges"]?.bool ?? false
        if let unk = model["unk_token"]?.string { unknownID = ids[unk] }
        return ids
    }

    private mutating func readAddedTokens(_ list: JSONValue?, fail: (String, String) -> TokenizerError) throws {
        for (i, t) in (list?.array ?? []).enumerated() {
            guard let id = t["id"]?.int, id >= 0, id < TokenizerSpec.maxTokenID, let content = t["content"]?.string else {
                throw fail("added_tokens[\(i)]", "needs an integer id in 0..<\(TokenizerSpec.maxTokenID) and a string content")
            }
            addedTokens.append(AddedToken(content: content, id: id, special: t["special"]?.bool ?? false,
                                          lstrip: t["lstrip"]?.bool ?? false, rstrip: t["rstrip"]?.bool ?? false))
        }
    }

    /// BOS / EOS ids and strings from tokenizer_config.json, else generation_config.json, else config.json; every
    /// EOS id generation_config lists ends generation. Returns the primary EOS id.
    private mutating func readSpecialTokens(_ files: HuggingFaceTokenizerFiles, ids: [String: Int]) -> Int? {
        let tc = files.tokenizerConfig, added = addedTokens, pieces = self.pieces
        func idOf(_ token: String) -> Int? { added.first(where: { $0.content == token })?.id ?? ids[token] }
        func tokenString(_ v: JSONValue?) -> String? { v?.string ?? v?["content"]?.string }
        func textOf(_ id: Int) -> String? {
            added.first(where: { $0.id == id })?.content ?? (id < pieces.count && !pieces[id].isEmpty ? pieces[id] : nil)
        }
        bosToken = tokenString(tc?["bos_token"])
        eosToken = tokenString(tc?["eos_token"])
        bosID = bosToken.flatMap(idOf)
            ?? files.generationConfig?["bos_token_id"]?.int ?? files.modelConfig?["bos_token_id"]?.int
        if bosToken == nil, let id = bosID { bosToken = textOf(id) }
        var eosID = eosToken.flatMap(idOf)
        if eosID == nil {
            eosID = files.generationConfig?["eos_token_id"]?.int ?? files.modelConfig?["eos_token_id"]?.int
            if let id = eosID { eosToken = textOf(id) }
        }
        var eos = Set<Int>()
        if let eosID { eos.insert(eosID) }
        let listed = files.generationConfig?["eos_token_id"]
        if let one = listed?.int { eos.insert(one) }
        for v in listed?.array ?? [] { if let one = v.int { eos.insert(one) } }
        eosIDs = eos
        return eosID
    }

    /// `add_bos_token` / `add_eos_token` override the post-processor; transformers >= 5 builds Llama tokenizers from
    /// vocab + merges with its own pipeline, not tokenizer.json's.
    private mutating func applyTokenizerClass(_ tc: JSONValue?, eosID: Int?) {
        let addBOS = tc?["add_bos_token"]?.bool, addEOS = tc?["add_eos_token"]?.bool
        let tokenizerClass = tc?["tokenizer_class"]?.string ?? ""
        if (tokenizerClass == "LlamaTokenizer" || tokenizerClass == "LlamaTokenizerFast") && !byteLevel {
            let addPrefixSpace = tc?["add_prefix_space"]?.bool ?? true
            let legacy = tc?["legacy"]?.bool ?? false
            normalizers = []
            preTokenizers = [.metaspace(replacement: "\u{2581}", prepend: addPrefixSpace ? (legacy ? .always : .first) : .never,
                                        split: false)]
            byteFallback = true
            fuseUnknown = true
            unknownID = nil
            spaceReplacement = "\u{2581}"
            stripLeadingSpace = addPrefixSpace
            prefixIDs = (addBOS ?? true) ? bosID.map { [$0] } ?? [] : []
            suffixIDs = (addEOS ?? false) ? eosID.map { [$0] } ?? [] : []
        } else {
            if let addBOS { prefixIDs = addBOS ? bosID.map { [$0] } ?? [] : [] }
            if let addEOS { suffixIDs = addEOS ? eosID.map { [$0] } ?? [] : [] }
        }
    }
}
