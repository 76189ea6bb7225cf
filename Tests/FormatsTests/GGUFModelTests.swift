import Foundation
import TesseraFormats
import XCTest

/// The real GGUF files: stories260K (F32, compared with the HF safetensors of the same weights) and SmolLM2 (Q4_1).
final class GGUFModelTests: XCTestCase {
    func testStories260KMetadataAgreesWithHFConfig() throws {
        let gguf = try GGUFFile(path: Paths.stories260KGGUF)
        let hf = try HuggingFaceFolder(path: Paths.stories260KHF)
        XCTAssertEqual(gguf.version, 3)
        XCTAssertEqual(gguf.alignment, 32)
        XCTAssertEqual(gguf.architecture, "llama")
        XCTAssertEqual(gguf.metadata["general.name"]?.string, "stories260K")
        let config = hf.config
        XCTAssertEqual(gguf.metadata["llama.embedding_length"]?.int, config["hidden_size"]?.int)
        XCTAssertEqual(gguf.metadata["llama.block_count"]?.int, config["num_hidden_layers"]?.int)
        XCTAssertEqual(gguf.metadata["llama.feed_forward_length"]?.int, config["intermediate_size"]?.int)
        XCTAssertEqual(gguf.metadata["llama.attention.head_count"]?.int, config["num_attention_heads"]?.int)
        XCTAssertEqual(gguf.metadata["llama.attention.head_count_kv"]?.int, config["num_key_value_heads"]?.int)
        XCTAssertEqual(gguf.metadata["llama.context_length"]?.int, config["max_position_embeddings"]?.int)
        XCTAssertEqual(gguf.metadata["llama.vocab_size"]?.int, config["vocab_size"]?.int)
        XCTAssertEqual(gguf.metadata["tokenizer.ggml.bos_token_id"]?.int, config["bos_token_id"]?.int)
        XCTAssertEqual(gguf.metadata["tokenizer.ggml.eos_token_id"]?.int, config["eos_token_id"]?.int)
        let eps = try XCTUnwrap(gguf.metadata["llama.attention.layer_norm_rms_epsilon"])
        XCTAssertEqual(eps, .float32(Float(try XCTUnwrap(config["rms_norm_eps"]?.double))))
        XCTAssertEqual(gguf.metadata["llama.rope.freq_base"]?.double, config["rope_theta"]?.double)
        XCTAssertEqual(gguf.metadata["tokenizer.ggml.add_bos_token"]?.bool, true)
        // The vocabulary: same tokens as tokenizer.json's (SentencePiece pieces with byte fallback).
        let tokens = try XCTUnwrap(gguf.metadata["tokenizer.ggml.tokens"]?.strings)
        XCTAssertEqual(tokens.count, 512)
        let vocab = try XCTUnwrap(hf.tokenizerJSON?["model"]?["vocab"]?.object)
        for (i, token) in tokens.enumerated() { XCTAssertEqual(vocab[token]?.int, i, token) }
        XCTAssertEqual(gguf.metadata["tokenizer.ggml.scores"]?.array?.count, 512)
        XCTAssertEqual(gguf.metadata["tokenizer.ggml.token_type"]?.array?.first, .int32(2))
        XCTAssertEqual(gguf.metadataKeys.count, 22)
        XCTAssertEqual(gguf.metadataKeys.first, "general.architecture")
    }

    func testStories260KTensorsAgreeWithHFSafetensors() throws {
        let gguf = try GGUFFile(path: Paths.stories260KGGUF)
        let hf = try SafetensorsStore(folder: Paths.stories260KHF)
        XCTAssertEqual(gguf.tensorNames.count, 47)
        XCTAssertEqual(gguf.tensorNames.first, "token_embd.weight")
        XCTAssertEqual(Set(gguf.tensorNames), Set(gguf.tensorInfos.keys))
        XCTAssertEqual(hf.tensorInfos.count, 47)
        XCTAssertEqual(gguf.tensorInfos["token_embd.weight"], TensorInfo(name: "token_embd.weight", type: .f32, shape: [512, 64]))
        XCTAssertEqual(gguf.tensorInfos["blk.0.ffn_down.weight"]?.shape, [64, 172])
        XCTAssertEqual(gguf.tensorInfos["blk.0.attn_k.weight"]?.shape, [32, 64])

        var pairs = [("token_embd.weight", "model.embed_tokens.weight"), ("output_norm.weight", "model.norm.weight")]
        for i in 0 ..< 5 {
            pairs += [("blk.\(i).attn_norm.weight", "model.layers.\(i).input_layernorm.weight"),
                      ("blk.\(i).ffn_norm.weight", "model.layers.\(i).post_attention_layernorm.weight"),
                      ("blk.\(i).attn_v.weight", "model.layers.\(i).self_attn.v_proj.weight"),
                      ("blk.\(i).attn_output.weight", "model.layers.\(i).self_attn.o_proj.weight"),
                      ("blk.\(i).ffn_gate.weight", "model.layers.\(i).mlp.gate_proj.weight"),
                      ("blk.\(i).ffn_up.weight", "model.layers.\(i).mlp.up_proj.weight"),
                      ("blk.\(i).ffn_down.weight", "model.layers.\(i).mlp.down_proj.weight")]
        }
        for (g, h) in pairs {
            let a = try gguf.view(g), b = try hf.view(h)
            XCTAssertEqual(a.info.shape, b.info.shape, g)
            XCTAssertEqual(a.dequantized(), floats(b), g)
        }
        // q/k: GGUF keeps llama2.c's interleaved rows, HF the rotate-half order: HF row (head, half, i) = GGUF (head, i, half).
        for (g, h, heads) in [("attn_q", "q_proj", 8), ("attn_k", "k_proj", 4)] {
            let a = try gguf.view("blk.2.\(g).weight").dequantized(), b = floats(try hf.view("model.layers.2.self_attn.\(h).weight"))
            let headDim = 8, dim = 64
            for head in 0 ..< heads { for half in 0 ..< 2 { for i in 0 ..< headDim / 2 {
                let hfRow = head * headDim + half * headDim / 2 + i, ggufRow = head * headDim + 2 * i + half
                XCTAssertEqual(Array(b[hfRow * dim ..< (hfRow + 1) * dim]), Array(a[ggufRow * dim ..< (ggufRow + 1) * dim]))
            } } }
        }
    }

