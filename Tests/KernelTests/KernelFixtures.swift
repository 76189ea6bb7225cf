// Shared by the kernel tests: a seeded generator, random encoded weights of every fast type, activation rows with
// awkward blocks, and exact Double products of dequantized weights (TesseraFormats' gguf-identical decoder).
import TesseraFormats
import TesseraKernels
import XCTest

/// xorshift64*: deterministic values for reproducible tests.
struct Rand {
    var state: UInt64
    init(_ seed: UInt64) { state = seed | 1 }
    mutating func next() -> UInt64 {
        state ^= state >> 12; state ^= state << 25; state ^= state >> 27
        return state &* 2685821657736338717
    }
    /// Uniform in [-scale, scale).
    mutating func float(_ scale: Float = 1) -> Float { (Float(next() >> 40) / Float(1 << 24) * 2 - 1) * scale }
    mutating func byte() -> UInt8 { UInt8(truncatingIfNeeded: next() >> 32) }
}

/// Encoded weights with random quantized values and moderate random scales, and their exact float values.
struct Weights {
    let type: GGMLType
    let rows: Int
    let cols: Int
    let bytes: [UInt8]
    let values: [Float]   // [rows × cols], dequantized as gguf does

    init(_ type: GGMLType, rows: Int, cols: Int, seed: UInt64) {
        var rng = Rand(seed)
        self.type = type; self.rows = rows; self.cols = cols
        let count = rows * cols
        var b: [UInt8]
        func half(_ v: Float) -> [UInt8] { withUnsafeBytes(of: Float16(v).bitPattern.littleEndian, Array.init) }
        func scale() -> [UInt8] { half((rng.float() > 0 ? 1 : -1) * (0.002 + abs(rng.float(0.05)))) }
        switch type {
        case .f32: b = (0..<count).flatMap { _ in withUnsafeBytes(of: rng.float().bitPattern.littleEndian, Array.init) }
        case .f16: b = (0..<count).flatMap { _ in half(rng.float()) }
        case .bf16:
            b = (0..<count).flatMap { _ in withUnsafeBytes(of: UInt16(rng.float().bitPattern >> 16).littleEndian, Array.init) }
        default:
            b = (0..<(count / type.blockSize * type.blockBytes)).map { _ in rng.byte() }
            // f16 scale fields at these byte offsets of each block get sane values; everything else stays random
            let fields: [Int] = switch type {
            case .q4_0, .q5_0, .q8_0, .iq4_nl, .iq4_xs: [0]
            case .q4_1, .q5_1, .q4_K, .q5_K: [0, 2]
            case .q6_K: [208]
            case .q2_K: [80, 82]
            case .q3_K: [108]
            default: []
            }
            for block in 0..<(count / type.blockSize) {
                for f in fields { b.replaceSubrange((block * type.blockBytes + f)..<(block * type.blockBytes + f + 2), with: scale()) }
            }
        }
        bytes = b
        values = [Float](unsafeUninitializedCapacity: count) { out, n in
            b.withUnsafeBytes { type.dequantize($0.baseAddress!, count: count, into: out.baseAddress!) }
            n = count
        }
    }

    func withMatrix<R>(_ body: (WeightMatrix) throws -> R) throws -> R {
        try bytes.withUnsafeBytes { try body(WeightMatrix(name: "w", type: type, rows: rows, cols: cols, data: $0)) }
    }
}

/// `n` activation rows of `cols` values `stride` apart: mostly uniform, one all-zero block, one row with an outlier.
func activations(n: Int, cols: Int, stride: Int, seed: UInt64) -> [Float] {
    var rng = Rand(seed)
    var x = (0..<(n * stride)).map { _ in rng.float() }
    for j in 0..<min(32, cols) { x[j] = 0 }                        // row 0, first block: zero scale
    if n > 1 { x[stride + cols / 2] = 40 }                          // row 1: one large value
    if n > 2 { for j in 0..<cols { x[2 * stride + j] *= 1e-3 } }  // row 2: small values
    return x
}

/// Exact Σ w·x in Double, the Σ|w·x| magnitude, and the bound on the error Q8 activations add:
/// Σ |w_j| · max|x in j's block| / 254 (half a quantization step per element).
func reference(_ w: Weights, row r: Int, x: ArraySlice<Float>, activationBlock: Int)
    -> (exact: Double, magnitude: Double, quantization: Double) {
    var exact = 0.0, magnitude = 0.0, quantization = 0.0
    let xs = Array(x)
    for b in stride(from: 0, to: w.cols, by: activationBlock) {
        let end = min(w.cols, b + activationBlock)
        let amax = Double(xs[b..<end].map { abs($0) }.max() ?? 0)
        for j in b..<end {
            let wj = Double(w.values[r * w.cols + j]), xj = Double(xs[j])
            exact += wj * xj; magnitude += abs(wj * xj)
            quantization += abs(wj) * amax / 254
        }
    }
    return (exact, magnitude, quantization)
}

/// `y = x·Wᵀ` through the public `matmul`, with strided rows and a NaN sentinel column after each output row.
func product(_ w: WeightMatrix, _ x: [Float], n: Int, xStride: Int, mode: ComputeMode, pool: ThreadPool? = nil)
    -> [Float] {
    var y = [Float](repeating: .nan, count: n * (w.rows + 1))
    var scratch = [Float](repeating: 0, count: w.scratchCount(mode: mode, threads: pool?.threads ?? 1) + 1)
    x.withUnsafeBufferPointer { xp in
        y.withUnsafeMutableBufferPointer { yp in
            matmul(xp.baseAddress!, rows: n, xStride: xStride, weight: w, into: yp.baseAddress!, yStride: w.rows + 1,
                   scratch: &scratch, mode: mode, pool: pool)
        }
    }
    for i in 0..<n { XCTAssertTrue(y[i * (w.rows + 1) + w.rows].isNaN, "row \(i): wrote past the output row") }
    return y
}

/// Levels this machine can run, each made active in turn for `body`; the previous level is restored.
func forEachLevel(_ body: (CPULevel) throws -> Void) rethrows {
    let saved = CPULevel.active
    defer { CPULevel.activate(saved) }
    for level in CPULevel.allCases where level <= CPULevel.supported {
        XCTAssertEqual(CPULevel.activate(level), level)
        try body(level)
    }
}
