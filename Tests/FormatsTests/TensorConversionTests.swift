import Foundation
import TesseraFormats
import TesseraTestSupport
import XCTest

/// `TensorConversion` / `TensorView.converted(to:)` against `GGMLType.quantize` of the dequantized source, the
/// round-trip error of each target, the per-tensor rule, and the streaming `GGUFWriter.write(to:tensors:produce:)`.
final class TensorConversionTests: XCTestCase {
    static let targets: [GGMLType] = [.f32, .f16, .q8_0, .q5_1, .q5_0, .q4_0]

    /// Random bytes for `count` elements of `type` whose half-float fields are all finite: no byte has the five bits
    /// of a half's exponent all set, so every block dequantizes to finite values.
    static func randomBytes(_ type: GGMLType, elements count: Int, _ rng: inout SplitMix64) -> [UInt8] {
        (0 ..< (type.byteCount(elements: count) ?? 0)).map { _ in
            let b = UInt8.random(in: 0 ... 255, using: &rng)
            return b & 0x7C == 0x7C ? b ^ 0x40 : b
        }
    }

    /// Equal bytes; on failure names the first differing offset instead of printing both arrays.
    static func assertSameBytes(_ got: [UInt8], _ want: [UInt8], _ label: String, line: UInt = #line) {
        guard got != want else { return }
        let first = (0 ..< min(got.count, want.count)).first { got[$0] != want[$0] } ?? min(got.count, want.count)
        XCTFail("\(label): \(got.count) vs \(want.count) bytes, first difference at byte \(first)", line: line)
    }

    static func randomFloats(_ count: Int, scale: Float, _ rng: inout SplitMix64) -> [Float] {
        (0 ..< count).map { _ in Float.random(in: -scale ... scale, using: &rng) }
    }

    /// Every readable source type, several shapes, every target: the converted bytes are those of
    /// `target.quantize(source.dequantize(whole tensor))`.
    func testConversionEqualsQuantizeOfTheDequantizedSource() throws {
        var rng = SplitMix64(seed: 42)
        for source in GGMLType.allCases {
            for shape in [[3, 256], [2, 2, 512], [512]] {
                let info = TensorInfo(name: "t.\(source).\(shape)", type: source, shape: shape)
                let bytes = Self.randomBytes(source, elements: info.elementCount, &rng)
                try bytes.withUnsafeBytes { raw in
                    let view = TensorView(info: info, data: raw)
                    let floats = view.dequantized()
                    XCTAssertEqual(floats.count, info.elementCount)
                    XCTAssertTrue(floats.allSatisfy(\.isFinite), "\(source): fixture must be finite")
                    for target in Self.targets {
                        // the same type is copied as stored (requantizing is not idempotent on arbitrary blocks)
                        var expected = bytes
                        if target != source {
                            expected = [UInt8](repeating: 0, count: try XCTUnwrap(target.byteCount(elements: floats.count)))
                            expected.withUnsafeMutableBytes { target.quantize(floats, count: floats.count, into: $0.baseAddress!) }
                        }
                        let converted = try view.converted(to: target)
                        XCTAssertEqual(converted.info, TensorInfo(name: info.name, type: target, shape: shape))
                        Self.assertSameBytes(Array(converted.data), expected, "\(source) \(shape) -> \(target)")
                        // the same into a caller's buffer
                        var out = [UInt8](repeating: 0xAA, count: expected.count)
                        try out.withUnsafeMutableBytes { try TensorConversion.convert(raw, info, to: target, into: $0) }
                        Self.assertSameBytes(out, expected, "\(source) \(shape) -> \(target), caller buffer")
                    }
                }
            }
        }
    }

    func testConvertedBufferIsAlignedOwnedAndSameTypeIsNotCopied() throws {
        var rng = SplitMix64(seed: 3)
        let floats = Self.randomFloats(4 * 64, scale: 1, &rng)
        let info = TensorInfo(name: "w.weight", type: .f32, shape: [4, 64])
        try floats.withUnsafeBytes { raw in
            let view = TensorView(info: info, data: raw)
            for target in [GGMLType.f16, .q8_0, .q4_0] {
                let converted = try view.converted(to: target)
                XCTAssertTrue(converted.owner is AlignedBuffer, "\(target): the buffer is the view's owner")
                XCTAssertEqual(Int(bitPattern: converted.data.baseAddress) % 64, 0, "\(target): 64-byte aligned")
                XCTAssertEqual(converted.data.count, target.byteCount(elements: floats.count))
            }
            let same = try view.converted(to: .f32)
            XCTAssertEqual(same.data.baseAddress, raw.baseAddress, "already F32: the view itself, uncopied")
        }
    }

