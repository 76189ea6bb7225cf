// Broken tokenizer files give errors naming the file and the key at fault.
import Foundation
import TesseraFormats
import TesseraTokenizer
import XCTest

final class TokenizerErrorTests: XCTestCase {
    private func tempFile(_ contents: String) throws -> String {
        let dir = FileManager.default.temporaryDirectory.appendingPathComponent("tokenizer-tests-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
        addTeardownBlock { try? FileManager.default.removeItem(at: dir) }
        let file = dir.appendingPathComponent("tokenizer.json")
        try contents.write(to: file, atomically: true, encoding: .utf8)
        return file.path
    }

    private func assertError(_ json: String, mentions words: [String], line: UInt = #line) throws {
        let path = try tempFile(json)
        XCTAssertThrowsError(try Tokenizer.load(tokenizerFile: path), line: line) { error in
            let text = String(describing: error)
            XCTAssertTrue(text.contains(path), "names the file: \(text)", line: line)
            for w in words { XCTAssertTrue(text.contains(w), "mentions \(w): \(text)", line: line) }
        }
    }

    func testNotJSON() throws {
        try assertError("{ this is not json", mentions: [])
    }

    func testMissingModel() throws {
        try assertError(#"{"version": "1.0", "added_tokens": []}"#, mentions: ["model", "missing"])
    }

    func testUnknownModelType() throws {
        try assertError(#"{"model": {"type": "Unigram", "vocab": [["a", 0.0]]}}"#, mentions: ["model.type", "Unigram"])
    }

    func testBadMerge() throws {
        try assertError(#"{"model": {"type": "BPE", "vocab": {"a": 0, "b": 1}, "merges": ["a b"]}}"#,
                        mentions: ["model.merges[0]", "'ab'"])
    }

    func testUnsupportedPreTokenizer() throws {
        try assertError(#"{"model": {"type": "BPE", "vocab": {"a": 0}, "merges": []}, "pre_tokenizer": {"type": "BertPreTokenizer"}}"#,
                        mentions: ["pre_tokenizer.type", "BertPreTokenizer"])
    }

    func testGGUFMetadataErrors() {
        let base: [String: GGUFValue] = [
            "tokenizer.ggml.model": .string("gpt2"),
            "tokenizer.ggml.tokens": .array([.string("a"), .string("b"), .string("ab")]),
            "tokenizer.ggml.merges": .array([.string("a b")]),
        ]
        XCTAssertNoThrow(try Tokenizer.load(ggufMetadata: base, path: "x.gguf"))
        let cases: [(String, GGUFValue?, String)] = [
            ("tokenizer.ggml.model", .string("bert"), "bert"),
            ("tokenizer.ggml.tokens", nil, "missing"),
            ("tokenizer.ggml.pre", .string("mystery"), "mystery"),
            ("tokenizer.ggml.merges", .array([.string("a c")]), "'c'"),
            ("tokenizer.ggml.bos_token_id", .uint32(7), "outside"),
            ("tokenizer.ggml.token_type", .array([.int32(1)]), "3"),
        ]
        for (key, value, word) in cases {
            var md = base
            md[key] = value
            XCTAssertThrowsError(try Tokenizer.load(ggufMetadata: md, path: "x.gguf")) { error in
                let text = String(describing: error)
                XCTAssertTrue(text.contains("x.gguf") && text.contains(key) && text.contains(word), text)
            }
        }
    }
}
