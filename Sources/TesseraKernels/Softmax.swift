// Numerically stable softmax and SiLU-gated products.
import CTesseraKernels
import Foundation

/// In-place softmax over `count` floats: exp(x - max) / Σ.
@inline(__always) public func softmax(_ x: UnsafeMutablePointer<Float>, count: Int) {
    guard count > 0 else { return }
    var peak = x[0]
    for i in 1..<count where x[i] > peak { peak = x[i] }
    var sum: Float = 0
    for i in 0..<count {
        let e = Foundation.exp(x[i] - peak)
        x[i] = e
        sum += e
    }
    for i in 0..<count { x[i] /= sum }
}

/// SwiGLU's gate: `gate[i] = silu(gate[i]) · up[i]`, silu(g) = g / (1 + exp(-g)).
@inline(__always) public func siluMul(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int) {
    for i in 0..<count {
        let g = gate[i]
        gate[i] = (g / (1 + Foundation.exp(-g))) * up[i]
    }
}

/// `siluMul` in `mode`: `.exact` as above; `.fast` with a vectorised exp (relative error about 2e-7 per element).
@inline(__always) public func siluMul(_ gate: UnsafeMutablePointer<Float>, _ up: UnsafePointer<Float>, count: Int,
                                      mode: ComputeMode) {
    if mode == .fast { tk_silu_mul(gate, up, Int64(count)) } else { siluMul(gate, up, count: count) }
}
