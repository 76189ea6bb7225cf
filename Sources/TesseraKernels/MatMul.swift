// y = x·Wᵀ over a batch of activation rows, decoding each weight row once per call; optionally split across threads
// and, in `.fast` mode, computed on quantized activations (FastMatMul.swift).

/// Four dot products of one activation row against four weight rows; each lane equals `dot(x, wK, count:)` exactly.
@inline(__always) func dot4(_ x: UnsafePointer<Float>, _ w0: UnsafePointer<Float>, _ w1: UnsafePointer<Float>,
                            _ w2: UnsafePointer<Float>, _ w3: UnsafePointer<Float>, count: Int) -> SIMD4<Float> {
    var a0 = SIMD16<Float>(), a1 = SIMD16<Float>(), a2 = SIMD16<Float>(), a3 = SIMD16<Float>()
    var i = 0
    while i &+ 16 <= count {
        let v = load16(x + i)
        a0 += v * load16(w0 + i)
        a1 += v * load16(w1 + i)
        a2 += v * load16(w2 + i)
        a3 += v * load16(w3 + i)
        i &+= 16
    }
    var s = SIMD4<Float>(a0.sum(), a1.sum(), a2.sum(), a3.sum())
    while i < count {
        let v = x[i]
        s += SIMD4(v * w0[i], v * w1[i], v * w2[i], v * w3[i])
        i &+= 1
    }
    return s
}

extension WeightMatrix {
    /// Floats of scratch an `.exact` single-threaded `matmul` needs for this matrix: four decoded rows.
    public var scratchCount: Int { 4 * cols }

    /// Floats of scratch `matmul` needs in `mode` on `threads` threads, for any number of activation rows:
    /// four decoded rows per thread (`.exact`), or `ActivationRows.chunk` quantized activation rows (`.fast`).
    public func scratchCount(mode: ComputeMode, threads: Int = 1) -> Int {
        let exact = max(1, threads) * scratchCount
        guard mode == .fast, let format = type.fastActivationFormat else { return exact }
        if format == .float { return 0 }
        return (ActivationRows.chunk * format.rowBytes(cols: cols) + ActivationRows.alignment) / 4
    }
}

/// `y[n × rows] = x[n × cols] · Wᵀ`.
///
/// Each weight row is read once per call (`.fast`: once per `ActivationRows.chunk` activation rows) and dotted with
/// all those rows, so a prompt pays for decoding the weights once. Results do not depend on `n` or on the thread
/// count; in `.exact` mode not on the CPU level either.
/// - Parameters:
///   - x: `n` rows of `weight.cols` floats, `xStride` apart (default `cols`).
///   - y: `n` rows of `weight.rows` floats, `yStride` apart (default `rows`).
///   - scratch: `weight.scratchCount(mode: mode, threads: pool?.threads ?? 1)` floats.
///   - mode: `.exact` float32 or `.fast` (quantized activations, see `ComputeMode`).
///   - pool: threads to split the output rows across; nil runs on the caller.
///   - accumulate: add the product to `y` (`y += x·Wᵀ`, a fused residual add) instead of overwriting it; the sums
///     equal a separate `add` of the product bit for bit.
public func matmul(_ x: UnsafePointer<Float>, rows n: Int, xStride: Int? = nil, weight w: WeightMatrix,
                   into y: UnsafeMutablePointer<Float>, yStride: Int? = nil, scratch: UnsafeMutablePointer<Float>,
                   mode: ComputeMode = .exact, pool: ThreadPool? = nil, accumulate: Bool = false) {
    let xs = xStride ?? w.cols, ys = yStride ?? w.rows
    guard n > 0 else { return }
    if mode == .fast, fastMatmul(x, rows: n, xStride: xs, weight: w, into: y, yStride: ys, scratch: scratch, pool: pool,
                                 accumulate: accumulate) {
        return
    }
    guard let pool, pool.threads > 1 else {
        exactRows(0..<w.rows, x, rows: n, xStride: xs, weight: w, into: y, yStride: ys, scratch: scratch,
                  accumulate: accumulate)
        return
    }
    let split = RowSplit(rows: w.rows, threads: pool.threads)
    pool.run(tasks: split.tasks, ExactJob(x: x, rows: n, xStride: xs, weight: w, y: y, yStride: ys, scratch: scratch,
                                          accumulate: accumulate, split: split))
}

/// An exact product's output rows in `RowSplit` ranges; each worker decodes weight rows into its own scratch.
private struct ExactJob: PoolJob {
    let x: UnsafePointer<Float>, rows: Int, xStride: Int, weight: WeightMatrix
    let y: UnsafeMutablePointer<Float>, yStride: Int, scratch: UnsafeMutablePointer<Float>, accumulate: Bool
    let split: RowSplit

    func run(task: Int, worker: Int) {
        exactRows(split.range(task), x, rows: rows, xStride: xStride, weight: weight, into: y, yStride: yStride,
                  scratch: scratch + worker &* weight.scratchCount, accumulate: accumulate)
    }
}

/// Output rows `range` of an exact product; `scratch` holds four decoded rows.
func exactRows(_ range: Range<Int>, _ x: UnsafePointer<Float>, rows n: Int, xStride xs: Int, weight w: WeightMatrix,
               into y: UnsafeMutablePointer<Float>, yStride ys: Int, scratch: UnsafeMutablePointer<Float>,
               accumulate: Bool = false) {
    let cols = w.cols
    let direct = w.floats
    @inline(__always) func row(_ r: Int, slot: Int) -> UnsafePointer<Float> {
        if let direct { return direct + r &* cols }
        let dst = scratch + slot &* cols
        w.dequantizeRow(r, into: dst)
        return UnsafePointer(dst)
    }
    var r = range.lowerBound
    while r &+ 4 <= range.upperBound {
        let w0 = row(r, slot: 0), w1 = row(r &+ 1, slot: 1), w2 = row(r &+ 2, slot: 2), w3 = row(r &+ 3, slot: 3)
        for i in 0..<n {
            let d = dot4(x + i &* xs, w0, w1, w2, w3, count: cols)
            let out = y + (i &* ys &+ r)
            if accumulate {
                out[0] += d[0]; out[1] += d[1]; out[2] += d[2]; out[3] += d[3]
            } else {
                out[0] = d[0]; out[1] = d[1]; out[2] = d[2]; out[3] = d[3]
            }
        }
        r &+= 4
    }
    while r < range.upperBound {
        let w0 = row(r, slot: 0)
        for i in 0..<n {
            let d = dot(x + i &* xs, w0, count: cols)
            if accumulate { y[i &* ys &+ r] += d } else { y[i &* ys &+ r] = d }
        }
        r &+= 1
    }
}

/// Output rows cut into up to four tasks per thread, each a multiple of 16 rows (the last takes the rest).
struct RowSplit {
    let rows: Int
    let chunk: Int
    let tasks: Int

    init(rows: Int, threads: Int) {
        self.rows = rows
        let target = max(1, threads * 4)
        chunk = max(16, (rows + target - 1) / target + 15) & ~15
        tasks = (rows + chunk - 1) / chunk
    }

    func range(_ task: Int) -> Range<Int> { (task * chunk)..<min(rows, (task + 1) * chunk) }
}
