// Fused attention for a chunk of query tokens: one pass per (token, head, position split) with an online softmax,
// no score matrix, split over positions when there are too few heads to keep every thread busy.
import CTesseraKernels

/// How cached keys and values of one position are stored.
public enum KVLayout: Sendable, Equatable {
    /// float32: position p of KV head k at `p · stride + k · headStride` floats (heads side by side in a row:
    /// stride = kvDim, headStride = headDim; head-major: stride = headDim, headStride = positions · headDim).
    case float(stride: Int, headStride: Int)
    /// 8-bit rows (`KVRowQ8`) of `rowBytes` bytes holding `kvDim` values.
    case q8(rowBytes: Int, kvDim: Int)
}

/// One query token's cached keys and values: positions `0..<length` from `keys`/`values`.
public struct AttentionSpan {
    public var keys: UnsafeRawPointer
    public var values: UnsafeRawPointer
    public var length: Int
    public init(keys: UnsafeRawPointer, values: UnsafeRawPointer, length: Int) {
        self.keys = keys; self.values = values; self.length = length
    }
}

/// Attention of `n` query tokens (grouped-query: head h reads KV head h / (heads / kvHeads)), as one job on the
/// pool. Each (token, KV head, split) task runs the partial kernel (`tk_attention_partial` for the whole group of
/// query heads, `tk_attention_q8_partial` per head for 8-bit rows) — chunks of positions with a running max, sum and
/// unnormalised output — and splits of one head are merged at the end. Equal to the exact attention up to
/// float rounding (FMA, vectorised exp, a different summation order).
public struct OnlineAttention {
    public let heads: Int
    public let kvHeads: Int
    public let headDim: Int
    public let scale: Float
    public let layout: KVLayout
    public let pool: ThreadPool?

    public init(heads: Int, kvHeads: Int, headDim: Int, scale: Float, layout: KVLayout, pool: ThreadPool?) {
        self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim; self.scale = scale
        self.layout = layout; self.pool = pool
    }

    /// Positions below which a head is never split.
    static let minimumSplit = 64

    /// Query heads per KV head: one task attends for the whole group, reading each key and value once.
    var group: Int { heads / kvHeads }

    /// Floats of `partials` scratch any call needs with `threads` threads and up to `heads` query heads (splits
    /// happen only when tokens × KV heads is below 4 · threads, so fewer than 8 · threads tasks then exist, each
    /// holding a group's partial results).
    public static func partialsCount(heads: Int, headDim: Int, threads: Int) -> Int {
        8 * max(1, threads) * max(1, heads) * (headDim + 2)
    }

    /// Splits per KV head for `n` tokens whose longest span is `longest` positions.
    func splits(tokens n: Int, longest: Int) -> Int {
        let threads = pool?.threads ?? 1, work = n * kvHeads
        guard threads > 1, work < 4 * threads else { return 1 }
        let wanted = (4 * threads + work - 1) / work
        return max(1, min(wanted, (longest + OnlineAttention.minimumSplit - 1) / OnlineAttention.minimumSplit))
    }

    /// output[i · outputStride + h · headDim …] = attention of query row i (`queryStride` apart) over `spans[i]`.
    public func callAsFunction(queries: UnsafePointer<Float>, queryStride: Int, spans: UnsafePointer<AttentionSpan>,
                               tokens n: Int, output: UnsafeMutablePointer<Float>, outputStride: Int,
                               partials: UnsafeMutablePointer<Float>) {
        guard n > 0 else { return }
        var longest = 0
        for i in 0..<n { longest = max(longest, spans[i].length) }
        let s = splits(tokens: n, longest: longest), g = group, slot = g * (headDim + 2)
        let tasks = n * kvHeads * s
        let job = Job(attention: self, splits: s, queries: queries, queryStride: queryStride, spans: spans,
                      output: output, outputStride: outputStride, partials: partials)
        if let pool, pool.threads > 1, tasks > 1 {
            pool.run(tasks: tasks, job)
        } else {
            for task in 0..<tasks { job.run(task: task, worker: 0) }
        }
        guard s > 1 else { return }
        for i in 0..<n {
            for kv in 0..<kvHeads {
                let first = partials + ((i * kvHeads + kv) * s) * slot
                for h in 0..<g {
                    combine(first, head: h, slot: slot, parts: s,
                            into: output + (i &* outputStride &+ (kv &* g &+ h) &* headDim))
                }
            }
        }
    }

