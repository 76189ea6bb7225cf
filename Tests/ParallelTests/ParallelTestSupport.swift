// Shared pieces of the tensor-parallel tests: model paths, reference prompts, batched greedy runs.
import Foundation
import TesseraFormats
import TesseraModels
import TesseraParallel
import TesseraTestSupport
import XCTest

enum Models {
    static func shared(_ relative: String) -> String { Repo.shared.appendingPathComponent("models/" + relative).path }
    static let stories260KHF = shared("stories260K/hf")
    static let stories260KGGUF = shared("stories260K/gguf/stories260K-f32.gguf")
    static let tinyStories = shared("tinystories-656k")

    /// The default model; fails the test (not a skip) when `launch/setup --model` has not fetched it.
    static func smolLM2() throws -> String {
        let path = Repo.defaultModel.path
        guard FileManager.default.fileExists(atPath: path) else {
            XCTFail("\(path) is missing: run `launch/setup --model`")
            throw XCTSkip("model file missing")
        }
        return path
    }
}

/// Prompt ids and the independent reference's greedy continuations from `../shared/reference/NAME.json`.
struct ReferencePrompts {
    let prompts: [[Int]]
    let greedy: [[Int]]

    init(_ name: String) throws {
        let url = Repo.shared.appendingPathComponent("reference/\(name).json")
        let json = try JSONValue.parse(Data(contentsOf: url), path: url.path)
        let cases = json["cases"]?.array ?? []
        prompts = cases.map { ($0["prompt_ids"]?.array ?? []).compactMap(\.int) }
        greedy = cases.map { ($0["greedy_ids"]?.array ?? []).compactMap(\.int) }
        XCTAssertFalse(prompts.isEmpty, "\(url.path): no cases")
    }
}

/// What one run of a model over the reference prompts gives.
struct GreedyRun: Sendable {
    /// Logits at each prompt's last position, `[vocab]` per prompt.
    var lastLogits: [[Float]]
    /// `steps` greedy tokens per prompt.
    var tokens: [[Int]]
}

/// All prompts in one batch (one cache slot each), then `steps - 1` batched greedy steps (no EOS stop).
func greedyRun(_ model: any LanguageModel, prompts: [[Int]], steps: Int) throws -> GreedyRun {
    let vocab = model.vocabularySize
    let cache = try model.makeCache(sequences: prompts.count,
                                    contextLength: (prompts.map(\.count).max() ?? 0) + steps)
    var batch = Batch()
    for (slot, ids) in prompts.enumerated() {
        for (p, t) in ids.enumerated() { batch.append(token: t, position: p, sequence: slot, wantsLogits: p == ids.count - 1) }
    }
    var logits = try model.forward(batch, cache: cache)
    let last = prompts.indices.map { Array(logits[$0 * vocab ..< ($0 + 1) * vocab]) }
    var tokens = last.map { [argmax($0)] }
    for _ in 1..<max(steps, 1) {
        batch.removeAll()
        for slot in prompts.indices {
            batch.append(token: tokens[slot].last!, position: prompts[slot].count + tokens[slot].count - 1,
                         sequence: slot, wantsLogits: true)
        }
        logits = try model.forward(batch, cache: cache)
        for slot in prompts.indices { tokens[slot].append(argmax(Array(logits[slot * vocab ..< (slot + 1) * vocab]))) }
    }
    return GreedyRun(lastLogits: last, tokens: tokens)
}

/// First index of the largest value (as torch.argmax).
func argmax(_ x: [Float]) -> Int {
    var best = 0
    for i in x.indices where x[i] > x[best] { best = i }
    return best
}

/// max |a − b| / max |b|.
func relativeDifference(_ a: [Float], _ b: [Float]) -> Float {
    let worst = zip(a, b).map { abs($0 - $1) }.max() ?? .infinity
    let scale = b.map { abs($0) }.max() ?? 0
    return a.count == b.count && scale > 0 ? worst / scale : .infinity
}

/// Every rank of a `tp`-rank LocalGroup loads its shard of `source` and runs `greedyRun`; returns per-rank runs
/// and the shards' held and planned weights.
func shardedRuns(_ source: ModelSource, tp: Int, prompts: [[Int]], steps: Int, options: LoadOptions = LoadOptions(maxBatchTokens: 64))
    throws -> [(run: GreedyRun, held: WeightShare, planned: WeightShare)] {
    let plan = try TensorParallelPlan(source: source, size: tp)
    return try LocalGroup.run(size: tp) { group in
        let shard = try TensorParallel.load(source, plan: plan, group: group, options: options)
        return (try greedyRun(shard.model, prompts: prompts, steps: steps), shard.heldWeights, shard.plannedWeights)
    }
}
