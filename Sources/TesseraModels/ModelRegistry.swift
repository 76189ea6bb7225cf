// The table of supported architectures, keyed by the names checkpoints use, aliases spelled out.
import TesseraFormats
import TesseraKernels

/// Architecture variants served by `Llama.swift`; they differ only in defaults (biases, rotary layout, windows).
public enum ArchitectureKind: String, Sendable, CaseIterable {
    case llama, mistral, qwen2

    /// `general.architecture` of GGUF files of this kind.
    public var ggufName: String { rawValue }
}

/// How big the preallocated activation arena is.
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
    /// Record time per operator and layer (`LlamaModel.profiler`, `--profile`).
    public var profile: Bool
    public init(maxBatchTokens: Int = 512, layers: Range<Int>? = nil, compute: ComputeOptions = .exact,
                kvCache: KVCacheType = .f32, quantize: GGMLType? = nil, profile: Bool = false) {
        self.maxBatchTokens = maxBatchTokens; self.layers = layers; self.compute = compute
        self.kvCache = kvCache; self.quantize = quantize; self.profile = profile
    }
}

/// Names checkpoints give an architecture -> the code that runs it.
public enum ModelRegistry {
    /// GGUF `general.architecture` and HF `model_type` values, and HF `architectures[0]` class names.
    public static let architectures: [String: ArchitectureKind] = [
        "llama": .llama, "LlamaForCausalLM": .llama,          // Llama 1/2/3, SmolLM, SmolLM2
        "mistral": .mistral, "MistralForCausalLM": .mistral,
        "qwen2": .qwen2, "Qwen2ForCausalLM": .qwen2,
    ]

    /// Every accepted name, sorted.
    public static var supported: [String] { architectures.keys.sorted() }

    /// The kind registered under `name`; `ModelError.unknownArchitecture` listing the supported names otherwise.
    public static func kind(named name: String) throws -> ArchitectureKind {
        guard let kind = architectures[name] else {
            throw ModelError.unknownArchitecture(name, supported: supported)
        }
        return kind
    }

    /// The architecture named by a checkpoint: GGUF `general.architecture`; HF `architectures[0]`, else `model_type`.
    public static func kind(of source: ModelSource) throws -> ArchitectureKind {
        switch source {
        case .gguf(let file):
            guard let name = file.architecture else {
                throw ModelError.invalidConfig(file: file.path, key: "general.architecture", reason: "missing")
            }
            return try kind(named: name)
        case .huggingFace(let folder):
            let names = (folder.config["architectures"]?.array ?? []).compactMap(\.string)
            if let known = names.first(where: { architectures[$0] != nil }) { return try kind(named: known) }
            if let type = folder.config["model_type"]?.string { return try kind(named: type) }
            throw ModelError.unknownArchitecture(names.first ?? "<none in config.json>", supported: supported)
        }
    }

    /// The checkpoint's configuration, validated, without building the model.
    public static func config(of source: ModelSource) throws -> LlamaConfig {
        let kind = try kind(of: source)
        switch source {
        case .gguf(let file):
            return try LlamaConfig(gguf: file.metadata, tensorNames: Set(file.tensorInfos.keys), file: file.path, architecture: kind)
        case .huggingFace(let folder):
            return try LlamaConfig(huggingFace: folder.config, file: folder.path + "/config.json", architecture: kind)
        }
    }

    /// Builds the model a checkpoint describes, its weights in place in the mapped files.
    public static func load(_ source: ModelSource, options: LoadOptions = LoadOptions()) throws -> any LanguageModel {
        try LlamaModel(source: source, kind: kind(of: source), options: options)
    }
}
