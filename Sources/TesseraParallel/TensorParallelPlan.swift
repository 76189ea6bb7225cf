// Which slice of a model each tensor-parallel rank owns, decided from the family's layout before any weight is read.
import TesseraFormats
import TesseraModels

/// The split of a model across `size` tensor-parallel ranks: a pure value computed from the family's
/// `ModelLayout`, the tensor table (types and shapes) and the group size, identical on every rank.
///
/// - Attention: each rank owns a contiguous range of query heads and the KV heads they read, so its own
///   query → KV mapping stays uniform. With tp ≤ kvHeads, ranks get whole KV groups (uneven when tp does not
///   divide kvHeads); with tp > kvHeads, each KV group's query heads are divided among several ranks, each holding
///   a replica of that KV head. Column-parallel linears keep their rows of the axis, row-parallel ones its columns.
/// - Features: split in whole quantization blocks of the coarsest row-parallel tensor on that axis.
/// - Output head: vocabulary rows, gathered so every rank ends with full logits.
///
/// Worked example, SmolLM2-135M (9 query heads in 3 KV groups, FFN 1536 = 48 Q4_1 blocks, vocab 49152) at tp 4:
/// KV group 0 gets ranks 0 and 1, so rank 0 = heads 0..<2 + KV 0, rank 1 = head 2 + KV 0 (replica),
/// rank 2 = heads 3..<6 + KV 1, rank 3 = heads 6..<9 + KV 2; FFN 384 columns and 12288 vocabulary rows each.
public struct TensorParallelPlan: Sendable, Equatable {
    /// What one rank owns (global indices).
    public struct Shard: Sendable, Equatable {
        public var rank: Int
        /// Query heads, contiguous; `queryHeads.count / kvHeads.count` per KV head.
        public var queryHeads: Range<Int>
        /// KV heads read by `queryHeads`: whole groups, or one head replicated on the ranks sharing its group.
        public var kvHeads: Range<Int>
        /// Feed-forward features.
        public var features: Range<Int>
        /// Output-head rows.
        public var vocabulary: Range<Int>
        /// Weight bytes this rank holds when it builds every layer.
        public var weights: WeightShare
        /// Per layer: the bytes of that layer's slices and vectors (`mapped`, `owned`, `vectors`).
        public var layerWeights: [WeightShare]

        /// This rank's units of `axis`.
        public func range(_ axis: ShardAxis) -> Range<Int> {
            switch axis {
            case .queryHeads: return queryHeads
            case .kvHeads: return kvHeads
            case .features: return features
            }
        }

        /// Weight bytes when this rank builds only `layers` (a pipeline stage): those layers, plus the head and
        /// global vectors every stage's model carries (only the last stage runs them).
        public func weights(layers: Range<Int>) -> WeightShare {
            var share = weights
            for (l, layer) in layerWeights.enumerated() where !layers.contains(l) {
                share.mapped -= layer.mapped; share.owned -= layer.owned; share.vectors -= layer.vectors
            }
            return share
        }
    }

    public let layout: ModelLayout
    /// The checkpoint (for messages).
    public let file: String
    public let size: Int
    /// One per rank, in rank order.
    public let shards: [Shard]

    public subscript(rank: Int) -> Shard { shards[rank] }

    /// Plans the split of a checkpoint: its family lays out its tensors (configuration and tensor table, no weights).
    public init(source: ModelSource, size: Int) throws {
        try self.init(blueprint: ModelRegistry.blueprint(of: source), size: size)
    }

    /// Plans the split of a checkpoint from its blueprint (configuration and tensor table, no weights).
    public init(blueprint: ModelBlueprint, size: Int) throws {
        try self.init(layout: blueprint.layout, tensors: blueprint.source.tensors.tensorInfos, size: size,
                      file: blueprint.file)
    }

