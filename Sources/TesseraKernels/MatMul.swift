// y = x·Wᵀ over a batch of activation rows, decoding each weight row once per call.

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
    /// Floats of scratch `matmul` needs for this matrix: four decoded rows.
    public var scratchCount: Int { 4 * cols }
}

/// `y[n × rows] = x[n × cols] · Wᵀ`.
///
/// Each weight row is decoded once (F32 rows are read in place) and dotted with all `n` activation rows, so a
/// prompt of `n` tokens pays for decoding the weights once. Results do not depend on `n`.
/// - Parameters:
///   - x: `n` rows of `weight.cols` floats, `xStride` apart (default `cols`).
///   - y: `n` rows of `weight.rows` floats, `yStride` apart (default `rows`).
///   - scratch: `weight.scratchCount` floats.
public func matmul(_ x: UnsafePointer<Float>, rows n: Int, xStride: Int? = nil, weight w: WeightMatrix,
                   into y: UnsafeMutablePointer<Float>, yStride: Int? = nil, scratch: UnsafeMutablePointer<Float>) {
    let cols = w.cols, xs = xStride ?? cols, ys = yStride ?? w.rows
    let direct = w.floats
    @inline(__always) func row(_ r: Int, slot: Int) -> UnsafePointer<Float> {
        if let direct { return direct + r &* cols }
        let dst = scratch + slot &* cols
        w.dequantizeRow(r, into: dst)
        return UnsafePointer(dst)
    }
    var r = 0
    while r &+ 4 <= w.rows {
        let w0 = row(r, slot: 0), w1 = row(r &+ 1, slot: 1), w2 = row(r &+ 2, slot: 2), w3 = row(r &+ 3, slot: 3)
        for i in 0..<n {
            let d = dot4(x + i &* xs, w0, w1, w2, w3, count: cols)
            let out = y + (i &* ys &+ r)
            out[0] = d[0]; out[1] = d[1]; out[2] = d[2]; out[3] = d[3]
        }
        r &+= 4
    }
    while r < w.rows {
        let w0 = row(r, slot: 0)
        for i in 0..<n { y[i &* ys &+ r] = dot(x + i &* xs, w0, count: cols) }
        r &+= 1
    }
}
