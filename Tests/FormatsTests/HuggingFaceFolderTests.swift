import Foundation
import TesseraFormats
import XCTest

/// Hugging Face folders and `ModelSource.open` on folders.
final class HuggingFaceFolderTests: XCTestCase {
    func testSharedFoldersOpen() throws {
        guard case .huggingFace(let stories) = try ModelSource.open(path: Paths.stories260KHF) else {
            return XCTFail("a folder should open as a Hugging Face folder")
        }
        XCTAssertEqual(stories.config["model_type"]?.string, "llama")
        XCTAssertEqual(stories.config["rms_norm_eps"]?.double, 1e-5)
        XCTAssertEqual(stories.config["vocab_size"]?.int, 512)
        XCTAssertNotNil(stories.tokenizerJSON?["model"]?["vocab"])
        XCTAssertNotNil(stories.tokenizerConfig)
        XCTAssertNotNil(stories.generationConfig)
        XCTAssertEqual(stories.weights.tensorInfos.count, 47)

        let tiny = try HuggingFaceFolder(path: Paths.tinyStories656K)
        XCTAssertEqual(tiny.config["hidden_size"]?.int, 128)
        XCTAssertEqual(tiny.config["rope_scaling"], .null)
        XCTAssertEqual(tiny.config["tie_word_embeddings"]?.bool, true)
        XCTAssertNotNil(tiny.weights.tensorInfos["model.embed_tokens.weight"])
        XCTAssertEqual(ModelSource.huggingFace(tiny).tensors.tensorInfos.count, 21)
    }

    func testRefusals() throws {
        assertFormatError(["/no/such/folder", "no such file"]) { try HuggingFaceFolder(path: "/no/such/folder") }
        let dir = try makeTempFolder(self)
        try Data(#"{"model_type": "llama"}"#.utf8).write(to: dir.appendingPathComponent("config.json"))
        assertFormatError([dir.path, "no model.safetensors"]) { try HuggingFaceFolder(path: dir.path) }
        try Data([0x80, 0x02]).write(to: dir.appendingPathComponent("pytorch_model.bin"))
        assertFormatError([dir.path, "pytorch_model.bin", "execute arbitrary code", "save_pretrained", "safe_serialization=True"]) {
            try ModelSource.open(path: dir.path)
        }
        // Weights but no config.json.
        let weightsOnly = try makeTempFolder(self)
        try Data(makeSafetensors([("w", "F32", [1], floatBytes([1]))])).write(to: weightsOnly.appendingPathComponent("model.safetensors"))
        assertFormatError([weightsOnly.path, "no config.json"]) { try HuggingFaceFolder(path: weightsOnly.path) }
        try Data("{oops".utf8).write(to: weightsOnly.appendingPathComponent("config.json"))
        assertFormatError(["config.json", "invalid JSON at byte 1"]) { try HuggingFaceFolder(path: weightsOnly.path) }
        try Data(#"{"a": 1}"#.utf8).write(to: weightsOnly.appendingPathComponent("config.json"))
        try Data().write(to: weightsOnly.appendingPathComponent("tokenizer.json"))
        assertFormatError(["tokenizer.json", "empty file"]) { try HuggingFaceFolder(path: weightsOnly.path) }
    }
}
