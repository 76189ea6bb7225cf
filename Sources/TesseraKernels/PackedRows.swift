// Weight rows repacked 16 at a time for the `.fast` kernels (layout in CTesseraKernels/packed.c).
import CTesseraKernels

/// The first `rows` rows of a Q4_0, Q4_1 or Q8_0 matrix (its rows rounded down to a multiple of 16), interleaved so
/// one SIMD integer dot product serves 16 rows; owns its memory. Products over packed rows equal the portable
/// kernels' results bit for bit.
public final class PackedRows: @unchecked Sendable {
    public let rows: Int
    public let byteCount: Int
    let base: UnsafeMutableRawPointer

    /// Packs `w`'s rows; nil when its type has no packed form or it has fewer than 16 rows.
    init?(_ w: WeightMatrix) {
        let bytes = Int(tk_packed_bytes(w.type.rawValue, Int64(w.rows), Int64(w.cols)))
        guard bytes > 0 else { return nil }
        rows = w.rows / 16 * 16
        byteCount = bytes
        base = UnsafeMutableRawPointer.allocate(byteCount: bytes, alignment: 64)
        _ = tk_pack(w.type.rawValue, w.base, w.rowBytes, Int64(rows), Int64(w.cols), base)
    }

    deinit { base.deallocate() }
}
