import Foundation
import TesseraFormats
import XCTest

/// llama.cpp's per-tensor rules for its file types, as `QuantizationMix.plan` applies them: on model shapes whose
/// assignments llama.cpp's rules give (stated here per tensor), and on a real llama.cpp Q4_K_M file when one is
/// at hand (launch/setup --qwen-coder), where the plan from the file's shapes must give every tensor its stored type.
final class QuantizationMixTests: XCTestCase {
    /// A Llama-family tensor list in llama.cpp's order: per layer attn_k, attn_norm, attn_output, attn_q, attn_v,
    /// ffn_down, ffn_gate, ffn_norm, ffn_up; `tied` leaves out output.weight.
    func llama(layers: Int, hidden: Int, kv: Int, ffn: Int, vocab: Int, tied: Bool) -> [TensorInfo] {
        var t = [TensorInfo(name: "token_embd.weight", type: .f32, shape: [vocab, hidden]),
                 TensorInfo(name: "output_norm.weight", type: .f32, shape: [hidden])]
        if !tied { t.append(TensorInfo(name: "output.weight", type: .f32, shape: [vocab, hidden])) }
        for l in 0 ..< layers {
            func w(_ name: String, _ shape: [Int]) -> TensorInfo { TensorInfo(name: "blk.\(l).\(name)", type: .f32, shape: shape) }
            t += [w("attn_k.weight", [kv, hidden]), w("attn_norm.weight", [hidden]), w("attn_output.weight", [hidden, hidden]),
                  w("attn_q.weight", [hidden, hidden]), w("attn_v.weight", [kv, hidden]), w("ffn_down.weight", [hidden, ffn]),
                  w("ffn_gate.weight", [ffn, hidden]), w("ffn_norm.weight", [hidden]), w("ffn_up.weight", [ffn, hidden])]
        }
        return t
    }

    func types(_ mix: String, _ tensors: [TensorInfo], gqa: Int) throws -> [String: GGMLType] {
        let plan = try XCTUnwrap(QuantizationMix(name: mix)).plan(tensors, headsPerKVHead: gqa)
        return Dictionary(uniqueKeysWithValues: zip(tensors.map(\.name), plan.map(\.type)))
    }

    /// The layers llama.cpp gives more bits: the first and last eighth and every third between (30 and 28 layers).
    let moreBits30: Set<Int> = [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 26, 27, 28, 29]
    let moreBits28: Set<Int> = [0, 1, 2, 5, 8, 11, 14, 17, 20, 23, 24, 25, 26, 27]

