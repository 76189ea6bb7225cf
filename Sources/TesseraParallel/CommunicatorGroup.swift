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
    /// How partial sums travel (rank-order sums only; MPI's all-reduce adds float32).
    public let wire: WireFormat
    public var rank: Int { communicator.rank }
    public var size: Int { communicator.size }
    private var staging: [Float] = []      // (size × count,) every rank's buffer, for rank-order sums
    private var encoded: [UInt8] = []      // (size + 1) wire buffers: every rank's, then this rank's own

    public init(_ communicator: Communicator, reduction: Reduction = .rankOrder, wire: WireFormat = .f32) throws {
        guard wire == .f32 || reduction == .rankOrder else {
            throw TensorParallelError.groupMismatch("MPI's all-reduce adds float32: --wire \(wire) needs rank-order sums")
        }
        self.communicator = communicator; self.reduction = reduction; self.wire = wire
    }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        let n = buffer.count
        guard size > 1, n > 0 else { return }
        if reduction == .mpi { return try communicator.allReduce(buffer, op: .sum) }
        if staging.count < size * n { staging = [Float](repeating: 0, count: size * n) }
        if wire != .f32 { return try allReduceEncoded(buffer) }
        try staging.withUnsafeMutableBufferPointer { all in
            let gathered = UnsafeMutableBufferPointer(rebasing: all[0 ..< size * n])
            try communicator.allGather(UnsafeBufferPointer(buffer), into: gathered)
            sumInRankOrder(size, count: n, into: buffer.baseAddress!) { UnsafePointer(all.baseAddress! + $0 * n) }
        }
    }

    /// Rank-order sum of buffers that travel encoded: every rank decodes every buffer, its own included, so the
    /// sum is the same on every rank.
    private func allReduceEncoded(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        let n = buffer.count, b = wire.bytes(count: n)
        if encoded.count < (size + 1) * b { encoded = [UInt8](repeating: 0, count: (size + 1) * b) }
        try encoded.withUnsafeMutableBufferPointer { bytes in
            let mine = bytes.baseAddress! + size * b
            wire.encode(buffer.baseAddress!, count: n, into: mine)
            try communicator.allGather(UnsafeBufferPointer(start: mine, count: b),
                                       into: UnsafeMutableBufferPointer(rebasing: bytes[0 ..< size * b]))
            try staging.withUnsafeMutableBufferPointer { all in
                for r in 0..<size { wire.decode(bytes.baseAddress! + r * b, count: n, into: all.baseAddress! + r * n) }
                sumInRankOrder(size, count: n, into: buffer.baseAddress!) { UnsafePointer(all.baseAddress! + $0 * n) }
            }
        }
    }

    public func allGather(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>,
                          counts: [Int]) throws {
        try communicator.allGather(input, into: output, counts: counts)
    }
}
