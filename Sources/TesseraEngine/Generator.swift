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

    public init(promptTokens: [Int], maxTokens: Int, sampling: SamplingParameters = SamplingParameters(),
                stopStrings: [String] = [], stopAtEOS: Bool = true) {
        self.promptTokens = promptTokens; self.maxTokens = maxTokens; self.sampling = sampling
        self.stopStrings = stopStrings; self.stopAtEOS = stopAtEOS
    }
}

public enum StopReason: String, Sendable, Codable {
    case endOfSequence = "eos", stopString = "stop", maxTokens = "length", contextFull = "context"
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

/// The coordinator's loop: prefill every prompt in one batch, then decode all live sequences together, sampling
/// once per sequence per step on this rank. Text is streamed through `onText(requestIndex, text)`.
public final class Generator {
    public let executor: any StepExecutor
    public let tokenizer: Tokenizer
    /// Keep the last prompt position's logits in each output (for cross-checks).
    public var keepPromptLogits = false
    /// Called before each decode step with the step's index (0 = the step after the prompt); for instrumentation.
    public var onDecodeStep: ((Int) -> Void)?

    public init(executor: any StepExecutor, tokenizer: Tokenizer) {
        self.executor = executor; self.tokenizer = tokenizer
    }

    public func generate(_ requests: [GenerationRequest],
                         onText: (Int, Substring) -> Void = { _, _ in }) throws -> ([GenerationOutput], GenerationStats) {
        guard !requests.isEmpty else { return ([], GenerationStats()) }
        try validate(requests)
        for slot in requests.indices { try executor.release(sequence: slot) }
        let vocab = executor.vocabularySize
        var sequences = try requests.enumerated().map {
            try SequenceState(index: $0.offset, request: $0.element, tokenizer: tokenizer, vocab: vocab)
        }
        var outputs = [GenerationOutput](repeating: GenerationOutput(), count: requests.count)
        var stats = GenerationStats()
        stats.promptTokens = requests.reduce(0) { $0 + $1.promptTokens.count }
        var logits = [Float](repeating: 0, count: requests.count * vocab)
        var batch = Batch()

        let start = Date()
        try prefill(sequences, batch: &batch, logits: &logits)
        stats.prefillSeconds = Date().timeIntervalSince(start)
        for i in sequences.indices {
            if keepPromptLogits { outputs[i].promptLogits = Array(logits[i * vocab ..< (i + 1) * vocab]) }
            if requests[i].maxTokens == 0 { sequences[i].finish(.maxTokens) }
        }
        let decodeStart = Date()
        try decode(&sequences, batch: &batch, logits: &logits, stats: &stats, start: start, onText: onText)
        stats.decodeSeconds = Date().timeIntervalSince(decodeStart)
        for i in sequences.indices {
            if let tail = sequences[i].flush() { onText(i, tail) }
            outputs[i].tokens = sequences[i].generated
            outputs[i].text = sequences[i].text
            outputs[i].stopReason = sequences[i].stopReason
        }
        return (outputs, stats)
    }

    /// Every request fits a slot and the context, and holds only vocabulary ids; errors name the request.
    func validate(_ requests: [GenerationRequest]) throws {
        guard requests.count <= executor.sequenceSlots else {
            throw GenerationError(description: "\(requests.count) prompts but only \(executor.sequenceSlots) sequence slots")
        }
        let context = executor.contextLength, vocab = executor.vocabularySize
        for (i, r) in requests.enumerated() {
            guard !r.promptTokens.isEmpty else { throw GenerationError(description: "request \(i): the prompt is empty") }
            guard r.promptTokens.count < context else {
                throw GenerationError(description: "request \(i): the prompt has \(r.promptTokens.count) tokens but the context holds \(context) (raise --context, or shorten the prompt)")
            }
            guard r.maxTokens >= 0 else { throw GenerationError(description: "request \(i): max tokens must be >= 0") }
            if let bad = r.promptTokens.first(where: { $0 < 0 || $0 >= vocab }) {
                throw GenerationError(description: "request \(i): token id \(bad) outside the vocabulary of \(vocab)")
            }
        }
    }

    /// Every prompt in one batch, logits at each prompt's last position (row i for sequence i).
    func prefill(_ sequences: [SequenceState], batch: inout Batch, logits: inout [Float]) throws {
        for s in sequences {
            for (p, token) in s.history.enumerated() {
                batch.append(token: token, position: p, sequence: s.index, wantsLogits: p == s.history.count - 1)
            }
        }
        try logits.withUnsafeMutableBufferPointer { try executor.execute(batch, logits: $0) }
    }

    /// Samples from the latest logits and feeds the sampled tokens back as one batch until every sequence is done;
    /// index arrays are reused every step (no allocation per token).
    func decode(_ sequences: inout [SequenceState], batch: inout Batch, logits: inout [Float],
                stats: inout GenerationStats, start: Date, onText: (Int, Substring) -> Void) throws {
        let context = executor.contextLength, vocab = executor.vocabularySize
        var live = sequences.indices.filter { !sequences[$0].done }
        var rows = Array(sequences.indices)      // prefill wrote one logits row per sequence
        live.reserveCapacity(sequences.count); rows.reserveCapacity(sequences.count)
        while !live.isEmpty {
            onDecodeStep?(stats.decodeSteps)
            for (row, i) in rows.enumerated() where !sequences[i].done {
                let token = logits.withUnsafeMutableBufferPointer {
                    sequences[i].sampler.sample(logits: UnsafeMutableBufferPointer(rebasing: $0[row * vocab ..< (row + 1) * vocab]),
                                                history: sequences[i].history)
                }
                if stats.generatedTokens == 0 { stats.timeToFirstToken = Date().timeIntervalSince(start) }
                stats.generatedTokens += 1
                if let text = sequences[i].accept(token, context: context) { onText(i, text) }
            }
            live.removeAll(keepingCapacity: true)
            for i in sequences.indices where !sequences[i].done { live.append(i) }
            guard !live.isEmpty else { break }
            batch.removeAll()
            for i in live {
                let s = sequences[i]
                batch.append(token: s.history.last!, position: s.history.count - 1, sequence: s.index, wantsLogits: true)
            }
            try logits.withUnsafeMutableBufferPointer { try executor.execute(batch, logits: $0) }
            stats.decodeSteps += 1
            rows.removeAll(keepingCapacity: true)
            rows.append(contentsOf: live)
        }
    }
}

/// One sequence being generated: its tokens, sampler, streaming decoder and stop rules.
struct SequenceState {
    let index: Int
    let maxTokens: Int
    let eos: Set<Int>
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

    init(index: Int, request: GenerationRequest, tokenizer: Tokenizer, vocab: Int) throws {
        self.index = index
        maxTokens = request.maxTokens
        eos = request.stopAtEOS ? tokenizer.eosIDs : []
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
