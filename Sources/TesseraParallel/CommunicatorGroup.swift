// The MPI adapter: a tensor-parallel group over a TesseraCollectives communicator.
import TesseraCollectives

/// A tensor-parallel group over an MPI communicator, usually `ProcessGroups.tensorParallel`.
/// Not thread-safe: one rank's forward pass at a time (it reuses a staging buffer).
public final class CommunicatorGroup: TensorParallelGroup, @unchecked Sendable {
    /// How `allReduceSum` adds.
    public enum Reduction: Sendable {
        /// All-gather every rank's buffer, then add in rank order: bit-identical on every rank and to `LocalGroup`,
        /// at `size ×` the traffic of an all-reduce. The default (tensor-parallel buffers are activations, small).
        case rankOrder
        /// `MPI_Allreduce`: less traffic for large buffers; the summation order is the MPI library's.
        case mpi
    }

    public let communicator: Communicator
    public let reduction: Reduction
    public var rank: Int { communicator.rank }
    public var size: Int { communicator.size }
    private var staging: [Float] = []      // (size × count,) every rank's buffer, for rank-order sums

    public init(_ communicator: Communicator, reduction: Reduction = .rankOrder) {
        self.communicator = communicator; self.reduction = reduction
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        let n = buffer.count
        guard size > 1, n > 0 else { return }
        if reduction == .mpi { return try communicator.allReduce(buffer, op: .sum) }
        if staging.count < size * n { staging = [Float](repeating: 0, count: size * n) }
        try staging.withUnsafeMutableBufferPointer { all in
            let gathered = UnsafeMutableBufferPointer(rebasing: all[0 ..< size * n])
            try communicator.allGather(UnsafeBufferPointer(buffer), into: gathered)
            sumInRankOrder(size, count: n, into: buffer.baseAddress!) { UnsafePointer(all.baseAddress! + $0 * n) }
        }
    }

    public func allGather(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>,
                          counts: [Int]) throws {
        try communicator.allGather(input, into: output, counts: counts)
    }
}
