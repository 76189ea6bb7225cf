// Tiny inline configurations per architecture variant, with random weights, against the Double-precision
// definition in NaiveLlama.swift: Llama-3 rope scaling, biases, sliding window, GQA, GGUF row order, batching.
import Foundation
import TesseraFormats
import TesseraKernels
import TesseraModels
import XCTest

final class SyntheticModelTests: XCTestCase {
    let tokens = [3, 17, 5, 39, 0, 22, 8, 8, 31, 12]

    func config(scaling: RoPEScaling, bias: Bool, window: Int?, tied: Bool) throws -> LlamaConfig {
        try LlamaConfig(hiddenSize: 32, intermediateSize: 48, layerCount: 2, headCount: 4, kvHeadCount: 2, headDim: 8,
                        vocabularySize: 40, rmsNormEps: 1e-5, ropeTheta: 10000, ropeScaling: scaling,
                        contextLength: 64, tieWordEmbeddings: tied, attentionBias: bias, slidingWindow: window)
    }

    /// Every position's logits from `model` match the naive forward pass.
    func assertMatchesNaive(_ model: any LanguageModel, _ c: LlamaConfig, _ weights: [String: [Float]],
                            file: StaticString = #filePath, line: UInt = #line) throws {
        let cache = try model.makeCache(sequences: 1, contextLength: 16)
        let logits = try model.forward(Batch(tokens: tokens, allLogits: true), cache: cache)
        let expected = naiveLogits(c, weights: weights, tokens: tokens)
        var worst = 0.0
        for (t, row) in expected.enumerated() {
            for (i, e) in row.enumerated() { worst = max(worst, abs(Double(logits[t * c.vocabularySize + i]) - e)) }
        }
        XCTAssertLessThan(worst, 1e-4, "max |logit - naive|", file: file, line: line)
    }

    func memoryModel(_ c: LlamaConfig, seed: UInt64, maxBatchTokens: Int = 64,
                     compute: ComputeOptions = .exact) throws -> (LlamaModel, [String: [Float]]) {
        let store = MemoryStore()
        var weights: [String: [Float]] = [:]
        for (name, shape, values) in randomWeights(c, seed: seed) {
            store.add(name, shape: shape, values: values)
            weights[name] = values
        }
        let model = try LlamaFamily.load(config: c, store: store, naming: .huggingFace, file: "memory",
                                         options: LoadOptions(maxBatchTokens: maxBatchTokens, compute: compute))
        return (model, weights)
    }

    /// Fused operators (Q/K/V, gate/up + SiLU, norms folded into the products, residual adds in the stores) against
    /// the unfused steps, with biases and a sliding window: bit for bit in `.exact` mode, where attention is the same
    /// code; within float rounding in `.fast` mode, where fusion also switches attention to the online softmax.
    func testFusedEqualsUnfused() throws {
        let c = try config(scaling: .none, bias: true, window: 5, tied: true)
        for mode in [ComputeMode.exact, .fast] {
            for threads in [1, 2] {
                func logits(fused: Bool) throws -> [Float] {
                    let compute = ComputeOptions(mode: mode, pool: threads > 1 ? ThreadPool(threads: threads) : nil,
                                                 fused: fused)
                    let (model, weights) = try memoryModel(c, seed: 7, maxBatchTokens: 4, compute: compute)
                    try assertMatchesNaive(model, c, weights)   // batches of 4, then single-token steps
                    let cache = try model.makeCache(sequences: 1, contextLength: 16)
                    var all = try model.forward(Batch(tokens: Array(tokens[..<6]), allLogits: true), cache: cache)
                    for (i, t) in tokens[6...].enumerated() {
                        all += try model.forward(Batch(tokens: [t], startingAt: 6 + i), cache: cache)
                    }
                    return all
                }
                let fused = try logits(fused: true), unfused = try logits(fused: false)
                if mode == .exact {
                    XCTAssertEqual(fused.map(\.bitPattern), unfused.map(\.bitPattern), "exact, \(threads) threads")
                } else {
                    for (a, b) in zip(fused, unfused) { XCTAssertEqual(a, b, accuracy: 1e-4, "fast, \(threads) threads") }
                }
            }
        }
    }

