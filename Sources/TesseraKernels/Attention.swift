// Scaled dot-product attention of one query position over a range of cached keys and values.
import CTesseraKernels

/// Attention for one token's query heads over a span of cached positions (walked block by block), with
/// grouped-query sharing: query head h reads KV head `h / (heads / kvHeads)`.
/// - Parameters:
///   - query: `[heads × headDim]`.
///   - span: the positions; inside a block, row r of KV head k is at `r · kvStride + k · kvHeadStride` floats.
///   - scores: `[span.length]` scratch.
///   - output: `[heads × headDim]`.
///   - mode: `.exact` (float32 as written below, any CPU level alike; the same bits whatever the block size) or
///     `.fast` (the C kernel at the active level: FMA dot products, vectorised exp; equal up to rounding).
public func attention(query: UnsafePointer<Float>, span: AttentionSpan, kvStride: Int, kvHeadStride: Int, heads: Int,
                      kvHeads: Int, headDim: Int, scale: Float,
                      scores: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>,
                      mode: ComputeMode = .exact) {
    let length = span.length
    if mode == .fast {
        tk_attention(query, span.table, Int64(span.blockSize), Int64(span.first), Int64(length), Int64(kvStride),
                     Int64(kvHeadStride), Int32(heads), Int32(kvHeads), Int32(headDim), scale, scores, output)
        return
    }
    let group = heads / kvHeads
    for h in 0..<heads {
        let q = query + h &* headDim
        let kvOffset = (h / group) &* kvHeadStride
        var at = 0
        span.forEachRun(0, length) { block, row, count in
            let k = block.keys.assumingMemoryBound(to: Float.self) + (kvOffset &+ row &* kvStride)
            let s = scores + at
            var j = 0
            while j &+ 4 <= count {   // four positions at a time; each lane equals `dot` exactly
                let d = dot4(q, k + j &* kvStride, k + (j &+ 1) &* kvStride, k + (j &+ 2) &* kvStride,
                             k + (j &+ 3) &* kvStride, count: headDim)
                s[j] = d[0] * scale; s[j &+ 1] = d[1] * scale
                s[j &+ 2] = d[2] * scale; s[j &+ 3] = d[3] * scale
                j &+= 4
            }
            while j < count {
                s[j] = dot(q, k + j &* kvStride, count: headDim) * scale
                j &+= 1
            }
            at &+= count
        }
        softmax(scores, count: length)
        weightedSum(scores, span, offset: kvOffset, stride: kvStride, headDim: headDim, into: output + h &* headDim)
    }
}

/// out = Σ_j p[j] · v_j over the span's value rows (`stride` floats apart inside a block, `offset` floats into a row),
/// accumulated in order of j (as repeated `axpy` would, block boundaries or not), in registers for the common head
/// sizes.
@inline(__always) func weightedSum(_ p: UnsafePointer<Float>, _ span: AttentionSpan, offset: Int, stride: Int,
                                   headDim: Int, into out: UnsafeMutablePointer<Float>) {
    var at = 0
    func rows(_ body: (UnsafePointer<Float>, UnsafePointer<Float>, Int) -> Void) {   // (weights, first row, count)
        span.forEachRun(0, span.length) { block, row, count in
            body(p + at, block.values.assumingMemoryBound(to: Float.self) + (offset &+ row &* stride), count)
            at &+= count
        }
    }
    switch headDim {
    case 64:
        var a0 = SIMD16<Float>(), a1 = a0, a2 = a0, a3 = a0
        rows { weights, v, count in
            for j in 0..<count {
                let w = SIMD16<Float>(repeating: weights[j]), row = v + j &* stride
                a0 += w * load16(row); a1 += w * load16(row + 16); a2 += w * load16(row + 32)
                a3 += w * load16(row + 48)
            }
        }
        store16(a0, out); store16(a1, out + 16); store16(a2, out + 32); store16(a3, out + 48)
    case 128:
        var a0 = SIMD16<Float>(), a1 = a0, a2 = a0, a3 = a0, a4 = a0, a5 = a0, a6 = a0, a7 = a0
        rows { weights, v, count in
            for j in 0..<count {
                let w = SIMD16<Float>(repeating: weights[j]), row = v + j &* stride
                a0 += w * load16(row); a1 += w * load16(row + 16); a2 += w * load16(row + 32)
                a3 += w * load16(row + 48); a4 += w * load16(row + 64); a5 += w * load16(row + 80)
                a6 += w * load16(row + 96); a7 += w * load16(row + 112)
            }
        }
        store16(a0, out); store16(a1, out + 16); store16(a2, out + 32); store16(a3, out + 48)
        store16(a4, out + 64); store16(a5, out + 80); store16(a6, out + 96); store16(a7, out + 112)
    default:
        out.initialize(repeating: 0, count: headDim)
        rows { weights, v, count in
            for j in 0..<count { axpy(weights[j], v + j &* stride, out, count: headDim) }
        }
    }
}

/// The one-block case: positions `0 ..< length` contiguous from `keys`/`values` (position p of KV head k at
/// `p · kvStride + k · kvHeadStride` floats, `kvHeadStride` defaulting to `headDim`).
public func attention(query: UnsafePointer<Float>, keys: UnsafePointer<Float>, values: UnsafePointer<Float>,
                      length: Int, kvStride: Int, kvHeadStride: Int? = nil, heads: Int, kvHeads: Int, headDim: Int,
                      scale: Float, scores: UnsafeMutablePointer<Float>, output: UnsafeMutablePointer<Float>,
                      mode: ComputeMode = .exact) {
    let block = KVBlock(keys: UnsafeRawPointer(keys), values: UnsafeRawPointer(values))
    withUnsafePointer(to: block) { table in
        attention(query: query, span: AttentionSpan(blocks: table, blockSize: max(1, length), first: 0, length: length),
                  kvStride: kvStride, kvHeadStride: kvHeadStride ?? headDim, heads: heads, kvHeads: kvHeads,
                  headDim: headDim, scale: scale, scores: scores, output: output, mode: mode)
    }
}
