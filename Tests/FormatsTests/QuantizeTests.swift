// The quantizers: byte for byte what llama.cpp's quantizer writes for every type (fixtures made by
// Fixtures/make_quantize_fixtures.py from llama.cpp's own ggml_quantize_chunk); the Q5 types within one step of
// every value and their fifth bits where the dequantizer (bit-identical to the gguf package) reads them.
import Foundation
import TesseraFormats
import TesseraTestSupport
import XCTest

final class QuantizeTests: XCTestCase {
    /// Every type `quantize` writes, on rows chosen to reach the quantizers' corners (outliers, sub-block scales
    /// spread over 8 octaves, one-signed rows, tiny values, a zero super-block, a constant block, values on a grid):
    /// the bytes llama.cpp writes, and a round trip no worse than its own type's resolution.
    func testMatchesLlamaCppQuantizer() throws {
        let input = try Data(contentsOf: Paths.fixtures.appendingPathComponent("quantize-input.f32"))
        let x: [Float] = input.withUnsafeBytes { p in (0 ..< p.count / 4).map { p.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) } }
        XCTAssertEqual(x.count, 8 * 512)
        let types: [GGMLType] = [.q4_0, .q4_1, .q5_0, .q5_1, .q8_0, .q2_K, .q3_K, .q4_K, .q5_K, .q6_K, .iq4_nl, .iq4_xs, .f16, .bf16]
        for type in types {
            let expected = try [UInt8](Data(contentsOf: Paths.fixtures.appendingPathComponent("quantize-\(type.description.lowercased()).bin")))
            XCTAssertTrue(type.canQuantize, "\(type)")
            var bytes = [UInt8](repeating: 0xAA, count: try XCTUnwrap(type.byteCount(elements: x.count)))
            XCTAssertEqual(bytes.count, expected.count, "\(type): fixture size")
            bytes.withUnsafeMutableBytes { type.quantize(x, count: x.count, into: $0.baseAddress!) }
            let blocks = bytes.count / type.blockBytes
            let differing = (0 ..< blocks).filter { b in
                bytes[(b * type.blockBytes) ..< ((b + 1) * type.blockBytes)] != expected[(b * type.blockBytes) ..< ((b + 1) * type.blockBytes)]
            }
            XCTAssertEqual(differing, [], "\(type): blocks that differ from llama.cpp's (of \(blocks))")
        }
    }

    /// Relative RMS error of a round trip per type on Gaussian rows: each type at least as fine as its bits allow
    /// (bounds a little above what llama.cpp's own quantizers reach on such data), finer types finer.
    func testRoundTripErrorOrdersByBits() {
        var rng = SplitMix64(seed: 11)
        let x = (0 ..< (16 * 256)).map { _ in (Float.random(in: 0 ..< 1, using: &rng) - 0.5) + (Float.random(in: 0 ..< 1, using: &rng) - 0.5) }
        let energy = x.reduce(0) { $0 + $1 * $1 }
        func error(_ type: GGMLType) -> Float {
            let y = roundTrip(type, x)
            return (zip(x, y).reduce(0) { $0 + ($1.0 - $1.1) * ($1.0 - $1.1) } / energy).squareRoot()
        }
        let bounds: [(GGMLType, Float)] = [(.q2_K, 0.45), (.q3_K, 0.22), (.iq4_xs, 0.12), (.iq4_nl, 0.12), (.q4_K, 0.11),
                                           (.q5_K, 0.055), (.q6_K, 0.028), (.q8_0, 0.008), (.bf16, 0.003), (.f16, 0.0005)]
        var previous = Float.infinity
        for (type, bound) in bounds {
            let e = error(type)
            XCTAssertLessThan(e, bound, "\(type): relative RMS error")
            XCTAssertLessThanOrEqual(e, previous * 1.05, "\(type) should be no coarser than the type before it")
            previous = e
        }
    }

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
