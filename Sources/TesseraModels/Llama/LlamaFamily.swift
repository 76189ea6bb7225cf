// The Llama family's registration: configs from GGUF or Hugging Face, tensor names and how each linear shards,
// and the builder that assembles `LlamaModel` from a `LinearFactory`.
import TesseraFormats
import TesseraKernels

/// Llama 1/2/3, Mistral, Qwen2, SmolLM/SmolLM2.
public struct LlamaFamily: ModelFamily {
    public init() {}

    public let name = "llama"

    /// Checkpoint names → variant.
    static let variants: [String: LlamaConfig.Variant] = [
        "llama": .llama, "LlamaForCausalLM": .llama,          // Llama 1/2/3, SmolLM, SmolLM2
        "mistral": .mistral, "MistralForCausalLM": .mistral,
        "qwen2": .qwen2, "Qwen2ForCausalLM": .qwen2,
    ]

    public var architectures: [String] { Array(Self.variants.keys) }

    public func blueprint(of source: ModelSource, architecture: String) throws -> ModelBlueprint {
        let variant = Self.variants[architecture] ?? .llama
        let config = try LlamaFamily.config(of: source, variant: variant)
        let names = LlamaTensorNames(source: source, config: config)
        let layout = names.layout(config)
        return ModelBlueprint(architecture: architecture, family: name, source: source, layout: layout,
                              trainedContextLength: config.contextLength) { linears, options in
            try LlamaFamily.build(config, names: names, layout: layout, linears: linears, options: options)
        }
    }

    /// The checkpoint's configuration, validated.
    public static func config(of source: ModelSource, variant: LlamaConfig.Variant) throws -> LlamaConfig {
        switch source {
        case .gguf(let file):
            return try LlamaConfig(gguf: file.metadata, tensorNames: Set(file.tensorInfos.keys), file: file.path,
                                   variant: variant)
        case .huggingFace(let folder):
            return try LlamaConfig(huggingFace: folder.config, file: folder.path + "/config.json", variant: variant)
        }
    }

    /// Builds the layers `options.layers` (all by default), asking `linears` for every weight.
    static func build(_ c: LlamaConfig, names: LlamaTensorNames, layout: ModelLayout, linears f: any LinearFactory,
                      options: LoadOptions) throws -> LlamaModel {
        // Replicated vectors first: decoding them faults pages of the mapping before any slice is read.
        let held = options.layers ?? 0..<c.layerCount
        let norms = try held.map { l in try layout.layers[l].vectors.map { try f.vector($0) } }
        let globals = try layout.vectors.map { try f.vector($0) }
        let embedding = try f.embedding(layout.embedding, rows: c.vocabularySize, cols: c.hiddenSize)
        let heads = f.range(.queryHeads, of: c.headCount).count, kvHeads = f.range(.kvHeads, of: c.kvHeadCount).count
        var blocks: [LlamaBlock] = []
        for (i, l) in held.enumerated() {
            let w = try layout.layers[l].linears.map { try f.linear($0) }   // q, k, v, o, gate, up, down
            blocks.append(LlamaBlock(
                attentionNorm: norms[i][0],
                attention: LlamaAttention(q: w[0], k: w[1], v: w[2], o: w[3], headCount: heads, kvHeadCount: kvHeads),
                mlpNorm: norms[i][1], mlp: LlamaMLP(gate: w[4], up: w[5], down: w[6])))
        }
        let head = try f.linear(layout.head, sharing: layout.tied ? embedding : nil)
        let rope = RoPE(headDim: c.headDim, base: c.ropeTheta, scaling: c.ropeScaling, layout: c.ropeLayout,
                        frequencyFactors: names.ropeFactors == nil ? nil : globals[1])
        return try LlamaModel(config: c, embedding: embedding, blocks: blocks, norm: globals[0], head: head,
                              rope: rope, store: f.store, options: options)
    }
}

/// Which naming scheme a checkpoint's tensors follow.
public enum WeightNaming: Sendable {
    /// `token_embd`, `blk.N.attn_q`, ..., `output_norm`, `output`.
    case gguf
    /// `model.embed_tokens`, `model.layers.N.self_attn.q_proj`, ..., `model.norm`, `lm_head`.
    case huggingFace

    /// Token embedding table.
    public var embedding: String { self == .gguf ? "token_embd.weight" : "model.embed_tokens.weight" }
    /// Final RMSNorm weight.
    public var outputNorm: String { self == .gguf ? "output_norm.weight" : "model.norm.weight" }
    /// Output head (absent when tied to the embedding).
    public var output: String { self == .gguf ? "output.weight" : "lm_head.weight" }

