// Per-sequence key/value storage for attention, preallocated for a fixed context length.
import Foundation
import TesseraKernels

/// How a KV cache stores each position's keys and values.
public enum KVCacheType: String, Sendable, CaseIterable {
    /// float32, exact.
    case f32
    /// 8 bits per value with a float scale per 32 values (`KVRowQ8`): about 3.4× less memory than f32 for head sizes
    /// of 64; attention reads it through the online-softmax kernels.
    case q8_0

    /// Bytes of one position's keys (or values) of `kvDim` floats in heads of `headDim`.
    public func rowBytes(kvDim: Int, headDim: Int) -> Int {
        self == .f32 ? 4 * kvDim : KVRowQ8.rowBytes(kvDim: kvDim, headDim: headDim)
    }
}

/// Keys and values of past positions, per sequence slot and layer.
/// `offset(of:)` positions of a slot are valid; the model writes new positions with `write`, then `setOffset`
/// (after checking `contextLength`).
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
    /// Positions `sequence` can store now (`contextLength` for a dense cache; the blocks its table holds for a
    /// paged one).
    func capacity(of sequence: Int) -> Int
    /// How a position's keys and values are stored inside a block (what attention kernels read).
    var layout: KVLayout { get }
    /// Stores the key and value (`kvDim` floats each) of `position`.
    func write(layer: Int, sequence: Int, position: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>)
    /// Positions `first ..< first + length` of `sequence` for an attention kernel: the sequence's block table for
    /// `layer` (valid until the next `write` or `setOffset`), never a copy of the positions.
    func span(layer: Int, sequence: Int, first: Int, length: Int) -> AttentionSpan
}

extension KVCache {
    /// Drops positions `length...` of `sequence` (no-op if it holds fewer).
    public func trim(sequence: Int, to length: Int) {
        setOffset(min(offset(of: sequence), max(0, length)), of: sequence)
    }

    /// Forgets everything `sequence` holds.
    public func reset(sequence: Int) { setOffset(0, of: sequence) }
}

/// Keys and values in one preallocated block each, per sequence and layer — the one-block case of a block table:
/// float32 head-major (`[kvHeads][contextLength][headDim]`, so attention streams each KV head's positions
/// contiguously), 8-bit as `[contextLength]` rows of `KVRowQ8`.
public final class DenseKVCache: KVCache {
    public let layers: Range<Int>
    public let sequenceCount: Int
    public let contextLength: Int
    public let kvDim: Int
    public let type: KVCacheType
    public let layout: KVLayout
    private let headDim: Int
    private let rowBytes: Int
    private var offsets: [Int]                      // [sequences]
    private let keyStorage: UnsafeMutableRawPointer    // (sequence, layer) blocks of contextLength positions
    private let valueStorage: UnsafeMutableRawPointer  // (sequence, layer) blocks of contextLength positions
    private let layerStride: Int                    // bytes: contextLength · rowBytes
    private let sequenceStride: Int                 // bytes: layers.count · layerStride
    private let tables: UnsafeMutablePointer<KVBlock>  // (sequence, layer): each one block of contextLength positions

    /// Reserves storage for `sequences` slots of `contextLength` positions over `layers` of `kvDim` values per
    /// position in heads of `headDim` (the float layout is per head; 8-bit blocks never span two heads).
    public init(layers: Range<Int>, sequences: Int, contextLength: Int, kvDim: Int, headDim: Int,
                type: KVCacheType = .f32) throws {
        guard !layers.isEmpty, layers.lowerBound >= 0, sequences > 0, contextLength > 0, kvDim > 0, headDim > 0,
              kvDim % headDim == 0 else {
            throw ModelError.invalidBuffer("KV cache of \(sequences) sequences x \(layers) layers x \(contextLength) positions x \(kvDim) (heads of \(headDim)) is empty or uneven")
        }
        let row = type.rowBytes(kvDim: kvDim, headDim: headDim)
        let (a, o1) = contextLength.multipliedReportingOverflow(by: row)
        let (b, o2) = a.multipliedReportingOverflow(by: layers.count)
        let (total, o3) = b.multipliedReportingOverflow(by: sequences)
        guard !(o1 || o2 || o3), total <= 1 << 40, let k = calloc(total, 1), let v = calloc(total, 1) else {
            throw ModelError.invalidBuffer("cannot reserve a \(type.rawValue) KV cache of \(sequences) sequences x \(layers.count) layers x \(contextLength) positions x \(kvDim) values")
        }
        keyStorage = k; valueStorage = v
        self.layers = layers; self.sequenceCount = sequences; self.contextLength = contextLength; self.kvDim = kvDim
        self.type = type; self.headDim = headDim; rowBytes = row
        layout = type == .f32 ? .float(stride: headDim, headStride: contextLength * headDim)
                               : .q8(rowBytes: row, kvDim: kvDim)
        layerStride = a; sequenceStride = b
        offsets = Array(repeating: 0, count: sequences)
        tables = .allocate(capacity: sequences * layers.count)
        for i in 0..<(sequences * layers.count) {
            tables[i] = KVBlock(keys: UnsafeRawPointer(k + i * a), values: UnsafeRawPointer(v + i * a))
        }
    }

    deinit {
        free(keyStorage); free(valueStorage); tables.deallocate()
    }

    /// Bytes of keys and values together.
    public var byteCount: Int { 2 * sequenceCount * sequenceStride }

    /// 0 for a slot outside `0..<sequenceCount`.
    public func offset(of sequence: Int) -> Int { offsets.indices.contains(sequence) ? offsets[sequence] : 0 }

    public func capacity(of sequence: Int) -> Int { contextLength }

    /// Ignored for a slot outside `0..<sequenceCount`; clamped to `0...contextLength`.
    public func setOffset(_ offset: Int, of sequence: Int) {
        guard offsets.indices.contains(sequence) else { return }
        offsets[sequence] = min(max(offset, 0), contextLength)
    }

    /// Byte offset of position `position` of `layer` and `sequence` (of KV head 0 for float32).
    @inline(__always) private func at(_ layer: Int, _ sequence: Int, _ position: Int) -> Int {
        sequence &* sequenceStride &+ (layer &- layers.lowerBound) &* layerStride
            &+ position &* (type == .f32 ? 4 &* headDim : rowBytes)
    }

    public func write(layer: Int, sequence: Int, position: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>) {
        let offset = at(layer, sequence, position)
        switch type {
        case .f32:
            let headBytes = 4 &* contextLength &* headDim, bytes = 4 &* headDim
            for h in 0..<(kvDim / headDim) {
                let to = offset &+ h &* headBytes, from = h &* headDim
                (keyStorage + to).copyMemory(from: key + from, byteCount: bytes)
                (valueStorage + to).copyMemory(from: value + from, byteCount: bytes)
            }
        case .q8_0:
            KVRowQ8.quantize(key, kvDim: kvDim, headDim: headDim, into: keyStorage + offset)
            KVRowQ8.quantize(value, kvDim: kvDim, headDim: headDim, into: valueStorage + offset)
        }
    }

    public func span(layer: Int, sequence: Int, first: Int, length: Int) -> AttentionSpan {
        AttentionSpan(blocks: tables + (sequence &* layers.count &+ layer &- layers.lowerBound),
                      blockSize: contextLength, first: first, length: length)
    }
}
