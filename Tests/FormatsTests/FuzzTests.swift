import Foundation
import TesseraFormats
import TesseraTestSupport
import XCTest
#if canImport(Glibc)
import Glibc
#endif

/// Seeded mutation fuzzing of the GGUF and safetensors parsers: every input must either throw a `FormatError` or
/// parse into views that stay inside the buffer. A crash, another error type or a runaway allocation fails the run.
final class FuzzTests: XCTestCase {
    static let iterations = 10_000
    static let hugeValues: [UInt64] = [1 << 60, UInt64.max, 1 << 63, UInt64(Int64.max), 1 << 32, 0xFFFF_FFFF, 1 << 40]

    /// Peak resident memory of this process in bytes.
    static func peakRSS() -> Int {
        var usage = rusage()
        getrusage(RUSAGE_SELF.rawValue, &usage)
        return Int(usage.ru_maxrss) * 1024
    }

    static func ggufSeed() throws -> [UInt8] {
        var w = try GGUFWriter()
        try w.set("general.architecture", .string("llama"))
        try w.set("a.u32", .uint32(7)); try w.set("a.f32", .float32(1.5)); try w.set("a.bool", .bool(true))
        try w.set("a.i64", .int64(-5)); try w.set("a.f64", .float64(2.5)); try w.set("a.u8", .uint8(1))
        try w.set("tok.tokens", .array(["<s>", "</s>", "a", "bc", "déf"].map { .string($0) }))
        try w.set("tok.scores", .array([0, -1, -2, -3, -4].map { .float32($0) }))
        try w.set("tok.nested", .array([.array([.int32(1), .int32(2)]), .array([.int32(3)])]))
        var rng = SplitMix64(seed: 1)
        func bytes(_ n: Int) -> [UInt8] { (0 ..< n).map { _ in UInt8.random(in: 0 ... 255, using: &rng) } }
        try w.addTensor("f32", shape: [2, 8], values: (0 ..< 16).map(Float.init))
        try w.addTensor("q4_0", type: .q4_0, shape: [2, 32], data: bytes(36))
        try w.addTensor("q6_K", type: .q6_K, shape: [1, 256], data: bytes(210))
        try w.addTensor("f16", type: .f16, shape: [4], data: bytes(8))
        return try w.serialized()
    }

