// Several hosts: the emulated cluster of launch/cluster (network namespaces on a bridge, real TCP between them, no
// shared memory) runs the same jobs as one host. The rank map puts TP groups inside a host and pipeline stages across
// hosts; greedy output over 2 and 4 hosts equals one process byte for byte; a rank killed (or stopped) on another host ends the
// whole job, naming the rank and its host, and leaves no process behind. Needs root (CI runs as root); skipped
// otherwise, saying so.
import Foundation
import TesseraTestSupport
import XCTest

final class MultiHostTests: XCTestCase {
    static let clusterScript = Repo.root.appendingPathComponent("launch/cluster")

    /// Brings up `hosts` emulated hosts for one test, and takes them down after it.
    func cluster(_ hosts: Int) throws {
        let up = try runProcess(Self.clusterScript, ["up", "\(hosts)"], timeout: 60)
        if up.status == 77 { throw XCTSkip("multi-host tests need root: \(up.stderr)") }
        XCTAssertEqual(up.status, 0, "launch/cluster up \(hosts): \(up)")
        addTeardownBlock {
            let down = try runProcess(Self.clusterScript, ["down"], timeout: 60)
            XCTAssertEqual(down.status, 0, "launch/cluster down: \(down)")
        }
    }

    /// A greedy completion by stories260K (5 layers: enough for 4 stages), as `generate --format jsonl` prints it.
    func generate(topology: String?, cluster: Bool, maxTokens: Int = 32, extra: [String] = []) throws -> ProcessResult {
        let args = ["--model", Repo.shared.appendingPathComponent("models/stories260K/gguf/stories260K-f32.gguf").path,
                    "--prompt", "Once upon a time, there was a little girl named Lily. She", "--max-tokens", "\(maxTokens)",
                    "--temperature", "0", "--ignore-eos", "--exact-f32", "--format", "jsonl"] + extra
        guard let topology else { return try runProcess(Repo.executable("infer-worker"), ["generate"] + args, timeout: 120) }
        return try launch(topology: "topologies/\(topology).yaml", cluster: cluster, "generate", args, timeout: 300)
    }

    func testRankMapPutsTensorGroupsInsideHosts() throws {
        try cluster(2)
        let r = try launch(topology: "topologies/tp2-pp2.yaml", cluster: true, "topology", timeout: 120)
        XCTAssertEqual(r.status, 0, "\(r)")
        // rank rows end with the host: ranks 0 and 1 (stage 0) on tessera-h1, ranks 2 and 3 (stage 1) on tessera-h2
        let rows = r.stdout.split(separator: "\n").map { $0.split(separator: " ").map(String.init) }
        func host(_ rank: Int) -> String? {
            rows.first { $0.first == "\(rank)" }?.first { $0.hasPrefix("tessera-h") }
        }
        XCTAssertEqual((0..<4).map(host), ["tessera-h1", "tessera-h1", "tessera-h2", "tessera-h2"], r.stdout)
    }

    func testGreedyOutputAcrossHostsEqualsOneProcess() throws {
        let single = try generate(topology: nil, cluster: false)
        XCTAssertEqual(single.status, 0, "\(single)")
        XCTAssertFalse(single.stdout.isEmpty)
        try cluster(2)
        let two = try generate(topology: "tp2-pp2", cluster: true)
        XCTAssertEqual(two.status, 0, "\(two)")
        XCTAssertEqual(two.stdout, single.stdout, "tp2-pp2 on 2 hosts")
        try runProcess(Self.clusterScript, ["up", "4"], timeout: 60).assertSuccess("launch/cluster up 4")
        let four = try generate(topology: "tp2-pp4", cluster: true)
        XCTAssertEqual(four.status, 0, "\(four)")
        XCTAssertEqual(four.stdout, single.stdout, "tp2-pp4 on 4 hosts")
    }

    func testRankKilledOnAnotherHostEndsTheJob() throws {
        try cluster(2)
        let r = try generate(topology: "tp2-pp2", cluster: true, maxTokens: 64, extra: ["--fault", "3:5:kill"])
        XCTAssertNotEqual(r.status, 0, "\(r)")
        XCTAssertFalse(r.timedOut, "\(r)")
        XCTAssertTrue(r.stderr.contains("rank 3"), "the lost rank is named: \(r)")
        XCTAssertTrue(r.stderr.contains("10.77.0.2") || r.stderr.contains("tessera-h2"), "its host is named: \(r)")
        print("multi-host: a rank killed on host 2 ended the job in \(String(format: "%.1f", r.seconds)) s")
        XCTAssertEqual(workers(), [], "no worker left running on any host")
    }

    /// A rank stopped (hung, not dead) on host 2: the step watchdog on host 1 ends the job naming it and its host.
    func testRankStoppedOnAnotherHostEndsTheJob() throws {
        try cluster(2)
        let r = try generate(topology: "tp2-pp2", cluster: true, maxTokens: 64, extra: ["--fault", "3:5:stop", "--step-timeout", "3"])
        XCTAssertNotEqual(r.status, 0, "\(r)")
        XCTAssertFalse(r.timedOut, "\(r)")
        XCTAssertLessThan(r.seconds, 3 + 10, "\(r)")
        XCTAssertTrue(r.stderr.contains("rank 3 on tessera-h2 did not answer"), "the stopped rank and its host are named: \(r)")
        print("multi-host: a rank stopped on host 2 ended the job in \(String(format: "%.1f", r.seconds)) s")
        XCTAssertEqual(workers(), [], "no worker left running on any host")
    }
}

/// Command lines of running infer-worker processes (every emulated host's processes are this machine's).
func workers() -> [String] {
    let ids = (try? FileManager.default.contentsOfDirectory(atPath: "/proc"))?.filter { Int($0) != nil } ?? []
    return ids.compactMap { id in
        guard let data = FileManager.default.contents(atPath: "/proc/\(id)/cmdline") else { return nil }
        let line = String(decoding: data.map { $0 == 0 ? 32 : $0 }, as: UTF8.self)
        return line.contains("infer-worker") && !line.contains("world-size") ? line : nil
    }
}

extension ProcessResult {
    func assertSuccess(_ what: String, file: StaticString = #filePath, line: UInt = #line) {
        XCTAssertEqual(status, 0, "\(what): \(self)", file: file, line: line)
    }
}
