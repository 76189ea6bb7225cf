// Fused operators: several products over the same input as one job (Q/K/V; gate/up with SiLU·mul), with the
// RMSNorm folded into the preparation of the input rows.
import CTesseraKernels

/// RMSNorm applied to a product's input rows while they are prepared (`weight ⊙ x / rms(x)`).
public struct FusedNorm {
    public let weight: UnsafePointer<Float>
    public let eps: Float
    public init(weight: UnsafePointer<Float>, eps: Float) { self.weight = weight; self.eps = eps }
}

/// Up to three output buffers of a fused product, one per matrix (`n` rows of that matrix's `rows` floats each).
public struct FusedOutputs {
    public var y0: UnsafeMutablePointer<Float>
    public var y1: UnsafeMutablePointer<Float>?
    public var y2: UnsafeMutablePointer<Float>?
    public init(_ y0: UnsafeMutablePointer<Float>, _ y1: UnsafeMutablePointer<Float>? = nil,
                _ y2: UnsafeMutablePointer<Float>? = nil) {
        self.y0 = y0; self.y1 = y1; self.y2 = y2
    }
    @inline(__always) subscript(_ i: Int) -> UnsafeMutablePointer<Float> { i == 0 ? y0 : i == 1 ? y1! : y2! }
}

/// The products of two or three weight matrices that read the same activation rows, computed as one operator: the
/// rows are normalised (optionally) and prepared — quantized for `.fast` kernels — once, in one pass, and one
/// dispatch to the thread pool covers every output row of every matrix, instead of one preparation and one
/// dispatch per matrix. This is "one product over the concatenated Q/K/V weights" without copying the weights:
/// the matrices stay in place in the mapped file, and their row ranges are simply one job's tasks.
///
/// With `.siluMul` (exactly two matrices, gate then up), each task computes the same row range of both and applies
/// `silu(gate) · up` to it while the rows are in cache, leaving the result in output 0.
///
/// Every output equals what `matmul` (and a separate `rmsNorm`, `siluMul`) would write, bit for bit: fusion changes
/// the schedule, never the arithmetic.
public struct FusedProducts: @unchecked Sendable {
    public enum Epilogue: Sendable { case none, siluMul }

    public let parts: [WeightMatrix]
    public let epilogue: Epilogue
    public let compute: ComputeOptions
    /// The activation format all parts' `.fast` kernels take; nil computes `.exact`.
    let format: ActivationFormat?
    /// Output rows `lo..<hi` of matrix `part`.
    struct Segment { let part: Int, lo: Int, hi: Int }
    /// The job's tasks, each one or more segments; with `.siluMul`, ranges of the gate matrix (part 0).
    let tasks: [[Segment]]
    /// Tasks per thread: enough to balance uneven progress, few enough that small products are not all overhead.
    static let tasksPerThread = 2

    /// nil when the matrices cannot share one preparation: different row lengths or activation formats, fewer than
    /// two or more than three of them, or `.siluMul` on matrices of different shapes.
    public init?(_ parts: [WeightMatrix], compute: ComputeOptions, epilogue: Epilogue = .none) {
        guard (2...3).contains(parts.count), let first = parts.first,
              parts.allSatisfy({ $0.cols == first.cols }) else { return nil }
        if epilogue == .siluMul {
            guard parts.count == 2, parts[1].rows == first.rows else { return nil }
        }
        if compute.mode == .fast {
            let formats = parts.map { $0.type.fastActivationFormat }
            guard formats.allSatisfy({ $0 == formats[0] }) else { return nil }
            format = formats[0]
        } else {
            format = nil
        }
        self.parts = parts.map { $0.prepared(for: compute.mode) }
        self.epilogue = epilogue; self.compute = compute
        // Tasks cut the matrices' 16-row groups, in order, into about `tasksPerThread` runs per thread; a run may span
        // matrices (small Q/K/V of a small model do not become many tiny tasks), but every segment starts on its own
        // matrix's group boundary, where the repacked rows begin.
        var groups: [(part: Int, lo: Int, hi: Int)] = []
        for (p, w) in parts.enumerated() where epilogue == .none || p == 0 {
            for lo in stride(from: 0, to: w.rows, by: 16) { groups.append((p, lo, min(w.rows, lo + 16))) }
        }
        let pieces = max(1, min(groups.count, compute.threads * FusedProducts.tasksPerThread))
        var tasks: [[Segment]] = []
        for piece in 0..<pieces {
            var segments: [Segment] = []
            for g in groups[(piece * groups.count / pieces)..<((piece + 1) * groups.count / pieces)] {
                if let last = segments.last, last.part == g.part, last.hi == g.lo {
                    segments[segments.count - 1] = Segment(part: g.part, lo: last.lo, hi: g.hi)
                } else {
                    segments.append(Segment(part: g.part, lo: g.lo, hi: g.hi))
                }
            }
            tasks.append(segments)
        }
        self.tasks = tasks
    }

