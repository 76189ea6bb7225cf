import Foundation
import TesseraFormats
import XCTest

/// Bad GGUF inputs, each with the message it must produce. Files are built by hand (not with `GGUFWriter`).
final class GGUFErrorTests: XCTestCase {
    /// A valid v3 file: one string key, one u32 array, and an F32 tensor of shape [2, 4] (ne = [4, 2]) at offset 0.
    static func validFile(version: UInt32 = 3, tensorType: UInt32 = 0, dims: [UInt64] = [4, 2], nDims: UInt32? = nil,
                          offset: UInt64 = 0, stringLength: UInt64? = nil, arrayCount: UInt64? = nil) -> [UInt8] {
        var b = Bytes()
        b.raw(Array("GGUF".utf8)); b.u32(version); b.u64(1); b.u64(2)
        b.str("general.architecture"); b.u32(8)
        if let n = stringLength { b.u64(n); b.raw(Array("llama".utf8)) } else { b.str("llama") }
        b.str("test.values"); b.u32(9); b.u32(4); b.u64(arrayCount ?? 3); b.u32(7); b.u32(8); b.u32(9)
        b.str("w"); b.u32(nDims ?? UInt32(dims.count)); for d in dims { b.u64(d) }; b.u32(tensorType); b.u64(offset)
        b.pad(to: 32)
        for i in 0 ..< 8 { b.f32(Float(i)) }
        return b.data
    }

    func testValidHandMadeFileParses() throws {
        let file = try GGUFFile(bytes: Self.validFile(), path: "hand.gguf")
        XCTAssertEqual(file.metadata["general.architecture"], .string("llama"))
        XCTAssertEqual(file.metadata["test.values"], .array([.uint32(7), .uint32(8), .uint32(9)]))
        XCTAssertEqual(file.tensorInfos["w"]?.shape, [2, 4])
        XCTAssertEqual(try file.view("w").dequantized(), (0 ..< 8).map(Float.init))
        XCTAssertEqual(try file.view("w", rows: 1 ..< 2).dequantized(), [4, 5, 6, 7])
        let v2 = try GGUFFile(bytes: Self.validFile(version: 2), path: "v2.gguf")
        XCTAssertEqual(v2.version, 2)
    }

    func testMissingPathAndEmptyFile() throws {
        assertFormatError(["/no/such/dir/model.gguf", "no such file"]) { try GGUFFile(path: "/no/such/dir/model.gguf") }
        let dir = try makeTempFolder(self)
        let empty = dir.appendingPathComponent("empty.gguf").path
        try writeFile(empty, [])
        assertFormatError([empty, "empty file"]) { try GGUFFile(path: empty) }
        assertFormatError([dir.path, "not a regular file"]) { try GGUFFile(path: dir.path) }
    }

    func testWrongMagicAndVersions() {
        var bytes = Self.validFile()
        bytes[0] = UInt8(ascii: "X")
        assertFormatError(["x.gguf", "not a GGUF file", "58 47 55 46"]) { try GGUFFile(bytes: bytes, path: "x.gguf") }
        assertFormatError(["GGUF version 1 is not supported"]) { try GGUFFile(bytes: Self.validFile(version: 1), path: "v1") }
        assertFormatError(["unsupported GGUF version 4"]) { try GGUFFile(bytes: Self.validFile(version: 4), path: "v4") }
        assertFormatError(["big-endian"]) { try GGUFFile(bytes: Self.validFile(version: 3 << 24), path: "be") }
    }

    func testTruncations() {
        let bytes = Self.validFile()
        assertFormatError(["t.gguf", "truncated", "version"]) { try GGUFFile(bytes: Array(bytes[..<6]), path: "t.gguf") }
        assertFormatError(["truncated", "metadata count"]) { try GGUFFile(bytes: Array(bytes[..<20]), path: "t.gguf") }
        // Cut inside the first metadata key's string value.
        assertFormatError(["truncated", "general.architecture"]) { try GGUFFile(bytes: Array(bytes[..<60]), path: "t.gguf") }
        // Cut inside the array of the second key.
        assertFormatError(["truncated", "test.values"]) { try GGUFFile(bytes: Array(bytes[..<100]), path: "t.gguf") }
        // Cut inside the tensor data.
        assertFormatError(["truncated", "tensor 'w'", "extends past the end"]) {
            try GGUFFile(bytes: Array(bytes.dropLast(4)), path: "t.gguf")
        }
    }

    func testUnknownTensorTypeAndBadShapes() {
        assertFormatError(["tensor 'w'", "unsupported tensor type id 16", "IQ2_XXS"]) {
            try GGUFFile(bytes: Self.validFile(tensorType: 16), path: "u")
        }
        assertFormatError(["tensor 'w'", "unsupported tensor type id 1000"]) {
            try GGUFFile(bytes: Self.validFile(tensorType: 1000), path: "u")
        }
        assertFormatError(["tensor 'w'", "5 dimensions"]) {
            try GGUFFile(bytes: Self.validFile(dims: [4, 2, 1, 1, 1]), path: "u")
        }
        assertFormatError(["tensor 'w'", "0 dimensions"]) { try GGUFFile(bytes: Self.validFile(dims: []), path: "u") }
        assertFormatError(["tensor 'w'", "invalid dimension 1 = 0"]) { try GGUFFile(bytes: Self.validFile(dims: [4, 0]), path: "u") }
        // Q4_0 needs rows of whole 32-element blocks.
        assertFormatError(["tensor 'w'", "row length 4", "Q4_0 block size 32"]) {
            try GGUFFile(bytes: Self.validFile(tensorType: 2), path: "u")
        }
        assertFormatError(["tensor 'w'", "not a multiple of the alignment"]) { try GGUFFile(bytes: Self.validFile(offset: 4), path: "u") }
        assertFormatError(["tensor 'w'", "extends past the end"]) { try GGUFFile(bytes: Self.validFile(offset: 64), path: "u") }
    }

