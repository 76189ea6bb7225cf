// Continuous (iteration-level) batching on the coordinator: requests join and leave at any step; each step is
// built under a token budget and a sequence limit from running decodes, then chunks of prompts, first come first
// served; KV blocks come from the block manager, with prefix sharing and preemption by recomputation.
import Foundation
import TesseraModels
import TesseraTokenizer

/// How the scheduler builds steps.
public struct SchedulerOptions: Sendable {
    /// Most tokens one step runs (decodes and prompt chunks together).
    public var maxBatchTokens: Int
    /// Most sequences running at once (at most the executor's slots).
    public var maxSequences: Int?
    /// Share full KV blocks between requests with the same prefix.
    public var prefixCache: Bool
    /// Most steps in flight at once (nil: the executor's pipeline depth, one per pipeline stage; 1: each step's
    /// tokens are sampled before the next starts).
    public var stepsInFlight: Int?

    public init(maxBatchTokens: Int = 512, maxSequences: Int? = nil, prefixCache: Bool = false, stepsInFlight: Int? = nil) {
        self.maxBatchTokens = maxBatchTokens; self.maxSequences = maxSequences; self.prefixCache = prefixCache
        self.stepsInFlight = stepsInFlight
    }
}

/// Counters over a scheduler's life (for reports and `/metrics`).
public struct SchedulerCounters: Sendable {
    public var steps = 0
    public var promptTokens = 0
    public var generatedTokens = 0
    /// Prompt positions computed (recomputation after preemption included; cached prefixes excluded).
    public var computedPromptTokens = 0
    public var preemptions = 0
    /// Requests whose prompt has been computed once (their first token sampled, or their end reached).
    public var prefilled = 0
    public var finished = 0

    public init() {}
}

/// One request as the scheduler tracks it.
final class ScheduledRequest {
    let id: Int
    let arrival: Int
    var sequence: SequenceState
    var slot = -1
    /// Physical blocks of the slot's table, in position order.
    var table: [Int] = []
    /// Positions whose keys and values are stored.
    var computed = 0
    /// Leading blocks keyed in the prefix cache, and the hash of the last of them.
    var keyedBlocks = 0
    var chainHash = BlockManager.rootHash
    /// Tokens scheduled in the step it is in.
    var chunk = 0
    /// In a step that has started and not finished (pipelined steps): not scheduled again, not preempted.
    var inFlight = false
    /// Cancelled while in flight: it ends when its step finishes.
    var cancelRequested = false
    var prefilled = false
    /// Whether its first prefix lookup was counted.
    var looked = false
    var cachedTokens = 0
    var preemptions = 0
    let submitted: Date
    var admitted: Date?
    var firstToken: Date?
    var output = GenerationOutput()

    init(id: Int, arrival: Int, sequence: SequenceState, blocksPerSequence: Int) {
        self.id = id; self.arrival = arrival; self.sequence = sequence; submitted = Date()
        table.reserveCapacity(blocksPerSequence)
    }

    /// Tokens not yet in the cache (1 for a decode).
    var pending: Int { sequence.history.count - computed }
}

/// Iteration-level batching over a `StepExecutor`: `submit` requests at any time, call `step()` until
/// `hasWork` is false. Each step runs, in arrival order, every running sequence's next token (or its next prompt
/// chunk), then admits waiting requests FCFS while slots, budget and blocks last. When blocks run out the youngest
/// running request is preempted: its blocks are freed and it is recomputed later, producing the same tokens.
/// Tokens of a request never depend on what else is in the batch: each samples from its own logits row with its
/// own sampler and seed. Over a pipeline several steps are in flight at once, each with its own sequences (the
/// running ones shared out evenly), and a step's tokens are sampled when its logits come back.
public final class Scheduler {
    public let executor: any StepExecutor
    public let tokenizer: Tokenizer
    public let options: SchedulerOptions
    public let blocks: BlockManager
    public private(set) var counters = SchedulerCounters()
    /// Keep the last prompt position's logits in each output (for cross-checks).
    public var keepPromptLogits = false
    /// Called with each request's text as it becomes final (`id`, text).
    public var onText: (Int, Substring) -> Void = { _, _ in }
    /// Called once per request when it ends (finished, stopped or cancelled).
    public var onFinish: (Int, GenerationOutput) -> Void = { _, _ in }
    /// Called for each generated token (`id`, token, its log-probability when the request asked for them), before
    /// its text reaches `onText`.
    public var onToken: ((Int, Int, TokenLogprob?) -> Void)?
    /// Called before each step that only decodes, with the count of such steps before it (instrumentation).
    public var onDecodeStep: ((Int) -> Void)?

