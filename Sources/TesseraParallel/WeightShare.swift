// How many weight bytes one tensor-parallel rank holds, by kind of storage.

/// Weight bytes of one rank: planned from the tensor table (`TensorParallelPlan.Shard.weights`) or counted from the
/// built layers (`TensorParallelShard.heldWeights`).
public struct WeightShare: Sendable, Equatable, CustomStringConvertible {
    /// Column-parallel slices (q, k, v, gate, up rows), in place in the mapped file.
    public var mapped = 0
    /// Row-parallel slices (o, down columns), copied into memory the rank owns.
    public var owned = 0
    /// This rank's rows of the output head, in place.
    public var head = 0
    /// Norm weights, biases and rotary factors, decoded to float32 (every rank has them all).
    public var vectors = 0
    /// The whole token-embedding table: replicated, but only looked-up rows are read (not part of `total`).
    public var embeddingTable = 0

    public init() {}

    /// Bytes the rank reads for its share of the work: `mapped + owned + head + vectors`.
    public var total: Int { mapped + owned + head + vectors }

    public var description: String {
        "\(mb(total)) (q/k/v/gate/up \(mb(mapped)) mapped, o/down \(mb(owned)) owned, head \(mb(head)), "
            + "vectors \(mb(vectors)); embedding table \(mb(embeddingTable)) read by row)"
    }

    private func mb(_ bytes: Int) -> String {
        let tenths = (bytes * 10 + (1 << 19)) >> 20
        return "\(tenths / 10).\(tenths % 10) MiB"
    }
}
