// The paged KV cache: fixed-size blocks of one pool in scrambled order, per-sequence block tables, no copying.
// The trained default model through it gives the dense cache's logits bit for bit — blocks of 16 positions in both arithmetics and both KV types, blocks of 5 in
// the exact per-head form — over two batched prompts long enough to split attention across threads.
import Foundation
import TesseraFormats
import TesseraKernels
import TesseraModels
import XCTest

/// A paged cache whose two slots hold their blocks in a scrambled order of the pool (so consecutive blocks of a
/// sequence are never neighbours), as the coordinator's block tables would give them.
func scrambledPagedCache(_ model: LlamaModel, kv: KVCacheType, blockSize: Int, context: Int) throws -> PagedKVCache {
    let perSequence = (context + blockSize - 1) / blockSize, count = 2 * perSequence
    var order = (0..<count).map { ($0 * 7919) % count }   // 7919 is prime: a permutation unless it divides count
    if Set(order).count != count { order = Array((0..<count).reversed()) }
    let cache = try model.makePagedCache(sequences: 2, contextLength: context,
                                         paging: KVPaging(blockSize: blockSize, blockCount: count))
    var updates = BlockTableUpdates()
    for slot in 0..<2 { updates.append(slot: slot, first: 0, length: 0, blocks: order[(slot * perSequence)...].prefix(perSequence)) }
    try cache.apply(updates)
    return cache
}

final class PagedCacheTests: XCTestCase {
    /// Two sequences in one batch: prompts of 150 tokens in three chunks of 50, then 8 decode steps of both.
    func logits(_ model: any LanguageModel, _ cache: any KVCache, _ ids: [Int]) throws -> [Float] {
        let prompts = [Array(ids.prefix(158)), Array(ids.dropFirst(20).prefix(158))]
        var all = [Float]()
        for (start, count) in [(0, 50), (50, 50), (100, 50)] + (150..<158).map({ ($0, 1) }) {
            var batch = Batch()
            for (slot, prompt) in prompts.enumerated() {
                for p in start..<(start + count) {
                    batch.append(token: prompt[p], position: p, sequence: slot, wantsLogits: p == start + count - 1)
                }
            }
            all += try model.forward(batch, cache: cache)
        }
        return all
    }

    func testPagedCacheGivesTheDenseLogits() throws {
        guard FileManager.default.fileExists(atPath: Paths.smolLM2) else {
            XCTFail("\(Paths.smolLM2) is missing: run `launch/setup --model`")
            return
        }
        let text = try XCTUnwrap(try Reference("smollm2-135m-instruct-q4_1").perplexityIDs)
        let ids = text + text.dropFirst() + text.dropFirst()   // the reference text three times: 178+ tokens
        guard ids.count >= 178 else { return XCTFail("the reference text has only \(text.count) tokens") }
        for kv in KVCacheType.allCases {
            for compute in [ComputeOptions.exact, ComputeOptions(mode: .fast, pool: ThreadPool(threads: 2))] {
                let model = try ModelRegistry.load(ModelSource.open(path: Paths.smolLM2),
                                                   options: LoadOptions(compute: compute, kvCache: kv))
                let dense = try logits(model, try model.makeCache(sequences: 2, contextLength: 160), ids)
                XCTAssertFalse(dense.contains { !$0.isFinite })
                let llama = try XCTUnwrap(model as? LlamaModel)
                for blockSize in [16, 5] {
                    let cache = try scrambledPagedCache(llama, kv: kv, blockSize: blockSize, context: 160)
                    let paged = try logits(model, cache, ids)
                    XCTAssertEqual(cache.offset(of: 0), 158)
                    let what = "\(kv) \(compute.mode), blocks of \(blockSize)"
                    let worst = zip(paged, dense).map { abs($0 - $1) }.max() ?? .nan
                    print("paged vs dense, \(what): max |logit difference| = \(worst)")
                    // The per-head exact form reads the same floats in the same order whatever the blocks; the online
                    // softmax chunks at rows that are multiples of 16, so blocks of 16 positions give the same
                    // chunks, and the same bits. Blocks of 5 chunk differently: their rounding is checked against
                    // the dense result at the kernel level (BlockTableTests) and amplifies through 30 layers
                    // (8-bit activations and keys re-round), so here only the per-head form is held to the bits.
                    if blockSize % 16 == 0 || (compute.mode == .exact && kv == .f32) {
                        XCTAssertEqual(paged.map(\.bitPattern), dense.map(\.bitPattern), what)
                    } else {
                        XCTAssertFalse(paged.contains { !$0.isFinite }, what)
                    }
                }
            }
        }
    }
}
