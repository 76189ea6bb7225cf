// No silent slow path: a model's matrices without a `.fast` kernel are named, with their type and bytes, in one
// notice, and every matrix's path is listed.
import Foundation
import TesseraFormats
import TesseraKernels
import TesseraModels
import XCTest

final class ProductPathTests: XCTestCase {
    /// A one-layer llama GGUF (hidden 256) whose attn_q is Q5_0 (a fast type) and ffn_down Q8_1 (no fast kernel);
    /// the rest float32.
    func writeMixedFile() throws -> String {
        let c = try LlamaConfig(hiddenSize: 256, intermediateSize: 256, layerCount: 1, headCount: 4, kvHeadCount: 2,
                                headDim: 64, vocabularySize: 40, rmsNormEps: 1e-5, ropeTheta: 10000, ropeScaling: .none,
                                contextLength: 64, tieWordEmbeddings: false, attentionBias: false, slidingWindow: nil)
        var writer = try GGUFWriter()
        try writer.set("general.architecture", .string("llama"))
        for (key, value) in [("embedding_length", 256), ("feed_forward_length", 256), ("block_count", 1),
                             ("attention.head_count", 4), ("attention.head_count_kv", 2), ("context_length", 64),
                             ("vocab_size", 40)] {
            try writer.set("llama.\(key)", .uint32(UInt32(value)))
        }
        try writer.set("llama.attention.layer_norm_rms_epsilon", .float32(1e-5))
        let names = ["model.embed_tokens.weight": "token_embd.weight", "model.norm.weight": "output_norm.weight",
                     "lm_head.weight": "output.weight", "model.layers.0.input_layernorm.weight": "blk.0.attn_norm.weight",
                     "model.layers.0.self_attn.q_proj.weight": "blk.0.attn_q.weight",
                     "model.layers.0.self_attn.k_proj.weight": "blk.0.attn_k.weight",
                     "model.layers.0.self_attn.v_proj.weight": "blk.0.attn_v.weight",
                     "model.layers.0.self_attn.o_proj.weight": "blk.0.attn_output.weight",
                     "model.layers.0.post_attention_layernorm.weight": "blk.0.ffn_norm.weight",
                     "model.layers.0.mlp.gate_proj.weight": "blk.0.ffn_gate.weight",
                     "model.layers.0.mlp.up_proj.weight": "blk.0.ffn_up.weight",
                     "model.layers.0.mlp.down_proj.weight": "blk.0.ffn_down.weight"]
        for (name, shape, values) in randomWeights(c, seed: 3) {
            let stored = try XCTUnwrap(names[name], name)
            switch stored {
            case "blk.0.attn_q.weight":
                var bytes = [UInt8](repeating: 0, count: GGMLType.q5_0.byteCount(elements: values.count)!)
                bytes.withUnsafeMutableBytes { GGMLType.q5_0.quantize(values, count: values.count, into: $0.baseAddress!) }
                try writer.addTensor(stored, type: .q5_0, shape: shape, data: bytes)
            case "blk.0.ffn_down.weight":   // random Q8_1 blocks: only the type matters here
                let bytes = (0..<GGMLType.q8_1.byteCount(elements: values.count)!).map { UInt8(truncatingIfNeeded: $0 &* 37) }
                try writer.addTensor(stored, type: .q8_1, shape: shape, data: bytes)
            default:
                try writer.addTensor(stored, shape: shape, values: values)
            }
        }
        let path = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-paths-\(UUID().uuidString).gguf").path
        try writer.write(to: path)
        return path
    }

    func testSlowMatricesAreNamedOnce() throws {
        let path = try writeMixedFile()
        defer { try? FileManager.default.removeItem(atPath: path) }
        let blueprint = try ModelRegistry.blueprint(of: try ModelSource.open(path: path))
        let paths = blueprint.productPaths()
        XCTAssertEqual(paths.count, 8, "seven layer linears and the head")
        XCTAssertEqual(paths.filter { !$0.fast }.map(\.name), ["blk.0.ffn_down.weight"])
        XCTAssertEqual(paths.first { $0.name == "blk.0.attn_q.weight" }?.type, .q5_0)
        XCTAssertTrue(paths.first { $0.name == "blk.0.attn_q.weight" }?.fast ?? false, "Q5_0 has a fast kernel")
        let notice = try XCTUnwrap(blueprint.slowPathNotice())
        XCTAssertTrue(notice.contains("1 of 8 matrices have no fast kernel"), notice)
        XCTAssertTrue(notice.contains("Q8_1: 1 tensor, 0.07 MiB"), notice)
        XCTAssertTrue(notice.contains("blk.0.ffn_down.weight"), notice)
        XCTAssertTrue(notice.contains(path), notice)
    }

    func testEveryMatrixOfTheDefaultModelIsFast() throws {
        guard FileManager.default.fileExists(atPath: Paths.smolLM2) else {
            return XCTFail("\(Paths.smolLM2) is missing: run `launch/setup --model`")
        }
        let blueprint = try ModelRegistry.blueprint(of: try ModelSource.open(path: Paths.smolLM2))
        XCTAssertNil(blueprint.slowPathNotice())
        let types = Set(blueprint.productPaths().map(\.type))
        XCTAssertEqual(types, [.q4_1, .q8_0], "SmolLM2 Q4_1: Q4_1 layers, the tied head in Q8_0")
    }
}
