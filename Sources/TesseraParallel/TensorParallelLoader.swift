// Building one rank's shard of a Llama-family model: only the slices the plan gives it are viewed or read.
import TesseraFormats
import TesseraKernels
import TesseraModels

/// The tensor-parallel transformation of a Llama-family model, applied at load time.
public enum TensorParallel {
    /// Plans the split for `group.size` ranks and builds this rank's shard (every rank computes the same plan).
    public static func load(_ source: ModelSource, group: any TensorParallelGroup,
                            options: LoadOptions = LoadOptions()) throws -> TensorParallelModel {
        try load(source, plan: TensorParallelPlan(source: source, size: group.size), group: group, options: options)
    }

    /// Builds rank `group.rank`'s shard of `source` as `plan` describes (the same plan on every rank).
    ///
    /// Column-parallel weights (q, k, v, gate, up) and the head's vocabulary rows are views of row ranges, in place
    /// in the mapped file; row-parallel weights (o, down) are this rank's column slices, read with pread(2) into
    /// owned memory, so the other ranks' columns are never mapped. The token embedding is a replicated view (a
    /// lookup reads only its row); norms are decoded in full. No weight outside the rank's share is touched, and
    /// nothing is built twice (no unsharded model first).
    public static func load(_ source: ModelSource, plan: TensorParallelPlan, group: any TensorParallelGroup,
                            options: LoadOptions = LoadOptions()) throws -> TensorParallelModel {
        guard group.size == plan.size, group.rank >= 0, group.rank < plan.size else {
            throw TensorParallelError.groupMismatch("group of \(group.size) ranks (this one \(group.rank)) for a plan of \(plan.size)")
        }
        let store = source.tensors
        // The same tensor table must give the same plan: refuses a plan made for another checkpoint.
        guard try TensorParallelPlan(config: plan.config, naming: plan.naming, tensors: store.tensorInfos,
                                     size: plan.size, file: plan.file) == plan else {
            throw TensorParallelError.groupMismatch("the plan for \(plan.file) does not match the tensors of this checkpoint")
        }
        let c = plan.config, d = c.headDim, shard = plan[group.rank]
        let link = CollectiveLink(group: group)
        let b = ShardBuilder(store: store, link: link, compute: options.compute, quantize: options.quantize)
        let queryRows = shard.queryHeads.lowerBound * d ..< shard.queryHeads.upperBound * d
        let kvRows = shard.kvHeads.lowerBound * d ..< shard.kvHeads.upperBound * d

        let layers = options.layers ?? 0..<c.layerCount     // a pipeline stage builds only its layers
        guard layers.lowerBound >= 0, layers.upperBound <= c.layerCount else {
            throw ModelError.invalidBuffer("layers \(layers) outside the model's 0..<\(c.layerCount)")
        }
        // Replicated vectors first: decoding them faults pages of the mapping before any slice is read.
        let names = layers.map { LayerTensorNames(naming: plan.naming, layer: $0, biases: c.attentionBias) }
        let norms = try names.map { (attention: try b.vector($0.attentionNorm), mlp: try b.vector($0.mlpNorm)) }
        let norm = try b.vector(plan.naming.outputNorm)
        let factors = plan.naming == .gguf && store.tensorInfos["rope_freqs.weight"] != nil
            ? try b.vector("rope_freqs.weight") : nil
        let embedding = try b.matrix(store.isolatedView(plan.embeddingTensor, rows: nil))
        b.held.embeddingTable = embedding.rows * embedding.rowBytes
        var blocks: [LlamaBlock] = []
        for (i, n) in names.enumerated() {
            let attention = LlamaAttention(
                q: try b.columnParallel(n.q, rows: queryRows, bias: n.qBias),
                k: try b.columnParallel(n.k, rows: kvRows, bias: n.kBias),
                v: try b.columnParallel(n.v, rows: kvRows, bias: n.vBias),
                o: try b.rowParallel(n.o, columns: queryRows),
                headCount: shard.queryHeads.count, kvHeadCount: shard.kvHeads.count)
            let mlp = LlamaMLP(gate: try b.columnParallel(n.gate, rows: shard.intermediate),
                               up: try b.columnParallel(n.up, rows: shard.intermediate),
                               down: try b.rowParallel(n.down, columns: shard.intermediate))
            blocks.append(LlamaBlock(attentionNorm: norms[i].attention, attention: attention, mlpNorm: norms[i].mlp, mlp: mlp))
        }
        let headView = try store.isolatedView(plan.headTensor, rows: shard.vocabulary)
        let head = VocabParallelHead(local: DenseLinear(weight: try b.matrix(headView, linear: true), compute: options.compute),
                                     vocabulary: shard.vocabulary,
                                     counts: plan.shards.map(\.vocabulary.count), link: link)
        b.held.head = headView.data.count
        let rope = RoPE(headDim: d, base: c.ropeTheta, scaling: c.ropeScaling, layout: c.ropeLayout,
                        frequencyFactors: factors)
        let model = try LlamaModel(config: c, embedding: embedding, blocks: blocks, norm: norm, head: head, rope: rope,
                                   store: store, options: options)
        return TensorParallelModel(base: model, plan: plan, rank: group.rank, heldWeights: b.held, link: link)
    }
}

