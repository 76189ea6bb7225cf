import ArgumentParser
import Foundation
import TesseraFormats

/// `infer-bench quantize`: `infer-worker quantize` against llama.cpp's quantizer (`llama_model_quantize` through
/// llama-cpp-python, what `llama-quantize` runs) from the same source file, for each file type: the tensor types each
/// chose, how many tensors came out byte for byte the same, file sizes and quantization times, and the perplexity of
/// both files on the same text measured by llama.cpp (so the written file must load there), with Tessera's own
/// perplexity of its file beside it.
struct QuantizeBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "quantize", abstract: "infer-worker quantize vs llama.cpp's quantizer: types, bytes, sizes, perplexity.")

    @Option(help: "F32/F16/BF16 GGUF source (default: the default model dequantized to F32 by infer-worker quantize --type f32).")
    var source: String?
    @Option(help: "Comma-separated file types.") var types = "q4_k_m,q5_k_m,q6_k,q4_k_s,q5_k_s,q3_k_m,q3_k_l,q2_k,iq4_xs,iq4_nl,q8_0,q5_1,q5_0,q4_1,q4_0"
    @Option(help: "Text for perplexity (default: ../shared/reference/ppl.txt).") var text: String?
    @Option(help: "Folder of the written files.")
    var cache = NSString(string: "~/.cache/tessera/bench/quantize").expandingTildeInPath
    @Option(help: "Python of a virtual environment with llama-cpp-python (launch/setup --llama-cpp makes one).")
    var python = NSString(string: "~/.cache/tessera/llama-venv/bin/python").expandingTildeInPath
    @Option(help: "Threads for the perplexity runs.") var threads = 2
    @Option(help: "CSV output.") var csv = "quantize.csv"

    func run() throws {
        let root = try repositoryRoot()
        let worker = root.appendingPathComponent(".build/release/infer-worker")
        guard FileManager.default.isExecutableFile(atPath: python) else {
            throw ValidationError("no llama-cpp-python at \(python): run launch/setup --llama-cpp (it builds llama.cpp with pip)")
        }
        try FileManager.default.createDirectory(atPath: cache, withIntermediateDirectories: true)
        let textPath = text ?? root.deletingLastPathComponent().appendingPathComponent("shared/reference/ppl.txt").path
        let sourcePath = try source ?? defaultSource(worker, root: root)
        print("infer-bench quantize: source \(sourcePath); perplexity on \(textPath) by llama.cpp (\(threads) threads)")

        var rows = ["type,tensors,same_type,byte_identical,tessera_MiB,llama_MiB,tessera_s,llama_s,ppl_llama_on_tessera,ppl_llama_on_llama,ppl_diff_percent,ppl_tessera_on_tessera"]
        print("type     tensors  same type  same bytes   MiB ours/theirs   quantize s ours/theirs   ppl (llama.cpp) ours / theirs  diff    Tessera ppl")
        for type in types.lowercased().split(separator: ",").map(String.init) {
            guard QuantizationMix(name: type) != nil else { print("\(type): not a file type infer-worker quantize writes"); continue }
            let ours = "\(cache)/tessera-\(type).gguf", theirs = "\(cache)/llama-\(type).gguf"
            let ourTime = try timed(worker, ["quantize", "--model", sourcePath, "--type", type, "--out", ours], what: "infer-worker quantize \(type)")
            try? FileManager.default.removeItem(atPath: theirs)
            let theirTime = try timed(URL(fileURLWithPath: python), ["-c", SyntheticFiles.quantizeScript, sourcePath, theirs, type],
                                      what: "llama.cpp quantize \(type)")
            let (count, sameType, sameBytes) = try compareTensors(ours, theirs)
            let pplOurs = try llamaPerplexity(ours, textPath), pplTheirs = try llamaPerplexity(theirs, textPath)
            let ownPPL = try tesseraPerplexity(worker, ours, textPath)
            let diff = 100 * (pplOurs / pplTheirs - 1)
            let (mibOurs, mibTheirs) = (try mebibytes(ours), try mebibytes(theirs))
            print(String(format: "%-8@ %7d  %9d  %10d   %7.1f / %-7.1f   %8.2f / %-8.2f     %9.4f / %-9.4f    %+6.2f%%  %9.4f",
                         type as NSString, count, sameType, sameBytes, mibOurs, mibTheirs, ourTime, theirTime,
                         pplOurs, pplTheirs, diff, ownPPL))
            rows.append(String(format: "%@,%d,%d,%d,%.2f,%.2f,%.3f,%.3f,%.5f,%.5f,%.4f,%.5f", type, count, sameType, sameBytes,
                               mibOurs, mibTheirs, ourTime, theirTime, pplOurs, pplTheirs, diff, ownPPL))
        }
        try (rows.joined(separator: "\n") + "\n").write(toFile: csv, atomically: true, encoding: .utf8)
        print("wrote \(csv)")
    }

    /// The default model as F32, written once into the cache.
    private func defaultSource(_ worker: URL, root: URL) throws -> String {
        let out = "\(cache)/source-f32.gguf"
        if FileManager.default.fileExists(atPath: out) { return out }
        let model = root.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
        _ = try timed(worker, ["quantize", "--model", model, "--type", "f32", "--out", out], what: "the F32 source")
        return out
    }

    private func timed(_ program: URL, _ arguments: [String], what: String) throws -> Double {
        let start = Date()
        let (status, _, err) = try runCapturing(program, arguments)
        guard status == 0 else { throw ValidationError("\(what) failed (exit \(status)): \(err.suffix(800))") }
        return Date().timeIntervalSince(start)
    }

    /// Tensors, how many have the same type in both files, and how many the same bytes too.
    private func compareTensors(_ a: String, _ b: String) throws -> (Int, Int, Int) {
        let (x, y) = (try GGUFFile(path: a), try GGUFFile(path: b))
        var sameType = 0, sameBytes = 0
        for name in x.tensorNames {
            guard let ix = x.tensorInfos[name], let iy = y.tensorInfos[name], ix.type == iy.type, ix.shape == iy.shape else { continue }
            sameType += 1
            let (vx, vy) = (try x.view(name), try y.view(name))
            if vx.data.count == vy.data.count && memcmp(vx.data.baseAddress!, vy.data.baseAddress!, vx.data.count) == 0 { sameBytes += 1 }
        }
        return (x.tensorNames.count, sameType, sameBytes)
    }

    private func mebibytes(_ path: String) throws -> Double {
        Double(try FileManager.default.attributesOfItem(atPath: path)[.size] as? Int ?? 0) / 1_048_576
    }

    /// llama.cpp's perplexity of the whole text in one window (as the references are made).
    private func llamaPerplexity(_ model: String, _ text: String) throws -> Double {
        let (status, out, err) = try runCapturing(URL(fileURLWithPath: python), ["-c", Self.perplexityScript, model, text, "\(threads)"])
        guard status == 0, let ppl = Double(out.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw ValidationError("llama.cpp could not score \(model) (exit \(status)): \(err.suffix(800))")
        }
        return ppl
    }

    private func tesseraPerplexity(_ worker: URL, _ model: String, _ text: String) throws -> Double {
        let (status, out, err) = try runCapturing(worker, ["perplexity", "--model", model, "--file", text, "--threads", "\(threads)"])
        let fields = out.split(separator: " ")
        guard status == 0, fields.count > 1, let ppl = Double(fields[1]) else {
            throw ValidationError("infer-worker perplexity failed on \(model) (exit \(status)): \(err.suffix(800))")
        }
        return ppl
    }

    /// `python -c SCRIPT MODEL TEXT THREADS`: exp(mean next-token NLL) over the text, BOS as the model's vocabulary says.
    static let perplexityScript = #"""
import sys, math, numpy as np, llama_cpp
model, path, threads = sys.argv[1], sys.argv[2], int(sys.argv[3])
llm = llama_cpp.Llama(model_path=model, n_ctx=2048, n_batch=2048, logits_all=True, n_threads=threads, verbose=False)
tokens = llm.tokenize(open(path, "rb").read(), add_bos=True)
llm.eval(tokens)
logits = np.asarray(llm.scores[:len(tokens)], dtype=np.float64)
logits -= logits.max(axis=1, keepdims=True)
logp = logits - np.log(np.exp(logits).sum(axis=1, keepdims=True))
nll = -np.mean([logp[i, tokens[i + 1]] for i in range(len(tokens) - 1)])
print(math.exp(nll))
"""#
}
