// Tensor parallelism as a transformation of any family's builder: the family asks for its linears, and this
// rank's factory hands out column-, row- and vocabulary-parallel pieces of them. Only the rank's slices are read.
import TesseraFormats
import TesseraKernels
import TesseraModels

/// One rank's shard of a model: the family's own model type, built from this rank's slices.
public struct TensorParallelShard {
    /// The model; its forward pass reads like the unsharded one (collectives run inside its sharded linears).
    /// Every rank of the group must make the same calls with the same batches; each then gets the same full logits.
    public let model: any LanguageModel
    public let plan: TensorParallelPlan
    public let rank: Int
    /// The layers built (a pipeline stage's range, or all).
    public let layers: Range<Int>
    /// Weight bytes the built layers hold, counted from their views and owned slices (compare `plannedWeights`).
    public let heldWeights: WeightShare

    /// This rank's slice of the model.
    public var shard: TensorParallelPlan.Shard { plan[rank] }
    /// Weight bytes the plan gives this rank for the layers it holds.
    public var plannedWeights: WeightShare { shard.weights(layers: layers) }
}

/// The tensor-parallel transformation, applied at load time.
public enum TensorParallel {
    /// Reads the checkpoint's blueprint, plans the split for `group.size` ranks and builds this rank's shard.
    public static func load(_ source: ModelSource, group: any TensorParallelGroup,
                            options: LoadOptions = LoadOptions()) throws -> TensorParallelShard {
        try load(ModelRegistry.blueprint(of: source), group: group, options: options)
    }

    /// Builds this rank's shard of the checkpoint as `plan` (made for it, the same on every rank) describes.
    public static func load(_ source: ModelSource, plan: TensorParallelPlan, group: any TensorParallelGroup,
                            options: LoadOptions = LoadOptions()) throws -> TensorParallelShard {
        try load(ModelRegistry.blueprint(of: source), plan: plan, group: group, options: options)
    }

    /// Plans the split for `group.size` ranks and builds this rank's shard (every rank computes the same plan).
    public static func load(_ blueprint: ModelBlueprint, group: any TensorParallelGroup,
                            options: LoadOptions = LoadOptions()) throws -> TensorParallelShard {
        try load(blueprint, plan: TensorParallelPlan(blueprint: blueprint, size: group.size), group: group,
                 options: options)
    }

    /// Builds rank `group.rank`'s shard of `blueprint` as `plan` describes (the same plan on every rank).
    ///
    /// Column-parallel weights and the head's vocabulary rows are views of row ranges, in place in the mapped file;
    /// row-parallel weights are this rank's column slices, read with pread(2) into owned memory, so the other ranks'
    /// columns are never mapped. The token embedding is a replicated view (a lookup reads only its row); vectors are
    /// decoded in full. No weight outside the rank's share is touched, and nothing is built twice.
    public static func load(_ blueprint: ModelBlueprint, plan: TensorParallelPlan, group: any TensorParallelGroup,
                            options: LoadOptions = LoadOptions()) throws -> TensorParallelShard {
        guard group.size == plan.size, group.rank >= 0, group.rank < plan.size else {
            throw TensorParallelError.groupMismatch("group of \(group.size) ranks (this one \(group.rank)) for a plan of \(plan.size)")
        }
        // The same layout and tensor table must give the same plan: refuses a plan made for another checkpoint.
        guard try TensorParallelPlan(blueprint: blueprint, size: plan.size) == plan else {
            throw TensorParallelError.groupMismatch("the plan for \(plan.file) does not match the tensors of \(blueprint.file)")
        }
        let factory = ShardedLinearFactory(blueprint: blueprint, shard: plan[group.rank], counts: plan.shards.map(\.vocabulary.count),
                                           group: group, options: options)
        let model = try blueprint.build(linears: factory, options: options)
        return TensorParallelShard(model: model, plan: plan, rank: group.rank,
                                   layers: options.layers ?? 0..<blueprint.layerCount, heldWeights: factory.held)
    }
}

/// Makes one rank's linears from the checkpoint, as its plan shard says, counting the bytes they hold.
final class ShardedLinearFactory: LinearFactory {
    let reader: WeightReader
    let layout: ModelLayout
    let shard: TensorParallelPlan.Shard
    /// Vocabulary rows of every rank, in rank order.
    let counts: [Int]
    let group: any TensorParallelGroup
    let compute: ComputeOptions
    private(set) var held = WeightShare()

