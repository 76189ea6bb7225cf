// Encodes the reference strings, prompts and ppl.txt of every model in ../shared/reference and compares with the
// ids Hugging Face transformers produced; decodes them back.
import Foundation
import TesseraFormats
import TesseraTokenizer
import TesseraTestSupport
import XCTest

/// Paths, reference files and (cached) tokenizers shared by the tokenizer tests.
enum TokenizerFixtures {
    static let repo = Repo.root
    static let shared = Repo.shared
    static let reference = shared.appendingPathComponent("reference")
    static let models = shared.appendingPathComponent("models")

    static let stories260KFolder = models.appendingPathComponent("stories260K/hf").path
    static let stories260KGGUF = models.appendingPathComponent("stories260K/gguf/stories260K-f32.gguf").path
    static let tinyStories656KFolder = models.appendingPathComponent("tinystories-656k").path
    static let smolLM2GGUF = repo.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path

    struct ReferenceCase: Decodable { let prompt: String; let promptIds: [Int] }
    struct ReferenceEntry: Decodable { let text: String; let ids: [Int] }
    struct Perplexity: Decodable { let textFile: String; let tokenIds: [Int] }
    struct ReferenceFile: Decodable {
        let name: String
        let bosTokenId: Int?
        let eosTokenId: Int?
        let cases: [ReferenceCase]
        let tokenizer: [ReferenceEntry]?
        let perplexity: Perplexity?
    }

    static func referenceFile(_ name: String) throws -> ReferenceFile {
        let url = reference.appendingPathComponent(name + ".json")
        let decoder = JSONDecoder()
        decoder.keyDecodingStrategy = .convertFromSnakeCase
        return try decoder.decode(ReferenceFile.self, from: try Data(contentsOf: url))
    }

    static func text(_ file: String) throws -> String {
        try String(contentsOf: reference.appendingPathComponent(file), encoding: .utf8)
    }

    private static let cache = Cache()
    private final class Cache: @unchecked Sendable {
        let lock = NSLock()
        var tokenizers: [String: Tokenizer] = [:]
    }

    /// The tokenizer of the model at `path` (GGUF file or HF folder), loaded once per test run.
    static func tokenizer(_ path: String) throws -> Tokenizer {
        if path == smolLM2GGUF && !FileManager.default.fileExists(atPath: path) {
            XCTFail("\(path) is missing: run `launch/setup --model` first")
            throw CocoaError(.fileNoSuchFile)
        }
        cache.lock.lock(); defer { cache.lock.unlock() }
        if let t = cache.tokenizers[path] { return t }
        let t = try Tokenizer.load(path: path)
        cache.tokenizers[path] = t
        return t
    }
}

final class TokenizerReferenceTests: XCTestCase {
    /// (model source, reference file) pairs: every source of a model must give the reference ids.
    static let sources: [(path: String, reference: String)] = [
        (TokenizerFixtures.stories260KFolder, "stories260K"),
        (TokenizerFixtures.stories260KGGUF, "stories260K"),
        (TokenizerFixtures.tinyStories656KFolder, "tinystories-656k"),
        (TokenizerFixtures.smolLM2GGUF, "smollm2-135m-instruct-q4_1"),
    ]

    func testReferenceStringsEncodeWithoutSpecialTokens() throws {
        var checked = 0
        for (path, name) in Self.sources {
            let tokenizer = try TokenizerFixtures.tokenizer(path)
            let entries = try XCTUnwrap(TokenizerFixtures.referenceFile(name).tokenizer, "\(name): no tokenizer[]")
            XCTAssertFalse(entries.isEmpty)
            for entry in entries {
                XCTAssertEqual(tokenizer.encode(entry.text, addSpecialTokens: false), entry.ids,
                               "\(path): \(entry.text.debugDescription)")
                checked += 1
            }
        }
        XCTAssertEqual(checked, 44)
    }

    func testPromptsEncodeWithTheModelsSpecialTokens() throws {
        for (path, name) in Self.sources {
            let tokenizer = try TokenizerFixtures.tokenizer(path)
            let ref = try TokenizerFixtures.referenceFile(name)
            XCTAssertFalse(ref.cases.isEmpty)
            for c in ref.cases {
                XCTAssertEqual(tokenizer.encode(c.prompt), c.promptIds, "\(path): \(c.prompt.debugDescription)")
                XCTAssertEqual(tokenizer.decode(c.promptIds), c.prompt, "\(path): decode of the prompt ids")
            }
            XCTAssertEqual(tokenizer.bosID, ref.bosTokenId, path)
            if let eos = ref.eosTokenId { XCTAssertTrue(tokenizer.eosIDs.contains(eos), path) }
        }
    }

