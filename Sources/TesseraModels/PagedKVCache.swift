// Keys and values in fixed-size blocks from one pool, mapped to sequences by block tables the coordinator owns.
import Foundation
import TesseraKernels

/// Size of a paged cache: `blockCount` physical blocks of `blockSize` positions (every layer a rank holds).
public struct KVPaging: Sendable, Equatable {
    public var blockSize: Int
    public var blockCount: Int
    public init(blockSize: Int, blockCount: Int) { self.blockSize = blockSize; self.blockCount = blockCount }

    /// Blocks covering `positions` positions.
    public func blocks(for positions: Int) -> Int { (positions + blockSize - 1) / blockSize }

    /// Enough blocks of `blockSize` for `sequences` whole contexts of `contextLength` positions.
    public static func covering(sequences: Int, contextLength: Int, blockSize: Int = 16) -> KVPaging {
        KVPaging(blockSize: blockSize, blockCount: max(1, sequences * ((contextLength + blockSize - 1) / blockSize)))
    }
}

/// Changes to sequence slots' block tables, sent with a step and applied on every rank before it runs: slot
/// `slots[i]` keeps its first `firsts[i]` table entries, takes `counts[i]` physical blocks (the next entries of
/// `blocks`) after them, and holds `lengths[i]` cached positions. `firsts[i] = 0` starts the slot afresh (a new
/// sequence, whose first `lengths[i]` positions may be blocks shared from the prefix cache). Flat arrays, reused
/// step to step: a step's updates allocate nothing once their capacity is reached.
public struct BlockTableUpdates: Sendable, Equatable {
    public private(set) var slots: [Int] = []
    public private(set) var firsts: [Int] = []
    public private(set) var lengths: [Int] = []
    public private(set) var counts: [Int] = []
    public private(set) var blocks: [Int] = []

    public init() {}

    public var isEmpty: Bool { slots.isEmpty }
    public var count: Int { slots.count }

    public mutating func reserve(slots n: Int, blocks b: Int) {
        slots.reserveCapacity(n); firsts.reserveCapacity(n); lengths.reserveCapacity(n); counts.reserveCapacity(n)
        blocks.reserveCapacity(b)
    }

    /// Slot `slot` holds `length` positions; its table keeps `first` entries and continues with `newBlocks`.
    public mutating func append<C: Collection>(slot: Int, first: Int, length: Int, blocks newBlocks: C) where C.Element == Int {
        slots.append(slot); firsts.append(first); lengths.append(length); counts.append(newBlocks.count)
        blocks.append(contentsOf: newBlocks)
    }

    public mutating func removeAll() {
        slots.removeAll(keepingCapacity: true); firsts.removeAll(keepingCapacity: true)
        lengths.removeAll(keepingCapacity: true); counts.removeAll(keepingCapacity: true)
        blocks.removeAll(keepingCapacity: true)
    }

    /// As Int64 words: `[count, blockWords, (slot, first, length, count)…, blocks…]`.
    public func encoded(into words: inout [Int64]) {
        words.append(Int64(slots.count)); words.append(Int64(blocks.count))
        for i in slots.indices {
            words.append(Int64(slots[i])); words.append(Int64(firsts[i]))
            words.append(Int64(lengths[i])); words.append(Int64(counts[i]))
        }
        for b in blocks { words.append(Int64(b)) }
    }

    /// Words `encoded` wrote for `updates` updates and `blockWords` blocks.
    public static func wordCount(updates: Int, blocks: Int) -> Int { 2 + 4 * updates + blocks }

    /// Reads what `encoded` wrote; nil when the words do not add up.
    public init?(words: ArraySlice<Int64>) {
        guard words.count >= 2 else { return nil }
        let n = Int(words[words.startIndex]), b = Int(words[words.startIndex + 1])
        guard n >= 0, b >= 0, words.count == BlockTableUpdates.wordCount(updates: n, blocks: b) else { return nil }
        var at = words.startIndex + 2
        for _ in 0..<n {
            slots.append(Int(words[at])); firsts.append(Int(words[at + 1]))
            lengths.append(Int(words[at + 2])); counts.append(Int(words[at + 3]))
            at += 4
        }
        guard counts.reduce(0, +) == b, counts.allSatisfy({ $0 >= 0 }) else { return nil }
        blocks = words[at...].map(Int.init)
    }
}

