import Foundation
import TesseraFormats
import TesseraTestSupport
import XCTest

/// `GGUFWriter` output read back by `GGUFFile` (and checked against a hand-computed layout).
final class GGUFWriterTests: XCTestCase {
    static let allValues: [(String, GGUFValue)] = [
        ("t.u8", .uint8(250)), ("t.i8", .int8(-100)), ("t.u16", .uint16(65000)), ("t.i16", .int16(-32000)),
        ("t.u32", .uint32(4_000_000_000)), ("t.i32", .int32(-2_000_000_000)), ("t.f32", .float32(-1.5e-7)),
        ("t.bool", .bool(true)), ("t.false", .bool(false)), ("t.string", .string("héllo ✓ 🚀")), ("t.empty", .string("")),
        ("t.u64", .uint64(UInt64.max)), ("t.i64", .int64(Int64.min)), ("t.f64", .float64(3.141592653589793)),
        ("t.strings", .array([.string("a"), .string(""), .string("ccc")])),
        ("t.floats", .array([.float32(1), .float32(-2), .float32(.infinity)])),
        ("t.nested", .array([.array([.int16(1), .int16(2)]), .array([.int16(3)]), .array([])])),
        ("t.nestedStrings", .array([.array([.string("x")]), .array([.string("y"), .string("z")])])),
        ("t.emptyArray", .array([])),
    ]

    /// Tensors of every type, with deterministic random bytes (sane for quantized blocks is not needed to round-trip).
    static func sampleTensors() -> [(String, GGMLType, [Int], [UInt8])] {
        var rng = SplitMix64(seed: 7)
        return GGMLType.allCases.enumerated().map { i, type in
            let shape = i % 3 == 0 ? [type.blockSize * 2] : [i % 3 + 1, type.blockSize * (i % 2 + 1)]
            let count = TensorInfo(name: "", type: type, shape: shape).elementCount
            let bytes = (0 ..< (type.byteCount(elements: count) ?? 0)).map { _ in UInt8.random(in: 0 ... 255, using: &rng) }
            return ("tensor.\(type)", type, shape, bytes)
        }
    }

    func testRoundTripEveryValueTypeAndTensorType() throws {
        for alignment in [32, 64, 8] {
            var writer = try GGUFWriter(alignment: alignment)
            for (k, v) in Self.allValues { try writer.set(k, v) }
            try writer.set("general.architecture", .string("test"))
            for (name, type, shape, data) in Self.sampleTensors() { try writer.addTensor(name, type: type, shape: shape, data: data) }
            let bytes = try writer.serialized()
            let path = try makeTempFolder(self).appendingPathComponent("roundtrip.gguf").path
            try writer.write(to: path)
            XCTAssertEqual(Array(try Data(contentsOf: URL(fileURLWithPath: path))), bytes, "streamed file == serialized()")
            let file = try GGUFFile(path: path)
            XCTAssertEqual(file.version, 3)
            XCTAssertEqual(file.alignment, alignment)
            for (k, v) in Self.allValues { XCTAssertEqual(file.metadata[k], v, k) }
            XCTAssertEqual(file.architecture, "test")
            XCTAssertEqual(file.metadata["general.alignment"]?.int, alignment == 32 ? nil : alignment)
            XCTAssertEqual(file.tensorNames, Self.sampleTensors().map(\.0))
            for (name, type, shape, data) in Self.sampleTensors() {
                let view = try file.view(name)
                XCTAssertEqual(view.info, TensorInfo(name: name, type: type, shape: shape))
                XCTAssertEqual(Array(view.data), data, name)
                let offset = try XCTUnwrap(view.data.baseAddress) - XCTUnwrap(file.fileBytes.baseAddress)
                XCTAssertEqual(offset % alignment, 0, "\(name) at \(offset) is not \(alignment)-aligned")
            }
        }
    }

    func testWrittenFileMatchesTheSpecLayoutByHand() throws {
        var writer = try GGUFWriter()
        try writer.set("k", .uint32(5))
        try writer.addTensor("w", shape: [2, 3], values: [1, 2, 3, 4, 5, 6])
        var b = Bytes()
        b.raw(Array("GGUF".utf8)); b.u32(3); b.u64(1); b.u64(1)
        b.str("k"); b.u32(4); b.u32(5)
        b.str("w"); b.u32(2); b.u64(3); b.u64(2); b.u32(0); b.u64(0)
        b.pad(to: 32)
        for v: Float in [1, 2, 3, 4, 5, 6] { b.f32(v) }
        XCTAssertEqual(try writer.serialized(), b.data)

        let dir = try makeTempFolder(self)
        let path = dir.appendingPathComponent("w.gguf").path
        try writer.write(to: path)
        XCTAssertEqual(try GGUFFile(path: path).view("w").dequantized(), [1, 2, 3, 4, 5, 6])
    }

    func testWriterRejectsInvalidInput() throws {
        var writer = try GGUFWriter()
        assertFormatError(["tensor 'q'", "row length 16", "Q4_0"]) { try writer.addTensor("q", type: .q4_0, shape: [16], data: []) }
        assertFormatError(["tensor 'f'", "5 bytes given"]) { try writer.addTensor("f", type: .f32, shape: [2], data: [1, 2, 3, 4, 5]) }
        assertFormatError(["tensor 's'", "invalid shape"]) { try writer.addTensor("s", shape: [1, 1, 1, 1, 1], values: [1]) }
        assertFormatError(["'mixed'", "different types"]) { try writer.set("mixed", .array([.uint8(1), .int8(1)])) }
        try writer.addTensor("d", shape: [1], values: [1])
        assertFormatError(["tensor 'd'", "duplicate"]) { try writer.addTensor("d", shape: [1], values: [1]) }
        assertFormatError(["alignment 48"]) { try GGUFWriter(alignment: 48) }
    }
}
