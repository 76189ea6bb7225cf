// The Q8 KV cache: row bytes against an independent Swift quantizer at every level, the round-trip error bound,
// attention over Q8 rows against the exact float attention on the dequantized rows, split partials, and levels.
import TesseraKernels
import XCTest

final class QuantizedKVTests: XCTestCase {
    /// Expected bytes of one row: per block d = max|x| / 127, q = round-to-even(x / d), then the scales, then zeros.
    func expectedRow(_ x: ArraySlice<Float>, headDim: Int) -> [UInt8] {
        let kvDim = x.count, block = headDim % 32 == 0 ? 32 : headDim
        var q = [UInt8](), d = [UInt8]()
        for b in stride(from: x.startIndex, to: x.endIndex, by: block) {
            let xb = x[b..<(b + block)]
            let scale = xb.map { abs($0) }.max()! / 127
            for v in xb {
                let r: Float = scale == 0 ? 0 : max(-127, min(127, (v / scale).rounded(.toNearestOrEven)))
                q.append(UInt8(bitPattern: Int8(r)))
            }
            withUnsafeBytes(of: scale.bitPattern.littleEndian) { d += $0 }
        }
        let bytes = (kvDim + 4 * (kvDim / block) + 15) / 16 * 16
        return q + d + [UInt8](repeating: 0, count: bytes - q.count - d.count)
    }

    func testRowsAtEveryLevel() {
        var rng = Rand(91)
        for headDim in [8, 16, 64, 128, 12, 80] {
            for kvHeads in 1...4 {
                let kvDim = kvHeads * headDim, rows = 4, block = KVRowQ8.blockSize(headDim: headDim)
                let rowBytes = KVRowQ8.rowBytes(kvDim: kvDim, headDim: headDim)
                XCTAssertEqual(rowBytes % 16, 0)
                XCTAssertGreaterThanOrEqual(rowBytes, kvDim + 4 * (kvDim / block))
                // row 0 random with a different magnitude per block, row 1 all zero, row 2 an all-zero first block
                // and exact halves, row 3 one outlier
                var x = (0..<(rows * kvDim)).map { i in rng.float(Float(1 + (i / block) % 5)) }
                for i in 0..<kvDim { x[kvDim + i] = 0 }
                for i in 0..<block { x[2 * kvDim + i] = 0 }
                if kvDim > block {   // d = 1: 0.5 and -2.5 round to even
                    x[2 * kvDim + block] = 127; x[2 * kvDim + block + 1] = 0.5; x[2 * kvDim + block + 2] = -2.5
                }
                x[3 * kvDim + kvDim / 2] = 300
                var levels = [[UInt8]]()
                forEachLevel { level in
                    let out = quantize(x, rows: rows, kvDim: kvDim, headDim: headDim)
                    for r in 0..<rows {
                        let want = expectedRow(x[(r * kvDim)..<((r + 1) * kvDim)], headDim: headDim)
                        XCTAssertEqual(Array(out[(r * rowBytes)..<((r + 1) * rowBytes)]), want,
                                       "\(level) headDim \(headDim) kvHeads \(kvHeads) row \(r)")
                    }
                    levels.append(out)
                    let back = dequantize(out, rows: rows, kvDim: kvDim, headDim: headDim)
                    for r in 0..<rows {
                        for b in stride(from: 0, to: kvDim, by: block) {
                            let base = r * kvDim + b
                            let d = x[base..<(base + block)].map { abs($0) }.max()! / 127
                            for i in base..<(base + block) {
                                XCTAssertLessThanOrEqual(abs(back[i] - x[i]), d * 0.50001 + abs(x[i]) * 1e-6,
                                                         "\(level) headDim \(headDim) element \(i)")
                            }
                        }
                    }
                    XCTAssertTrue(back[kvDim..<(2 * kvDim)].allSatisfy { $0 == 0 }, "all-zero row")
                }
                XCTAssertTrue(levels.allSatisfy { $0 == levels[0] }, "levels differ, headDim \(headDim)")
            }
        }
    }

    /// Shapes (heads, kvHeads, headDim): GQA groups of 4 and 3, and head sizes with a partial SIMD piece.
    let shapes = [(8, 2, 64), (9, 3, 16), (8, 2, 8), (4, 2, 12), (2, 1, 80), (2, 2, 128)]
    let lengths = [1, 3, 17, 64, 257, 1000]

