// llama.cpp's file types ("mixes"): a base type and the per-tensor rules `llama-quantize` applies without an
// importance matrix — the output head (or a tied embedding) at Q6_K, some attention-value and FFN-down layers at
// more bits, and fallbacks for rows that are not a multiple of the chosen type's block. The rules are those of
// llama.cpp's `llama_tensor_get_type` for dense (non-expert) models, written from its description of each mix.

/// One of llama.cpp's file types, by its `llama-quantize` name (`q4_k_m`, `q6_k`, `q8_0`, `iq4_xs`, ...).
public struct QuantizationMix: Sendable, Equatable, CustomStringConvertible {
    /// The lower-case name `llama-quantize` takes.
    public let name: String
    /// llama.cpp's `general.file_type` (LLAMA_FTYPE_MOSTLY_*).
    public let fileType: UInt32
    /// The type of every matrix no rule names.
    public let base: GGMLType

    public var description: String { name }

    /// Every mix Tessera writes, in the order help texts list them.
    public static let all: [QuantizationMix] = [
        .init("q2_k", 10, .q2_K), .init("q3_k_s", 11, .q3_K), .init("q3_k_m", 12, .q3_K), .init("q3_k_l", 13, .q3_K),
        .init("q4_k_s", 14, .q4_K), .init("q4_k_m", 15, .q4_K), .init("q5_k_s", 16, .q5_K), .init("q5_k_m", 17, .q5_K),
        .init("q6_k", 18, .q6_K), .init("iq4_nl", 25, .iq4_nl), .init("iq4_xs", 30, .iq4_xs),
        .init("q4_0", 2, .q4_0), .init("q4_1", 3, .q4_1), .init("q5_0", 8, .q5_0), .init("q5_1", 9, .q5_1),
        .init("q8_0", 7, .q8_0), .init("f16", 1, .f16), .init("bf16", 32, .bf16), .init("f32", 0, .f32),
    ]

    private init(_ name: String, _ fileType: UInt32, _ base: GGMLType) {
        self.name = name; self.fileType = fileType; self.base = base
    }

    /// The mix named `name` (any case; `q4_k` and `q5_k` mean the `_m` mixes, `q3_k` the `_m` one, as
    /// llama-quantize reads them), or nil.
    public init?(name: String) {
        let aliases = ["q4_k": "q4_k_m", "q5_k": "q5_k_m", "q3_k": "q3_k_m"]
        let lower = name.lowercased()
        guard let mix = QuantizationMix.all.first(where: { $0.name == (aliases[lower] ?? lower) }) else { return nil }
        self = mix
    }

    /// What the mix does with each tensor of a model (results in the order of `tensors`): `headsPerKVHead` is the
    /// attention's query heads per key/value head; `pure` applies the base type to every matrix (only the fallbacks
    /// for row lengths remain), as `llama-quantize --pure` does. The layer counters of the rules run over the tensors
    /// ordered by layer, then name, as llama.cpp's loader orders them.
    public func plan(_ tensors: [TensorInfo], headsPerKVHead: Int, pure: Bool = false) -> [ConversionTarget] {
        let tied = !tensors.contains { $0.name == "output.weight" }
        let valueLayers = tensors.filter { Role(name: $0.name).isAttentionValue }.count
        let downLayers = tensors.filter { Role(name: $0.name) == .ffnDown }.count
        let order = tensors.indices.sorted { a, b in
            let (la, lb) = (Self.layer(tensors[a].name), Self.layer(tensors[b].name))
            return la != lb ? la < lb : tensors[a].name < tensors[b].name
        }
        var value = 0, down = 0
        var result = [ConversionTarget](repeating: ConversionTarget(type: .f32, outcome: .kept), count: tensors.count)
        for i in order {
            let info = tensors[i]
            guard Self.isQuantizable(info) else {
                result[i] = ConversionTarget(type: info.type, outcome: .kept)
                continue
            }
            var type = base
            if base.isBlockQuantized && !pure {
                let role = Role(name: info.name)
                type = rule(role, info, tied: tied, gqa: headsPerKVHead, value: (value, valueLayers), down: (down, downLayers))
                if role.isAttentionValue { value += 1 }
                if role == .ffnDown { down += 1 }
            }
            let fitted = Self.fallback(type, rowLength: info.rowLength)
            result[i] = ConversionTarget(type: fitted, outcome: fitted != type ? .fellBack : fitted == info.type ? .kept : .converted)
        }
        return result
    }

