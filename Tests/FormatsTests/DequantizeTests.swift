import Foundation
import TesseraFormats
import XCTest

/// Dequantization is bit-identical to the PyPI `gguf` package on the fixtures made by Fixtures/make_dequant_fixtures.py.
final class DequantizeTests: XCTestCase {
    func testEveryTypeIsBitIdenticalToGGUFPy() throws {
        for type in GGMLType.allCases {
            let name = type.description.lowercased()
            let raw = try Data(contentsOf: Paths.fixtures.appendingPathComponent("\(name).bin"))
            let expectedData = try Data(contentsOf: Paths.fixtures.appendingPathComponent("\(name).f32"))
            let expected: [UInt32] = expectedData.withUnsafeBytes { p in
                (0 ..< p.count / 4).map { UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4 * $0, as: UInt32.self)) }
            }
            XCTAssertEqual(raw.count / type.blockBytes * type.blockSize, expected.count, "\(type): fixture sizes disagree")
            XCTAssertEqual(raw.count % type.blockBytes, 0, "\(type)")
            XCTAssertGreaterThan(expected.count, 0)
            var out = [Float](repeating: .nan, count: expected.count)
            raw.withUnsafeBytes { src in
                out.withUnsafeMutableBufferPointer { dst in type.dequantize(src.baseAddress!, count: expected.count, into: dst.baseAddress!) }
            }
            var mismatches = 0
            for i in 0 ..< expected.count where out[i].bitPattern != expected[i] {
                if mismatches < 5 {
                    XCTFail("\(type) element \(i): got \(out[i]) (\(String(out[i].bitPattern, radix: 16))), "
                        + "gguf gives \(Float(bitPattern: expected[i])) (\(String(expected[i], radix: 16)))")
                }
                mismatches += 1
            }
            XCTAssertEqual(mismatches, 0, "\(type): \(mismatches) of \(expected.count) elements differ")
        }
    }

    func testDequantizeFromAnUnalignedAddressAndPartialCounts() throws {
        let raw = try Data(contentsOf: Paths.fixtures.appendingPathComponent("q4_1.bin"))
        var shifted = [UInt8](repeating: 0, count: 1)
        shifted.append(contentsOf: raw)
        var a = [Float](repeating: 0, count: 64), b = [Float](repeating: -1, count: 65)
        raw.withUnsafeBytes { src in GGMLType.q4_1.dequantize(src.baseAddress!, count: 64, into: &a) }
        shifted.withUnsafeBytes { src in GGMLType.q4_1.dequantize(src.baseAddress! + 1, count: 64, into: &b) }
        XCTAssertEqual(Array(b[..<64]), a)
        XCTAssertEqual(b[64], -1, "nothing written past the blocks")
    }

    func testHalfConversionIsExactForEveryBitPattern() {
        for bits in 0 ... UInt32(0xFFFF) {
            let h = UInt16(bits)
            let expected = Float(Float16(bitPattern: h))
            let got = halfToFloat(h)
            if expected.isNaN {
                XCTAssertTrue(got.isNaN)
            } else if got.bitPattern != expected.bitPattern {
                XCTFail("half \(String(h, radix: 16)): \(got) != \(expected)"); return
            }
        }
    }
}
