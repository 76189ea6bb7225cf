import TesseraModels

/// Runs forward steps for the coordinator. The generation loop is written against this alone, so it is the same
/// whether one process computes the step (`LocalExecutor`) or a whole MPI job does (tensor/pipeline parallel).
public protocol StepExecutor: AnyObject {
    var vocabularySize: Int { get }
    /// Positions each sequence slot holds.
    var contextLength: Int { get }
    /// Sequence slots available (the most sequences one batch may mix).
    var sequenceSlots: Int { get }
    /// Runs one step and writes `[batch.logitCount × vocabularySize]` logits, in batch order.
    func execute(_ batch: Batch, logits: UnsafeMutableBufferPointer<Float>) throws
    /// Forgets a slot's cached positions so a new sequence can use it.
    func release(sequence: Int) throws
}

/// One process runs the whole model.
public final class LocalExecutor: StepExecutor {
    public let model: any LanguageModel
    public let cache: any KVCache

    public init(model: any LanguageModel, sequenceSlots: Int, contextLength: Int) throws {
        self.model = model
        cache = try model.makeCache(sequences: sequenceSlots, contextLength: contextLength)
    }

    public var vocabularySize: Int { model.vocabularySize }
    public var contextLength: Int { cache.contextLength }
    public var sequenceSlots: Int { cache.sequenceCount }

    public func execute(_ batch: Batch, logits: UnsafeMutableBufferPointer<Float>) throws {
        try model.forward(batch, cache: cache, logits: logits)
    }

    public func release(sequence: Int) throws { cache.setOffset(0, of: sequence) }
}

/// One process runs the whole model without reusing cached keys and values: every step recomputes each
/// sequence's whole prefix (`--no-kv-cache`), which is what the KV cache saves. For measuring that saving only.
public final class RecomputingExecutor: StepExecutor {
    public let model: any LanguageModel
    public let cache: any KVCache
    private var histories: [[Int]]

    public init(model: any LanguageModel, sequenceSlots: Int, contextLength: Int) throws {
        self.model = model
        cache = try model.makeCache(sequences: sequenceSlots, contextLength: contextLength)
        histories = Array(repeating: [], count: sequenceSlots)
    }

    public var vocabularySize: Int { model.vocabularySize }
    public var contextLength: Int { cache.contextLength }
    public var sequenceSlots: Int { cache.sequenceCount }

    /// Records the batch's tokens in each sequence's history, then runs each sequence of the batch from position 0
    /// (its cache slot emptied first) up to its last position in the batch, with logits where the batch wants them.
    /// Logit rows come out in batch order as long as each sequence's tokens are contiguous in the batch (the
    /// generation loop's batches are).
    public func execute(_ batch: Batch, logits: UnsafeMutableBufferPointer<Float>) throws {
        var wanted: [Int: Set<Int>] = [:], last: [Int: Int] = [:], order: [Int] = []
        for i in 0..<batch.count {
            let s = batch.sequences[i], p = batch.positions[i]
            guard histories.indices.contains(s), p <= histories[s].count else {
                throw GenerationError(description: "step for sequence \(s) at position \(p) skips positions")
            }
            histories[s].removeSubrange(p...)
            histories[s].append(batch.tokens[i])
            if last[s] == nil { order.append(s) }
            last[s] = max(last[s] ?? 0, p)
            if batch.wantsLogits[i] { wanted[s, default: []].insert(p) }
        }
        var full = Batch()
        for s in order {
            cache.reset(sequence: s)
            for (position, token) in histories[s][...last[s]!].enumerated() {
                full.append(token: token, position: position, sequence: s,
                            wantsLogits: wanted[s]?.contains(position) ?? false)
            }
        }
        try model.forward(full, cache: cache, logits: logits)
    }

    public func release(sequence: Int) throws {
        cache.setOffset(0, of: sequence)
        if histories.indices.contains(sequence) { histories[sequence].removeAll() }
    }
}
