// Attention through block tables: the kernels walk a span's KV blocks in order and never assume its positions are
// contiguous. Positions scattered over blocks of 1, 5, 16 and 64 (stored in reverse order, with NaN beyond the
// rows) give the same attention as one dense block: bit for bit in the exact and the fast per-head forms, within
// rounding in the online softmax (its chunks restart at block boundaries), f32 and 8-bit rows, at every CPU level.
import TesseraKernels
import XCTest

/// Keys and values of `rows` positions (`rowBytes` each, position-major) copied into blocks of `blockSize`
/// positions placed in reverse order in one allocation filled with NaN bytes, so a kernel that read past a block
/// or assumed the next block follows would see garbage.
final class ScatteredBlocks {
    let blockSize: Int
    let blockCount: Int
    private let table: UnsafeMutablePointer<KVBlock>
    private let storage: UnsafeMutableRawPointer

    init(keys: UnsafeRawPointer, values: UnsafeRawPointer, rows: Int, rowBytes: Int, blockSize: Int) {
        self.blockSize = blockSize
        blockCount = (rows + blockSize - 1) / blockSize
        let blockBytes = blockSize * rowBytes, total = 2 * blockCount * blockBytes
        storage = .allocate(byteCount: total, alignment: 64)
        storage.initializeMemory(as: UInt8.self, repeating: 0xFF, count: total)
        table = .allocate(capacity: blockCount)
        for b in 0..<blockCount {
            let k = storage + 2 * (blockCount - 1 - b) * blockBytes, v = k + blockBytes
            let bytes = min(blockSize, rows - b * blockSize) * rowBytes
            k.copyMemory(from: keys + b * blockBytes, byteCount: bytes)
            v.copyMemory(from: values + b * blockBytes, byteCount: bytes)
            table[b] = KVBlock(keys: UnsafeRawPointer(k), values: UnsafeRawPointer(v))
        }
    }

    convenience init(keys: [Float], values: [Float], rows: Int, rowFloats: Int, blockSize: Int) {
        self.init(keys: keys, values: values, rows: rows, rowBytes: 4 * rowFloats, blockSize: blockSize)
    }

    deinit { storage.deallocate(); table.deallocate() }

    func span(first: Int, length: Int) -> AttentionSpan {
        AttentionSpan(blocks: table, blockSize: blockSize, first: first, length: length)
    }
}

final class BlockTableTests: XCTestCase {
    let rows = 300
    let spans = [(0, 1), (0, 17), (0, 300), (37, 200), (299, 1)]   // (first, length)
    let blockSizes = [1, 5, 16, 64]

    struct Shape { let heads, kvHeads, headDim: Int; var kvDim: Int { kvHeads * headDim } }
    let shapes = [Shape(heads: 9, kvHeads: 3, headDim: 64), Shape(heads: 4, kvHeads: 4, headDim: 16),
                  Shape(heads: 2, kvHeads: 1, headDim: 128), Shape(heads: 8, kvHeads: 2, headDim: 8)]

    func data(_ s: Shape, seed: UInt64) -> (q: [Float], k: [Float], v: [Float]) {
        var rng = Rand(seed)
        return ((0..<(8 * s.heads * s.headDim)).map { _ in rng.float(2) }, (0..<(rows * s.kvDim)).map { _ in rng.float(2) },
                (0..<(rows * s.kvDim)).map { _ in rng.float() })
    }

    func perHead(_ s: Shape, _ q: [Float], _ span: AttentionSpan, mode: ComputeMode) -> [Float] {
        var scores = [Float](repeating: 0, count: rows), out = [Float](repeating: .nan, count: s.heads * s.headDim)
        attention(query: q, span: span, kvStride: s.kvDim, kvHeadStride: s.headDim, heads: s.heads, kvHeads: s.kvHeads,
                  headDim: s.headDim, scale: 1 / Float(s.headDim).squareRoot(), scores: &scores, output: &out,
                  mode: mode)
        return out
    }

    func online(_ s: Shape, _ q: [Float], _ spans: [AttentionSpan], layout: KVLayout, threads: Int) -> [Float] {
        let pool = threads > 1 ? ThreadPool(threads: threads) : nil
        let job = OnlineAttention(heads: s.heads, kvHeads: s.kvHeads, headDim: s.headDim,
                                  scale: 1 / Float(s.headDim).squareRoot(), layout: layout, pool: pool)
        var out = [Float](repeating: .nan, count: spans.count * s.heads * s.headDim)
        var partials = [Float](repeating: 0, count: OnlineAttention.partialsCount(heads: s.heads, kvHeads: s.kvHeads, headDim: s.headDim,
                                                                                threads: threads, tokens: spans.count))
        var spans = spans
        job(queries: q, queryStride: s.heads * s.headDim, spans: &spans, tokens: spans.count, output: &out,
            outputStride: s.heads * s.headDim, partials: &partials)
        return out
    }

