// End to end: SmolLM2's own chat template (from its GGUF) rendered for each chat reference case, then encoded,
// gives exactly the reference prompt ids.
import Foundation
import TesseraTokenizer
import XCTest

final class TokenizerChatTemplateEncodeTests: XCTestCase {
    func testRenderedChatPromptEncodesToTheReferenceIds() throws {
        let tokenizer = try TokenizerFixtures.tokenizer(TokenizerFixtures.smolLM2GGUF)
        let source = try XCTUnwrap(tokenizer.chatTemplate, "SmolLM2's GGUF has tokenizer.chat_template")
        let template = try ChatTemplate(source)
        let ref = try TokenizerFixtures.referenceFile("smollm2-135m-instruct-q4_1.chat")
        XCTAssertEqual(ref.cases.count, 2)
        for c in ref.cases {
            let text = try template.render(messages: [ChatMessage(role: "user", content: c.prompt)], addGenerationPrompt: true,
                                           bosToken: tokenizer.bosToken, eosToken: tokenizer.eosToken)
            XCTAssertEqual(tokenizer.encode(text), c.promptIds, text)
        }
    }
}
