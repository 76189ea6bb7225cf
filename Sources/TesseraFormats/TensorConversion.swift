import Dispatch
import Foundation

// Re-encoding stored tensors as any type `GGMLType.quantize` writes: the per-tensor rule a model conversion follows
// (`GGMLType.conversionTarget`) and the conversion itself, one row at a time through a row-sized float scratch
// (dequantize the row, quantize it again), so a tensor is never held whole in float32; rows spread over the cores.
// Used by `infer-worker quantize` (whole files) and by quantize-at-load (one `TensorView` at a time).

/// Bytes owned by one object: 64-byte aligned (any SIMD load), zero-filled, freed with the object. A `TensorView`
/// or a `WeightMatrix` over these bytes holds the buffer as its `owner`, which keeps them valid.
public final class AlignedBuffer: @unchecked Sendable {
    public let base: UnsafeMutableRawPointer
    public let count: Int

    /// `alignment` must be a power of two.
    public init(byteCount: Int, alignment: Int = 64) {
        precondition(byteCount >= 0 && alignment > 0 && alignment & (alignment - 1) == 0)
        count = byteCount
        base = UnsafeMutableRawPointer.allocate(byteCount: max(byteCount, 1), alignment: alignment)
        base.initializeMemory(as: UInt8.self, repeating: 0, count: max(byteCount, 1))
    }

    deinit { base.deallocate() }

    public var bytes: UnsafeRawBufferPointer { UnsafeRawBufferPointer(start: base, count: count) }
    public var mutableBytes: UnsafeMutableRawBufferPointer { UnsafeMutableRawBufferPointer(start: base, count: count) }

    /// Set by an owner that will never read these bytes again once a repacked copy exists (a converted linear's
    /// weights, never an embedding table that lookups read): `releasePages` may then give their memory back.
    public var discardable = false
}

extension AlignedBuffer: FileBackedPages {
    /// Frees the whole pages of `range` when `discardable` (they would read back as zeros); otherwise nothing.
    public func releasePages(_ range: UnsafeRawBufferPointer) -> Bool {
        if discardable { releaseMappedPages(range) }
        return discardable
    }
}

/// What converting a model to a requested type does to one tensor (see `GGMLType.conversionTarget`).
public struct ConversionTarget: Sendable, Equatable, CustomStringConvertible {
    public enum Outcome: Sendable, Equatable {
        /// Re-encoded as the requested type.
        case converted
        /// Left as stored: not a 2-D weight matrix, or already of the requested type.
        case kept
        /// A matrix whose row length is not a multiple of the requested type's block size: F16 instead (left as
        /// stored when it already is F16 or F32).
        case fellBack
    }

    /// The tensor's type after the conversion (its stored type when kept).
    public let type: GGMLType
    public let outcome: Outcome

    public init(type: GGMLType, outcome: Outcome) {
        self.type = type; self.outcome = outcome
    }

    public var description: String { "\(outcome) as \(type)" }
}

/// A tensor that cannot be converted: which one, and why.
public struct TensorConversionError: Error, CustomStringConvertible {
    public let tensor: String
    public let reason: String
    public var description: String { "tensor '\(tensor)': \(reason)" }
}

extension GGMLType {
    /// llama.cpp's `general.file_type` (`llama_ftype`, LLAMA_FTYPE_MOSTLY_*) of a model whose matrices are all of
    /// this type (the file type whose base type it is), for the types Tessera writes.
    public var llamaFileType: UInt32? {
        QuantizationMix.all.first { $0.base == self && !["q4_k_s", "q5_k_s", "q3_k_s", "q3_k_l"].contains($0.name) }?.fileType
    }

    /// The type named `name` (`q8_0`, `Q4_K`, `f16`, ... any case), or nil.
    public init?(name: String) {
        guard let type = GGMLType.allCases.first(where: { $0.description.lowercased() == name.lowercased() }) else {
            return nil
        }
        self = type
    }

    /// What converting a model's matrices to `requested` (`canQuantize`) at load does to the tensor `info`:
    /// - only 2-D weight matrices (name ending in `weight`) are converted; 1-D tensors (norms, biases) and tensors of
    ///   other ranks are kept as stored, and so is a matrix already of the requested type;
    /// - a matrix whose row length is not a multiple of the requested type's block size (stories260K's `ffn_down`
    ///   has 172 columns, Q8_0 blocks hold 32) falls back: kept as stored when it is F16 or F32, else F16.
    public static func conversionTarget(for info: TensorInfo, requested: GGMLType) -> ConversionTarget {
        precondition(requested.canQuantize, "\(requested) is not a conversion target")
        guard info.shape.count == 2, info.name.hasSuffix("weight"), info.type != requested else {
            return ConversionTarget(type: info.type, outcome: .kept)
        }
        guard info.rowLength % requested.blockSize == 0 else {
            let float = info.type == .f16 || info.type == .f32
            return ConversionTarget(type: float ? info.type : .f16, outcome: .fellBack)
        }
        return ConversionTarget(type: requested, outcome: .converted)
    }

