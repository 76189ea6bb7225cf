// Fused attention for a chunk of query tokens: one pass per (token, head, position split) with an online softmax,
// no score matrix, split over positions when there are too few heads to keep every thread busy.
import CTesseraKernels

/// How cached keys and values of one position are stored inside a KV block.
public enum KVLayout: Sendable, Equatable {
    /// float32: row r of a block, KV head k at `r · stride + k · headStride` floats from the block's base (heads
    /// side by side in a row: stride = kvDim, headStride = headDim; head-major: stride = headDim, headStride =
    /// blockSize · headDim).
    case float(stride: Int, headStride: Int)
    /// 8-bit rows (`KVRowQ8`) of `rowBytes` bytes holding `kvDim` values, row r of a block at `r · rowBytes`.
    case q8(rowBytes: Int, kvDim: Int)
}

/// Where one block of a sequence's cached positions lives: the keys and the values of `blockSize` consecutive
/// positions, each laid out as the cache's `KVLayout` says. (Two pointers, keys first: the C kernels read a block
/// table as pairs.)
public struct KVBlock {
    public var keys: UnsafeRawPointer
    public var values: UnsafeRawPointer
    public init(keys: UnsafeRawPointer, values: UnsafeRawPointer) { self.keys = keys; self.values = values }
}

/// One query token's cached keys and values: positions `first ..< first + length` of a sequence whose block table
/// is `blocks` (block b holds positions `b · blockSize ..< (b + 1) · blockSize`). A dense cache hands out a table
/// of one block of its whole context; a paged cache its per-sequence table. Attention never copies positions: it
/// walks the blocks in order.
public struct AttentionSpan {
    public var blocks: UnsafePointer<KVBlock>
    public var blockSize: Int
    public var first: Int
    public var length: Int
    public init(blocks: UnsafePointer<KVBlock>, blockSize: Int, first: Int, length: Int) {
        self.blocks = blocks; self.blockSize = blockSize; self.first = first; self.length = length
    }

    /// Calls `body(block, row, count)` for each run of rows inside one block covering span positions `j0 ..< j1`
    /// (span-relative), in order: `count` rows of `block` from row `row`.
    @inline(__always)
    public func forEachRun(_ j0: Int, _ j1: Int, _ body: (KVBlock, Int, Int) -> Void) {
        var j = j0
        while j < j1 {
            let a = first &+ j, b = a / blockSize, row = a &- b &* blockSize, count = min(blockSize &- row, j1 &- j)
            body(blocks[b], row, count)
            j &+= count
        }
    }

