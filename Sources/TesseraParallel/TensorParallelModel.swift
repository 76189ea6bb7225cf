// One rank's shard of a model, usable wherever a LanguageModel is: collectives run inside its sharded linears.
import TesseraKernels
import TesseraModels

/// Rank `rank`'s shard of a Llama-family model (`TensorParallel.load`). Every rank of the group must make the same
/// calls with the same batches; each rank then returns the same full logits. A collective that fails inside the
/// forward pass is rethrown when the call returns; the shard is unusable afterwards (it throws that error again).
public final class TensorParallelModel: LanguageModel {
    /// The model with this rank's linears and head counts; its forward pass reads like the unsharded one.
    public let base: LlamaModel
    public let plan: TensorParallelPlan
    public let rank: Int
    /// Weight bytes the built layers hold, counted from their views and owned slices (compare `plannedWeights`).
    public let heldWeights: WeightShare
    let link: CollectiveLink

    init(base: LlamaModel, plan: TensorParallelPlan, rank: Int, heldWeights: WeightShare, link: CollectiveLink) {
        self.base = base; self.plan = plan; self.rank = rank; self.heldWeights = heldWeights; self.link = link
    }

    /// This rank's slice of the model.
    public var shard: TensorParallelPlan.Shard { plan[rank] }
    /// Weight bytes the plan gives this rank for the layers it holds.
    public var plannedWeights: WeightShare { shard.weights(layers: base.heldLayers) }

    public var vocabularySize: Int { base.vocabularySize }
    public var hiddenSize: Int { base.hiddenSize }
    public var layerCount: Int { base.layerCount }
    public var trainedContextLength: Int { base.trainedContextLength }
    public var kvFloatsPerPosition: Int { base.kvFloatsPerPosition }
    public var maxBatchTokens: Int { base.maxBatchTokens }
    public var weightBytes: Int { base.weightBytes }
    public var repackedWeightBytes: Int { base.repackedWeightBytes }
    public var profiler: Profiler? { base.profiler }

    public func makeCache(sequences: Int, contextLength: Int) throws -> any KVCache {
        try base.makeCache(sequences: sequences, contextLength: contextLength)
    }

    public func forward(_ batch: Batch, cache: any KVCache, logits: UnsafeMutableBufferPointer<Float>) throws {
        try communicating { try base.forward(batch, cache: cache, logits: logits) }
    }

    public func embed(_ batch: Batch, into hidden: UnsafeMutablePointer<Float>) throws {
        try base.embed(batch, into: hidden)
    }

    public func forward(layers: Range<Int>, hidden: UnsafeMutablePointer<Float>, batch: Batch,
                        cache: any KVCache) throws {
        try communicating { try base.forward(layers: layers, hidden: hidden, batch: batch, cache: cache) }
    }

    public func logits(hidden: UnsafePointer<Float>, batch: Batch, into logits: UnsafeMutablePointer<Float>) throws {
        try communicating { try base.logits(hidden: hidden, batch: batch, into: logits) }
    }

    private func communicating(_ body: () throws -> Void) throws {
        try link.throwIfFailed()
        try body()
        try link.throwIfFailed()
    }
}
