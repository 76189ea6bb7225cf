import Foundation
import TesseraTestSupport
import XCTest

/// Every shipped decoder topology up to 8 ranks, under real mpirun (oversubscribed), must compute what one rank
/// computes: identical greedy ids, last-prompt-position logits within 1e-4 relative, identical seeded samples.
/// Runs use exact float32 (`--exact-f32`) unless a test names the fast path.
final class DistributedGenerateTests: XCTestCase {
    static let topologies = ["tp2", "tp4", "tp8", "pp2", "pp4", "tp2-pp2", "tp2-pp4", "tp4-pp2"]

    struct Run {
        let ids: [[Int]]
        let stopReasons: [String]
        let logits: [Float]
        let stderr: String
    }

    var dir: URL!
    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-dist-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }
    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    func prompts(_ reference: String) throws -> [String] {
        let url = Repo.shared.appendingPathComponent("reference/\(reference).json")
        let json = try JSONSerialization.jsonObject(with: Data(contentsOf: url)) as! [String: Any]
        return (json["cases"] as! [[String: Any]]).map { $0["prompt"] as! String }
    }

    /// Runs `generate` over `prompts` as one batch (through launch/tessera when a topology is given).
    func generate(_ model: String, _ prompts: [String], topology: String?, maxTokens: Int,
                  sampling: [String] = ["--temperature", "0"], extra: [String] = ["--exact-f32"]) throws -> Run {
        let file = dir.appendingPathComponent("prompts-\(UUID().uuidString).txt")
        try Data(prompts.joined(separator: "\n").utf8).write(to: file)
        let logitsFile = dir.appendingPathComponent("logits-\(UUID().uuidString).f32")
        let args = ["--model", model, "--prompts-file", file.path, "--max-tokens", "\(maxTokens)", "--format", "jsonl",
                    "--prompt-logits", logitsFile.path] + sampling + extra
        let result = topology.map { try? launch(topology: "topologies/\($0).yaml", "generate", args, timeout: 600) }
            ?? (try? runProcess(Repo.executable("infer-worker"), ["generate"] + args, timeout: 600))
        guard let result else { throw XCTSkip("could not start infer-worker") }
        XCTAssertEqual(result.status, 0, "\(topology ?? "single"): \(result)")
        let objects = result.stdout.split(separator: "\n").compactMap {
            try? JSONSerialization.jsonObject(with: Data($0.utf8)) as? [String: Any]
        }
        let data = (try? Data(contentsOf: logitsFile)) ?? Data()
        let logits = data.withUnsafeBytes { Array($0.bindMemory(to: Float.self)) }
        return Run(ids: objects.map { $0["ids"] as? [Int] ?? [] }, stopReasons: objects.map { $0["stop_reason"] as? String ?? "" },
                   logits: logits, stderr: result.stderr)
    }

    /// max |a - b| / max |a| per prompt row.
    func relativeError(_ a: [Float], _ b: [Float], rows: Int) -> Float {
        guard a.count == b.count, rows > 0, a.count % rows == 0 else { return .infinity }
        let width = a.count / rows
        var worst: Float = 0
        for r in 0..<rows {
            let x = a[r * width ..< (r + 1) * width], y = b[r * width ..< (r + 1) * width]
            let scale = x.map(abs).max() ?? 1
            let diff = zip(x, y).map { abs($0 - $1) }.max() ?? 0
            worst = max(worst, diff / max(scale, 1e-6))
        }
        return worst
    }

    func checkEveryTopology(model: String, reference: String, maxTokens: Int, layers: Int) throws {
        let texts = try prompts(reference)
        let single = try generate(model, texts, topology: nil, maxTokens: maxTokens)
        let seeded = ["--temperature", "0.8", "--seed", "42", "--top-k", "0", "--top-p", "1", "--min-p", "0"]
        let singleSampled = try generate(model, texts, topology: nil, maxTokens: maxTokens, sampling: seeded)
        XCTAssertEqual(single.ids.count, texts.count)
        for topology in Self.topologies {
            if let stages = Int(topology.split(separator: "-").first { $0.hasPrefix("pp") }?.dropFirst(2) ?? "1"), stages > layers {
                // more stages than layers: refused on every rank before loading
                let r = try launch(topology: "topologies/\(topology).yaml", "generate", ["--model", model, "--prompt", "hi"], timeout: 60)
                XCTAssertNotEqual(r.status, 0, "\(r)")
                XCTAssertTrue(r.stderr.contains("\(stages) stages need at least \(stages) layers; the model has \(layers)"), "\(r)")
                continue
            }
            let run = try generate(model, texts, topology: topology, maxTokens: maxTokens)
            XCTAssertEqual(run.ids, single.ids, "\(reference) greedy ids on \(topology)")
            let error = relativeError(single.logits, run.logits, rows: texts.count)
            XCTAssertLessThanOrEqual(error, 1e-4, "\(reference) logits on \(topology): relative error \(error)")
            let sampled = try generate(model, texts, topology: topology, maxTokens: maxTokens, sampling: seeded)
            XCTAssertEqual(sampled.ids, singleSampled.ids, "\(reference) seeded sampling on \(topology)")
        }
    }

    func testStories260KOnEveryTopology() throws {
        try checkEveryTopology(model: Repo.shared.appendingPathComponent("models/stories260K/gguf/stories260K-f32.gguf").path,
                               reference: "stories260K", maxTokens: 24, layers: 5)
    }

    func testTinyStories656KOnEveryTopology() throws {
        try checkEveryTopology(model: Repo.shared.appendingPathComponent("models/tinystories-656k").path,
                               reference: "tinystories-656k", maxTokens: 24, layers: 2)
    }

    func testSmolLM2OnEveryTopology() throws {
        try checkEveryTopology(model: Repo.defaultModel.path, reference: "smollm2-135m-instruct-q4_1", maxTokens: 16, layers: 30)
    }

    /// Four prompts of different lengths in one tp2-pp2 batch give each prompt's single-prompt output.
    func testBatchOfFourThroughTP2PP2MatchesSinglePrompts() throws {
        let model = Repo.shared.appendingPathComponent("models/tinystories-656k").path
        let texts = ["Once upon a time", "Lily wanted to", "The little dog ran to the park and saw a big red ball", "Tom"]
        let batch = try generate(model, texts, topology: "tp2-pp2", maxTokens: 20)
        for (i, text) in texts.enumerated() {
            let alone = try generate(model, [text], topology: nil, maxTokens: 20)
            XCTAssertEqual(batch.ids[i], alone.ids.first ?? [], "prompt \(i): \(text)")
        }
    }

    /// The scheduler under every plan: two running sequences, steps of at most 7 tokens (prompts in chunks), blocks
    /// of 4 positions shared through the prefix cache, and a pool of 12 blocks on every rank (the memory scaled to
    /// each rank's share of a block) so sequences are preempted and recomputed — the tokens one rank computes
    /// with the whole batch in one step, greedy and seeded.
    func testSchedulerAcrossPlansMatchesOneRank() throws {
        let model = Repo.shared.appendingPathComponent("models/tinystories-656k").path
        let texts = ["Once upon a time, there was a little girl named Lily. She",
                     "Once upon a time, there was a little girl named Lily. One day", "Lily wanted to", "Tom",
                     "The little dog ran to the park"]
        let seeded = ["--temperature", "0.8", "--seed", "7", "--top-k", "0", "--top-p", "1", "--min-p", "0"]
        for sampling in [["--temperature", "0"], seeded] {
            let reference = try generate(model, texts, topology: nil, maxTokens: 24, sampling: sampling,
                                         extra: ["--exact-f32", "--ignore-eos"])
            XCTAssertEqual(reference.ids.map(\.count), Array(repeating: 24, count: texts.count), reference.stderr)
            // tinystories-656k: 2 layers of 4 KV heads × 16 floats, f32 keys and values: 1 KiB a position on one rank
            for (topology, memory) in [(nil, "48K"), ("tp2", "24K"), ("pp2", "24K"), ("tp2-pp2", "12K")] as [(String?, String)] {
                let flags = ["--exact-f32", "--ignore-eos", "--max-sequences", "2", "--max-batch-tokens", "7",
                             "--kv-block-size", "4", "--kv-cache-memory", memory, "--prefix-cache"]
                let run = try generate(model, texts, topology: topology, maxTokens: 24, sampling: sampling, extra: flags)
                let name = "\(topology ?? "one rank") \(sampling)"
                XCTAssertEqual(run.ids, reference.ids, name)
                XCTAssertTrue(run.stderr.contains("KV cache 12 blocks of 4 positions"), "\(name): \(run.stderr)")
                // "tessera: scheduler: S steps, P preemptions, C prompt positions computed, prefix cache H of Q prompt tokens"
                let words = run.stderr.split(separator: "\n").first { $0.hasPrefix("tessera: scheduler:") }?
                    .split(separator: " ").map(String.init) ?? []
                func number(before word: String) -> Int {
                    words.firstIndex { $0.hasPrefix(word) }.flatMap { $0 > 0 ? Int(words[$0 - 1]) : nil } ?? 0
                }
                XCTAssertGreaterThan(number(before: "preemption"), 0, "\(name): the pool of 12 blocks forced preemptions: \(run.stderr)")
                let hits = words.firstIndex(of: "cache").flatMap { Int(words[$0 + 1]) } ?? 0
                XCTAssertGreaterThan(hits, 0, "\(name): prefix blocks were shared: \(run.stderr)")
            }
        }
    }

    /// The fast path's options under parallel plans (and the exact path's quantize-at-load): quantize-at-load (each
    /// rank converts its own shards), the 8-bit KV cache, fused and unfused operators, two threads per rank, the
    /// default arithmetic (no flag: the fast one): the same greedy tokens as one process with
    /// the same options (TP sums in rank order, so every plan computes the same values).
    func testFastOptionsAcrossPlansMatchOneRank() throws {
        let model = Repo.shared.appendingPathComponent("models/tinystories-656k").path
        let texts = ["Once upon a time", "Lily wanted to"]
        for extra in [["--fast", "--quantize", "q8_0"], ["--fast", "--kv-cache", "q8_0", "--threads", "2"],
                      ["--exact-f32", "--quantize", "q4_0", "--no-fusion"], ["--quantize", "q4_0", "--no-fusion"]] {
            let single = try generate(model, texts, topology: nil, maxTokens: 16, extra: extra)
            XCTAssertEqual(single.ids.map(\.count), [16, 16], "\(extra): \(single.stderr)")
            for topology in ["tp2", "pp2", "tp2-pp2"] {
                let run = try generate(model, texts, topology: topology, maxTokens: 16, extra: extra)
                XCTAssertEqual(run.ids, single.ids, "\(topology) \(extra)")
            }
        }
    }

    /// `--wire bf16` and `q8_0` cut the activation bytes every rank of the first tp2-pp2 stage moves per token
    /// (the table's last column) to 1/2 and 36/128 of f32's, and keep the first greedy tokens of one process.
    func testWireFormatsShrinkActivationTraffic() throws {
        let single = try generate(Repo.defaultModel.path, ["Once upon a time"], topology: nil, maxTokens: 8, extra: [])
        var perToken: [String: Double] = [:]
        for wire in ["f32", "bf16", "q8_0"] {
            let run = try generate(Repo.defaultModel.path, ["Once upon a time"], topology: "tp2-pp2", maxTokens: 8,
                                   extra: ["--wire", wire])
            XCTAssertEqual(run.ids, single.ids, "--wire \(wire)")
            let row = run.stderr.split(separator: "\n").first { $0.contains(" / ") && $0.contains("stage 0 tp 0") }
            guard let value = row?.split(separator: " ").last.flatMap({ Double($0) }), value > 0 else {
                return XCTFail("no activation column for --wire \(wire): \(run.stderr)")
            }
            perToken[wire] = value
        }
        let f32 = perToken["f32"]!
        XCTAssertEqual(perToken["bf16"]! / f32, 0.5, accuracy: 0.01, "\(perToken)")
        XCTAssertEqual(perToken["q8_0"]! / f32, 36.0 / 128, accuracy: 0.01, "\(perToken)")
    }

    /// Each rank holds about its share of the weights: resident bytes within 10% of the plan's share.
    func testPerRankWeightMemoryIsThePlannedShare() throws {
        for topology in ["pp4", "tp4", "tp2-pp2"] {
            let run = try generate(Repo.defaultModel.path, ["Once upon a time"], topology: topology, maxTokens: 4)
            let rows = run.stderr.split(separator: "\n").filter { $0.contains(" / ") && $0.contains("stage") }
            XCTAssertEqual(rows.count, 4, "\(topology): \(run.stderr)")
            for row in rows {
                // "... stage S tp T   RESIDENT / PLANNED   COMM  SHARE%  ..."
                let tokens = row.split(separator: " ").map(String.init)
                guard let slash = tokens.firstIndex(of: "/"), slash > 0, slash + 1 < tokens.count,
                      let resident = Double(tokens[slash - 1]), let planned = Double(tokens[slash + 1]) else {
                    XCTFail("unparsable: \(row)"); continue
                }
                XCTAssertEqual(resident, planned, accuracy: planned * 0.10, "\(topology): \(row)")
            }
        }
    }
}

