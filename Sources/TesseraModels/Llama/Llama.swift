// The Llama architecture (Llama 1/2/3, Mistral, Qwen2, SmolLM/SmolLM2): math only.
// Pre-norm decoder blocks: x += Attention(RMSNorm(x)); x += MLP(RMSNorm(x)), with GQA, RoPE and SwiGLU.
import TesseraFormats
import TesseraKernels

/// Grouped-query self-attention. `headCount`/`kvHeadCount` are this rank's heads (all of them unless sharded).
public struct LlamaAttention: Sendable {
    public var q, k, v, o: any Linear     // q: [heads·headDim × hidden], k/v: [kvHeads·headDim × hidden], o: [hidden × heads·headDim]
    public var headCount: Int
    public var kvHeadCount: Int

    public init(q: any Linear, k: any Linear, v: any Linear, o: any Linear, headCount: Int, kvHeadCount: Int) {
        self.q = q; self.k = k; self.v = v; self.o = o; self.headCount = headCount; self.kvHeadCount = kvHeadCount
    }
}

/// SwiGLU feed-forward: down(silu(gate(x)) ⊙ up(x)).
public struct LlamaMLP: Sendable {
    public var gate, up, down: any Linear  // gate/up: [intermediate × hidden], down: [hidden × intermediate]

    public init(gate: any Linear, up: any Linear, down: any Linear) {
        self.gate = gate; self.up = up; self.down = down
    }
}

/// One decoder layer.
public struct LlamaBlock: Sendable {
    public var attentionNorm: [Float]     // [hidden]
    public var attention: LlamaAttention
    public var mlpNorm: [Float]           // [hidden]
    public var mlp: LlamaMLP

    public init(attentionNorm: [Float], attention: LlamaAttention, mlpNorm: [Float], mlp: LlamaMLP) {
        self.attentionNorm = attentionNorm; self.attention = attention; self.mlpNorm = mlpNorm; self.mlp = mlp
    }
}

/// A Llama-family model with its weights in place in the checkpoint's mapped files.
public final class LlamaModel: LanguageModel {
    public let config: LlamaConfig
    public let embedding: WeightMatrix    // [vocab × hidden]
    /// Decoder layers `heldLayers`, in order (with a tensor-parallel shard's linears and head counts, if sharded).
    public let blocks: [LlamaBlock]
    /// The layers this instance holds (all, or a pipeline stage's range); layer indices stay absolute.
    public let heldLayers: Range<Int>
    public let norm: [Float]              // [hidden]
    public let head: any Linear           // [vocab × hidden] (a vocabulary-parallel head gathers all rows)
    public let rope: RoPE
    /// Keeps the mapped weights alive.
    let store: (any TensorStore)?
    let workspace: Workspace
    /// Arithmetic of the element-wise steps (the linears carry their own `ComputeOptions`).
    let mode: ComputeMode
    /// Whether to fuse operators, and the threads attention splits across.
    let compute: ComputeOptions
    /// How `makeCache` stores keys and values.
    public let kvCacheType: KVCacheType
    /// Time per operator and layer, when profiling (`LoadOptions.profile`).
    public let profiler: Profiler?

    /// Runs `body`, adding its time to `op` of `layer` when profiling.
    @inline(__always)
    private func timed<R>(_ op: ProfiledOperator, _ layer: Int?, _ body: () throws -> R) rethrows -> R {
        guard let profiler else { return try body() }
        let start = Profiler.now()
        defer { profiler.add(op, layer: layer, since: start) }
        return try body()
    }
    /// Per held layer, Q/K/V as one fused product and gate/up as one with SiLU·mul (nil where not fusable).
    private var fusedQKV: [FusedProducts?] = []
    private var fusedGateUp: [FusedProducts?] = []

