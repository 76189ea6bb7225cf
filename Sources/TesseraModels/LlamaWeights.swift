// Loading a Llama-family checkpoint: tensor names of GGUF and Hugging Face, shapes checked against the config.
import TesseraFormats
import TesseraKernels

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

extension TensorView {
    /// This weight as the model will hold it: converted to `quantize` when that is set and the weight is an F32, F16
    /// or BF16 matrix whose rows fit the type's blocks (quantize-at-load, `--quantize`), else itself, in place.
    /// Quantized checkpoints are never re-quantized at load; `infer-worker quantize` does that offline.
    public func loaded(quantize: GGMLType?) throws -> TensorView {
        guard let quantize, [.f32, .f16, .bf16].contains(info.type),
              GGMLType.conversionTarget(for: info, requested: quantize).outcome == .converted else { return self }
        let result = try converted(to: quantize)
        (owner as? FileBackedPages)?.releasePages(data)   // the float source was read once; do not keep it resident
        return result
    }
}

/// Looks tensors up by name and checks their shapes.
struct WeightLoader {
    let store: any TensorStore
    let file: String
    /// How the linears it builds compute.
    var compute: ComputeOptions = .exact
    /// The type float matrices are converted to at load, if any.
    var quantize: GGMLType?

    func has(_ name: String) -> Bool { store.tensorInfos[name] != nil }

    func view(_ name: String, shape: [Int]) throws -> TensorView {
        guard let info = store.tensorInfos[name] else { throw ModelError.missingTensor(file: file, tensor: name) }
        guard info.shape == shape else { throw ModelError.shapeMismatch(tensor: name, expected: shape, found: info.shape) }
        return try store.isolatedView(name, rows: nil)
    }

    /// A `[rows × cols]` matrix in place.
    func matrix(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
        let v = try view(name, shape: [rows, cols]).loaded(quantize: quantize)
        do { return try WeightMatrix(v) } catch let e as KernelError {
            throw ModelError.unsupportedTensor(tensor: name, reason: e.reason)
        }
    }

    /// A `[count]` vector decoded to floats (norm weights, biases).
    func vector(_ name: String, count: Int) throws -> [Float] {
        let v = try view(name, shape: [count])
        guard v.info.type == .f32 || v.info.type == .f16 || v.info.type == .bf16 else {
            throw ModelError.unsupportedTensor(tensor: name, reason: "\(v.info.type) vectors are not supported (F32, F16, BF16)")
        }
        let m: WeightMatrix
        do { m = try WeightMatrix(v) } catch let e as KernelError {
            throw ModelError.unsupportedTensor(tensor: name, reason: e.reason)
        }
        var out = [Float](repeating: 0, count: count)
        out.withUnsafeMutableBufferPointer { m.dequantizeRow(0, into: $0.baseAddress!) }
        return out
    }

    func linear(_ name: String, rows: Int, cols: Int, bias: String? = nil) throws -> DenseLinear {
        let weight = try matrix(name, rows: rows, cols: cols)
        // a converted linear's own copy is never read once repacked (an embedding's is: lookups)
        (weight.owner as? AlignedBuffer)?.discardable = true
        return DenseLinear(weight: weight, bias: try bias.map { try vector($0, count: rows) }, compute: compute)
    }
}

extension LlamaModel {
    /// Loads a checkpoint of `kind` (usually through `ModelRegistry.load`).
    public convenience init(source: ModelSource, kind: ArchitectureKind, options: LoadOptions = LoadOptions()) throws {
        switch source {
        case .gguf(let file):
            let config = try LlamaConfig(gguf: file.metadata, tensorNames: Set(file.tensorInfos.keys), file: file.path,
                                         architecture: kind)
            try self.init(config: config, store: file, naming: .gguf, file: file.path, options: options)
        case .huggingFace(let folder):
            let path = folder.path + "/config.json"
            let config = try LlamaConfig(huggingFace: folder.config, file: path, architecture: kind)
            try self.init(config: config, store: folder.weights, naming: .huggingFace, file: folder.path, options: options)
        }
    }

    /// Builds the model from `store`'s tensors named by `naming`, checking every shape against `config`.
    public convenience init(config c: LlamaConfig, store: any TensorStore, naming: WeightNaming, file: String,
                            options: LoadOptions = LoadOptions()) throws {
        let w = WeightLoader(store: store, file: file, compute: options.compute, quantize: options.quantize)
        // a tied checkpoint may store only the output head (its metadata aliasing the embedding to it)
        let embeddingName = !w.has(naming.embedding) && c.tieWordEmbeddings && w.has(naming.output)
            ? naming.output : naming.embedding
        let embedding = try w.matrix(embeddingName, rows: c.vocabularySize, cols: c.hiddenSize)
        // a tied head shares the embedding's rows: once repacked, their mapped pages are released and lookups fault
        // back in only the rows they read (a converted table is not discardable, so it stays)
        let head = c.tieWordEmbeddings ? DenseLinear(weight: embedding, compute: options.compute)
            : try w.linear(naming.output, rows: c.vocabularySize, cols: c.hiddenSize)
        var blocks: [LlamaBlock] = []
        for l in options.layers ?? 0..<c.layerCount {
            func bias(_ part: String) -> String? { c.attentionBias ? naming.layer(l, part, bias: true) : nil }
            let attention = LlamaAttention(
                q: try w.linear(naming.layer(l, "attn_q"), rows: c.queryDim, cols: c.hiddenSize, bias: bias("attn_q")),
                k: try w.linear(naming.layer(l, "attn_k"), rows: c.kvDim, cols: c.hiddenSize, bias: bias("attn_k")),
                v: try w.linear(naming.layer(l, "attn_v"), rows: c.kvDim, cols: c.hiddenSize, bias: bias("attn_v")),
                o: try w.linear(naming.layer(l, "attn_output"), rows: c.hiddenSize, cols: c.queryDim),
                headCount: c.headCount, kvHeadCount: c.kvHeadCount)
            let mlp = LlamaMLP(
                gate: try w.linear(naming.layer(l, "ffn_gate"), rows: c.intermediateSize, cols: c.hiddenSize),
                up: try w.linear(naming.layer(l, "ffn_up"), rows: c.intermediateSize, cols: c.hiddenSize),
                down: try w.linear(naming.layer(l, "ffn_down"), rows: c.hiddenSize, cols: c.intermediateSize))
            blocks.append(LlamaBlock(attentionNorm: try w.vector(naming.layer(l, "attn_norm"), count: c.hiddenSize),
                                     attention: attention,
                                     mlpNorm: try w.vector(naming.layer(l, "ffn_norm"), count: c.hiddenSize),
                                     mlp: mlp))
        }
        let norm = try w.vector(naming.outputNorm, count: c.hiddenSize)
        // GGUF Llama-3 files carry their rope scaling as per-pair divisors
        let factors = naming == .gguf && w.has("rope_freqs.weight")
            ? try w.vector("rope_freqs.weight", count: c.headDim / 2) : nil
        let rope = RoPE(headDim: c.headDim, base: c.ropeTheta, scaling: c.ropeScaling, layout: c.ropeLayout,
                        frequencyFactors: factors)
        try self.init(config: c, embedding: embedding, blocks: blocks, norm: norm, head: head, rope: rope,
                      store: store, options: options)
    }
}