    private var waiting: [ScheduledRequest] = []
    private var running: [ScheduledRequest] = []
    private var scheduled: [ScheduledRequest] = []
    /// The requests of each started, unfinished step, oldest first (pipelined steps only).
    private var flights: [[ScheduledRequest]] = []
    private var freeSlots: [Int]
    private var batch = Batch()
    private var updates = BlockTableUpdates()
    private let logits: UnsafeMutableBufferPointer<Float>
    /// The raw logits row of a request that wants log-probabilities (the sampler edits the row in place).
    private var rawRow: [Float] = []
    private var arrivals = 0
    private var decodeSteps = 0
    private let maxSequences: Int
    private let blocksPerSequence: Int
    /// Steps in flight at once (1: none overlap).
    public let depth: Int

    public init(executor: any StepExecutor, tokenizer: Tokenizer, options: SchedulerOptions = SchedulerOptions()) throws {
        guard options.maxBatchTokens > 0 else {
            throw GenerationError(description: "--max-batch-tokens must be positive, got \(options.maxBatchTokens)")
        }
        if let m = options.maxSequences, m <= 0 {
            throw GenerationError(description: "--max-sequences must be positive, got \(m)")
        }
        if let d = options.stepsInFlight, d <= 0 {
            throw GenerationError(description: "--steps-in-flight must be positive, got \(d)")
        }
        self.executor = executor; self.tokenizer = tokenizer; self.options = options
        let paging = executor.paging
        if options.prefixCache && !executor.supportsPrefixCache {
            throw GenerationError(description: "prefix caching needs a KV cache (not --no-kv-cache)")
        }
        blocks = BlockManager(paging: paging, prefixCaching: options.prefixCache)
        maxSequences = min(options.maxSequences ?? executor.sequenceSlots, executor.sequenceSlots)
        blocksPerSequence = paging.blocks(for: executor.contextLength)
        freeSlots = Array((0..<maxSequences).reversed())
        depth = min(options.stepsInFlight ?? executor.pipelineDepth, max(1, executor.pipelineDepth))
        logits = .allocate(capacity: depth == 1 ? maxSequences * executor.vocabularySize : 0)
        waiting.reserveCapacity(64); running.reserveCapacity(maxSequences); scheduled.reserveCapacity(maxSequences)
        updates.reserve(slots: maxSequences, blocks: maxSequences * blocksPerSequence)
        batch.tokens.reserveCapacity(options.maxBatchTokens); batch.positions.reserveCapacity(options.maxBatchTokens)
        batch.sequences.reserveCapacity(options.maxBatchTokens); batch.wantsLogits.reserveCapacity(options.maxBatchTokens)
    }

    deinit { logits.deallocate() }

    public var hasWork: Bool { !waiting.isEmpty || !running.isEmpty }
    public var waitingCount: Int { waiting.count }
    public var runningCount: Int { running.count }

    /// The latest request still waiting that never ran (nil if none): the one to turn away when the queue is full.
    public var newestWaiting: Int? { waiting.last(where: { $0.admitted == nil })?.id }

    /// Queues a request; its errors (empty prompt, too long for the context or the whole pool, ids outside the
    /// vocabulary) are thrown here and name the request.
    public func submit(_ request: GenerationRequest, id: Int) throws {
        try validate(request, name: "request \(id)")
        let state = try SequenceState(request: request, tokenizer: tokenizer, vocab: executor.vocabularySize)
        waiting.append(ScheduledRequest(id: id, arrival: arrivals, sequence: state, blocksPerSequence: blocksPerSequence))
        arrivals += 1
        counters.promptTokens += request.promptTokens.count
    }

    /// Ends a request now (a client went away): its blocks and slot are free for the next step. False if unknown.
    @discardableResult
    public func cancel(id: Int) -> Bool {
        if let i = waiting.firstIndex(where: { $0.id == id }) {
            let r = waiting.remove(at: i)
            end(r, reason: .cancelled)
            return true
        }
        if let i = running.firstIndex(where: { $0.id == id }) {
            guard !running[i].inFlight else {      // its step still writes its blocks: it ends when the step does
                running[i].cancelRequested = true
                return true
            }
            let r = running.remove(at: i)
            evict(r)
            end(r, reason: .cancelled)
            return true
        }
        return false
    }