    func testHugeLengthFieldsAreRejectedWithoutAllocating() {
        assertFormatError(["general.architecture", "length 1152921504606846976"]) {
            try GGUFFile(bytes: Self.validFile(stringLength: 1 << 60), path: "h")
        }
        assertFormatError(["test.values", "1152921504606846976 array elements"]) {
            try GGUFFile(bytes: Self.validFile(arrayCount: 1 << 60), path: "h")
        }
        assertFormatError(["test.values"]) { try GGUFFile(bytes: Self.validFile(arrayCount: UInt64.max), path: "h") }
        assertFormatError(["tensor 'w'", "too many elements"]) {
            try GGUFFile(bytes: Self.validFile(dims: [1 << 40, 1 << 40]), path: "h")
        }
        assertFormatError(["invalid dimension"]) { try GGUFFile(bytes: Self.validFile(dims: [UInt64.max, 2]), path: "h") }
        assertFormatError(["tensor 'w'", "data offset"]) { try GGUFFile(bytes: Self.validFile(offset: UInt64.max), path: "h") }
        assertFormatError(["tensor 'w'", "extends past the end"]) {
            try GGUFFile(bytes: Self.validFile(offset: UInt64(Int.max) / 32 * 32), path: "h")
        }
        var counts = Self.validFile()
        counts.replaceSubrange(8 ..< 16, with: [0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0xFF, 0x0F])
        assertFormatError(["tensor count", "cannot fit"]) { try GGUFFile(bytes: counts, path: "h") }
        counts = Self.validFile()
        counts.replaceSubrange(16 ..< 24, with: [0, 0, 0, 0, 0, 0, 0, 0x10])
        assertFormatError(["metadata count", "cannot fit"]) { try GGUFFile(bytes: counts, path: "h") }
    }

    func testMetadataErrors() {
        var b = Bytes()
        b.raw(Array("GGUF".utf8)); b.u32(3); b.u64(0); b.u64(2)
        b.str("a"); b.u32(4); b.u32(1)
        b.str("a"); b.u32(4); b.u32(2)
        assertFormatError(["duplicate metadata key 'a'"]) { try GGUFFile(bytes: b.data, path: "m") }
        b = Bytes()
        b.raw(Array("GGUF".utf8)); b.u32(3); b.u64(0); b.u64(1)
        b.str("k"); b.u32(13); b.u64(0)
        assertFormatError(["metadata key 'k'", "unknown value type 13"]) { try GGUFFile(bytes: b.data, path: "m") }
        b = Bytes()
        b.raw(Array("GGUF".utf8)); b.u32(3); b.u64(0); b.u64(1)
        b.str("general.alignment"); b.u32(4); b.u32(48)
        assertFormatError(["general.alignment", "power of two"]) { try GGUFFile(bytes: b.data, path: "m") }
        b = Bytes()
        b.raw(Array("GGUF".utf8)); b.u32(3); b.u64(0); b.u64(1)
        b.str("b"); b.u32(7); b.u8(2)
        assertFormatError(["metadata key 'b'", "invalid bool"]) { try GGUFFile(bytes: b.data, path: "m") }
        // Arrays nested 100 deep: refused (bounded recursion), not a stack overflow.
        b = Bytes()
        b.raw(Array("GGUF".utf8)); b.u32(3); b.u64(0); b.u64(1)
        b.str("deep"); b.u32(9)
        for _ in 0 ..< 100 { b.u32(9); b.u64(1) }
        b.u32(0); b.u64(0)
        assertFormatError(["metadata key 'deep'", "nests arrays deeper"]) { try GGUFFile(bytes: b.data, path: "m") }
    }

    func testModelSourceErrors() throws {
        assertFormatError(["/no/such/model", "no such file"]) { try ModelSource.open(path: "/no/such/model") }
        let dir = try makeTempFolder(self)
        let empty = dir.appendingPathComponent("empty.gguf").path
        try writeFile(empty, [])
        assertFormatError([empty, "empty file"]) { try ModelSource.open(path: empty) }
        let text = dir.appendingPathComponent("notes.txt").path
        try writeFile(text, Array("hello world".utf8))
        assertFormatError([text, "not a GGUF file"]) { try ModelSource.open(path: text) }
        let pickle = dir.appendingPathComponent("pytorch_model.bin").path
        try writeFile(pickle, [0x50, 0x4B, 3, 4, 0, 0, 0, 0])
        assertFormatError([pickle, "pickle", "safe_serialization=True"]) { try ModelSource.open(path: pickle) }
        guard case .gguf(let file) = try ModelSource.open(path: Paths.stories260KGGUF) else {
            return XCTFail("stories260K-f32.gguf should open as GGUF")
        }
        XCTAssertEqual(file.tensorNames.count, 47)
    }
}
