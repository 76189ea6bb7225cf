// Which product path each of a model's matrices takes, so that no tensor runs the slow path silently.
import Foundation
import TesseraFormats
import TesseraKernels

/// One matrix a model multiplies by (a layer linear or the output head), as it will be held after loading.
public struct ProductPath: Sendable, Equatable {
    public var name: String
    /// The type the model holds (the stored type, or the `--quantize` target when the load converts it).
    public var type: GGMLType
    public var shape: [Int]
    public var bytes: Int
    /// A `.fast` kernel exists for `type` (otherwise `.fast` products run the exact float path for this matrix).
    public var fast: Bool

    /// How `.fast` products run for this matrix.
    public var description: String {
        switch type.fastActivationFormat {
        case .float?: return "fast (float activations, SIMD)"
        case .q8_0?: return "fast (Q8_0 activations, integer dot products)"
        case .q8_K?: return "fast (Q8_K activations, integer dot products)"
        case nil: return "exact float32 (no fast kernel for \(type): each row is dequantized per product)"
        }
    }
}

extension ModelBlueprint {
    /// Every matrix the model multiplies by (all layers' linears, then the head), with its path; `quantize` is the
    /// load's `--quantize` type.
    public func productPaths(quantize: GGMLType? = nil) -> [ProductPath] {
        let tensors = source.tensors.tensorInfos
        let specs = layout.layers.flatMap(\.linears) + [layout.head]
        return specs.compactMap { spec in
            guard var info = tensors[spec.name] else { return nil }
            if let quantize, [.f32, .f16, .bf16].contains(info.type) {
                let target = GGMLType.conversionTarget(for: info, requested: quantize)
                if target.outcome == .converted { info.type = target.type }
            }
            return ProductPath(name: spec.name, type: info.type, shape: info.shape, bytes: info.rowCount * info.rowBytes,
                               fast: info.type.fastActivationFormat != nil)
        }
    }

    /// One notice for the matrices without a fast kernel, grouped by type (count, bytes, share of the bytes a
    /// decode step reads, a few names), or nil when every matrix has one.
    public func slowPathNotice(quantize: GGMLType? = nil) -> String? {
        let paths = productPaths(quantize: quantize)
        let slow = paths.filter { !$0.fast }
        guard !slow.isEmpty else { return nil }
        let total = max(1, paths.reduce(0) { $0 + $1.bytes })
        var lines = ["\(file): \(slow.count) of \(paths.count) matrices have no fast kernel and run the exact float32 path (each row dequantized per product, several times slower than a fast kernel):"]
        for type in Set(slow.map(\.type)).sorted(by: { $0.rawValue < $1.rawValue }) {
            let group = slow.filter { $0.type == type }, bytes = group.reduce(0) { $0 + $1.bytes }
            let names = group.prefix(3).map(\.name).joined(separator: ", ") + (group.count > 3 ? ", …" : "")
            lines.append(String(format: "  %@: %d tensor%@, %.2f MiB, %.0f%% of the weights a decode step reads (%@)",
                                type.description, group.count, group.count == 1 ? "" : "s", Double(bytes) / 1048576,
                                100 * Double(bytes) / Double(total), names))
        }
        lines.append("  (`infer-worker inspect --model \(file)` lists every tensor's path)")
        return lines.joined(separator: "\n")
    }
}