/// A failing rank brings the whole job down within 10 s, naming it; bad plans fail before loading.
final class DistributedFaultTests: XCTestCase {
    func run(_ topology: String, _ extra: [String]) throws -> ProcessResult {
        try launch(topology: "topologies/\(topology).yaml", "generate",
                   ["--model", Repo.defaultModel.path, "--prompt", "Once upon a time", "--max-tokens", "64",
                    "--temperature", "0"] + extra, timeout: 60)
    }

    func testRankThatThrowsMidGeneration() throws {
        for (topology, rank) in [("pp4", 2), ("tp2-pp2", 3), ("tp2-pp2", 0)] {
            let r = try run(topology, ["--fault", "\(rank):5:throw"])
            XCTAssertNotEqual(r.status, 0, "\(r)")
            XCTAssertLessThan(r.seconds, 10, "\(r)")
            XCTAssertTrue(r.stderr.contains("tessera: rank \(rank) ("), "\(r)")
            XCTAssertTrue(r.stderr.contains("injected fault at step 5"), "\(r)")
        }
    }

    func testRankThatIsKilledMidGeneration() throws {
        let r = try run("pp4", ["--fault", "3:5:kill"])
        XCTAssertNotEqual(r.status, 0, "\(r)")
        XCTAssertLessThan(r.seconds, 10, "\(r)")
        XCTAssertTrue(r.stderr.contains("rank 3"), "\(r)")
    }

