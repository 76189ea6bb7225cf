import Foundation
import TesseraTestSupport
import XCTest

/// Bad input to `infer-worker generate`: each case exits non-zero, promptly, with a message naming what is wrong.
final class BadInputCLITests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-bad-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    var storiesGGUF: URL { Repo.shared.appendingPathComponent("models/stories260K/gguf/stories260K-f32.gguf") }
    var storiesHF: URL { Repo.shared.appendingPathComponent("models/stories260K/hf") }

    func expectFailure(model: String, _ expected: [String], extra: [String] = [], file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try runProcess(Repo.executable("infer-worker"),
                               ["generate", "--model", model, "--prompt", "Once upon a time", "--max-tokens", "4"] + extra, timeout: 60)
        XCTAssertNotEqual(r.status, 0, "\(r)", file: file, line: line)
        XCTAssertFalse(r.timedOut, file: file, line: line)
        for piece in expected { XCTAssertTrue(r.stderr.contains(piece), "expected '\(piece)' in:\n\(r.stderr)", file: file, line: line) }
        XCTAssertEqual(r.stdout, "", "nothing on stdout for a failed run", file: file, line: line)
    }

    func write(_ bytes: [UInt8], _ name: String) throws -> String {
        let url = dir.appendingPathComponent(name)
        try Data(bytes).write(to: url)
        return url.path
    }

    /// A copy of the stories260K HF folder with one file replaced.
    func folder(replacing name: String, with text: String) throws -> String {
        let copy = dir.appendingPathComponent("hf-\(name)")
        try FileManager.default.copyItem(at: storiesHF, to: copy)
        try FileManager.default.removeItem(at: copy.appendingPathComponent(name))
        try Data(text.utf8).write(to: copy.appendingPathComponent(name))
        return copy.path
    }

    func testMissingPath() throws {
        try expectFailure(model: "/nonexistent/model.gguf", ["/nonexistent/model.gguf"])
    }

    func testEmptyFile() throws {
        let path = try write([], "empty.gguf")
        try expectFailure(model: path, [path, "empty"])
    }

    func testWrongMagic() throws {
        let path = try write(Array("NOTAGGUF-file-contents".utf8), "magic.gguf")
        try expectFailure(model: path, [path, "magic"])
    }

    func testUnsupportedVersion() throws {
        var bytes = Array(try Data(contentsOf: storiesGGUF))
        bytes[4] = 9   // version 9
        let path = try write(bytes, "v9.gguf")
        try expectFailure(model: path, [path, "version 9"])
    }

    func testTruncatedGGUF() throws {
        let bytes = Array(try Data(contentsOf: storiesGGUF))
        for (label, length) in [("header", 12), ("metadata", 400), ("data", bytes.count - 1000)] {
            let path = try write(Array(bytes.prefix(length)), "truncated-\(label).gguf")
            try expectFailure(model: path, [path])
        }
    }

    func testUnknownArchitecture() throws {
        var config = try String(contentsOf: storiesHF.appendingPathComponent("config.json"), encoding: .utf8)
        config = config.replacingOccurrences(of: "LlamaForCausalLM", with: "FalconForCausalLM")
            .replacingOccurrences(of: "\"llama\"", with: "\"falcon\"")
        try expectFailure(model: try folder(replacing: "config.json", with: config), ["unknown architecture 'falcon'", "LlamaForCausalLM", "qwen2"])
    }

    func testTensorShapeDisagreeingWithConfig() throws {
        var config = try String(contentsOf: storiesHF.appendingPathComponent("config.json"), encoding: .utf8)
        config = config.replacingOccurrences(of: "\"intermediate_size\": 172", with: "\"intermediate_size\": 176")
        XCTAssertTrue(config.contains("176"), "fixture edit failed")
        try expectFailure(model: try folder(replacing: "config.json", with: config), ["gate_proj", "176", "172"])
    }

    func testMalformedTokenizerJSON() throws {
        let path = try folder(replacing: "tokenizer.json", with: "{\"model\": {\"type\": \"BPE\", \"vocab\": ")
        try expectFailure(model: path, ["tokenizer.json"])
    }

    func testPromptLongerThanTheContext() throws {
        try expectFailure(model: storiesGGUF.path, ["prompt has", "context holds 3"], extra: ["--context", "3"])
    }

    func testPyTorchPickleIsRefused() throws {
        let copy = dir.appendingPathComponent("pickle")
        try FileManager.default.createDirectory(at: copy, withIntermediateDirectories: true)
        try FileManager.default.copyItem(at: storiesHF.appendingPathComponent("config.json"), to: copy.appendingPathComponent("config.json"))
        try Data([0x80, 0x02]).write(to: copy.appendingPathComponent("pytorch_model.bin"))
        try expectFailure(model: copy.path, ["pytorch_model.bin", "safe_serialization=True"])
    }
}
