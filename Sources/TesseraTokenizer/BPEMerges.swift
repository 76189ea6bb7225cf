// Byte-pair merging of one pre-tokenized word: the adjacent pair with the lowest rank merges first, the leftmost
// among equal ranks; the same rule serves rank-ordered merge lists and SentencePiece scores turned into ranks.

/// (left id, right id) -> (rank, merged id). Lower ranks merge first.
struct MergeTable: Sendable {
    private var table: [UInt64: UInt64] = [:]

    var count: Int { table.count }

    /// Adds a merge; a pair already present keeps its lower rank.
    mutating func add(left: Int, right: Int, merged: Int, rank: Int) {
        let key = MergeTable.key(Int32(truncatingIfNeeded: left), Int32(truncatingIfNeeded: right))
        let value = UInt64(UInt32(truncatingIfNeeded: rank)) << 32 | UInt64(UInt32(truncatingIfNeeded: merged))
        if let old = table[key], old >> 32 <= value >> 32 { return }
        table[key] = value
    }

    @inline(__always)
    func lookup(_ left: Int32, _ right: Int32) -> (rank: UInt32, merged: Int32)? {
        guard let v = table[MergeTable.key(left, right)] else { return nil }
        return (UInt32(truncatingIfNeeded: v >> 32), Int32(truncatingIfNeeded: UInt32(truncatingIfNeeded: v)))
    }

    @inline(__always)
    private static func key(_ a: Int32, _ b: Int32) -> UInt64 {
        UInt64(UInt32(bitPattern: a)) << 32 | UInt64(UInt32(bitPattern: b))
    }
}

extension MergeTable {
    /// Merges `symbols` (token ids of one word) in place until no adjacent pair has a merge.
    func apply(_ symbols: inout [Int32]) {
        let n = symbols.count
        guard n > 1 else { return }
        if n <= 16 { applyQuadratic(&symbols); return }

        var prev = [Int32](unsafeUninitializedCapacity: n) { buf, count in
            for i in 0..<n { buf[i] = Int32(i) - 1 }; count = n
        }  // (n) left neighbour, -1 none
        var next = [Int32](unsafeUninitializedCapacity: n) { buf, count in
            for i in 0..<n { buf[i] = i + 1 < n ? Int32(i + 1) : -1 }; count = n
        }  // (n) right neighbour, -1 none
        var heap = MinHeap()  // keys: rank << 32 | left position
        for i in 0..<(n - 1) {
            if let m = lookup(symbols[i], symbols[i + 1]) { heap.push(UInt64(m.rank) << 32 | UInt64(i)) }
        }
        while let top = heap.pop() {
            let pos = Int(UInt32(truncatingIfNeeded: top))
            let rank = UInt32(truncatingIfNeeded: top >> 32)
            guard symbols[pos] >= 0 else { continue }          // merged into its left neighbour
            let r = Int(next[pos])
            guard r >= 0, let m = lookup(symbols[pos], symbols[r]), m.rank == rank else { continue }  // stale
            symbols[pos] = m.merged
            symbols[r] = -1
            let rr = next[r]
            next[pos] = rr
            if rr >= 0 { prev[Int(rr)] = Int32(pos) }
            let p = Int(prev[pos])
            if p >= 0, let mp = lookup(symbols[p], symbols[pos]) { heap.push(UInt64(mp.rank) << 32 | UInt64(p)) }
            if rr >= 0, let mn = lookup(symbols[pos], symbols[Int(rr)]) { heap.push(UInt64(mn.rank) << 32 | UInt64(pos)) }
        }
        symbols.removeAll(where: { $0 < 0 })
    }

    /// The same rule by repeated scans; faster for short words.
    private func applyQuadratic(_ symbols: inout [Int32]) {
        while symbols.count > 1 {
            var best = UInt32.max, bestPos = -1, merged: Int32 = 0
            for i in 0..<(symbols.count - 1) {
                if let m = lookup(symbols[i], symbols[i + 1]), m.rank < best {
                    best = m.rank; bestPos = i; merged = m.merged
                }
            }
            guard bestPos >= 0 else { return }
            symbols[bestPos] = merged
            symbols.remove(at: bestPos + 1)
        }
    }
}

/// A binary min-heap of UInt64 keys.
struct MinHeap {
    private var items: [UInt64] = []

    mutating func push(_ key: UInt64) {
        items.append(key)
        var i = items.count - 1
        while i > 0 {
            let parent = (i - 1) / 2
            if items[parent] <= items[i] { break }
            items.swapAt(parent, i); i = parent
        }
    }

    mutating func pop() -> UInt64? {
        guard let first = items.first else { return nil }
        let last = items.removeLast()
        if !items.isEmpty {
            items[0] = last
            var i = 0
            while true {
                let l = 2 * i + 1, r = l + 1
                var m = i
                if l < items.count && items[l] < items[m] { m = l }
                if r < items.count && items[r] < items[m] { m = r }
                if m == i { break }
                items.swapAt(m, i); i = m
            }
        }
        return first
    }
}