    /// N of a `blk.N.` name; −1 for the tensors outside the layers.
    static func layer(_ name: String) -> Int {
        guard name.hasPrefix("blk.") else { return -1 }
        return Int(name.dropFirst(4).prefix { $0.isNumber }) ?? -1
    }

    /// Matrices llama.cpp quantizes: two or more dimensions, named `…weight`, not a norm, an expert router, a
    /// position or token-type embedding.
    public static func isQuantizable(_ info: TensorInfo) -> Bool {
        let name = info.name
        return info.shape.count >= 2 && name.hasSuffix("weight") && !name.contains("_norm.weight")
            && !name.contains("ffn_gate_inp.weight") && name != "position_embd.weight" && name != "token_types.weight"
    }

    /// The tensor's part in the model, as the rules see it.
    enum Role: Equatable {
        case output, tokenEmbedding, attentionQKV, attentionValue, attentionOutput, ffnDown, other

        init(name: String) {
            if name == "output.weight" { self = .output }
            else if name == "token_embd.weight" { self = .tokenEmbedding }
            else if name.contains("attn_qkv.weight") { self = .attentionQKV }
            else if name.contains("attn_v.weight") { self = .attentionValue }
            else if name.contains("attn_output.weight") { self = .attentionOutput }
            else if name.contains("ffn_down") { self = .ffnDown }
            else { self = .other }
        }

        var isAttentionValue: Bool { self == .attentionValue || self == .attentionQKV }
    }

    /// llama.cpp's choice of layers that get more bits: the first and last eighth, and every third in between.
    static func moreBits(_ layer: Int, of layers: Int) -> Bool {
        layer < layers / 8 || layer >= 7 * layers / 8 || (layer - layers / 8) % 3 == 2
    }

    private func rule(_ role: Role, _ info: TensorInfo, tied: Bool, gqa: Int,
                      value: (index: Int, count: Int), down: (index: Int, count: Int)) -> GGMLType {
        switch role {
        case .output:
            return headType(info)
        case .tokenEmbedding where tied:
            return headType(info)
        case .attentionValue, .attentionQKV:
            switch name {
            case "q2_k": return gqa >= 4 ? .q4_K : .q3_K
            case "q3_k_m": return value.index < 2 ? .q5_K : .q4_K
            case "q3_k_l": return .q5_K
            case "iq4_nl", "iq4_xs": return gqa >= 4 ? .q5_K : base
            case "q4_k_m", "q5_k_m": return Self.moreBits(value.index, of: value.count) ? .q6_K : base
            case "q4_k_s": return value.index < 4 ? .q5_K : base
            default: return base
            }
        case .ffnDown:
            let (i, n) = down
            switch name {
            case "q2_k": return .q3_K
            case "q3_k_m": return i < n / 16 ? .q5_K : .q4_K
            case "q3_k_l": return .q5_K
            case "q4_k_m", "q5_k_m": return Self.moreBits(i, of: n) ? .q6_K : base
            case "iq4_nl", "iq4_xs", "q4_k_s": return i < n / 8 ? .q5_K : base
            default: return base
            }
        case .attentionOutput:
            switch name {
            case "q2_k": return .q3_K
            case "q3_k_m": return .q4_K
            case "q3_k_l": return .q5_K
            default: return base
            }
        case .tokenEmbedding, .other:
            return base
        }
    }

    /// The output head's type (a tied embedding's too): Q6_K, Q8_0 for a q8_0 file or rows that do not fit the base
    /// type's blocks.
    private func headType(_ info: TensorInfo) -> GGMLType {
        if info.rowLength % base.blockSize != 0 { return .q8_0 }
        return base == .q8_0 ? .q8_0 : .q6_K
    }

    /// The type a row of `rowLength` can hold instead of `type`: 256-element types fall back to a 32-element type of
    /// about the same size (Q2_K and Q3_K to Q4_0, Q4_K to Q5_0, Q5_K to Q5_1, Q6_K to Q8_0, IQ4_XS to IQ4_NL), and
    /// what still does not fit becomes F16.
    static func fallback(_ type: GGMLType, rowLength: Int) -> GGMLType {
        guard rowLength % type.blockSize != 0 else { return type }
        let smaller: [GGMLType: GGMLType] = [.q2_K: .q4_0, .q3_K: .q4_0, .q4_K: .q5_0, .q5_K: .q5_1, .q6_K: .q8_0,
                                             .iq4_xs: .iq4_nl]
        let candidate = smaller[type] ?? type
        return rowLength % candidate.blockSize == 0 ? candidate : .f16
    }
}

extension GGMLType {
    /// A block type (not F32, F16 or BF16).
    public var isBlockQuantized: Bool { blockSize > 1 }
}