    func validate(_ r: GenerationRequest, name: String) throws {
        let context = executor.contextLength, vocab = executor.vocabularySize
        guard !r.promptTokens.isEmpty else { throw GenerationError(description: "\(name): the prompt is empty") }
        guard r.promptTokens.count < context else {
            throw GenerationError(description: "\(name): the prompt has \(r.promptTokens.count) tokens but the context holds \(context) (raise --context, or shorten the prompt)")
        }
        let pool = blocks.paging.blockCount * blocks.paging.blockSize
        guard r.promptTokens.count < pool else {
            throw GenerationError(description: "\(name): the prompt has \(r.promptTokens.count) tokens but the whole KV cache holds \(pool) positions (raise --kv-cache-memory)")
        }
        guard r.maxTokens >= 0 else { throw GenerationError(description: "\(name): max tokens must be >= 0") }
        if let bad = r.promptTokens.first(where: { $0 < 0 || $0 >= vocab }) {
            throw GenerationError(description: "\(name): token id \(bad) outside the vocabulary of \(vocab)")
        }
    }

    /// Builds and runs one step, then samples for every sequence that reached its end. Returns false when there
    /// was nothing to run. With several steps in flight, a call starts a step if there is one to start and the
    /// pipeline has room, and otherwise finishes the oldest (sampling its tokens).
    @discardableResult
    public func step() throws -> Bool {
        guard depth > 1 else {
            guard try build(limit: .max) else { return false }
            try executor.execute(batch, updates: updates, logits: logits)
            counters.steps += 1
            finish(scheduled, logits: logits)
            return true
        }
        if flights.count < depth {
            // share the sequences that could run out evenly between this step and the ones that can still start
            var ready = min(waiting.count, freeSlots.count, maxSequences - running.count)
            for r in running where !r.inFlight { ready += 1 }
            let limit = max(1, (ready + depth - flights.count - 1) / (depth - flights.count))
            if try build(limit: limit) {
                for r in scheduled { r.inFlight = true }
                let alone = flights.isEmpty && running.allSatisfy(\.inFlight) && (waiting.isEmpty || freeSlots.isEmpty)
                try executor.start(batch, updates: updates, alone: alone)
                counters.steps += 1
                flights.append(scheduled)
                if flights.count < depth { return true }
            }
        }
        guard !flights.isEmpty else { return false }
        let done = flights.removeFirst()
        let rows = try executor.finishOldest()
        for r in done { r.inFlight = false }
        finish(done, logits: rows)
        return true
    }

    /// Builds the next step from at most `limit` sequences: running ones not in flight first (their next token or
    /// prompt chunk), then waiting ones FCFS while slots, budget and blocks last. False if it is empty.
    private func build(limit: Int) throws -> Bool {
        batch.removeAll(); updates.removeAll(); scheduled.removeAll(keepingCapacity: true)
        var budget = options.maxBatchTokens
        var decodesLeft = 0
        for r in running where r.pending == 1 && !r.inFlight { decodesLeft += 1 }
        var i = 0
        while i < running.count && scheduled.count < limit {
            let r = running[i]
            if r.inFlight { i += 1; continue }
            let isDecode = r.pending == 1
            if isDecode { decodesLeft -= 1 }
            let chunk = isDecode ? min(1, budget) : min(r.pending, budget - decodesLeft)
            guard chunk > 0 else { i += 1; continue }
            guard makeRoom(for: r, positions: r.computed + chunk) else { break }   // r itself was preempted
            schedule(r, chunk: chunk, first: r.table.count)
            budget -= chunk
            i += 1
        }
        while budget > 0, scheduled.count < limit, let w = waiting.first, running.count < maxSequences,
              let slot = freeSlots.last {
            guard blocks.paging.blocks(for: w.sequence.history.count) <= blocks.paging.blockCount else {
                waiting.removeFirst()   // preempted once its history filled the whole pool: it can never resume
                end(w, reason: .contextFull)
                continue
            }
            if w.computed == 0 { lookUpPrefix(w) }
            let chunk = min(w.pending, budget)
            let need = newBlocks(w, positions: w.computed + chunk)
            guard need <= blocks.available else {
                if running.isEmpty && w.table.isEmpty {
                    throw GenerationError(description: "request \(w.id): the KV cache's \(blocks.paging.blockCount) blocks cannot hold its next \(chunk) positions")
                }
                releaseBlocks(w)          // shared prefix blocks go back until it can start
                break
            }
            waiting.removeFirst()
            freeSlots.removeLast()
            if w.admitted == nil { w.admitted = Date() }
            w.slot = slot
            running.append(w)
            schedule(w, chunk: chunk, first: 0)
            budget -= chunk
        }
        guard !batch.tokens.isEmpty else {
            if hasWork && flights.isEmpty {
                throw GenerationError(description: "the scheduler has \(waiting.count) waiting requests but cannot start any (KV cache of \(blocks.paging.blockCount) blocks)")
            }
            return false
        }
        let onlyDecodes = scheduled.allSatisfy { $0.prefilled && $0.chunk == 1 }
        if onlyDecodes { onDecodeStep?(decodeSteps); decodeSteps += 1 }
        if blocks.prefixCaching { for r in scheduled { keyFullBlocks(r) } }
        return true
    }

