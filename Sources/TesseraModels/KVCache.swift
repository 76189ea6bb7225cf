// Per-sequence key/value storage for attention, preallocated for a fixed context length.
import Foundation
import TesseraKernels

/// Keys and values of past positions, per sequence slot and layer.
/// `offset(of:)` positions of a slot are valid; the model writes new positions through `keys`/`values`,
/// then `setOffset` (after checking `contextLength`).
public protocol KVCache: AnyObject {
    /// Layers this cache holds (a pipeline stage holds only its own).
    var layers: Range<Int> { get }
    var sequenceCount: Int { get }
    /// Positions one sequence can hold.
    var contextLength: Int { get }
    /// Floats per position and layer: `kvHeads · headDim`.
    var kvDim: Int { get }
    /// Positions of `sequence` already stored: the next position to write.
    func offset(of sequence: Int) -> Int
    /// Marks positions `0..<offset` of `sequence` valid (`offset <= contextLength`).
    func setOffset(_ offset: Int, of sequence: Int)
    /// Keys of `layer` for `sequence`: `[contextLength × kvDim]`.
    func keys(layer: Int, sequence: Int) -> UnsafeMutablePointer<Float>
    /// Values of `layer` for `sequence`: `[contextLength × kvDim]`.
    func values(layer: Int, sequence: Int) -> UnsafeMutablePointer<Float>
    /// How a position's keys and values are stored (what attention kernels read).
    var layout: KVLayout { get }
    /// Stores the key and value (`kvDim` floats each) of `position`.
    func write(layer: Int, sequence: Int, position: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>)
    /// Positions `first ..< first + length` of `sequence` for an attention kernel.
    func span(layer: Int, sequence: Int, first: Int, length: Int) -> AttentionSpan
}

extension KVCache {
    public var layout: KVLayout { .float(stride: kvDim) }

    public func write(layer: Int, sequence: Int, position: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>) {
        (keys(layer: layer, sequence: sequence) + position * kvDim).update(from: key, count: kvDim)
        (values(layer: layer, sequence: sequence) + position * kvDim).update(from: value, count: kvDim)
    }

    public func span(layer: Int, sequence: Int, first: Int, length: Int) -> AttentionSpan {
        AttentionSpan(keys: UnsafeRawPointer(keys(layer: layer, sequence: sequence) + first * kvDim),
                      values: UnsafeRawPointer(values(layer: layer, sequence: sequence) + first * kvDim), length: length)
    }
}

extension KVCache {
    /// Drops positions `length...` of `sequence` (no-op if it holds fewer).
    public func trim(sequence: Int, to length: Int) {
        setOffset(min(offset(of: sequence), max(0, length)), of: sequence)
    }

    /// Forgets everything `sequence` holds.
    public func reset(sequence: Int) { setOffset(0, of: sequence) }
}

/// Float32 keys and values in one preallocated block: `[sequences][layers][contextLength][kvDim]` each.
public final class DenseKVCache: KVCache {
    public let layers: Range<Int>
    public let sequenceCount: Int
    public let contextLength: Int
    public let kvDim: Int
    private var offsets: [Int]                  // [sequences]
    private let keyStorage: UnsafeMutablePointer<Float>    // (sequence, layer, position, kvDim)
    private let valueStorage: UnsafeMutablePointer<Float>  // (sequence, layer, position, kvDim)
    private let layerStride: Int                // contextLength · kvDim
    private let sequenceStride: Int             // layers.count · layerStride

    /// Reserves storage for `sequences` slots of `contextLength` positions over `layers`.
    public init(layers: Range<Int>, sequences: Int, contextLength: Int, kvDim: Int) throws {
        guard !layers.isEmpty, layers.lowerBound >= 0, sequences > 0, contextLength > 0, kvDim > 0 else {
            throw ModelError.invalidBuffer("KV cache of \(sequences) sequences x \(layers) layers x \(contextLength) positions x \(kvDim) is empty")
        }
        let (a, o1) = contextLength.multipliedReportingOverflow(by: kvDim)
        let (b, o2) = a.multipliedReportingOverflow(by: layers.count)
        let (total, o3) = b.multipliedReportingOverflow(by: sequences)
        let (bytes, o4) = total.multipliedReportingOverflow(by: MemoryLayout<Float>.stride * 2)
        guard !(o1 || o2 || o3 || o4), bytes <= 1 << 40,
              let k = calloc(total, MemoryLayout<Float>.stride), let v = calloc(total, MemoryLayout<Float>.stride) else {
            throw ModelError.invalidBuffer("cannot reserve a KV cache of \(sequences) sequences x \(layers.count) layers x \(contextLength) positions x \(kvDim) floats")
        }
        keyStorage = k.bindMemory(to: Float.self, capacity: total)
        valueStorage = v.bindMemory(to: Float.self, capacity: total)
        self.layers = layers; self.sequenceCount = sequences; self.contextLength = contextLength; self.kvDim = kvDim
        layerStride = a; sequenceStride = b
        offsets = Array(repeating: 0, count: sequences)
    }

    deinit {
        free(keyStorage); free(valueStorage)
    }

    /// 0 for a slot outside `0..<sequenceCount`.
    public func offset(of sequence: Int) -> Int { offsets.indices.contains(sequence) ? offsets[sequence] : 0 }

    /// Ignored for a slot outside `0..<sequenceCount`; clamped to `0...contextLength`.
    public func setOffset(_ offset: Int, of sequence: Int) {
        guard offsets.indices.contains(sequence) else { return }
        offsets[sequence] = min(max(offset, 0), contextLength)
    }

    @inline(__always) private func index(_ layer: Int, _ sequence: Int) -> Int {
        sequence &* sequenceStride &+ (layer &- layers.lowerBound) &* layerStride
    }

    public func keys(layer: Int, sequence: Int) -> UnsafeMutablePointer<Float> { keyStorage + index(layer, sequence) }

    public func values(layer: Int, sequence: Int) -> UnsafeMutablePointer<Float> { valueStorage + index(layer, sequence) }
}
