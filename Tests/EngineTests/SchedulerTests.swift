// Continuous batching computes what each request computes alone: requests join at random steps, leave when they
// end (or are cancelled), prompts are cut into chunks under a small token budget, full blocks are shared through
// the prefix cache, and a tiny block pool forces preemptions — every request's greedy tokens and seeded samples
// equal those of the same request run alone, in both arithmetics, on the trained default model.
import Foundation
import TesseraEngine
import TesseraFormats
import TesseraKernels
import TesseraModels
import TesseraTestSupport
import TesseraTokenizer
import XCTest

final class SchedulerTests: XCTestCase {
    struct Fixture {
        let model: any LanguageModel
        let tokenizer: Tokenizer
    }

    func fixture(_ compute: ComputeOptions) throws -> Fixture {
        let path = Repo.defaultModel.path
        guard FileManager.default.fileExists(atPath: path) else { throw XCTSkip("\(path) is missing: run launch/setup --model") }
        let source = try ModelSource.open(path: path)
        return Fixture(model: try ModelRegistry.load(source, options: LoadOptions(compute: compute)),
                       tokenizer: try Tokenizer.load(source))
    }

    /// Seven requests: a shared system prefix of about 40 tokens on five of them, prompts of 3 to 70 tokens, greedy
    /// and seeded sampling, different lengths.
    func requests(_ tokenizer: Tokenizer) -> [GenerationRequest] {
        let system = "You are a helpful assistant who answers briefly and precisely. Today we talk about the sea, ships, and the stars above them. "
        let texts = [system + "What is a lighthouse?", "Hello", system + "Name three fish.",
                     "The quick brown fox jumps over the lazy dog. " + String(repeating: "Once more, the fox jumps. ", count: 6),
                     system + "Why is the sea salty?", system + "Why is the sea salty? Explain.", system + "Tell me about sails."]
        return texts.enumerated().map { i, text in
            var sampling = SamplingParameters.greedy
            if i % 3 == 1 { sampling = SamplingParameters(temperature: 0.9, topK: 40, topP: 0.95, seed: UInt64(100 + i)) }
            return GenerationRequest(promptTokens: tokenizer.encode(text), maxTokens: 6 + (i * 5) % 17, sampling: sampling,
                                     stopAtEOS: false)
        }
    }

    /// Each request alone on a fresh executor with blocks of `blockSize` positions: what the batched runs must
    /// reproduce. (The fast path's online softmax rounds per run of rows inside a block, so a block size is part of
    /// the arithmetic there; the exact path is the same for every block size.)
    func alone(_ f: Fixture, _ requests: [GenerationRequest], blockSize: Int) throws -> [[Int]] {
        try requests.map { r in
            let executor = try LocalExecutor(model: f.model, sequenceSlots: 1, contextLength: 256,
                                             paging: KVPaging(blockSize: blockSize, blockCount: 256 / blockSize))
            let (outputs, _) = try Generator(executor: executor, tokenizer: f.tokenizer).generate([r])
            return outputs[0].tokens
        }
    }

    /// The requests submitted at random steps (seeded) into one scheduler; returns every output by request index.
    func continuous(_ f: Fixture, _ requests: [GenerationRequest], options: SchedulerOptions, paging: KVPaging? = nil,
                    cancel: Int? = nil, depth: Int, seed: UInt64) throws -> ([GenerationOutput?], Scheduler) {
        let local = try LocalExecutor(model: f.model, sequenceSlots: 4, contextLength: 256, paging: paging)
        let executor: any StepExecutor = depth == 1 ? local : DeferringExecutor(local, depth: depth)
        let scheduler = try Scheduler(executor: executor, tokenizer: f.tokenizer, options: options)
        var outputs = [GenerationOutput?](repeating: nil, count: requests.count)
        scheduler.onFinish = { outputs[$0] = $1 }
        var random = SplitMix64(seed: seed)
        var next = 0, steps = 0
        while next < requests.count || scheduler.hasWork {
            // 0 to 2 arrivals before each step
            for _ in 0..<Int(random.next() % 3) where next < requests.count {
                try scheduler.submit(requests[next], id: next); next += 1
            }
            if !scheduler.hasWork, next < requests.count { try scheduler.submit(requests[next], id: next); next += 1 }
            try scheduler.step()
            steps += 1
            if steps == 5, let cancel { XCTAssertTrue(scheduler.cancel(id: cancel)) }
            XCTAssertLessThan(steps, 2000, "the scheduler makes progress")
            if steps >= 2000 { break }
        }
        XCTAssertEqual(scheduler.blocks.held, 0, "every block given back")
        XCTAssertEqual(scheduler.depth, depth)
        if let deferring = executor as? DeferringExecutor {
            XCTAssertEqual(deferring.mostInFlight, depth, "the scheduler kept \(depth) steps in flight at times")
        }
        return (outputs, scheduler)
    }