    public var vocabularySize: Int { config.vocabularySize }
    public var hiddenSize: Int { config.hiddenSize }
    public var layerCount: Int { config.layerCount }
    public var trainedContextLength: Int { config.contextLength }
    public var kvFloatsPerPosition: Int { kvDim }
    public var kvBytesPerPosition: Int { 2 * kvCacheType.rowBytes(kvDim: kvDim, headDim: config.headDim) }
    public var maxBatchTokens: Int { workspace.maxTokens }
    public var weightBytes: Int {
        sumOverLinears(\.weightBytes) + (config.tieWordEmbeddings ? 0 : embedding.rows * embedding.rowBytes)
    }
    public var repackedWeightBytes: Int { sumOverLinears(\.repackedBytes) }

    private func sumOverLinears(_ bytes: (any Linear) -> Int) -> Int {
        blocks.reduce(bytes(head)) { total, b in
            let a = b.attention, m = b.mlp
            return total + [a.q, a.k, a.v, a.o, m.gate, m.up, m.down].reduce(0) { $0 + bytes($1) }
        }
    }

    /// Assembles a model from loaded parts; the arena is sized for `options.maxBatchTokens` tokens.
    public init(config: LlamaConfig, embedding: WeightMatrix, blocks: [LlamaBlock], norm: [Float], head: any Linear,
                rope: RoPE, store: (any TensorStore)?, options: LoadOptions = LoadOptions()) throws {
        guard options.maxBatchTokens > 0, options.maxBatchTokens <= 1 << 16 else {
            throw ModelError.invalidBuffer("maxBatchTokens \(options.maxBatchTokens) outside 1...65536")
        }
        heldLayers = options.layers ?? 0..<config.layerCount
        guard heldLayers.lowerBound >= 0, heldLayers.upperBound <= config.layerCount, blocks.count == heldLayers.count else {
            throw ModelError.invalidBuffer("\(blocks.count) blocks for layers \(heldLayers) of a \(config.layerCount)-layer model")
        }
        self.config = config; self.embedding = embedding; self.blocks = blocks; self.norm = norm
        self.head = head; self.rope = rope; self.store = store
        workspace = Workspace(maxTokens: options.maxBatchTokens, shape: config.workspaceShape, threads: options.compute.threads)
        mode = options.compute.mode
        compute = options.compute
        kvCacheType = options.kvCache
        profiler = options.profile ? Profiler(layers: config.layerCount) : nil
        try fitLayout()
        fuse()
    }

    /// Builds the fused operators of every held layer whose linears allow it (dense or column-shard products of one
    /// activation format, no bias on gate/up), and grows the scratch they need.
    private func fuse() {
        fusedQKV = []; fusedGateUp = []
        guard compute.fused else { return }
        func fusion(_ linears: [any Linear], epilogue: FusedProducts.Epilogue) -> FusedProducts? {
            let dense = linears.compactMap { $0.fusable }
            guard dense.count == linears.count, let first = dense.first,
                  dense.allSatisfy({ $0.compute.mode == first.compute.mode && $0.compute.pool === first.compute.pool }),
                  epilogue == .none || dense.allSatisfy({ $0.bias == nil }) else { return nil }
            return FusedProducts(dense.map(\.weight), compute: first.compute, epilogue: epilogue)
        }
        fusedQKV = blocks.map { fusion([$0.attention.q, $0.attention.k, $0.attention.v], epilogue: .none) }
        fusedGateUp = blocks.map { fusion([$0.mlp.gate, $0.mlp.up], epilogue: .siluMul) }
        let scratch = (fusedQKV + fusedGateUp).compactMap { $0?.scratchCount }.max() ?? 0
        workspace.reserveRowScratch(scratch)
    }

    /// Online-softmax attention (one pool job per chunk) rather than the exact per-head form with a score array.
    private func usesOnlineAttention(_ cache: any KVCache) -> Bool {
        if compute.fused && mode == .fast { return true }
        if case .float = cache.layout { return false }
        return true
    }

    /// Key/value floats per position and layer on this rank: `kvHeads · headDim`.
    public var kvDim: Int { (blocks.first?.attention.kvHeadCount ?? config.kvHeadCount) * config.headDim }