    func testRowViewsAreInPlaceSlices() throws {
        let gguf = try GGUFFile(path: Paths.stories260KGGUF)
        let whole = try gguf.view("token_embd.weight")
        let rows = try gguf.view("token_embd.weight", rows: 100 ..< 103)
        XCTAssertEqual(rows.info.shape, [3, 64])
        XCTAssertEqual(rows.data.count, 3 * 64 * 4)
        XCTAssertEqual(rows.data.baseAddress, whole.data.baseAddress.map { $0 + 100 * 64 * 4 })
        XCTAssertEqual(rows.dequantized(), Array(whole.dequantized()[100 * 64 ..< 103 * 64]))
        // In the mapping, right after the data section start.
        XCTAssertEqual(whole.data.baseAddress, gguf.fileBytes.baseAddress.map { $0 + gguf.dataOffset })
        XCTAssertEqual(gguf.dataOffset, 14208)
        assertFormatError(["token_embd.weight", "out of bounds"]) { try gguf.view("token_embd.weight", rows: 510 ..< 513) }
        assertFormatError(["no tensor named 'nope'"]) { try gguf.view("nope") }
        let norm = try gguf.view("output_norm.weight", rows: 8 ..< 16)      // 1-D: rows are elements
        XCTAssertEqual(norm.info.shape, [8])
        XCTAssertEqual(norm.dequantized(), Array(try gguf.view("output_norm.weight").dequantized()[8 ..< 16]))
    }

    func testSmolLM2Q4_1Parses() throws {
        guard FileManager.default.fileExists(atPath: Paths.smolLM2) else {
            XCTFail("\(Paths.smolLM2) is missing: run `launch/setup --model` first")
            return
        }
        let gguf = try GGUFFile(path: Paths.smolLM2)
        XCTAssertEqual(gguf.version, 3)
        XCTAssertEqual(gguf.architecture, "llama")
        XCTAssertEqual(gguf.metadata["llama.block_count"]?.int, 30)
        XCTAssertEqual(gguf.metadata["llama.embedding_length"]?.int, 576)
        XCTAssertEqual(gguf.metadata["llama.attention.head_count"]?.int, 9)
        XCTAssertEqual(gguf.metadata["llama.attention.head_count_kv"]?.int, 3)
        XCTAssertEqual(gguf.metadata["tokenizer.ggml.model"]?.string, "gpt2")
        XCTAssertEqual(gguf.metadata["tokenizer.ggml.tokens"]?.strings?.count, 49152)
        XCTAssertEqual(gguf.metadata["tokenizer.ggml.merges"]?.strings?.first, "Ġ t")
        XCTAssertNotNil(gguf.metadata["tokenizer.chat_template"]?.string?.range(of: "<|im_start|>"))
        XCTAssertEqual(gguf.tensorNames.count, 272)
        var counts: [GGMLType: Int] = [:]
        for info in gguf.tensorInfos.values { counts[info.type, default: 0] += 1 }
        XCTAssertEqual(counts, [.q4_1: 210, .f32: 61, .q8_0: 1])
        XCTAssertEqual(gguf.tensorInfos["token_embd.weight"]?.type, .q8_0)
        XCTAssertEqual(gguf.tensorInfos["token_embd.weight"]?.shape, [49152, 576])
        XCTAssertEqual(gguf.tensorInfos["blk.0.attn_q.weight"]?.shape, [576, 576])
        XCTAssertEqual(gguf.tensorInfos["blk.0.attn_k.weight"]?.shape, [192, 576])
        XCTAssertEqual(gguf.tensorInfos["blk.0.ffn_down.weight"]?.shape, [576, 1536])
        XCTAssertEqual(gguf.tensorInfos["blk.29.ffn_up.weight"]?.shape, [1536, 576])
        // Quantized weights dequantize to plausible values; consecutive tensors do not overlap.
        let q = try gguf.view("blk.0.ffn_down.weight")
        XCTAssertEqual(q.data.count, 576 * 1536 / 32 * 20)
        let w = q.dequantized()
        XCTAssertEqual(w.count, 576 * 1536)
        XCTAssertTrue(w.allSatisfy { $0.isFinite && abs($0) < 16 })
        XCTAssertGreaterThan(w.map { $0 * $0 }.reduce(0, +) / Float(w.count), 1e-6)
        let row = try gguf.view("token_embd.weight", rows: 1000 ..< 1001)
        XCTAssertEqual(row.data.count, 576 / 32 * 34)
        XCTAssertTrue(row.dequantized().allSatisfy { $0.isFinite && abs($0) < 16 })
        var end = 0
        for name in gguf.tensorNames {
            let v = try gguf.view(name)
            let start = v.data.baseAddress! - gguf.fileBytes.baseAddress!
            XCTAssertGreaterThanOrEqual(start, end, name)
            end = start + v.data.count
        }
        XCTAssertLessThanOrEqual(end, gguf.fileBytes.count)
    }
}
