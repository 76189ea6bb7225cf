// Hyper-parameters of the Llama family (Llama 1/2/3, Mistral, Qwen2, SmolLM), decoded and validated from
// a Hugging Face config.json or GGUF `<arch>.*` metadata.
import TesseraFormats
import TesseraKernels

/// One Llama-family model's shape and numerics. Every initializer validates; an invalid value is a
/// `ModelError.invalidConfig` naming the file and the source's own key (`num_attention_heads`, `llama.block_count`).
public struct LlamaConfig: Sendable, Equatable {
    /// Checkpoints of the family differ only in defaults (biases, rotary layout, windows).
    public enum Variant: String, Sendable, CaseIterable {
        case llama, mistral, qwen2
    }

    public var hiddenSize: Int
    public var intermediateSize: Int
    public var layerCount: Int
    public var headCount: Int
    public var kvHeadCount: Int
    public var headDim: Int
    public var vocabularySize: Int
    public var rmsNormEps: Float
    public var ropeTheta: Double
    public var ropeScaling: RoPEScaling
    /// Pairing of Q/K dimensions in the stored weights (GGUF `llama` rows were permuted by the converter).
    public var ropeLayout: RoPELayout
    /// Trained context length (`max_position_embeddings`, `<arch>.context_length`).
    public var contextLength: Int
    /// The output head reuses the token embedding.
    public var tieWordEmbeddings: Bool
    /// Q, K and V projections carry a bias (Qwen2).
    public var attentionBias: Bool
    /// Each position attends to at most this many most recent positions (Mistral), nil for full attention.
    public var slidingWindow: Int?

    /// Query features per token: `headCount · headDim`.
    public var queryDim: Int { headCount * headDim }
    /// Key (and value) features per token: `kvHeadCount · headDim`.
    public var kvDim: Int { kvHeadCount * headDim }

    /// The activation arena's widths.
    var workspaceShape: WorkspaceShape {
        WorkspaceShape(hiddenSize: hiddenSize, queryDim: queryDim, kvDim: kvDim, intermediateSize: intermediateSize,
                       headDim: headDim, headCount: headCount, contextLength: contextLength)
    }

    /// An inline configuration (tests, synthetic models), validated with Hugging Face key names.
    public init(hiddenSize: Int, intermediateSize: Int, layerCount: Int, headCount: Int, kvHeadCount: Int,
                headDim: Int? = nil, vocabularySize: Int, rmsNormEps: Float = 1e-5, ropeTheta: Double = 10000,
                ropeScaling: RoPEScaling = .none, ropeLayout: RoPELayout = .rotateHalf, contextLength: Int = 2048,
                tieWordEmbeddings: Bool = false, attentionBias: Bool = false, slidingWindow: Int? = nil) throws {
        self.hiddenSize = hiddenSize; self.intermediateSize = intermediateSize; self.layerCount = layerCount
        self.headCount = headCount; self.kvHeadCount = kvHeadCount
        self.headDim = headDim ?? (headCount > 0 ? hiddenSize / headCount : 0)
        self.vocabularySize = vocabularySize; self.rmsNormEps = rmsNormEps; self.ropeTheta = ropeTheta
        self.ropeScaling = ropeScaling; self.ropeLayout = ropeLayout; self.contextLength = contextLength
        self.tieWordEmbeddings = tieWordEmbeddings; self.attentionBias = attentionBias
        self.slidingWindow = slidingWindow
        try validate(file: "<inline config>", keys: .huggingFace)
    }

