// Fused operators against their unfused steps: fused products (Q/K/V, gate/up with SiLU·mul, RMSNorm folded into
// the input preparation) and accumulating products equal the separate steps bit for bit; online-softmax attention,
// split over positions and threads, equals the exact attention within float rounding.
import TesseraFormats
import TesseraKernels
import XCTest

final class FusionTests: XCTestCase {
    /// The unfused steps: RMSNorm of every row, then one `matmul` per matrix.
    func unfused(_ ms: [WeightMatrix], _ x: [Float], n: Int, norm: [Float]?, mode: ComputeMode,
                 pool: ThreadPool?) -> [[Float]] {
        let cols = ms[0].cols
        var input = x
        if let norm {
            for i in 0..<n {
                input.withUnsafeMutableBufferPointer { dst in
                    x.withUnsafeBufferPointer { src in
                        rmsNorm(src.baseAddress! + i * cols, weight: norm, count: cols, eps: 1e-5,
                                into: dst.baseAddress! + i * cols)
                    }
                }
            }
        }
        return ms.map { m in
            var y = [Float](repeating: .nan, count: n * m.rows)
            var scratch = [Float](repeating: 0, count: m.scratchCount(mode: mode, threads: pool?.threads ?? 1))
            matmul(input, rows: n, weight: m, into: &y, scratch: &scratch, mode: mode, pool: pool)
            return y
        }
    }

    func fused(_ f: FusedProducts, _ x: [Float], n: Int, norm: [Float]?) -> [[Float]] {
        let ys = f.parts.map { m -> UnsafeMutablePointer<Float> in
            let p = UnsafeMutablePointer<Float>.allocate(capacity: n * m.rows)
            p.initialize(repeating: .nan, count: n * m.rows)
            return p
        }
        defer { ys.forEach { $0.deallocate() } }
        var normed = [Float](repeating: 0, count: n * f.inputSize)
        var scratch = [Float](repeating: 0, count: f.scratchCount)
        let outputs = FusedOutputs(ys[0], ys[1], ys.count > 2 ? ys[2] : nil)
        if let norm {
            f(x, rows: n, norm: FusedNorm(weight: norm, eps: 1e-5), normed: &normed, outputs: outputs, scratch: &scratch)
        } else {
            f(x, rows: n, norm: nil, normed: &normed, outputs: outputs, scratch: &scratch)
        }
        return zip(f.parts, ys).map { m, y in Array(UnsafeBufferPointer(start: y, count: n * m.rows)) }
    }

    func testFusedProductsEqualSeparateProducts() throws {
        for type in [GGMLType.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .iq4_nl, .q2_K, .q3_K, .q4_K, .q5_K, .iq4_xs, .f16, .f32] {
            let cols = type.blockSize == 256 ? 256 : 96
            let ws = [Weights(type, rows: 48, cols: cols, seed: 1), Weights(type, rows: 16, cols: cols, seed: 2),
                      Weights(type, rows: 21, cols: cols, seed: 3)]
            let norm = (0..<cols).map { Float($0 % 7) * 0.3 - 0.5 }
            try ws[0].withMatrix { a in try ws[1].withMatrix { b in try ws[2].withMatrix { c in
                for mode in [ComputeMode.exact, .fast] {
                    for pool in [nil, ThreadPool(threads: 3)] {
                        let compute = ComputeOptions(mode: mode, pool: pool)
                        let f = try XCTUnwrap(FusedProducts([a, b, c], compute: compute))
                        let prepared = [a, b, c].map { $0.prepared(for: mode) }
                        for n in [1, 5, 70] {
                            let x = activations(n: n, cols: cols, stride: cols, seed: UInt64(n))
                            for withNorm in [false, true] {
                                let want = unfused(prepared, x, n: n, norm: withNorm ? norm : nil, mode: mode, pool: pool)
                                let got = fused(f, x, n: n, norm: withNorm ? norm : nil)
                                for p in 0..<3 {
                                    XCTAssertEqual(got[p].map(\.bitPattern), want[p].map(\.bitPattern),
                                                   "\(type) \(mode) threads \(pool?.threads ?? 1) n \(n) norm \(withNorm) part \(p)")
                                }
                            }
                        }
                    }
                }
            } } }
        }
    }

