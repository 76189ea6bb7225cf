import TesseraModels

/// Runs forward steps for the coordinator. The generation loop is written against this alone, so it is the same
/// whether one process computes the step (`LocalExecutor`) or a whole MPI job does (tensor/pipeline parallel).
public protocol StepExecutor: AnyObject {
    var vocabularySize: Int { get }
    /// Positions each sequence slot holds.
    var contextLength: Int { get }
    /// Sequence slots available (the most sequences one batch may mix).
    var sequenceSlots: Int { get }
    /// The KV block pool every rank holds (the scheduler's block manager hands out its blocks).
    var paging: KVPaging { get }
    /// Whether cached blocks can be shared between sequences (not when every step recomputes its prefix).
    var supportsPrefixCache: Bool { get }
    /// Applies the block-table changes, runs one step and writes `[batch.logitCount × vocabularySize]` logits, in
    /// batch order.
    func execute(_ batch: Batch, updates: BlockTableUpdates, logits: UnsafeMutableBufferPointer<Float>) throws

    /// Steps that can be in flight at once: 1, unless the executor can start a step while earlier ones are still
    /// on later ranks (pipeline parallelism: one per stage keeps every stage busy).
    var pipelineDepth: Int { get }
    /// Applies the block-table changes and starts a step without waiting for its logits (at most `pipelineDepth`
    /// steps started and not yet finished). Steps run in the order they start, on every rank. `alone`: no other
    /// step will be in flight with it (the executor may then cut it so its own stages overlap).
    func start(_ batch: Batch, updates: BlockTableUpdates, alone: Bool) throws
    /// Waits for the oldest started step and returns its `[batch.logitCount × vocabularySize]` logits, valid until
    /// the next `start`.
    func finishOldest() throws -> UnsafeMutableBufferPointer<Float>
}

extension StepExecutor {
    public var supportsPrefixCache: Bool { true }
    public var pipelineDepth: Int { 1 }

    public func start(_ batch: Batch, updates: BlockTableUpdates, alone: Bool) throws {
        throw GenerationError(description: "\(type(of: self)) runs one step at a time (call execute)")
    }

    public func finishOldest() throws -> UnsafeMutableBufferPointer<Float> {
        throw GenerationError(description: "\(type(of: self)) has no step in flight")
    }

    /// Runs a step for one sequence in slot `slot` from position 0, on blocks `0 ..<` as many as it needs (the
    /// caller owns the whole pool: perplexity and checks, not the scheduler).
    public func executeAlone(_ batch: Batch, slot: Int = 0, logits: UnsafeMutableBufferPointer<Float>) throws {
        let positions = (batch.positions.max() ?? -1) + 1, needed = paging.blocks(for: positions)
        guard needed <= paging.blockCount else {
            throw GenerationError(description: "\(positions) positions need \(needed) KV blocks but the cache has \(paging.blockCount) (raise --kv-cache-memory)")
        }
        var updates = BlockTableUpdates()
        updates.append(slot: slot, first: 0, length: 0, blocks: 0..<needed)
        try execute(batch, updates: updates, logits: logits)
    }
}

/// One process runs the whole model.
public final class LocalExecutor: StepExecutor {
    public let model: any LanguageModel
    public let cache: PagedKVCache

    /// A paged cache of `paging` (nil: every slot's whole context, in blocks of 16 positions).
    public init(model: any LanguageModel, sequenceSlots: Int, contextLength: Int, paging: KVPaging? = nil) throws {
        self.model = model
        let paging = paging ?? .covering(sequences: sequenceSlots, contextLength: contextLength)
        cache = try model.makePagedCache(sequences: sequenceSlots, contextLength: contextLength, paging: paging)
    }

    public var vocabularySize: Int { model.vocabularySize }
    public var contextLength: Int { cache.contextLength }
    public var sequenceSlots: Int { cache.sequenceCount }
    public var paging: KVPaging { cache.paging }

    public func execute(_ batch: Batch, updates: BlockTableUpdates, logits: UnsafeMutableBufferPointer<Float>) throws {
        try cache.apply(updates)
        try model.forward(batch, cache: cache, logits: logits)
    }
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
    /// One block per slot, a whole context: the dense cache (the scheduler's blocks map one-to-one to slots).
    public var paging: KVPaging { KVPaging(blockSize: cache.contextLength, blockCount: cache.sequenceCount) }
    public var supportsPrefixCache: Bool { false }

    /// Records the batch's tokens in each sequence's history, then runs each sequence of the batch from position 0
    /// (its cache slot emptied first) up to its last position in the batch, with logits where the batch wants them.
    /// Logit rows come out in batch order as long as each sequence's tokens are contiguous in the batch (the
    /// generation loop's batches are).
    public func execute(_ batch: Batch, updates: BlockTableUpdates, logits: UnsafeMutableBufferPointer<Float>) throws {
        for (slot, first) in zip(updates.slots, updates.firsts) where first == 0 && histories.indices.contains(slot) {
            histories[slot].removeAll()   // a new sequence in the slot
        }
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
}