/// A KV cache of `paging.blockCount` physical blocks, each holding `blockSize` positions of every layer in
/// `layers`; slot s reads its positions through its block table (entry b = the physical block of its positions
/// `b · blockSize ..< (b + 1) · blockSize`), set by `apply`. Blocks may be shared by several tables (a common
/// prefix); a block is written only by the slot whose table last received it, at positions it has not cached.
/// Float32 blocks are head-major (`[kvHeads][blockSize][headDim]`), 8-bit blocks `[blockSize]` rows of `KVRowQ8`.
public final class PagedKVCache: KVCache {
    public let layers: Range<Int>
    public let sequenceCount: Int
    public let contextLength: Int
    public let kvDim: Int
    public let layout: KVLayout
    public let paging: KVPaging
    public let type: KVCacheType
    private let headDim: Int
    private let rowBytes: Int
    private let blockBytes: Int                            // one layer's keys (or values) of one block
    private let blocksPerSequence: Int
    private var offsets: [Int]
    private var assigned: [Int]                            // table entries each slot holds
    private let pool: UnsafeMutableRawPointer              // [block][layer][keys, values] × blockBytes
    private let tables: UnsafeMutablePointer<KVBlock>      // [slot][layer][blocksPerSequence]

    public init(layers: Range<Int>, sequences: Int, contextLength: Int, kvDim: Int, headDim: Int,
                type: KVCacheType, paging: KVPaging) throws {
        guard !layers.isEmpty, layers.lowerBound >= 0, sequences > 0, contextLength > 0, kvDim > 0, headDim > 0,
              kvDim % headDim == 0, paging.blockSize > 0, paging.blockCount > 0 else {
            throw ModelError.invalidBuffer("paged KV cache of \(paging.blockCount) blocks x \(paging.blockSize) positions for \(sequences) sequences x \(layers) layers x \(kvDim) (heads of \(headDim)) is empty or uneven")
        }
        rowBytes = type.rowBytes(kvDim: kvDim, headDim: headDim)
        blockBytes = paging.blockSize * rowBytes
        let (perBlock, o1) = (2 * blockBytes).multipliedReportingOverflow(by: layers.count)
        let (total, o2) = perBlock.multipliedReportingOverflow(by: paging.blockCount)
        guard !(o1 || o2), total <= 1 << 40, let storage = calloc(total, 1) else {
            throw ModelError.invalidBuffer("cannot reserve a \(type.rawValue) KV cache of \(paging.blockCount) blocks x \(paging.blockSize) positions x \(layers.count) layers x \(kvDim) values")
        }
        pool = storage
        self.layers = layers; sequenceCount = sequences; self.contextLength = contextLength; self.kvDim = kvDim
        self.headDim = headDim; self.type = type; self.paging = paging
        layout = type == .f32 ? .float(stride: headDim, headStride: paging.blockSize * headDim)
                              : .q8(rowBytes: rowBytes, kvDim: kvDim)
        blocksPerSequence = paging.blocks(for: contextLength)
        let entries = sequences * layers.count * blocksPerSequence
        tables = .allocate(capacity: entries)
        tables.initialize(repeating: KVBlock(keys: UnsafeRawPointer(storage), values: UnsafeRawPointer(storage)),
                          count: entries)
        offsets = Array(repeating: 0, count: sequences)
        assigned = Array(repeating: 0, count: sequences)
    }

    deinit { free(pool); tables.deallocate() }

    /// Bytes of keys and values together.
    public var byteCount: Int { 2 * blockBytes * layers.count * paging.blockCount }

    public func offset(of sequence: Int) -> Int { offsets.indices.contains(sequence) ? offsets[sequence] : 0 }

