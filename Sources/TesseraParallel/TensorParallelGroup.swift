// What sharded layers need from the ranks that share them: two collectives over float32 buffers.
import TesseraKernels

/// The ranks that hold one model's layers side by side (a tensor-parallel group). Every rank calls the same
/// operations in the same order with matching counts. Conformances: `CommunicatorGroup` (MPI) and `LocalGroup`
/// (threads of one process, for tests).
public protocol TensorParallelGroup: AnyObject, Sendable {
    /// This rank's index, `0..<size`.
    var rank: Int { get }
    /// Number of ranks.
    var size: Int { get }
    /// Element-wise sum of every rank's `buffer`, in place. Added in rank order, `((r0 + r1) + r2) + …`, so every
    /// rank gets the same bits and runs are reproducible.
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws
    /// Concatenates every rank's `input` into `output` in rank order, rank r contributing `counts[r]` floats.
    func allGather(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>, counts: [Int]) throws
}

/// `out = inputs(0) + inputs(1) + … + inputs(size - 1)`, element-wise, added in that order.
/// `out` must not alias any input.
func sumInRankOrder(_ size: Int, count: Int, into out: UnsafeMutablePointer<Float>,
                    _ inputs: (Int) -> UnsafePointer<Float>) {
    guard count > 0 else { return }
    out.update(from: inputs(0), count: count)
    for r in 1..<max(size, 1) { add(inputs(r), into: out, count: count) }
}
