// Test doubles: seeded random weights, an in-memory tensor store, and a straightforward Double-precision Llama
// forward pass (no cache, no batching) to check the optimized model against.
import Foundation
import TesseraFormats
import TesseraModels

/// SplitMix64: a small deterministic generator for test weights.
struct SeededRandom {
    var state: UInt64
    mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
    /// Uniform in [-scale, scale).
    mutating func uniform(_ scale: Float) -> Float {
        (Float(next() >> 40) / Float(1 << 24) * 2 - 1) * scale
    }
    mutating func values(_ count: Int, scale: Float) -> [Float] { (0..<count).map { _ in uniform(scale) } }
}

/// Float32 tensors held in memory, served through the `TensorStore` protocol.
final class MemoryStore: TensorStore, @unchecked Sendable {
    private(set) var tensorInfos: [String: TensorInfo] = [:]
    private var buffers: [String: UnsafeMutableRawBufferPointer] = [:]

    func add(_ name: String, shape: [Int], values: [Float]) {
        let buffer = UnsafeMutableRawBufferPointer.allocate(byteCount: values.count * 4, alignment: 64)
        values.withUnsafeBytes { buffer.copyMemory(from: $0) }
        buffers[name] = buffer
        tensorInfos[name] = TensorInfo(name: name, type: .f32, shape: shape)
    }

    func view(_ name: String) throws -> TensorView {
        guard let info = tensorInfos[name], let buffer = buffers[name] else {
            throw FormatError(path: "memory", reason: "no tensor '\(name)'")
        }
        return TensorView(info: info, data: UnsafeRawBufferPointer(buffer))
    }

    func view(_ name: String, rows: Range<Int>) throws -> TensorView {
        var v = try view(name)
        let rowBytes = v.info.rowBytes
        v.data = UnsafeRawBufferPointer(rebasing: v.data[rows.lowerBound * rowBytes ..< rows.upperBound * rowBytes])
        v.info.shape[0] = rows.count
        return v
    }

    deinit { for b in buffers.values { b.deallocate() } }
}

/// Llama-family weights in Hugging Face naming, drawn at random for `config`.
func randomWeights(_ c: LlamaConfig, seed: UInt64) -> [(name: String, shape: [Int], values: [Float])] {
    var rng = SeededRandom(state: seed)
    var out: [(String, [Int], [Float])] = []
    func add(_ name: String, _ shape: [Int], scale: Float) {
        out.append((name, shape, rng.values(shape.reduce(1, *), scale: scale)))
    }
    func norm(_ name: String) { out.append((name, [c.hiddenSize], (0..<c.hiddenSize).map { _ in 1 + rng.uniform(0.2) })) }
    let h = c.hiddenSize, s = 1 / Float(h).squareRoot()
    add("model.embed_tokens.weight", [c.vocabularySize, h], scale: 1)
    for l in 0..<c.layerCount {
        let p = "model.layers.\(l)."
        norm(p + "input_layernorm.weight")
        add(p + "self_attn.q_proj.weight", [c.queryDim, h], scale: s)
        add(p + "self_attn.k_proj.weight", [c.kvDim, h], scale: s)
        add(p + "self_attn.v_proj.weight", [c.kvDim, h], scale: s)
        if c.attentionBias {
            add(p + "self_attn.q_proj.bias", [c.queryDim], scale: 0.5)
            add(p + "self_attn.k_proj.bias", [c.kvDim], scale: 0.5)
            add(p + "self_attn.v_proj.bias", [c.kvDim], scale: 0.5)
        }
        add(p + "self_attn.o_proj.weight", [h, c.queryDim], scale: 1 / Float(c.queryDim).squareRoot())
        norm(p + "post_attention_layernorm.weight")
        add(p + "mlp.gate_proj.weight", [c.intermediateSize, h], scale: s)
        add(p + "mlp.up_proj.weight", [c.intermediateSize, h], scale: s)
        add(p + "mlp.down_proj.weight", [h, c.intermediateSize], scale: 1 / Float(c.intermediateSize).squareRoot())
    }
    norm("model.norm.weight")
    if !c.tieWordEmbeddings { add("lm_head.weight", [c.vocabularySize, h], scale: s) }
    return out
}

