// The seam every architecture plugs into: a family decodes a checkpoint's configuration, lays out its tensors with
// how each may be sharded, and builds the model from linears a factory hands it (dense, or a tensor-parallel shard).
import TesseraFormats

/// One architecture (with its variants). Conformances are registered in `ModelRegistry.families`.
///
/// Adding a family means one model file (the math, written as for one process) plus this conformance: its config,
/// its `ModelLayout` (which linears are column-, row- or vocabulary-parallel, how heads group) and a builder that
/// asks a `LinearFactory` for every weight. Tensor and pipeline parallelism need nothing else from it.
public protocol ModelFamily: Sendable {
    /// The family's own name (`llama`), for logs.
    var name: String { get }
    /// Checkpoint names it serves: GGUF `general.architecture`, HF `model_type` and `architectures[0]` values.
    var architectures: [String] { get }
    /// Reads the checkpoint's configuration and tensor table (no weights) into a blueprint, or throws naming the
    /// file and key at fault. `architecture` is the name the checkpoint gave (one of `architectures`).
    func blueprint(of source: ModelSource, architecture: String) throws -> ModelBlueprint
}

/// A checkpoint understood by its family: validated configuration, the tensor layout, and the builder. Build it
/// whole (`load`), or hand `build` a sharding factory (`TensorParallel`); `LoadOptions.layers` builds a stage.
public struct ModelBlueprint: @unchecked Sendable {
    /// The name the checkpoint gives its architecture (`llama`, `Qwen2ForCausalLM`, …).
    public let architecture: String
    /// The family that builds it.
    public let family: String
    public let source: ModelSource
    /// Every tensor the model reads and how it may be split.
    public let layout: ModelLayout
    /// The context length the model was trained for.
    public let trainedContextLength: Int
    private let builder: (any LinearFactory, LoadOptions) throws -> any LanguageModel

    public init(architecture: String, family: String, source: ModelSource, layout: ModelLayout,
                trainedContextLength: Int,
                builder: @escaping (any LinearFactory, LoadOptions) throws -> any LanguageModel) {
        self.architecture = architecture; self.family = family; self.source = source; self.layout = layout
        self.trainedContextLength = trainedContextLength; self.builder = builder
    }

    /// Decoder layers.
    public var layerCount: Int { layout.layers.count }
    /// The checkpoint's path, for messages.
    public var file: String { source.path }

    /// Builds the model from the linears `linears` makes (`options.layers` restricts it to a stage's layers).
    public func build(linears: any LinearFactory, options: LoadOptions = LoadOptions()) throws -> any LanguageModel {
        if let layers = options.layers, layers.lowerBound < 0 || layers.upperBound > layerCount || layers.isEmpty {
            throw ModelError.invalidBuffer("layers \(layers) outside the model's 0..<\(layerCount)")
        }
        return try builder(linears, options)
    }

    /// Builds the whole model (or `options.layers`) on one rank, its weights in place in the mapped files.
    public func load(options: LoadOptions = LoadOptions()) throws -> any LanguageModel {
        try build(linears: DenseLinearFactory(source: source, options: options), options: options)
    }
}

// MARK: - The sharding description

/// The units a tensor-parallel plan divides among ranks.
public enum ShardAxis: Sendable, Hashable {
    /// Query heads of `headDim` features each.
    case queryHeads
    /// KV heads: each rank keeps the KV heads its query heads read (replicated when ranks outnumber them).
    case kvHeads
    /// Feed-forward features, split in whole quantization blocks of the row-parallel tensors on this axis.
    case features
}

/// How a tensor-parallel plan may cut one linear.
public enum Sharding: Sendable, Hashable {
    /// Every rank holds it whole.
    case replicated
    /// Output features (weight rows, and bias elements) split along the axis; input replicated, no communication.
    case columnParallel(ShardAxis)
    /// Input features (weight columns) split along the axis; partial outputs summed over the group (all-reduce).
    case rowParallel(ShardAxis)
    /// The output head: vocabulary rows split, logits gathered over the group.
    case vocabularyParallel
}

/// A `[rows × cols]` weight matrix the model reads, with its optional `[rows]` bias and how it may be split.
public struct LinearSpec: Sendable, Hashable {
    public var name: String
    public var rows: Int
    public var cols: Int
    public var bias: String?
    public var sharding: Sharding

    public init(_ name: String, rows: Int, cols: Int, bias: String? = nil, sharding: Sharding = .replicated) {
        self.name = name; self.rows = rows; self.cols = cols; self.bias = bias; self.sharding = sharding
    }
}

/// A `[count]` float vector (norm weights, rotary factors), decoded and replicated on every rank.
public struct VectorSpec: Sendable, Hashable {
    public var name: String
    public var count: Int
    public init(_ name: String, count: Int) { self.name = name; self.count = count }
}

/// One decoder layer's tensors.
public struct LayerLayout: Sendable, Hashable {
    public var linears: [LinearSpec]
    public var vectors: [VectorSpec]
    public init(linears: [LinearSpec], vectors: [VectorSpec]) { self.linears = linears; self.vectors = vectors }
}

/// Every tensor a model reads, as its family lays them out for this checkpoint, and the sizes of the axes
/// tensor parallelism divides. Plans are computed from this and the tensor table alone.
public struct ModelLayout: Sendable, Hashable {
    public var hiddenSize: Int
    public var vocabularySize: Int
    /// Query heads, KV heads (query head h reads KV head h / (queryHeads / kvHeads)) and their size.
    public var queryHeads: Int
    public var kvHeads: Int
    public var headDim: Int
    /// Feed-forward features.
    public var features: Int
    /// The token-embedding table, `[vocabulary × hidden]`, read by row.
    public var embedding: String
    /// The output head (`vocabularyParallel`); its name is the embedding's when tied.
    public var head: LinearSpec
    /// Vectors outside the layers (final norm, rotary factors).
    public var vectors: [VectorSpec]
    public var layers: [LayerLayout]

    public init(hiddenSize: Int, vocabularySize: Int, queryHeads: Int, kvHeads: Int, headDim: Int, features: Int,
                embedding: String, head: LinearSpec, vectors: [VectorSpec], layers: [LayerLayout]) {
        self.hiddenSize = hiddenSize; self.vocabularySize = vocabularySize; self.queryHeads = queryHeads
        self.kvHeads = kvHeads; self.headDim = headDim; self.features = features; self.embedding = embedding
        self.head = head; self.vectors = vectors; self.layers = layers
    }

    /// The head reuses the embedding's rows.
    public var tied: Bool { head.name == embedding }

    /// Units of `axis` in the whole model.
    public func units(_ axis: ShardAxis) -> Int {
        switch axis {
        case .queryHeads: return queryHeads
        case .kvHeads: return kvHeads
        case .features: return features
        }
    }

    /// Weight features one unit of `axis` spans (a head's `headDim`, or 1).
    public func width(_ axis: ShardAxis) -> Int { axis == .features ? 1 : headDim }
}
