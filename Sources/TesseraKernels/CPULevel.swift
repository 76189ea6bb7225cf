// Which SIMD level the C kernels run at: detected once from cpuid, overridable by TESSERA_CPU or at run time.
import CTesseraKernels

/// Instruction levels of the kernels, lowest first. Every level computes the same products; the tests hold
/// each against `.portable`.
public enum CPULevel: Int, Sendable, Comparable, CaseIterable, CustomStringConvertible {
    /// Plain C, any CPU.
    case portable = 0
    /// AVX2 + FMA + F16C.
    case avx2 = 1
    /// AVX-512 F/BW/VL with VNNI.
    case avx512 = 2

    public static func < (a: CPULevel, b: CPULevel) -> Bool { a.rawValue < b.rawValue }

    public var description: String {
        switch self {
        case .portable: return "portable"
        case .avx2: return "avx2"
        case .avx512: return "avx512"
        }
    }

    /// The highest level this CPU and OS support.
    public static var supported: CPULevel { CPULevel(rawValue: Int(tk_cpu_supported_level())) ?? .portable }

    /// The level the kernels use now: `TESSERA_CPU=avx512|avx2|portable` if set when first asked (never above
    /// `supported`), else `supported`.
    public static var active: CPULevel { CPULevel(rawValue: Int(tk_cpu_level())) ?? .portable }

    /// Makes `level` (lowered to `supported` if above it) the active level for every later kernel call in the
    /// process; returns the level now active. Meant for tests and benchmarks, between products.
    @discardableResult public static func activate(_ level: CPULevel) -> CPULevel {
        CPULevel(rawValue: Int(tk_cpu_set_level(Int32(level.rawValue)))) ?? .portable
    }
}
