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
