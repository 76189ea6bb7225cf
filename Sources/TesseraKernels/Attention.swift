// Scaled dot-product attention of one query position over a range of cached keys and values.
import CTesseraKernels

/// Attention for one token's query heads over `length` cached positions, with grouped-query sharing:
/// query head h reads KV head `h / (heads / kvHeads)`.
/// - Parameters:
///   - query: `[heads × headDim]`.
///   - keys, values: position p of KV head k at `p · kvStride + k · kvHeadStride` floats (`kvHeadStride` defaults to
///     `headDim`: heads side by side in a position's row).
///   - scores: `[length]` scratch.
///   - output: `[heads × headDim]`.
///   - mode: `.exact` (float32 as written below, any CPU level alike) or `.fast` (the C kernel at the active level:
///     FMA dot products, vectorised exp; equal up to rounding).
public func attention(query: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                      length: Int, kvStride: Int, kvHeadStride: Int? = nil, heads: Int, kvHeads: Int, headDim: Int,
                      scale: Float,
                      scores: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>,
                      mode: ComputeMode = .exact) {
    if mode == .fast {
        tk_attention(query, keys, values, Int64(length), Int64(kvStride), Int64(kvHeadStride ?? headDim), Int32(heads),
                     Int32(kvHeads), Int32(headDim),
                     scale, scores, output)
        return
    }
    let group = heads / kvHeads
    for h in 0..<heads {
        let q = query + h &* headDim
        let kvOffset = (h / group) &* (kvHeadStride ?? headDim)
        let k = keys + kvOffset
        var j = 0
        while j &+ 4 <= length {   // four positions at a time; each lane equals `dot` exactly
            let s = dot4(q, k + j &* kvStride, k + (j &+ 1) &* kvStride, k + (j &+ 2) &* kvStride,
                         k + (j &+ 3) &* kvStride, count: headDim)
            scores[j] = s[0] * scale; scores[j &+ 1] = s[1] * scale
            scores[j &+ 2] = s[2] * scale; scores[j &+ 3] = s[3] * scale
            j &+= 4
        }
        while j < length {
            scores[j] = dot(q, k + j &* kvStride, count: headDim) * scale
            j &+= 1
        }
        softmax(scores, count: length)
        weightedSum(scores, values + kvOffset, length: length, stride: kvStride, headDim: headDim,
                    into: output + h &* headDim)
    }
}

/// out = Σ_j p[j] · v_j over `length` rows `stride` apart, accumulated in order of j (as repeated `axpy` would),
/// in registers for the common head sizes.
@inline(__always) func weightedSum(_ p: UnsafePointer<Float>, _ v: UnsafePointer<Float>, length: Int, stride: Int,
                                   headDim: Int, into out: UnsafeMutablePointer<Float>) {
    switch headDim {
    case 64:
        var a0 = SIMD16<Float>(), a1 = a0, a2 = a0, a3 = a0
        for j in 0..<length {
            let w = SIMD16<Float>(repeating: p[j]), row = v + j &* stride
            a0 += w * load16(row); a1 += w * load16(row + 16); a2 += w * load16(row + 32); a3 += w * load16(row + 48)
        }
        store16(a0, out); store16(a1, out + 16); store16(a2, out + 32); store16(a3, out + 48)
    case 128:
        var a0 = SIMD16<Float>(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0
        for j in 0..<length {
            let w = SIMD16<Float>(repeating: p[j]), row = v + j &* stride
            a0 += w * load16(row); a1 += w * load16(row + 16); a2 += w * load16(row + 32); a3 += w * load16(row + 48)
            a4 += w * load16(row + 64); a5 += w * load16(row + 80); a6 += w * load16(row + 96)
            a7 += w * load16(row + 112)
        }
        store16(a0, out); store16(a1, out + 16); store16(a2, out + 32); store16(a3, out + 48)
        store16(a4, out + 64); store16(a5, out + 80); store16(a6, out + 96); store16(a7, out + 112)
    default:
        out.initialize(repeating: 0, count: headDim)
        for j in 0..<length { axpy(p[j], v + j &* stride, out, count: headDim) }
    }
}
