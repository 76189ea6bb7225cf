import Foundation
import TesseraTestSupport
import XCTest

/// `infer-worker serve` through the official openai Python client (openai_client_test.py, next to this file): the
/// transformers reference texts whole and streamed, usage, log-probabilities, the prefix cache, every error code,
/// a full queue, disconnects freeing KV blocks (seen in /metrics), and SIGTERM ending every rank with status 0.
final class ServerTests: XCTestCase {
    func clientPython() throws -> URL {
        let venv = ProcessInfo.processInfo.environment["TESSERA_CLIENT_VENV"]
            ?? FileManager.default.homeDirectoryForCurrentUser.appendingPathComponent(".cache/tessera/client-venv").path
        let python = URL(fileURLWithPath: venv).appendingPathComponent("bin/python")
        guard FileManager.default.isExecutableFile(atPath: python.path) else {
            XCTFail("no openai client at \(python.path): run launch/setup --client")
            throw XCTSkip("no client")
        }
        return python
    }

    func runClientChecks(topology: String? = nil) throws {
        var args = [Repo.root.appendingPathComponent("Tests/ServerTests/openai_client_test.py").path,
                    "--repo", Repo.root.path, "--shared", Repo.shared.path]
        if let topology { args += ["--topology", Repo.root.appendingPathComponent(topology).path] }
        let result = try runProcess(try clientPython(), args,
                                    environment: ["TESSERA_WORKER": Repo.executable("infer-worker").path], timeout: 400)
        XCTAssertEqual(result.status, 0, "\(result)")
        XCTAssertTrue(result.stdout.contains("server checks passed"), "\(result)")
    }

    func testOneRankServesTheOpenAIAPI() throws { try runClientChecks() }

    func testTensorParallelServerEndsCleanlyOnSIGTERM() throws { try runClientChecks(topology: "topologies/tp2.yaml") }
}

/// `infer-bench serve` against a Tessera server it starts itself: every request completes with its tokens, and the
/// CSV and chart are written (the load generator the serving figures come from keeps working).
final class ServeBenchTests: XCTestCase {
    func testLoadGeneratorAgainstTessera() throws {
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-serve-bench-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        let csv = folder.appendingPathComponent("serve.csv")
        let result = try runProcess(Repo.executable("infer-bench"),
                                    ["serve", "--servers", "tessera", "--concurrency", "1,3", "--requests", "6",
                                     "--max-tokens", "5", "--threads", "1", "--context", "256", "--csv", csv.path],
                                    environment: ["TESSERA_WORKER": Repo.executable("infer-worker").path], timeout: 300)
        XCTAssertEqual(result.status, 0, "\(result)")
        let rows = try String(contentsOf: csv, encoding: .utf8).split(separator: "\n").dropFirst().map { $0.split(separator: ",", omittingEmptySubsequences: false) }
        XCTAssertEqual(rows.map { String($0[0]) + " " + String($0[1]) }, ["tessera 1", "tessera 3"], "\(result)")
        for row in rows {
            XCTAssertEqual(row[4], "6", "every request completed: \(row)")
            XCTAssertEqual(row[5], "0", "no errors: \(row)")
        }
        XCTAssertTrue(FileManager.default.fileExists(atPath: folder.appendingPathComponent("serve.svg").path))
    }
}
