// The format-neutral description of a tokenizer that the GGUF and tokenizer.json readers produce.

/// Everything encode and decode need, whatever file it came from.
struct TokenizerSpec: Sendable {
    /// id -> piece of the model vocabulary (as stored: "▁" for spaces, or GPT-2 byte-mapped characters).
    var pieces: [String] = []
    /// Ids that never occur in model output of the BPE (added / control tokens); decoded as their raw text.
    var addedTokens: [AddedToken] = []
    var merges = MergeTable()

    var normalizers: [NormalizerStep] = []
    var preTokenizers: [PreTokenizerStep] = []

    /// Split characters missing from the vocabulary into <0xNN> byte pieces.
    var byteFallback = false
    /// byte -> id of its "<0xNN>" piece, -1 if absent; (256)
    var bytePieceIDs = [Int32](repeating: -1, count: 256)
    /// nil: characters with neither a piece nor byte pieces are dropped (as transformers' Llama tokenizer does).
    var unknownID: Int?
    /// Consecutive unknown characters give one unknown token.
    var fuseUnknown = true
    /// A word that is itself a vocabulary piece is emitted whole, without merging (Llama 3).
    var ignoreMerges = false

    /// Pieces are GPT-2 byte-mapped characters (byte-level BPE); otherwise SentencePiece pieces.
    var byteLevel = false
    /// SentencePiece pieces: the character standing for a space.
    var spaceReplacement: Unicode.Scalar = "\u{2581}"
    /// Decoding drops one leading space (the dummy prefix the encoder adds).
    var stripLeadingSpace = false

    /// Ids put around the text by `encode(addSpecialTokens: true)`.
    var prefixIDs: [Int] = []
    var suffixIDs: [Int] = []

    var bosID: Int?
    var eosIDs: Set<Int> = []
    var bosToken: String?
    var eosToken: String?
    var chatTemplate: String?
}

/// A token matched whole in the input text before any normalization or BPE.
struct AddedToken: Sendable {
    var content: String
    var id: Int
    /// Skipped by `decode(skipSpecialTokens: true)`.
    var special: Bool
    /// Swallows whitespace to its left / right.
    var lstrip = false
    var rstrip = false
}

enum NormalizerStep: Sendable {
    case prepend(String)
    case replace(String, with: String)
    case nfc, nfd, nfkc, nfkd, lowercase
}

/// When the SentencePiece dummy "▁" is put in front of a segment.
enum PrependScheme: Sendable { case always, first, never }

enum SplitBehavior: Sendable { case isolated, removed, mergedWithPrevious, mergedWithNext }

enum PreTokenizerStep: Sendable {
    /// Spaces become `replacement`; a leading one is added by `prepend`; optionally split before each.
    case metaspace(replacement: Unicode.Scalar, prepend: PrependScheme, split: Bool)
    /// Optional leading space, GPT-2 regex split, then bytes mapped to the byte-level alphabet.
    case byteLevel(addPrefixSpace: Bool, useRegex: Bool)
    case split(Splitter, behavior: SplitBehavior, invert: Bool)
    /// Digits isolated, each on its own (`individual`) or in runs.
    case digits(individual: Bool)
}

/// What a `split` pre-tokenizer matches.
enum Splitter: Sendable {
    case known(SplitPattern)
    case regex(RegexSplitter)
    case literal([Unicode.Scalar])
}