    func check(_ compute: ComputeOptions, name: String, depth: Int = 1) throws {
        let f = try fixture(compute)
        let requests = requests(f.tokenizer)
        var alone: [Int: [[Int]]] = [16: try self.alone(f, requests, blockSize: 16)]
        let expected = alone[16]!
        let configurations: [(String, SchedulerOptions, KVPaging?)] = [
            ("budget 24, 3 sequences", SchedulerOptions(maxBatchTokens: 24, maxSequences: 3), nil),
            ("prefix cache, blocks of 16", SchedulerOptions(maxBatchTokens: 40, maxSequences: 4, prefixCache: true), nil),
            ("prefix cache, 14 blocks of 8 (preemptions)", SchedulerOptions(maxBatchTokens: 64, maxSequences: 4, prefixCache: true),
             KVPaging(blockSize: 8, blockCount: 14)),
            ("no prefix cache, 7 blocks of 16 (preemptions)", SchedulerOptions(maxBatchTokens: 512, maxSequences: 4),
             KVPaging(blockSize: 16, blockCount: 7)),
        ]
        for (i, (what, options, paging)) in configurations.enumerated() {
            let (outputs, scheduler) = try continuous(f, requests, options: options, paging: paging, depth: depth,
                                                      seed: UInt64(i + 1))
            let size = paging?.blockSize ?? 16
            if alone[size] == nil { alone[size] = try self.alone(f, requests, blockSize: size) }
            for (r, output) in outputs.enumerated() {
                XCTAssertEqual(output?.tokens, alone[size]![r], "\(name), \(what): request \(r)")
                XCTAssertEqual(output?.stopReason, .maxTokens, "\(name), \(what): request \(r)")
            }
            let c = scheduler.counters
            print("scheduler \(name), \(what): \(c.steps) steps, \(c.preemptions) preemptions, prefix cache \(scheduler.blocks.hitTokens) of \(scheduler.blocks.queriedTokens) prompt tokens")
            if paging != nil { XCTAssertGreaterThan(c.preemptions, 0, "\(name), \(what): the small pool forced preemptions") }
            if options.prefixCache {
                XCTAssertGreaterThan(scheduler.blocks.hitTokens, 0, "\(name), \(what): the shared system prompt was reused")
                XCTAssertGreaterThan(outputs.compactMap { $0?.cachedPromptTokens }.max() ?? 0, 0)
            }
        }
        // A request cancelled mid-flight ends as cancelled; the others are untouched.
        let (outputs, _) = try continuous(f, requests, options: SchedulerOptions(maxBatchTokens: 32, maxSequences: 3),
                                          cancel: 0, depth: depth, seed: 9)
        XCTAssertEqual(outputs[0]?.stopReason, .cancelled, name)
        for r in 1..<requests.count { XCTAssertEqual(outputs[r]?.tokens, expected[r], "\(name), after a cancel: request \(r)") }
    }

    func testExactArithmetic() throws { try check(.exact, name: "exact") }

    func testFastArithmetic() throws {
        try check(ComputeOptions(mode: .fast), name: "fast")
    }

