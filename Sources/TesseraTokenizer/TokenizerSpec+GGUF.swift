// Reads a tokenizer from GGUF `tokenizer.*` metadata: model "llama" (SentencePiece BPE, merges by score,
// byte fallback) and "gpt2" (byte-level BPE, merges by rank, pre-tokenizer named by `tokenizer.ggml.pre`).
import TesseraFormats

/// GGUF token types (`tokenizer.ggml.token_type`).
enum GGUFTokenType: Int {
    case normal = 1, unknown = 2, control = 3, userDefined = 4, unused = 5, byte = 6
}

extension TokenizerSpec {
    /// Pre-tokenizers of byte-level GGUF vocabularies, by `tokenizer.ggml.pre` name.
    static let ggufPreTokenizers: [String: [PreTokenizerStep]] = {
        let gpt2: [PreTokenizerStep] = [.byteLevel(addPrefixSpace: false, useRegex: true)]
        let digitsGPT2: [PreTokenizerStep] = [.digits(individual: true), .byteLevel(addPrefixSpace: false, useRegex: true)]
        func regex(_ p: SplitPattern) -> [PreTokenizerStep] {
            [.split(.known(p), behavior: .isolated, invert: false), .byteLevel(addPrefixSpace: false, useRegex: false)]
        }
        var table: [String: [PreTokenizerStep]] = [:]
        for name in ["default", "gpt-2", "gpt2", "phi-2", "mpt", "olmo", "roberta-bpe"] { table[name] = gpt2 }
        for name in ["smollm", "starcoder", "refact", "command-r", "codeshell", "exaone", "minerva-7b"] { table[name] = digitsGPT2 }
        for name in ["llama3", "llama-bpe", "llama-v3", "smaug-bpe", "falcon3"] { table[name] = regex(.llama3) }
        for name in ["qwen2", "deepseek-r1-qwen", "megrez"] { table[name] = regex(.qwen2) }
        return table
    }()

    init(gguf md: [String: GGUFValue], path: String) throws {
        func fail(_ key: String, _ reason: String) -> TokenizerError { TokenizerError(path: path, key: key, reason: reason) }

        let modelKey = "tokenizer.ggml.model", tokensKey = "tokenizer.ggml.tokens"
        guard let model = md[modelKey]?.string else { throw fail(modelKey, "missing (the file has no tokenizer)") }
        guard let tokens = md[tokensKey]?.strings, !tokens.isEmpty else {
            throw fail(tokensKey, "missing, empty or not an array of strings")
        }
        let n = tokens.count
        var types = [Int](repeating: GGUFTokenType.normal.rawValue, count: n)
        if let raw = md["tokenizer.ggml.token_type"] {
            guard let a = raw.array, a.count == n else {
                throw fail("tokenizer.ggml.token_type", "expected an array of \(n) integers (one per token)")
            }
            for (i, v) in a.enumerated() { types[i] = v.int ?? GGUFTokenType.normal.rawValue }
        }
        func optionalID(_ key: String) throws -> Int? {
            guard let v = md[key] else { return nil }
            guard let id = v.int else { throw fail(key, "not an integer") }
            if id == -1 { return nil }
            guard id >= 0 && id < n else { throw fail(key, "token id \(id) outside the vocabulary of \(n) tokens") }
            return id
        }
        let bos = try optionalID("tokenizer.ggml.bos_token_id")
        let eos = try optionalID("tokenizer.ggml.eos_token_id")
        let unk = try optionalID("tokenizer.ggml.unknown_token_id")
        let eot = try optionalID("tokenizer.ggml.eot_token_id")
        let eom = try optionalID("tokenizer.ggml.eom_token_id")

        pieces = tokens
        for (id, type) in types.enumerated() {
            // byte pieces: typed BYTE, or "<0xNN>" pieces of an untyped SentencePiece vocabulary
            let isByte = type == GGUFTokenType.byte.rawValue || (model == "llama" && type == GGUFTokenType.normal.rawValue)
            if isByte, let b = TokenizerSpec.bytePieceValue(tokens[id]), bytePieceIDs[Int(b)] < 0 {
                bytePieceIDs[Int(b)] = Int32(id)
            }
            if type == GGUFTokenType.control.rawValue || type == GGUFTokenType.userDefined.rawValue
                || type == GGUFTokenType.unknown.rawValue {
                addedTokens.append(AddedToken(content: tokens[id], id: id, special: type != GGUFTokenType.userDefined.rawValue))
            }
        }

        let addBOS: Bool, addEOS = md["tokenizer.ggml.add_eos_token"]?.bool ?? false
        switch model {
        case "llama":
            let scoresKey = "tokenizer.ggml.scores"
            guard let scores = md[scoresKey]?.array?.compactMap(\.double), scores.count == n else {
                throw fail(scoresKey, "expected an array of \(n) numbers (one per token)")
            }
            merges = TokenizerSpec.mergesFromScores(tokens: tokens, types: types, scores: scores)
            let addSpacePrefix = md["tokenizer.ggml.add_space_prefix"]?.bool ?? true
            preTokenizers = [.metaspace(replacement: "\u{2581}", prepend: addSpacePrefix ? .first : .never, split: false)]
            byteFallback = true
            unknownID = unk
            stripLeadingSpace = addSpacePrefix
            addBOS = md["tokenizer.ggml.add_bos_token"]?.bool ?? true
        case "gpt2":
            let mergesKey = "tokenizer.ggml.merges"
            guard let list = md[mergesKey]?.strings else { throw fail(mergesKey, "missing or not an array of strings") }
            var ids: [String: Int] = [:]
            ids.reserveCapacity(n)
            for (id, t) in tokens.enumerated() where ids[t] == nil { ids[t] = id }
            merges = try TokenizerSpec.mergesFromPairs(list.map { TokenizerSpec.splitMerge($0) }, ids: ids) {
                fail("\(mergesKey)[\($0)]", $1)
            }
            let preKey = "tokenizer.ggml.pre"
            let pre = md[preKey]?.string ?? "default"
            guard let steps = TokenizerSpec.ggufPreTokenizers[pre] else {
                let known = TokenizerSpec.ggufPreTokenizers.keys.sorted().joined(separator: ", ")
                throw fail(preKey, "pre-tokenizer '\(pre)' is not supported (supported: \(known))")
            }
            preTokenizers = steps
            byteLevel = true
            unknownID = unk
            addBOS = md["tokenizer.ggml.add_bos_token"]?.bool ?? false
        default:
            throw fail(modelKey, "tokenizer model '\(model)' is not supported (supported: llama, gpt2)")
        }

        bosID = bos
        bosToken = bos.map { tokens[$0] }
        eosToken = eos.map { tokens[$0] }
        eosIDs = Set([eos, eot, eom].compactMap { $0 })
        if addBOS, let bos { prefixIDs = [bos] }
        if addEOS, let eos { suffixIDs = [eos] }
        chatTemplate = md["tokenizer.chat_template"]?.string
    }

