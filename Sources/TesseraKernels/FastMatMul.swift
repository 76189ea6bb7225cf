// The `.fast` product: quantize the activation rows once, then run the C tile kernels over row ranges.
import CTesseraKernels

/// Where quantized activation rows go in a product's scratch.
public enum ActivationRows {
    /// Activation rows a `.fast` product quantizes and multiplies at a time (its scratch holds this many).
    public static let chunk = 64
    /// Byte alignment of the first row (rows are a multiple of 64 bytes long).
    static let alignment = 64

    static func aligned(_ scratch: UnsafeMutablePointer<Float>) -> UnsafeMutableRawPointer {
        let address = Int(bitPattern: scratch)
        return UnsafeMutableRawPointer(scratch) + ((alignment - address % alignment) % alignment)
    }
}

/// The `.fast` product; false (nothing written) when the weight type has no fast kernel.
func fastMatmul(_ x: UnsafePointer<Float>, rows n: Int, xStride xs: Int, weight w: WeightMatrix,
                into y: UnsafeMutablePointer<Float>, yStride ys: Int, scratch: UnsafeMutablePointer<Float>,
                pool: ThreadPool?, accumulate: Bool = false) -> Bool {
    guard let format = w.type.fastActivationFormat else { return false }
    if format == .float {
        run(weight: w, activations: UnsafeRawPointer(x), stride: 4 &* xs, rows: n, into: y, yStride: ys, pool: pool,
            accumulate: accumulate)
        return true
    }
    let dst = ActivationRows.aligned(scratch), stride = format.rowBytes(cols: w.cols)
    var start = 0
    while start < n {
        let count = min(ActivationRows.chunk, n - start)
        quantize(x + start &* xs, rows: count, xStride: xs, cols: w.cols, format: format, into: dst, stride: stride,
                 pool: pool)
        run(weight: w, activations: UnsafeRawPointer(dst), stride: stride, rows: count, into: y + start &* ys,
            yStride: ys, pool: pool, accumulate: accumulate)
        start &+= count
    }
    return true
}

/// Quantizes activation rows, in slices across the pool when there are enough of them. With `norm`, each row is
/// RMS-normalised first into its thread's row of `rowTemps` (`threads × cols` floats) and quantized from there, so
/// normalised rows are never written out whole (the fused products' input preparation).
func quantize(_ x: UnsafePointer<Float>, rows n: Int, xStride xs: Int, cols: Int, format: ActivationFormat,
              into dst: UnsafeMutableRawPointer, stride: Int, pool: ThreadPool?, norm: FusedNorm? = nil,
              rowTemps: UnsafeMutablePointer<Float>? = nil) {
    let job = QuantizeJob(x: x, rows: n, xStride: xs, cols: cols, format: format, dst: dst, stride: stride, per: n,
                          norm: norm, rowTemps: rowTemps)
    guard let pool, pool.threads > 1, n >= 4 * pool.threads else {
        job.run(task: 0, worker: 0)
        return
    }
    var split = job
    split.per = (n + pool.threads - 1) / pool.threads
    pool.run(tasks: pool.threads, split)
}

/// Rows `per · task ..< per · (task + 1)` of a quantization (normalised first with `norm`).
private struct QuantizeJob: PoolJob {
    let x: UnsafePointer<Float>, rows: Int, xStride: Int, cols: Int, format: ActivationFormat
    let dst: UnsafeMutableRawPointer, stride: Int
    var per: Int
    let norm: FusedNorm?, rowTemps: UnsafeMutablePointer<Float>?

    func run(task: Int, worker: Int) {
        let lo = task * per, count = min(rows, lo + per) - lo
        guard count > 0 else { return }
        guard let norm, let rowTemps else {
            format.quantize(x + lo &* xStride, rows: count, cols: cols, xStride: xStride, into: dst + lo &* stride,
                            rowStride: stride)
            return
        }
        let temp = rowTemps + worker &* cols
        for i in lo..<(lo + count) {
            rmsNorm(x + i &* xStride, weight: norm.weight, count: cols, eps: norm.eps, into: temp)
            format.quantize(temp, rows: 1, cols: cols, into: dst + i &* stride, rowStride: stride)
        }
    }
}

/// All output rows of `n` prepared activation rows through the C kernels (packed rows where the matrix has them),
/// split across the pool in ranges of whole 16-row groups.
private func run(weight w: WeightMatrix, activations: UnsafeRawPointer, stride: Int, rows n: Int,
                 into y: UnsafeMutablePointer<Float>, yStride ys: Int, pool: ThreadPool?, accumulate: Bool) {
    var args = w.productArguments(activations: activations, stride: stride, rows: n, into: y, yStride: ys,
                                  accumulate: accumulate)
    guard let pool, pool.threads > 1 else {
        _ = tk_matmul(&args, 0, Int64(w.rows))
        return
    }
    let split = RowSplit(rows: w.rows, threads: pool.threads)
    withUnsafePointer(to: &args) { a in pool.run(tasks: split.tasks, ProductJob(arguments: a, split: split)) }
}

/// One product's output rows in `RowSplit` ranges, a range per task.
struct ProductJob: PoolJob {
    let arguments: UnsafePointer<tk_matmul_args>
    let split: RowSplit

    func run(task: Int, worker: Int) {
        let range = split.range(task)
        _ = tk_matmul(arguments, Int64(range.lowerBound), Int64(range.upperBound))
    }
}

extension WeightMatrix {
    /// The C kernels' description of a product of `n` prepared activation rows with this matrix.
    func productArguments(activations: UnsafeRawPointer, stride: Int, rows n: Int, into y: UnsafeMutablePointer<Float>,
                          yStride ys: Int, accumulate: Bool) -> tk_matmul_args {
        tk_matmul_args(type: type.rawValue, weights: base, row_bytes: rowBytes, cols: Int64(cols),
                       x: activations, x_stride: stride, n: Int64(n), y: y, y_stride: Int64(ys),
                       packed: packed.map { UnsafeRawPointer($0.base) }, packed_rows: Int64(packed?.rows ?? 0),
                       accumulate: accumulate ? 1 : 0)
    }
}