    /// A 1.5B-like shape (whole 256-blocks everywhere), untied head, 6 query heads per KV head.
    func testKMixesOnWholeBlocks() throws {
        let model = llama(layers: 28, hidden: 1536, kv: 256, ffn: 8960, vocab: 1024, tied: false)
        let m = try types("q4_k_m", model, gqa: 6)
        XCTAssertEqual(m["output.weight"], .q6_K)
        XCTAssertEqual(m["token_embd.weight"], .q4_K, "an untied embedding keeps the base type")
        XCTAssertEqual(m["output_norm.weight"], .f32, "norms stay as stored")
        for l in 0 ..< 28 {
            let more: GGMLType = moreBits28.contains(l) ? .q6_K : .q4_K
            XCTAssertEqual(m["blk.\(l).attn_v.weight"], more, "q4_k_m attn_v layer \(l)")
            XCTAssertEqual(m["blk.\(l).ffn_down.weight"], more, "q4_k_m ffn_down layer \(l)")
            for name in ["attn_q", "attn_k", "attn_output", "ffn_gate", "ffn_up"] { XCTAssertEqual(m["blk.\(l).\(name).weight"], .q4_K, name) }
        }
        let s = try types("q4_k_s", model, gqa: 6)
        for l in 0 ..< 28 {
            XCTAssertEqual(s["blk.\(l).attn_v.weight"], l < 4 ? .q5_K : .q4_K, "q4_k_s attn_v layer \(l)")
            XCTAssertEqual(s["blk.\(l).ffn_down.weight"], l < 3 ? .q5_K : .q4_K, "q4_k_s ffn_down layer \(l)")
        }
        let q3m = try types("q3_k_m", model, gqa: 6)
        for l in 0 ..< 28 {
            XCTAssertEqual(q3m["blk.\(l).attn_v.weight"], l < 2 ? .q5_K : .q4_K, "q3_k_m attn_v layer \(l)")
            XCTAssertEqual(q3m["blk.\(l).ffn_down.weight"], l < 1 ? .q5_K : .q4_K, "q3_k_m ffn_down layer \(l)")
            XCTAssertEqual(q3m["blk.\(l).attn_output.weight"], .q4_K)
            XCTAssertEqual(q3m["blk.\(l).attn_q.weight"], .q3_K)
        }
        let q2 = try types("q2_k", model, gqa: 6)
        XCTAssertEqual(q2["blk.3.attn_v.weight"], .q4_K, "q2_k: attn_v at Q4_K with 4 or more heads per KV head")
        XCTAssertEqual(try types("q2_k", model, gqa: 2)["blk.3.attn_v.weight"], .q3_K)
        XCTAssertEqual(q2["blk.3.ffn_down.weight"], .q3_K); XCTAssertEqual(q2["blk.3.attn_output.weight"], .q3_K)
        XCTAssertEqual(q2["blk.3.ffn_up.weight"], .q2_K)
        let xs = try types("iq4_xs", model, gqa: 6)
        XCTAssertEqual(xs["blk.9.attn_v.weight"], .q5_K); XCTAssertEqual(xs["blk.2.ffn_down.weight"], .q5_K)
        XCTAssertEqual(xs["blk.3.ffn_down.weight"], .iq4_xs); XCTAssertEqual(xs["output.weight"], .q6_K)
        let q8 = try types("q8_0", model, gqa: 6)
        XCTAssertEqual(Set(model.filter { $0.shape.count == 2 }.map { q8[$0.name]! }), [.q8_0], "q8_0 has no rules")
        let q40 = try types("q4_0", model, gqa: 6)
        XCTAssertEqual(q40["output.weight"], .q6_K, "the head of a q4_0 file is Q6_K")
        XCTAssertEqual(q40["token_embd.weight"], .q4_0)
        let pure = try XCTUnwrap(QuantizationMix(name: "q4_k_m")).plan(model, headsPerKVHead: 6, pure: true)
        XCTAssertEqual(Set(zip(model, pure).filter { $0.0.shape.count == 2 }.map { $0.1.type }), [.q4_K], "--pure: one type")
    }

    /// SmolLM2-135M's shape: hidden 576 is no whole number of 256-blocks, the embedding is tied, 3 heads per KV
    /// head; llama.cpp falls back to 32-element types of about the same size.
    func testFallbacksOnSmolLM2Shape() throws {
        let model = llama(layers: 30, hidden: 576, kv: 192, ffn: 1536, vocab: 49152, tied: true)
        let m = try types("q4_k_m", model, gqa: 3)
        XCTAssertEqual(m["token_embd.weight"], .q8_0, "tied embedding: the head's Q6_K does not fit 576, Q8_0")
        for l in 0 ..< 30 {
            let more = moreBits30.contains(l)
            XCTAssertEqual(m["blk.\(l).attn_v.weight"], more ? .q8_0 : .q5_0, "Q6_K falls back to Q8_0, Q4_K to Q5_0 (layer \(l))")
            XCTAssertEqual(m["blk.\(l).ffn_down.weight"], more ? .q6_K : .q4_K, "ffn_down rows are 1536 = 6 blocks (layer \(l))")
            XCTAssertEqual(m["blk.\(l).attn_q.weight"], .q5_0)
        }
        let plan = try XCTUnwrap(QuantizationMix(name: "q4_k_m")).plan(model, headsPerKVHead: 3)
        XCTAssertEqual(plan.filter { $0.outcome == .fellBack }.count, 30 * 6, "every matrix of 576-element rows falls back")
        XCTAssertEqual(try types("q5_k_s", model, gqa: 3)["blk.0.attn_q.weight"], .q5_1)
        XCTAssertEqual(try types("q2_k", model, gqa: 3)["blk.0.attn_q.weight"], .q4_0)
        XCTAssertEqual(try types("iq4_xs", model, gqa: 3)["blk.0.attn_q.weight"], .iq4_nl)
        // rows of 172 fit no block: F16
        let odd = [TensorInfo(name: "blk.0.ffn_down.weight", type: .f32, shape: [64, 172])]
        XCTAssertEqual(try XCTUnwrap(QuantizationMix(name: "q8_0")).plan(odd, headsPerKVHead: 1).map(\.type), [.f16])
    }

