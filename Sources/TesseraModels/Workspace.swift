// The activation arena: every buffer a forward chunk needs, allocated once when the model is built.
import TesseraKernels

/// The widest activations a model's forward chunk produces, per token (a sharded rank's are no wider).
struct WorkspaceShape {
    var hiddenSize, queryDim, kvDim, intermediateSize, headDim, headCount: Int
    /// Positions the score buffer holds before it grows (the trained context).
    var contextLength: Int
}

/// Scratch activations for up to `maxTokens` tokens per forward chunk. Not thread-safe: one forward at a time.
final class Workspace {
    let maxTokens: Int
    let x: UnsafeMutablePointer<Float>       // (maxTokens, hidden) residual stream
    let xb: UnsafeMutablePointer<Float>      // (maxTokens, hidden) normed input / projection output
    let q: UnsafeMutablePointer<Float>       // (maxTokens, queryDim)
    let k: UnsafeMutablePointer<Float>       // (maxTokens, kvDim)
    let v: UnsafeMutablePointer<Float>       // (maxTokens, kvDim)
    let attn: UnsafeMutablePointer<Float>    // (maxTokens, queryDim) attention output
    let gate: UnsafeMutablePointer<Float>    // (maxTokens, intermediate)
    let up: UnsafeMutablePointer<Float>      // (maxTokens, intermediate)
    let cos: UnsafeMutablePointer<Float>     // (maxTokens, headDim / 2)
    let sin: UnsafeMutablePointer<Float>     // (maxTokens, headDim / 2)
    private(set) var rowScratch: UnsafeMutablePointer<Float>  // (rowScratchCount,) decoded weight rows
    private(set) var rowScratchCount = 0
    private(set) var scores: UnsafeMutablePointer<Float>  // (scoreCapacity,) attention scores of one head
    private(set) var scoreCapacity: Int
    let spans: UnsafeMutablePointer<AttentionSpan>  // (maxTokens,) each token's cached keys and values
    let partials: UnsafeMutablePointer<Float>  // split-attention partial results
    private var buffers: [UnsafeMutablePointer<Float>] = []

    init(maxTokens: Int, shape config: WorkspaceShape, threads: Int) {
        self.maxTokens = maxTokens
        var all: [UnsafeMutablePointer<Float>] = []
        func make(_ count: Int) -> UnsafeMutablePointer<Float> {
            let p = UnsafeMutablePointer<Float>.allocate(capacity: max(count, 1))
            p.initialize(repeating: 0, count: max(count, 1))
            all.append(p)
            return p
        }
        let t = maxTokens
        x = make(t * config.hiddenSize); xb = make(t * config.hiddenSize)
        q = make(t * config.queryDim); k = make(t * config.kvDim); v = make(t * config.kvDim)
        attn = make(t * config.queryDim)
        gate = make(t * config.intermediateSize); up = make(t * config.intermediateSize)
        cos = make(t * config.headDim / 2); sin = make(t * config.headDim / 2)
        partials = make(OnlineAttention.partialsCount(heads: config.headCount, kvHeads: config.kvDim / config.headDim,
                                                      headDim: config.headDim, threads: threads, tokens: t))
        spans = UnsafeMutablePointer<AttentionSpan>.allocate(capacity: maxTokens)
        rowScratch = UnsafeMutablePointer<Float>.allocate(capacity: 1)
        scoreCapacity = config.contextLength
        scores = UnsafeMutablePointer<Float>.allocate(capacity: scoreCapacity)
        scores.initialize(repeating: 0, count: scoreCapacity)
        buffers = all
    }

    /// Grows the weight-row scratch to what the model's linears need (at load, or when they are replaced).
    func reserveRowScratch(_ count: Int) {
        guard count > rowScratchCount else { return }
        rowScratch.deallocate()
        rowScratch = UnsafeMutablePointer<Float>.allocate(capacity: count)
        rowScratch.initialize(repeating: 0, count: count)
        rowScratchCount = count
    }

    /// Grows the score buffer once for caches longer than the trained context.
    func reserveScores(_ count: Int) {
        guard count > scoreCapacity else { return }
        scores.deallocate()
        scores = UnsafeMutablePointer<Float>.allocate(capacity: count)
        scores.initialize(repeating: 0, count: count)
        scoreCapacity = count
    }

    deinit {
        for p in buffers { p.deallocate() }
        spans.deallocate()
        scores.deallocate()
        rowScratch.deallocate()
    }
}
