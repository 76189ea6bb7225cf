// Quantize-at-load (`LoadOptions.quantize`) and the 8-bit KV cache on trained float checkpoints: perplexity within
// 1% of the float32 model, weight memory at least 3.5x smaller, and greedy continuations checked against the
// reference where the 8-bit rounding leaves them intact.
import TesseraFormats
import TesseraKernels
import TesseraModels
import XCTest

final class QuantizedLoadTests: XCTestCase {
    func load(_ path: String, quantize: GGMLType? = nil, kvCache: KVCacheType = .f32,
              compute: ComputeOptions = .exact) throws -> any LanguageModel {
        try ModelRegistry.load(ModelSource.open(path: path),
                               options: LoadOptions(compute: compute, kvCache: kvCache, quantize: quantize))
    }

    func testQ8_0AtLoadKeepsPerplexityAndShrinksWeights() throws {
        let path = Paths.model("tinystories-656k"), reference = try Reference("tinystories-656k")
        let ids = try XCTUnwrap(reference.perplexityIDs)
        let float = try load(path), q8 = try load(path, quantize: .q8_0)
        let base = try perplexity(float, ids), quantized = try perplexity(q8, ids)
        XCTAssertEqual(quantized, base, accuracy: base * 0.01, "q8_0 perplexity within 1% of float32")
        XCTAssertNotEqual(quantized, base, "the weights were not converted")
        let ratio = Double(float.weightBytes) / Double(q8.weightBytes)
        print("tinystories-656k weights \(float.weightBytes) -> \(q8.weightBytes) bytes (\(ratio)x)")
        XCTAssertGreaterThanOrEqual(ratio, 3.5)
        // the fast kernels on the converted weights agree too
        let fast = try load(path, quantize: .q8_0, compute: ComputeOptions(mode: .fast, pool: ThreadPool(threads: 2)))
        XCTAssertEqual(try perplexity(fast, ids), base, accuracy: base * 0.01)
    }

    func testQuantizeAtLoadKeepsQuantizedCheckpointsAndOddRows() throws {
        // stories260K's ffn_down rows have 172 values, not a whole number of 32-blocks: they stay float32
        let model = try XCTUnwrap(try load(Paths.model("stories260K/hf"), quantize: .q8_0) as? LlamaModel)
        XCTAssertEqual(model.blocks[0].mlp.down.fusable?.weight.type, .f32)
        XCTAssertEqual(model.blocks[0].mlp.up.fusable?.weight.type, .q8_0)
        XCTAssertEqual(model.blocks[0].attention.q.fusable?.weight.type, .q8_0)
    }

    func testEightBitKVCache() throws {
        for (path, name) in [("stories260K/hf", "stories260K"), ("tinystories-656k", "tinystories-656k")] {
            let reference = try Reference(name), ids = try XCTUnwrap(reference.perplexityIDs)
            for compute in [ComputeOptions.exact, ComputeOptions(mode: .fast, pool: ThreadPool(threads: 3))] {
                let model = try load(Paths.model(path), kvCache: .q8_0, compute: compute)
                let cache = try model.makeCache(sequences: 1, contextLength: 64)
                XCTAssertEqual(cache.layout, .q8(rowBytes: KVCacheType.q8_0.rowBytes(kvDim: model.kvFloatsPerPosition,
                    headDim: model.kvFloatsPerPosition / (model as! LlamaModel).config.kvHeadCount),
                    kvDim: model.kvFloatsPerPosition))
                let expected = try XCTUnwrap(reference.perplexity)
                XCTAssertEqual(try perplexity(model, ids), expected, accuracy: expected * 0.01, "\(name) \(compute.mode)")
                // stories260K (dim 64, heads of 8) drifts by up to 0.24 in its last-position logits with 8-bit keys
                // and values, enough to change its greedy continuations after a few tokens; TinyStories-656K keeps
                // them, its logits within 0.12 (measured 0.09-0.11).
                if name == "tinystories-656k" {
                    try checkCases(model, reference.cases, eosID: reference.eosID, logitTolerance: 0.15)
                }
            }
        }
    }

    func testEightBitCacheIsSmaller() throws {
        let f32 = try DenseKVCache(layers: 0..<30, sequences: 1, contextLength: 2048, kvDim: 192, headDim: 64)
        let q8 = try DenseKVCache(layers: 0..<30, sequences: 1, contextLength: 2048, kvDim: 192, headDim: 64, type: .q8_0)
        // 64 int8 values and two float scales per head of 64, rows padded to 16 bytes: 3.4x
        XCTAssertGreaterThanOrEqual(Double(f32.byteCount) / Double(q8.byteCount), 3.4)
    }
}