    /// F32 -> Q8_0 -> F32: each element within 0.5 step of its block's scale (plus the scale's own half rounding),
    /// and a small relative RMS error; Q4_0 within one step; F16 exact for values that are halves.
    func testRoundTripErrorBounds() throws {
        var rng = SplitMix64(seed: 11)
        let rows = 8, cols = 256
        let floats = Self.randomFloats(rows * cols, scale: 2, &rng)
        let info = TensorInfo(name: "w.weight", type: .f32, shape: [rows, cols])
        func roundTrip(_ target: GGMLType) throws -> [Float] {
            try floats.withUnsafeBytes { try TensorView(info: info, data: $0).converted(to: target).dequantized() }
        }
        func check(_ target: GGMLType, step: (Float) -> Float, steps: Float, rms maxRMS: Float) throws {
            let back = try roundTrip(target)
            XCTAssertEqual(back.count, floats.count)
            var squared: Float = 0, norm: Float = 0
            for b in 0 ..< floats.count / 32 {
                let block = floats[32 * b ..< 32 * b + 32]
                let amax = block.map(abs).max() ?? 0
                let bound = step(amax) * steps * (1 + 1.0 / 1024) + 1e-7
                for i in block.indices {
                    XCTAssertLessThanOrEqual(abs(back[i] - floats[i]), bound, "\(target) element \(i): \(floats[i]) -> \(back[i])")
                    squared += (back[i] - floats[i]) * (back[i] - floats[i]); norm += floats[i] * floats[i]
                }
            }
            XCTAssertLessThan((squared / norm).squareRoot(), maxRMS, "\(target) relative RMS error")
        }
        // Q8_0: step d = amax/127; |x - q·d| <= d/2, and d's half rounding adds up to 127·d·2^-11
        try check(.q8_0, step: { $0 / 127 }, steps: 0.5 + 127.0 / 2048, rms: 0.01)
        // Q4_0: step |d| = amax/8; the clamp at +7 can cost one whole step
        try check(.q4_0, step: { $0 / 8 }, steps: 1 + 8.0 / 2048, rms: 0.15)
        try check(.f16, step: { $0 }, steps: 1.0 / 2048, rms: 0.001)

        let halves = floats.map { Float(Float16($0)) }
        let halfInfo = TensorInfo(name: "h.weight", type: .f32, shape: [rows, cols])
        try halves.withUnsafeBytes {
            XCTAssertEqual(try TensorView(info: halfInfo, data: $0).converted(to: .f16).dequantized(), halves)
        }
    }

    /// The rule: 2-D weight matrices are converted, 1-D tensors kept, and a row length of 172 (stories260K's
    /// `ffn_down`) falls back: kept when F16 or F32, else F16.
    func testConversionTargetRule() {
        func target(_ name: String, _ type: GGMLType, _ shape: [Int], _ requested: GGMLType) -> ConversionTarget {
            GGMLType.conversionTarget(for: TensorInfo(name: name, type: type, shape: shape), requested: requested)
        }
        let down = "blk.0.ffn_down.weight"
        for requested in [GGMLType.q8_0, .q4_0] {
            XCTAssertEqual(target(down, .f32, [64, 172], requested), ConversionTarget(type: .f32, outcome: .fellBack))
            XCTAssertEqual(target(down, .f16, [64, 172], requested), ConversionTarget(type: .f16, outcome: .fellBack))
            XCTAssertEqual(target(down, .bf16, [64, 172], requested), ConversionTarget(type: .f16, outcome: .fellBack))
            XCTAssertEqual(target("blk.0.ffn_up.weight", .f32, [172, 64], requested), ConversionTarget(type: requested, outcome: .converted))
            XCTAssertEqual(target("blk.0.ffn_up.weight", .q4_1, [172, 64], requested), ConversionTarget(type: requested, outcome: .converted))
        }
        XCTAssertEqual(target(down, .f32, [64, 172], .f16), ConversionTarget(type: .f16, outcome: .converted))
        XCTAssertEqual(target(down, .bf16, [64, 172], .f32), ConversionTarget(type: .f32, outcome: .converted))
        XCTAssertEqual(target(down, .f32, [64, 172], .f32), ConversionTarget(type: .f32, outcome: .kept))
        XCTAssertEqual(target("blk.0.attn_q.weight", .q8_0, [64, 64], .q8_0), ConversionTarget(type: .q8_0, outcome: .kept))
        XCTAssertEqual(target("blk.0.attn_norm.weight", .f32, [64], .q8_0), ConversionTarget(type: .f32, outcome: .kept))
        XCTAssertEqual(target("blk.0.attn_q.bias", .f32, [64], .q4_0), ConversionTarget(type: .f32, outcome: .kept))
        XCTAssertEqual(target("blk.0.attn_q.bias", .f32, [2, 64], .q4_0), ConversionTarget(type: .f32, outcome: .kept))
        XCTAssertEqual(target("conv.weight", .f32, [2, 4, 64], .q8_0), ConversionTarget(type: .f32, outcome: .kept))
    }

