// How the plan cuts heads, FFN features and vocabulary rows, and the tensor lookups it checks them against.
import TesseraFormats
import TesseraModels

/// `units` split into `parts` contiguous ranges, the first `units % parts` one longer.
func evenSplit(_ units: Int, into parts: Int) -> [Range<Int>] {
    var ranges: [Range<Int>] = [], start = 0
    for p in 0..<parts {
        let length = units / parts + (p < units % parts ? 1 : 0)
        ranges.append(start ..< start + length); start += length
    }
    return ranges
}

/// Query and KV heads per rank: whole KV groups when `tp <= kvHeads`; otherwise the ranks are spread over the KV
/// groups and each group's query heads are split among its ranks, each holding that group's KV head.
func splitHeads(heads: Int, kvHeads: Int, into tp: Int) -> (query: [Range<Int>], kv: [Range<Int>]) {
    let group = heads / kvHeads
    var query: [Range<Int>] = [], kv: [Range<Int>] = []
    if tp <= kvHeads {
        for groups in evenSplit(kvHeads, into: tp) {
            kv.append(groups); query.append(groups.lowerBound * group ..< groups.upperBound * group)
        }
    } else {
        for (k, ranks) in evenSplit(tp, into: kvHeads).enumerated() {
            for part in evenSplit(group, into: ranks.count) {
                kv.append(k ..< k + 1); query.append(k * group + part.lowerBound ..< k * group + part.upperBound)
            }
        }
    }
    return (query, kv)
}

/// o is cut at the ranks' first query heads: those columns must be block boundaries in every layer's o.
func checkHeadCuts(_ query: [Range<Int>], headDim d: Int, config c: LlamaConfig, names: [LayerTensorNames],
                   table: TensorTable) throws {
    for n in names {
        let o = try table.info(n.o, [c.hiddenSize, c.queryDim])
        for r in query.indices.dropFirst() where (query[r].lowerBound * d) % o.type.blockSize != 0 {
            throw TensorParallelError.unsplittable(tensor: n.o, type: o.type, blockSize: o.type.blockSize, tp: query.count,
                reason: "rank \(r)'s query heads start at input column \(query[r].lowerBound * d) "
                    + "(head \(query[r].lowerBound) × head size \(d)), inside a block")
        }
    }
}

/// FFN features per rank, in whole blocks of the coarsest `ffn_down` encoding (block sizes 1, 32, 256 divide
/// each other), as evenly as those allow.
func splitFFN(config c: LlamaConfig, names: [LayerTensorNames], table: TensorTable, into tp: Int) throws -> [Range<Int>] {
    var coarsest = try table.info(names[0].down, [c.hiddenSize, c.intermediateSize])
    for n in names {
        let down = try table.info(n.down, [c.hiddenSize, c.intermediateSize])
        if down.type.blockSize > coarsest.type.blockSize { coarsest = down }
    }
    let unit = coarsest.type.blockSize, blocks = c.intermediateSize / unit
    guard blocks >= tp else {
        throw TensorParallelError.unsplittable(tensor: coarsest.name, type: coarsest.type, blockSize: unit, tp: tp,
            reason: "its \(c.intermediateSize) input columns are \(blocks) block\(blocks == 1 ? "" : "s"), fewer than the ranks")
    }
    return evenSplit(blocks, into: tp).map { $0.lowerBound * unit ..< $0.upperBound * unit }
}

/// Names of one decoder layer's tensors.
struct LayerTensorNames {
    let q, k, v, o, gate, up, down, attentionNorm, mlpNorm: String
    let qBias, kBias, vBias: String?

    init(naming: WeightNaming, layer l: Int, biases: Bool) {
        q = naming.layer(l, "attn_q"); k = naming.layer(l, "attn_k"); v = naming.layer(l, "attn_v")
        o = naming.layer(l, "attn_output")
        gate = naming.layer(l, "ffn_gate"); up = naming.layer(l, "ffn_up"); down = naming.layer(l, "ffn_down")
        attentionNorm = naming.layer(l, "attn_norm"); mlpNorm = naming.layer(l, "ffn_norm")
        qBias = biases ? naming.layer(l, "attn_q", bias: true) : nil
        kBias = biases ? naming.layer(l, "attn_k", bias: true) : nil
        vBias = biases ? naming.layer(l, "attn_v", bias: true) : nil
    }
}

/// Lookups in a tensor table with the model loader's errors.
struct TensorTable {
    let tensors: [String: TensorInfo]
    let file: String

    func has(_ name: String) -> Bool { tensors[name] != nil }

    func info(_ name: String, _ shape: [Int]) throws -> TensorInfo {
        guard let info = tensors[name] else { throw ModelError.missingTensor(file: file, tensor: name) }
        guard info.shape == shape else { throw ModelError.shapeMismatch(tensor: name, expected: shape, found: info.shape) }
        return info
    }

    /// A `[count]` vector in a float encoding (norms, biases).
    @discardableResult
    func vector(_ name: String, _ count: Int) throws -> TensorInfo {
        let info = try info(name, [count])
        guard !info.type.isQuantized else {
            throw ModelError.unsupportedTensor(tensor: name, reason: "\(info.type) vectors are not supported (F32, F16, BF16)")
        }
        return info
    }
}