    func testMatchesFloatAttentionOnDequantizedRows() {
        for (heads, kvHeads, headDim) in shapes {
            for length in lengths {
                let c = Cache(heads: heads, kvHeads: kvHeads, headDim: headDim, length: length,
                              seed: UInt64(length * 131 + headDim))
                var scores = [Float](repeating: 0, count: length)
                var expected = [Float](repeating: 0, count: heads * headDim)
                attention(query: c.query, keys: c.keysFloat, values: c.valuesFloat, length: length, kvStride: c.kvDim,
                          heads: heads, kvHeads: kvHeads, headDim: headDim, scale: c.scale, scores: &scores,
                          output: &expected, mode: .exact)
                forEachLevel { level in
                    assertClose(c.attention(), expected, relative: 1e-4,
                                "\(level) heads \(heads)/\(kvHeads) headDim \(headDim) length \(length)")
                }
            }
        }
    }

    func testSplitPartialsCombine() {
        for (heads, kvHeads, headDim) in shapes {
            for length in [17, 64, 257, 1000] {
                let c = Cache(heads: heads, kvHeads: kvHeads, headDim: headDim, length: length,
                              seed: UInt64(length + 5))
                forEachLevel { level in
                    let whole = c.attention()
                    for parts in [1, 2, 3, 7] {
                        assertClose(c.attention(parts: parts), whole, relative: 1e-5,
                                    "\(level) \(parts) parts \(heads)/\(kvHeads) heads \(headDim) length \(length)")
                    }
                }
            }
        }
    }

    func testEveryLevelMatchesPortable() {
        for (heads, kvHeads, headDim) in shapes {
            for length in lengths {
                let c = Cache(heads: heads, kvHeads: kvHeads, headDim: headDim, length: length,
                              seed: UInt64(length + 9))
                var portable: (out: [Float], partials: [(max: Float, sum: Float)])?
                forEachLevel { level in
                    let out = c.attention()
                    var acc = [Float](repeating: 0, count: headDim)
                    let partials = (0..<heads).map { h in c.partial(head: h, positions: 0..<length, acc: &acc) }
                    guard let p = portable else { portable = (out, partials); return }
                    let what = "\(level) heads \(heads)/\(kvHeads) headDim \(headDim) length \(length)"
                    assertClose(out, p.out, relative: 1e-5, what)
                    assertClose(partials.map(\.max), p.partials.map(\.max), relative: 1e-5, "\(what) max")
                    assertClose(partials.map(\.sum), p.partials.map(\.sum), relative: 1e-5, "\(what) sum")
                }
            }
        }
    }

    func testEmptyRangeAndSentinels() {
        let c = Cache(heads: 2, kvHeads: 1, headDim: 16, length: 5, seed: 3)
        var acc = [Float](repeating: .nan, count: 17)
        let r = c.partial(head: 0, positions: 2..<2, acc: &acc)
        XCTAssertEqual(r.max, -.infinity)
        XCTAssertEqual(r.sum, 0)
        XCTAssertEqual(Array(acc[0..<16]), [Float](repeating: 0, count: 16))
        XCTAssertTrue(acc[16].isNaN, "wrote past acc")
        forEachLevel { level in
            var out = [Float](repeating: .nan, count: 2 * 16 + 1)
            c.withRows { k, v in
                attentionQ8(query: c.query, keys: k, values: v, length: 5, rowBytes: c.rowBytes, heads: 2, kvHeads: 1,
                            headDim: 16, scale: c.scale, output: &out)
            }
            XCTAssertTrue(out[32].isNaN, "\(level): wrote past the output")
            XCTAssertTrue(out[0..<32].allSatisfy(\.isFinite), "\(level)")
        }
    }
}

/// `rows` Q8 rows of `x[rows × kvDim]` (bytes not written stay 0xEE).
private func quantize(_ x: [Float], rows: Int, kvDim: Int, headDim: Int) -> [UInt8] {
    let rowBytes = KVRowQ8.rowBytes(kvDim: kvDim, headDim: headDim)
    var out = [UInt8](repeating: 0xEE, count: rows * rowBytes)
    x.withUnsafeBufferPointer { xp in
        out.withUnsafeMutableBytes { o in
            for r in 0..<rows { KVRowQ8.quantize(xp.baseAddress! + r * kvDim, kvDim: kvDim, headDim: headDim,
                                                 into: o.baseAddress! + r * rowBytes) }
        }
    }
    return out
}

/// Floats of `rows` Q8 rows.
private func dequantize(_ bytes: [UInt8], rows: Int, kvDim: Int, headDim: Int) -> [Float] {
    let rowBytes = KVRowQ8.rowBytes(kvDim: kvDim, headDim: headDim)
    var out = [Float](repeating: .nan, count: rows * kvDim)
    bytes.withUnsafeBytes { b in
        out.withUnsafeMutableBufferPointer { o in
            for r in 0..<rows { KVRowQ8.dequantize(b.baseAddress! + r * rowBytes, kvDim: kvDim, headDim: headDim,
                                                   into: o.baseAddress! + r * kvDim) }
        }
    }
    return out
}

