// INT8 (Q8) KV cache rows and attention over them: partial results with an online softmax (what `OnlineAttention`
// runs per head and split), and reference-style whole-head wrappers the tests use.
import CTesseraKernels

/// One cached position (keys or values) of `kvDim = kvHeads · headDim` floats stored in 8 bits:
/// `q: int8[kvDim] | d: float[kvDim / B]` with x ≈ d·q per block of B elements (B = 32 when `headDim` is a multiple
/// of 32, else `headDim`, so a block never spans two heads), padded to a multiple of 16 bytes.
public enum KVRowQ8 {
    /// Elements per scale, B.
    public static func blockSize(headDim: Int) -> Int { headDim % 32 == 0 ? 32 : headDim }

    /// Bytes of one row (a multiple of 16).
    public static func rowBytes(kvDim: Int, headDim: Int) -> Int {
        Int(tk_kv_q8_row_bytes(Int64(kvDim), Int32(headDim)))
    }

    /// Quantizes `x[kvDim]` into one row of `rowBytes` bytes: per block d = max|x| / 127,
    /// q = round-to-nearest-even(x / d) (0 when d = 0). Bit-identical at every CPU level.
    public static func quantize(_ x: UnsafePointer<Float>, kvDim: Int, headDim: Int,
                                into row: UnsafeMutableRawPointer) {
        tk_kv_q8_quantize(x, Int64(kvDim), Int32(headDim), row)
    }

    /// `x[i] = d·q` of element i of one row.
    public static func dequantize(_ row: UnsafeRawPointer, kvDim: Int, headDim: Int,
                                  into x: UnsafeMutablePointer<Float>) {
        tk_kv_q8_dequantize(row, Int64(kvDim), Int32(headDim), x)
    }
}

/// Partial attention of one query head over `positions` of KV head `kvHead` in Q8 rows (`KVRowQ8`) `rowBytes`
/// apart, at the active CPU level (online softmax, 16 positions a chunk).
/// - Parameters:
///   - query: `[headDim]`.
///   - acc: `[headDim]`, receives Σ exp(s − max)·v.
/// - Returns: `max` of the scores s = scale · q·k and `sum` = Σ exp(s − max); an empty range gives (−inf, 0).
public func attentionPartialQ8(query: UnsafePointer<Float>, keys: UnsafeRawPointer, values: UnsafeRawPointer,
                               positions: Range<Int>, rowBytes: Int, kvDim: Int, headDim: Int, kvHead: Int,
                               scale: Float, acc: UnsafeMutablePointer<Float>) -> (max: Float, sum: Float) {
    var m: Float = 0, l: Float = 0
    tk_attention_q8_partial(query, keys, values, Int64(positions.lowerBound), Int64(positions.upperBound), rowBytes,
                            Int64(kvDim), Int32(headDim), Int32(kvHead), scale, &m, &l, acc, 0)
    return (m, l)
}

/// Merges the partial results of `parts` splits of one head's positions: `max[parts]`, `sum[parts]`,
/// `acc[parts × headDim]` into `output[headDim]` = (Σ acc·e^(max − M)) / (Σ sum·e^(max − M)), M the largest max.
/// `output` may be `acc`.
public func attentionCombine(max: UnsafePointer<Float>, sum: UnsafePointer<Float>, acc: UnsafePointer<Float>,
                             parts: Int, headDim: Int, output: UnsafeMutablePointer<Float>) {
    tk_attention_combine(max, sum, acc, Int32(parts), Int32(headDim), 1, Int64(headDim), output)
}

/// Attention of one token's query heads over positions 0 ..< `length` (≥ 1) of a Q8 KV cache, one partial per head:
/// query head h reads KV head `h / (heads / kvHeads)`.
/// - Parameters:
///   - query: `[heads × headDim]`.
///   - keys, values: `[length]` rows of `KVRowQ8` (kvDim = kvHeads · headDim), `rowBytes` apart.
///   - output: `[heads × headDim]`.
public func attentionQ8(query: UnsafePointer<Float>, keys: UnsafeRawPointer, values: UnsafeRawPointer, length: Int,
                        rowBytes: Int, heads: Int, kvHeads: Int, headDim: Int, scale: Float,
                        output: UnsafeMutablePointer<Float>) {
    guard length > 0, heads > 0, kvHeads > 0, headDim > 0 else { return }
    let group = heads / kvHeads
    for h in 0..<heads {
        let out = output + h &* headDim
        var (m, l) = attentionPartialQ8(query: query + h &* headDim, keys: keys, values: values,
                                        positions: 0..<length, rowBytes: rowBytes, kvDim: kvHeads &* headDim,
                                        headDim: headDim, kvHead: h / group, scale: scale, acc: out)
        attentionCombine(max: &m, sum: &l, acc: out, parts: 1, headDim: headDim, output: out)
    }
}