    /// Two threads: the attention splits a token's span by that token's length alone, so a sequence rounds the same
    /// whatever shares its step.
    func testFastArithmeticOnTwoThreads() throws {
        try check(ComputeOptions(mode: .fast, pool: ThreadPool(threads: 2)), name: "fast, 2 threads")
    }

    /// Steps in flight (as under pipeline parallelism): the scheduler builds up to three steps before the first
    /// one's logits come back, each from other sequences, and keys blocks as their steps start — the same tokens,
    /// with preemptions, prefix sharing and a cancel that may land while the request's step is in flight.
    func testStepsInFlight() throws {
        try check(ComputeOptions(mode: .fast), name: "fast, 3 steps in flight", depth: 3)
    }

    /// Bad requests are refused at submission, naming the request.
    func testRefusals() throws {
        let f = try fixture(.exact)
        let executor = try LocalExecutor(model: f.model, sequenceSlots: 2, contextLength: 32,
                                         paging: KVPaging(blockSize: 4, blockCount: 4))
        let scheduler = try Scheduler(executor: executor, tokenizer: f.tokenizer)
        XCTAssertThrowsError(try scheduler.submit(GenerationRequest(promptTokens: [], maxTokens: 4), id: 3)) {
            XCTAssertTrue("\($0)".contains("request 3: the prompt is empty"), "\($0)")
        }
        XCTAssertThrowsError(try scheduler.submit(GenerationRequest(promptTokens: Array(repeating: 5, count: 20), maxTokens: 4), id: 4)) {
            XCTAssertTrue("\($0)".contains("request 4: the prompt has 20 tokens but the whole KV cache holds 16 positions"), "\($0)")
        }
        XCTAssertThrowsError(try scheduler.submit(GenerationRequest(promptTokens: [1, 99_999], maxTokens: 4), id: 5)) {
            XCTAssertTrue("\($0)".contains("request 5: token id 99999 outside the vocabulary"), "\($0)")
        }
        // A sequence that outgrows the whole pool ends as context-full rather than looping.
        try scheduler.submit(GenerationRequest(promptTokens: [1, 2, 3], maxTokens: 100, stopAtEOS: false), id: 6)
        var ended: GenerationOutput?
        scheduler.onFinish = { _, o in ended = o }
        while scheduler.hasWork { try scheduler.step() }
        XCTAssertEqual(ended?.stopReason, .contextFull)
        XCTAssertEqual(ended?.tokens.count, 14, "16 positions: 3 prompt tokens, 13 generated ones stored, the 14th sampled from the last")
    }

    /// Log-probabilities are the log-softmax of the raw logits: the first generated token's, against the prompt's
    /// last logits computed here in Double; greedy tokens head their own top list; sampling is unchanged by asking.
    func testLogprobs() throws {
        let f = try fixture(.exact)
        let prompt = f.tokenizer.encode("The capital of France is")
        func run(_ logprobs: Int?, _ sampling: SamplingParameters) throws -> GenerationOutput {
            let executor = try LocalExecutor(model: f.model, sequenceSlots: 1, contextLength: 64)
            let generator = Generator(executor: executor, tokenizer: f.tokenizer)
            generator.keepPromptLogits = true
            return try generator.generate([GenerationRequest(promptTokens: prompt, maxTokens: 5, sampling: sampling,
                                                             stopAtEOS: false, logprobs: logprobs)]).0[0]
        }
        let greedy = try run(3, .greedy)
        XCTAssertEqual(greedy.logprobs.map(\.token), greedy.tokens)
        let logits = greedy.promptLogits!.map(Double.init)
        let m = logits.max()!
        let lse = m + log(logits.reduce(0) { $0 + exp($1 - m) })
        let order = logits.indices.sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
        let first = greedy.logprobs[0]
        XCTAssertEqual(Double(first.logprob), logits[greedy.tokens[0]] - lse, accuracy: 1e-4)
        XCTAssertEqual(first.top.map(\.token), Array(order.prefix(3)))
        for (t, want) in zip(first.top, order) { XCTAssertEqual(Double(t.logprob), logits[want] - lse, accuracy: 1e-4) }
        for e in greedy.logprobs { XCTAssertEqual(e.top.first?.token, e.token); XCTAssertLessThanOrEqual(e.logprob, 0) }
        let seeded = SamplingParameters(temperature: 0.9, topK: 40, seed: 11)
        XCTAssertEqual(try run(2, seeded).tokens, try run(nil, seeded).tokens, "asking for log-probabilities changes no token")
    }
}

