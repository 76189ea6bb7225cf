// Root-mean-square normalisation (Llama's RMSNorm).
import Foundation

/// `y = weight ⊙ (x / sqrt(mean(x²) + eps))` over `count` floats; `y` may alias `x`.
@inline(__always) public func rmsNorm(_ x: UnsafePointer<Float>, weight: UnsafePointer<Float>, count: Int, eps: Float,
                                      into y: UnsafeMutablePointer<Float>) {
    let meanSquare = dot(x, x, count: count) / Float(count)
    let scale = 1 / (meanSquare + eps).squareRoot()
    var i = 0
    let s = SIMD16<Float>(repeating: scale)
    while i &+ 16 <= count {
        store16(load16(weight + i) * (load16(x + i) * s), y + i)
        i &+= 16
    }
    while i < count {
        y[i] = weight[i] * (x[i] * scale)
        i &+= 1
    }
}
