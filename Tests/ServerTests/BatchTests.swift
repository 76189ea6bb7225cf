import Foundation
import TesseraTestSupport
import XCTest

/// `infer-worker batch`: the transformers reference texts from a JSONL file of completion bodies and OpenAI Batch
/// API chat lines, results in input order with refused lines answered in place (exit 1, naming them), and a rerun
/// after a half-written output resuming where it stopped.
final class BatchTests: XCTestCase {
    struct Case { let line: [String: Any]; let want: String?; let badParam: String? }

    func references() throws -> [Case] {
        var cases: [Case] = []
        for (name, chat) in [("smollm2-135m-instruct-q4_1", false), ("smollm2-135m-instruct-q4_1.chat", true)] {
            let data = try Data(contentsOf: Repo.shared.appendingPathComponent("reference/\(name).json"))
            let ref = try XCTUnwrap(try JSONSerialization.jsonObject(with: data) as? [String: Any])
            let eos = try XCTUnwrap(ref["eos_token_id"] as? Int)
            for (k, c) in try XCTUnwrap(ref["cases"] as? [[String: Any]]).enumerated() {
                let ids = try XCTUnwrap(c["greedy_ids"] as? [Int])
                var want = try XCTUnwrap(c["greedy_text"] as? String)
                if ids.last == eos, want.hasSuffix("<|im_end|>") { want.removeLast("<|im_end|>".count) }
                let prompt = try XCTUnwrap(c["prompt"] as? String)
                if chat {
                    let body: [String: Any] = ["model": "gpt-4o-mini", "messages": [["role": "user", "content": prompt]],
                                               "max_tokens": ids.count, "temperature": 0]
                    cases.append(Case(line: ["custom_id": "chat-\(k)", "method": "POST", "url": "/v1/chat/completions", "body": body],
                                      want: want, badParam: nil))
                } else {
                    cases.append(Case(line: ["prompt": prompt, "max_tokens": ids.count, "temperature": 0], want: want, badParam: nil))
                }
            }
        }
        cases.insert(Case(line: ["prompt": "Hello", "max_tokens": -1], want: nil, badParam: "max_tokens"), at: 2)
        return cases
    }

    func batch(_ input: URL, _ output: URL) throws -> ProcessResult {
        try runProcess(Repo.root.appendingPathComponent("launch/tessera"),
                       ["batch", "--model", Repo.defaultModel.path, "--exact-f32", "--max-sequences", "3",
                        "--input", input.path, "--output", output.path],
                       environment: ["TESSERA_WORKER": Repo.executable("infer-worker").path], timeout: 300)
    }

    func results(_ output: URL) throws -> [[String: Any]] {
        try String(contentsOf: output, encoding: .utf8).split(separator: "\n").map {
            try XCTUnwrap(try JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any])
        }
    }

    func testBatchFileInOrderAndResumable() throws {
        let cases = try references()
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-batch-\(getpid())")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        defer { try? FileManager.default.removeItem(at: folder) }
        var lines = try cases.map { String(decoding: try JSONSerialization.data(withJSONObject: $0.line), as: UTF8.self) }
        lines.insert("", at: 1)                        // blank lines are skipped, not answered
        lines.append(#"{"prompt": "unterminated"#)    // malformed JSON is answered in place
        let input = folder.appendingPathComponent("requests.jsonl"), output = folder.appendingPathComponent("results.jsonl")
        try (lines.joined(separator: "\n") + "\n").write(to: input, atomically: true, encoding: .utf8)
        let fileLines = lines.enumerated().filter { !$0.element.isEmpty }.map { $0.offset + 1 }

        let first = try batch(input, output)
        XCTAssertEqual(first.status, 1, "refused lines make the exit status 1: \(first)")
        let badLines = [fileLines[2], fileLines.last!]
        XCTAssertTrue(first.stderr.contains("lines \(badLines[0]), \(badLines[1]) were refused"), "\(first)")
        let got = try results(output)
        XCTAssertEqual(got.count, cases.count + 1, "one result per request: \(first)")
        XCTAssertEqual(got.map { $0["line"] as? Int }, fileLines, "results in input order, numbered by file line")
        for (c, r) in zip(cases, got) {
            let response = try XCTUnwrap(r["response"] as? [String: Any])
            let body = try XCTUnwrap(response["body"] as? [String: Any])
            if let want = c.want {
                XCTAssertEqual(response["status_code"] as? Int, 200, "\(r)")
                let choice = try XCTUnwrap((body["choices"] as? [[String: Any]])?.first)
                let text = (choice["text"] as? String) ?? ((choice["message"] as? [String: Any])?["content"] as? String)
                XCTAssertEqual(text, want, "line \(r["line"] ?? "?") gives the transformers greedy text")
                if let id = c.line["custom_id"] as? String { XCTAssertEqual(r["custom_id"] as? String, id) }
            } else {
                XCTAssertEqual(response["status_code"] as? Int, 400, "\(r)")
                XCTAssertEqual((r["error"] as? [String: Any])?["param"] as? String, c.badParam, "\(r)")
            }
        }
        XCTAssertEqual(((got.last?["error"] as? [String: Any])?["code"] as? String), "invalid_json", "\(got.last ?? [:])")

        // A run killed mid-write: two whole results and half of the third. The rerun cuts the half line, skips the
        // two and writes the rest, the same as before.
        let text = try String(contentsOf: output, encoding: .utf8).split(separator: "\n").map(String.init)
        try (text[0] + "\n" + text[1] + "\n" + text[2].prefix(40)).write(to: output, atomically: true, encoding: .utf8)
        let second = try batch(input, output)
        XCTAssertEqual(second.status, 1, "\(second)")
        XCTAssertTrue(second.stderr.contains("(2 already there)"), "\(second)")
        let resumed = try results(output)
        XCTAssertEqual(resumed.count, got.count, "\(second)")
        func texts(_ rs: [[String: Any]]) -> [String] {
            rs.map { r in
                let body = (r["response"] as? [String: Any])?["body"] as? [String: Any]
                let choice = (body?["choices"] as? [[String: Any]])?.first
                return "\(r["line"] ?? "") " + ((choice?["text"] as? String) ?? ((choice?["message"] as? [String: Any])?["content"] as? String) ?? "refused")
            }
        }
        XCTAssertEqual(texts(resumed), texts(got))
    }
}