    func testGateUpWithSiLUEqualsSeparateSteps() throws {
        for type in [GGMLType.q4_1, .q8_0, .f32] {
            let cols = 64, rows = 80
            let g = Weights(type, rows: rows, cols: cols, seed: 11), u = Weights(type, rows: rows, cols: cols, seed: 12)
            try g.withMatrix { gm in try u.withMatrix { um in
                for mode in [ComputeMode.exact, .fast] {
                    for pool in [nil, ThreadPool(threads: 2)] {
                        let f = try XCTUnwrap(FusedProducts([gm, um], compute: ComputeOptions(mode: mode, pool: pool),
                                                            epilogue: .siluMul))
                        for n in [1, 3, 66] {
                            let x = activations(n: n, cols: cols, stride: cols, seed: 5)
                            var want = unfused([gm, um].map { $0.prepared(for: mode) }, x, n: n, norm: nil, mode: mode,
                                               pool: pool)
                            let up = want[1]
                            siluMul(&want[0], up, count: n * rows, mode: mode)
                            let got = fused(f, x, n: n, norm: nil)
                            XCTAssertEqual(got[0].map(\.bitPattern), want[0].map(\.bitPattern),
                                           "\(type) \(mode) threads \(pool?.threads ?? 1) n \(n)")
                        }
                    }
                }
            } }
        }
    }

    func testFusionRefusesMismatchedMatrices() throws {
        let a = Weights(.q8_0, rows: 16, cols: 64, seed: 1), b = Weights(.q8_0, rows: 16, cols: 96, seed: 2)
        let c = Weights(.q4_K, rows: 16, cols: 256, seed: 3), d = Weights(.q8_0, rows: 16, cols: 256, seed: 4)
        try a.withMatrix { am in try b.withMatrix { bm in try c.withMatrix { cm in try d.withMatrix { dm in
            XCTAssertNil(FusedProducts([am, bm], compute: ComputeOptions(mode: .fast)), "different row lengths")
            XCTAssertNil(FusedProducts([cm, dm], compute: ComputeOptions(mode: .fast)), "Q8_K and Q8_0 activations")
            XCTAssertNotNil(FusedProducts([cm, dm], compute: ComputeOptions(mode: .exact)), "exact takes any types")
            XCTAssertNil(FusedProducts([am], compute: ComputeOptions(mode: .fast)), "one matrix")
        } } } }
    }

    func testAccumulatingProductEqualsProductPlusAdd() throws {
        for type in [GGMLType.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .iq4_nl, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .iq4_xs, .bf16, .f16, .f32] {
            let cols = type.blockSize == 256 ? 256 : 128, rows = 37
            try Weights(type, rows: rows, cols: cols, seed: 9).withMatrix { raw in
                forEachLevel { level in
                    for mode in [ComputeMode.exact, .fast] {
                        let m = raw.prepared(for: mode)
                        for pool in [nil, ThreadPool(threads: 2)] {
                            let n = 3, x = activations(n: n, cols: cols, stride: cols, seed: 4)
                            let base = (0..<(n * rows)).map { Float($0 % 13) - 6.5 }
                            var product = [Float](repeating: 0, count: n * rows)
                            var scratch = [Float](repeating: 0, count: m.scratchCount(mode: mode, threads: 2))
                            matmul(x, rows: n, weight: m, into: &product, scratch: &scratch, mode: mode, pool: pool)
                            var want = base
                            add(product, into: &want, count: n * rows)
                            var got = base
                            matmul(x, rows: n, weight: m, into: &got, scratch: &scratch, mode: mode, pool: pool,
                                   accumulate: true)
                            XCTAssertEqual(got.map(\.bitPattern), want.map(\.bitPattern), "\(type) \(mode) \(level)")
                        }
                    }
                }
            }
        }
    }

    /// Online attention over several tokens, with and without position splits, against the exact per-token form.
    func testOnlineAttentionMatchesExact() {
        var rng = Rand(90)
        for (heads, kvHeads, headDim) in [(9, 3, 64), (2, 1, 64), (4, 4, 16), (1, 1, 128), (8, 2, 8)] {
            let kvDim = kvHeads * headDim, scale = 1 / Float(headDim).squareRoot()
            let lengths = [1, 17, 300, 1000]
            let k = (0..<(1000 * kvDim)).map { _ in rng.float(2) }
            let v = (0..<(1000 * kvDim)).map { _ in rng.float() }
            let q = (0..<(lengths.count * heads * headDim)).map { _ in rng.float(2) }
            var exact = [Float](repeating: 0, count: q.count)
            var scores = [Float](repeating: 0, count: 1000)
            let dense = ScatteredBlocks(keys: k, values: v, rows: 1000, rowFloats: kvDim, blockSize: 1000)
            for (i, length) in lengths.enumerated() {
                var out = [Float](repeating: 0, count: heads * headDim)
                attention(query: Array(q[(i * heads * headDim)...]), span: dense.span(first: 0, length: length),
                          kvStride: kvDim, kvHeadStride: headDim, heads: heads, kvHeads: kvHeads, headDim: headDim,
                          scale: scale, scores: &scores, output: &out)
                exact.replaceSubrange((i * heads * headDim)..<((i + 1) * heads * headDim), with: out)
            }
            forEachLevel { level in
                for threads in [1, 2, 5] {
                    let pool = threads > 1 ? ThreadPool(threads: threads) : nil
                    let job = OnlineAttention(heads: heads, kvHeads: kvHeads, headDim: headDim, scale: scale,
                                              layout: .float(stride: kvDim, headStride: headDim), pool: pool)
                    for tokens in [1, lengths.count] {   // one token splits positions when heads are few
                        var out = [Float](repeating: .nan, count: tokens * heads * headDim + 1)
                        var partials = [Float](repeating: 0, count: OnlineAttention.partialsCount(heads: heads, kvHeads: kvHeads, headDim: headDim,
                                                                                               threads: threads, tokens: tokens))
                        var spans = (0..<tokens).map { i in dense.span(first: 0, length: tokens == 1 ? 1000 : lengths[i]) }
                        job(queries: tokens == 1 ? Array(q[(3 * heads * headDim)...]) : q, queryStride: heads * headDim,
                            spans: &spans, tokens: tokens, output: &out, outputStride: heads * headDim,
                            partials: &partials)
                        XCTAssertTrue(out[tokens * heads * headDim].isNaN, "wrote past the output")
                        let offset = tokens == 1 ? 3 * heads * headDim : 0
                        for j in 0..<(tokens * heads * headDim) {
                            XCTAssertEqual(out[j], exact[offset + j], accuracy: 3e-5,
                                           "\(level) heads \(heads)/\(kvHeads) headDim \(headDim) threads \(threads) tokens \(tokens) at \(j)")
                        }
                    }
                }
            }
        }
    }

