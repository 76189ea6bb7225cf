import Foundation
import TesseraCollectives
import TesseraModels
import TesseraParallel

/// One decoder rank's share of every step: its pipeline stage's contiguous layers (over its tensor-parallel shard
/// of them). The first stage embeds, later stages receive hidden states from the rank before them (same tpRank),
/// the last stage applies the final norm and head. A step is cut into micro-batches processed in order, with
/// non-blocking sends, so stage k works on micro-batch i+1 while stage k+1 works on micro-batch i.
public final class PipelineStage {
    public let model: any LanguageModel
    public let layers: Range<Int>
    public let stage: Int
    public let stageCount: Int
    /// Ranks with this rank's tpRank in every stage; its rank in this group is the stage index.
    let pipeline: Communicator
    public let cache: PagedKVCache
    /// How hidden states travel to the next stage.
    public let wire: WireFormat
    /// Reused hidden-state buffers, one per micro-batch in flight: [maxBatchTokens × hidden] each, and as many wire
    /// buffers of their encoding (unused in f32, which sends the floats themselves).
    private var buffers: [UnsafeMutablePointer<Float>] = []
    private var wireBuffers: [UnsafeMutableBufferPointer<UInt8>] = []
    /// Steps and tokens run so far, and an optional injected failure (fault tests and drills).
    public private(set) var steps = 0
    public private(set) var tokens = 0
    public var fault: InjectedFault?
    /// Called once, just before the first step runs (profiling starts its clocks there).
    public var onFirstStep: (() -> Void)?

    public var isFirst: Bool { stage == 0 }
    public var isLast: Bool { stage == stageCount - 1 }

    public init(model: any LanguageModel, layers: Range<Int>, pipeline: Communicator, sequenceSlots: Int,
                contextLength: Int, paging: KVPaging, wire: WireFormat = .f32) throws {
        self.model = model; self.layers = layers; self.pipeline = pipeline; self.wire = wire
        stage = pipeline.rank; stageCount = pipeline.size
        cache = try model.makePagedCache(sequences: sequenceSlots, contextLength: contextLength, paging: paging)
        guard cache.layers == layers else {
            throw ModelError.invalidBuffer("pipeline stage \(stage) runs layers \(layers) but its model holds \(cache.layers)")
        }
    }

    deinit {
        for b in buffers { b.deallocate() }
        for b in wireBuffers { b.deallocate() }
    }

    /// Cuts a step into `count` micro-batches (fewer if it has fewer tokens) of at most the model's chunk size.
    /// Every rank cuts the same step the same way.
    public func microBatches(_ batch: Batch, count: Int) -> [Batch] {
        let target = min(model.maxBatchTokens, max(1, (batch.count + count - 1) / max(1, count)))
        var result: [Batch] = [], current = Batch()
        for i in 0..<batch.count {
            current.append(token: batch.tokens[i], position: batch.positions[i], sequence: batch.sequences[i],
                           wantsLogits: batch.wantsLogits[i])
            if current.count == target { result.append(current); current = Batch() }
        }
        if current.count > 0 { result.append(current) }
        return result
    }

    /// Applies the step's block-table changes and runs this rank's part of it in `microBatches` parts. On the last
    /// stage writes `[batch.logitCount × vocab]` logits.
    public func run(_ batch: Batch, updates: BlockTableUpdates, microBatches: Int,
                    logits: UnsafeMutablePointer<Float>?) throws {
        try cache.apply(updates)
        steps += 1
        tokens += batch.count
        if steps == 1 { onFirstStep?() }
        if let fault, fault.step == steps { try fault.trigger() }
        let parts = self.microBatches(batch, count: microBatches)
        let hidden = model.hiddenSize, vocab = model.vocabularySize
        while buffers.count < parts.count {
            buffers.append(.allocate(capacity: model.maxBatchTokens * hidden))
            wireBuffers.append(.allocate(capacity: wire == .f32 ? 0 : wire.bytes(count: model.maxBatchTokens * hidden)))
        }
        var sends: [Request] = []
        var row = 0
        for (m, part) in parts.enumerated() {
            let h = buffers[m]
            let states = UnsafeMutableBufferPointer(start: h, count: part.count * hidden)
            let encoded = UnsafeMutableBufferPointer(rebasing: wireBuffers[m][0 ..< (wire == .f32 ? 0 : wire.bytes(count: states.count))])
            if isFirst { try model.embed(part, into: h) }
            else if wire == .f32 { try pipeline.recv(states, from: stage - 1, tag: MessageTag.hiddenStates(microBatch: m)) }
            else {
                try pipeline.recv(encoded, from: stage - 1, tag: MessageTag.hiddenStates(microBatch: m))
                wire.decode(encoded.baseAddress!, count: states.count, into: h)
            }
            try model.forward(layers: layers, hidden: h, batch: part, cache: cache)
            cache.commit(part)
            if !isLast && wire == .f32 {
                sends.append(try pipeline.isend(UnsafeBufferPointer(states), to: stage + 1,
                                                tag: MessageTag.hiddenStates(microBatch: m)))
            } else if !isLast {
                wire.encode(h, count: states.count, into: encoded.baseAddress!)
                sends.append(try pipeline.isend(UnsafeBufferPointer(encoded), to: stage + 1,
                                                tag: MessageTag.hiddenStates(microBatch: m)))
            } else if let logits {
                try model.logits(hidden: h, batch: part, into: logits + row * vocab)
                row += part.logitCount
            }
        }
        try Request.waitAll(sends)
    }
}

/// A failure to inject at a step on one rank, to prove the job comes down promptly: throw an error (the rank
/// aborts the job), die by SIGKILL (mpirun notices the lost rank), or stop by SIGSTOP (a hung rank: the step
/// watchdog of the others notices).
public struct InjectedFault: Sendable {
    public enum Kind: String, Sendable { case `throw`, kill, stop }
    public let rank: Int
    public let step: Int
    public let kind: Kind

    /// Parses `RANK:STEP[:throw|kill|stop]`.
    public init?(_ text: String) {
        let parts = text.split(separator: ":").map(String.init)
        guard parts.count >= 2, parts.count <= 3, let r = Int(parts[0]), let s = Int(parts[1]), r >= 0, s >= 1,
              let k = Kind(rawValue: parts.count == 3 ? parts[2] : "throw") else { return nil }
        rank = r; step = s; kind = k
    }

    func trigger() throws {
        switch kind {
        case .throw: throw ProtocolError("injected fault at step \(step) on rank \(rank)")
        case .kill: kill(getpid(), SIGKILL)
        case .stop: kill(getpid(), SIGSTOP)   // hangs without dying, for the step watchdog
        }
    }
}
