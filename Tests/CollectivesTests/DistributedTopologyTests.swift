import Foundation
import TesseraTestSupport
import TesseraTopology
import XCTest

/// Builds every shipped topology's communicators under real mpirun and checks the printed rank map against the
/// documented formula (decoder rank r: tpRank r % tp, stage r / tp; vision ranks after the decoder's).
final class DistributedTopologyTests: XCTestCase {
    func testRankMapOfEveryShippedTopology() throws {
        for name in ["tp1", "tp2", "tp4", "tp8", "pp2", "pp4", "tp2-pp2", "tp2-pp4", "tp4-pp2", "vision2-tp2-pp3"] {
            let file = "topologies/\(name).yaml"
            let t = try Topology.load(path: Repo.root.appendingPathComponent(file).path)
            let result = try launch(topology: file, "topology", timeout: 120)
            XCTAssertEqual(result.status, 0, "\(name): \(result)")
            let tp = t.decoder.tensorParallel, decoderRanks = tp * t.decoder.pipelineParallel
            let rows = result.stdout.split(separator: "\n").map { $0.split(separator: " ", omittingEmptySubsequences: true) }
                .filter { $0.count >= 7 && Int($0[0]) != nil }
            XCTAssertEqual(rows.count, t.worldSize, "\(name): \(result.stdout)")
            for row in rows {
                let r = Int(row[0])!
                if r < decoderRanks {
                    let prev = r >= tp ? "\(r - tp)" : "-", next = r + tp < decoderRanks ? "\(r + tp)" : "-"
                    XCTAssertEqual(row[1...5].map(String.init), ["decoder", "\(r % tp)", "\(r / tp)", prev, next], "\(name) rank \(r)")
                } else {
                    XCTAssertEqual(String(row[1]), "vision", "\(name) rank \(r)")
                }
            }
            XCTAssertTrue(result.stdout.contains("checked: barrier and all-reduce on every group: ok"), name)
        }
    }

    /// The launcher asks infer-worker for the world size, so a broken file fails before mpirun with its key named.
    func testLauncherTakesTheWorldSizeFromTheWorker() throws {
        let sized = try runProcess(Repo.executable("infer-worker"), ["world-size", "--topology",
            Repo.root.appendingPathComponent("topologies/vision2-tp2-pp3.yaml").path], timeout: 30)
        XCTAssertEqual(sized.status, 0, "\(sized)")
        XCTAssertEqual(sized.stdout.trimmingCharacters(in: .whitespacesAndNewlines), "8")
        let bad = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-bad-\(getpid()).yaml")
        try Data("world_size: 4\ncoordinator: 3\ndecoder:\n  tensor_parallel: 2\n  pipeline_parallel: 2\n".utf8).write(to: bad)
        defer { try? FileManager.default.removeItem(at: bad) }
        let result = try runProcess(Repo.root.appendingPathComponent("launch/tessera"), ["--topology", bad.path, "topology"],
                                    environment: ["TESSERA_WORKER": Repo.executable("infer-worker").path], timeout: 60)
        XCTAssertNotEqual(result.status, 0, "\(result)")
        XCTAssertTrue(result.stderr.contains("\(bad.path): coordinator: rank 3 is not in the decoder's first stage"), "\(result)")
    }

    /// Starting with a world size that differs from the topology's is a clear error on every rank.
    func testWorldSizeMismatchFailsOnEveryRank() throws {
        let file = Repo.root.appendingPathComponent("topologies/tp2-pp4.yaml").path
        let result = try launch(ranks: 2, "topology", ["--topology", file], timeout: 60)
        XCTAssertNotEqual(result.status, 0, "\(result)")
        for rank in 0..<2 {
            XCTAssertTrue(result.stderr.contains("tessera: rank \(rank) ("), "\(result)")
        }
        XCTAssertTrue(result.stderr.contains("world_size is 8 but the job has 2 ranks"), "\(result)")
    }
}
