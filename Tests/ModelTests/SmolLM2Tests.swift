// The project's default model, SmolLM2-135M-Instruct Q4_1 (GGUF): raw and chat-templated reference cases,
// decoded together in one batch, and perplexity.
import Foundation
import TesseraModels
import XCTest

final class SmolLM2Tests: XCTestCase {
    func model() throws -> any LanguageModel {
        guard FileManager.default.fileExists(atPath: Paths.smolLM2) else {
            XCTFail("\(Paths.smolLM2) is missing: run `launch/setup --model`")
            throw XCTSkip("model file missing")
        }
        return try loadModel(Paths.smolLM2)
    }

    func testRawAndChatCases() throws {
        let model = try model()
        let raw = try Reference("smollm2-135m-instruct-q4_1"), chat = try Reference("smollm2-135m-instruct-q4_1.chat")
        XCTAssertEqual(raw.cases.count, 3)
        XCTAssertEqual(chat.cases.count, 2)
        try checkCases(model, raw.cases + chat.cases, eosID: raw.eosID, logitTolerance: 1e-2)
    }

    func testPerplexity() throws {
        let model = try model()
        let reference = try Reference("smollm2-135m-instruct-q4_1")
        let ids = try XCTUnwrap(reference.perplexityIDs), expected = try XCTUnwrap(reference.perplexity)
        XCTAssertEqual(try perplexity(model, ids), expected, accuracy: expected * 1e-3)
    }
}