    /// Decodes a Hugging Face `config.json` of a Llama-family model.
    public init(huggingFace json: JSONValue, file: String, variant: Variant = .llama) throws {
        let r = ConfigReader(file: file, json: json)
        hiddenSize = try r.int("hidden_size")
        intermediateSize = try r.int("intermediate_size")
        layerCount = try r.int("num_hidden_layers")
        headCount = try r.int("num_attention_heads")
        kvHeadCount = try r.int("num_key_value_heads", default: headCount)
        if !r.has("head_dim"), headCount > 0, hiddenSize % headCount != 0 {
            throw r.error("hidden_size", "\(hiddenSize) is not divisible by num_attention_heads \(headCount)")
        }
        headDim = try r.int("head_dim", default: headCount > 0 ? hiddenSize / headCount : 0)
        vocabularySize = try r.int("vocab_size")
        rmsNormEps = Float(try r.double("rms_norm_eps", default: 1e-6))
        contextLength = try r.int("max_position_embeddings", default: 2048)
        tieWordEmbeddings = try r.bool("tie_word_embeddings", default: false)
        attentionBias = try r.bool("attention_bias", default: variant == .qwen2)
        ropeLayout = .rotateHalf
        // transformers 5 nests theta and scaling in `rope_parameters`; older configs keep them at the top level
        if let params = json["rope_parameters"], params != .null {
            guard params.object != nil else { throw r.error("rope_parameters", "expected an object") }
            let p = ConfigReader(file: file, json: params)
            ropeTheta = try p.double("rope_theta", default: try r.double("rope_theta", default: 10000))
            ropeScaling = try Self.ropeScaling(p, prefix: "rope_parameters.")
        } else {
            ropeTheta = try r.double("rope_theta", default: 10000)
            if let scaling = json["rope_scaling"], scaling != .null {
                guard scaling.object != nil else { throw r.error("rope_scaling", "expected an object or null") }
                ropeScaling = try Self.ropeScaling(ConfigReader(file: file, json: scaling), prefix: "rope_scaling.")
            } else {
                ropeScaling = .none
            }
        }
        switch variant {
        case .mistral: slidingWindow = r.has("sliding_window") ? try r.int("sliding_window") : nil
        case .qwen2:
            slidingWindow = try r.bool("use_sliding_window", default: false) ? try r.int("sliding_window") : nil
        case .llama: slidingWindow = nil
        }
        if let act = try r.string("hidden_act"), act != "silu" {
            throw r.error("hidden_act", "'\(act)' is not supported (only silu)")
        }
        if try r.bool("mlp_bias", default: false) { throw r.error("mlp_bias", "MLP biases are not supported") }
        try validate(file: file, keys: .huggingFace)
    }

    /// Decodes GGUF metadata of a `llama`, `mistral` or `qwen2` file. `tensorNames` tells whether the output head is
    /// tied (no `output.weight`) and whether attention has biases (`blk.0.attn_q.bias`).
    public init(gguf metadata: [String: GGUFValue], tensorNames: Set<String>, file: String,
                variant: Variant) throws {
        let r = ConfigReader(file: file, metadata: metadata)
        let a = try r.string("general.architecture") ?? variant.rawValue
        hiddenSize = try r.int("\(a).embedding_length")
        intermediateSize = try r.int("\(a).feed_forward_length")
        layerCount = try r.int("\(a).block_count")
        headCount = try r.int("\(a).attention.head_count")
        kvHeadCount = try r.int("\(a).attention.head_count_kv", default: headCount)
        if !r.has("\(a).attention.key_length"), headCount > 0, hiddenSize % headCount != 0 {
            throw r.error("\(a).embedding_length", "\(hiddenSize) is not divisible by head_count \(headCount)")
        }
        headDim = try r.int("\(a).attention.key_length", default: headCount > 0 ? hiddenSize / headCount : 0)
        if try r.int("\(a).attention.value_length", default: headDim) != headDim {
            throw r.error("\(a).attention.value_length", "differs from key_length \(headDim)")
        }
        if try r.int("\(a).rope.dimension_count", default: headDim) != headDim {
            throw r.error("\(a).rope.dimension_count", "partial rotary embeddings are not supported (head size \(headDim))")
        }
        if r.has("\(a).vocab_size") {
            vocabularySize = try r.int("\(a).vocab_size")
        } else if let tokens = metadata["tokenizer.ggml.tokens"]?.array {
            vocabularySize = tokens.count
        } else {
            throw r.error("\(a).vocab_size", "missing, and no tokenizer.ggml.tokens to count")
        }
        rmsNormEps = Float(try r.double("\(a).attention.layer_norm_rms_epsilon"))
        ropeTheta = try r.double("\(a).rope.freq_base", default: 10000)
        switch try r.string("\(a).rope.scaling.type") ?? "none" {
        case "none": ropeScaling = .none
        case "linear":
            let factor = try r.double("\(a).rope.scaling.factor")
            guard factor > 0 else { throw r.error("\(a).rope.scaling.factor", "must be positive, found \(factor)") }
            ropeScaling = .linear(factor: factor)
        case let other:
            throw r.error("\(a).rope.scaling.type", "'\(other)' is not supported (none, linear)")
        }
        contextLength = try r.int("\(a).context_length", default: 2048)
        tieWordEmbeddings = !tensorNames.contains("output.weight")
        attentionBias = tensorNames.contains("blk.0.attn_q.bias")
        ropeLayout = variant == .qwen2 ? .rotateHalf : .adjacentPairs
        slidingWindow = r.has("\(a).attention.sliding_window") ? try r.int("\(a).attention.sliding_window") : nil
        try validate(file: file, keys: .gguf(a))
    }

