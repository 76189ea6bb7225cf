import CMPI

/// bfloat16 carried as its 16-bit payload: the top half of an IEEE float32.
public struct BFloat16: Sendable, Equatable, Hashable {
    public var bits: UInt16
    public init(bits: UInt16) { self.bits = bits }
    /// Rounds to nearest even, as hardware conversions do.
    public init(_ value: Float) {
        let b = value.bitPattern
        if value.isNaN { bits = 0x7FC0; return }
        bits = UInt16(truncatingIfNeeded: (b &+ 0x7FFF &+ ((b >> 16) & 1)) >> 16)
    }
    public var floatValue: Float { Float(bitPattern: UInt32(bits) << 16) }
}

/// Element types the collectives move. Reductions on 16-bit floats run through user-defined MPI operations, since
/// MPI has no half-precision types; every other element type uses MPI's built-in datatype and operations.
public protocol MPIScalar: Sendable {
    static var mpiDatatype: MPI_Datatype { get }
    /// Which element encoding this is, to pick the reduction operation.
    static var kind: ScalarKind { get }
}

public enum ScalarKind: Sendable, CaseIterable {
    case float32, float64, float16, bfloat16, int32, int64, uint8, uint16
}

extension Float: MPIScalar {
    public static var mpiDatatype: MPI_Datatype { tmpi_float() }
    public static var kind: ScalarKind { .float32 }
}
extension Double: MPIScalar {
    public static var mpiDatatype: MPI_Datatype { tmpi_double() }
    public static var kind: ScalarKind { .float64 }
}
#if arch(x86_64) || arch(arm64)
extension Float16: MPIScalar {
    public static var mpiDatatype: MPI_Datatype { tmpi_uint16() }
    public static var kind: ScalarKind { .float16 }
}
#endif
extension BFloat16: MPIScalar {
    public static var mpiDatatype: MPI_Datatype { tmpi_uint16() }
    public static var kind: ScalarKind { .bfloat16 }
}
extension Int32: MPIScalar {
    public static var mpiDatatype: MPI_Datatype { tmpi_int32() }
    public static var kind: ScalarKind { .int32 }
}
extension Int64: MPIScalar {
    public static var mpiDatatype: MPI_Datatype { tmpi_int64() }
    public static var kind: ScalarKind { .int64 }
}
extension UInt8: MPIScalar {
    public static var mpiDatatype: MPI_Datatype { tmpi_uint8() }
    public static var kind: ScalarKind { .uint8 }
}
extension UInt16: MPIScalar {
    public static var mpiDatatype: MPI_Datatype { tmpi_uint16() }
    public static var kind: ScalarKind { .uint16 }
}

/// Reduction applied element-wise across ranks.
public enum ReduceOp: Sendable, CaseIterable, CustomStringConvertible {
    case sum, max, min
    public var description: String {
        switch self { case .sum: return "sum"; case .max: return "max"; case .min: return "min" }
    }
}
