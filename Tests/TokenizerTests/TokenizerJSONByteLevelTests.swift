// The tokenizer.json path of byte-level BPE: SmolLM2's vocabulary and merges (taken from its GGUF file) written in
// the Hugging Face layout SmolLM2 ships (Digits + ByteLevel pre-tokenizer), checked against the reference ids.
import Foundation
import TesseraFormats
import TesseraTokenizer
import XCTest

final class TokenizerJSONByteLevelTests: XCTestCase {
    /// SmolLM2's tokenizer.json and tokenizer_config.json rebuilt from the GGUF metadata.
    private func smolLM2JSON(preTokenizer: JSONValue) throws -> (JSONValue, JSONValue) {
        let path = TokenizerFixtures.smolLM2GGUF
        guard FileManager.default.fileExists(atPath: path) else {
            XCTFail("\(path) is missing: run `launch/setup --model` first"); throw CocoaError(.fileNoSuchFile)
        }
        guard case .gguf(let file) = try ModelSource.open(path: path) else { throw CocoaError(.fileReadUnknown) }
        let tokens = try XCTUnwrap(file.metadata["tokenizer.ggml.tokens"]?.strings)
        let types = try XCTUnwrap(file.metadata["tokenizer.ggml.token_type"]?.array).map { $0.int ?? 1 }
        let merges = try XCTUnwrap(file.metadata["tokenizer.ggml.merges"]?.strings)
        var vocab: [String: JSONValue] = [:]
        for (id, t) in tokens.enumerated() { vocab[t] = .int(Int64(id)) }
        let added: [JSONValue] = tokens.indices.filter { types[$0] == 3 }.map {
            .object(["id": .int(Int64($0)), "content": .string(tokens[$0]), "special": .bool(true),
                     "lstrip": .bool(false), "rstrip": .bool(false), "normalized": .bool(false), "single_word": .bool(false)])
        }
        let byteLevel: JSONValue = .object(["type": .string("ByteLevel"), "add_prefix_space": .bool(false),
                                            "trim_offsets": .bool(true), "use_regex": .bool(true)])
        let tokenizer: JSONValue = .object([
            "version": .string("1.0"),
            "added_tokens": .array(added),
            "normalizer": .null,
            "pre_tokenizer": preTokenizer,
            "post_processor": byteLevel,
            "decoder": byteLevel,
            "model": .object(["type": .string("BPE"), "dropout": .null, "unk_token": .null, "fuse_unk": .bool(false),
                              "byte_fallback": .bool(false), "vocab": .object(vocab),
                              "merges": .array(merges.map { .string($0) })]),
        ])
        let config: JSONValue = .object([
            "tokenizer_class": .string("GPT2Tokenizer"), "bos_token": .string("<|im_start|>"),
            "eos_token": .string("<|im_end|>"), "unk_token": .string("<|endoftext|>"),
            "chat_template": .string(file.metadata["tokenizer.chat_template"]?.string ?? ""),
        ])
        return (tokenizer, config)
    }

    private func checkReference(_ tokenizer: Tokenizer, _ label: String) throws {
        let ref = try TokenizerFixtures.referenceFile("smollm2-135m-instruct-q4_1")
        for entry in ref.tokenizer ?? [] {
            XCTAssertEqual(tokenizer.encode(entry.text, addSpecialTokens: false), entry.ids, "\(label): \(entry.text.debugDescription)")
            XCTAssertEqual(tokenizer.decode(entry.ids), tokenizer.decode(entry.ids, skipSpecialTokens: false)
                .replacingOccurrences(of: "<|im_start|>", with: "").replacingOccurrences(of: "<|im_end|>", with: ""))
        }
        for c in ref.cases { XCTAssertEqual(tokenizer.encode(c.prompt), c.promptIds, "\(label): \(c.prompt)") }
        let ppl = try XCTUnwrap(ref.perplexity)
        XCTAssertEqual(tokenizer.encode(try TokenizerFixtures.text(ppl.textFile)), ppl.tokenIds, label)
    }

    func testSmolLM2TokenizerJSONMatchesReference() throws {
        let pre: JSONValue = .object(["type": .string("Sequence"), "pretokenizers": .array([
            .object(["type": .string("Digits"), "individual_digits": .bool(true)]),
            .object(["type": .string("ByteLevel"), "add_prefix_space": .bool(false), "trim_offsets": .bool(true),
                     "use_regex": .bool(true)]),
        ])])
        let (json, config) = try smolLM2JSON(preTokenizer: pre)
        let tokenizer = try Tokenizer.load(tokenizerJSON: json, tokenizerConfig: config)
        try checkReference(tokenizer, "tokenizer.json")
        XCTAssertEqual(tokenizer.bosID, 1)
        XCTAssertEqual(tokenizer.eosIDs, [2])
        XCTAssertEqual(tokenizer.prefixIDs, [])
        XCTAssertEqual(tokenizer.chatTemplate, try TokenizerFixtures.tokenizer(TokenizerFixtures.smolLM2GGUF).chatTemplate)
    }

    /// A Split pre-tokenizer whose regex has no hand-written scanner runs through Swift Regex.
    func testUnrecognizedSplitRegexFallsBackToSwiftRegex() throws {
        let gpt2 = "(?:" + SplitPattern.gpt2.regex + ")"
        let pre: JSONValue = .object(["type": .string("Sequence"), "pretokenizers": .array([
            .object(["type": .string("Digits"), "individual_digits": .bool(true)]),
            .object(["type": .string("Split"), "pattern": .object(["Regex": .string(gpt2)]),
                     "behavior": .string("Isolated"), "invert": .bool(false)]),
            .object(["type": .string("ByteLevel"), "add_prefix_space": .bool(false), "use_regex": .bool(false)]),
        ])])
        let (json, config) = try smolLM2JSON(preTokenizer: pre)
        try checkReference(try Tokenizer.load(tokenizerJSON: json, tokenizerConfig: config), "Split regex")
    }
}
