// Bad inputs give typed errors naming what is wrong: config keys, tensor shapes, architectures, context limits.
import Foundation
import TesseraFormats
import TesseraKernels
import TesseraModels
import XCTest

final class ModelErrorTests: XCTestCase {
    /// A copy of the stories260K HF folder whose config.json is `edit`ed (weights linked, not copied).
    func editedStories(_ edit: (inout [String: Any]) -> Void) throws -> String {
        let source = URL(fileURLWithPath: Paths.model("stories260K/hf"))
        let folder = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: folder, withIntermediateDirectories: true)
        try FileManager.default.createSymbolicLink(at: folder.appendingPathComponent("model.safetensors"),
                                                   withDestinationURL: source.appendingPathComponent("model.safetensors"))
        var config = try JSONSerialization.jsonObject(with: Data(contentsOf: source.appendingPathComponent("config.json"))) as! [String: Any]
        edit(&config)
        try JSONSerialization.data(withJSONObject: config).write(to: folder.appendingPathComponent("config.json"))
        return folder.path
    }

    func assertThrows(_ expected: ModelError, mentioning words: [String], file: StaticString = #filePath,
                      line: UInt = #line, _ body: () throws -> Void) {
        XCTAssertThrowsError(try body(), file: file, line: line) { error in
            XCTAssertEqual(error as? ModelError, expected, file: file, line: line)
            for word in words {
                XCTAssertTrue("\(error)".contains(word), "'\(error)' should mention '\(word)'", file: file, line: line)
            }
        }
    }

    func testShapeMismatchNamesTensorAndShapes() throws {
        let folder = try editedStories { $0["intermediate_size"] = 176 }
        defer { try? FileManager.default.removeItem(atPath: folder) }
        assertThrows(.shapeMismatch(tensor: "model.layers.0.mlp.gate_proj.weight", expected: [176, 64], found: [172, 64]),
                     mentioning: ["model.layers.0.mlp.gate_proj.weight", "[176, 64]", "[172, 64]"]) {
            _ = try loadModel(folder)
        }
    }

    func testInvalidConfigNamesKey() throws {
        let folder = try editedStories { $0["num_key_value_heads"] = 3 }
        defer { try? FileManager.default.removeItem(atPath: folder) }
        XCTAssertThrowsError(try loadModel(folder)) { error in
            guard case let .invalidConfig(file, key, _)? = error as? ModelError else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "num_key_value_heads")
            XCTAssertTrue(file.hasSuffix("config.json"), file)
        }
        let yarn = try editedStories { $0["rope_scaling"] = ["rope_type": "yarn", "factor": 4.0] }
        defer { try? FileManager.default.removeItem(atPath: yarn) }
        XCTAssertThrowsError(try loadModel(yarn)) { error in
            guard case let .invalidConfig(_, key, reason)? = error as? ModelError else { return XCTFail("\(error)") }
            XCTAssertEqual(key, "rope_scaling.rope_type")
            XCTAssertTrue(reason.contains("llama3"), reason)
        }
        let missing = try editedStories { $0["hidden_size"] = nil }
        defer { try? FileManager.default.removeItem(atPath: missing) }
        XCTAssertThrowsError(try loadModel(missing)) { error in
            XCTAssertEqual(error as? ModelError, .invalidConfig(file: missing + "/config.json", key: "hidden_size", reason: "missing"))
        }
    }

    func testUnknownArchitectureListsSupported() throws {
        let folder = try editedStories { $0["architectures"] = ["GPT2LMHeadModel"]; $0["model_type"] = "gpt2" }
        defer { try? FileManager.default.removeItem(atPath: folder) }
        XCTAssertThrowsError(try loadModel(folder)) { error in
            guard case let .unknownArchitecture(name, supported)? = error as? ModelError else { return XCTFail("\(error)") }
            XCTAssertEqual(name, "gpt2")
            XCTAssertEqual(Set(supported), ["llama", "mistral", "qwen2", "LlamaForCausalLM", "MistralForCausalLM", "Qwen2ForCausalLM"])
            XCTAssertTrue("\(error)".contains("LlamaForCausalLM, MistralForCausalLM"), "\(error)")
        }
        XCTAssertEqual(try ModelRegistry.family(named: "MistralForCausalLM").name, "llama")
    }

    func testContextOverflowThrowsWithoutWriting() throws {
        let model = try loadModel(Paths.model("stories260K/gguf/stories260K-f32.gguf"))
        let cache = try model.makeCache(sequences: 2, contextLength: 4)
        assertThrows(.contextFull(sequence: 1, limit: 4), mentioning: ["sequence 1", "4"]) {
            _ = try model.forward(Batch(tokens: [1, 403, 407, 261, 378], sequence: 1), cache: cache)
        }
        XCTAssertEqual(cache.offset(of: 1), 0)
        _ = try model.forward(Batch(tokens: [1, 403, 407, 261]), cache: cache)
        XCTAssertEqual(cache.offset(of: 0), 4)
        assertThrows(.contextFull(sequence: 0, limit: 4), mentioning: ["sequence 0"]) {
            _ = try model.forward(Batch(tokens: [378], startingAt: 4), cache: cache)
        }
        cache.trim(sequence: 0, to: 3)
        XCTAssertEqual(try model.forward(Batch(tokens: [378], startingAt: 3), cache: cache).count, model.vocabularySize)
    }

    func testMalformedBatchesAreRejected() throws {
        let model = try loadModel(Paths.model("stories260K/gguf/stories260K-f32.gguf"))
        let cache = try model.makeCache(sequences: 1, contextLength: 8)
        XCTAssertThrowsError(try model.forward(Batch(tokens: [1, 512]), cache: cache)) { error in
            XCTAssertTrue("\(error)".contains("512"), "\(error)")
        }
        XCTAssertThrowsError(try model.forward(Batch(tokens: [1], startingAt: 2), cache: cache))   // gap
        XCTAssertThrowsError(try model.forward(Batch(tokens: [1], sequence: 1), cache: cache))     // no such slot
        XCTAssertEqual(cache.offset(of: 0), 0)
    }
}