    /// On the real stories260K file: exactly the five `ffn_down` matrices fall back; every 2-D matrix of the
    /// falling-back shape converts to F16 when F16 is requested.
    func testRuleOnStories260K() throws {
        let file = try GGUFFile(path: Paths.stories260KGGUF)
        for (name, info) in file.tensorInfos {
            let q8 = GGMLType.conversionTarget(for: info, requested: .q8_0)
            if name.hasSuffix("ffn_down.weight") {
                XCTAssertEqual(info.shape, [64, 172])
                XCTAssertEqual(q8, ConversionTarget(type: .f32, outcome: .fellBack), name)
                XCTAssertEqual(GGMLType.conversionTarget(for: info, requested: .f16).type, .f16, name)
            } else {
                XCTAssertEqual(q8.outcome, info.shape.count == 2 ? .converted : .kept, name)
            }
        }
    }

    func testConversionErrorsNameTheTensor() throws {
        let floats = [Float](repeating: 1, count: 2 * 172)
        try floats.withUnsafeBytes { raw in
            let view = TensorView(info: TensorInfo(name: "blk.0.ffn_down.weight", type: .f32, shape: [2, 172]), data: raw)
            XCTAssertThrowsError(try view.converted(to: .q8_0)) {
                XCTAssertTrue("\($0)".contains("tensor 'blk.0.ffn_down.weight'") && "\($0)".contains("172"), "\($0)")
            }
            XCTAssertThrowsError(try view.converted(to: .q8_K)) { XCTAssertTrue("\($0)".contains("cannot convert to Q8_K"), "\($0)") }
            let short = TensorView(info: TensorInfo(name: "short.weight", type: .f32, shape: [3, 172]), data: raw)
            XCTAssertThrowsError(try short.converted(to: .f16)) { XCTAssertTrue("\($0)".contains("'short.weight'"), "\($0)") }
        }
        XCTAssertEqual(GGMLType(name: "q8_0"), .q8_0)
        XCTAssertEqual(GGMLType(name: "Q4_K"), .q4_K)
        XCTAssertNil(GGMLType(name: "q9_0"))
    }

    /// The streaming writer reads back like `addTensor` + `write(to:)`; a failure mid-way leaves neither the file nor
    /// its temporary.
    func testStreamingWriteIsAtomic() throws {
        let dir = try makeTempFolder(self)
        let path = dir.appendingPathComponent("s.gguf").path
        var writer = try GGUFWriter(alignment: 64)
        try writer.set("general.architecture", .string("test"))
        let infos = [TensorInfo(name: "a", type: .f32, shape: [3]), TensorInfo(name: "b", type: .f32, shape: [2, 2])]
        let values: [[Float]] = [[1, 2, 3], [4, 5, 6, 7]]
        try writer.write(to: path, tensors: infos) { i, emit in try values[i].withUnsafeBytes { try emit($0) } }
        let file = try GGUFFile(path: path)
        XCTAssertEqual(file.tensorNames, ["a", "b"])
        XCTAssertEqual(try file.view("b").dequantized(), values[1])
        XCTAssertEqual(file.alignment, 64)

        struct Stop: Error {}
        let other = dir.appendingPathComponent("failed.gguf").path
        XCTAssertThrowsError(try writer.write(to: other, tensors: infos) { i, emit in
            if i == 1 { throw Stop() }
            try values[i].withUnsafeBytes { try emit($0) }
        }) { XCTAssertTrue($0 is Stop, "the producer's error comes through: \($0)") }
        assertFormatError(["tensor 'b'", "12 bytes given", "needs 16"]) {
            try writer.write(to: other, tensors: infos) { i, emit in try values[i].dropLast(i).withUnsafeBytes { try emit($0) } }
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path), ["s.gguf"], "no partial file left")
    }
}
