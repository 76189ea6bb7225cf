import ArgumentParser
import Foundation

/// `infer-bench positions`: decode speed deep into the context. For each position P the prompt fills the KV cache
/// to about P positions, then `--gen-tokens` tokens are decoded (each step attends over ~P cached positions), in
/// fast and exact arithmetic; this build against a baseline infer-worker (another build, `--baseline`) measured in
/// the same run, runs alternating, medians reported.
struct PositionsBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "positions",
        abstract: "Decode tokens/s at given cache positions, fast and exact, against a baseline build in the same run.")

    @Option(help: "GGUF file (default: the default model).") var model: String?
    @Option(help: "Comma-separated cache positions (prompt lengths in tokens: one word of the prompt is one token, plus BOS).") var positions = "128,2048"
    @Option(help: "Comma-separated arithmetics: fast (--fast) and/or exact (--exact-f32).") var modes = "fast,exact"
    @Option(help: "Tokens decoded at each position.") var genTokens = 64
    @Option(help: "Threads per run.") var threads = 2
    @Option(help: "Runs per build, position and arithmetic (median reported).") var runs = 5
    @Option(help: "infer-worker of another build to compare against (e.g. the previous commit's).") var baseline: String?
    @Option(help: "KV cache type for every run: f32 or q8_0.") var kvCache = "f32"
    @Option(help: "CSV output file.") var csv = "positions.csv"

    func run() throws {
        let root = try repositoryRoot()
        let worker = root.appendingPathComponent(".build/release/infer-worker")
        let modelPath = model ?? root.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
        let other = try baseline.map { path -> URL in
            guard FileManager.default.isExecutableFile(atPath: path) else {
                throw ValidationError("--baseline \(path) is not an executable infer-worker")
            }
            return URL(fileURLWithPath: path)
        }
        let builds = [("this build", worker)] + (other.map { [("baseline", $0)] } ?? [])
        let wanted = positions.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        let arithmetics = try modes.split(separator: ",").map { mode -> (String, String) in
            switch mode.trimmingCharacters(in: .whitespaces) {
            case "fast": return ("fast", "--fast")
            case "exact": return ("exact", "--exact-f32")
            default: throw ValidationError("--modes: unknown arithmetic '\(mode)' (fast or exact)")
            }
        }
        guard !wanted.isEmpty, wanted.allSatisfy({ $0 > 0 }) else { throw ValidationError("--positions: give positive positions") }
        print("infer-bench positions: \(modelPath); \(threads) threads; \(genTokens) tokens decoded at each position; \(kvCache) KV cache; median of \(runs) alternating runs" + (other.map { "; baseline \($0.path)" } ?? ""))
        print("position  arithmetic  prompt tokens   this build tok/s" + (other == nil ? "" : "   baseline tok/s   ratio"))
        var rows = ["position,arithmetic,prompt_tokens,this_decode_tokens_per_s,baseline_decode_tokens_per_s,ratio"]
        for position in wanted {
            let prompt = (0..<max(1, position - 1)).map { AblationBench.words[$0 % AblationBench.words.count] }
                .joined(separator: " ")
            for (name, flag) in arithmetics {
                let args = ["generate", "--model", modelPath, "--prompt", prompt, "--max-tokens", "\(genTokens)",
                            "--context", "\(position + genTokens + 64)", "--temperature", "0", "--ignore-eos",
                            "--threads", "\(threads)", "--format", "jsonl", "--kv-cache", kvCache, flag]
                var samples = [[WorkerReport]](repeating: [], count: builds.count)
                for r in 0..<runs {
                    for b in (r % 2 == 0 ? Array(builds.indices) : builds.indices.reversed()) {
                        samples[b].append(try WorkerReport.run(builds[b].1, args, what: "\(builds[b].0) at \(position) (\(name))"))
                    }
                }
                let speeds = samples.map { median($0.map(\.decodeTokensPerSecond)) }
                let promptTokens = Int(median(samples[0].map(\.promptTokens)))
                var line = String(format: "%8d  ", position) + name.padding(toLength: 10, withPad: " ", startingAt: 0)
                    + String(format: "  %13d   %16.1f", promptTokens, speeds[0])
                var row = "\(position),\(name),\(promptTokens)," + String(format: "%.2f", speeds[0])
                if speeds.count > 1 {
                    let ratio = speeds[0] / max(speeds[1], 1e-9)
                    line += String(format: "   %14.1f   %5.2fx", speeds[1], ratio)
                    row += String(format: ",%.2f,%.3f", speeds[1], ratio)
                } else {
                    row += ",,"
                }
                print(line)
                rows.append(row)
            }
        }
        try (rows.joined(separator: "\n") + "\n").write(toFile: csv, atomically: true, encoding: .utf8)
        print("CSV: \(csv)")
    }
}