    func testPerplexityTextEncodesToTheReferenceIds() throws {
        var checked = 0
        for (path, name) in Self.sources {
            guard let ppl = try TokenizerFixtures.referenceFile(name).perplexity else { continue }
            let tokenizer = try TokenizerFixtures.tokenizer(path)
            let text = try TokenizerFixtures.text(ppl.textFile)
            XCTAssertEqual(tokenizer.encode(text), ppl.tokenIds, "\(path): \(ppl.textFile)")
            XCTAssertEqual(tokenizer.decode(ppl.tokenIds), text, "\(path): decode of \(ppl.textFile)")
            checked += 1
        }
        XCTAssertEqual(checked, 4)
    }

    /// decode(encode(s)) == s (special tokens kept) wherever the tokenizer can represent s; SentencePiece decoding drops the one
    /// leading space the encoder's dummy prefix stands for.
    func testDecodeRoundTrips() throws {
        let strings = try TokenizerFixtures.referenceFile("stories260K").tokenizer?.map(\.text) ?? []
        XCTAssertEqual(strings.count, 11)
        for path in [TokenizerFixtures.smolLM2GGUF] {
            let t = try TokenizerFixtures.tokenizer(path)
            for s in strings {
                XCTAssertEqual(t.decode(t.encode(s), skipSpecialTokens: false), s, "\(path): \(s.debugDescription)")
            }
        }
        for path in [TokenizerFixtures.stories260KFolder, TokenizerFixtures.stories260KGGUF] {
            let t = try TokenizerFixtures.tokenizer(path)
            for s in strings {
                let expected = s.hasPrefix(" ") ? String(s.dropFirst()) : s
                XCTAssertEqual(t.decode(t.encode(s)), expected, "\(path): \(s.debugDescription)")
            }
        }
        // TinyStories-656K has no byte pieces: characters outside its vocabulary are dropped.
        let t = try TokenizerFixtures.tokenizer(TokenizerFixtures.tinyStories656KFolder)
        for s in strings where s.unicodeScalars.allSatisfy({ t.tokenID("\($0 == " " ? "\u{2581}" : $0)") != nil }) {
            let expected = s.hasPrefix(" ") ? String(s.dropFirst()) : s
            XCTAssertEqual(t.decode(t.encode(s)), expected, "tinystories-656k: \(s.debugDescription)")
        }
    }

    func testGGUFAndFolderOfTheSameModelAgree() throws {
        let folder = try TokenizerFixtures.tokenizer(TokenizerFixtures.stories260KFolder)
        let gguf = try TokenizerFixtures.tokenizer(TokenizerFixtures.stories260KGGUF)
        XCTAssertEqual(folder.vocabularySize, 512)
        XCTAssertEqual(gguf.vocabularySize, 512)
        XCTAssertEqual(folder.bosToken, "<s>"); XCTAssertEqual(gguf.bosToken, "<s>")
        XCTAssertEqual(folder.eosToken, "</s>"); XCTAssertEqual(gguf.eosToken, "</s>")
        XCTAssertEqual(folder.eosIDs, [2]); XCTAssertEqual(gguf.eosIDs, [2])
        let text = try TokenizerFixtures.text("stories.prompts") + "\t<s> x</s>\u{00A0}—ñ€™"
        XCTAssertEqual(folder.encode(text), gguf.encode(text))
        let ids = folder.encode(text)
        XCTAssertEqual(folder.decode(ids, skipSpecialTokens: false), gguf.decode(ids, skipSpecialTokens: false))
    }

    func testModelMetadata() throws {
        let smol = try TokenizerFixtures.tokenizer(TokenizerFixtures.smolLM2GGUF)
        XCTAssertEqual(smol.vocabularySize, 49152)
        XCTAssertEqual(smol.bosToken, "<|im_start|>")
        XCTAssertEqual(smol.eosToken, "<|im_end|>")
        XCTAssertEqual(smol.eosIDs, [2])
        XCTAssertEqual(smol.prefixIDs, [], "SmolLM2 adds no BOS (tokenizer.ggml.add_bos_token false)")
        XCTAssertTrue(smol.chatTemplate?.contains("<|im_start|>") ?? false)
        XCTAssertTrue(smol.isSpecialToken(1))
        XCTAssertEqual(smol.decode([1, 4093, 198, 6004, 2]), "user\nhi")

        let tiny = try TokenizerFixtures.tokenizer(TokenizerFixtures.tinyStories656KFolder)
        XCTAssertEqual(tiny.vocabularySize, 2048)
        XCTAssertEqual(tiny.bosToken, "<|start_story|>")
        XCTAssertEqual(tiny.eosToken, "<|end_story|>")
        XCTAssertEqual(tiny.prefixIDs, [1])
        XCTAssertNil(tiny.chatTemplate)
    }
}
