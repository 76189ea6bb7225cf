// Runs a model against the independent reference outputs in ../shared/reference: last-position logits,
// greedy continuations (all cases batched together, one KV-cache slot each) and teacher-forced perplexity.
import Foundation
import TesseraFormats
import TesseraModels
import TesseraTestSupport
import XCTest

enum Paths {
    static let repo = Repo.root
    static let shared = Repo.shared
    static let reference = shared.appendingPathComponent("reference")
    static func model(_ relative: String) -> String { shared.appendingPathComponent("models/" + relative).path }
    static let smolLM2 = repo.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
}

/// One reference case: prompt ids, the greedy continuation and the logits at the last prompt position.
struct ReferenceCase {
    let name: String
    let promptIDs: [Int]
    let greedyIDs: [Int]
    let lastLogits: [Float]
}

/// A reference JSON file (`NAME.json`) with its cases and, when present, the perplexity run.
struct Reference {
    let cases: [ReferenceCase]
    let eosID: Int
    let perplexityIDs: [Int]?
    let perplexity: Double?

    init(_ name: String) throws {
        let url = Paths.reference.appendingPathComponent(name + ".json")
        let json = try JSONValue.parse(Data(contentsOf: url), path: url.path)
        func ints(_ v: JSONValue?) -> [Int] { (v?.array ?? []).compactMap(\.int) }
        cases = try (json["cases"]?.array ?? []).enumerated().map { i, c in
            let file = Paths.reference.appendingPathComponent(c["last_logits_file"]?.string ?? "")
            let data = try Data(contentsOf: file)
            let logits = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
            return ReferenceCase(name: "\(name) case \(i)", promptIDs: ints(c["prompt_ids"]),
                                 greedyIDs: ints(c["greedy_ids"]), lastLogits: logits)
        }
        eosID = json["eos_token_id"]?.int ?? -1
        perplexityIDs = json["perplexity"]?["token_ids"].map { ints($0) }
        perplexity = json["perplexity"]?["ppl"]?.double
    }
}

/// Index of the largest value; the first one on ties (as torch.argmax).
func argmax(_ x: UnsafeBufferPointer<Float>) -> Int {
    var best = 0
    for i in 1..<x.count where x[i] > x[best] { best = i }
    return best
}

/// Checks the cases of `model` against `cases`: all prompts in one batch (one cache slot per case), logits at
/// each last prompt position within `logitTolerance`, then greedy decoding of all cases together until each
/// reaches EOS or its reference length, ids identical.
func checkCases(_ model: any LanguageModel, _ cases: [ReferenceCase], eosID: Int, logitTolerance: Float,
                file: StaticString = #filePath, line: UInt = #line) throws {
    let vocab = model.vocabularySize
    let context = cases.map { $0.promptIDs.count + $0.greedyIDs.count }.max() ?? 1
    let cache = try model.makeCache(sequences: cases.count, contextLength: context)
    var batch = Batch()
    for (slot, c) in cases.enumerated() {
        for (p, token) in c.promptIDs.enumerated() {
            batch.append(token: token, position: p, sequence: slot, wantsLogits: p == c.promptIDs.count - 1)
        }
    }
    var logits = [Float](repeating: 0, count: cases.count * vocab)
    try logits.withUnsafeMutableBufferPointer { try model.forward(batch, cache: cache, logits: $0) }

    var generated = [[Int]](repeating: [], count: cases.count)
    var active: [Int] = []
    for (slot, c) in cases.enumerated() {
        XCTAssertEqual(c.lastLogits.count, vocab, "\(c.name): reference logits length", file: file, line: line)
        let row = Array(logits[slot * vocab ..< (slot + 1) * vocab])
        let worst = zip(row, c.lastLogits).map { abs($0 - $1) }.max() ?? .infinity
        XCTAssertLessThanOrEqual(worst, logitTolerance, "\(c.name): max |logit - reference|", file: file, line: line)
        print("\(c.name): max |logit - reference| = \(worst)")
        let next = row.withUnsafeBufferPointer(argmax)
        generated[slot].append(next)
        if next != eosID && generated[slot].count < c.greedyIDs.count { active.append(slot) }
    }
    while !active.isEmpty {
        batch.removeAll()
        for slot in active {
            batch.append(token: generated[slot].last!, position: cases[slot].promptIDs.count + generated[slot].count - 1,
                         sequence: slot, wantsLogits: true)
        }
        try logits.withUnsafeMutableBufferPointer { try model.forward(batch, cache: cache, logits: $0) }
        var still: [Int] = []
        for (row, slot) in active.enumerated() {
            let next = logits.withUnsafeBufferPointer { argmax(UnsafeBufferPointer(rebasing: $0[row * vocab ..< (row + 1) * vocab])) }
            generated[slot].append(next)
            if next != eosID && generated[slot].count < cases[slot].greedyIDs.count { still.append(slot) }
        }
        active = still
    }
    for (slot, c) in cases.enumerated() {
        XCTAssertEqual(generated[slot], c.greedyIDs, "\(c.name): greedy ids", file: file, line: line)
    }
}

/// Teacher-forced perplexity of `ids` in one window: one batch, logits at every position.
func perplexity(_ model: any LanguageModel, _ ids: [Int]) throws -> Double {
    let vocab = model.vocabularySize
    let cache = try model.makeCache(sequences: 1, contextLength: ids.count)
    let logits = try model.forward(Batch(tokens: ids, allLogits: true), cache: cache)
    var nll = 0.0
    for i in 0..<(ids.count - 1) {
        let row = logits[i * vocab ..< (i + 1) * vocab]
        let peak = Double(row.max()!)
        let sum = row.reduce(0.0) { $0 + exp(Double($1) - peak) }
        nll += peak + log(sum) - Double(row[row.startIndex + ids[i + 1]])
    }
    let ppl = exp(nll / Double(ids.count - 1))
    print("perplexity over \(ids.count) tokens: \(ppl)")
    return ppl
}

/// Loads a checkpoint through the registry, as the engine does.
func loadModel(_ path: String) throws -> any LanguageModel {
    try ModelRegistry.load(ModelSource.open(path: path))
}
