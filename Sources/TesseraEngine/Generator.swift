import Foundation
import TesseraModels
import TesseraTokenizer

/// One prompt to complete.
public struct GenerationRequest: Sendable {
    public var promptTokens: [Int]
    public var maxTokens: Int
    public var sampling: SamplingParameters
    /// Text that ends the completion when generated (not included in the output).
    public var stopStrings: [String]
    /// Whether an end-of-sequence token ends the completion (benchmarks turn it off to generate exactly maxTokens).
    public var stopAtEOS: Bool
    /// Report each generated token's log-probability and this many most likely alternatives (nil: none).
    public var logprobs: Int?

    public init(promptTokens: [Int], maxTokens: Int, sampling: SamplingParameters = SamplingParameters(),
                stopStrings: [String] = [], stopAtEOS: Bool = true, logprobs: Int? = nil) {
        self.promptTokens = promptTokens; self.maxTokens = maxTokens; self.sampling = sampling
        self.stopStrings = stopStrings; self.stopAtEOS = stopAtEOS; self.logprobs = logprobs
    }
}

/// A generated token's log-probability under the model (the raw logits' log-softmax, before penalties,
/// temperature and filters, as the OpenAI API and vLLM report it), with the most likely tokens at that position.
public struct TokenLogprob: Sendable, Equatable {
    public var token: Int
    public var logprob: Float
    /// The most likely tokens and their log-probabilities, most likely first (ties to the lower id).
    public var top: [(token: Int, logprob: Float)]

    public static func == (a: TokenLogprob, b: TokenLogprob) -> Bool {
        a.token == b.token && a.logprob == b.logprob && a.top.elementsEqual(b.top) { $0 == $1 }
    }
}

public enum StopReason: String, Sendable, Codable {
    case endOfSequence = "eos", stopString = "stop", maxTokens = "length", contextFull = "context"
    /// Cancelled before it ended (a client went away, the server shut down).
    case cancelled
}

/// What one request produced.
public struct GenerationOutput: Sendable {
    /// Generated token ids (the stop token excluded; a stop string's tokens included).
    public var tokens: [Int] = []
    /// Generated text, cut before a stop string.
    public var text = ""
    public var stopReason: StopReason = .maxTokens
    /// Logits at the last prompt position (kept only when asked for).
    public var promptLogits: [Float]? = nil
    /// Prompt tokens whose keys and values came from the prefix cache.
    public var cachedPromptTokens = 0
    /// Times the request was preempted (and recomputed) for lack of KV blocks.
    public var preemptions = 0
    /// Seconds from submission to the first generated token (nil if none).
    public var timeToFirstToken: Double? = nil
    /// Seconds from submission to the first step that ran it (nil if it never ran).
    public var queueTime: Double? = nil
    /// One entry per generated token when the request asked for log-probabilities.
    public var logprobs: [TokenLogprob] = []
}

/// Timings of one `generate` call.
public struct GenerationStats: Sendable {
    public var promptTokens = 0
    public var generatedTokens = 0
    public var prefillSeconds = 0.0
    public var decodeSeconds = 0.0
    public var timeToFirstToken = 0.0
    public var decodeSteps = 0

    public var promptTokensPerSecond: Double { prefillSeconds > 0 ? Double(promptTokens) / prefillSeconds : 0 }
    /// Tokens produced by decode steps per second (the first token of each sequence comes from prefill).
    public var generatedTokensPerSecond: Double {
        decodeSeconds > 0 ? Double(max(generatedTokens - 1, 0)) / decodeSeconds : 0
    }
}

public struct GenerationError: Error, CustomStringConvertible, Sendable {
    public let description: String
    public init(description: String) { self.description = description }
}

/// Completes a list of requests through the scheduler (every one submitted at once, so they are admitted in
/// order as slots, budget and KV blocks allow). Text is streamed through `onText(requestIndex, text)`.
public final class Generator {
    public let executor: any StepExecutor
    public let tokenizer: Tokenizer
    public var options: SchedulerOptions
    /// Keep the last prompt position's logits in each output (for cross-checks).
    public var keepPromptLogits = false
    /// Called before each step that only decodes, with the count of such steps before it; for instrumentation.
    public var onDecodeStep: ((Int) -> Void)?
    /// The scheduler of the last `generate` (its counters).
    public private(set) var scheduler: Scheduler?