    /// One call's tasks: (token, KV head, split).
    private struct Job: PoolJob {
        let attention: OnlineAttention
        let splits: Int
        let queries: UnsafePointer<Float>
        let queryStride: Int
        let spans: UnsafePointer<AttentionSpan>
        let output: UnsafeMutablePointer<Float>
        let outputStride: Int
        let partials: UnsafeMutablePointer<Float>

        func run(task: Int, worker: Int) {
            attention.run(task, splits: splits, queries: queries, queryStride: queryStride, spans: spans,
                          output: output, outputStride: outputStride, partials: partials)
        }
    }

    /// Task (token i, KV head kv, split) of a job with `s` splits: the group of query heads kv · group ..< (kv + 1) ·
    /// group. A partial slot holds the group's maxima, then sums, then unnormalised outputs.
    @inline(__always)
    fileprivate func run(_ task: Int, splits s: Int, queries: UnsafePointer<Float>, queryStride: Int,
                         spans: UnsafePointer<AttentionSpan>, output: UnsafeMutablePointer<Float>, outputStride: Int,
                         partials: UnsafeMutablePointer<Float>) {
        let hd = headDim, g = group, split = task % s, kv = (task / s) % kvHeads, i = task / (s * kvHeads)
        let span = spans[i], q = queries + (i &* queryStride &+ kv &* g &* hd)
        let per = (span.length + s - 1) / s, j0 = min(span.length, split * per), j1 = min(span.length, j0 + per)
        if s > 1 {
            let slot = partials + task &* (g &* (hd &+ 2))
            partial(q, span, kvHead: kv, j0, j1, m: slot, l: slot + g, acc: slot + 2 &* g)
            return
        }
        // One split: the output itself is the accumulator, normalised at the end.
        let acc = output + (i &* outputStride &+ kv &* g &* hd)
        withUnsafeTemporaryAllocation(of: Float.self, capacity: 2 * g) { ml in
            let m = ml.baseAddress!, l = m + g
            partial(q, span, kvHead: kv, j0, j1, m: m, l: l, acc: acc)
            for h in 0..<g {
                let inv = l[h] > 0 ? 1 / l[h] : 0
                for d in 0..<hd { acc[h &* hd &+ d] *= inv }
            }
        }
    }

    @inline(__always)
    private func partial(_ q: UnsafePointer<Float>, _ span: AttentionSpan, kvHead: Int, _ j0: Int, _ j1: Int,
                         m: UnsafeMutablePointer<Float>, l: UnsafeMutablePointer<Float>, acc: UnsafeMutablePointer<Float>) {
        let g = group
        switch layout {   // both kernels give (−inf, 0, zeros) for an empty range
        case .float(let stride, let headStride):
            let offset = kvHead &* headStride
            tk_attention_partial(q, Int32(g), span.keys.assumingMemoryBound(to: Float.self) + offset,
                                 span.values.assumingMemoryBound(to: Float.self) + offset, Int64(j0), Int64(j1),
                                 Int64(stride), Int32(headDim), scale, m, l, acc)
        case .q8(let rowBytes, let kvDim):
            for h in 0..<g {
                tk_attention_q8_partial(q + h &* headDim, span.keys, span.values, Int64(j0), Int64(j1), rowBytes,
                                        Int64(kvDim), Int32(headDim), Int32(kvHead), scale, m + h, l + h,
                                        acc + h &* headDim)
            }
        }
    }

    /// Merges head `head`'s results of `parts` consecutive slots (`slot` floats each, laid out as in `run`) into the
    /// normalised output.
    private func combine(_ first: UnsafeMutablePointer<Float>, head: Int, slot: Int, parts: Int,
                         into out: UnsafeMutablePointer<Float>) {
        let g = group
        tk_attention_combine(first + head, first + g + head, first + 2 * g + head * headDim, Int32(parts),
                             Int32(headDim), Int64(slot), Int64(slot), out)
    }
}
