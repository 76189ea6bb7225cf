// The ablation switches change how the answer is computed, never the answer: --no-kv-cache (every step recomputes
// the prefix) and --no-fusion give the default run's greedy tokens; --no-kv-cache is refused on several ranks.
import Foundation
import TesseraTestSupport
import TesseraEngine
import TesseraFormats
import TesseraModels
import XCTest

final class AblationFlagsTests: XCTestCase {
    func ids(_ extra: [String], model: String) throws -> [Int] {
        let result = try runProcess(Repo.executable("infer-worker"),
                                    ["generate", "--model", model, "--prompt", "One day, a little girl", "--temperature", "0",
                                     "--max-tokens", "24", "--ignore-eos", "--format", "jsonl"] + extra)
        XCTAssertEqual(result.status, 0, "\(result)")
        let object = try JSONSerialization.jsonObject(with: Data(result.stdout.utf8)) as? [String: Any]
        return try XCTUnwrap(object?["ids"] as? [Int])
    }

    func testSwitchesKeepTheGreedyTokens() throws {
        for model in [Repo.shared.appendingPathComponent("models/tinystories-656k").path, Repo.defaultModel.path] {
            let exact = try ids(["--exact-f32"], model: model)
            XCTAssertEqual(exact.count, 24)
            XCTAssertEqual(try ids(["--exact-f32", "--no-kv-cache"], model: model), exact, "\(model): --no-kv-cache")
            XCTAssertEqual(try ids(["--exact-f32", "--no-fusion"], model: model), exact, "\(model): --no-fusion")
            let fast = try ids(["--fast", "--threads", "2"], model: model)
            XCTAssertEqual(try ids(["--fast", "--threads", "2", "--no-kv-cache"], model: model), fast, "\(model): fast, no cache")
            XCTAssertEqual(try ids(["--threads", "2"], model: model), fast, "\(model): no flag is the fast path")
        }
    }

    func testNoKVCacheIsOneRankOnly() throws {
        let result = try launch(topology: "topologies/tp2.yaml", "generate",
                                ["--model", Repo.shared.appendingPathComponent("models/tinystories-656k").path,
                                 "--prompt", "Hi", "--no-kv-cache"])
        XCTAssertNotEqual(result.status, 0)
        XCTAssertTrue(result.stderr.contains("--no-kv-cache runs on one rank only"), result.stderr)
    }
}

/// `RecomputingExecutor` (`--no-kv-cache`) computes what `LocalExecutor` does: the same logits for a prompt with
/// logits at every position, two interleaved sequences, then single-token steps.
final class RecomputingExecutorTests: XCTestCase {
    func testSameLogitsAsTheCachedExecutor() throws {
        let model = try ModelRegistry.load(ModelSource.open(path: Repo.shared.appendingPathComponent("models/tinystories-656k").path))
        let cached = try LocalExecutor(model: model, sequenceSlots: 2, contextLength: 32)
        let recomputing = try RecomputingExecutor(model: model, sequenceSlots: 2, contextLength: 32)
        for slot in 0..<2 { try cached.cache.assignContiguous(sequence: slot, positions: 32) }
        func run(_ executor: any StepExecutor, _ batch: Batch) throws -> [Float] {
            var logits = [Float](repeating: .nan, count: batch.logitCount * model.vocabularySize)
            try logits.withUnsafeMutableBufferPointer { try executor.execute(batch, updates: BlockTableUpdates(), logits: $0) }
            return logits
        }
        var steps = [Batch(tokens: [1, 400, 33, 71, 9], sequence: 0, allLogits: true)]
        var second = Batch(tokens: [1, 12, 300], sequence: 1, allLogits: true)
        second.append(token: 5, position: 5, sequence: 0, wantsLogits: true)
        steps.append(second)
        steps.append(Batch(tokens: [44], sequence: 1, startingAt: 3))
        for batch in steps {
            let a = try run(cached, batch), b = try run(recomputing, batch)
            XCTAssertEqual(a.count, b.count)
            for (x, y) in zip(a, b) { XCTAssertEqual(x, y, accuracy: 1e-4) }
        }
    }
}