    public func setOffset(_ offset: Int, of sequence: Int) {
        guard offsets.indices.contains(sequence) else { return }
        offsets[sequence] = min(max(offset, 0), capacity(of: sequence))
    }

    /// Positions the slot's table covers.
    public func capacity(of sequence: Int) -> Int {
        assigned.indices.contains(sequence) ? min(assigned[sequence] * paging.blockSize, contextLength) : 0
    }

    /// Applies the coordinator's table changes (checked, so a bad message names the slot and block).
    public func apply(_ updates: BlockTableUpdates) throws {
        var at = 0
        for i in 0..<updates.count {
            let s = updates.slots[i], first = updates.firsts[i], n = updates.counts[i]
            guard offsets.indices.contains(s) else {
                throw ModelError.invalidBatch("block table update for slot \(s) outside 0..<\(sequenceCount)")
            }
            guard first >= 0, first <= assigned[s], first + n <= blocksPerSequence else {
                throw ModelError.invalidBatch("block table update for slot \(s): \(n) blocks after entry \(first) of \(assigned[s]) (at most \(blocksPerSequence))")
            }
            for e in 0..<n {
                let b = updates.blocks[at + e]
                guard b >= 0, b < paging.blockCount else {
                    throw ModelError.invalidBatch("block table update for slot \(s): block \(b) outside the pool of \(paging.blockCount)")
                }
                for l in 0..<layers.count {
                    let k = pool + (b * layers.count + l) * 2 * blockBytes
                    tables[(s * layers.count + l) * blocksPerSequence + first + e] =
                        KVBlock(keys: UnsafeRawPointer(k), values: UnsafeRawPointer(k + blockBytes))
                }
            }
            at += n
            assigned[s] = first + n
            guard updates.lengths[i] >= 0, updates.lengths[i] <= capacity(of: s) else {
                throw ModelError.invalidBatch("block table update for slot \(s): \(updates.lengths[i]) cached positions but \(assigned[s]) blocks")
            }
            offsets[s] = updates.lengths[i]
        }
    }

    /// Identity tables: slot s gets blocks `s · blocksPerSequence …` for `positions` positions (a cache used
    /// without a coordinator's block manager, as kernel and model tests do). Needs the pool to hold them.
    public func assignContiguous(sequence s: Int, positions: Int) throws {
        var updates = BlockTableUpdates()
        let n = min(paging.blocks(for: positions), blocksPerSequence)
        updates.append(slot: s, first: 0, length: 0, blocks: (s * blocksPerSequence) ..< (s * blocksPerSequence + n))
        try apply(updates)
    }

    public func write(layer: Int, sequence: Int, position: Int, key: UnsafePointer<Float>, value: UnsafePointer<Float>) {
        let b = position / paging.blockSize, row = position &- b &* paging.blockSize
        let block = tables[(sequence &* layers.count &+ layer &- layers.lowerBound) &* blocksPerSequence &+ b]
        let k = UnsafeMutableRawPointer(mutating: block.keys), v = UnsafeMutableRawPointer(mutating: block.values)
        switch type {
        case .f32:
            let bytes = 4 &* headDim
            for h in 0..<(kvDim / headDim) {
                let to = 4 &* (h &* paging.blockSize &* headDim &+ row &* headDim)
                (k + to).copyMemory(from: key + h &* headDim, byteCount: bytes)
                (v + to).copyMemory(from: value + h &* headDim, byteCount: bytes)
            }
        case .q8_0:
            KVRowQ8.quantize(key, kvDim: kvDim, headDim: headDim, into: k + row &* rowBytes)
            KVRowQ8.quantize(value, kvDim: kvDim, headDim: headDim, into: v + row &* rowBytes)
        }
    }

    public func span(layer: Int, sequence: Int, first: Int, length: Int) -> AttentionSpan {
        AttentionSpan(blocks: tables + (sequence &* layers.count &+ layer &- layers.lowerBound) &* blocksPerSequence,
                      blockSize: paging.blockSize, first: first, length: length)
    }
}
