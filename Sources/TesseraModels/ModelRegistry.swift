// The table of supported architectures, keyed by the names checkpoints use (aliases spelled out by each family), and
// the options every family's builder takes.
import TesseraFormats
import TesseraKernels

/// How a model is built: the arena's size, the layers, the arithmetic, the KV cache type, quantize-at-load, profiling.
public struct LoadOptions: Sendable {
    /// Most tokens one forward chunk processes; longer batches are run in chunks of this size.
    public var maxBatchTokens: Int
    /// The layers to build (a pipeline stage's range); nil builds all. Other layers' weights are never touched.
    public var layers: Range<Int>?
    /// Arithmetic (exact float32 or fast quantized activations) and threads of the model's products.
    public var compute: ComputeOptions
    /// How KV caches store keys and values (`--kv-cache`).
    public var kvCache: KVCacheType
    /// Converts F32/F16/BF16 weight matrices to this type when loading (`--quantize q8_0|q4_0`; quantized ones are
    /// kept); nil uses the checkpoint's types.
    public var quantize: GGMLType?
    /// Record time per operator and layer (`LanguageModel.profiler`, `--profile`).
    public var profile: Bool
    public init(maxBatchTokens: Int = 512, layers: Range<Int>? = nil, compute: ComputeOptions = .exact,
                kvCache: KVCacheType = .f32, quantize: GGMLType? = nil, profile: Bool = false) {
        self.maxBatchTokens = maxBatchTokens; self.layers = layers; self.compute = compute
        self.kvCache = kvCache; self.quantize = quantize; self.profile = profile
    }
}

/// Names checkpoints give an architecture -> the family that builds it. A new family is one entry in `families`.
public enum ModelRegistry {
    public static let families: [any ModelFamily] = [LlamaFamily()]

    /// GGUF `general.architecture` and HF `model_type` values, and HF `architectures[0]` class names.
    static let byName: [String: any ModelFamily] = {
        var table: [String: any ModelFamily] = [:]
        for family in families { for name in family.architectures { table[name] = family } }
        return table
    }()

    /// Every accepted name, sorted.
    public static var supported: [String] { byName.keys.sorted() }

    /// The family registered under `name`; `ModelError.unknownArchitecture` listing the supported names otherwise.
    public static func family(named name: String) throws -> any ModelFamily {
        guard let family = byName[name] else { throw ModelError.unknownArchitecture(name, supported: supported) }
        return family
    }

    /// The architecture a checkpoint names: GGUF `general.architecture`; HF `architectures[0]`, else `model_type`.
    public static func architecture(of source: ModelSource) throws -> String {
        switch source {
        case .gguf(let file):
            guard let name = file.architecture else {
                throw ModelError.invalidConfig(file: file.path, key: "general.architecture", reason: "missing")
            }
            return name
        case .huggingFace(let folder):
            let names = (folder.config["architectures"]?.array ?? []).compactMap(\.string)
            if let known = names.first(where: { byName[$0] != nil }) { return known }
            if let type = folder.config["model_type"]?.string { return type }
            throw ModelError.unknownArchitecture(names.first ?? "<none in config.json>", supported: supported)
        }
    }

    /// The checkpoint read by its family: configuration validated, tensors laid out, nothing built.
    public static func blueprint(of source: ModelSource) throws -> ModelBlueprint {
        let name = try architecture(of: source)
        return try family(named: name).blueprint(of: source, architecture: name)
    }

    /// Builds the model a checkpoint describes on one rank, its weights in place in the mapped files.
    public static func load(_ source: ModelSource, options: LoadOptions = LoadOptions()) throws -> any LanguageModel {
        try blueprint(of: source).load(options: options)
    }
}
