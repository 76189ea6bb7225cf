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

/// Row-parallel linears are cut at each rank's first unit of their axis: those input columns must be block
/// boundaries in every such tensor.
func checkCuts(_ layout: ModelLayout, _ ranges: [ShardAxis: [Range<Int>]], table: TensorTable) throws {
    for layer in layout.layers {
        for spec in layer.linears {
            guard case .rowParallel(let axis) = spec.sharding else { continue }
            let info = try table.info(spec.name, [spec.rows, spec.cols]), parts = ranges[axis]!, w = layout.width(axis)
            for r in parts.indices.dropFirst() where (parts[r].lowerBound * w) % info.type.blockSize != 0 {
                let what = axis == .features ? "features" : axis == .queryHeads ? "query heads" : "KV heads"
                let unit = axis == .features ? "" : " (head \(parts[r].lowerBound) × head size \(w))"
                throw TensorParallelError.unsplittable(tensor: spec.name, type: info.type, blockSize: info.type.blockSize,
                    tp: parts.count, reason: "rank \(r)'s \(what) start at input column \(parts[r].lowerBound * w)\(unit), inside a block")
            }
        }
    }
}

/// Features per rank, in whole blocks of the coarsest row-parallel encoding on the features axis (block sizes 1,
/// 32, 256 divide each other), as evenly as those allow.
func splitFeatures(_ layout: ModelLayout, table: TensorTable, into tp: Int) throws -> [Range<Int>] {
    var coarsest: TensorInfo? = nil
    for layer in layout.layers {
        for spec in layer.linears where spec.sharding == .rowParallel(.features) {
            let info = try table.info(spec.name, [spec.rows, spec.cols])
            if info.type.blockSize > (coarsest?.type.blockSize ?? 0) { coarsest = info }
        }
    }
    let unit = coarsest?.type.blockSize ?? 1, blocks = layout.features / unit
    guard blocks >= tp else {
        throw TensorParallelError.unsplittable(tensor: coarsest?.name ?? "features", type: coarsest?.type ?? .f32,
            blockSize: unit, tp: tp,
            reason: "its \(layout.features) input columns are \(blocks) block\(blocks == 1 ? "" : "s"), fewer than the ranks")
    }
    return evenSplit(blocks, into: tp).map { $0.lowerBound * unit ..< $0.upperBound * unit }
}
