// Sharded replacements for a model's linears: column-parallel ("all-to-sharded"), row-parallel ("sharded-to-all",
// then an all-reduce) and the vocabulary-parallel head (then an all-gather).
import TesseraKernels
import TesseraModels

/// Output features `outputs` of a linear: a row range of its weight (in place in the mapped file) and bias.
/// Needs no communication: its input is replicated, its output stays sharded.
public struct ColumnParallelLinear: Linear {
    public let local: DenseLinear      // [outputs.count × inputSize]
    /// This rank's output features among the full layer's.
    public let outputs: Range<Int>

    public init(local: DenseLinear, outputs: Range<Int>) {
        self.local = local; self.outputs = outputs
    }

    public var inputSize: Int { local.inputSize }
    public var outputSize: Int { local.outputSize }
    public var scratchCount: Int { local.scratchCount }

    public func callAsFunction(_ x: UnsafePointer<Float>, rows n: Int, into y: UnsafeMutablePointer<Float>,
                               scratch: UnsafeMutablePointer<Float>) {
        local(x, rows: n, into: y, scratch: scratch)
    }

    public var fusable: DenseLinear? { local }
    public var weightBytes: Int { local.weightBytes }
    public var repackedBytes: Int { local.repackedBytes }
}

/// Input features `inputs` of a linear: a column slice of its weight, copied into owned memory, applied to this
/// rank's slice of the activations; the partial outputs of all ranks are then summed (all-reduce) so every rank
/// ends with the full output. A bias is added once, after the sum.
public struct RowParallelLinear: Linear {
    public let local: DenseLinear      // [outputSize × inputs.count], no bias
    /// This rank's input features among the full layer's.
    public let inputs: Range<Int>
    public let bias: [Float]?          // [outputSize]
    let group: any TensorParallelGroup

    init(local: DenseLinear, inputs: Range<Int>, bias: [Float]?, group: any TensorParallelGroup) {
        self.local = local; self.inputs = inputs; self.bias = bias; self.group = group
    }

    public var inputSize: Int { local.inputSize }
    public var outputSize: Int { local.outputSize }
    public var scratchCount: Int { local.scratchCount }
    public var weightBytes: Int { local.weightBytes }
    public var repackedBytes: Int { local.repackedBytes }

    public func callAsFunction(_ x: UnsafePointer<Float>, rows n: Int, into y: UnsafeMutablePointer<Float>,
                               scratch: UnsafeMutablePointer<Float>) throws {
        local(x, rows: n, into: y, scratch: scratch)
        try group.allReduceSum(UnsafeMutableBufferPointer(start: y, count: n * outputSize))
        guard let bias else { return }
        bias.withUnsafeBufferPointer { b in
            for i in 0..<n { add(b.baseAddress!, into: y + i * outputSize, count: outputSize) }
        }
    }
}

/// The output head split by vocabulary rows: each rank computes the logits of its rows, then an all-gather gives
/// every rank the full `[n × vocabulary]` logits.
public struct VocabParallelHead: Linear {
    public let local: DenseLinear      // [vocabulary.count × inputSize]
    /// This rank's vocabulary rows.
    public let vocabulary: Range<Int>
    /// Vocabulary rows of every rank, in rank order.
    public let counts: [Int]
    let group: any TensorParallelGroup

    init(local: DenseLinear, vocabulary: Range<Int>, counts: [Int], group: any TensorParallelGroup) {
        self.local = local; self.vocabulary = vocabulary; self.counts = counts; self.group = group
    }

    public var inputSize: Int { local.inputSize }
    public var outputSize: Int { counts.reduce(0, +) }
    /// The local product's scratch, which also stages one row of local logits for the gather.
    public var scratchCount: Int { max(local.scratchCount, vocabulary.count) }
    public var weightBytes: Int { local.weightBytes }
    public var repackedBytes: Int { local.repackedBytes }

    public func callAsFunction(_ x: UnsafePointer<Float>, rows n: Int, into y: UnsafeMutablePointer<Float>,
                               scratch: UnsafeMutablePointer<Float>) throws {
        let full = outputSize, mine = vocabulary.count
        // Local logits [n × mine] go to the tail of y; gathering row i into y[i·full ..< (i+1)·full] then never
        // reaches local rows after i, since (i+1)·full ≤ n·full − (n−1−i)·mine.
        let tail = y + n * (full - mine)
        local(x, rows: n, into: tail, scratch: scratch)
        for i in 0..<n {
            scratch.update(from: tail + i * mine, count: mine)   // the gather's input must not overlap its output
            try group.allGather(UnsafeBufferPointer(start: scratch, count: mine),
                                into: UnsafeMutableBufferPointer(start: y + i * full, count: full), counts: counts)
        }
    }
}

/// Weight bytes this rank owns (a row-parallel slice), 64-byte aligned, freed with the last linear using them.
final class OwnedWeights: @unchecked Sendable {
    let bytes: UnsafeMutableRawBufferPointer

    init(count: Int) {
        bytes = .allocate(byteCount: max(count, 1), alignment: 64)
    }

    var count: Int { bytes.count }

    deinit { bytes.deallocate() }
}