    /// Keys the blocks the step fills for `r` in the prefix cache as the step starts: requests in later steps may
    /// share them at once, since every rank runs steps in order (a block is written before any later step reads
    /// it), even while this step is still in flight. None of this step's own sequences looks them up.
    private func keyFullBlocks(_ r: ScheduledRequest) {
        let size = blocks.paging.blockSize
        while r.keyedBlocks < (r.computed + r.chunk) / size {
            let start = r.keyedBlocks * size
            r.chainHash = blocks.key(r.table[r.keyedBlocks], parent: r.chainHash,
                                     tokens: r.sequence.history[start ..< start + size])
            r.keyedBlocks += 1
        }
    }

    /// Blocks `r` still needs to cover `positions` positions.
    private func newBlocks(_ r: ScheduledRequest, positions: Int) -> Int {
        max(0, blocks.paging.blocks(for: positions) - r.table.count)
    }

    /// Frees blocks for running request `r` by preempting the youngest running requests; false if `r` itself had
    /// to go.
    private func makeRoom(for r: ScheduledRequest, positions: Int) -> Bool {
        while newBlocks(r, positions: positions) > blocks.available {
            if running.count == 1 {              // alone and still too long: the pool is its context
                running.removeAll(keepingCapacity: true)
                evict(r)
                end(r, reason: .contextFull)
                return false
            }
            // the youngest not in a step in flight (r at least): a step in flight still writes its blocks
            guard let v = running.lastIndex(where: { !$0.inFlight }) else { return false }
            let victim = running.remove(at: v)
            preempt(victim)
            if victim === r { return false }
        }
        return true
    }

    /// Sends a running request back to the front of the queue without its blocks; it recomputes its whole history.
    private func preempt(_ r: ScheduledRequest) {
        evict(r)
        r.preemptions += 1
        counters.preemptions += 1
        waiting.insert(r, at: 0)
    }

    /// Frees `r`'s blocks and slot.
    private func evict(_ r: ScheduledRequest) {
        releaseBlocks(r)
        if r.slot >= 0 { freeSlots.append(r.slot); r.slot = -1 }
    }

    private func releaseBlocks(_ r: ScheduledRequest) {
        for b in r.table { blocks.giveBack(b) }
        r.table.removeAll(keepingCapacity: true)
        r.computed = 0; r.keyedBlocks = 0; r.chainHash = BlockManager.rootHash
    }

    /// Takes the full blocks of `r`'s history the prefix cache holds (leaving at least one token to compute, so
    /// the step yields its logits).
    private func lookUpPrefix(_ r: ScheduledRequest) {
        guard blocks.prefixCaching else { return }
        let size = blocks.paging.blockSize, history = r.sequence.history
        let full = (history.count - 1) / size
        while r.table.count < full {
            let start = r.table.count * size
            guard let (b, h) = blocks.share(parent: r.chainHash, tokens: history[start ..< start + size]) else { break }
            r.table.append(b); r.chainHash = h
        }
        r.keyedBlocks = r.table.count
        r.computed = r.table.count * size
        if !r.looked {
            r.looked = true
            r.cachedTokens = r.computed
            blocks.countLookup(queried: history.count, hit: r.computed)
        }
    }

    /// Adds `chunk` of `r`'s pending tokens to the step, with the blocks they need (table entries from `first` on
    /// are new to the other ranks).
    private func schedule(_ r: ScheduledRequest, chunk: Int, first: Int) {
        for _ in 0..<newBlocks(r, positions: r.computed + chunk) { r.table.append(blocks.take()!) }
        if first < r.table.count || first == 0 {   // new blocks, or a slot starting afresh
            updates.append(slot: r.slot, first: first, length: r.computed, blocks: r.table[first...])
        }
        let history = r.sequence.history, end = r.computed + chunk
        for p in r.computed ..< end {
            batch.append(token: history[p], position: p, sequence: r.slot, wantsLogits: p == history.count - 1)
        }
        if !r.prefilled || r.pending > 1 { counters.computedPromptTokens += chunk }   // a prompt, or a recomputation
        r.chunk = chunk
        scheduled.append(r)
    }

