import Foundation
import TesseraFormats
import TesseraJinja
import TesseraTokenizer
import TesseraTestSupport
import XCTest

/// SmolLM2-135M-Instruct end to end: the chat template stored in the model's GGUF, rendered for the chat
/// reference prompts (one user message, add_generation_prompt) and encoded without extra special tokens,
/// gives exactly the reference prompt ids (transformers' apply_chat_template + tokenizer).
final class ChatTemplateSmolLM2Tests: XCTestCase {
    private static let repo = Repo.root
    private static let shared = Repo.shared

    func testTemplateFixtureIsTheModelsOwn() throws {
        let path = Self.repo.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
        guard FileManager.default.fileExists(atPath: path) else {
            return XCTFail("\(path) is missing: run launch/setup --model")
        }
        let gguf = try GGUFFile(path: path)
        let fromModel = try XCTUnwrap(gguf.metadata["tokenizer.chat_template"]?.string)
        let fixture = try String(contentsOf: ChatTemplateFixtureTests.fixtures
            .appendingPathComponent("chat_templates/smollm2.jinja"), encoding: .utf8)
        XCTAssertEqual(fromModel, fixture, "Fixtures/chat_templates/smollm2.jinja must be the GGUF's template")
    }

    func testRenderedPromptsEncodeToReferenceIds() throws {
        let path = Self.repo.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
        guard FileManager.default.fileExists(atPath: path) else {
            return XCTFail("\(path) is missing: run launch/setup --model")
        }
        let tokenizer = try Tokenizer.load(.gguf(try GGUFFile(path: path)))
        let chat = try ChatTemplate(try XCTUnwrap(tokenizer.chatTemplate, "SmolLM2's GGUF has tokenizer.chat_template"))

        let referenceURL = Self.shared.appendingPathComponent("reference/smollm2-135m-instruct-q4_1.chat.json")
        let reference = try JinjaValue(json: String(contentsOf: referenceURL, encoding: .utf8))
        let cases = try XCTUnwrap(reference["cases"]?.listValue)
        let prompts = try String(contentsOf: Self.shared.appendingPathComponent("reference/smollm2.chat.prompts"), encoding: .utf8)
            .split(separator: "\n").map(String.init)
        XCTAssertEqual(cases.count, prompts.count)
        for (entry, prompt) in zip(cases, prompts) {
            XCTAssertEqual(entry["prompt"]?.stringValue, prompt)
            let expected = try XCTUnwrap(entry["prompt_ids"]?.listValue).compactMap { value -> Int? in
                if case .int(let id) = value { return id }
                return nil
            }
            let text = try chat.render(messages: [ChatMessage(role: "user", content: prompt)], addGenerationPrompt: true,
                                       bosToken: tokenizer.bosToken, eosToken: tokenizer.eosToken)
            XCTAssertTrue(text.hasSuffix("<|im_start|>user\n\(prompt)<|im_end|>\n<|im_start|>assistant\n"), text)
            // The template writes every special token itself; SmolLM2 adds no BOS of its own either.
            XCTAssertEqual(tokenizer.encode(text, addSpecialTokens: false), expected, text)
            XCTAssertEqual(tokenizer.encode(text, addSpecialTokens: true), expected, text)
        }
    }
}