    /// One random mutation (or two) of `seed`.
    static func mutate(_ seed: [UInt8], _ rng: inout SplitMix64, region: Range<Int>? = nil) -> [UInt8] {
        var b = seed
        let rounds = Int.random(in: 1 ... 2, using: &rng)
        for _ in 0 ..< rounds where !b.isEmpty {
            let r = region.map { $0.clamped(to: 0 ..< b.count) } ?? (0 ..< b.count)
            guard !r.isEmpty else { break }
            switch Int.random(in: 0 ..< 5, using: &rng) {
            case 0:                                               // bit flips
                for _ in 0 ..< Int.random(in: 1 ... 8, using: &rng) {
                    b[Int.random(in: r, using: &rng)] ^= 1 << UInt8.random(in: 0 ..< 8, using: &rng)
                }
            case 1:                                               // byte overwrites
                for _ in 0 ..< Int.random(in: 1 ... 8, using: &rng) {
                    b[Int.random(in: r, using: &rng)] = UInt8.random(in: 0 ... 255, using: &rng)
                }
            case 2:                                               // truncation
                b = Array(b[..<Int.random(in: 0 ..< b.count, using: &rng)])
            case 3:                                               // a huge 64-bit length/count/offset
                let at = Int.random(in: r, using: &rng)
                let v = hugeValues.randomElement(using: &rng)! &+ UInt64.random(in: 0 ... 3, using: &rng)
                for i in 0 ..< 8 where at + i < b.count { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt64(i))) }
            default:                                              // a large or odd 32-bit type / dimension count
                let at = Int.random(in: r, using: &rng)
                let v: UInt32 = [5, 9, 13, 16, 0xFFFF_FFFF, 1 << 31, 3 << 24].randomElement(using: &rng)!
                for i in 0 ..< 4 where at + i < b.count { b[at + i] = UInt8(truncatingIfNeeded: v >> (8 * UInt32(i))) }
            }
        }
        return b
    }

    /// Every view of `store` must lie inside `bounds`, and dequantizing it must stay inside the view.
    static func exercise(_ store: TensorStore, bounds: UnsafeRawBufferPointer?, scratch: inout [Float]) throws {
        for (name, info) in store.tensorInfos {
            let view = try store.view(name)
            if let bounds, let base = bounds.baseAddress, let p = view.data.baseAddress {
                XCTAssertTrue(p >= base && p + view.data.count <= base + bounds.count, "\(name) outside the file")
            }
            XCTAssertEqual(view.data.count, info.type.byteCount(elements: info.elementCount))
            if info.elementCount <= scratch.count, let src = view.data.baseAddress {
                scratch.withUnsafeMutableBufferPointer { info.type.dequantize(src, count: info.elementCount, into: $0.baseAddress!) }
            }
            if let outer = info.shape.first, outer > 0 {
                _ = try? store.view(name, rows: outer / 2 ..< outer)
            }
        }
    }

    func testGGUFParserSurvivesMutations() throws {
        let seed = try Self.ggufSeed()
        XCTAssertNoThrow(try GGUFFile(bytes: seed, path: "seed.gguf"))
        var rng = SplitMix64(seed: 0x6767_7566)
        var scratch = [Float](repeating: 0, count: 4096)
        var parsed = 0, rejected = 0
        let rss = Self.peakRSS()
        for i in 0 ..< Self.iterations {
            let input = Self.mutate(seed, &rng)
            do {
                let file = try GGUFFile(bytes: input, path: "fuzz-\(i).gguf")
                try Self.exercise(file, bounds: file.fileBytes, scratch: &scratch)
                parsed += 1
            } catch is FormatError {
                rejected += 1
            }
        }
        XCTAssertEqual(parsed + rejected, Self.iterations)
        XCTAssertGreaterThan(parsed, 500, "mutations should often keep the file valid")
        XCTAssertGreaterThan(rejected, 3000)
        XCTAssertLessThan(Self.peakRSS() - rss, 256 << 20, "parsing mutated inputs must not allocate unboundedly")
    }

    func testSafetensorsHeaderParserSurvivesMutations() throws {
        let tensors: [(name: String, dtype: String, shape: [Int], data: [UInt8])] = [
            ("model.embed.weight", "F32", [4, 4], floatBytes((0 ..< 16).map(Float.init))),
            ("model.norm.weight", "F16", [8], Array(repeating: 0x3C, count: 16)),
            ("model.bf", "BF16", [2, 2], Array(repeating: 0x3F, count: 8)),
            ("ids", "I64", [2], Array(repeating: 1, count: 16)),
        ]
        let seed = makeSafetensors(tensors, metadata: ["format": "pt", "lm_head.weight": "model.embed.weight"])
        XCTAssertNoThrow(try SafetensorsStore(bytes: seed, path: "seed.safetensors"))
        let headerEnd = 8 + Int(seed[0]) + Int(seed[1]) << 8
        var rng = SplitMix64(seed: 0x5afe)
        var scratch = [Float](repeating: 0, count: 4096)
        let numbers = ["0", "1", "-1", "7", "64", "1e308", "18446744073709551616", "9223372036854775807", "4294967296", "[]", "\"\""]
        var parsed = 0, rejected = 0
        let rss = Self.peakRSS()
        for i in 0 ..< Self.iterations {
            var input: [UInt8]
            if i % 3 == 0 {
                // JSON-aware: replace one number of the header with another (keeps the JSON mostly valid).
                var text = String(decoding: seed[8 ..< headerEnd], as: UTF8.self)
                let digits = text.indices.filter { text[$0].isNumber }
                if let at = digits.randomElement(using: &rng) {
                    var end = at
                    while end < text.endIndex, text[end].isNumber { end = text.index(after: end) }
                    text.replaceSubrange(at ..< end, with: numbers.randomElement(using: &rng)!)
                }
                var b = Bytes(); b.u64(UInt64(text.utf8.count)); b.raw(Array(text.utf8)); b.raw(Array(seed[headerEnd...]))
                input = b.data
                if i % 2 == 0 { input = Self.mutate(input, &rng, region: 0 ..< 8 + text.utf8.count) }
            } else {
                input = Self.mutate(seed, &rng, region: 0 ..< headerEnd)
            }
            do {
                let store = try SafetensorsStore(bytes: input, path: "fuzz-\(i).safetensors")
                try Self.exercise(store, bounds: nil, scratch: &scratch)
                parsed += 1
            } catch is FormatError {
                rejected += 1
            }
        }
        XCTAssertEqual(parsed + rejected, Self.iterations)
        XCTAssertGreaterThan(parsed, 20, "some mutated headers should stay valid")
        XCTAssertGreaterThan(rejected, 3000)
        XCTAssertLessThan(Self.peakRSS() - rss, 256 << 20)
    }
}
