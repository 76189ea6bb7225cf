// The format-neutral view of stored tensors that every reader (GGUF, safetensors) provides and every consumer
// (kernels, models, parallel loaders) uses. Shapes are row-major: `shape.last` is the contiguous dimension.

/// Element encodings of stored tensors. Raw values are GGML's type ids (GGUF `ggml_type`), so GGUF files map directly;
/// safetensors dtypes map to `.f32`, `.f16`, `.bf16`.
public enum GGMLType: UInt32, Sendable, CaseIterable, CustomStringConvertible {
    case f32 = 0, f16 = 1, q4_0 = 2, q4_1 = 3, q5_0 = 6, q5_1 = 7, q8_0 = 8, q8_1 = 9
    case q2_K = 10, q3_K = 11, q4_K = 12, q5_K = 13, q6_K = 14, q8_K = 15
    case iq4_nl = 20, iq4_xs = 23
    case bf16 = 30

    /// Elements per block (1 for plain float types).
    public var blockSize: Int {
        switch self {
        case .f32, .f16, .bf16: return 1
        case .q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q8_1, .iq4_nl: return 32
        case .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .q8_K, .iq4_xs: return 256
        }
    }

    /// Bytes per block.
    public var blockBytes: Int {
        switch self {
        case .f32: return 4
        case .f16, .bf16: return 2
        case .q4_0: return 18
        case .q4_1: return 20
        case .q5_0: return 22
        case .q5_1: return 24
        case .q8_0: return 34
        case .q8_1: return 36
        case .q2_K: return 84
        case .q3_K: return 110
        case .q4_K: return 144
        case .q5_K: return 176
        case .q6_K: return 210
        case .q8_K: return 292
        case .iq4_nl: return 18
        case .iq4_xs: return 136
        }
    }

    public var isQuantized: Bool { blockSize > 1 }

    /// Why rows of `rowLength` elements cannot be stored as this type, or nil when they split into whole blocks.
    func rowLengthProblem(_ rowLength: Int) -> String? {
        rowLength % blockSize == 0 ? nil
            : "row length \(rowLength) is not a multiple of the \(self) block size \(blockSize)"
    }

    /// Bytes needed for `count` elements; nil if `count` is not a whole number of blocks.
    public func byteCount(elements count: Int) -> Int? {
        count % blockSize == 0 ? (count / blockSize) * blockBytes : nil
    }

    public var description: String {
        switch self {
        case .f32: return "F32"
        case .f16: return "F16"
        case .bf16: return "BF16"
        case .q4_0: return "Q4_0"
        case .q4_1: return "Q4_1"
        case .q5_0: return "Q5_0"
        case .q5_1: return "Q5_1"
        case .q8_0: return "Q8_0"
        case .q8_1: return "Q8_1"
        case .q2_K: return "Q2_K"
        case .q3_K: return "Q3_K"
        case .q4_K: return "Q4_K"
        case .q5_K: return "Q5_K"
        case .q6_K: return "Q6_K"
        case .q8_K: return "Q8_K"
        case .iq4_nl: return "IQ4_NL"
        case .iq4_xs: return "IQ4_XS"
        }
    }
}

/// Where a tensor lives in its file, without reading it.
public struct TensorInfo: Sendable, Equatable {
    public var name: String
    public var type: GGMLType
    /// Row-major shape, outermost first (a Linear weight is `[outFeatures, inFeatures]`).
    public var shape: [Int]
    public init(name: String, type: GGMLType, shape: [Int]) {
        self.name = name; self.type = type; self.shape = shape
    }
    public var elementCount: Int { shape.reduce(1, *) }
    /// Elements in one row (the contiguous dimension).
    public var rowLength: Int { shape.last ?? 1 }
    /// Number of rows: product of all but the last dimension.
    public var rowCount: Int { shape.dropLast().reduce(1, *) }
    public var rowBytes: Int { (rowLength / type.blockSize) * type.blockBytes }
}

/// A tensor's bytes, in place in the mapped file (no copy), possibly only a range of its rows.
/// Valid as long as the store that produced it is alive; views made by the readers keep their mapping alive themselves.
public struct TensorView: @unchecked Sendable {
    public var info: TensorInfo
    /// Rows `firstRow ..< firstRow + rowCount` of the stored tensor; `info.shape[0]` is already narrowed for 2-D slices.
    public var data: UnsafeRawBufferPointer
    /// Keeps the memory behind `data` alive (the readers' file mapping), or nil.
    public var owner: AnyObject?
    public init(info: TensorInfo, data: UnsafeRawBufferPointer, owner: AnyObject? = nil) {
        self.info = info; self.data = data; self.owner = owner
    }
}

/// Anything that holds named tensors: a GGUF file, one or several safetensors files.
public protocol TensorStore: AnyObject, Sendable {
    /// Every tensor, by its name in the file.
    var tensorInfos: [String: TensorInfo] { get }
    /// The tensor's bytes in place. Throws `FormatError` naming the file and tensor when absent or out of bounds.
    func view(_ name: String) throws -> TensorView
    /// Rows `rows` of a tensor (along its outermost dimension), mapping only those bytes.
    func view(_ name: String, rows: Range<Int>) throws -> TensorView
    /// Rows of a tensor (all when nil) in a mapping of their own where the store can (GGUF): faults there never
    /// bring in bytes of other tensors or of other ranks' slices. Otherwise the ordinary view.
    func isolatedView(_ name: String, rows: Range<Int>?) throws -> TensorView
}