    /// Re-encodes `rows` rows of `rowLength` elements stored as `self` at `src` (`rowLength` a multiple of both
    /// block sizes) into `target` (`canQuantize`) at `dst`, which holds `rows × target.byteCount(rowLength)` bytes.
    /// Each row is dequantized into `scratch` (`rowLength` floats) and quantized from there, so the result is
    /// exactly `target.quantize` of `self.dequantize`; the same type is a plain copy.
    public func convertRows(_ src: UnsafeRawPointer, rows: Int, rowLength: Int, to target: GGMLType,
                            into dst: UnsafeMutableRawPointer, scratch: UnsafeMutablePointer<Float>) {
        guard let srcRowBytes = byteCount(elements: rowLength), let dstRowBytes = target.byteCount(elements: rowLength),
              target.canQuantize else {
            preconditionFailure("cannot convert rows of \(rowLength) \(self) values to \(target)")
        }
        if target == self {
            dst.copyMemory(from: src, byteCount: rows * srcRowBytes)
            return
        }
        for r in 0 ..< rows {
            dequantize(src + r * srcRowBytes, count: rowLength, into: scratch)
            target.quantize(scratch, count: rowLength, into: dst + r * dstRowBytes)
        }
    }
}

/// Whole-tensor conversions, checked: errors name the tensor and what stands in the way.
public enum TensorConversion {
    /// Bytes `info` takes once converted to `target`; throws when its rows do not split into `target`'s blocks.
    public static func byteCount(_ info: TensorInfo, as target: GGMLType) throws -> Int {
        guard target.canQuantize else {
            throw TensorConversionError(tensor: info.name, reason: "cannot convert to \(target): the conversion "
                + "targets are \(GGMLType.allCases.filter(\.canQuantize).map { "\($0)" }.joined(separator: ", "))")
        }
        if let problem = target.rowLengthProblem(info.rowLength) { throw TensorConversionError(tensor: info.name, reason: problem) }
        return target.byteCount(elements: info.elementCount) ?? 0
    }

    /// Converts the tensor `info` (any type `dequantize` reads, any shape; rows run along the last dimension) whose
    /// bytes are `data` into `target` (any type `GGMLType.quantize` writes), writing `byteCount(info, as: target)` bytes to `dst`.
    public static func convert(_ data: UnsafeRawBufferPointer, _ info: TensorInfo, to target: GGMLType,
                               into dst: UnsafeMutableRawBufferPointer) throws {
        let size = try byteCount(info, as: target)
        if let problem = info.type.rowLengthProblem(info.rowLength) { throw TensorConversionError(tensor: info.name, reason: problem) }
        let needed = info.type.byteCount(elements: info.elementCount) ?? 0
        guard data.count == needed else {
            throw TensorConversionError(tensor: info.name, reason: "\(data.count) bytes, \(info.type) shape \(info.shape) has \(needed)")
        }
        guard dst.count >= size else {
            throw TensorConversionError(tensor: info.name, reason: "destination holds \(dst.count) bytes, \(target) needs \(size)")
        }
        guard size > 0, let src = data.baseAddress, let out = dst.baseAddress else { return }
        // rows are independent: spread over the cores in chunks, each with its own scratch row (same bytes either way)
        let rows = info.rowCount, chunks = min(rows, max(1, ProcessInfo.processInfo.activeProcessorCount) * 4)
        let srcRow = info.type.byteCount(elements: info.rowLength) ?? 0, dstRow = target.byteCount(elements: info.rowLength) ?? 0
        nonisolated(unsafe) let (source, destination) = (src, out)
        DispatchQueue.concurrentPerform(iterations: chunks) { c in
            let lo = rows * c / chunks, hi = rows * (c + 1) / chunks
            guard hi > lo else { return }
            let scratch = UnsafeMutablePointer<Float>.allocate(capacity: info.rowLength)
            defer { scratch.deallocate() }
            info.type.convertRows(source + lo * srcRow, rows: hi - lo, rowLength: info.rowLength, to: target,
                                  into: destination + lo * dstRow, scratch: scratch)
        }
    }

    /// The tensor converted into a new 64-byte-aligned buffer of its own.
    public static func convert(_ data: UnsafeRawBufferPointer, _ info: TensorInfo, to target: GGMLType) throws -> AlignedBuffer {
        let buffer = AlignedBuffer(byteCount: try byteCount(info, as: target))
        try convert(data, info, to: target, into: buffer.mutableBytes)
        return buffer
    }
}

extension TensorView {
    /// This tensor re-encoded as `target` (any type `GGMLType.quantize` writes): a view of a new 64-byte-aligned `AlignedBuffer`,
    /// which is its `owner` (a `WeightMatrix` made from it keeps the buffer alive). `self`, uncopied, when already
    /// `target`. Throws `TensorConversionError` naming the tensor when its rows do not split into `target`'s blocks.
    /// `data` is valid only while the returned view (its `owner`) is alive: keep the view, or a `WeightMatrix` made
    /// from it, not just `data` (`withExtendedLifetime` around a use of `data` alone).
    public func converted(to target: GGMLType) throws -> TensorView {
        guard info.type != target else { return self }
        let buffer = try TensorConversion.convert(data, info, to: target)
        var converted = info
        converted.type = target
        return TensorView(info: converted, data: buffer.bytes, owner: buffer)
    }
}
