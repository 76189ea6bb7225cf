import Foundation
import TesseraTestSupport
import XCTest

/// `infer-worker generate` and `perplexity` end to end, on real trained weights, against the Hugging Face
/// transformers references in ../shared/reference.
final class GenerateCLITests: XCTestCase {
    struct Case { let prompt: String; let chat: Bool; let promptIds: [Int]; let greedyIds: [Int] }

    func reference(_ name: String) throws -> (cases: [Case], eos: Int, perplexity: Double?) {
        let url = Repo.shared.appendingPathComponent("reference/\(name).json")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        let cases = (json["cases"] as! [[String: Any]]).map {
            Case(prompt: $0["prompt"] as! String, chat: $0["chat_template"] as? Bool ?? false,
                 promptIds: $0["prompt_ids"] as! [Int], greedyIds: $0["greedy_ids"] as! [Int])
        }
        let ppl = (json["perplexity"] as? [String: Any])?["ppl"] as? Double
        return (cases, json["eos_token_id"] as? Int ?? -1, ppl)
    }

    /// Runs generate greedily with JSON output; returns each line's object.
    func generate(_ model: String, _ c: Case, extra: [String] = [], viaMPI: Bool = false) throws -> [String: Any] {
        var args = ["--model", model, "--prompt", c.prompt, "--temperature", "0", "--max-tokens", "\(c.greedyIds.count)",
                    "--format", "jsonl", "--exact-f32"] + extra
        if c.chat { args.append("--chat") }
        let result = viaMPI ? try launch(ranks: 1, "generate", args, timeout: 300)
                            : try runProcess(Repo.executable("infer-worker"), ["generate"] + args, timeout: 300)
        XCTAssertEqual(result.status, 0, "\(result)")
        let lines = result.stdout.split(separator: "\n")
        XCTAssertEqual(lines.count, 1, "stdout must carry only the output: \(result.stdout)")
        XCTAssertTrue(result.stderr.contains("tokens/s"), "the speed report goes to stderr: \(result.stderr)")
        return try JSONSerialization.jsonObject(with: Data((lines.first ?? "{}").utf8)) as! [String: Any]
    }

    func checkGreedy(_ model: String, reference name: String, viaMPI: Bool = false) throws {
        let ref = try reference(name)
        for c in ref.cases {
            let out = try generate(model, c, viaMPI: viaMPI)
            XCTAssertEqual(out["prompt_ids"] as? [Int], c.promptIds, "\(name): prompt ids for \(c.prompt)")
            let endsAtEOS = c.greedyIds.last == ref.eos
            XCTAssertEqual(out["ids"] as? [Int], endsAtEOS ? Array(c.greedyIds.dropLast()) : c.greedyIds, "\(name): \(c.prompt)")
            XCTAssertEqual(out["stop_reason"] as? String, endsAtEOS ? "eos" : "length", "\(name): \(c.prompt)")
        }
    }

    func testSmolLM2RawAndChatPromptsGiveTheReferenceGreedyIds() throws {
        let model = Repo.defaultModel.path
        XCTAssertTrue(FileManager.default.fileExists(atPath: model), "run launch/setup --model to fetch the default model")
        try checkGreedy(model, reference: "smollm2-135m-instruct-q4_1")
        try checkGreedy(model, reference: "smollm2-135m-instruct-q4_1.chat")
    }

    func testTinyModelsGiveTheReferenceGreedyIds() throws {
        try checkGreedy(Repo.shared.appendingPathComponent("models/stories260K/hf").path, reference: "stories260K")
        try checkGreedy(Repo.shared.appendingPathComponent("models/stories260K/gguf/stories260K-f32.gguf").path, reference: "stories260K")
        try checkGreedy(Repo.shared.appendingPathComponent("models/tinystories-656k").path, reference: "tinystories-656k")
    }

    func testWorksUnderMpirunWithOneRank() throws {
        try checkGreedy(Repo.shared.appendingPathComponent("models/stories260K/gguf/stories260K-f32.gguf").path,
                        reference: "stories260K", viaMPI: true)
    }

    /// Text mode streams only the generated text to stdout.
    func testTextOutputIsOnlyTheCompletion() throws {
        let model = Repo.shared.appendingPathComponent("models/stories260K/hf").path
        let result = try runProcess(Repo.executable("infer-worker"),
                                    ["generate", "--model", model, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "20"])
        XCTAssertEqual(result.status, 0, "\(result)")
        XCTAssertTrue(result.stderr.contains("fast products"), "the fast path is the default: \(result.stderr)")
        let json = try runProcess(Repo.executable("infer-worker"),
                                  ["generate", "--model", model, "--prompt", "Once upon a time", "--temperature", "0", "--max-tokens", "20", "--format", "jsonl"])
        let object = try JSONSerialization.jsonObject(with: Data(json.stdout.utf8)) as! [String: Any]
        XCTAssertEqual(result.stdout, (object["text"] as! String) + "\n")
        XCTAssertFalse(result.stdout.contains("tessera:"))
    }

    /// Seeded sampling is reproducible, and another seed gives another text.
    func testSeededSamplingIsDeterministic() throws {
        let model = Repo.shared.appendingPathComponent("models/tinystories-656k").path
        func run(_ seed: Int) throws -> String {
            let r = try runProcess(Repo.executable("infer-worker"), ["generate", "--model", model, "--prompt", "Lily wanted to",
                                   "--temperature", "0.8", "--seed", "\(seed)", "--max-tokens", "40"])
            XCTAssertEqual(r.status, 0, "\(r)")
            return r.stdout
        }
        XCTAssertEqual(try run(7), try run(7))
        XCTAssertNotEqual(try run(7), try run(8))
    }

    func testPerplexityMatchesTheReference() throws {
        let text = Repo.shared.appendingPathComponent("reference/ppl.txt").path
        for (model, name) in [(Repo.defaultModel.path, "smollm2-135m-instruct-q4_1"),
                              (Repo.shared.appendingPathComponent("models/stories260K/hf").path, "stories260K"),
                              (Repo.shared.appendingPathComponent("models/tinystories-656k").path, "tinystories-656k")] {
            guard let want = try reference(name).perplexity else { XCTFail("\(name): no reference perplexity"); continue }
            let r = try runProcess(Repo.executable("infer-worker"), ["perplexity", "--model", model, "--file", text, "--exact-f32"])
            XCTAssertEqual(r.status, 0, "\(r)")
            let fields = r.stdout.split(separator: " ")
            guard fields.count > 1, let got = Double(fields[1]) else { XCTFail("\(name): no perplexity in \(r)"); continue }
            XCTAssertEqual(got, want, accuracy: want * 0.001, "\(name): \(r.stdout)")
        }
    }
}
