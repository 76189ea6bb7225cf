// Which slice of a Llama-family model each tensor-parallel rank owns, decided before any weight is read.
import TesseraFormats
import TesseraModels

/// The split of a Llama-family model across `size` tensor-parallel ranks: a pure value computed from the
/// configuration, the tensor table (types and shapes) and the group size, identical on every rank.
///
/// - Attention: each rank owns a contiguous range of query heads and the KV heads they read, so its own
///   query → KV mapping stays uniform. With tp ≤ kvHeads, ranks get whole KV groups (uneven when tp does not
///   divide kvHeads); with tp > kvHeads, each KV group's query heads are divided among several ranks, each holding
///   a replica of that KV head. q/k/v are column-parallel (rows), o is row-parallel (columns).
/// - FFN: gate/up rows and down columns `intermediate`, split in whole quantization blocks of `ffn_down`.
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
        /// FFN intermediate features: rows of gate/up, columns of down.
        public var intermediate: Range<Int>
        /// Output-head rows.
        public var vocabulary: Range<Int>
        /// Weight bytes this rank holds when it builds every layer.
        public var weights: WeightShare
        /// Per layer: the bytes of that layer's slices and norms (`mapped`, `owned`, `vectors`).
        public var layerWeights: [WeightShare]

        /// Weight bytes when this rank builds only `layers` (a pipeline stage): those layers, plus the head and
        /// final norm every stage's model carries (only the last stage runs them).
        public func weights(layers: Range<Int>) -> WeightShare {
            var share = weights
            for (l, layer) in layerWeights.enumerated() where !layers.contains(l) {
                share.mapped -= layer.mapped; share.owned -= layer.owned; share.vectors -= layer.vectors
            }
            return share
        }
    }

    public let config: LlamaConfig
    public let naming: WeightNaming
    /// The checkpoint (for messages).
    public let file: String
    public let size: Int
    /// One per rank, in rank order.
    public let shards: [Shard]
    /// Tensor of the token embedding (a tied checkpoint may store only the head under its own name).
    public let embeddingTensor: String
    /// Tensor of the output head: `embeddingTensor` when tied.
    public let headTensor: String

    public subscript(rank: Int) -> Shard { shards[rank] }

    /// Plans the split of a checkpoint: decodes its configuration and reads its tensor table, no weights.
    public init(source: ModelSource, size: Int) throws {
        let kind = try ModelRegistry.kind(of: source)
        switch source {
        case .gguf(let file):
            let config = try LlamaConfig(gguf: file.metadata, tensorNames: Set(file.tensorInfos.keys), file: file.path,
                                         architecture: kind)
            try self.init(config: config, naming: .gguf, tensors: file.tensorInfos, size: size, file: file.path)
        case .huggingFace(let folder):
            let config = try LlamaConfig(huggingFace: folder.config, file: folder.path + "/config.json", architecture: kind)
            try self.init(config: config, naming: .huggingFace, tensors: folder.weights.tensorInfos, size: size,
                          file: folder.path)
        }
    }

    /// Plans the split from a configuration and a tensor table. Throws `TensorParallelError` when `size` does not
    /// fit the model or a row-parallel tensor cannot be cut in whole blocks, `ModelError` for missing tensors or
    /// wrong shapes.
    public init(config c: LlamaConfig, naming: WeightNaming, tensors: [String: TensorInfo], size tp: Int,
                file: String) throws {
        let table = TensorTable(tensors: tensors, file: file)
        let h = c.headCount, kvh = c.kvHeadCount, d = c.headDim
        guard tp >= 1, tp <= h else {
            throw TensorParallelError.invalidSize(file: file, tp: tp, reason: "a rank needs at least one of the \(h) query heads")
        }
        guard c.vocabularySize >= tp else {
            throw TensorParallelError.invalidSize(file: file, tp: tp, reason: "more ranks than the \(c.vocabularySize) vocabulary rows")
        }
        let names = (0..<c.layerCount).map { LayerTensorNames(naming: naming, layer: $0, biases: c.attentionBias) }
        let (query, kv) = splitHeads(heads: h, kvHeads: kvh, into: tp)
        try checkHeadCuts(query, headDim: d, config: c, names: names, table: table)
        let ffn = try splitFFN(config: c, names: names, table: table, into: tp)
        let vocab = evenSplit(c.vocabularySize, into: tp)

        // Tensors, shapes and the bytes each rank holds.
        let embedding = !table.has(naming.embedding) && c.tieWordEmbeddings && table.has(naming.output)
            ? naming.output : naming.embedding
        let headName = c.tieWordEmbeddings ? embedding : naming.output
        let embeddingInfo = try table.info(embedding, [c.vocabularySize, c.hiddenSize])
        let headInfo = try table.info(headName, [c.vocabularySize, c.hiddenSize])
        var vectorFloats = c.hiddenSize                               // output norm (and rotary factors)
        try table.vector(naming.outputNorm, c.hiddenSize)
        if naming == .gguf, table.has("rope_freqs.weight") {
            try table.vector("rope_freqs.weight", d / 2); vectorFloats += d / 2
        }
        var layerShares = [[WeightShare]](repeating: [], count: tp)   // (rank, layer)
        for n in names {
            try table.vector(n.attentionNorm, c.hiddenSize); try table.vector(n.mlpNorm, c.hiddenSize)
            let q = try table.info(n.q, [c.queryDim, c.hiddenSize]), k = try table.info(n.k, [c.kvDim, c.hiddenSize])
            let v = try table.info(n.v, [c.kvDim, c.hiddenSize]), o = try table.info(n.o, [c.hiddenSize, c.queryDim])
            let gate = try table.info(n.gate, [c.intermediateSize, c.hiddenSize])
            let up = try table.info(n.up, [c.intermediateSize, c.hiddenSize])
            let down = try table.info(n.down, [c.hiddenSize, c.intermediateSize])
            if let b = n.qBias { try table.vector(b, c.queryDim) }
            if let b = n.kBias { try table.vector(b, c.kvDim) }
            if let b = n.vBias { try table.vector(b, c.kvDim) }
            for r in 0..<tp {
                let qRows = query[r].count * d, kvRows = kv[r].count * d
                var layer = WeightShare()
                layer.mapped = qRows * q.rowBytes + kvRows * (k.rowBytes + v.rowBytes) + ffn[r].count * (gate.rowBytes + up.rowBytes)
                // whole blocks: the checks above put every cut on a block boundary
                layer.owned = c.hiddenSize * ((o.type.byteCount(elements: qRows) ?? 0)
                    + (down.type.byteCount(elements: ffn[r].count) ?? 0))
                layer.vectors = 4 * (2 * c.hiddenSize + (c.attentionBias ? qRows + 2 * kvRows : 0))
                layerShares[r].append(layer)
            }
        }
        var built: [Shard] = []
        for r in 0..<tp {
            var share = WeightShare()
            for layer in layerShares[r] {
                share.mapped += layer.mapped; share.owned += layer.owned; share.vectors += layer.vectors
            }
            share.head = vocab[r].count * headInfo.rowBytes
            share.vectors += 4 * vectorFloats
            share.embeddingTable = embeddingInfo.rowCount * embeddingInfo.rowBytes
            built.append(Shard(rank: r, queryHeads: query[r], kvHeads: kv[r], intermediate: ffn[r], vocabulary: vocab[r],
                               weights: share, layerWeights: layerShares[r]))
        }
        self.config = c; self.naming = naming; self.file = file; self.size = tp; self.shards = built
        self.embeddingTensor = embedding; self.headTensor = headName
    }
}