    /// A token's online attention is bit for bit the same alone and in a batch with other tokens of other lengths,
    /// at every thread count: its position splits depend on its own span only (continuous batching relies on it).
    func testOnlineAttentionIsBatchInvariant() {
        var rng = Rand(91)
        let (heads, kvHeads, headDim) = (9, 3, 64)
        let kvDim = kvHeads * headDim, scale = 1 / Float(headDim).squareRoot()
        let lengths = [1000, 5, 300, 700, 64, 65, 129, 2]
        let k = (0..<(1000 * kvDim)).map { _ in rng.float(2) }
        let v = (0..<(1000 * kvDim)).map { _ in rng.float() }
        let q = (0..<(lengths.count * heads * headDim)).map { _ in rng.float(2) }
        let dense = ScatteredBlocks(keys: k, values: v, rows: 1000, rowFloats: kvDim, blockSize: 16)
        let row = heads * headDim
        for threads in [1, 2, 5] {
            let pool = threads > 1 ? ThreadPool(threads: threads) : nil
            let job = OnlineAttention(heads: heads, kvHeads: kvHeads, headDim: headDim, scale: scale,
                                      layout: .float(stride: kvDim, headStride: headDim), pool: pool)
            func run(_ tokens: [Int]) -> [Float] {
                var out = [Float](repeating: .nan, count: tokens.count * row)
                var partials = [Float](repeating: 0, count: OnlineAttention.partialsCount(
                    heads: heads, kvHeads: kvHeads, headDim: headDim, threads: threads, tokens: tokens.count))
                var spans = tokens.map { dense.span(first: 0, length: lengths[$0]) }
                let queries = tokens.flatMap { q[($0 * row)..<(($0 + 1) * row)] }
                job(queries: queries, queryStride: row, spans: &spans, tokens: tokens.count, output: &out,
                    outputStride: row, partials: &partials)
                return out
            }
            let batch = run(Array(lengths.indices))
            for i in lengths.indices {
                XCTAssertEqual(run([i]), Array(batch[(i * row)..<((i + 1) * row)]),
                               "threads \(threads): token \(i) (\(lengths[i]) positions) alone vs in a batch of \(lengths.count)")
            }
        }
    }
}


final class MemoryBandwidthTests: XCTestCase {
    /// The probe reads every byte at every level (its checksum equals the portable one, and changes with any word).
    func testReadsEveryWordAtEveryLevel() {
        var rng = Rand(3)
        var words = (0..<1003).map { _ in rng.next() }
        func checksum() -> [UInt64] {
            var sums: [UInt64] = []
            forEachLevel { _ in sums.append(words.withUnsafeBytes { MemoryBandwidth.read($0.baseAddress!, bytes: $0.count) }) }
            return sums
        }
        let before = checksum()
        XCTAssertEqual(Set(before).count, 1, "levels disagree: \(before)")
        for i in [0, 17, 500, 1002] {
            words[i] &+= 1
            let after = checksum()
            XCTAssertEqual(Set(after).count, 1)
            XCTAssertNotEqual(after[0], before[0], "word \(i) was not read")
            words[i] &-= 1
        }
        XCTAssertGreaterThan(MemoryBandwidth.measure(bytes: 1 << 22, threads: 2, passes: 2), 0)
    }
}
