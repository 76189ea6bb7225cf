import CMPI

/// MPI has no 16-bit float types: their sum/max/min run through user-defined operations over the 16-bit payload,
/// computing in float32 and rounding back. Created once per MPI session.
final class Reductions: @unchecked Sendable {
    private var f16: [MPI_Op?] = []
    private var bf16: [MPI_Op?] = []

    init() throws {
        #if arch(x86_64) || arch(arm64)
        f16 = try [Self.make { MPI_Op_create(f16Sum, 1, &$0) }, Self.make { MPI_Op_create(f16Max, 1, &$0) },
                   Self.make { MPI_Op_create(f16Min, 1, &$0) }]
        #endif
        bf16 = try [Self.make { MPI_Op_create(bf16Sum, 1, &$0) }, Self.make { MPI_Op_create(bf16Max, 1, &$0) },
                    Self.make { MPI_Op_create(bf16Min, 1, &$0) }]
    }

    private static func make(_ create: (inout MPI_Op?) -> Int32) throws -> MPI_Op? {
        var op: MPI_Op? = nil
        try check(create(&op), "MPI_Op_create", rank: -1)
        return op
    }

    /// The MPI operation for `op` on elements of `kind`.
    func mpiOp(_ op: ReduceOp, kind: ScalarKind) -> MPI_Op? {
        let index: Int = op == .sum ? 0 : op == .max ? 1 : 2
        switch kind {
        case .float16: return f16[index]
        case .bfloat16: return bf16[index]
        default:
            switch op {
            case .sum: return tmpi_op_sum()
            case .max: return tmpi_op_max()
            case .min: return tmpi_op_min()
            }
        }
    }

    func free() {
        for var op in f16 + bf16 { MPI_Op_free(&op) }
        f16 = []; bf16 = []
    }
}

@inline(__always)
private func combine(_ input: UnsafeMutableRawPointer?, _ accumulator: UnsafeMutableRawPointer?, _ count: UnsafeMutablePointer<Int32>?,
                     _ body: (UInt16, UInt16) -> UInt16) {
    guard let input, let accumulator, let count else { return }
    let a = input.assumingMemoryBound(to: UInt16.self), b = accumulator.assumingMemoryBound(to: UInt16.self)
    for i in 0..<Int(count.pointee) { b[i] = body(a[i], b[i]) }
}

#if arch(x86_64) || arch(arm64)
@inline(__always) private func h(_ bits: UInt16) -> Float { Float(Float16(bitPattern: bits)) }
@inline(__always) private func h(_ value: Float) -> UInt16 { Float16(value).bitPattern }
private func f16Sum(_ a: UnsafeMutableRawPointer?, _ b: UnsafeMutableRawPointer?, _ n: UnsafeMutablePointer<Int32>?,
                    _ t: UnsafeMutablePointer<MPI_Datatype?>?) { combine(a, b, n) { h(h($0) + h($1)) } }
private func f16Max(_ a: UnsafeMutableRawPointer?, _ b: UnsafeMutableRawPointer?, _ n: UnsafeMutablePointer<Int32>?,
                    _ t: UnsafeMutablePointer<MPI_Datatype?>?) { combine(a, b, n) { h(max(h($0), h($1))) } }
private func f16Min(_ a: UnsafeMutableRawPointer?, _ b: UnsafeMutableRawPointer?, _ n: UnsafeMutablePointer<Int32>?,
                    _ t: UnsafeMutablePointer<MPI_Datatype?>?) { combine(a, b, n) { h(min(h($0), h($1))) } }
#endif

@inline(__always) private func bf(_ bits: UInt16) -> Float { BFloat16(bits: bits).floatValue }
@inline(__always) private func bf(_ value: Float) -> UInt16 { BFloat16(value).bits }
private func bf16Sum(_ a: UnsafeMutableRawPointer?, _ b: UnsafeMutableRawPointer?, _ n: UnsafeMutablePointer<Int32>?,
                     _ t: UnsafeMutablePointer<MPI_Datatype?>?) { combine(a, b, n) { bf(bf($0) + bf($1)) } }
private func bf16Max(_ a: UnsafeMutableRawPointer?, _ b: UnsafeMutableRawPointer?, _ n: UnsafeMutablePointer<Int32>?,
                     _ t: UnsafeMutablePointer<MPI_Datatype?>?) { combine(a, b, n) { bf(max(bf($0), bf($1))) } }
private func bf16Min(_ a: UnsafeMutableRawPointer?, _ b: UnsafeMutableRawPointer?, _ n: UnsafeMutablePointer<Int32>?,
                     _ t: UnsafeMutablePointer<MPI_Datatype?>?) { combine(a, b, n) { bf(min(bf($0), bf($1))) } }