/// Block manager bookkeeping: sharing by chained hash, LRU eviction of unheld cached blocks, reference counts.
final class BlockManagerTests: XCTestCase {
    func testSharingAndEviction() {
        let m = BlockManager(paging: KVPaging(blockSize: 2, blockCount: 3), prefixCaching: true)
        let a = m.take()!, b = m.take()!
        let ha = m.key(a, parent: BlockManager.rootHash, tokens: [1, 2])
        m.key(b, parent: ha, tokens: [3, 4])
        XCTAssertEqual(m.available, 1)
        // Another sequence shares the first block while it is held.
        XCTAssertEqual(m.share(parent: BlockManager.rootHash, tokens: [1, 2])?.block, a)
        XCTAssertNil(m.share(parent: BlockManager.rootHash, tokens: [3, 4]), "the chain decides, not the tokens alone")
        m.giveBack(a); m.giveBack(a); m.giveBack(b)
        XCTAssertEqual(m.available, 3, "unheld cached blocks can be taken")
        XCTAssertEqual(m.held, 0)
        // Taking: the plain free block first, then the least recently given back (a), whose key goes.
        let c = m.take()!
        XCTAssertTrue(c != a && c != b)
        XCTAssertEqual(m.take(), a)
        XCTAssertNil(m.share(parent: BlockManager.rootHash, tokens: [1, 2]), "evicted")
        XCTAssertEqual(m.share(parent: ha, tokens: [3, 4])?.block, b, "still cached")
        XCTAssertNil(m.take())
    }
}

/// Runs each step only when its logits are asked for, up to `depth` steps later, in the order they started: what
/// a pipeline of `depth` stages looks like to the scheduler (every rank runs steps in order), on one process.
final class DeferringExecutor: StepExecutor {
    let local: LocalExecutor
    let pipelineDepth: Int
    private var started: [(Batch, BlockTableUpdates)] = []
    private var logits = UnsafeMutableBufferPointer<Float>.allocate(capacity: 0)
    private(set) var mostInFlight = 0

    init(_ local: LocalExecutor, depth: Int) { self.local = local; pipelineDepth = depth }
    deinit { logits.deallocate() }

    var vocabularySize: Int { local.vocabularySize }
    var contextLength: Int { local.contextLength }
    var sequenceSlots: Int { local.sequenceSlots }
    var paging: KVPaging { local.paging }

    func execute(_ batch: Batch, updates: BlockTableUpdates, logits: UnsafeMutableBufferPointer<Float>) throws {
        XCTAssertTrue(started.isEmpty, "execute while steps are in flight")
        try local.execute(batch, updates: updates, logits: logits)
    }

    func start(_ batch: Batch, updates: BlockTableUpdates, alone: Bool) throws {
        XCTAssertLessThan(started.count, pipelineDepth, "more steps started than the pipeline holds")
        started.append((batch, updates))
        mostInFlight = max(mostInFlight, started.count)
        let slots = started.map { Set($0.0.sequences) }
        for (i, a) in slots.enumerated() {
            for b in slots[(i + 1)...] { XCTAssertTrue(a.isDisjoint(with: b), "a sequence in two steps in flight") }
        }
    }

    func finishOldest() throws -> UnsafeMutableBufferPointer<Float> {
        let (batch, updates) = started.removeFirst()
        logits.deallocate()
        logits = .allocate(capacity: batch.logitCount * vocabularySize)
        try local.execute(batch, updates: updates, logits: logits)
        return logits
    }
}
