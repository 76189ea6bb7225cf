// Activation quantization (Q8_0, Q8_K) at every CPU level against an independent Swift computation of the layout.
import TesseraKernels
import XCTest

final class QuantizeTests: XCTestCase {
    /// Expected bytes of one row: q = round-to-even(x · 127 / max|x|), d = max|x| / 127 per block; then Q8_0's
    /// s = d · Σq and Σq per block, or Q8_K's Σq per 16 values.
    func expected(_ x: [Float], format: ActivationFormat) -> [UInt8] {
        let cols = x.count, block = format.blockSize, nb = cols / block
        var qs = [Int8](), d = [Float](), s = [Float](), sums = [Int16]()
        for b in 0..<nb {
            let xb = x[(b * block)..<((b + 1) * block)]
            let amax = xb.map { abs($0) }.max()!
            let id: Float = amax != 0 ? 127 / amax : 0
            let q = xb.map { Int8(max(-127, min(127, ($0 * id).rounded(.toNearestOrEven)))) }
            qs += q; d.append(amax / 127)
            s.append(d[b] * Float(q.reduce(0) { $0 + Int($1) }))
            for g in stride(from: 0, to: block, by: 16) { sums.append(Int16(q[g..<(g + 16)].reduce(0) { $0 + Int16($1) })) }
        }
        var out = qs.map { UInt8(bitPattern: $0) }
        for v in d { withUnsafeBytes(of: v.bitPattern.littleEndian) { out += $0 } }
        if format == .q8_0 {
            for v in s { withUnsafeBytes(of: v.bitPattern.littleEndian) { out += $0 } }
            for b in 0..<nb {
                let sum = Int32(qs[(b * block)..<((b + 1) * block)].reduce(0) { $0 + Int($1) })
                withUnsafeBytes(of: sum.littleEndian) { out += $0 }
            }
        }
        else { for v in sums { withUnsafeBytes(of: v.littleEndian) { out += $0 } } }
        return out
    }

    func check(_ format: ActivationFormat, cols: Int) {
        let n = 4, stride = cols + 5
        var x = activations(n: n, cols: cols, stride: stride, seed: UInt64(cols))
        x[3 * stride + 7] = 0.5 * 127 / 127   // exact halves after scaling exercise round-to-even
        let rowBytes = format.rowBytes(cols: cols)
        XCTAssertEqual(rowBytes % 64, 0)
        forEachLevel { level in
            var out = [UInt8](repeating: 0xEE, count: n * rowBytes)
            x.withUnsafeBufferPointer { xp in
                out.withUnsafeMutableBytes {
                    format.quantize(xp.baseAddress!, rows: n, cols: cols, xStride: stride, into: $0.baseAddress!)
                }
            }
            for i in 0..<n {
                let want = expected(Array(x[(i * stride)..<(i * stride + cols)]), format: format)
                XCTAssertEqual(Array(out[(i * rowBytes)..<(i * rowBytes + want.count)]), want, "\(format) \(level) row \(i)")
            }
        }
    }

    func testQ8_0() { check(.q8_0, cols: 96); check(.q8_0, cols: 576) }
    func testQ8_K() { check(.q8_K, cols: 256); check(.q8_K, cols: 768) }

    func testLevels() {
        let saved = CPULevel.active
        defer { CPULevel.activate(saved) }
        XCTAssertLessThanOrEqual(CPULevel.active, CPULevel.supported)
        XCTAssertEqual(CPULevel.activate(.portable), .portable)
        XCTAssertEqual(CPULevel.active, .portable)
        XCTAssertEqual(CPULevel.activate(.avx512), CPULevel.supported, "clamped to what the CPU supports")
        #if arch(x86_64)
        // every x86-64 machine this project targets has AVX2; fail loudly if detection broke
        XCTAssertGreaterThanOrEqual(CPULevel.supported, .avx2)
        #endif
    }
}