    /// The block table as the C kernels read it (key and value pointer pairs).
    var table: UnsafePointer<UnsafeRawPointer?> {
        UnsafeRawPointer(blocks).assumingMemoryBound(to: UnsafeRawPointer?.self)
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
    static let minimumSplit = 256

    /// Query heads per KV head: one task attends for the whole group, reading each key and value once.
    var group: Int { heads / kvHeads }

    /// Most splits of one token's KV head: enough that a lone decode token gives every thread work (4 tasks per
    /// thread), 1 without a pool.
    func maximumSplits() -> Int {
        let threads = pool?.threads ?? 1
        return threads > 1 ? max(1, (4 * threads + kvHeads - 1) / kvHeads) : 1
    }

    /// Floats of `partials` scratch a call of up to `tokens` tokens needs with `threads` threads: a slot per
    /// (token, KV head, split), each holding a group's partial results.
    public static func partialsCount(heads: Int, kvHeads: Int, headDim: Int, threads: Int, tokens: Int) -> Int {
        let splits = threads > 1 ? max(1, (4 * threads + kvHeads - 1) / kvHeads) : 1
        return max(1, tokens) * splits * max(1, heads) * (headDim + 2)
    }

    /// Splits of a token whose span has `length` positions. It depends on that token alone (and the thread count),
    /// never on the other tokens of the call, so a sequence's rounding is the same whatever it is batched with.
    @inline(__always)
    func splits(length: Int, maximum: Int) -> Int {
        max(1, min(maximum, (length + OnlineAttention.minimumSplit - 1) / OnlineAttention.minimumSplit))
    }

    /// output[i · outputStride + h · headDim …] = attention of query row i (`queryStride` apart) over `spans[i]`.
    public func callAsFunction(queries: UnsafePointer<Float>, queryStride: Int, spans: UnsafePointer<AttentionSpan>,
                               tokens n: Int, output: UnsafeMutablePointer<Float>, outputStride: Int,
                               partials: UnsafeMutablePointer<Float>) {
        guard n > 0 else { return }
        let most = maximumSplits(), g = group, slot = g * (headDim + 2)
        // Tasks are laid out for `most` splits per (token, KV head); a token with fewer skips the rest.
        let tasks = n * kvHeads * most
        let job = Job(attention: self, splits: most, queries: queries, queryStride: queryStride, spans: spans,
                      output: output, outputStride: outputStride, partials: partials)
        if let pool, pool.threads > 1, tasks > 1 {
            pool.run(tasks: tasks, job)
        } else {
            for task in 0..<tasks { job.run(task: task, worker: 0) }
        }
        guard most > 1 else { return }
        for i in 0..<n {
            let s = splits(length: spans[i].length, maximum: most)
            guard s > 1 else { continue }
            for kv in 0..<kvHeads {
                let first = partials + ((i * kvHeads + kv) * most) * slot
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

    /// Task (token i, KV head kv, split) of a job laid out for `most` splits: the group of query heads
    /// kv · group ..< (kv + 1) · group. A partial slot holds the group's maxima, then sums, then unnormalised outputs.
    @inline(__always)
    fileprivate func run(_ task: Int, splits most: Int, queries: UnsafePointer<Float>, queryStride: Int,
                         spans: UnsafePointer<AttentionSpan>, output: UnsafeMutablePointer<Float>, outputStride: Int,
                         partials: UnsafeMutablePointer<Float>) {
        let hd = headDim, g = group, split = task % most, kv = (task / most) % kvHeads, i = task / (most * kvHeads)
        let span = spans[i], s = splits(length: span.length, maximum: most)
        guard split < s else { return }
        let q = queries + (i &* queryStride &+ kv &* g &* hd)
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

    /// Walks the span's positions `j0 ..< j1` block by block, carrying one online softmax across blocks (the
    /// kernels resume from the previous block's max, sum and accumulator).
    @inline(__always)
    private func partial(_ q: UnsafePointer<Float>, _ span: AttentionSpan, kvHead: Int, _ j0: Int, _ j1: Int,
                         m: UnsafeMutablePointer<Float>, l: UnsafeMutablePointer<Float>, acc: UnsafeMutablePointer<Float>) {
        let g = group, hd = headDim
        guard j1 > j0 else {   // (−inf, 0, zeros), as both kernels give for an empty range
            for h in 0..<g { m[h] = -.infinity; l[h] = 0 }
            acc.initialize(repeating: 0, count: g &* hd)
            return
        }
        var resume: Int32 = 0
        switch layout {
        case .float(let stride, let headStride):
            let offset = kvHead &* headStride
            span.forEachRun(j0, j1) { block, row, count in
                tk_attention_partial(q, Int32(g), block.keys.assumingMemoryBound(to: Float.self) + offset,
                                     block.values.assumingMemoryBound(to: Float.self) + offset, Int64(row),
                                     Int64(row &+ count), Int64(stride), Int32(hd), scale, m, l, acc, resume)
                resume = 1
            }
        case .q8(let rowBytes, let kvDim):
            span.forEachRun(j0, j1) { block, row, count in
                for h in 0..<g {
                    tk_attention_q8_partial(q + h &* hd, block.keys, block.values, Int64(row), Int64(row &+ count),
                                            rowBytes, Int64(kvDim), Int32(hd), Int32(kvHead), scale, m + h, l + h,
                                            acc + h &* hd, resume)
                }
                resume = 1
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
