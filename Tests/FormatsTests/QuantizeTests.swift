// The Q5_0 and Q5_1 quantizers (ggml's reference rounding): every value comes back within one quantization step,
// the block's extreme value exactly (up to the half-precision scale), and the fifth bits land where the
// dequantizer (bit-identical to the gguf package) reads them.
import TesseraFormats
import XCTest

final class QuantizeTests: XCTestCase {
    func roundTrip(_ type: GGMLType, _ x: [Float]) -> [Float] {
        var bytes = [UInt8](repeating: 0, count: type.byteCount(elements: x.count)!)
        bytes.withUnsafeMutableBytes { type.quantize(x, count: x.count, into: $0.baseAddress!) }
        var y = [Float](repeating: .nan, count: x.count)
        bytes.withUnsafeBytes { type.dequantize($0.baseAddress!, count: x.count, into: &y) }
        return y
    }

    func testQ5WithinOneStep() {
        var rng = SplitMix64(seed: 5)
        let x = (0..<(64 * 32)).map { i in Float.random(in: -1...1, using: &rng) * Float(1 + i / 320) }
        for type in [GGMLType.q5_0, .q5_1] {
            let y = roundTrip(type, x)
            var exactExtremes = 0
            for b in 0..<64 {
                let block = Array(x[(32 * b)..<(32 * b + 32)]), lo = block.min()!, hi = block.max()!
                let step = type == .q5_0 ? max(abs(lo), abs(hi)) / 16 : (hi - lo) / 31
                for i in 0..<32 {
                    let e = abs(y[32 * b + i] - block[i])
                    XCTAssertLessThanOrEqual(e, step * 1.02 + 1e-6, "\(type) block \(b) element \(i)")
                    // away from the clipped end (Q5_0's +16 is stored as 15) every value rounds to the nearest step
                    if type == .q5_1 || abs(block[i] + (abs(lo) > abs(hi) ? lo : hi)) > step {
                        XCTAssertLessThanOrEqual(e, step * 0.52 + 1e-6, "\(type) block \(b) element \(i): not nearest")
                    }
                }
                let extreme = type == .q5_0 ? (abs(lo) > abs(hi) ? lo : hi) : lo
                if let i = block.firstIndex(of: extreme), abs(y[32 * b + i] - extreme) <= abs(extreme) * 2e-3 { exactExtremes += 1 }
            }
            XCTAssertEqual(exactExtremes, 64, "\(type): the extreme of each block comes back")
        }
    }

    /// The fifth bit of element i (and i + 16) is bit i (i + 16) of qh: values 16...31 need it.
    func testQ5FifthBits() {
        let x = (0..<32).map { Float($0) - 15 }   // Q5_1: min −15, step 1 → q = i exactly
        let y = roundTrip(.q5_1, x)
        for i in 0..<32 { XCTAssertEqual(y[i], x[i], accuracy: 1e-3, "element \(i)") }
    }
}
