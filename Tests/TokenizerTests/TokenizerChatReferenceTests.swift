// SmolLM2's chat reference: the prompt ids come from its chat template. The text they decode to (special tokens
// kept) must tokenize back to exactly those ids, special tokens matched whole inside the text.
import Foundation
import TesseraTokenizer
import XCTest

final class TokenizerChatReferenceTests: XCTestCase {
    func testChatPromptTextTokenizesBackToTheReferenceIds() throws {
        let tokenizer = try TokenizerFixtures.tokenizer(TokenizerFixtures.smolLM2GGUF)
        let ref = try TokenizerFixtures.referenceFile("smollm2-135m-instruct-q4_1.chat")
        XCTAssertEqual(ref.cases.count, 2)
        for c in ref.cases {
            let text = tokenizer.decode(c.promptIds, skipSpecialTokens: false)
            XCTAssertTrue(text.hasPrefix("<|im_start|>system\n"), text)
            XCTAssertTrue(text.contains("<|im_start|>user\n\(c.prompt)<|im_end|>\n"), text)
            XCTAssertTrue(text.hasSuffix("<|im_start|>assistant\n"), text)
            XCTAssertEqual(tokenizer.encode(text, addSpecialTokens: false), c.promptIds)
            XCTAssertEqual(tokenizer.encode(text), c.promptIds, "SmolLM2 adds no BOS of its own")
            let special = tokenizer.decode(c.promptIds)
            XCTAssertFalse(special.contains("<|im_start|>"), "special tokens are skipped by default")
        }
    }
}