    /// After a step ran: records stored positions, keys full blocks, samples where a sequence reached its end
    /// (logits rows in the order of `done`), ends requests cancelled while the step was in flight.
    private func finish(_ done: [ScheduledRequest], logits: UnsafeMutableBufferPointer<Float>) {
        let vocab = executor.vocabularySize, context = executor.contextLength
        var row = 0
        for r in done {
            r.computed += r.chunk
            guard r.computed == r.sequence.history.count else {
                if r.cancelRequested { endCancelled(r) }
                continue
            }
            defer { row += 1 }
            if r.cancelRequested {
                endCancelled(r)
                continue
            }
            if !r.prefilled {
                r.prefilled = true
                counters.prefilled += 1
                if keepPromptLogits { r.output.promptLogits = Array(logits[row * vocab ..< (row + 1) * vocab]) }
                if r.sequence.maxTokens == 0 { r.sequence.finish(.maxTokens) }
            }
            if !r.sequence.done {
                var summary: LogprobSummary?
                if let top = r.sequence.logprobs {
                    rawRow.removeAll(keepingCapacity: true)
                    rawRow.append(contentsOf: logits[row * vocab ..< (row + 1) * vocab])
                    summary = rawRow.withUnsafeBufferPointer { LogprobSummary($0, top: top) }
                }
                let token = r.sequence.sampler.sample(logits: UnsafeMutableBufferPointer(rebasing: logits[row * vocab ..< (row + 1) * vocab]),
                                                      history: r.sequence.history)
                if r.firstToken == nil { r.firstToken = Date() }
                counters.generatedTokens += 1
                let count = r.sequence.generated.count
                let text = r.sequence.accept(token, context: context)
                if r.sequence.generated.count > count {      // not an end-of-sequence token
                    let logprob = summary.map { TokenLogprob(token: token, logprob: rawRow[token] - $0.logSumExp, top: $0.top) }
                    if let logprob { r.output.logprobs.append(logprob) }
                    onToken?(r.id, token, logprob)
                }
                if let text { onText(r.id, text) }
            }
            if r.sequence.done, let i = running.firstIndex(where: { $0 === r }) {
                running.remove(at: i)
                evict(r)
                end(r, reason: nil)
            }
        }
    }

    /// Ends running request `r`, cancelled while its step was in flight.
    private func endCancelled(_ r: ScheduledRequest) {
        guard let i = running.firstIndex(where: { $0 === r }) else { return }
        running.remove(at: i)
        evict(r)
        end(r, reason: .cancelled)
    }

    /// Fills in and hands over `r`'s output.
    private func end(_ r: ScheduledRequest, reason: StopReason?) {
        if let reason { r.sequence.finish(reason) }
        if let tail = r.sequence.flush() { onText(r.id, tail) }
        r.output.tokens = r.sequence.generated
        r.output.text = r.sequence.text
        r.output.stopReason = r.sequence.stopReason
        r.output.cachedPromptTokens = r.cachedTokens
        r.output.preemptions = r.preemptions
        r.output.timeToFirstToken = r.firstToken.map { $0.timeIntervalSince(r.submitted) }
        r.output.queueTime = r.admitted.map { $0.timeIntervalSince(r.submitted) }
        counters.finished += 1
        onFinish(r.id, r.output)
    }
}

/// The log-softmax normaliser of a logits row and its `top` most likely tokens (ties to the lower id), for
/// reporting log-probabilities: token t's log-probability is `row[t] - logSumExp`.
struct LogprobSummary {
    let logSumExp: Float
    let top: [(token: Int, logprob: Float)]

    init(_ row: UnsafeBufferPointer<Float>, top count: Int) {
        var m = -Float.infinity
        for v in row where v > m { m = v }
        var sum = 0.0
        for v in row { sum += Double(expf(v - m)) }
        let lse = m + Float(log(sum))
        logSumExp = lse
        var best: [(token: Int, logprob: Float)] = []
        if count > 0 {
            best.reserveCapacity(count + 1)
            for (t, v) in row.enumerated() where best.count < count || v > best[best.count - 1].logprob + lse {
                let entry = (token: t, logprob: v - lse)
                let at = best.firstIndex { entry.logprob > $0.logprob } ?? best.count
                best.insert(entry, at: at)
                if best.count > count { best.removeLast() }
            }
        }
        top = best
    }
}
