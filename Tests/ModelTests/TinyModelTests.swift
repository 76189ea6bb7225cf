// The float32 path on small trained checkpoints: stories260K (HF folder and GGUF) and TinyStories-656K (HF).
import TesseraModels
import XCTest

final class TinyModelTests: XCTestCase {
    func check(_ path: String, reference name: String) throws {
        let model = try loadModel(path)
        let reference = try Reference(name)
        XCTAssertEqual(reference.cases.count, 3)
        try checkCases(model, reference.cases, eosID: reference.eosID, logitTolerance: 1e-4)
        let ids = try XCTUnwrap(reference.perplexityIDs), expected = try XCTUnwrap(reference.perplexity)
        let ppl = try perplexity(model, ids)
        XCTAssertEqual(ppl, expected, accuracy: expected * 1e-3, "\(name): perplexity")
    }

    func testStories260KHuggingFace() throws {
        try check(Paths.model("stories260K/hf"), reference: "stories260K")
    }

    func testStories260KGGUF() throws {
        try check(Paths.model("stories260K/gguf/stories260K-f32.gguf"), reference: "stories260K")
    }

    func testTinyStories656K() throws {
        try check(Paths.model("tinystories-656k"), reference: "tinystories-656k")
    }
}