    public var inputSize: Int { parts[0].cols }

    /// Floats of scratch a call needs: the prepared activation rows (or each thread's decoded weight rows) and one
    /// normalised row per thread.
    public var scratchCount: Int {
        parts.map { $0.scratchCount(mode: compute.mode, threads: compute.threads) }.max()! + compute.threads * inputSize
    }

    /// Writes part p's product of the `n` rows of `x` (normalised by `norm` first, if given) into `outputs[p]`.
    /// `normed` (n × cols floats) receives the normalised rows when the products need them as floats (`.exact`
    /// and float-activation kernels); quantized kernels normalise each row in a per-thread buffer instead.
    public func callAsFunction(_ x: UnsafePointer<Float>, rows n: Int, norm: FusedNorm?,
                               normed: UnsafeMutablePointer<Float>, outputs: FusedOutputs,
                               scratch: UnsafeMutablePointer<Float>) {
        guard n > 0 else { return }
        let cols = inputSize, threads = compute.threads
        let rowTemps = scratch, work = scratch + threads &* cols
        guard let format, format != .float else {
            var input = x
            if let norm {
                for i in 0..<n { rmsNorm(x + i &* cols, weight: norm.weight, count: cols, eps: norm.eps, into: normed + i &* cols) }
                input = UnsafePointer(normed)
            }
            let source: Source = format == .float ? .prepared(UnsafeRawPointer(input), stride: 4 &* cols)
                                                   : .exact(input, work: work)
            runTasks(Job(products: self, source: source, rows: n, rowOffset: 0, outputs: outputs))
            return
        }
        let dst = ActivationRows.aligned(work), stride = format.rowBytes(cols: cols)
        var start = 0
        while start < n {
            let count = min(ActivationRows.chunk, n - start)
            quantize(x + start &* cols, rows: count, xStride: cols, cols: cols, format: format, into: dst,
                     stride: stride, pool: compute.pool, norm: norm, rowTemps: rowTemps)
            runTasks(Job(products: self, source: .prepared(UnsafeRawPointer(dst), stride: stride), rows: count,
                         rowOffset: start, outputs: outputs))
            start &+= count
        }
    }

    /// What the products read: float rows for the exact kernels (with per-worker scratch for decoded weight rows),
    /// or rows prepared for the `.fast` kernels.
    private enum Source {
        case exact(UnsafePointer<Float>, work: UnsafeMutablePointer<Float>)
        case prepared(UnsafeRawPointer, stride: Int)
    }

    /// The tasks of one call over `rows` activation rows (from row `rowOffset` of the outputs).
    private struct Job: PoolJob {
        let products: FusedProducts
        let source: Source
        let rows: Int
        let rowOffset: Int
        let outputs: FusedOutputs

        func run(task t: Int, worker: Int) {
            for segment in products.tasks[t] { run(segment, worker: worker) }
        }

        @inline(__always)
        private func run(_ task: Segment, worker: Int) {
            let w = products.parts[task.part], y = outputs[task.part] + rowOffset &* w.rows
            product(w, task.lo, task.hi, y, worker)
            guard products.epilogue == .siluMul else { return }
            let up = products.parts[1], u = outputs[1] + rowOffset &* up.rows
            product(up, task.lo, task.hi, u, worker)
            for i in 0..<rows {
                siluMul(y + (i &* w.rows &+ task.lo), u + (i &* w.rows &+ task.lo), count: task.hi &- task.lo,
                        mode: products.compute.mode)
            }
        }

        @inline(__always)
        private func product(_ w: WeightMatrix, _ lo: Int, _ hi: Int, _ y: UnsafeMutablePointer<Float>, _ worker: Int) {
            switch source {
            case .exact(let input, let work):
                exactRows(lo..<hi, input, rows: rows, xStride: w.cols, weight: w, into: y, yStride: w.rows,
                          scratch: work + worker &* w.scratchCount)
            case .prepared(let activations, let stride):
                var a = w.productArguments(activations: activations, stride: stride, rows: rows, into: y,
                                           yStride: w.rows, accumulate: false)
                _ = tk_matmul(&a, Int64(lo), Int64(hi))
            }
        }
    }

    private func runTasks(_ job: Job) {
        if let pool = compute.pool, pool.threads > 1 {
            pool.run(tasks: tasks.count, job)
        } else {
            for t in 0..<tasks.count { job.run(task: t, worker: 0) }
        }
    }
}