    init(blueprint: ModelBlueprint, shard: TensorParallelPlan.Shard, counts: [Int], group: any TensorParallelGroup,
         options: LoadOptions) {
        reader = WeightReader(store: blueprint.source.tensors, file: blueprint.file, quantize: options.quantize)
        layout = blueprint.layout; self.shard = shard; self.counts = counts; self.group = group
        compute = options.compute
    }

    var store: any TensorStore { reader.store }

    func range(_ axis: ShardAxis, of units: Int) -> Range<Int> { shard.range(axis) }

    /// The rank's features of `axis` in weight rows or columns.
    private func features(_ axis: ShardAxis) -> Range<Int> {
        let units = shard.range(axis), w = layout.width(axis)
        return units.lowerBound * w ..< units.upperBound * w
    }

    func linear(_ spec: LinearSpec, sharing: WeightMatrix?) throws -> any Linear {
        switch spec.sharding {
        case .columnParallel(let axis): return try columnParallel(spec, rows: features(axis))
        case .rowParallel(let axis): return try rowParallel(spec, columns: features(axis))
        case .vocabularyParallel:
            let view = try reader.view(spec.name, shape: [spec.rows, spec.cols], rows: shard.vocabulary)
            held.head += view.data.count
            return VocabParallelHead(local: DenseLinear(weight: try reader.matrix(view, linear: true), compute: compute),
                                     vocabulary: shard.vocabulary, counts: counts, group: group)
        case .replicated:
            let view = try reader.view(spec.name, shape: [spec.rows, spec.cols])
            held.mapped += view.data.count
            return DenseLinear(weight: try reader.matrix(view, linear: true), bias: try spec.bias.map { try vector($0, spec.rows) },
                               compute: compute)
        }
    }

    func vector(_ spec: VectorSpec) throws -> [Float] { try vector(spec.name, spec.count) }

    /// A float vector, decoded; `slice` keeps only those elements (a column-parallel bias).
    private func vector(_ name: String, _ count: Int, slice: Range<Int>? = nil) throws -> [Float] {
        var out = try reader.vector(name, count: count)
        if let slice { out = Array(out[slice]) }
        held.vectors += out.count * MemoryLayout<Float>.stride
        return out
    }

    func embedding(_ name: String, rows: Int, cols: Int) throws -> WeightMatrix {
        let table = try reader.matrix(reader.view(name, shape: [rows, cols]), linear: false)
        held.embeddingTable = table.rows * table.rowBytes
        return table
    }

    /// Rows `rows` of the weight, in place, with the matching bias elements.
    private func columnParallel(_ spec: LinearSpec, rows: Range<Int>) throws -> ColumnParallelLinear {
        let view = try reader.view(spec.name, shape: [spec.rows, spec.cols], rows: rows)
        held.mapped += view.data.count
        let local = DenseLinear(weight: try reader.matrix(view, linear: true),
                                bias: try spec.bias.map { try vector($0, spec.rows, slice: rows) }, compute: compute)
        return ColumnParallelLinear(local: local, outputs: rows)
    }

    /// Columns `columns` of every row of the weight, read into owned memory; a bias is added once, after the sum.
    private func rowParallel(_ spec: LinearSpec, columns: Range<Int>) throws -> RowParallelLinear {
        let info = try reader.table.info(spec.name, [spec.rows, spec.cols])
        let view = try store.view(spec.name)         // only its address: the bytes are read with pread
        guard let sliceBytes = view.columnSliceBytes(columns) else {
            throw TensorParallelError.unsplittable(tensor: spec.name, type: info.type, blockSize: info.type.blockSize,
                tp: group.size, reason: "columns \(columns) do not start and end on block boundaries")
        }
        let storage = OwnedWeights(count: info.rowCount * sliceBytes)
        try view.copyColumns(columns, into: storage.bytes)
        let slice = TensorView(info: TensorInfo(name: spec.name, type: info.type, shape: [info.rowCount, columns.count]),
                               data: UnsafeRawBufferPointer(storage.bytes), owner: storage)
        // the weight keeps alive what it reads: the copied slice, or its conversion (the float copy is then freed)
        let weight = try reader.matrix(slice, linear: true)
        held.owned += weight.rows * weight.rowBytes
        return RowParallelLinear(local: DenseLinear(weight: weight, compute: compute), inputs: columns,
                                 bias: try spec.bias.map { try vector($0, spec.rows) }, group: group)
    }
}
