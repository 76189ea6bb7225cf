import ArgumentParser
import Foundation
import TesseraFormats
import TesseraKernels

/// `infer-bench compare`: Tessera against llama.cpp (through llama-cpp-python) on the same GGUF file with the same
/// thread count, runs alternating between the engines; prints median prompt and decode tokens/s, the ratios and each
/// engine's share of the bandwidth roofline. With `--types`, the files are synthetic models of each type at each
/// `--shapes` preset (written by `synth-model`, or by llama.cpp's own quantizer from the f16 one for the mixes), and a
/// per-type summary, CSV and bar chart of the ratios follow.
struct CompareBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare", abstract: "Tessera vs llama.cpp on one GGUF file, same threads, alternating runs.")

    @Option(help: "GGUF file (default: the default model).") var model: String?
    @Option(help: "Comma-separated weight types of synthetic files to measure instead of --model: q8_0, q5_0, q5_1, q4_0, f16, f32 (written here) or any llama.cpp file type (q4_k_m, q5_k_m, q6_k, q3_k_m, q2_k, iq4_nl, iq4_xs, bf16, …: llama.cpp's quantizer applied to the f16 file).")
    var types: String?
    @Option(help: "Comma-separated synthetic shapes for --types: 1b (TinyLlama-1.1B), 896 (Qwen2.5-0.5B, hidden 896), tiny.")
    var shapes = "1b,896"
    @Option(help: "Folder of the synthetic files (made once, reused).")
    var cache = NSString(string: "~/.cache/tessera/bench").expandingTildeInPath
    @Option(help: "Threads for both engines (comma-separated list runs each).") var threads = "2"
    @Option(help: "Runs per engine and thread count (median reported).") var runs = 5
    @Option(help: "Approximate prompt length in tokens.") var promptTokens = 128
    @Option(help: "Tokens to generate.") var genTokens = 128
    @Option(help: "Python of a virtual environment with llama-cpp-python (launch/setup --llama-cpp makes one).")
    var python = NSString(string: "~/.cache/tessera/llama-venv/bin/python").expandingTildeInPath
    @Option(help: "The llama.cpp program measured: python (llama-cpp-python, greedy generation) or llama-bench (llama.cpp's own benchmark, built by launch/setup --llama-tools; prompt and generation measured apart, as it does).")
    var peer = "python"
    @Option(help: "Folder of llama.cpp's programs (launch/setup --llama-tools).")
    var llamaTools = NSString(string: "~/.cache/tessera/llama-tools").expandingTildeInPath
    @Flag(help: "Tessera's exact float32 products instead of the fast kernels.") var exact = false
    @Option(help: "CSV output (with --types also NAME-types.svg, the chart of the ratios).") var csv = "compare.csv"

    struct Speed { var prompt: Double; var decode: Double }
    /// One thread count's medians on one file.
    struct Row { let label: String; let threads: Int; let ours: Speed; let theirs: Speed; let roofline: (Double, Double) }

    func run() throws {
        let root = try repositoryRoot()
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw ValidationError("no llama-cpp-python at \(python): run launch/setup --llama-cpp (it builds llama.cpp with pip)")
        }
        guard ["python", "llama-bench"].contains(peer) else { throw ValidationError("--peer: python or llama-bench, not '\(peer)'") }
        if peer == "llama-bench" && !FileManager.default.isExecutableFile(atPath: llamaBench) {
            throw ValidationError("no llama-bench at \(llamaBench): run launch/setup --llama-tools (cmake build of llama.cpp)")
        }
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-llama-bench.py")
        try Self.llamaScript.write(to: script, atomically: true, encoding: .utf8)
        print("infer-bench compare: ~\(promptTokens)-token prompt, \(genTokens) generated tokens; Tessera \(exact ? "exact" : "fast") products; median of \(runs) alternating runs; peer: \(try llamaBuild())")
        let threadCounts = threads.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        var rows: [Row] = []
        if let types {
            let files = SyntheticFiles(cache: cache, python: python)
            for shape in shapes.split(separator: ",").map(String.init) {
                guard let preset = SyntheticModelCommand.Preset(rawValue: shape) else {
                    throw ValidationError("--shapes: unknown shape '\(shape)' (\(SyntheticModelCommand.Preset.allCases.map(\.rawValue).joined(separator: ", ")))")
                }
                for type in types.lowercased().split(separator: ",").map(String.init) {
                    do {
                        let path = try files.path(preset: preset, type: type)
                        rows += try measure(path, label: "\(shape) \(type)", threads: threadCounts, script: script, root: root)
                    } catch {
                        print("\(shape) \(type): not measured: \(error)")
                    }
                }
            }
            printSummary(rows)
            let chart = (csv.hasSuffix(".csv") ? String(csv.dropLast(4)) : csv) + "-types.svg"
            try RatioChart(rows: rows).svg().write(toFile: chart, atomically: true, encoding: .utf8)
            print("chart: \(chart)")
        } else {
            let modelPath = model ?? root.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
            rows = try measure(modelPath, label: (modelPath as NSString).lastPathComponent, threads: threadCounts,
                               script: script, root: root)
        }
        var lines = ["file,threads,tessera_prompt_tps,llama_prompt_tps,tessera_decode_tps,llama_decode_tps,prompt_ratio,decode_ratio,tessera_roofline,llama_roofline"]
        for r in rows {
            lines.append(String(format: "%@,%d,%.2f,%.2f,%.2f,%.2f,%.3f,%.3f,%.4f,%.4f", r.label, r.threads, r.ours.prompt,
                                r.theirs.prompt, r.ours.decode, r.theirs.decode, r.ours.prompt / max(r.theirs.prompt, 1e-9),
                                r.ours.decode / max(r.theirs.decode, 1e-9), r.roofline.0, r.roofline.1))
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: csv, atomically: true, encoding: .utf8)
        print("CSV: \(csv)")
    }

    /// Both engines on one file at each thread count, runs alternating; prints the per-file table.
    func measure(_ modelPath: String, label: String, threads: [Int], script: URL, root: URL) throws -> [Row] {
        let words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "children", "watch"]
        let prompt = (0..<max(1, promptTokens * 3 / 4)).map { words[$0 % words.count] }.joined(separator: " ")
        let worker = root.appendingPathComponent(".build/release/infer-worker")
        let bytesPerToken = try Self.weightBytesPerToken(modelPath)
        print("\n\(modelPath)\n\(try Self.typeSummary(modelPath))")
        print(String(format: "weights read per generated token: %.1f MiB (every matrix a decode step multiplies)",
                     Double(bytesPerToken) / 1048576))
        print("threads  engine      prompt tok/s   decode tok/s   read GB/s   roofline")
        var rows: [Row] = []
        for t in threads {
            var ours: [Speed] = [], theirs: [Speed] = []
            for r in 0..<runs {
                for engine in (r % 2 == 0 ? [0, 1] : [1, 0]) {
                    if engine == 0 {
                        let args = ["generate", "--model", modelPath, "--prompt", prompt, "--max-tokens", "\(genTokens)",
                                    "--temperature", "0", "--ignore-eos", "--threads", "\(t)", "--format", "jsonl",
                                    exact ? "--exact-f32" : "--fast"]
                        ours.append(try tessera(worker, args))
                    } else {
                        theirs.append(peer == "llama-bench" ? try llamaBenchRun(modelPath, threads: t)
                                      : try llama(script, modelPath, threads: t, prompt: prompt))
                    }
                }
            }
            let a = Speed(prompt: median(ours.map(\.prompt)), decode: median(ours.map(\.decode)))
            let b = Speed(prompt: median(theirs.map(\.prompt)), decode: median(theirs.map(\.decode)))
            // the roofline: weight bytes per token × tokens/s ÷ the read bandwidth measured now with t threads
            let bandwidth = MemoryBandwidth.measure(bytes: 1 << 30, threads: t)
            let ra = Double(bytesPerToken) * a.decode / bandwidth, rb = Double(bytesPerToken) * b.decode / bandwidth
            print(String(format: "%7d  Tessera    %12.1f   %12.1f   %9.2f   %7.1f%%", t, a.prompt, a.decode,
                         Double(bytesPerToken) * a.decode / 1e9, 100 * ra))
            print(String(format: "%7d  llama.cpp  %12.1f   %12.1f   %9.2f   %7.1f%%", t, b.prompt, b.decode,
                         Double(bytesPerToken) * b.decode / 1e9, 100 * rb))
            print(String(format: "%7d  ratio      %12.2fx  %12.2fx   (machine read bandwidth %.2f GB/s)", t,
                         a.prompt / max(b.prompt, 1e-9), a.decode / max(b.decode, 1e-9), bandwidth / 1e9))
            rows.append(Row(label: label, threads: t, ours: a, theirs: b, roofline: (ra, rb)))
        }
        return rows
    }

    /// The per-type table of a `--types` run: ratios per thread count, and the goal (decode ≥ 1.2×, prompt ≥ 1.5×).
    func printSummary(_ rows: [Row]) {
        print("\nsummary (Tessera / llama.cpp; goal: decode >= 1.20x, prompt >= 1.50x)")
        print("file                 threads   prompt ratio   decode ratio   roofline Tessera / llama.cpp")
        for r in rows {
            let p = r.ours.prompt / max(r.theirs.prompt, 1e-9), d = r.ours.decode / max(r.theirs.decode, 1e-9)
            print(String(format: "%@ %7d   %11.2fx%@   %11.2fx%@   %5.1f%% / %5.1f%%",
                         r.label.padding(toLength: 20, withPad: " ", startingAt: 0), r.threads, p, p >= 1.5 ? " " : "*",
                         d, d >= 1.2 ? " " : "*", 100 * r.roofline.0, 100 * r.roofline.1))
        }
        print("(* below the goal)")
    }

    /// "Q4_K 169, Q6_K 29, F32 141"-style count of a file's tensor types.
    static func typeSummary(_ path: String) throws -> String {
        guard case .gguf(let file) = try ModelSource.open(path: path) else { return "" }
        var counts: [String: Int] = [:]
        for info in file.tensorInfos.values { counts[info.type.description, default: 0] += 1 }
        return "tensor types: " + counts.sorted { $0.value > $1.value }.map { "\($0.key) \($0.value)" }.joined(separator: ", ")
    }

    /// Which llama.cpp the peer is: llama-cpp-python's version and llama.cpp's system info (the CPU features it
    /// was built with and uses).
    var llamaBench: String { "\(llamaTools)/bin/llama-bench" }

    /// One llama-bench run: prompt processing of `promptTokens` and generation of `genTokens`, one repetition.
    func llamaBenchRun(_ model: String, threads: Int) throws -> Speed {
        let args = ["-m", model, "-p", "\(promptTokens)", "-n", "\(genTokens)", "-t", "\(threads)", "-r", "1", "-o", "json"]
        let (status, out, err) = try runCapturing(URL(fileURLWithPath: llamaBench), args)
        guard status == 0, let tests = try? JSONSerialization.jsonObject(with: Data(out.utf8)) as? [[String: Any]],
              let p = tests.first(where: { ($0["n_gen"] as? Int) == 0 })?["avg_ts"] as? Double,
              let d = tests.first(where: { ($0["n_prompt"] as? Int) == 0 })?["avg_ts"] as? Double else {
            throw ValidationError("llama-bench run failed (exit \(status)): \(err.suffix(1500))")
        }
        return Speed(prompt: p, decode: d)
    }

    func llamaBuild() throws -> String {
        if peer == "llama-bench" {
            let build = (try? String(contentsOfFile: "\(llamaTools)/BUILD", encoding: .utf8)) ?? ""
            return "llama-bench (" + build.split(separator: "\n").joined(separator: "; ") + ")"
        }
        let code = "import llama_cpp; print(llama_cpp.__version__, llama_cpp.llama_print_system_info().decode().strip())"
        let (status, out, err) = try runCapturing(URL(fileURLWithPath: python), ["-c", code])
        guard status == 0 else { throw ValidationError("llama-cpp-python does not import: \(err.suffix(500))") }
        let recorded = URL(fileURLWithPath: python).deletingLastPathComponent().deletingLastPathComponent()
            .appendingPathComponent("tessera-build.txt")
        let flags = (try? String(contentsOf: recorded, encoding: .utf8))?.trimmingCharacters(in: .whitespacesAndNewlines)
            ?? "build flags not recorded (built before launch/setup recorded them)"
        return "llama-cpp-python " + out.trimmingCharacters(in: .whitespacesAndNewlines) + " (\(flags))"
    }

    /// Bytes of the weight matrices one decode step reads: every 2-D tensor but the token embedding (one row is
    /// looked up), which counts only when it is also the output head (no `output.weight`).
    static func weightBytesPerToken(_ path: String) throws -> Int {
        guard case .gguf(let file) = try ModelSource.open(path: path) else {
            throw ValidationError("compare needs a GGUF file, got \(path)")
        }
        let tied = file.tensorInfos["output.weight"] == nil
        return file.tensorInfos.values.filter { $0.shape.count == 2 && ($0.name != "token_embd.weight" || tied) }
            .reduce(0) { $0 + $1.rowCount * $1.rowBytes }
    }

    func tessera(_ worker: URL, _ args: [String]) throws -> Speed {
        let report = try WorkerReport.run(worker, args, what: "Tessera")
        return Speed(prompt: report.promptTokensPerSecond, decode: report.decodeTokensPerSecond)
    }

    func llama(_ script: URL, _ model: String, threads: Int, prompt: String) throws -> Speed {
        let (status, out, err) = try runCapturing(URL(fileURLWithPath: python), [script.path, model, "\(threads)", prompt, "\(genTokens)"])
        guard status == 0, let data = out.split(separator: "\n").last.map({ Data($0.utf8) }),
              let json = try? JSONSerialization.jsonObject(with: data) as? [String: Double],
              let p = json["prompt_tps"], let d = json["decode_tps"] else {
            throw ValidationError("llama.cpp run failed: \(err.suffix(1500))")
        }
        return Speed(prompt: p, decode: d)
    }


    /// Greedy generation with llama.cpp's own timing of prompt evaluation and of each decode step, measured the
    /// way Tessera reports them (prompt tokens / prefill time; decode steps / decode time).
    static let llamaScript = #"""
import json, sys, time
import numpy as np
from llama_cpp import Llama
model, threads, text, gen = sys.argv[1], int(sys.argv[2]), sys.argv[3], int(sys.argv[4])
llm = Llama(model_path=model, n_threads=threads, n_threads_batch=threads, n_ctx=2048, n_batch=512, verbose=False)
tokens = llm.tokenize(text.encode("utf-8"), add_bos=True)
llm.reset()
t0 = time.perf_counter(); llm.eval(tokens); t1 = time.perf_counter()
token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
t2 = time.perf_counter()
for _ in range(gen - 1):
    llm.eval([token])
    token = int(np.argmax(llm.scores[llm.n_tokens - 1]))
t3 = time.perf_counter()
print(json.dumps({"prompt_tokens": len(tokens), "prompt_tps": len(tokens) / (t1 - t0), "decode_tps": (gen - 1) / (t3 - t2)}))
"""#
}
