import ArgumentParser
import Foundation

/// `infer-bench ablation`: each optimisation switched off in turn, measured side by side in one run (runs of the
/// variants alternate, medians reported): the KV cache, operator fusion, the fast quantized-activation kernels
/// against exact float32, 8-bit weights against float32 weights (memory, speed, perplexity), the 8-bit KV cache,
/// and batch sizes 1/4/8/16.
struct AblationBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "ablation", abstract: "What each optimisation buys: on vs off, same model, same threads, one run.")

    @Option(help: "GGUF file for the speed ablations (default: the default model).") var model: String?
    @Option(help: "Float32 GGUF for the INT8-vs-F32 rows (default: models/<default>.F32.gguf, made from the default model with `infer-worker quantize --type f32` if missing).")
    var floatModel: String?
    @Option(help: "Threads per run.") var threads = 2
    @Option(help: "Runs per variant (median reported).") var runs = 3
    @Option(help: "Tokens generated in the KV-cache rows.") var kvTokens = 256
    @Option(help: "Tokens generated in the other rows.") var genTokens = 128
    @Option(help: "Approximate prompt length in tokens.") var promptTokens = 64
    @Option(help: "Batch sizes (concurrent sequences) for the batching rows.") var batches = "1,4,8,16"
    @Option(help: "Comma-separated groups to run: kv, fusion, arithmetic, int8, kvcache8, batch, paging (default: all).")
    var only: String?
    @Option(help: "CSV output file.") var csv = "ablation.csv"

    /// One variant: what it changes, infer-worker arguments, how many prompts it runs at once.
    struct Variant {
        let group: String
        let name: String
        let arguments: [String]
        var prompts = 1
        var model: String? = nil
    }

    static let words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "children", "watch"]

    func run() throws {
        let root = try repositoryRoot()
        let worker = root.appendingPathComponent(".build/release/infer-worker")
        let modelPath = model ?? root.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
        let groups = Set((only ?? "kv,fusion,arithmetic,int8,kvcache8,batch,paging").split(separator: ",").map(String.init))
        let floatPath = floatModel ?? root.appendingPathComponent("models/SmolLM2-135M-Instruct.F32.gguf").path
        if groups.contains("int8") { try ensureFloatModel(floatPath, from: modelPath, worker: worker) }
        let variants = self.variants(groups, floatPath: floatPath)
        let scratch = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-ablation-\(getpid())")
        try FileManager.default.createDirectory(at: scratch, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: scratch) }

        print("infer-bench ablation: \(modelPath); \(threads) threads; ~\(promptTokens)-token prompts; \(genTokens) generated tokens (\(kvTokens) in the KV rows); median of \(runs) alternating runs")
        let samples = try measure(variants, worker: worker, model: modelPath, scratch: scratch)
        let perplexities = groups.contains("int8")
            ? try self.perplexities(worker: worker, floatPath: floatPath, reference: root.deletingLastPathComponent()
                .appendingPathComponent("shared/reference/ppl.txt").path)
            : [:]
        try report(variants, samples, perplexities)
    }

    /// Makes the float32 model of the INT8 rows from the default model when it is missing.
    func ensureFloatModel(_ floatPath: String, from modelPath: String, worker: URL) throws {
        guard !FileManager.default.fileExists(atPath: floatPath) else { return }
        guard floatModel == nil else { throw ValidationError("no float model at \(floatPath)") }
        print("making \(floatPath) (the default model dequantized to float32) with infer-worker quantize --type f32")
        let (status, _, err) = try runCapturing(worker, ["quantize", "--model", modelPath, "--type", "f32", "--out", floatPath])
        guard status == 0 else { throw ValidationError("quantize failed: \(err.suffix(1500))") }
    }

    /// The variants of the chosen groups, in table order; each group's first row is what the others compare to.
    func variants(_ groups: Set<String>, floatPath: String) -> [Variant] {
        let fast = ["--fast"], kv = ["--max-tokens", "\(kvTokens)"]
        var variants: [Variant] = []
        if groups.contains("kv") {
            variants += [Variant(group: "kv", name: "KV cache on", arguments: fast + kv),
                         Variant(group: "kv", name: "KV cache off (--no-kv-cache)", arguments: fast + kv + ["--no-kv-cache"])]
        }
        if groups.contains("fusion") {
            variants += [Variant(group: "fusion", name: "fused operators", arguments: fast),
                         Variant(group: "fusion", name: "unfused (--no-fusion)", arguments: fast + ["--no-fusion"])]
        }
        if groups.contains("arithmetic") {
            variants += [Variant(group: "arithmetic", name: "fast (Q8 activations, SIMD)", arguments: fast),
                         Variant(group: "arithmetic", name: "exact float32 (--exact-f32)", arguments: ["--exact-f32"])]
        }
        if groups.contains("int8") {
            variants += [Variant(group: "int8", name: "F32 weights", arguments: fast, model: floatPath),
                         Variant(group: "int8", name: "Q8_0 at load (--quantize q8_0)", arguments: fast + ["--quantize", "q8_0"],
                                 model: floatPath)]
        }
        if groups.contains("kvcache8") {
            variants += [Variant(group: "kvcache8", name: "f32 KV cache", arguments: fast + kv),
                         Variant(group: "kvcache8", name: "8-bit KV cache (--kv-cache q8_0)",
                                 arguments: fast + kv + ["--kv-cache", "q8_0"])]
        }
        if groups.contains("batch") {
            for b in batches.split(separator: ",").compactMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) {
                variants.append(Variant(group: "batch", name: "batch \(b)", arguments: fast, prompts: b))
            }
        }
        if groups.contains("paging") {   // what walking KV blocks costs: 8 sequences, blocks of 16 vs one per context
            variants += [Variant(group: "paging", name: "8 sequences, KV blocks of 16", arguments: fast, prompts: 8),
                         Variant(group: "paging", name: "8 sequences, one KV block per context",
                                 arguments: fast + ["--context", "1024", "--kv-block-size", "1024"], prompts: 8),
                         Variant(group: "paging", name: "8 sequences, blocks of 16, context 1024",
                                 arguments: fast + ["--context", "1024"], prompts: 8)]
        }
        return variants
    }

    /// The infer-worker arguments of one variant (its prompts file written into `scratch` when it has several).
    func arguments(_ variant: Variant, model: String, scratch: URL) throws -> [String] {
        func prompt(_ i: Int) -> String {
            (0..<max(1, promptTokens * 3 / 4)).map { Self.words[($0 + i) % Self.words.count] }.joined(separator: " ")
        }
        var args = ["generate", "--model", variant.model ?? model, "--temperature", "0", "--ignore-eos",
                    "--threads", "\(threads)", "--format", "jsonl"]
        if !variant.arguments.contains("--max-tokens") { args += ["--max-tokens", "\(genTokens)"] }
        if variant.prompts == 1 {
            args += ["--prompt", prompt(0)]
        } else {
            let file = scratch.appendingPathComponent("prompts-\(variant.prompts).txt")
            try (0..<variant.prompts).map(prompt).joined(separator: "\n").write(to: file, atomically: true, encoding: .utf8)
            args += ["--prompts-file", file.path]
        }
        return args + variant.arguments
    }

    /// Every variant's samples, runs alternating in order; variants with identical runs (the plain fast run is the
    /// baseline of several groups) are measured once per round and share their samples.
    func measure(_ variants: [Variant], worker: URL, model: String, scratch: URL) throws -> [[WorkerReport]] {
        let perVariant = try variants.map { try arguments($0, model: model, scratch: scratch) }
        var runs: [[String]] = []
        for args in perVariant where !runs.contains(args) { runs.append(args) }
        var measured = [[WorkerReport]](repeating: [], count: runs.count)
        for r in 0..<self.runs {
            for i in (r % 2 == 0 ? Array(runs.indices) : runs.indices.reversed()) {
                measured[i].append(try WorkerReport.run(worker, runs[i], what: runs[i].joined(separator: " ")))
            }
        }
        return perVariant.map { measured[runs.firstIndex(of: $0)!] }
    }

    /// Perplexity on the reference text of the float32 model and of its Q8_0-at-load conversion.
    func perplexities(worker: URL, floatPath: String, reference: String) throws -> [String: Double] {
        var perplexities: [String: Double] = [:]
        for (name, extra) in [("F32 weights", [String]()), ("Q8_0 at load (--quantize q8_0)", ["--quantize", "q8_0"])] {
            let (status, out, err) = try runCapturing(worker, ["perplexity", "--model", floatPath, "--file", reference] + extra)
            if status == 0, let value = out.split(separator: " ").dropFirst().first.flatMap({ Double($0) }) {
                perplexities[name] = value
            } else {
                print("(perplexity for \(name) unavailable: \(err.suffix(300)))")
            }
        }
        return perplexities
    }

    /// The table and the CSV: medians per variant, each against its group's first row.
    func report(_ variants: [Variant], _ samples: [[WorkerReport]], _ perplexities: [String: Double]) throws {
        var rows = ["group,variant,decode_tokens_per_s,prompt_tokens_per_s,weights_MiB,peak_MiB,ratio_to_first,perplexity"]
        print("\(pad("group", 11))\(pad("variant", 34))  decode tok/s  prompt tok/s  weights MiB  peak MiB  vs first  perplexity")
        var first: [String: Double] = [:]
        for (v, variant) in variants.enumerated() {
            let s = samples[v]
            let decode = median(s.map(\.decodeTokensPerSecond)), promptSpeed = median(s.map(\.promptTokensPerSecond))
            let weights = median(s.map(\.weightsMiB)), peak = median(s.map(\.peakMiB))
            let base = first[variant.group] ?? decode
            first[variant.group] = base
            let ppl = perplexities[variant.name].map { String(format: "%.4f", $0) } ?? ""
            print(pad(variant.group, 11) + pad(variant.name, 34)
                  + String(format: "  %12.1f  %12.1f  %11.1f  %8.1f  %7.2fx  ", decode, promptSpeed, weights, peak,
                           decode / max(base, 1e-9)) + ppl)
            rows.append("\(variant.group),\(variant.name)," + String(format: "%.2f,%.2f,%.2f,%.2f,%.3f,", decode,
                        promptSpeed, weights, peak, decode / max(base, 1e-9)) + ppl)
        }
        print("(batch rows: decode tok/s counts the tokens of all sequences together)")
        try (rows.joined(separator: "\n") + "\n").write(toFile: csv, atomically: true, encoding: .utf8)
        print("CSV: \(csv)")
    }

    private func pad(_ text: String, _ width: Int) -> String { text.padding(toLength: width, withPad: " ", startingAt: 0) }
}

