/// Builds the views that `TensorStore.view` returns, shared by the GGUF and safetensors readers.
enum TensorSlicing {
    /// The whole tensor: `byteCount` bytes at `base`.
    static func whole(_ info: TensorInfo, base: UnsafeRawPointer, byteCount: Int, owner: AnyObject) -> TensorView {
        TensorView(info: info, data: UnsafeRawBufferPointer(start: base, count: byteCount), owner: owner)
    }

    /// Rows `rows` along the outermost dimension (`shape[0]`), in place. A row is one `shape[1...]` slice
    /// (one element of a 1-D tensor, which must then cover whole quantization blocks).
    static func rows(_ info: TensorInfo, base: UnsafeRawPointer, rows: Range<Int>, path: String,
                     owner: AnyObject) throws -> TensorView {
        let outer = info.shape.first ?? 1
        guard rows.lowerBound >= 0, rows.upperBound <= outer else {
            throw FormatError(path: path, reason: "rows \(rows) out of bounds for tensor '\(info.name)' with shape \(info.shape)")
        }
        let inner = info.shape.dropFirst().reduce(1, *)
        guard let startBytes = info.type.byteCount(elements: rows.lowerBound * inner),
              let countBytes = info.type.byteCount(elements: rows.count * inner) else {
            throw FormatError(path: path, reason: "rows \(rows) of tensor '\(info.name)' (\(info.type), shape \(info.shape)) "
                + "do not cover whole blocks of \(info.type.blockSize)")
        }
        var narrowed = info
        if narrowed.shape.isEmpty { narrowed.shape = [rows.count] } else { narrowed.shape[0] = rows.count }
        return TensorView(info: narrowed, data: UnsafeRawBufferPointer(start: base + startBytes, count: countBytes), owner: owner)
    }
}
