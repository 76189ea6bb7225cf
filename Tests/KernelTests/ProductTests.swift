// `.fast` products of every kernel type at every CPU level: against the portable level, against exact Double products
// of the dequantized weights (within the Q8 activation error), independent of n, with tails in rows, blocks and tiles.
import TesseraFormats
import TesseraKernels
import XCTest

final class ProductTests: XCTestCase {
    /// (type, weight rows, cols): row counts off the 4-row tiles, odd block counts, vocab-like tails.
    static let cases: [(GGMLType, Int, Int)] = [
        (.q4_0, 7, 96), (.q4_0, 13, 64), (.q4_1, 9, 160), (.q4_1, 6, 576), (.q8_0, 11, 96), (.q8_0, 5, 32),
        (.q5_0, 7, 96), (.q5_0, 17, 896), (.q5_1, 9, 160), (.q5_1, 5, 32),
        (.q4_K, 5, 512), (.q4_K, 3, 256), (.q5_K, 7, 768), (.q5_K, 2, 256), (.q6_K, 6, 768), (.q6_K, 2, 256),
        (.q2_K, 5, 512), (.q2_K, 2, 256), (.q3_K, 7, 768), (.q3_K, 3, 256),
        (.iq4_nl, 9, 96), (.iq4_nl, 6, 896), (.iq4_xs, 5, 512), (.iq4_xs, 2, 256),
        (.f32, 7, 37), (.f32, 5, 16), (.f16, 6, 45), (.bf16, 9, 33),
    ]

    func testEveryKernelAtEveryLevel() throws {
        let n = 5
        for (c, (type, rows, cols)) in Self.cases.enumerated() {
            let w = Weights(type, rows: rows, cols: cols, seed: UInt64(100 + c))
            let xStride = cols + 3
            let x = activations(n: n, cols: cols, stride: xStride, seed: UInt64(200 + c))
            let format = try XCTUnwrap(type.fastActivationFormat, "\(type)")
            try w.withMatrix { m in
                var portable: [Float] = []
                forEachLevel { level in
                    let y = product(m, x, n: n, xStride: xStride, mode: .fast)
                    if level == .portable { portable = y }
                    for i in 0..<n {
                        let single = product(m, Array(x[(i * xStride)...]), n: 1, xStride: xStride, mode: .fast)
                        for r in 0..<rows {
                            let got = y[i * (rows + 1) + r], at = "\(type) \(rows)x\(cols) \(level) row \(i) out \(r)"
                            XCTAssertEqual(got.bitPattern, single[r].bitPattern, "\(at): depends on n")
                            let ref = reference(w, row: r, x: x[(i * xStride)..<(i * xStride + cols)],
                                                activationBlock: format.blockSize)
                            let q = format == .float ? 0 : ref.quantization
                            XCTAssertEqual(Double(got), ref.exact, accuracy: q * 1.001 + ref.magnitude * 2e-5 + 1e-30, at)
                            let p = portable[i * (rows + 1) + r]
                            if type.blockSize == 256 {   // K-quants and IQ4_XS: exact integer sums, the same float formula
                                XCTAssertEqual(got.bitPattern, p.bitPattern, "\(at): differs from portable")
                            } else {
                                XCTAssertEqual(Double(got), Double(p), accuracy: ref.magnitude * 1e-5 + 1e-30,
                                               "\(at): differs from portable")
                            }
                        }
                    }
                }
            }
        }
    }

    /// The Q8 error bound is tight enough to matter: on rows without outliers it is about 1% of Σ|w·x|.
    func testQuantizationBoundIsMeaningful() {
        let w = Weights(.q4_1, rows: 4, cols: 576, seed: 5)
        let x = activations(n: 4, cols: 576, stride: 576, seed: 6)
        for i in [0, 3] {
            let ref = reference(w, row: 1, x: x[(i * 576)..<(i * 576 + 576)], activationBlock: 32)
            XCTAssertLessThan(ref.quantization, ref.magnitude * 0.02, "row \(i)")
        }
    }

    /// Types without a fast kernel run the exact path, bit for bit.
    func testFallbackTypesAreExact() throws {
        for type in [GGMLType.q8_1] {
            let cols = 256, rows = 5, n = 3
            var rng = Rand(9)
            var bytes = (0..<(rows * cols / type.blockSize * type.blockBytes)).map { _ in rng.byte() }
            for i in stride(from: 0, to: bytes.count, by: 2) { bytes[i + 1] &= 0x3B }  // keep f16 fields finite
            let x = activations(n: n, cols: cols, stride: cols, seed: 10)
            try bytes.withUnsafeBytes {
                let m = try WeightMatrix(name: "w", type: type, rows: rows, cols: cols, data: $0)
                XCTAssertNil(type.fastActivationFormat)
                let fast = product(m, x, n: n, xStride: cols, mode: .fast), exact = product(m, x, n: n, xStride: cols, mode: .exact)
                XCTAssertEqual(fast.map(\.bitPattern), exact.map(\.bitPattern), "\(type)")
            }
        }
    }