    /// Plans the split from a layout and a tensor table. Throws `TensorParallelError` when `size` does not fit the
    /// model or a row-parallel tensor cannot be cut in whole blocks, `ModelError` for missing tensors or wrong shapes.
    public init(layout: ModelLayout, tensors: [String: TensorInfo], size tp: Int, file: String) throws {
        let table = TensorTable(tensors: tensors, file: file)
        guard tp >= 1, tp <= layout.queryHeads else {
            throw TensorParallelError.invalidSize(file: file, tp: tp, reason: "a rank needs at least one of the \(layout.queryHeads) query heads")
        }
        guard layout.vocabularySize >= tp else {
            throw TensorParallelError.invalidSize(file: file, tp: tp, reason: "more ranks than the \(layout.vocabularySize) vocabulary rows")
        }
        let (query, kv) = splitHeads(heads: layout.queryHeads, kvHeads: layout.kvHeads, into: tp)
        let features = try splitFeatures(layout, table: table, into: tp)
        let vocab = evenSplit(layout.vocabularySize, into: tp)
        let ranges: [ShardAxis: [Range<Int>]] = [.queryHeads: query, .kvHeads: kv, .features: features]
        try checkCuts(layout, ranges, table: table)

        let embedding = try table.info(layout.embedding, [layout.vocabularySize, layout.hiddenSize])
        let head = try table.info(layout.head.name, [layout.head.rows, layout.head.cols])
        var globalVectors = 0
        for v in layout.vectors { try table.vector(v.name, v.count); globalVectors += 4 * v.count }
        var layerShares = [[WeightShare]](repeating: [], count: tp)   // (rank, layer)
        for layer in layout.layers {
            for r in 0..<tp {
                layerShares[r].append(try share(of: layer, layout: layout, rank: r, ranges, table: table))
            }
        }
        var built: [Shard] = []
        for r in 0..<tp {
            var share = WeightShare()
            for layer in layerShares[r] {
                share.mapped += layer.mapped; share.owned += layer.owned; share.vectors += layer.vectors
            }
            share.head = vocab[r].count * head.rowBytes
            share.vectors += globalVectors
            share.embeddingTable = embedding.rowCount * embedding.rowBytes
            built.append(Shard(rank: r, queryHeads: query[r], kvHeads: kv[r], features: features[r], vocabulary: vocab[r],
                               weights: share, layerWeights: layerShares[r]))
        }
        self.layout = layout; self.file = file; self.size = tp; self.shards = built
    }
}

/// Bytes rank `r` holds of one layer: rows of column-parallel linears (mapped) and their bias elements, column
/// slices of row-parallel ones (owned), replicated linears whole (mapped), vectors.
private func share(of layer: LayerLayout, layout: ModelLayout, rank r: Int, _ ranges: [ShardAxis: [Range<Int>]],
                   table: TensorTable) throws -> WeightShare {
    var share = WeightShare()
    for spec in layer.linears {
        let info = try table.info(spec.name, [spec.rows, spec.cols])
        switch spec.sharding {
        case .columnParallel(let axis):
            let rows = ranges[axis]![r].count * layout.width(axis)
            share.mapped += rows * info.rowBytes
            if let bias = spec.bias { try table.vector(bias, spec.rows); share.vectors += 4 * rows }
        case .rowParallel(let axis):
            // whole blocks: `checkCuts` put every cut on a block boundary
            share.owned += spec.rows * (info.type.byteCount(elements: ranges[axis]![r].count * layout.width(axis)) ?? 0)
            if let bias = spec.bias { try table.vector(bias, spec.rows); share.vectors += 4 * spec.rows }
        case .replicated, .vocabularyParallel:
            share.mapped += spec.rows * info.rowBytes
            if let bias = spec.bias { try table.vector(bias, spec.rows); share.vectors += 4 * spec.rows }
        }
    }
    for v in layer.vectors { try table.vector(v.name, v.count); share.vectors += 4 * v.count }
    return share
}