/// The speed report an infer-worker run prints on stderr.
struct WorkerReport {
    var promptTokens = 0.0
    var promptTokensPerSecond = 0.0
    var decodeTokensPerSecond = 0.0
    var weightsMiB = 0.0
    var peakMiB = 0.0

    /// Runs infer-worker and reads its report; `what` names the run in an error.
    static func run(_ worker: URL, _ arguments: [String], what: String) throws -> WorkerReport {
        let (status, _, err) = try runCapturing(worker, arguments)
        guard status == 0, let report = parse(err) else {
            throw ValidationError("\(what): infer-worker failed (exit \(status)): \(err.suffix(1500))")
        }
        return report
    }

    /// `tessera: prompt P tokens, X tokens/s; generated G tokens, Y tokens/s; time to first token T s;
    /// weights W MiB; peak memory M MiB`.
    static func parse(_ stderr: String) -> WorkerReport? {
        guard let line = stderr.split(separator: "\n").last(where: { $0.contains("tokens/s; generated") }) else { return nil }
        let numbers = line.replacingOccurrences(of: ",", with: " ").replacingOccurrences(of: ";", with: " ")
            .split(separator: " ").compactMap { Double($0) }
        guard numbers.count >= 7 else { return nil }
        return WorkerReport(promptTokens: numbers[0], promptTokensPerSecond: numbers[1], decodeTokensPerSecond: numbers[3], weightsMiB: numbers[5],
                            peakMiB: numbers[6])
    }
}