/// |a − b| ≤ relative · max|b| element-wise, all finite.
private func assertClose(_ a: [Float], _ b: [Float], relative: Float, _ message: String,
                         file: StaticString = #filePath, line: UInt = #line) {
    XCTAssertEqual(a.count, b.count, message, file: file, line: line)
    let tolerance = relative * max(b.map { abs($0) }.max() ?? 0, 1e-30)
    for i in 0..<min(a.count, b.count) where !(abs(a[i] - b[i]) <= tolerance) {
        XCTFail("\(message) [\(i)]: \(a[i]) vs \(b[i]) (tolerance \(tolerance))", file: file, line: line)
        return
    }
}

/// A query and `length` Q8 key and value rows with their dequantized floats. Scores spread and the maximum moves
/// late in the range (a key aligned with the query every 97 positions, growing), so the online softmax rescales.
private struct Cache {
    let heads, kvHeads, headDim, length, kvDim, rowBytes: Int
    let scale: Float
    let query: [Float]
    let keys, values: [UInt8]
    let keysFloat, valuesFloat: [Float]

    init(heads: Int, kvHeads: Int, headDim: Int, length: Int, seed: UInt64) {
        var rng = Rand(seed)
        self.heads = heads; self.kvHeads = kvHeads; self.headDim = headDim; self.length = length
        let kvDim = kvHeads * headDim, rowBytes = KVRowQ8.rowBytes(kvDim: kvDim, headDim: headDim)
        self.kvDim = kvDim; self.rowBytes = rowBytes
        scale = 1 / Float(headDim).squareRoot()
        let q = (0..<(heads * headDim)).map { _ in rng.float(2) }
        var k = (0..<(length * kvDim)).map { _ in rng.float(2) }
        let v = (0..<(length * kvDim)).map { i in rng.float(Float(1 + (i / 7) % 3)) }
        for j in stride(from: 50, to: length, by: 97) {
            for i in 0..<kvDim { k[j * kvDim + i] = q[i % headDim] * (0.5 + Float(j) / 400) }
        }
        query = q
        keys = quantize(k, rows: length, kvDim: kvDim, headDim: headDim)
        values = quantize(v, rows: length, kvDim: kvDim, headDim: headDim)
        keysFloat = dequantize(keys, rows: length, kvDim: kvDim, headDim: headDim)
        valuesFloat = dequantize(values, rows: length, kvDim: kvDim, headDim: headDim)
    }

    func withRows<R>(_ body: (UnsafeRawPointer, UnsafeRawPointer) -> R) -> R {
        keys.withUnsafeBytes { k in values.withUnsafeBytes { v in body(k.baseAddress!, v.baseAddress!) } }
    }

    /// `attentionQ8` at the active level, checking it writes nothing past the output.
    func attention() -> [Float] {
        var out = [Float](repeating: .nan, count: heads * headDim + 1)
        withRows { k, v in
            attentionQ8(query: query, keys: k, values: v, length: length, rowBytes: rowBytes, heads: heads,
                        kvHeads: kvHeads, headDim: headDim, scale: scale, output: &out)
        }
        XCTAssertTrue(out.removeLast().isNaN, "wrote past the output")
        return out
    }

    func partial(head h: Int, positions: Range<Int>, acc: inout [Float]) -> (max: Float, sum: Float) {
        withRows { k, v in
            query.withUnsafeBufferPointer { q in
                attentionPartialQ8(query: q.baseAddress! + h * headDim, keys: k, values: v, positions: positions,
                                   rowBytes: rowBytes, kvDim: kvDim, headDim: headDim, kvHead: h / (heads / kvHeads),
                                   scale: scale, acc: &acc)
            }
        }
    }

    /// Every head from `parts` partials over consecutive position ranges, merged by `attentionCombine`.
    func attention(parts: Int) -> [Float] {
        var out = [Float](repeating: .nan, count: heads * headDim)
        for h in 0..<heads {
            var m = [Float](), l = [Float](), acc = [Float]()
            for p in 0..<parts {
                var a = [Float](repeating: .nan, count: headDim)
                let r = partial(head: h, positions: (length * p / parts)..<(length * (p + 1) / parts), acc: &a)
                m.append(r.max); l.append(r.sum); acc += a
            }
            out.withUnsafeMutableBufferPointer {
                attentionCombine(max: m, sum: l, acc: acc, parts: parts, headDim: headDim,
                                 output: $0.baseAddress! + h * headDim)
            }
        }
        return out
    }
}