    /// Rotary scaling from a `rope_scaling` (or `rope_parameters`) object.
    static func ropeScaling(_ r: ConfigReader, prefix: String) throws -> RoPEScaling {
        let typeKey = r.has("rope_type") ? "rope_type" : "type"
        func key(_ k: String) -> String { prefix + k }
        func positive(_ k: String) throws -> Double {
            let v = try r.double(k)
            guard v > 0 else { throw r.error(key(k), "must be positive, found \(v)") }
            return v
        }
        switch try r.string(typeKey) ?? "default" {
        case "default": return .none
        case "linear": return .linear(factor: try positive("factor"))
        case "llama3":
            let factor = try positive("factor"), low = try positive("low_freq_factor")
            let high = try positive("high_freq_factor")
            guard high > low else {
                throw r.error(key("high_freq_factor"), "must exceed low_freq_factor \(low), found \(high)")
            }
            let original = try r.int("original_max_position_embeddings")
            guard original > 0 else {
                throw r.error(key("original_max_position_embeddings"), "must be positive, found \(original)")
            }
            return .llama3(factor: factor, lowFrequencyFactor: low, highFrequencyFactor: high,
                           originalContextLength: original)
        case let other:
            throw r.error(key(typeKey), "'\(other)' is not supported (default, linear, llama3)")
        }
    }

    /// Source key names, for validation errors.
    struct Keys {
        var hidden, intermediate, layers, heads, kvHeads, headDim, vocab, eps, theta, context, window: String
        static let huggingFace = Keys(
            hidden: "hidden_size", intermediate: "intermediate_size", layers: "num_hidden_layers",
            heads: "num_attention_heads", kvHeads: "num_key_value_heads", headDim: "head_dim", vocab: "vocab_size",
            eps: "rms_norm_eps", theta: "rope_theta", context: "max_position_embeddings", window: "sliding_window")
        static func gguf(_ a: String) -> Keys {
            Keys(hidden: "\(a).embedding_length", intermediate: "\(a).feed_forward_length", layers: "\(a).block_count",
                 heads: "\(a).attention.head_count", kvHeads: "\(a).attention.head_count_kv",
                 headDim: "\(a).attention.key_length", vocab: "\(a).vocab_size",
                 eps: "\(a).attention.layer_norm_rms_epsilon", theta: "\(a).rope.freq_base",
                 context: "\(a).context_length", window: "\(a).attention.sliding_window")
        }
    }

    /// Range checks shared by every source; bounds keep buffers sized from the config plausible.
    func validate(file: String, keys: Keys) throws {
        func fail(_ key: String, _ reason: String) -> ModelError {
            .invalidConfig(file: file, key: key, reason: reason)
        }
        func check(_ value: Int, _ key: String, max: Int) throws {
            guard value > 0 else { throw fail(key, "must be positive, found \(value)") }
            guard value <= max else { throw fail(key, "\(value) exceeds the supported maximum \(max)") }
        }
        try check(hiddenSize, keys.hidden, max: 1 << 16)
        try check(intermediateSize, keys.intermediate, max: 1 << 18)
        try check(layerCount, keys.layers, max: 1 << 10)
        try check(headCount, keys.heads, max: 1 << 10)
        try check(kvHeadCount, keys.kvHeads, max: 1 << 10)
        try check(headDim, keys.headDim, max: 1 << 12)
        try check(vocabularySize, keys.vocab, max: 1 << 22)
        try check(contextLength, keys.context, max: 1 << 24)
        guard headCount % kvHeadCount == 0 else {
            throw fail(keys.kvHeads, "\(kvHeadCount) does not divide \(keys.heads) \(headCount)")
        }
        guard headDim % 2 == 0 else { throw fail(keys.headDim, "must be even for rotary embeddings, found \(headDim)") }
        guard rmsNormEps > 0, rmsNormEps.isFinite else { throw fail(keys.eps, "must be positive, found \(rmsNormEps)") }
        guard ropeTheta > 0 else { throw fail(keys.theta, "must be positive, found \(ropeTheta)") }
        if let slidingWindow { try check(slidingWindow, keys.window, max: 1 << 24) }
    }
}
