// Linear layers as the model sees them: a protocol, so parallel plans can swap in sharded implementations.
import TesseraKernels

/// `y[n × outputSize] = x[n × inputSize] · Wᵀ (+ bias)`. A tensor-parallel plan replaces a model's dense linears
/// by sharded ones conforming to this protocol; any communication happens inside those, never in the model.
public protocol Linear: Sendable {
    var inputSize: Int { get }
    var outputSize: Int { get }
    /// Floats of scratch `callAsFunction` needs.
    var scratchCount: Int { get }
    func callAsFunction(_ x: UnsafePointer<Float>, rows n: Int, into y: UnsafeMutablePointer<Float>,
                        scratch: UnsafeMutablePointer<Float>)
}

/// A whole weight matrix (in place in the checkpoint) with an optional bias.
public struct DenseLinear: Linear {
    public let weight: WeightMatrix    // [outputSize × inputSize]
    public let bias: [Float]?          // [outputSize]
    /// Exact or fast arithmetic, and the threads the product splits its rows across.
    public let compute: ComputeOptions

    /// `.fast` compute repacks Q4_0/Q4_1/Q8_0 weights once, here (`WeightMatrix.prepared(for:)`).
    public init(weight: WeightMatrix, bias: [Float]? = nil, compute: ComputeOptions = .exact) {
        self.weight = weight.prepared(for: compute.mode); self.bias = bias; self.compute = compute
    }

    public var inputSize: Int { weight.cols }
    public var outputSize: Int { weight.rows }
    public var scratchCount: Int { weight.scratchCount(mode: compute.mode, threads: compute.threads) }

    public func callAsFunction(_ x: UnsafePointer<Float>, rows n: Int, into y: UnsafeMutablePointer<Float>,
                               scratch: UnsafeMutablePointer<Float>) {
        matmul(x, rows: n, weight: weight, into: y, scratch: scratch, mode: compute.mode, pool: compute.pool)
        guard let bias else { return }
        bias.withUnsafeBufferPointer { b in
            for i in 0..<n { add(b.baseAddress!, into: y + i * weight.rows, count: weight.rows) }
        }
    }
}
