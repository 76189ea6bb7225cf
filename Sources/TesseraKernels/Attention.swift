// Scaled dot-product attention of one query position over a range of cached keys and values.

/// Attention for one token's query heads over `length` cached positions, with grouped-query sharing:
/// query head h reads KV head `h / (heads / kvHeads)`.
/// - Parameters:
///   - query: `[heads × headDim]`.
///   - keys, values: `[length × kvStride]`, KV head k at offset `k · headDim` within a position's row.
///   - scores: `[length]` scratch.
///   - output: `[heads × headDim]`.
public func attention(query: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                      length: Int, kvStride: Int, heads: Int, kvHeads: Int, headDim: Int, scale: Float,
                      scores: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>) {
    let group = heads / kvHeads
    for h in 0..<heads {
        let q = query + h &* headDim
        let kvOffset = (h / group) &* headDim
        for j in 0..<length {
            scores[j] = dot(q, keys + (j &* kvStride &+ kvOffset), count: headDim) * scale
        }
        softmax(scores, count: length)
        let out = output + h &* headDim
        out.initialize(repeating: 0, count: headDim)
        for j in 0..<length {
            axpy(scores[j], values + (j &* kvStride &+ kvOffset), out, count: headDim)
        }
    }
}