/// Makes the rank's linears from one store, counting the bytes they hold.
private final class ShardBuilder {
    let store: any TensorStore
    let link: CollectiveLink
    let compute: ComputeOptions
    /// The type float matrices are converted to at load (`LoadOptions.quantize`).
    let quantize: GGMLType?
    var held = WeightShare()

    init(store: any TensorStore, link: CollectiveLink, compute: ComputeOptions, quantize: GGMLType?) {
        self.store = store; self.link = link; self.compute = compute; self.quantize = quantize
    }

    /// A matrix, converted when quantizing at load. A linear's converted copy (`linear`) is never read once repacked,
    /// so it may be released; the embedding table's is (lookups).
    func matrix(_ view: TensorView, linear: Bool = false) throws -> WeightMatrix {
        let loaded = try view.loaded(quantize: quantize)
        if linear { (loaded.owner as? AlignedBuffer)?.discardable = true }
        do { return try WeightMatrix(loaded) } catch let e as KernelError {
            throw ModelError.unsupportedTensor(tensor: view.info.name, reason: e.reason)
        }
    }

    /// A float vector, decoded; `slice` keeps only those elements (a column-parallel bias).
    func vector(_ name: String, slice: Range<Int>? = nil) throws -> [Float] {
        let m = try matrix(store.isolatedView(name, rows: nil))
        var out = [Float](repeating: 0, count: m.cols)
        out.withUnsafeMutableBufferPointer { m.dequantizeRow(0, into: $0.baseAddress!) }
        if let slice { out = Array(out[slice]) }
        held.vectors += out.count * MemoryLayout<Float>.stride
        return out
    }

    /// Rows `rows` of a `[out × in]` weight, in place, with the matching bias elements.
    func columnParallel(_ name: String, rows: Range<Int>, bias: String? = nil) throws -> ColumnParallelLinear {
        let view = try store.isolatedView(name, rows: rows)
        held.mapped += view.data.count
        let local = DenseLinear(weight: try matrix(view, linear: true), bias: try bias.map { try vector($0, slice: rows) }, compute: compute)
        return ColumnParallelLinear(local: local, outputs: rows)
    }

    /// Columns `columns` of every row of a `[out × in]` weight, read into owned memory.
    func rowParallel(_ name: String, columns: Range<Int>) throws -> RowParallelLinear {
        let view = try store.view(name)         // only its address: the bytes are read with pread
        let info = view.info
        guard let sliceBytes = view.columnSliceBytes(columns) else {
            throw TensorParallelError.unsplittable(tensor: name, type: info.type, blockSize: info.type.blockSize,
                tp: link.group.size, reason: "columns \(columns) do not start and end on block boundaries")
        }
        let storage = OwnedWeights(count: info.rowCount * sliceBytes)
        try view.copyColumns(columns, into: storage.bytes)
        let slice = TensorView(info: TensorInfo(name: name, type: info.type, shape: [info.rowCount, columns.count]),
                               data: UnsafeRawBufferPointer(storage.bytes), owner: storage)
        // the weight keeps alive what it reads: the copied slice, or its conversion (the float copy is then freed)
        let weight = try matrix(slice, linear: true)
        held.owned += weight.rows * weight.rowBytes
        return RowParallelLinear(local: DenseLinear(weight: weight, compute: compute), inputs: columns, bias: nil,
                                 link: link)
    }
}