    public func makeCache(sequences: Int, contextLength: Int) throws -> any KVCache {
        try DenseKVCache(layers: heldLayers, sequences: sequences, contextLength: contextLength, kvDim: kvDim,
                         headDim: config.headDim, type: kvCacheType)
    }

    public func makePagedCache(sequences: Int, contextLength: Int, paging: KVPaging) throws -> PagedKVCache {
        try PagedKVCache(layers: heldLayers, sequences: sequences, contextLength: contextLength, kvDim: kvDim,
                         headDim: config.headDim, type: kvCacheType, paging: paging)
    }

    public func forward(_ batch: Batch, cache: any KVCache, logits: UnsafeMutableBufferPointer<Float>) throws {
        guard heldLayers == 0..<layerCount else {
            throw ModelError.invalidBatch("a whole forward pass needs every layer; this model holds \(heldLayers)")
        }
        try cache.check(batch)
        try checkTokens(batch)
        let needed = batch.logitCount * vocabularySize
        guard logits.count >= needed else {
            throw ModelError.invalidBuffer("logits buffer holds \(logits.count) floats, the batch needs \(needed)")
        }
        var row = 0
        var start = 0
        while start < batch.count {
            let chunk = start..<min(batch.count, start + maxBatchTokens)
            timed(.embedding, nil) { embed(batch, tokens: chunk, into: workspace.x) }
            try runLayers(0..<layerCount, hidden: workspace.x, batch: batch, tokens: chunk, cache: cache)
            row += try timed(.head, nil) {
                try projectLogits(hidden: workspace.x, batch: batch, tokens: chunk,
                              into: logits.baseAddress.map { $0 + row * vocabularySize })
            }
            start = chunk.upperBound
        }
        cache.commit(batch)
    }

    public func embed(_ batch: Batch, into hidden: UnsafeMutablePointer<Float>) throws {
        try checkChunk(batch)
        try checkTokens(batch)
        timed(.embedding, nil) { embed(batch, tokens: 0..<batch.count, into: hidden) }
    }

    public func forward(layers: Range<Int>, hidden: UnsafeMutablePointer<Float>, batch: Batch,
                        cache: any KVCache) throws {
        try checkChunk(batch)
        try cache.check(batch)
        guard layers.isEmpty || (heldLayers.contains(layers.lowerBound) && heldLayers.contains(layers.upperBound - 1)) else {
            throw ModelError.invalidBatch("layers \(layers) outside the layers this model holds, \(heldLayers)")
        }
        try runLayers(layers, hidden: hidden, batch: batch, tokens: 0..<batch.count, cache: cache)
    }

    public func logits(hidden: UnsafePointer<Float>, batch: Batch, into logits: UnsafeMutablePointer<Float>) throws {
        try checkChunk(batch)
        _ = try timed(.head, nil) { try projectLogits(hidden: hidden, batch: batch, tokens: 0..<batch.count, into: logits) }
    }

    // MARK: - Math over one chunk of the batch (rows of `hidden` are tokens `tokens` of `batch`)

    func embed(_ batch: Batch, tokens: Range<Int>, into x: UnsafeMutablePointer<Float>) {
        for (i, t) in tokens.enumerated() {
            embedding.dequantizeRow(batch.tokens[t], into: x + i * hiddenSize)
        }
    }

    func runLayers(_ layers: Range<Int>, hidden x: UnsafeMutablePointer<Float>, batch: Batch, tokens: Range<Int>,
                   cache: any KVCache) throws {
        guard layers.isEmpty || (cache.layers.contains(layers.lowerBound) && cache.layers.contains(layers.upperBound - 1)) else {
            throw ModelError.invalidBuffer("KV cache holds layers \(cache.layers), not \(layers)")
        }
        guard cache.kvDim == kvDim else {
            throw ModelError.invalidBuffer("KV cache has \(cache.kvDim) floats per position, the model needs \(kvDim)")
        }
        if let longest = tokens.lazy.map({ batch.positions[$0] }).max() { workspace.reserveScores(longest + 1) }
        let half = config.headDim / 2, ws = workspace
        for (i, t) in tokens.enumerated() {
            rope.angles(position: batch.positions[t], cos: ws.cos + i * half, sin: ws.sin + i * half)
        }
        for l in layers {
            try attention(block: l, x: x, batch: batch, tokens: tokens, cache: cache)
            try mlp(block: l, x: x, rows: tokens.count)
        }
    }

