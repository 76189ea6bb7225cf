import ArgumentParser
import Foundation
import TesseraFormats

/// `infer-bench synth-model`: writes a Llama-shaped GGUF with random weights (shapes are what matter for speed),
/// readable by Tessera and by llama.cpp: llama metadata, a SentencePiece-style vocabulary with byte fallback, and
/// every linear quantized to the chosen type.
struct SyntheticModelCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "synth-model", abstract: "Write a random-weight Llama-shaped GGUF for benchmarks.")

    enum Preset: String, ExpressibleByArgument, CaseIterable {
        /// TinyLlama-1.1B's shape: 22 layers, hidden 2048, 32 heads / 4 KV heads, FFN 5632, vocab 32000.
        case llama1b = "1b"
        /// Qwen2.5-0.5B's shape: 24 layers, hidden 896, 14 heads / 2 KV heads, FFN 4864, vocab 151936 (rows of 896
        /// are not whole 256-blocks: llama.cpp's K-quant mixes fall back to other types there).
        case hidden896 = "896"
        /// A small shape for quick checks: 4 layers, hidden 256.
        case tiny

        var shape: Shape {
            switch self {
            case .llama1b: return Shape(layers: 22, hidden: 2048, heads: 32, kvHeads: 4, ffn: 5632, vocab: 32000)
            case .hidden896: return Shape(layers: 24, hidden: 896, heads: 14, kvHeads: 2, ffn: 4864, vocab: 151936)
            case .tiny: return Shape(layers: 4, hidden: 256, heads: 8, kvHeads: 4, ffn: 768, vocab: 2048)
            }
        }
    }

    /// The weight types this command writes itself (llama.cpp's quantizer makes the others from the f16 file).
    static let types: [String: GGMLType] = ["q8_0": .q8_0, "q5_0": .q5_0, "q5_1": .q5_1, "q4_0": .q4_0, "f16": .f16,
                                            "f32": .f32]

    @Option(help: "Output path.") var out: String
    @Option(help: "Shape: \(Preset.allCases.map(\.rawValue).joined(separator: ", ")).") var preset: Preset = .llama1b
    @Option(help: "Weight type of the linears and embeddings: q8_0, q5_0, q5_1, q4_0, f16 or f32.") var type = "q8_0"
    @Option(help: "Random seed.") var seed: UInt64 = 1

    struct Shape { let layers, hidden, heads, kvHeads, ffn, vocab: Int }

    func run() throws {
        guard let weightType = Self.types[type] else { throw ValidationError("--type must be one of \(Self.types.keys.sorted())") }
        try Self.write(out: out, preset: preset, type: weightType, seed: seed)
        let size = (try? FileManager.default.attributesOfItem(atPath: out)[.size] as? Int) ?? 0
        print("wrote \(out): \(preset.rawValue) Llama shape, \(type), \(size >> 20) MiB")
    }

    /// Writes the random-weight model of `preset`'s shape with every linear and the embeddings in `weightType`.
    static func write(out: String, preset: Preset, type weightType: GGMLType, seed: UInt64) throws {
        let s = preset.shape
        let headDim = s.hidden / s.heads
        var writer = try GGUFWriter()
        let meta: [(String, GGUFValue)] = [
            ("general.architecture", .string("llama")), ("general.name", .string("tessera-synthetic-\(preset.rawValue)")),
            ("llama.context_length", .uint32(2048)), ("llama.embedding_length", .uint32(UInt32(s.hidden))),
            ("llama.block_count", .uint32(UInt32(s.layers))), ("llama.feed_forward_length", .uint32(UInt32(s.ffn))),
            ("llama.attention.head_count", .uint32(UInt32(s.heads))), ("llama.attention.head_count_kv", .uint32(UInt32(s.kvHeads))),
            ("llama.rope.dimension_count", .uint32(UInt32(headDim))), ("llama.rope.freq_base", .float32(10000)),
            ("llama.attention.layer_norm_rms_epsilon", .float32(1e-5)), ("general.file_type", .uint32(weightType.llamaFileType ?? 0)),
        ]
        for (k, v) in meta { try writer.set(k, v) }
        let vocab = vocabulary(size: s.vocab)
        try writer.set("tokenizer.ggml.model", .string("llama"))
        try writer.set("tokenizer.ggml.tokens", .array(vocab.map { .string($0.piece) }))
        try writer.set("tokenizer.ggml.scores", .array(vocab.map { .float32($0.score) }))
        try writer.set("tokenizer.ggml.token_type", .array(vocab.map { .int32($0.type) }))
        try writer.set("tokenizer.ggml.bos_token_id", .uint32(1))
        try writer.set("tokenizer.ggml.eos_token_id", .uint32(2))
        try writer.set("tokenizer.ggml.unknown_token_id", .uint32(0))
        try writer.set("tokenizer.ggml.add_bos_token", .bool(true))

        var rng = SplitMix(seed: seed)
        func matrix(_ name: String, rows: Int, cols: Int) throws {
            let bytesPerRow = weightType.byteCount(elements: cols)!
            var data = [UInt8](repeating: 0, count: rows * bytesPerRow)
            var row = [Float](repeating: 0, count: cols)
            let scale = 1 / Float(cols).squareRoot()
            data.withUnsafeMutableBytes { out in
                for r in 0..<rows {
                    for c in 0..<cols { row[c] = rng.nextSigned() * scale }
                    weightType.quantize(row, count: cols, into: out.baseAddress! + r * bytesPerRow)
                }
            }
            try writer.addTensor(name, type: weightType, shape: [rows, cols], data: data)
        }
        func ones(_ name: String, _ n: Int) throws { try writer.addTensor(name, shape: [n], values: [Float](repeating: 1, count: n)) }

        try matrix("token_embd.weight", rows: s.vocab, cols: s.hidden)
        for l in 0..<s.layers {
            try ones("blk.\(l).attn_norm.weight", s.hidden)
            try matrix("blk.\(l).attn_q.weight", rows: s.heads * headDim, cols: s.hidden)
            try matrix("blk.\(l).attn_k.weight", rows: s.kvHeads * headDim, cols: s.hidden)
            try matrix("blk.\(l).attn_v.weight", rows: s.kvHeads * headDim, cols: s.hidden)
            try matrix("blk.\(l).attn_output.weight", rows: s.hidden, cols: s.heads * headDim)
            try ones("blk.\(l).ffn_norm.weight", s.hidden)
            try matrix("blk.\(l).ffn_gate.weight", rows: s.ffn, cols: s.hidden)
            try matrix("blk.\(l).ffn_up.weight", rows: s.ffn, cols: s.hidden)
            try matrix("blk.\(l).ffn_down.weight", rows: s.hidden, cols: s.ffn)
        }
        try ones("output_norm.weight", s.hidden)
        try matrix("output.weight", rows: s.vocab, cols: s.hidden)
        try writer.write(to: out)
    }

    /// `<unk> <s> </s>`, the 256 byte tokens, then synthetic word pieces (score falls with index).
    static func vocabulary(size: Int) -> [(piece: String, score: Float, type: Int32)] {
        var v: [(String, Float, Int32)] = [("<unk>", 0, 2), ("<s>", 0, 3), ("</s>", 0, 3)]
        for b in 0..<256 { v.append((String(format: "<0x%02X>", b), 0, 6)) }
        let letters = Array("etaoinshrdlucmfwypvbgkjqxz")
        var n = 0
        while v.count < size {
            var piece = "", k = n
            repeat { piece.append(letters[k % letters.count]); k /= letters.count } while k > 0
            v.append(("▁" + piece, -Float(v.count), 1))
            n += 1
        }
        return v
    }
}

/// SplitMix64: a small, fast, seeded generator for random weights.
struct SplitMix {
    var state: UInt64
    init(seed: UInt64) { state = seed }
    mutating func next() -> UInt64 {
        state &+= 0x9E3779B97F4A7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58476D1CE4E5B9
        z = (z ^ (z >> 27)) &* 0x94D049BB133111EB
        return z ^ (z >> 31)
    }
    /// Uniform in [-1.73, 1.73): unit variance.
    mutating func nextSigned() -> Float { (Float(next() >> 40) / Float(1 << 24) * 2 - 1) * 1.7320508 }
}