    /// Larger prompt-shaped products (n not a multiple of any tile) agree with one-row products at every level.
    func testPromptTilesMatchSingleRows() throws {
        let rows = 70, cols = 576, n = 11
        for type in [GGMLType.q4_1, .q8_0, .q4_0, .f16] {
            let w = Weights(type, rows: rows, cols: cols, seed: 21)
            let x = activations(n: n, cols: cols, stride: cols, seed: 22)
            try w.withMatrix { m in
                forEachLevel { level in
                    let y = product(m, x, n: n, xStride: cols, mode: .fast)
                    for i in [0, 5, 10] {
                        let single = product(m, Array(x[(i * cols)...]), n: 1, xStride: cols, mode: .fast)
                        XCTAssertEqual(Array(y[(i * (rows + 1))..<(i * (rows + 1) + rows)]).map(\.bitPattern),
                                       Array(single[0..<rows]).map(\.bitPattern), "\(type) \(level) row \(i)")
                    }
                }
            }
        }
    }

    /// Repacked Q4_0/Q4_1/Q8_0 rows (groups of 16) at every level equal the portable row kernel bit for bit; the rows
    /// past the last whole group take the row kernels. Odd block counts, 1 and 5 activation rows, 1 and 3 threads.
    func testPackedRowsEqualPortableRowKernel() throws {
        for (c, (type, rows, cols)) in [(GGMLType.q4_0, 37, 96), (.q4_1, 48, 160), (.q8_0, 21, 64), (.q4_1, 16, 32)].enumerated() {
            let w = Weights(type, rows: rows, cols: cols, seed: UInt64(60 + c))
            try w.withMatrix { raw in
                let packed = raw.prepared(for: .fast)
                XCTAssertEqual(packed.packed?.rows, rows / 16 * 16)
                XCTAssertNil(raw.prepared(for: .exact).packed)
                for n in [1, 5] {
                    let x = activations(n: n, cols: cols, stride: cols, seed: UInt64(70 + c))
                    let saved = CPULevel.active
                    CPULevel.activate(.portable)
                    let reference = product(raw, x, n: n, xStride: cols, mode: .fast)
                    CPULevel.activate(saved)
                    forEachLevel { level in
                        for pool in [nil, ThreadPool(threads: 3)] {
                            let y = product(packed, x, n: n, xStride: cols, mode: .fast, pool: pool)
                            for i in 0..<n {
                                for r in 0..<rows {
                                    let got = y[i * (rows + 1) + r], want = reference[i * (rows + 1) + r]
                                    let at = "\(type) \(rows)x\(cols) n \(n) \(level) row \(i) out \(r)"
                                    if r < rows / 16 * 16 {
                                        XCTAssertEqual(got.bitPattern, want.bitPattern, "\(at): packed differs")
                                    } else {
                                        XCTAssertEqual(got, want, accuracy: abs(want) * 1e-5 + 1e-6, at)
                                    }
                                }
                            }
                        }
                    }
                }
            }
        }
    }

    /// More activation rows than one quantized chunk: the chunks join up seamlessly.
    func testRowsBeyondOneChunk() throws {
        let n = ActivationRows.chunk + 3, cols = 256, rows = 6
        for type in [GGMLType.q4_1, .q4_K] {
            let w = Weights(type, rows: rows, cols: cols, seed: 41)
            let x = activations(n: n, cols: cols, stride: cols, seed: 42)
            try w.withMatrix { m in
                let y = product(m, x, n: n, xStride: cols, mode: .fast, pool: ThreadPool(threads: 2))
                for i in [0, ActivationRows.chunk - 1, ActivationRows.chunk, n - 1] {
                    let single = product(m, Array(x[(i * cols)...]), n: 1, xStride: cols, mode: .fast)
                    XCTAssertEqual(Array(y[(i * (rows + 1))..<(i * (rows + 1) + rows)]).map(\.bitPattern),
                                   Array(single[0..<rows]).map(\.bitPattern), "\(type) row \(i)")
                }
            }
        }
    }

    func testFastSiLUMatchesExact() {
        var rng = Rand(3)
        let count = 37
        let up = (0..<count).map { _ in rng.float(2) }
        var gate = (0..<count).map { _ in rng.float(12) }
        gate[0] = -100; gate[1] = 100; gate[2] = 0
        var exact = gate
        siluMul(&exact, up, count: count)
        forEachLevel { level in
            var fast = gate
            siluMul(&fast, up, count: count, mode: .fast)
            for i in 0..<count {
                XCTAssertEqual(fast[i], exact[i], accuracy: abs(exact[i]) * 1e-6 + 1e-30, "\(level) element \(i)")
            }
        }
    }
}