    /// x += o(Attention(RoPE(q(h)), RoPE(k(h)), v(h))) with h = RMSNorm(x); keys and values go to the cache first,
    /// so tokens of one sequence in this chunk see each other.
    func attention(block l: Int, x: UnsafeMutablePointer<Float>, batch: Batch, tokens: Range<Int>,
                   cache: any KVCache) throws {
        let ws = workspace, n = tokens.count, headDim = config.headDim, half = headDim / 2
        let index = l - heldLayers.lowerBound, block = blocks[index], att = block.attention
        let qDim = att.headCount * headDim, kvDim = att.kvHeadCount * headDim
        if !fusedQKV.isEmpty, let qkv = fusedQKV[index] {
            timed(.qkv, l) {   // the norm is part of the fused product's input preparation
                block.attentionNorm.withUnsafeBufferPointer { w in
                    qkv(x, rows: n, norm: FusedNorm(weight: w.baseAddress!, eps: config.rmsNormEps), normed: ws.xb,
                        outputs: FusedOutputs(ws.q, ws.k, ws.v), scratch: ws.rowScratch)
                }
                att.q.fusable?.addBias(rows: n, into: ws.q)
                att.k.fusable?.addBias(rows: n, into: ws.k)
                att.v.fusable?.addBias(rows: n, into: ws.v)
            }
        } else {
            timed(.attentionNorm, l) { normalize(x, rows: n, weight: block.attentionNorm, into: ws.xb) }
            try timed(.qkv, l) {
                try att.q(ws.xb, rows: n, into: ws.q, scratch: ws.rowScratch)
                try att.k(ws.xb, rows: n, into: ws.k, scratch: ws.rowScratch)
                try att.v(ws.xb, rows: n, into: ws.v, scratch: ws.rowScratch)
            }
        }
        let ropeStart = profiler == nil ? 0 : Profiler.now()
        for (i, t) in tokens.enumerated() {
            rope.apply(ws.q + i * qDim, heads: att.headCount, cos: ws.cos + i * half, sin: ws.sin + i * half)
            rope.apply(ws.k + i * kvDim, heads: att.kvHeadCount, cos: ws.cos + i * half, sin: ws.sin + i * half)
            cache.write(layer: l, sequence: batch.sequences[t], position: batch.positions[t], key: ws.k + i * kvDim,
                        value: ws.v + i * kvDim)
        }
        profiler?.add(.ropeAndCache, layer: l, since: ropeStart)
        let scale = 1 / Float(headDim).squareRoot()
        timed(.attention, l) {
            if usesOnlineAttention(cache) {
                for (i, t) in tokens.enumerated() {
                    let p = batch.positions[t], first = config.slidingWindow.map { max(0, p - $0 + 1) } ?? 0
                    ws.spans[i] = cache.span(layer: l, sequence: batch.sequences[t], first: first, length: p - first + 1)
                }
                OnlineAttention(heads: att.headCount, kvHeads: att.kvHeadCount, headDim: headDim, scale: scale,
                                layout: cache.layout, pool: compute.pool)(
                    queries: ws.q, queryStride: qDim, spans: ws.spans, tokens: n, output: ws.attn, outputStride: qDim,
                    partials: ws.partials)
            } else if case .float(let stride, let headStride) = cache.layout {
                for (i, t) in tokens.enumerated() {
                    let p = batch.positions[t], first = config.slidingWindow.map { max(0, p - $0 + 1) } ?? 0
                    let span = cache.span(layer: l, sequence: batch.sequences[t], first: first, length: p - first + 1)
                    TesseraKernels.attention(
                        query: ws.q + i * qDim, span: span, kvStride: stride, kvHeadStride: headStride,
                        heads: att.headCount, kvHeads: att.kvHeadCount, headDim: headDim, scale: scale,
                        scores: ws.scores, output: ws.attn + i * qDim, mode: mode)
                }
            }
        }
        try timed(.attentionOutput, l) { try residual(att.o, ws.attn, rows: n, into: x) }
    }