    /// Name of a layer tensor; `part` is the GGUF short name (`attn_q`, `ffn_down`, ...).
    public func layer(_ l: Int, _ part: String, bias: Bool = false) -> String {
        let suffix = bias ? "bias" : "weight"
        switch self {
        case .gguf: return "blk.\(l).\(part).\(suffix)"
        case .huggingFace:
            let hf = ["attn_norm": "input_layernorm", "attn_q": "self_attn.q_proj", "attn_k": "self_attn.k_proj",
                      "attn_v": "self_attn.v_proj", "attn_output": "self_attn.o_proj",
                      "ffn_norm": "post_attention_layernorm", "ffn_gate": "mlp.gate_proj", "ffn_up": "mlp.up_proj",
                      "ffn_down": "mlp.down_proj"][part] ?? part
            return "model.layers.\(l).\(hf).\(suffix)"
        }
    }
}

/// The tensor names of one checkpoint: the naming scheme, where the embedding lives, optional rotary factors.
struct LlamaTensorNames {
    let naming: WeightNaming
    /// The embedding table's tensor: a tied checkpoint may store only the output head (its metadata aliasing the
    /// embedding to it).
    let embedding: String
    /// GGUF Llama-3 files carry their rope scaling as per-pair divisors.
    let ropeFactors: String?

    init(source: ModelSource, config c: LlamaConfig) {
        let tensors = Set(source.tensors.tensorInfos.keys)
        if case .gguf = source { self.init(tensors: tensors, naming: .gguf, config: c) }
        else { self.init(tensors: tensors, naming: .huggingFace, config: c) }
    }

    init(tensors: Set<String>, naming: WeightNaming, config c: LlamaConfig) {
        self.naming = naming
        let has = { tensors.contains($0) }
        embedding = !has(naming.embedding) && c.tieWordEmbeddings && has(naming.output) ? naming.output : naming.embedding
        ropeFactors = naming == .gguf && has("rope_freqs.weight") ? "rope_freqs.weight" : nil
    }

    /// The sharding description: q/k/v and gate/up column-parallel (heads, features), o and down row-parallel,
    /// the head vocabulary-parallel; norms replicated. Layer linears in the order q, k, v, o, gate, up, down.
    func layout(_ c: LlamaConfig) -> ModelLayout {
        let h = c.hiddenSize, n = naming
        let layers = (0..<c.layerCount).map { l -> LayerLayout in
            func bias(_ part: String) -> String? { c.attentionBias ? n.layer(l, part, bias: true) : nil }
            return LayerLayout(linears: [
                LinearSpec(n.layer(l, "attn_q"), rows: c.queryDim, cols: h, bias: bias("attn_q"),
                           sharding: .columnParallel(.queryHeads)),
                LinearSpec(n.layer(l, "attn_k"), rows: c.kvDim, cols: h, bias: bias("attn_k"),
                           sharding: .columnParallel(.kvHeads)),
                LinearSpec(n.layer(l, "attn_v"), rows: c.kvDim, cols: h, bias: bias("attn_v"),
                           sharding: .columnParallel(.kvHeads)),
                LinearSpec(n.layer(l, "attn_output"), rows: h, cols: c.queryDim, sharding: .rowParallel(.queryHeads)),
                LinearSpec(n.layer(l, "ffn_gate"), rows: c.intermediateSize, cols: h, sharding: .columnParallel(.features)),
                LinearSpec(n.layer(l, "ffn_up"), rows: c.intermediateSize, cols: h, sharding: .columnParallel(.features)),
                LinearSpec(n.layer(l, "ffn_down"), rows: h, cols: c.intermediateSize, sharding: .rowParallel(.features)),
            ], vectors: [VectorSpec(n.layer(l, "attn_norm"), count: h), VectorSpec(n.layer(l, "ffn_norm"), count: h)])
        }
        var vectors = [VectorSpec(n.outputNorm, count: h)]
        if let ropeFactors { vectors.append(VectorSpec(ropeFactors, count: c.headDim / 2)) }
        return ModelLayout(
            hiddenSize: h, vocabularySize: c.vocabularySize, queryHeads: c.headCount, kvHeads: c.kvHeadCount,
            headDim: c.headDim, features: c.intermediateSize, embedding: embedding,
            head: LinearSpec(c.tieWordEmbeddings ? embedding : n.output, rows: c.vocabularySize, cols: h,
                             sharding: .vocabularyParallel),
            vectors: vectors, layers: layers)
    }
}

extension LlamaFamily {
    /// The layout of a checkpoint with these tensor names (plans over synthetic tensor tables).
    public static func layout(_ c: LlamaConfig, naming: WeightNaming, tensors: Set<String>) -> ModelLayout {
        LlamaTensorNames(tensors: tensors, naming: naming, config: c).layout(c)
    }

    /// Builds a model from `store`'s tensors named by `naming` (tests, synthetic checkpoints in memory).
    public static func load(config c: LlamaConfig, store: any TensorStore, naming: WeightNaming, file: String,
                            options: LoadOptions = LoadOptions()) throws -> LlamaModel {
        let names = LlamaTensorNames(tensors: Set(store.tensorInfos.keys), naming: naming, config: c)
        let factory = DenseLinearFactory(reader: WeightReader(store: store, file: file, quantize: options.quantize),
                                         compute: options.compute)
        return try build(c, names: names, layout: names.layout(c), linears: factory, options: options)
    }
}
