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
    /// The job's tasks: (part, output row range); with `.siluMul`, ranges of the gate matrix (part 0).
    let tasks: [(part: Int, lo: Int, hi: Int)]

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
        var tasks: [(part: Int, lo: Int, hi: Int)] = []
        for (p, w) in parts.enumerated() where epilogue == .none || p == 0 {
            let split = RowSplit(rows: w.rows, threads: compute.threads)
            for t in 0..<split.tasks { let r = split.range(t); tasks.append((p, r.lowerBound, r.upperBound)) }
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
            if format == .float {
                runTasks(rows: n, rowOffset: 0, outputs: outputs) { w, lo, hi, y, _ in
                    var a = w.productArguments(activations: UnsafeRawPointer(input), stride: 4 &* cols, rows: n,
                                               into: y, yStride: w.rows, accumulate: false)
                    _ = tk_matmul(&a, Int64(lo), Int64(hi))
                }
            } else {
                runTasks(rows: n, rowOffset: 0, outputs: outputs) { w, lo, hi, y, worker in
                    exactRows(lo..<hi, input, rows: n, xStride: cols, weight: w, into: y, yStride: w.rows,
                              scratch: work + worker &* w.scratchCount)
                }
            }
            return
        }
        let dst = ActivationRows.aligned(work), stride = format.rowBytes(cols: cols)
        var start = 0
        while start < n {
            let count = min(ActivationRows.chunk, n - start)
            prepare(x + start &* cols, rows: count, cols: cols, norm: norm, format: format, into: dst, stride: stride,
                    rowTemps: rowTemps)
            runTasks(rows: count, rowOffset: start, outputs: outputs) { w, lo, hi, y, _ in
                var a = w.productArguments(activations: UnsafeRawPointer(dst), stride: stride, rows: count,
                                           into: y, yStride: w.rows, accumulate: false)
                _ = tk_matmul(&a, Int64(lo), Int64(hi))
            }
            start &+= count
        }
    }

    /// Runs every task on the pool: `product(weight, lo, hi, output of rows rowOffset…, worker)`, then the epilogue.
    @inline(__always)
    private func runTasks(rows n: Int, rowOffset: Int, outputs: FusedOutputs,
                          _ product: (WeightMatrix, Int, Int, UnsafeMutablePointer<Float>, Int) -> Void) {
        if let pool = compute.pool, pool.threads > 1 {
            pool.run(tasks: tasks.count) { t, worker in
                runTask(t, worker: worker, rows: n, rowOffset: rowOffset, outputs: outputs, product)
            }
        } else {
            for t in 0..<tasks.count { runTask(t, worker: 0, rows: n, rowOffset: rowOffset, outputs: outputs, product) }
        }
    }

    @inline(__always)
    private func runTask(_ t: Int, worker: Int, rows n: Int, rowOffset: Int, outputs: FusedOutputs,
                         _ product: (WeightMatrix, Int, Int, UnsafeMutablePointer<Float>, Int) -> Void) {
        let task = tasks[t]
        let w = parts[task.part], y = outputs[task.part] + rowOffset &* w.rows
        product(w, task.lo, task.hi, y, worker)
        guard epilogue == .siluMul else { return }
        let up = parts[1], u = outputs[1] + rowOffset &* up.rows
        product(up, task.lo, task.hi, u, worker)
        for i in 0..<n {
            siluMul(y + (i &* w.rows &+ task.lo), u + (i &* w.rows &+ task.lo), count: task.hi &- task.lo,
                    mode: compute.mode)
        }
    }

    /// Normalises (if asked) and quantizes `n` rows, each through its thread's row buffer, split across the pool
    /// when there are enough rows.
    private func prepare(_ x: UnsafePointer<Float>, rows n: Int, cols: Int, norm: FusedNorm?, format: ActivationFormat,
                         into dst: UnsafeMutableRawPointer, stride: Int, rowTemps: UnsafeMutablePointer<Float>) {
        guard let norm else {
            quantize(x, rows: n, xStride: cols, cols: cols, format: format, into: dst, stride: stride, pool: compute.pool)
            return
        }
        guard let pool = compute.pool, pool.threads > 1, n >= 4 * pool.threads else {
            normalizeAndQuantize(x, 0..<n, cols: cols, norm: norm, format: format, into: dst, stride: stride,
                                 temp: rowTemps)
            return
        }
        let per = (n + pool.threads - 1) / pool.threads
        pool.run(tasks: pool.threads) { t, worker in
            normalizeAndQuantize(x, min(n, t * per)..<min(n, (t + 1) * per), cols: cols, norm: norm, format: format,
                                 into: dst, stride: stride, temp: rowTemps + worker &* cols)
        }
    }

    @inline(__always)
    private func normalizeAndQuantize(_ x: UnsafePointer<Float>, _ rows: Range<Int>, cols: Int, norm: FusedNorm,
                                      format: ActivationFormat, into dst: UnsafeMutableRawPointer, stride: Int,
                                      temp: UnsafeMutablePointer<Float>) {
        for i in rows {
            rmsNorm(x + i &* cols, weight: norm.weight, count: cols, eps: norm.eps, into: temp)
            format.quantize(temp, rows: 1, cols: cols, into: dst + i &* stride, rowStride: stride)
        }
    }
}