    func testNames() {
        XCTAssertEqual(QuantizationMix(name: "Q4_K_M")?.fileType, 15)
        XCTAssertEqual(QuantizationMix(name: "q4_k")?.name, "q4_k_m", "llama-quantize reads Q4_K as Q4_K_M")
        XCTAssertEqual(QuantizationMix(name: "q6_k")?.fileType, 18)
        XCTAssertNil(QuantizationMix(name: "q7_k"))
        XCTAssertNil(QuantizationMix(name: "iq2_xxs"), "not written")
    }

    /// A real llama.cpp Q4_K_M file (Qwen2.5-Coder-1.5B, 28 layers, tied embedding): planning q4_k_m from its names
    /// and shapes gives every other tensor its stored type; its attn_v and ffn_down layers at Q6_K are those the
    /// rule picks with the layer counter run in name order ("blk.0", "blk.1", "blk.10", ...), as the llama.cpp that
    /// made the file ordered tensors (today's llama.cpp orders by layer number, as `plan` does: checked byte for byte
    /// against llama.cpp's quantizer by `infer-bench quantize`).
    func testPlanReproducesARealQ4_K_MFile() throws {
        let path = NSString(string: "~/.cache/tessera/models/qwen2.5-coder-1.5b-instruct-q4_k_m.gguf").expandingTildeInPath
        guard FileManager.default.fileExists(atPath: path) else {
            throw XCTSkip("no real Q4_K_M file at \(path) (launch/setup --qwen-coder fetches one)")
        }
        let file = try GGUFFile(path: path)
        let infos = file.tensorNames.compactMap { file.tensorInfos[$0] }
        let heads = try XCTUnwrap(file.metadata["qwen2.attention.head_count"]?.int)
        let kv = try XCTUnwrap(file.metadata["qwen2.attention.head_count_kv"]?.int)
        let plan = try XCTUnwrap(QuantizationMix(name: "q4_k_m")).plan(infos, headsPerKVHead: heads / kv)
        let counted = { (name: String) in name.hasSuffix("attn_v.weight") || name.hasSuffix("ffn_down.weight") }
        let wrong = zip(infos, plan).filter { !counted($0.0.name) && $0.0.type != $0.1.type }
            .map { "\($0.0.name): file \($0.0.type), plan \($0.1.type)" }
        XCTAssertEqual(wrong, [], "tensors whose planned type is not the file's")
        XCTAssertEqual(file.metadata["general.file_type"]?.int, 15)
        let layers = try XCTUnwrap(file.metadata["qwen2.block_count"]?.int)
        let nameOrder = (0 ..< layers).sorted { String($0) < String($1) }
        let moreBits = Set(nameOrder.enumerated().filter { i, _ in
            i < layers / 8 || i >= 7 * layers / 8 || (i - layers / 8) % 3 == 2 }.map(\.element))
        for l in 0 ..< layers {
            for name in ["attn_v", "ffn_down"] {
                XCTAssertEqual(file.tensorInfos["blk.\(l).\(name).weight"]?.type, moreBits.contains(l) ? .q6_K : .q4_K, "layer \(l) \(name)")
            }
        }
        XCTAssertEqual(plan.filter { $0.type == .q6_K }.count, infos.filter { $0.type == .q6_K }.count, "as many at Q6_K")
    }
}