    func testPerHeadAttentionIsBitIdenticalOverAnyBlocks() {
        for (n, s) in shapes.enumerated() {
            let (q, k, v) = data(s, seed: 11 + UInt64(n))
            let dense = ScatteredBlocks(keys: k, values: v, rows: rows, rowFloats: s.kvDim, blockSize: rows)
            for blockSize in blockSizes {
                let paged = ScatteredBlocks(keys: k, values: v, rows: rows, rowFloats: s.kvDim, blockSize: blockSize)
                XCTAssertEqual(paged.blockCount, (rows + blockSize - 1) / blockSize)
                for (first, length) in spans {
                    let want = perHead(s, q, dense.span(first: first, length: length), mode: .exact)
                    XCTAssertFalse(want.contains { $0.isNaN })
                    let got = perHead(s, q, paged.span(first: first, length: length), mode: .exact)
                    XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern),
                                   "exact \(s) blocks of \(blockSize) span \(first)+\(length)")
                    forEachLevel { level in
                        let fastDense = perHead(s, q, dense.span(first: first, length: length), mode: .fast)
                        let fastPaged = perHead(s, q, paged.span(first: first, length: length), mode: .fast)
                        XCTAssertEqual(fastPaged.map(\.bitPattern), fastDense.map(\.bitPattern),
                                       "fast \(level) \(s) blocks of \(blockSize) span \(first)+\(length)")
                        for (a, b) in zip(fastDense, want) { XCTAssertEqual(a, b, accuracy: 3e-5, "fast \(level)") }
                    }
                }
            }
        }
    }

    /// Several tokens at once (one per span) and a single token split over positions and threads.
    func testOnlineAttentionOverBlocksMatchesExact() {
        for (n, s) in shapes.enumerated() {
            let (q, k, v) = data(s, seed: 21 + UInt64(n))
            let dense = ScatteredBlocks(keys: k, values: v, rows: rows, rowFloats: s.kvDim, blockSize: rows)
            var exact = [Float]()
            for (i, (first, length)) in spans.enumerated() {
                exact += perHead(s, Array(q[(i * s.heads * s.headDim)...]), dense.span(first: first, length: length),
                                 mode: .exact)
            }
            let layout = KVLayout.float(stride: s.kvDim, headStride: s.headDim)
            forEachLevel { level in
                for blockSize in blockSizes + [rows] {
                    let paged = ScatteredBlocks(keys: k, values: v, rows: rows, rowFloats: s.kvDim, blockSize: blockSize)
                    for threads in [1, 2, 5] {
                        let all = online(s, q, spans.map { paged.span(first: $0.0, length: $0.1) }, layout: layout,
                                         threads: threads)
                        for (j, (a, b)) in zip(all, exact).enumerated() {
                            XCTAssertEqual(a, b, accuracy: 3e-5, "\(level) \(s) blocks of \(blockSize) threads \(threads) at \(j)")
                        }
                        let one = online(s, Array(q[(2 * s.heads * s.headDim)...]), [paged.span(first: 0, length: rows)],
                                         layout: layout, threads: threads)
                        for (a, b) in zip(one, exact[(2 * s.heads * s.headDim)...]) {
                            XCTAssertEqual(a, b, accuracy: 3e-5, "\(level) \(s) one token, blocks of \(blockSize)")
                        }
                    }
                }
            }
        }
    }

    /// 8-bit rows: the online kernel over scattered blocks equals it over one dense block up to rounding.
    func testEightBitRowsOverBlocks() {
        for (n, s) in shapes.enumerated() where s.headDim >= 16 {
            let (q, k, v) = data(s, seed: 31 + UInt64(n))
            let rowBytes = KVRowQ8.rowBytes(kvDim: s.kvDim, headDim: s.headDim)
            func rowsQ8(_ x: [Float]) -> [UInt8] {
                var out = [UInt8](repeating: 0, count: rows * rowBytes)
                out.withUnsafeMutableBytes { o in
                    x.withUnsafeBufferPointer { src in
                        for r in 0..<rows {
                            KVRowQ8.quantize(src.baseAddress! + r * s.kvDim, kvDim: s.kvDim, headDim: s.headDim,
                                             into: o.baseAddress! + r * rowBytes)
                        }
                    }
                }
                return out
            }
            let kq = rowsQ8(k), vq = rowsQ8(v), layout = KVLayout.q8(rowBytes: rowBytes, kvDim: s.kvDim)
            func blocks(_ size: Int) -> ScatteredBlocks {
                kq.withUnsafeBytes { kb in vq.withUnsafeBytes { vb in
                    ScatteredBlocks(keys: kb.baseAddress!, values: vb.baseAddress!, rows: rows, rowBytes: rowBytes,
                                    blockSize: size)
                } }
            }
            let dense = blocks(rows)
            forEachLevel { level in
                let want = online(s, q, spans.map { dense.span(first: $0.0, length: $0.1) }, layout: layout, threads: 1)
                XCTAssertFalse(want.contains { $0.isNaN })
                for blockSize in blockSizes {
                    let paged = blocks(blockSize)
                    for threads in [1, 2] {
                        let got = online(s, q, spans.map { paged.span(first: $0.0, length: $0.1) }, layout: layout,
                                         threads: threads)
                        for (a, b) in zip(got, want) {
                            XCTAssertEqual(a, b, accuracy: 1e-5, "q8 \(level) \(s) blocks of \(blockSize) threads \(threads)")
                        }
                    }
                }
            }
        }
    }
}
