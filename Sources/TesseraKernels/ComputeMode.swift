// How products are computed: exact float32, or llama.cpp-style on 8-bit quantized activations; and on how many threads.
import CTesseraKernels
import TesseraFormats

/// The arithmetic of matrix products.
public enum ComputeMode: Sendable, Equatable, CustomStringConvertible {
    /// float32 throughout: each weight row is dequantized exactly as `gguf` does and dotted with float activations.
    /// Results do not depend on the CPU level or the thread count. The reference path.
    case exact
    /// Activations are quantized per product (Q8_0 for Q4_0/Q4_1/Q8_0 weights, Q8_K for the K-quants and IQ4_XS) and multiplied
    /// in integer SIMD arithmetic with per-block scales, as llama.cpp does; Q4_0/Q4_1/Q8_0 rows are repacked 16 at a
    /// time when a matrix is prepared (`WeightMatrix.prepared(for:)`); F32/F16/BF16 weights use FMA kernels on float
    /// activations; attention and SiLU use FMA and a vectorised exp. Weight types without a kernel fall back to
    /// `.exact`. Results depend on the CPU level only through float rounding (never on threads or batch size).
    case fast

    public var description: String { self == .exact ? "exact" : "fast" }
}

/// A model's choice of arithmetic and threads, fixed when it is loaded.
public struct ComputeOptions: Sendable {
    public var mode: ComputeMode
    /// Threads products split their output rows across; nil runs on the caller only.
    public var pool: ThreadPool?
    /// Fused operators (Q/K/V and gate/up products as one job with the RMSNorm folded into their input preparation,
    /// SiLU·mul in the gate/up tasks, residual adds in the output products' stores, online-softmax attention in
    /// `.fast` mode). Off only to measure what fusion buys (`--no-fusion`); products are equal either way.
    public var fused: Bool
    public init(mode: ComputeMode = .exact, pool: ThreadPool? = nil, fused: Bool = true) {
        self.mode = mode; self.pool = pool; self.fused = fused
    }
    /// Exact float32 on the calling thread.
    public static let exact = ComputeOptions()
    /// Threads a product may use.
    public var threads: Int { pool?.threads ?? 1 }
}

/// The activation rows a `.fast` product kernel takes.
public enum ActivationFormat: Sendable, Equatable {
    /// float32 rows (F32, F16, BF16 weights).
    case float
    /// Blocks of 32: int8 values, then per block a float scale, a float `scale · Σq` and the int32 `Σq`.
    case q8_0
    /// Blocks of 256: int8 values, one float scale per block, then int16 sums of each 16 values.
    case q8_K

    /// Bytes of one quantized row of `cols` elements (a multiple of 64); `4 · cols` for `.float`.
    public func rowBytes(cols: Int) -> Int {
        switch self {
        case .float: return 4 * cols
        case .q8_0: return Int(tk_q8_0_row_bytes(Int64(cols)))
        case .q8_K: return Int(tk_q8_K_row_bytes(Int64(cols)))
        }
    }

    /// Elements per quantization block (1 for `.float`).
    public var blockSize: Int {
        switch self {
        case .float: return 1
        case .q8_0: return 32
        case .q8_K: return 256
        }
    }

    /// Quantizes `n` rows of `cols` floats (`xStride` apart) into rows `rowStride` bytes apart, at the active CPU level.
    /// Per block: d = max|x| / 127, q = x · 127 / max|x| rounded to nearest even. `cols` must be a multiple of
    /// `blockSize`; `.float` copies.
    public func quantize(_ x: UnsafePointer<Float>, rows n: Int, cols: Int, xStride: Int? = nil,
                         into dst: UnsafeMutableRawPointer, rowStride: Int? = nil) {
        let xs = Int64(xStride ?? cols), ds = rowStride ?? rowBytes(cols: cols)
        switch self {
        case .float:
            for i in 0..<n { (dst + i &* ds).copyMemory(from: x + i &* Int(xs), byteCount: 4 &* cols) }
        case .q8_0: tk_quantize_q8_0(x, xs, Int64(n), Int64(cols), dst, ds)
        case .q8_K: tk_quantize_q8_K(x, xs, Int64(n), Int64(cols), dst, ds)
        }
    }
}

extension GGMLType {
    /// The activation format of this weight type's `.fast` kernel, or nil when it has none.
    public var fastActivationFormat: ActivationFormat? {
        switch tk_activation_format(rawValue) {
        case Int32(TK_ACT_F32): return .float
        case Int32(TK_ACT_Q8_0): return .q8_0
        case Int32(TK_ACT_Q8_K): return .q8_K
        default: return nil
        }
    }
}
