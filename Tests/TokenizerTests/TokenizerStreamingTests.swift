// StreamingDecoder: only complete UTF-8 text comes out; a character split across tokens waits for its last byte.
import Foundation
import TesseraTokenizer
import XCTest

final class TokenizerStreamingTests: XCTestCase {
    /// Feeds `ids` one at a time; returns the chunks (finish() last).
    private func stream(_ tokenizer: Tokenizer, _ ids: [Int], skipSpecialTokens: Bool = true) -> [String] {
        var decoder = tokenizer.streamingDecoder(skipSpecialTokens: skipSpecialTokens)
        var chunks = ids.map { decoder.feed($0) }
        chunks.append(decoder.finish())
        return chunks
    }

    func testByteFallbackEmojiIsHeldBackUntilComplete() throws {
        let t = try TokenizerFixtures.tokenizer(TokenizerFixtures.stories260KFolder)
        // 🙂 is U+1F642: UTF-8 F0 9F 99 82, four byte-fallback pieces in this vocabulary.
        let ids = try [0xF0, 0x9F, 0x99, 0x82].map { try XCTUnwrap(t.tokenID(String(format: "<0x%02X>", $0))) }
        XCTAssertEqual(stream(t, ids), ["", "", "", "🙂", ""])
        XCTAssertEqual(t.decode(ids), "🙂")
    }

    func testCJKAndEmojiSplitAcrossTokensStreamWithoutReplacementCharacters() throws {
        let texts = ["推理优化样例库", "emoji 🙂 and accents: café naïve", "🙂🙂 mixed 推理 👍🏽 end"]
        for path in [TokenizerFixtures.stories260KFolder, TokenizerFixtures.stories260KGGUF, TokenizerFixtures.smolLM2GGUF] {
            let t = try TokenizerFixtures.tokenizer(path)
            for text in texts {
                let ids = t.encode(text, addSpecialTokens: false)
                let chunks = stream(t, ids)
                XCTAssertEqual(chunks.joined(), t.decode(ids), "\(path): \(text)")
                XCTAssertEqual(chunks.joined(), text, "\(path): \(text)")
                for chunk in chunks { XCTAssertFalse(chunk.contains("\u{FFFD}"), "\(path): partial character released") }
            }
        }
    }

    func testCJKByteLevelPiecesReleaseWholeCharacters() throws {
        let t = try TokenizerFixtures.tokenizer(TokenizerFixtures.smolLM2GGUF)
        let text = "推理优化样例库"
        let ids = t.encode(text, addSpecialTokens: false)
        XCTAssertGreaterThan(ids.count, 7, "some characters span several byte-level pieces")
        var decoder = t.streamingDecoder()
        var out = ""
        for id in ids {
            let chunk = decoder.feed(id)
            out += chunk
            XCTAssertTrue(text.hasPrefix(out), "released text is always a prefix of whole characters")
        }
        out += decoder.finish()
        XCTAssertEqual(out, text)
    }

    func testSpecialTokensInTheStream() throws {
        let t = try TokenizerFixtures.tokenizer(TokenizerFixtures.smolLM2GGUF)
        let ids = t.encode("<|im_start|>assistant\nHi there<|im_end|>", addSpecialTokens: false)
        XCTAssertEqual(stream(t, ids).joined(), "assistant\nHi there")
        XCTAssertEqual(stream(t, ids, skipSpecialTokens: false).joined(), "<|im_start|>assistant\nHi there<|im_end|>")
    }

    func testSentencePieceStreamDropsOnlyTheFirstDummySpace() throws {
        let t = try TokenizerFixtures.tokenizer(TokenizerFixtures.stories260KGGUF)
        let ids = t.encode("Once upon a time")
        XCTAssertEqual(stream(t, ids).joined(), "Once upon a time")
        XCTAssertEqual(stream(t, ids, skipSpecialTokens: false).joined(), "<s> Once upon a time")
        XCTAssertEqual(t.decode(ids, skipSpecialTokens: false), "<s> Once upon a time")
    }

    func testIncompleteSequenceAtTheEndBecomesReplacementCharacter() throws {
        let t = try TokenizerFixtures.tokenizer(TokenizerFixtures.stories260KFolder)
        let ids = try [0xE6, 0x8E].map { try XCTUnwrap(t.tokenID(String(format: "<0x%02X>", $0))) }
        XCTAssertEqual(stream(t, ids), ["", "", "\u{FFFD}"])
    }
}