    public init(executor: any StepExecutor, tokenizer: Tokenizer, options: SchedulerOptions = SchedulerOptions()) {
        self.executor = executor; self.tokenizer = tokenizer; self.options = options
    }

    public func generate(_ requests: [GenerationRequest],
                         onText: @escaping (Int, Substring) -> Void = { _, _ in }) throws -> ([GenerationOutput], GenerationStats) {
        guard !requests.isEmpty else { return ([], GenerationStats()) }
        let scheduler = try Scheduler(executor: executor, tokenizer: tokenizer, options: options)
        self.scheduler = scheduler
        scheduler.keepPromptLogits = keepPromptLogits
        scheduler.onDecodeStep = onDecodeStep
        var outputs = [GenerationOutput](repeating: GenerationOutput(), count: requests.count)
        var stats = GenerationStats()
        stats.promptTokens = requests.reduce(0) { $0 + $1.promptTokens.count }
        var firstToken: Date?, lastPrefill: Date?   // after the steps that sampled the first token and the last prompt's
        scheduler.onText = onText
        scheduler.onFinish = { outputs[$0] = $1 }
        for (i, r) in requests.enumerated() { try scheduler.submit(r, id: i) }
        let start = Date()
        var prefilling = true
        while scheduler.hasWork {
            try scheduler.step()
            if firstToken == nil && scheduler.counters.generatedTokens > 0 { firstToken = Date() }
            if prefilling && scheduler.counters.prefilled == requests.count {
                prefilling = false; lastPrefill = Date()
            } else if !prefilling {
                stats.decodeSteps += 1
            }
        }
        let end = Date(), prefilled = lastPrefill ?? end
        stats.prefillSeconds = prefilled.timeIntervalSince(start)
        stats.decodeSeconds = end.timeIntervalSince(prefilled)
        stats.timeToFirstToken = firstToken.map { $0.timeIntervalSince(start) } ?? 0
        stats.generatedTokens = scheduler.counters.generatedTokens
        return (outputs, stats)
    }
}

/// One sequence being generated: its tokens, sampler, streaming decoder and stop rules.
struct SequenceState {
    let maxTokens: Int
    let eos: Set<Int>
    let logprobs: Int?
    var history: [Int]
    var generated: [Int] = []
    var sampler: Sampler
    var decoder: StreamingDecoder
    var stops: StopSequences
    var text = ""
    /// Characters the decoder completed for the current token (reused).
    var scalars: [Unicode.Scalar] = []
    var done = false
    var stopReason: StopReason = .maxTokens

    init(request: GenerationRequest, tokenizer: Tokenizer, vocab: Int) throws {
        maxTokens = request.maxTokens
        eos = request.stopAtEOS ? tokenizer.eosIDs : []
        logprobs = request.logprobs
        history = request.promptTokens
        history.reserveCapacity(request.promptTokens.count + request.maxTokens + 1)
        generated.reserveCapacity(request.maxTokens)
        text.reserveCapacity(min(request.maxTokens, 1 << 16) * 16)
        scalars.reserveCapacity(64)
        sampler = try Sampler(parameters: request.sampling, vocabularySize: vocab)
        decoder = tokenizer.streamingDecoder()
        stops = StopSequences(request.stopStrings)
    }

    mutating func finish(_ reason: StopReason) { done = true; stopReason = reason }

    /// Takes a sampled token; returns the text that may be shown now, a slice of `text` (no copy).
    mutating func accept(_ token: Int, context: Int) -> Substring? {
        if eos.contains(token) { finish(.endOfSequence); return nil }
        generated.append(token)
        history.append(token)
        scalars.removeAll(keepingCapacity: true)
        decoder.feed(token, into: &scalars)
        let start = text.endIndex
        let stopped = stops.feed(scalars, into: &text)
        if stopped { finish(.stopString) }
        else if generated.count >= maxTokens { finish(.maxTokens) }
        else if history.count >= context { finish(.contextFull) }   // no room for the next token's key/value
        return start == text.endIndex ? nil : text[start...]
    }

    /// Text held back at the end (an incomplete stop-string prefix or UTF-8 sequence).
    mutating func flush() -> Substring? {
        guard stopReason != .stopString else { return nil }
        let start = text.endIndex
        _ = stops.feed(Array(decoder.finish().unicodeScalars), into: &text)
        text += stops.flush()
        return start == text.endIndex ? nil : text[start...]
    }
}
