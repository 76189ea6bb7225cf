// Linear layers as the model sees them: a protocol, so parallel plans can swap in sharded implementations.
import TesseraKernels

/// `y[n × outputSize] = x[n × inputSize] · Wᵀ (+ bias)`. A tensor-parallel plan replaces a model's dense linears
/// by sharded ones conforming to this protocol; any communication happens inside those, never in the model. A
/// product whose communication fails throws (the model's forward pass rethrows it).
public protocol Linear: Sendable {
    var inputSize: Int { get }
    var outputSize: Int { get }
    /// Floats of scratch `callAsFunction` needs.
    var scratchCount: Int { get }
    func callAsFunction(_ x: UnsafePointer<Float>, rows n: Int, into y: UnsafeMutablePointer<Float>,
                        scratch: UnsafeMutablePointer<Float>) throws
    /// `y += x·Wᵀ (+ bias)`: a residual add. Dense linears fold it into the product's stores; the default computes
    /// into `temp` (`n × outputSize` floats) and adds.
    func accumulate(_ x: UnsafePointer<Float>, rows n: Int, into y: UnsafeMutablePointer<Float>,
                    temp: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) throws
    /// The dense product behind this linear when it needs no communication (a whole matrix or a column shard), so a
    /// model may fuse it with others reading the same input; nil otherwise.
    var fusable: DenseLinear? { get }
    /// Bytes of the weights this linear reads (its encoded matrix and any repacked copy).
    var weightBytes: Int { get }
    /// Bytes of the repacked copy alone (owned memory, beside or instead of the mapped rows).
    var repackedBytes: Int { get }
}

extension Linear {
    public func accumulate(_ x: UnsafePointer<Float>, rows n: Int, into y: UnsafeMutablePointer<Float>,
                           temp: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) throws {
        try accumulateThrough(temp, x, rows: n, into: y, scratch: scratch)
    }

    /// `y += x·Wᵀ` as a product into `temp`, then an add.
    func accumulateThrough(_ temp: UnsafeMutablePointer<Float>, _ x: UnsafePointer<Float>, rows n: Int,
                           into y: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) throws {
        try self(x, rows: n, into: temp, scratch: scratch)
        add(temp, into: y, count: n * outputSize)
    }

    public var fusable: DenseLinear? { nil }

    public var repackedBytes: Int { fusable?.weight.packed?.byteCount ?? 0 }
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
        addBias(rows: n, into: y)
    }

    /// Without a bias, the product adds itself to `y` in its stores (equal to a separate add bit for bit).
    public func accumulate(_ x: UnsafePointer<Float>, rows n: Int, into y: UnsafeMutablePointer<Float>,
                           temp: UnsafeMutablePointer<Float>, scratch: UnsafeMutablePointer<Float>) throws {
        guard bias == nil else {   // y + (p + b) must stay bit-identical to the unfused path
            try accumulateThrough(temp, x, rows: n, into: y, scratch: scratch)
            return
        }
        matmul(x, rows: n, weight: weight, into: y, scratch: scratch, mode: compute.mode, pool: compute.pool,
               accumulate: true)
    }

    public var fusable: DenseLinear? { self }

    public var weightBytes: Int { weight.heldBytes }

    /// Adds the bias (if any) to `n` output rows.
    public func addBias(rows n: Int, into y: UnsafeMutablePointer<Float>) {
        guard let bias else { return }
        bias.withUnsafeBufferPointer { b in
            for i in 0..<n { add(b.baseAddress!, into: y + i * weight.rows, count: weight.rows) }
        }
    }
}