/// Inverse rotary frequencies in Double, from the published definitions of each scaling.
func referenceInverseFrequencies(_ c: LlamaConfig) -> [Double] {
    (0..<(c.headDim / 2)).map { i in
        let f = 1 / pow(c.ropeTheta, Double(2 * i) / Double(c.headDim))
        switch c.ropeScaling {
        case .none: return f
        case .linear(let factor): return f / factor
        case let .llama3(factor, low, high, original):
            let wavelength = 2 * Double.pi / f
            if wavelength < Double(original) / high { return f }
            if wavelength > Double(original) / low { return f / factor }
            let smooth = (Double(original) / wavelength - low) / (high - low)
            return (1 - smooth) * f / factor + smooth * f
        }
    }
}

/// Logits at every position of one sequence, in Double, straight from the definitions (HF weight layout).
func naiveLogits(_ c: LlamaConfig, weights: [String: [Float]], tokens: [Int]) -> [[Double]] {
    let h = c.hiddenSize, d = c.headDim, n = tokens.count, invFreq = referenceInverseFrequencies(c)
    func linear(_ name: String, _ x: [Double], bias: String? = nil) -> [Double] {
        let w = weights[name]!, cols = x.count, rows = w.count / cols
        let b = bias.flatMap { weights[$0] }
        return (0..<rows).map { r in
            (0..<cols).reduce(Double(b?[r] ?? 0)) { $0 + Double(w[r * cols + $1]) * x[$1] }
        }
    }
    func rmsNorm(_ x: [Double], _ name: String) -> [Double] {
        let w = weights[name]!, scale = 1 / (x.reduce(0) { $0 + $1 * $1 } / Double(x.count) + Double(c.rmsNormEps)).squareRoot()
        return x.indices.map { Double(w[$0]) * x[$0] * scale }
    }
    func rotate(_ v: [Double], heads: Int, position: Int) -> [Double] {
        var out = v
        for hd in 0..<heads {
            for i in 0..<(d / 2) {
                let a = v[hd * d + i], b = v[hd * d + i + d / 2], angle = Double(position) * invFreq[i]
                out[hd * d + i] = a * cos(angle) - b * sin(angle)
                out[hd * d + i + d / 2] = b * cos(angle) + a * sin(angle)
            }
        }
        return out
    }
    let embedding = weights["model.embed_tokens.weight"]!
    var x = tokens.map { t in (0..<h).map { Double(embedding[t * h + $0]) } }
    for l in 0..<c.layerCount {
        let p = "model.layers.\(l)."
        let normed = x.map { rmsNorm($0, p + "input_layernorm.weight") }
        let bias = { (name: String) in c.attentionBias ? p + "self_attn.\(name).bias" : nil }
        let q = normed.enumerated().map { rotate(linear(p + "self_attn.q_proj.weight", $1, bias: bias("q_proj")), heads: c.headCount, position: $0) }
        let k = normed.enumerated().map { rotate(linear(p + "self_attn.k_proj.weight", $1, bias: bias("k_proj")), heads: c.kvHeadCount, position: $0) }
        let v = normed.map { linear(p + "self_attn.v_proj.weight", $0, bias: bias("v_proj")) }
        for t in 0..<n {
            var attended = [Double](repeating: 0, count: c.queryDim)
            let first = c.slidingWindow.map { max(0, t - $0 + 1) } ?? 0
            for hd in 0..<c.headCount {
                let kv = hd / (c.headCount / c.kvHeadCount)
                let scores = (first...t).map { j in
                    (0..<d).reduce(0.0) { $0 + q[t][hd * d + $1] * k[j][kv * d + $1] } / Double(d).squareRoot()
                }
                let peak = scores.max()!, e = scores.map { exp($0 - peak) }, sum = e.reduce(0, +)
                for (jj, j) in (first...t).enumerated() {
                    for i in 0..<d { attended[hd * d + i] += e[jj] / sum * v[j][kv * d + i] }
                }
            }
            let o = linear(p + "self_attn.o_proj.weight", attended)
            for i in 0..<h { x[t][i] += o[i] }
            let m = rmsNorm(x[t], p + "post_attention_layernorm.weight")
            let gate = linear(p + "mlp.gate_proj.weight", m), up = linear(p + "mlp.up_proj.weight", m)
            let act = gate.indices.map { gate[$0] / (1 + exp(-gate[$0])) * up[$0] }
            let down = linear(p + "mlp.down_proj.weight", act)
            for i in 0..<h { x[t][i] += down[i] }
        }
    }
    let head = c.tieWordEmbeddings ? "model.embed_tokens.weight" : "lm_head.weight"
    return x.map { linear(head, rmsNorm($0, "model.norm.weight")) }
}
