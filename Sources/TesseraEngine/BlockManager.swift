// The coordinator's allocator of KV blocks: reference-counted blocks from one pool, full blocks kept by a chained
// hash of their tokens for reuse (prefix caching), evicted least recently used once nobody holds them.
import TesseraModels

/// Hands out physical KV blocks and keeps full ones for reuse. Every rank's paged cache has the same pool; only the
/// coordinator decides which block holds what, and tells the others through `BlockTableUpdates`.
///
/// A block is free (no holder, no cached content), cached (no holder, its full content keyed by its hash, on the
/// LRU list), or held (reference count > 0; it may also be keyed, and then other sequences may share it).
/// Preallocated: taking, sharing, keying and giving back blocks allocate nothing.
public final class BlockManager {
    public let paging: KVPaging
    public let prefixCaching: Bool
    private var references: [Int32]
    private var plain: [Int]                        // free blocks with no cached content
    private var hashes: [UInt64]                    // per block, valid when keyed[b]
    private var parents: [UInt64]                   // per block: the hash of the block before it
    private var keyed: [Bool]
    private var tokens: [Int32]                     // per block: its blockSize token ids, when keyed
    private var index: [UInt64: Int32]              // hash → keyed block
    private var lruPrevious: [Int32], lruNext: [Int32]
    private var lruHead: Int32 = -1, lruTail: Int32 = -1
    private var cachedCount = 0
    /// Prompt tokens looked up in, and found in, the prefix cache (vLLM's `prefix_cache_queries` / `_hits`).
    public private(set) var queriedTokens = 0
    public private(set) var hitTokens = 0

    /// The hash a sequence's first block chains from.
    public static let rootHash: UInt64 = 0x9E37_79B9_7F4A_7C15

    public init(paging: KVPaging, prefixCaching: Bool) {
        self.paging = paging; self.prefixCaching = prefixCaching
        let n = paging.blockCount
        references = Array(repeating: 0, count: n)
        plain = Array((0..<n).reversed())
        hashes = Array(repeating: 0, count: n); parents = Array(repeating: 0, count: n)
        keyed = Array(repeating: false, count: n)
        tokens = prefixCaching ? Array(repeating: 0, count: n * paging.blockSize) : []
        index = [:]
        if prefixCaching { index.reserveCapacity(n) }
        lruPrevious = Array(repeating: -1, count: n); lruNext = Array(repeating: -1, count: n)
    }

    /// Blocks that can be taken now (free ones and cached ones no sequence holds).
    public var available: Int { plain.count + cachedCount }
    /// Blocks some sequence holds.
    public var held: Int { paging.blockCount - available }
    /// Share of the pool held, 0…1 (vLLM's `kv_cache_usage_perc`).
    public var usage: Double { Double(held) / Double(paging.blockCount) }

    /// Takes a block (a free one first, else the least recently used cached one, whose key is dropped).
    public func take() -> Int? {
        let b: Int
        if let p = plain.popLast() { b = p }
        else if lruHead >= 0 { b = Int(lruHead); unlink(b); unkey(b) }
        else { return nil }
        references[b] = 1
        return b
    }

    /// Gives back one holder's reference; a block nobody holds becomes cached (if keyed) or free.
    public func giveBack(_ b: Int) {
        precondition(references[b] > 0, "block \(b) given back more often than taken")
        references[b] -= 1
        guard references[b] == 0 else { return }
        if keyed[b] { linkAtTail(b) } else { plain.append(b) }
    }

    /// The hash of a full block of `blockTokens` after a block hashed `parent` (and an extra key, for inputs that
    /// are not token ids alone).
    public static func hash<C: Collection>(parent: UInt64, tokens blockTokens: C, extra: UInt64 = 0) -> UInt64
    where C.Element == Int {
        var h = parent ^ (extra &* 0xD6E8_FEB8_6659_FD93)
        for t in blockTokens {
            h = (h ^ UInt64(bitPattern: Int64(t))) &* 0x0000_0100_0000_01B3
            h ^= h >> 29
        }
        return h &* 0xBF58_476D_1CE4_E5B9
    }

    /// Whether block `b` is keyed by `hash` after `parent` with exactly these tokens.
    private func holds<C: Collection>(_ b: Int, hash: UInt64, parent: UInt64, tokens blockTokens: C) -> Bool
    where C.Element == Int {
        guard keyed[b], hashes[b] == hash, parents[b] == parent else { return false }
        var i = b * paging.blockSize
        for t in blockTokens { if tokens[i] != Int32(truncatingIfNeeded: t) { return false }; i += 1 }
        return true
    }

    /// Looks up the full block of `blockTokens` after `parent`; on a hit the caller holds it (reference taken)
    /// and gets its hash.
    public func share<C: Collection>(parent: UInt64, tokens blockTokens: C) -> (block: Int, hash: UInt64)?
    where C.Element == Int {
        guard prefixCaching, blockTokens.count == paging.blockSize else { return nil }
        let h = BlockManager.hash(parent: parent, tokens: blockTokens)
        guard let found = index[h], holds(Int(found), hash: h, parent: parent, tokens: blockTokens) else { return nil }
        let b = Int(found)
        if references[b] == 0 { unlink(b) }
        references[b] += 1
        return (b, h)
    }

    /// Counts a prompt lookup of `queried` tokens of which `hit` came from the cache.
    public func countLookup(queried: Int, hit: Int) { queriedTokens += queried; hitTokens += hit }

    /// Keys held block `b`, now full with `blockTokens` after `parent`, so later sequences may share it. Returns its
    /// hash (the parent of the sequence's next block). A block whose content is already keyed elsewhere stays unkeyed.
    @discardableResult
    public func key<C: Collection>(_ b: Int, parent: UInt64, tokens blockTokens: C) -> UInt64 where C.Element == Int {
        let h = BlockManager.hash(parent: parent, tokens: blockTokens)
        guard prefixCaching, !keyed[b], index[h] == nil else { return h }
        keyed[b] = true; hashes[b] = h; parents[b] = parent
        var i = b * paging.blockSize
        for t in blockTokens { tokens[i] = Int32(truncatingIfNeeded: t); i += 1 }
        index[h] = Int32(b)
        return h
    }

    private func unkey(_ b: Int) {
        guard keyed[b] else { return }
        keyed[b] = false
        if index[hashes[b]] == Int32(b) { index.removeValue(forKey: hashes[b]) }
    }

    private func linkAtTail(_ b: Int) {
        lruPrevious[b] = lruTail; lruNext[b] = -1
        if lruTail >= 0 { lruNext[Int(lruTail)] = Int32(b) } else { lruHead = Int32(b) }
        lruTail = Int32(b)
        cachedCount += 1
    }

    private func unlink(_ b: Int) {
        let p = lruPrevious[b], n = lruNext[b]
        if p >= 0 { lruNext[Int(p)] = n } else { lruHead = n }
        if n >= 0 { lruPrevious[Int(n)] = p } else { lruTail = p }
        lruPrevious[b] = -1; lruNext[b] = -1
        cachedCount -= 1
    }
}
