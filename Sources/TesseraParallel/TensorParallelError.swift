// Typed errors of tensor-parallel planning, loading and in-process collectives; each names what is at fault.
import TesseraFormats

/// Why a model cannot be split across a tensor-parallel group, or a collective of the group failed.
public enum TensorParallelError: Error, CustomStringConvertible, Equatable {
    /// The group size does not fit the model (`tp` ranks, the model's `file`).
    case invalidSize(file: String, tp: Int, reason: String)
    /// A tensor cannot be split along its input columns in whole quantization blocks.
    case unsplittable(tensor: String, type: GGMLType, blockSize: Int, tp: Int, reason: String)
    /// The group handed to the loader does not match the plan.
    case groupMismatch(String)
    /// A collective of an in-process group failed on `rank`.
    case collective(operation: String, rank: Int, reason: String)

    public var description: String {
        switch self {
        case let .invalidSize(file, tp, reason): return "\(file): cannot split across tp \(tp): \(reason)"
        case let .unsplittable(tensor, type, blockSize, tp, reason):
            return "tensor '\(tensor)' (\(type), blocks of \(blockSize)) cannot be split across tp \(tp): \(reason)"
        case let .groupMismatch(reason): return "tensor-parallel group: \(reason)"
        case let .collective(operation, rank, reason): return "\(operation) on rank \(rank): \(reason)"
        }
    }
}
