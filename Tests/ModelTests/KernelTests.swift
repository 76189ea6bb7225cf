// Kernels against straightforward Double computations: products over F32 and Q8_0 weights, RoPE layouts.
import TesseraFormats
import TesseraKernels
import XCTest

final class KernelTests: XCTestCase {
    /// y = x·Wᵀ for `n` rows through `matmul`, with strided input and output.
    func product(_ x: [Float], n: Int, _ w: WeightMatrix) -> [Float] {
        var y = [Float](repeating: .nan, count: n * (w.rows + 1))
        var scratch = [Float](repeating: 0, count: w.scratchCount)
        x.withUnsafeBufferPointer { xp in
            y.withUnsafeMutableBufferPointer { yp in
                matmul(xp.baseAddress!, rows: n, xStride: w.cols + 2, weight: w, into: yp.baseAddress!,
                       yStride: w.rows + 1, scratch: &scratch)
            }
        }
        return y
    }

    func check(_ w: WeightMatrix, expected values: [Float], rows: Int, cols: Int) {
        var rng = SeededRandom(state: 9)
        let n = 5, x = rng.values(n * (cols + 2), scale: 1)
        let y = product(x, n: n, w)
        for i in 0..<n {
            for r in 0..<rows {
                let terms = (0..<cols).map { Double(x[i * (cols + 2) + $0]) * Double(values[r * cols + $0]) }
                let exact = terms.reduce(0, +), magnitude = terms.reduce(0) { $0 + abs($1) }
                XCTAssertEqual(Double(y[i * (rows + 1) + r]), exact, accuracy: magnitude * 1e-6, "row \(i), output \(r)")
            }
            XCTAssertTrue(y[i * (rows + 1) + rows].isNaN, "wrote past the row")
            // one activation row alone gives bit-identical results
            let single = product(Array(x[(i * (cols + 2))...]), n: 1, w)
            XCTAssertEqual(Array(single[0..<rows]), Array(y[(i * (rows + 1))..<(i * (rows + 1) + rows)]))
        }
    }

    func testF32Product() throws {
        let rows = 7, cols = 37
        var rng = SeededRandom(state: 7)
        let values = rng.values(rows * cols, scale: 1)
        try values.withUnsafeBytes { bytes in
            let w = try WeightMatrix(name: "w", type: .f32, rows: rows, cols: cols, data: bytes)
            XCTAssertNotNil(w.floats, "F32 weights are read in place")
            check(w, expected: values, rows: rows, cols: cols)
        }
    }

    func testQ8_0Product() throws {
        // Q8_0 block: f16 scale d, then 32 int8 q; value = d·q
        let rows = 6, cols = 64
        var rng = SeededRandom(state: 8)
        var bytes: [UInt8] = [], values: [Float] = []
        for _ in 0..<(rows * cols / 32) {
            let d = Float16(Float(rng.next() % 64 + 1) / 256)
            withUnsafeBytes(of: d.bitPattern.littleEndian) { bytes.append(contentsOf: $0) }
            for _ in 0..<32 {
                let q = Int8(truncatingIfNeeded: Int(rng.next() % 255) - 127)
                bytes.append(UInt8(bitPattern: q))
                values.append(Float(d) * Float(q))
            }
        }
        try bytes.withUnsafeBytes { raw in
            let w = try WeightMatrix(name: "q", type: .q8_0, rows: rows, cols: cols, data: raw)
            XCTAssertNil(w.floats)
            check(w, expected: values, rows: rows, cols: cols)
        }
        XCTAssertThrowsError(try bytes.withUnsafeBytes {
            try WeightMatrix(name: "bad", type: .q8_0, rows: rows, cols: 48, data: $0)
        }) { XCTAssertTrue("\($0)".contains("bad"), "\($0)") }
    }

    /// Rotating in adjacent-pair order the permuted vector equals permuting the rotate-half result.
    func testRoPELayoutsAgreeUnderPermutation() {
        let d = 8, heads = 2
        var rng = SeededRandom(state: 3)
        let v = rng.values(heads * d, scale: 1)
        func permute(_ x: [Float]) -> [Float] {
            var out = x
            for h in 0..<heads { for i in 0..<(d / 2) { for j in 0..<2 { out[h * d + 2 * i + j] = x[h * d + j * d / 2 + i] } } }
            return out
        }
        func rotate(_ x: [Float], _ layout: RoPELayout) -> [Float] {
            let rope = RoPE(headDim: d, base: 10000, layout: layout)
            var c = [Float](repeating: 0, count: d / 2), s = c, out = x
            rope.angles(position: 5, cos: &c, sin: &s)
            rope.apply(&out, heads: heads, cos: c, sin: s)
            return out
        }
        XCTAssertEqual(rotate(permute(v), .adjacentPairs), permute(rotate(v, .rotateHalf)))
        // position 5, pair 0 turns by 5 radians
        let r = rotate(v, .rotateHalf)
        XCTAssertEqual(r[0], v[0] * cos(5) - v[d / 2] * sin(5), accuracy: 1e-6)
    }

    func testLlama3ScalingBands() {
        let rope = RoPE(headDim: 128, base: 500000, scaling: .llama3(factor: 8, lowFrequencyFactor: 1,
                        highFrequencyFactor: 4, originalContextLength: 8192), layout: .rotateHalf)
        let plain = RoPE(headDim: 128, base: 500000, layout: .rotateHalf)
        for (scaled, f) in zip(rope.inverseFrequencies, plain.inverseFrequencies) {
            let wavelength = 2 * Double.pi / Double(f)
            if wavelength < 2048 { XCTAssertEqual(scaled, f) }                          // high frequencies kept
            else if wavelength > 8192 { XCTAssertEqual(scaled, f / 8, accuracy: f * 1e-6) }  // low ones divided
            else { XCTAssertTrue(scaled < f && scaled > f / 8) }                      // blended between
        }
    }
}
