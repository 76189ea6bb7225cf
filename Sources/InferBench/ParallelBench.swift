import ArgumentParser
import Foundation

/// `infer-bench parallel`: runs one model through a list of topologies, each as a real MPI job started by
/// launch/tessera, alternating topologies run by run, and prints per topology the median decode and prompt speed,
/// the largest per-rank resident weight memory, and the communication share of step time; CSV out.
struct ParallelBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "parallel", abstract: "Decode/prompt speed, per-rank memory and communication share per topology.")

    @Option(help: "Model file or folder (default: the default model).") var model: String?
    @Option(help: "Comma-separated topology names from topologies/ (tp1 = one rank); NAMExK runs it with K threads per rank; NAME@LABEL is another entry of the same topology (for --extra).")
    var topologies = "tp1x2,tp2,pp2"
    @Option(help: "Extra infer-worker arguments per entry, as NAME=ARGS;... (e.g. 'tp2=--tp-reduction mpi').")
    var extra: String = ""
    @Flag(help: "Exact float32 products (infer-worker --exact-f32) in every run instead of the default fast kernels.") var exactF32 = false
    @Option(help: "Approximate prompt length in tokens.") var promptTokens = 64
    @Option(help: "Tokens to generate per run (per sequence).") var genTokens = 32
    @Option(help: "Sequences decoded at once: this many prompts in one run (--prompts-file), each a variant of the prompt.")
    var sequences = 1
    @Option(help: "Runs per topology (median reported).") var runs = 3
    @Option(help: "CSV output file.") var csv = "parallel.csv"

    struct Sample { var prompt = 0.0, decode = 0.0, maxResidentMiB = 0.0, commShare = 0.0, activationKiBPerToken = 0.0 }

    func run() throws {
        let root = try repositoryRoot()
        let names = topologies.split(separator: ",").map { String($0).trimmingCharacters(in: .whitespaces) }
        var extras: [String: [String]] = [:]
        for item in extra.split(separator: ";") {
            let parts = item.split(separator: "=", maxSplits: 1)
            if parts.count == 2 { extras[String(parts[0])] = parts[1].split(separator: " ").map(String.init) }
        }
        let words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "children", "watch"]
        let prompt = (0..<max(1, promptTokens * 3 / 4)).map { words[$0 % words.count] }.joined(separator: " ")
        var samples: [String: [Sample]] = [:]
        guard sequences > 0 else { throw ValidationError("--sequences must be positive, got \(sequences)") }
        let promptsFile = FileManager.default.temporaryDirectory
            .appendingPathComponent("infer-bench-parallel-\(ProcessInfo.processInfo.processIdentifier).txt")
        defer { try? FileManager.default.removeItem(at: promptsFile) }
        let promptArgs: [String]
        if sequences == 1 {
            promptArgs = ["--prompt", prompt]
        } else {
            let variants = (0..<sequences).map { "\(words[$0 % words.count]) \($0): \(prompt)" }
            try (variants.joined(separator: "\n") + "\n").write(to: promptsFile, atomically: true, encoding: .utf8)
            promptArgs = ["--prompts-file", promptsFile.path]
        }
        print("infer-bench parallel: model \(model ?? "default"), \(exactF32 ? "exact" : "fast") products, ~\(promptTokens)-token prompt, \(sequences) sequence\(sequences == 1 ? "" : "s") of \(genTokens) generated tokens, median of \(runs) runs, topologies alternating")
        for r in 0..<runs {
            for name in (r % 2 == 0 ? names : names.reversed()) {
                let (file, threads) = Self.entry(name)
                let topology = root.appendingPathComponent("topologies/\(file).yaml").path
                guard FileManager.default.fileExists(atPath: topology) else { throw ValidationError("no topology \(topology)") }
                var args = ["--topology", topology, "generate"] + promptArgs + ["--max-tokens", "\(genTokens)",
                            "--temperature", "0", "--ignore-eos", "--format", "jsonl", "--threads", "\(threads)"]
                    + (extras[name] ?? [])
                if let model { args += ["--model", model] }
                args.append(exactF32 ? "--exact-f32" : "--fast")
                let (status, _, stderr) = try runCapturing(root.appendingPathComponent("launch/tessera"), args)
                guard status == 0 else { throw ValidationError("\(name) failed (exit \(status)):\n\(stderr.suffix(2000))") }
                samples[name, default: []].append(parse(stderr))
            }
        }
        var rows = ["topology,decode_tokens_per_s,prompt_tokens_per_s,max_rank_weights_MiB,comm_share_percent,max_rank_activation_KiB_per_token"]
        let baseline = samples[names[0]].map { median($0.map(\.decode)) } ?? 0
        print("topology        decode tok/s   prompt tok/s   max rank weights MiB   comm share   decode vs \(names[0])   activations KiB/token")
        print("(one rank has no per-rank table: its column is the process's peak resident memory; comm share is the mean over decoder ranks; activations: the most any rank moves through its tp and pp groups per token)")
        for name in names {
            let s = samples[name] ?? []
            let decode = median(s.map(\.decode)), promptSpeed = median(s.map(\.prompt))
            let memory = median(s.map(\.maxResidentMiB)), comm = median(s.map(\.commShare))
            let moved = median(s.map(\.activationKiBPerToken))
            print(String(format: "%-15@ %12.2f %14.2f %22.2f %11.1f%% %16.3f %23.2f", name as NSString, decode, promptSpeed, memory,
                         comm, baseline > 0 ? decode / baseline : 0, moved))
            rows.append(String(format: "%@,%.3f,%.3f,%.2f,%.2f,%.3f", name as NSString, decode, promptSpeed, memory, comm, moved))
        }
        try (rows.joined(separator: "\n") + "\n").write(toFile: csv, atomically: true, encoding: .utf8)
        print("CSV: \(csv)")
    }

    /// `tp2` -> (tp2, 1 thread); `tp1x2` -> (tp1, 2 threads); `pp2@serial` -> (pp2, 1 thread).
    static func entry(_ entry: String) -> (topology: String, threads: Int) {
        let name = entry.split(separator: "@", maxSplits: 1).first.map(String.init) ?? entry
        if let x = name.lastIndex(of: "x"), let k = Int(name[name.index(after: x)...]), k > 0 {
            return (String(name[..<x]), k)
        }
        return (name, 1)
    }

    /// Reads the speed report and the per-rank table from infer-worker's stderr.
    func parse(_ stderr: String) -> Sample {
        var sample = Sample(), peak = 0.0, shares: [Double] = []
        for line in stderr.split(separator: "\n") {
            let numbers = line.replacingOccurrences(of: ",", with: " ").replacingOccurrences(of: ";", with: " ")
                .split(separator: " ").compactMap { Double($0.trimmingCharacters(in: CharacterSet(charactersIn: "%"))) }
            if line.contains("tokens/s; generated"), numbers.count >= 6 {
                sample.prompt = numbers[1]; sample.decode = numbers[3]; peak = numbers[numbers.count - 1]
            } else if line.contains(" / ") && line.contains("stage") {
                // "... stage S tp T   RESIDENT / PLANNED   COMM  SHARE%   COMPUTE / COMM (ms per step)"
                let tokens = line.split(separator: " ").map(String.init)
                if let slash = tokens.firstIndex(of: "/"), slash > 0, slash + 3 < tokens.count,
                   let resident = Double(tokens[slash - 1]), let share = Double(tokens[slash + 3].dropLast()) {
                    sample.maxResidentMiB = max(sample.maxResidentMiB, resident)
                    shares.append(share)
                    sample.activationKiBPerToken = max(sample.activationKiBPerToken, Double(tokens.last ?? "") ?? 0)
                }
            }
        }
        if sample.maxResidentMiB == 0 { sample.maxResidentMiB = peak }   // one rank: no rank table; its peak RSS
        sample.commShare = shares.isEmpty ? 0 : shares.reduce(0, +) / Double(shares.count)
        return sample
    }

}

/// The checkout this binary was built in (…/.build/<triple>/release/infer-bench), or the current directory.
func repositoryRoot() throws -> URL {
    var dir = URL(fileURLWithPath: CommandLine.arguments[0]).resolvingSymlinksInPath().deletingLastPathComponent()
    for _ in 0..<5 {
        if FileManager.default.fileExists(atPath: dir.appendingPathComponent("launch/tessera").path) { return dir }
        dir.deleteLastPathComponent()
    }
    let cwd = URL(fileURLWithPath: FileManager.default.currentDirectoryPath)
    guard FileManager.default.fileExists(atPath: cwd.appendingPathComponent("launch/tessera").path) else {
        throw ValidationError("run infer-bench from the Tessera checkout (launch/tessera not found)")
    }
    return cwd
}
