// The ablation switches change how the answer is computed, never the answer: --no-kv-cache (every step recomputes
// the prefix) and --no-fusion give the default run's greedy tokens; --no-kv-cache is refused on several ranks.
import Foundation
import TesseraTestSupport
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
            let exact = try ids([], model: model)
            XCTAssertEqual(exact.count, 24)
            XCTAssertEqual(try ids(["--no-kv-cache"], model: model), exact, "\(model): --no-kv-cache")
            XCTAssertEqual(try ids(["--no-fusion"], model: model), exact, "\(model): --no-fusion")
            let fast = try ids(["--fast", "--threads", "2"], model: model)
            XCTAssertEqual(try ids(["--fast", "--threads", "2", "--no-kv-cache"], model: model), fast, "\(model): fast, no cache")
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