    func testHuggingFaceLayoutWithLlama3ScalingBiasAndSlidingWindow() throws {
        let c = try config(scaling: .llama3(factor: 8, lowFrequencyFactor: 1, highFrequencyFactor: 4,
                                            originalContextLength: 16), bias: true, window: 4, tied: false)
        let (model, weights) = try memoryModel(c, seed: 1)
        try assertMatchesNaive(model, c, weights)
    }

    /// Writes the weights as a GGUF file of `architecture`; `llama` files get the converter's Q/K row permutation.
    func writeGGUF(_ c: LlamaConfig, seed: UInt64, architecture a: String) throws -> (String, [String: [Float]]) {
        var writer = try GGUFWriter()
        try writer.set("general.architecture", .string(a))
        for (key, value) in [("embedding_length", c.hiddenSize), ("feed_forward_length", c.intermediateSize),
                             ("block_count", c.layerCount), ("attention.head_count", c.headCount),
                             ("attention.head_count_kv", c.kvHeadCount), ("context_length", c.contextLength),
                             ("vocab_size", c.vocabularySize)] {
            try writer.set("\(a).\(key)", .uint32(UInt32(value)))
        }
        try writer.set("\(a).attention.layer_norm_rms_epsilon", .float32(c.rmsNormEps))
        try writer.set("\(a).rope.freq_base", .float32(Float(c.ropeTheta)))
        if case .linear(let factor) = c.ropeScaling {
            try writer.set("\(a).rope.scaling.type", .string("linear"))
            try writer.set("\(a).rope.scaling.factor", .float32(Float(factor)))
        }
        /// GGUF row 2i+j of a head is HF row j·d/2+i (llama.cpp's convert_hf_to_gguf `permute`).
        func permuted(_ v: [Float], heads: Int) -> [Float] {
            let d = c.headDim, cols = v.count / (heads * d)
            var out = v
            for h in 0..<heads { for i in 0..<(d / 2) { for j in 0..<2 {
                let dst = (h * d + 2 * i + j) * cols, src = (h * d + j * d / 2 + i) * cols
                for k in 0..<cols { out[dst + k] = v[src + k] }
            } } }
            return out
        }
        let parts = ["input_layernorm": "attn_norm", "self_attn.q_proj": "attn_q", "self_attn.k_proj": "attn_k",
                     "self_attn.v_proj": "attn_v", "self_attn.o_proj": "attn_output",
                     "post_attention_layernorm": "ffn_norm", "mlp.gate_proj": "ffn_gate", "mlp.up_proj": "ffn_up",
                     "mlp.down_proj": "ffn_down"]
        var weights: [String: [Float]] = [:]
        for (name, shape, values) in randomWeights(c, seed: seed) {
            weights[name] = values
            var ggufName = ["model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                            "lm_head.weight": "output.weight"][name] ?? name
            var stored = values
            let pieces = name.split(separator: ".").map(String.init)
            if pieces.count >= 5, pieces[1] == "layers" {
                let part = pieces[3..<(pieces.count - 1)].joined(separator: ".")
                ggufName = "blk.\(pieces[2]).\(parts[part]!).\(pieces.last!)"
                if a == "llama", part == "self_attn.q_proj" { stored = permuted(values, heads: c.headCount) }
                if a == "llama", part == "self_attn.k_proj" { stored = permuted(values, heads: c.kvHeadCount) }
            }
            try writer.addTensor(ggufName, shape: shape, values: stored)
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-\(a)-\(UUID().uuidString).gguf").path
        try writer.write(to: path)
        return (path, weights)
    }

    func testGGUFLlamaPermutedRowsWithLinearScaling() throws {
        let c = try config(scaling: .linear(factor: 2), bias: true, window: nil, tied: true)
        let (path, weights) = try writeGGUF(c, seed: 2, architecture: "llama")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try assertMatchesNaive(try loadModel(path), c, weights)
    }

    func testGGUFQwen2RotateHalfWithBias() throws {
        let c = try config(scaling: .none, bias: true, window: nil, tied: false)
        let (path, weights) = try writeGGUF(c, seed: 3, architecture: "qwen2")
        defer { try? FileManager.default.removeItem(atPath: path) }
        try assertMatchesNaive(try loadModel(path), c, weights)
    }

    /// Two sequences interleaved in one batch, run in chunks of 3 tokens, give the logits each gives alone.
    func testBatchedAndChunkedEqualsSeparate() throws {
        let c = try config(scaling: .none, bias: false, window: nil, tied: true)
        let (chunked, _) = try memoryModel(c, seed: 4, maxBatchTokens: 3)
        let (whole, _) = try memoryModel(c, seed: 4)
        let a = Array(tokens.prefix(7)), b = Array(tokens.suffix(5))
        var batch = Batch()
        for i in 0..<7 {
            batch.append(token: a[i], position: i, sequence: 0, wantsLogits: true)
            if i < 5 { batch.append(token: b[i], position: i, sequence: 1, wantsLogits: i == 4) }
        }
        let together = try chunked.forward(batch, cache: try chunked.makeCache(sequences: 2, contextLength: 8))
        let aloneA = try whole.forward(Batch(tokens: a, allLogits: true), cache: try whole.makeCache(sequences: 1, contextLength: 8))
        let aloneB = try whole.forward(Batch(tokens: b), cache: try whole.makeCache(sequences: 1, contextLength: 8))
        let v = c.vocabularySize
        // batch order of logit rows: a0 a1 a2 a3 a4 b4 a5 a6
        let rowsA = [0, 1, 2, 3, 4, 6, 7]
        for (i, row) in rowsA.enumerated() {
            XCTAssertEqual(Array(together[row * v ..< (row + 1) * v]), Array(aloneA[i * v ..< (i + 1) * v]), "sequence 0 position \(i)")
        }
        XCTAssertEqual(Array(together[5 * v ..< 6 * v]), aloneB, "sequence 1 last position")
    }

    /// Prompt processing then one-token decode steps give the logits a single full pass gives.
    func testIncrementalDecodeEqualsFullPass() throws {
        let c = try config(scaling: .none, bias: false, window: 3, tied: true)
        let (model, _) = try memoryModel(c, seed: 5)
        let full = try model.forward(Batch(tokens: tokens, allLogits: true),
                                     cache: try model.makeCache(sequences: 1, contextLength: 16))
        let cache = try model.makeCache(sequences: 1, contextLength: 16)
        var rows = try model.forward(Batch(tokens: Array(tokens.prefix(4))), cache: cache)
        for p in 4..<tokens.count {
            rows += try model.forward(Batch(tokens: [tokens[p]], startingAt: p), cache: cache)
        }
        XCTAssertEqual(cache.offset(of: 0), tokens.count)
        let v = c.vocabularySize
        XCTAssertEqual(rows, Array(full[(3 * v)...]))
    }

    /// Models are assembled from a factory's linears (a parallel plan hands in shards); ones that do not chain are
    /// refused when the model is built, before any math runs.
    func testMismatchedLinearsAreRefused() throws {
        let c = try config(scaling: .none, bias: false, window: nil, tied: true)
        let (model, _) = try memoryModel(c, seed: 6)
        var blocks = model.blocks
        blocks[1].mlp.down = blocks[1].mlp.gate   // [48 × 32] where [32 × 48] belongs
        XCTAssertThrowsError(try LlamaModel(config: c, embedding: model.embedding, blocks: blocks, norm: model.norm,
                                            head: model.head, rope: model.rope, store: nil)) { error in
            XCTAssertTrue("\(error)".contains("layer 1 down"), "\(error)")
        }
        let rebuilt = try LlamaModel(config: c, embedding: model.embedding, blocks: model.blocks, norm: model.norm,
                                     head: model.head, rope: model.rope, store: nil)
        XCTAssertEqual(try rebuilt.forward(Batch(tokens: [1, 2]), cache: rebuilt.makeCache(sequences: 1, contextLength: 4)),
                       try model.forward(Batch(tokens: [1, 2]), cache: model.makeCache(sequences: 1, contextLength: 4)))
    }
}
