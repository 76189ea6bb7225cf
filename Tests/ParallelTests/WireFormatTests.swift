// Activations on the wire: each encoding's size and its error bound, computed here from the definition.
import Foundation
import TesseraParallel
import XCTest

final class WireFormatTests: XCTestCase {
    /// Hidden-state-like values: mostly small, a few large outliers, exact zeros, negative values.
    static func activations(_ count: Int) -> [Float] {
        (0..<count).map { i in
            let v = Float(sin(Double(i) * 12.9898) * 3)
            return i % 97 == 0 ? v * 40 : (i % 13 == 0 ? 0 : v)
        }
    }

    func roundTrip(_ format: WireFormat, _ x: [Float]) -> [Float] {
        var wire = [UInt8](repeating: 0xAA, count: format.bytes(count: x.count))
        var y = [Float](repeating: .nan, count: x.count)
        x.withUnsafeBufferPointer { xs in wire.withUnsafeMutableBytes { format.encode(xs.baseAddress!, count: x.count, into: $0.baseAddress!) } }
        wire.withUnsafeBytes { w in y.withUnsafeMutableBufferPointer { format.decode(w.baseAddress!, count: x.count, into: $0.baseAddress!) } }
        return y
    }

    func testF32IsExact() {
        let x = Self.activations(1000)
        XCTAssertEqual(roundTrip(.f32, x).map(\.bitPattern), x.map(\.bitPattern))
        XCTAssertEqual(WireFormat.f32.bytes(count: 1000), 4000)
    }

    func testBF16KeepsEightSignificantBits() {
        let x = Self.activations(1000)
        let y = roundTrip(.bf16, x)
        XCTAssertEqual(WireFormat.bf16.bytes(count: 1000), 2000)
        for (a, b) in zip(x, y) {
            XCTAssertLessThanOrEqual(abs(a - b), abs(a) * 0x1p-8, "\(a) -> \(b)")   // half an ulp of an 8-bit mantissa
            XCTAssertEqual(b.bitPattern & 0xFFFF, 0)
        }
    }

    func testQ8_0ErrorIsHalfAStepOfItsBlock() {
        for count in [32, 576, 1000, 1] {   // whole blocks, and a padded last block
            let x = Self.activations(count)
            let y = roundTrip(.q8_0, x)
            XCTAssertEqual(WireFormat.q8_0.bytes(count: count), (count + 31) / 32 * 36)
            for start in stride(from: 0, to: count, by: 32) {
                let block = start..<min(start + 32, count)
                let step = block.map { abs(x[$0]) }.max()! / 127
                for i in block {
                    XCTAssertLessThanOrEqual(abs(x[i] - y[i]), step / 2 * 1.0001 + 1e-30, "element \(i) of \(count)")
                    if x[i] == 0 { XCTAssertEqual(y[i], 0) }
                }
            }
        }
        XCTAssertGreaterThanOrEqual(Double(WireFormat.f32.bytes(count: 576)) / Double(WireFormat.q8_0.bytes(count: 576)), 3.5)
    }

    func testAllZeroBlockStaysZero() {
        XCTAssertEqual(roundTrip(.q8_0, [Float](repeating: 0, count: 64)), [Float](repeating: 0, count: 64))
    }
}
