// Sharded == unsharded: every rank of an in-process group (LocalGroup threads) gets the single-rank model's logits
// and greedy tokens, on the small trained checkpoints and on SmolLM2 Q4_1.
import TesseraFormats
import TesseraKernels
import TesseraModels
import TesseraParallel
import XCTest

final class ShardedModelTests: XCTestCase {
    /// Runs the unsharded model once, then each tp: last-prompt logits within 1e-4 relative, greedy ids identical,
    /// all ranks bit-identical, and each rank holding exactly its planned weight bytes.
    func check(_ path: String, reference name: String, tps: [Int], steps: Int) throws {
        let source = try ModelSource.open(path: path)
        let reference = try ReferencePrompts(name)
        let single = try greedyRun(ModelRegistry.load(source, options: LoadOptions(maxBatchTokens: 64)),
                                   prompts: reference.prompts, steps: steps)
        for (i, tokens) in single.tokens.enumerated() {   // the unsharded model itself agrees with the reference
            XCTAssertEqual(tokens, Array(reference.greedy[i].prefix(steps)), "\(name) case \(i): single-rank greedy ids")
        }
        for tp in tps {
            let ranks = try shardedRuns(source, tp: tp, prompts: reference.prompts, steps: steps)
            XCTAssertEqual(ranks.count, tp)
            for (r, rank) in ranks.enumerated() {
                for (i, logits) in rank.run.lastLogits.enumerated() {
                    let diff = relativeDifference(logits, single.lastLogits[i])
                    XCTAssertLessThanOrEqual(diff, 1e-4, "\(name) tp \(tp) rank \(r) case \(i): relative logit difference")
                    XCTAssertEqual(logits, ranks[0].run.lastLogits[i], "\(name) tp \(tp) rank \(r) case \(i): ranks differ")
                }
                XCTAssertEqual(rank.run.tokens, single.tokens, "\(name) tp \(tp) rank \(r): greedy ids")
                XCTAssertEqual(rank.held, rank.planned, "\(name) tp \(tp) rank \(r): held vs planned weight bytes")
            }
            let worst = ranks.flatMap { r in r.run.lastLogits.enumerated().map { relativeDifference($1, single.lastLogits[$0]) } }.max() ?? 0
            print("\(name) tp \(tp): max relative logit difference \(worst); rank 0 holds \(ranks[0].held)")
        }
    }

    /// Shards of pipeline stages (`LoadOptions.layers`) compose: on each rank of a tp-2 group, embed → layers 0..<3
    /// (stage 0) → layers 3..<5 (stage 1) → logits gives the unsharded logits; each stage holds its planned bytes.
    func testPipelineStagesOfShards() throws {
        let source = try ModelSource.open(path: Models.stories260KGGUF)
        let prompt = try ReferencePrompts("stories260K").prompts[0]
        let single = try greedyRun(ModelRegistry.load(source), prompts: [prompt], steps: 1).lastLogits[0]
        let ranks = try LocalGroup.run(size: 2) { group -> (logits: [Float], weights: [[WeightShare]]) in
            let shards = try [0..<3, 3..<5].map {
                try TensorParallel.load(source, group: group, options: LoadOptions(maxBatchTokens: 64, layers: $0))
            }
            let stages = shards.map(\.model), batch = Batch(tokens: prompt)
            var hidden = [Float](repeating: 0, count: prompt.count * stages[0].hiddenSize)   // (tokens, hidden)
            var logits = [Float](repeating: 0, count: stages[1].vocabularySize)
            try hidden.withUnsafeMutableBufferPointer { h in
                try stages[0].embed(batch, into: h.baseAddress!)
                for shard in shards {
                    try shard.model.forward(layers: shard.layers, hidden: h.baseAddress!, batch: batch,
                                            cache: shard.model.makeCache(sequences: 1, contextLength: 16))
                }
                try logits.withUnsafeMutableBufferPointer { try stages[1].logits(hidden: h.baseAddress!, batch: batch, into: $0.baseAddress!) }
            }
            return (logits, shards.map { [$0.heldWeights, $0.plannedWeights] })
        }
        for (r, rank) in ranks.enumerated() {
            XCTAssertLessThanOrEqual(relativeDifference(rank.logits, single), 1e-4, "rank \(r)")
            for pair in rank.weights { XCTAssertEqual(pair[0], pair[1], "rank \(r): held vs planned") }
            XCTAssertLessThan(rank.weights[1][0].owned, rank.weights[0][0].owned, "stage 1 holds 2 of 5 layers")
        }
    }

    func testStories260KHuggingFace() throws {
        try check(Models.stories260KHF, reference: "stories260K", tps: [2, 3, 4, 8], steps: 16)
    }

    func testStories260KGGUF() throws {
        try check(Models.stories260KGGUF, reference: "stories260K", tps: [2, 3, 4, 8], steps: 16)
    }

    func testTinyStories656K() throws {
        try check(Models.tinyStories, reference: "tinystories-656k", tps: [2, 3, 4, 8], steps: 16)
    }

    func testSmolLM2() throws {
        try check(Models.smolLM2(), reference: "smollm2-135m-instruct-q4_1", tps: [2, 3, 4, 8], steps: 3)
    }

    /// The fast arithmetic sharded. Its 8-bit activations round to a grid, so the ~1e-6 differences of a sharded sum
    /// order flip some roundings and the logits move by a few percent, as far as the fast path itself is from
    /// float32: sharded fast logits must be as close to the exact ones as one rank's fast logits (within 2×), and
    /// every rank must hold the same logits.
    func testSmolLM2FastIsAsAccurateSharded() throws {
        let source = try ModelSource.open(path: try Models.smolLM2())
        let fast = LoadOptions(maxBatchTokens: 64, compute: ComputeOptions(mode: .fast))
        let reference = try ReferencePrompts("smollm2-135m-instruct-q4_1")
        let exact = try greedyRun(ModelRegistry.load(source, options: LoadOptions(maxBatchTokens: 64)), prompts: reference.prompts, steps: 1)
        let single = try greedyRun(ModelRegistry.load(source, options: fast), prompts: reference.prompts, steps: 1)
        for tp in [2, 3] {
            let ranks = try shardedRuns(source, tp: tp, prompts: reference.prompts, steps: 1, options: fast)
            for (i, logits) in ranks[0].run.lastLogits.enumerated() {
                let alone = relativeDifference(single.lastLogits[i], exact.lastLogits[i])
                let sharded = relativeDifference(logits, exact.lastLogits[i])
                print("SmolLM2 fast tp \(tp) case \(i): relative distance to exact \(sharded) (one rank: \(alone))")
                XCTAssertLessThanOrEqual(sharded, 2 * alone, "fast tp \(tp) case \(i)")
                XCTAssertLessThan(alone, 0.1, "fast one rank case \(i)")
                for rank in ranks { XCTAssertEqual(rank.run.lastLogits[i], logits, "fast tp \(tp) case \(i): ranks differ") }
            }
        }
    }
}
