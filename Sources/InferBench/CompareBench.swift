import ArgumentParser
import Foundation
import TesseraFormats
import TesseraKernels

/// `infer-bench compare`: Tessera against llama.cpp (through llama-cpp-python) on the same GGUF file with the same
/// thread count, runs alternating between the engines; prints median prompt and decode tokens/s and the ratios.
struct CompareBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "compare", abstract: "Tessera vs llama.cpp on one GGUF file, same threads, alternating runs.")

    @Option(help: "GGUF file (default: the default model).") var model: String?
    @Option(help: "Threads for both engines (comma-separated list runs each).") var threads = "2"
    @Option(help: "Runs per engine and thread count (median reported).") var runs = 5
    @Option(help: "Approximate prompt length in tokens.") var promptTokens = 128
    @Option(help: "Tokens to generate.") var genTokens = 128
    @Option(help: "Python of a virtual environment with llama-cpp-python (launch/setup --llama-cpp makes one).")
    var python = NSString(string: "~/.cache/tessera/llama-venv/bin/python").expandingTildeInPath
    @Flag(help: "Tessera's exact float32 products instead of the fast kernels.") var exact = false

    struct Speed { var prompt: Double; var decode: Double }

    func run() throws {
        let root = try repositoryRoot()
        let modelPath = model ?? root.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw ValidationError("no llama-cpp-python at \(python): run launch/setup --llama-cpp (it builds llama.cpp with pip)")
        }
        let script = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-llama-bench.py")
        try Self.llamaScript.write(to: script, atomically: true, encoding: .utf8)
        let words = ["the", "quick", "brown", "fox", "jumps", "over", "a", "lazy", "dog", "while", "children", "watch"]
        let prompt = (0..<max(1, promptTokens * 3 / 4)).map { words[$0 % words.count] }.joined(separator: " ")
        let worker = root.appendingPathComponent(".build/release/infer-worker")
        print("infer-bench compare: \(modelPath); ~\(promptTokens)-token prompt, \(genTokens) generated tokens; Tessera \(exact ? "exact" : "fast") products; median of \(runs) alternating runs")
        let bytesPerToken = try Self.weightBytesPerToken(modelPath)
        print(String(format: "weights read per generated token: %.1f MiB (every matrix a decode step multiplies)",
                     Double(bytesPerToken) / 1048576))
        print("threads  engine      prompt tok/s   decode tok/s   read GB/s   roofline")
        var csv = ["threads,engine,prompt_tokens_per_s,decode_tokens_per_s,roofline_fraction"]
        for t in threads.split(separator: ",").compactMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) {
            var ours: [Speed] = [], theirs: [Speed] = []
            for r in 0..<runs {
                for engine in (r % 2 == 0 ? [0, 1] : [1, 0]) {
                    if engine == 0 {
                        var args = ["generate", "--model", modelPath, "--prompt", prompt, "--max-tokens", "\(genTokens)",
                                    "--temperature", "0", "--ignore-eos", "--threads", "\(t)", "--format", "jsonl"]
                        if !exact { args.append("--fast") }
                        ours.append(try tessera(worker, args))
                    } else {
                        theirs.append(try llama(script, modelPath, threads: t, prompt: prompt))
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
            csv.append(String(format: "%d,tessera,%.2f,%.2f,%.4f", t, a.prompt, a.decode, ra))
            csv.append(String(format: "%d,llama.cpp,%.2f,%.2f,%.4f", t, b.prompt, b.decode, rb))
        }
        try (csv.joined(separator: "\n") + "\n").write(toFile: "compare.csv", atomically: true, encoding: .utf8)
        print("CSV: compare.csv")
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