    /// A rank that hangs without dying (SIGSTOP) is found by the step watchdog of the others: the job ends within
    /// the step timeout plus the census, naming the stopped rank, and mpirun leaves no process behind (the stopped
    /// one included). Both a worker rank and the coordinator.
    func testStoppedRankEndsTheJobWithinTheStepTimeout() throws {
        for rank in [3, 0] {
            let r = try run("tp2-pp2", ["--fault", "\(rank):5:stop", "--step-timeout", "3"])
            XCTAssertNotEqual(r.status, 0, "\(r)")
            XCTAssertFalse(r.timedOut, "\(r)")
            XCTAssertLessThan(r.seconds, 3 + 7, "\(r)")
            XCTAssertTrue(r.stderr.contains("step watchdog: waited 3."), "\(r)")
            XCTAssertTrue(r.stderr.contains("rank \(rank) on "), "the stopped rank is named: \(r)")
            XCTAssertTrue(r.stderr.contains("did not answer"), "\(r)")
            for other in [0, 1, 2, 3] where other != rank {   // every other rank answered and said what it waited in
                let parts = r.stderr.components(separatedBy: "; ")
                XCTAssertTrue(parts.contains { $0.hasPrefix("rank \(other) on ") && $0.contains(" was waiting ") }, "\(r)")
            }
            print("step watchdog: rank \(rank) stopped, the job ended in \(String(format: "%.1f", r.seconds)) s")
            XCTAssertEqual(workers(), [], "no worker left running, not even the stopped one")
        }
    }

    func testStepTimeoutMustBeSecondsOrOff() throws {
        let r = try runProcess(Repo.executable("infer-worker"), ["generate", "--prompt", "hi", "--step-timeout", "soon"], timeout: 60)
        XCTAssertNotEqual(r.status, 0)
        XCTAssertTrue(r.stderr.contains("--step-timeout must be a positive number of seconds or 'off', got 'soon'"), "\(r)")
    }

    func testWorldSizeMismatchFailsBeforeLoading() throws {
        let file = Repo.root.appendingPathComponent("topologies/tp2-pp4.yaml").path
        let r = try launch(ranks: 4, "generate", ["--topology", file, "--prompt", "hi", "--max-tokens", "4"], timeout: 60)
        XCTAssertNotEqual(r.status, 0, "\(r)")
        XCTAssertTrue(r.stderr.contains("world_size is 8 but the job has 4 ranks"), "\(r)")
    }
}