    /// RMSNorm of `n` rows of the residual stream (the unfused form).
    private func normalize(_ x: UnsafePointer<Float>, rows n: Int, weight: [Float], into y: UnsafeMutablePointer<Float>) {
        let hidden = hiddenSize
        weight.withUnsafeBufferPointer { w in
            for i in 0..<n { rmsNorm(x + i * hidden, weight: w.baseAddress!, count: hidden, eps: config.rmsNormEps, into: y + i * hidden) }
        }
    }

    /// x += linear(input): folded into the product's stores when fusing, else a product into `xb` and an add.
    private func residual(_ linear: any Linear, _ input: UnsafePointer<Float>, rows n: Int,
                          into x: UnsafeMutablePointer<Float>) throws {
        let ws = workspace
        if compute.fused {
            try linear.accumulate(input, rows: n, into: x, temp: ws.xb, scratch: ws.rowScratch)
        } else {
            try linear(input, rows: n, into: ws.xb, scratch: ws.rowScratch)
            add(ws.xb, into: x, count: n * hiddenSize)
        }
    }

    /// x += down(silu(gate(h)) ⊙ up(h)) with h = RMSNorm(x).
    func mlp(block l: Int, x: UnsafeMutablePointer<Float>, rows n: Int) throws {
        let ws = workspace, index = l - heldLayers.lowerBound
        let block = blocks[index], mlp = block.mlp
        if !fusedGateUp.isEmpty, let gateUp = fusedGateUp[index] {
            timed(.gateUp, l) {   // norm in the input preparation, SiLU·mul in the tasks
                block.mlpNorm.withUnsafeBufferPointer { w in
                    gateUp(x, rows: n, norm: FusedNorm(weight: w.baseAddress!, eps: config.rmsNormEps), normed: ws.xb,
                           outputs: FusedOutputs(ws.gate, ws.up), scratch: ws.rowScratch)
                }
            }
        } else {
            timed(.mlpNorm, l) { normalize(x, rows: n, weight: block.mlpNorm, into: ws.xb) }
            try timed(.gateUp, l) {
                try mlp.gate(ws.xb, rows: n, into: ws.gate, scratch: ws.rowScratch)
                try mlp.up(ws.xb, rows: n, into: ws.up, scratch: ws.rowScratch)
            }
            timed(.silu, l) { siluMul(ws.gate, ws.up, count: n * mlp.gate.outputSize, mode: mode) }
        }
        try timed(.down, l) { try residual(mlp.down, ws.gate, rows: n, into: x) }
    }

    /// Final RMSNorm of the rows that want logits, then the head; returns how many logit rows it wrote.
    func projectLogits(hidden x: UnsafePointer<Float>, batch: Batch, tokens: Range<Int>,
                       into logits: UnsafeMutablePointer<Float>?) throws -> Int {
        let ws = workspace, hidden = hiddenSize
        var m = 0
        norm.withUnsafeBufferPointer { w in
            for (i, t) in tokens.enumerated() where batch.wantsLogits[t] {
                rmsNorm(x + i * hidden, weight: w.baseAddress!, count: hidden, eps: config.rmsNormEps, into: ws.xb + m * hidden)
                m += 1
            }
        }
        if m > 0, let logits { try head(ws.xb, rows: m, into: logits, scratch: ws.rowScratch) }
        return m
    }
}
