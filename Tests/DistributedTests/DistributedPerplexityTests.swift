import Foundation
import TesseraTestSupport
import XCTest

/// `perplexity` under a topology computes what one rank computes (every rank builds its part through the same
/// `Deployment` as `generate`), and both match the transformers reference.
final class DistributedPerplexityTests: XCTestCase {
    /// The printed perplexity and the run's stderr.
    func perplexity(_ model: String, topology: String?) throws -> (value: Double, stderr: String) {
        let args = ["--model", model, "--file", Repo.shared.appendingPathComponent("reference/ppl.txt").path, "--exact-f32"]
        let result = try topology.map { try launch(topology: "topologies/\($0).yaml", "perplexity", args, timeout: 300) }
            ?? runProcess(Repo.executable("infer-worker"), ["perplexity"] + args, timeout: 300)
        XCTAssertEqual(result.status, 0, "\(topology ?? "single"): \(result)")
        let word = result.stdout.split(separator: " ").dropFirst().first.map(String.init) ?? ""
        return (Double(word) ?? .nan, result.stderr)
    }

    func referencePerplexity(_ name: String) throws -> Double {
        let url = Repo.shared.appendingPathComponent("reference/\(name).json")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        return (json["perplexity"] as! [String: Any])["ppl"] as! Double
    }

    func testShardedPerplexityEqualsOneRank() throws {
        let cases = [(Repo.shared.appendingPathComponent("models/stories260K/gguf/stories260K-f32.gguf").path, "stories260K",
                      ["tp2", "pp2", "tp2-pp2"]),
                     (Repo.defaultModel.path, "smollm2-135m-instruct-q4_1", ["tp2-pp2"])]
        for (model, reference, topologies) in cases {
            let single = try perplexity(model, topology: nil).value
            XCTAssertEqual(single, try referencePerplexity(reference), accuracy: single * 1e-3, reference)
            for topology in topologies {
                let sharded = try perplexity(model, topology: topology).value
                XCTAssertEqual(sharded, single, accuracy: single * 1e-5, "\(reference) on \(topology)")
            }
        }
    }

    /// A vision rank in a text job takes no part in decoder steps and still ends with the job.
    func testIdleVisionRanksFinish() throws {
        let model = Repo.shared.appendingPathComponent("models/stories260K/gguf/stories260K-f32.gguf").path
        let sharded = try perplexity(model, topology: "vision2-tp2-pp3").value
        XCTAssertEqual(sharded, try perplexity(model, topology: nil).value, accuracy: 1e-4)
    }
}