    /// The byte of a "<0xNN>" piece.
    static func bytePieceValue(_ piece: String) -> UInt8? {
        let u = Array(piece.utf8)
        guard u.count == 6, u[0] == 0x3C, u[1] == 0x30, u[2] == 0x78, u[5] == 0x3E else { return nil }
        return UInt8(String(decoding: u[3...4], as: UTF8.self), radix: 16)
    }

    /// SentencePiece merges: every piece that is the concatenation of two pieces is a merge of that pair;
    /// higher score merges first, equal scores share a rank (the leftmost pair then goes first).
    static func mergesFromScores(tokens: [String], types: [Int], scores: [Double]) -> MergeTable {
        var ids: [String: Int] = [:]
        for (id, t) in tokens.enumerated() where ids[t] == nil
            && (types[id] == GGUFTokenType.normal.rawValue || types[id] == GGUFTokenType.userDefined.rawValue) {
            ids[t] = id
        }
        let distinct = Array(Set(scores)).sorted(by: >)
        var rankOf: [Double: Int] = [:]
        for (r, s) in distinct.enumerated() { rankOf[s] = r }
        var table = MergeTable()
        for (id, t) in tokens.enumerated() where ids[t] == id {
            let scalars = Array(t.unicodeScalars)
            guard scalars.count > 1 else { continue }
            for k in 1..<scalars.count {
                let left = String(String.UnicodeScalarView(scalars[..<k]))
                let right = String(String.UnicodeScalarView(scalars[k...]))
                if let l = ids[left], let r = ids[right] {
                    table.add(left: l, right: r, merged: id, rank: rankOf[scores[id]] ?? 0)
                }
            }
        }
        return table
    }

    /// "a b" -> ("a", "b"), split at the first space.
    static func splitMerge(_ merge: String) -> (String, String)? {
        guard let space = merge.firstIndex(of: " ") else { return nil }
        return (String(merge[..<space]), String(merge[merge.index(after: space)...]))
    }

    /// Rank-ordered merges; the result of each must itself be a piece.
    static func mergesFromPairs(_ pairs: [(String, String)?], ids: [String: Int],
                                fail: (Int, String) -> TokenizerError) throws -> MergeTable {
        var table = MergeTable()
        for (rank, pair) in pairs.enumerated() {
            guard let (a, b) = pair else { throw fail(rank, "not a pair of pieces") }
            guard let l = ids[a] else { throw fail(rank, "piece '\(a)' is not in the vocabulary") }
            guard let r = ids[b] else { throw fail(rank, "piece '\(b)' is not in the vocabulary") }
            guard let m = ids[a + b] else { throw fail(rank, "merged piece '\(a + b)' is not in the vocabulary") }
            table.add(left: l, right: r, merged: m, rank: rank)
        }
        return table
    }
}
