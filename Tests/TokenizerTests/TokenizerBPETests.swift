// Small hand-made tokenizer.json files whose results are worked out by hand: merge order, long words, ignore_merges,
// unknown and byte-fallback characters, added-token whitespace stripping, Metaspace options.
import Foundation
import TesseraFormats
import TesseraTokenizer
import XCTest

final class TokenizerBPETests: XCTestCase {
    private func tokenizer(vocab: [String], merges: [String], model extra: [String: JSONValue] = [:],
                           top: [String: JSONValue] = [:]) throws -> Tokenizer {
        var v: [String: JSONValue] = [:]
        for (i, p) in vocab.enumerated() { v[p] = .int(Int64(i)) }
        var model: [String: JSONValue] = ["type": .string("BPE"), "vocab": .object(v), "merges": .array(merges.map { .string($0) })]
        model.merge(extra) { $1 }
        var root: [String: JSONValue] = ["model": .object(model)]
        root.merge(top) { $1 }
        return try Tokenizer.load(tokenizerJSON: .object(root))
    }

    private func pieces(_ t: Tokenizer, _ text: String) -> [String] {
        t.encode(text, addSpecialTokens: false).map { t.tokenText($0) ?? "?" }
    }

    func testLowestRankFirstThenLeftmost() throws {
        let t = try tokenizer(vocab: ["a", "b", "c", "ab", "bc", "abc", "aa"], merges: ["b c", "a b", "a a", "a bc"])
        XCTAssertEqual(pieces(t, "abc"), ["abc"])          // b c (rank 0), then a bc
        XCTAssertEqual(pieces(t, "aaa"), ["aa", "a"])      // leftmost of two equal pairs
        XCTAssertEqual(pieces(t, "abab"), ["ab", "ab"])
    }

    func testLongWordsUseTheSameOrder() throws {
        let t = try tokenizer(vocab: ["a", "aa", "aaaa", "b"], merges: ["a a", "aa aa"])
        XCTAssertEqual(pieces(t, String(repeating: "a", count: 40)), Array(repeating: "aaaa", count: 10))
        XCTAssertEqual(pieces(t, String(repeating: "a", count: 43)), Array(repeating: "aaaa", count: 10) + ["aa", "a"])
        XCTAssertEqual(pieces(t, String(repeating: "ab", count: 20)), Array(repeating: ["a", "b"], count: 20).flatMap { $0 })
    }

    func testIgnoreMergesEmitsWholeWords() throws {
        let vocab = ["a", "b", "c", "bc", "abc"]
        XCTAssertEqual(pieces(try tokenizer(vocab: vocab, merges: ["b c"]), "abc"), ["a", "bc"])
        XCTAssertEqual(pieces(try tokenizer(vocab: vocab, merges: ["b c"], model: ["ignore_merges": .bool(true)]), "abc"), ["abc"])
    }

    func testUnknownAndByteFallbackCharacters() throws {
        let base = ["<unk>", "x", "y"]
        let fused = try tokenizer(vocab: base, merges: [], model: ["unk_token": .string("<unk>"), "fuse_unk": .bool(true)])
        XCTAssertEqual(pieces(fused, "x??y?"), ["x", "<unk>", "y", "<unk>"])
        let unfused = try tokenizer(vocab: base, merges: [], model: ["unk_token": .string("<unk>")])
        XCTAssertEqual(pieces(unfused, "x??y"), ["x", "<unk>", "<unk>", "y"])
        let dropped = try tokenizer(vocab: base, merges: [])
        XCTAssertEqual(pieces(dropped, "x??y"), ["x", "y"])
        // é = C3 A9: both byte pieces present -> bytes; ü = C3 BC: 0xBC missing -> unknown
        let bytes = try tokenizer(vocab: base + ["<0xC3>", "<0xA9>"], merges: [],
                                  model: ["unk_token": .string("<unk>"), "byte_fallback": .bool(true)])
        XCTAssertEqual(pieces(bytes, "xéü"), ["x", "<0xC3>", "<0xA9>", "<unk>"])
    }

    func testAddedTokensStripWhitespaceAndPreferTheLongest() throws {
        let added: JSONValue = .array([
            .object(["id": .int(3), "content": .string("<m>"), "special": .bool(true), "lstrip": .bool(true), "rstrip": .bool(true)]),
            .object(["id": .int(4), "content": .string("<m>x"), "special": .bool(false)]),
        ])
        let t = try tokenizer(vocab: ["a", " ", "x"], merges: [], top: ["added_tokens": added])
        XCTAssertEqual(t.encode("a  <m>  a", addSpecialTokens: false), [0, 3, 0])
        XCTAssertEqual(t.encode("a<m>xa", addSpecialTokens: false), [0, 4, 0])
        XCTAssertEqual(t.decode([0, 3, 4]), "a<m>x")
        XCTAssertEqual(t.decode([0, 3, 4], skipSpecialTokens: false), "a<m><m>x")
    }

    func testMetaspaceOptions() throws {
        let vocab = ["\u{2581}", "a", "b", "\u{2581}a", "a\u{2581}", "a\u{2581}b"]
        let merges = ["\u{2581} a", "a \u{2581}", "a\u{2581} b"]
        func metaspace(_ scheme: String, split: Bool) throws -> Tokenizer {
            try tokenizer(vocab: vocab, merges: merges, top: ["pre_tokenizer": .object([
                "type": .string("Metaspace"), "replacement": .string("\u{2581}"),
                "prepend_scheme": .string(scheme), "split": .bool(split)])])
        }
        XCTAssertEqual(pieces(try metaspace("always", split: true), "a b"), ["\u{2581}a", "\u{2581}", "b"])
        XCTAssertEqual(pieces(try metaspace("never", split: false), "a b"), ["a\u{2581}b"])
        XCTAssertEqual(pieces(try metaspace("first", split: false), " a"), ["\u{2581}a"])
    }
}
