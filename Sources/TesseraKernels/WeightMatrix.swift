// A weight matrix in place in the mapped file, in any GGML encoding, read one row at a time.
import TesseraFormats

/// `rows × cols` weights (a Linear weight is `[outFeatures, inFeatures]`), stored row-major in `type`'s encoding.
/// The bytes are not copied: a matrix made from a view keeps the view's owner (its mapping) alive.
public struct WeightMatrix: @unchecked Sendable {
    public let name: String
    public let type: GGMLType
    public let rows: Int
    public let cols: Int
    /// Bytes of one encoded row.
    public let rowBytes: Int
    /// `rows × rowBytes` bytes.
    public let base: UnsafeRawPointer
    /// The rows repacked for `.fast` products (see `prepared(for:)`), or nil.
    public let packed: PackedRows?
    /// What keeps `base` valid (the view's mapping), held as long as the matrix is.
    public let owner: AnyObject?
    /// Whether the packed copy replaced the original rows in memory (their pages were released: a file mapping's
    /// fault back in if read; a discardable converted buffer's are never read again).
    public let originalReleased: Bool

    /// Wraps a 1-D (one row) or 2-D tensor view.
    public init(_ view: TensorView) throws {
        let shape = view.info.shape
        guard shape.count == 1 || shape.count == 2 else {
            throw KernelError(tensor: view.info.name, reason: "expected a 1-D or 2-D tensor, found shape \(shape)")
        }
        try self.init(name: view.info.name, type: view.info.type, rows: shape.count == 2 ? shape[0] : 1,
                      cols: shape[shape.count - 1], data: view.data, owner: view.owner)
    }

    /// Wraps raw encoded bytes; throws if a row is not a whole number of blocks or the bytes are too few.
    public init(name: String, type: GGMLType, rows: Int, cols: Int, data: UnsafeRawBufferPointer,
                owner: AnyObject? = nil) throws {
        guard rows > 0, cols > 0 else {
            throw KernelError(tensor: name, reason: "empty matrix \(rows)x\(cols)")
        }
        guard let rowBytes = type.byteCount(elements: cols) else {
            throw KernelError(tensor: name, reason: "row length \(cols) is not a multiple of \(type)'s block size \(type.blockSize)")
        }
        let (needed, overflow) = rows.multipliedReportingOverflow(by: rowBytes)
        guard !overflow, let address = data.baseAddress, data.count >= needed else {
            throw KernelError(tensor: name, reason: "\(data.count) bytes, \(rows)x\(cols) \(type) needs \(rows &* rowBytes)")
        }
        self.name = name; self.type = type; self.rows = rows; self.cols = cols
        self.rowBytes = rowBytes; self.base = address; packed = nil; self.owner = owner; originalReleased = false
    }

    private init(_ w: WeightMatrix, packed: PackedRows?, originalReleased: Bool) {
        name = w.name; type = w.type; rows = w.rows; cols = w.cols; rowBytes = w.rowBytes; base = w.base
        self.packed = packed; owner = w.owner; self.originalReleased = originalReleased
    }

    /// This matrix ready for products in `mode`. In `.fast` mode a Q4_0, Q4_1 or Q8_0 matrix of 16 rows or more also
    /// carries its rows repacked 16 at a time (a copy as large as the matrix, made here once), and the packed rows'
    /// original pages are released where their owner allows it (`FileBackedPages`), so memory holds one copy;
    /// otherwise `self`.
    public func prepared(for mode: ComputeMode) -> WeightMatrix {
        guard mode == .fast, packed == nil, let rows = PackedRows(self) else { return self }
        let released = (owner as? FileBackedPages)?
            .releasePages(UnsafeRawBufferPointer(start: base, count: rows.rows * rowBytes)) == true
        return WeightMatrix(self, packed: rows, originalReleased: released)
    }

    /// Bytes this matrix holds in memory: the packed copy plus the original rows not released.
    public var heldBytes: Int {
        (packed?.byteCount ?? 0) + (originalReleased ? (rows - (packed?.rows ?? 0)) * rowBytes : rows * rowBytes)
    }

    /// Encoded bytes of row `r`.
    @inline(__always) public func rowPointer(_ r: Int) -> UnsafeRawPointer { base + r &* rowBytes }

    /// Float rows used in place (no copy) when the weights are F32 and suitably aligned; nil otherwise.
    public var floats: UnsafePointer<Float>? {
        guard type == .f32, Int(bitPattern: base) % MemoryLayout<Float>.alignment == 0 else { return nil }
        return base.assumingMemoryBound(to: Float.self)
    }

    /// Decodes row `r` into `dst` (`cols` floats).
    @inline(__always) public func dequantizeRow(_ r: Int, into dst: UnsafeMutablePointer<Float>) {
        type.dequantize(rowPointer(r), count: cols, into: dst)
    }
}
