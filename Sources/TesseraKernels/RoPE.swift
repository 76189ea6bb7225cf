// Rotary position embeddings: frequencies (with Llama-3 and linear scaling) and the two pair layouts.
import Foundation

/// How a head's dimensions are paired for rotation.
public enum RoPELayout: Sendable, Equatable {
    /// Pairs (2i, 2i+1): GGUF `llama` files, whose converter permuted the Q/K rows into this order.
    case adjacentPairs
    /// Pairs (i, i + headDim/2): Hugging Face checkpoints and GGUF `qwen2` (NeoX style).
    case rotateHalf
}

/// Rescaling of the rotary frequencies for contexts longer than the model was trained on.
public enum RoPEScaling: Sendable, Equatable {
    case none
    /// Positions divided by `factor` (equivalently, every frequency).
    case linear(factor: Double)
    /// Llama 3.1's band-wise rescaling: low frequencies divided by `factor`, high ones kept, a smooth blend between.
    case llama3(factor: Double, lowFrequencyFactor: Double, highFrequencyFactor: Double, originalContextLength: Int)
}

/// Rotary embedding of one head size: its inverse frequencies and layout.
public struct RoPE: Sendable {
    public let headDim: Int
    public let layout: RoPELayout
    /// θ_i for pair i, `[headDim / 2]`.
    public let inverseFrequencies: [Float]

    /// - Parameter frequencyFactors: per-pair divisors (GGUF `rope_freqs.weight`), applied after `scaling`.
    public init(headDim: Int, base: Double, scaling: RoPEScaling = .none, layout: RoPELayout,
                frequencyFactors: [Float]? = nil) {
        self.headDim = headDim
        self.layout = layout
        let half = headDim / 2
        var freqs = [Float](repeating: 0, count: half)
        for i in 0..<half {
            // float32 exponent and power, as the reference implementation computes them
            let exponent = Float(2 * i) / Float(headDim)
            freqs[i] = 1 / Float(Foundation.pow(base, Double(exponent)))
        }
        switch scaling {
        case .none: break
        case .linear(let factor):
            for i in 0..<half { freqs[i] = Float(Double(freqs[i]) / factor) }
        case let .llama3(factor, low, high, original):
            let lowWavelength = Double(original) / low, highWavelength = Double(original) / high
            for i in 0..<half {
                let f = Double(freqs[i]), wavelength = 2 * Double.pi / f
                if wavelength < highWavelength { continue }
                if wavelength > lowWavelength { freqs[i] = Float(f / factor); continue }
                let smooth = (Double(original) / wavelength - low) / (high - low)
                freqs[i] = Float((1 - smooth) * f / factor + smooth * f)
            }
        }
        if let frequencyFactors {
            for i in 0..<min(half, frequencyFactors.count) { freqs[i] /= frequencyFactors[i] }
        }
        inverseFrequencies = freqs
    }

    /// cos and sin of `position · θ_i` for each pair, `[headDim / 2]` each.
    public func angles(position: Int, cos: UnsafeMutablePointer<Float>, sin: UnsafeMutablePointer<Float>) {
        let p = Float(position)
        inverseFrequencies.withUnsafeBufferPointer { f in
            for i in 0..<f.count {
                let angle = p * f[i]
                cos[i] = Foundation.cos(angle)
                sin[i] = Foundation.sin(angle)
            }
        }
    }

    /// Rotates `heads` consecutive heads of `x` (`[heads × headDim]`) in place by the given angles.
    @inline(__always) public func apply(_ x: UnsafeMutablePointer<Float>, heads: Int,
                                        cos: UnsafePointer<Float>, sin: UnsafePointer<Float>) {
        let half = headDim / 2
        for h in 0..<heads {
            let v = x + h &* headDim
            switch layout {
            case .rotateHalf:
                for i in 0..<half {
                    let a = v[i], b = v[i &+ half], c = cos[i], s = sin[i]
                    v[i] = a * c - b * s
                    v[i &+ half] = b * c + a * s
                }
            case .adjacentPairs:
                for i in 0..<half {
                    let a = v[2 &* i], b = v[2 &* i &+ 1], c = cos[i], s = sin[i]
                    v[2 &* i] = a * c - b * s
                    v[2 &* i &+ 1] = b * c + a * s
                }
            }
        }
    }
}
