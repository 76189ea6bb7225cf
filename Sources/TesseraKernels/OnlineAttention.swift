// Fused attention for a chunk of query tokens: one pass per (token, head, position split) with an online softmax,
// no score matrix, split over positions when there are too few heads to keep every thread busy.
import CTesseraKernels
import Foundation

/// How cached keys and values of one position are stored.
public enum KVLayout: Sendable, Equatable {
    /// float32 rows of `stride` floats (KV head k at offset k · headDim).
    case float(stride: Int)
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
/// pool. Each (token, head, split) task runs `tk_attention_partial` — chunks of positions with a running max, sum
/// and unnormalised output — and splits of one head are merged at the end. Equal to the exact attention up to
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

    /// Floats of `partials` scratch any call needs with `threads` threads (splits happen only when tokens × heads
    /// is below 4 · threads, so at most 8 · threads partial results exist).
    public static func partialsCount(headDim: Int, threads: Int) -> Int { 8 * max(1, threads) * (headDim + 2) }

    /// Splits per head for `n` tokens whose longest span is `longest` positions.
    func splits(tokens n: Int, longest: Int) -> Int {
        let threads = pool?.threads ?? 1, work = n * heads
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
        let s = splits(tokens: n, longest: longest), part = headDim + 2
        let tasks = n * heads * s
        let job = Job(attention: self, splits: s, queries: queries, queryStride: queryStride, spans: spans,
                      output: output, outputStride: outputStride, partials: partials)
        if let pool, pool.threads > 1, tasks > 1 {
            pool.run(tasks: tasks, job)
        } else {
            for task in 0..<tasks { job.run(task: task, worker: 0) }
        }
        guard s > 1 else { return }
        for i in 0..<n {
            for h in 0..<heads {
                combine(partials + ((i * heads + h) * s) * part, parts: s, into: output + (i &* outputStride &+ h &* headDim))
            }
        }
    }

    /// One call's tasks: (token, head, split).
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

    /// Task (token i, head h, split) of a job with `s` splits per head.
    @inline(__always)
    fileprivate func run(_ task: Int, splits s: Int, queries: UnsafePointer<Float>, queryStride: Int,
                     spans: UnsafePointer<AttentionSpan>, output: UnsafeMutablePointer<Float>, outputStride: Int,
                     partials: UnsafeMutablePointer<Float>) {
        let hd = headDim, split = task % s, h = (task / s) % heads, i = task / (s * heads)
        let span = spans[i], q = queries + (i &* queryStride &+ h &* hd)
        let per = (span.length + s - 1) / s, j0 = min(span.length, split * per), j1 = min(span.length, j0 + per)
        // One split: the output slot itself is the accumulator; several: the task's partial slot.
        let slot = s == 1 ? nil : Optional(partials + task &* (hd + 2))
        let acc = slot.map { $0 + 2 } ?? output + (i &* outputStride &+ h &* hd)
        var m: Float = -.infinity, l: Float = 0
        partial(q, span, kvHead: h / (heads / kvHeads), j0, j1, &m, &l, acc)
        if let slot {
            slot[0] = m; slot[1] = l
        } else {
            let inv = l > 0 ? 1 / l : 0
            for d in 0..<hd { acc[d] *= inv }
        }
    }

    @inline(__always)
    private func partial(_ q: UnsafePointer<Float>, _ span: AttentionSpan, kvHead: Int, _ j0: Int, _ j1: Int,
                         _ m: inout Float, _ l: inout Float, _ acc: UnsafeMutablePointer<Float>) {
        guard j1 > j0 else {
            m = -.infinity; l = 0
            acc.update(repeating: 0, count: headDim)
            return
        }
        switch layout {
        case .float(let stride):
            let offset = kvHead &* headDim
            tk_attention_partial(q, span.keys.assumingMemoryBound(to: Float.self) + offset,
                                 span.values.assumingMemoryBound(to: Float.self) + offset, Int64(j0), Int64(j1),
                                 Int64(stride), Int32(headDim), scale, &m, &l, acc)
        case .q8(let rowBytes, let kvDim):
            tk_attention_q8_partial(q, span.keys, span.values, Int64(j0), Int64(j1), rowBytes, Int64(kvDim),
                                    Int32(headDim), Int32(kvHead), scale, &m, &l, acc)
        }
    }

    /// Merges `parts` partial results laid out as (m, l, acc[headDim]) into the normalised output.
    private func combine(_ p: UnsafeMutablePointer<Float>, parts: Int, into out: UnsafeMutablePointer<Float>) {
        let part = headDim + 2
        var top = -Float.infinity
        for s in 0..<parts { top = max(top, p[s * part]) }
        var total: Float = 0
        out.update(repeating: 0, count: headDim)
        for s in 0..<parts {
            let slot = p + s * part, w = slot[0] == -.infinity ? 0 : Foundation.exp(slot[0] - top)
            total += w * slot[1]
            guard w > 0 else { continue }
            axpy(w, slot + 2, out, count: headDim)
        }
        let inv = total > 0 ? 1 / total : 0
        for d in 0..<headDim { out[d] *= inv }
    }
}
