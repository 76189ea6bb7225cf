import Foundation
import TesseraFormats
import XCTest

/// Safetensors files and folders: the shared models, aliases, dtypes, sharded sets, bad headers.
final class SafetensorsTests: XCTestCase {
    /// The header of a safetensors file read independently with Foundation's JSONSerialization.
    static func independentHeader(_ path: String) throws -> (header: [String: Any], dataStart: Int, bytes: Data) {
        let bytes = try Data(contentsOf: URL(fileURLWithPath: path))
        let n = bytes.prefix(8).enumerated().reduce(0) { $0 | Int($1.element) << (8 * $1.offset) }
        let header = try XCTUnwrap(JSONSerialization.jsonObject(with: bytes.subdata(in: 8 ..< 8 + n)) as? [String: Any])
        return (header, 8 + n, bytes)
    }

    func testSharedModelsAgreeWithAnIndependentReading() throws {
        for folder in [Paths.stories260KHF, Paths.tinyStories656K] {
            let file = URL(fileURLWithPath: folder).appendingPathComponent("model.safetensors").path
            let store = try SafetensorsStore(file: file)
            let (header, dataStart, bytes) = try Self.independentHeader(file)
            let stored = header.keys.filter { $0 != "__metadata__" }
            for name in stored {
                let entry = try XCTUnwrap(header[name] as? [String: Any])
                let offsets = try XCTUnwrap(entry["data_offsets"] as? [Int])
                let view = try store.view(name)
                XCTAssertEqual(view.info.shape, entry["shape"] as? [Int], name)
                XCTAssertEqual(view.info.type, .f32)
                XCTAssertEqual(Data(view.data), bytes.subdata(in: dataStart + offsets[0] ..< dataStart + offsets[1]), name)
            }
            XCTAssertEqual(store.unsupportedDTypes, [:])
        }
    }

    func testTinyStoriesTiedEmbeddingAliasIsExposed() throws {
        let store = try SafetensorsStore(folder: Paths.tinyStories656K)
        XCTAssertEqual(store.metadata["format"], "pt")
        XCTAssertEqual(store.tensorInfos.count, 21)
        let head = try store.view("lm_head.weight"), embed = try store.view("model.embed_tokens.weight")
        XCTAssertEqual(embed.info, TensorInfo(name: "model.embed_tokens.weight", type: .f32, shape: [2048, 128]))
        XCTAssertEqual(embed.data.baseAddress, head.data.baseAddress)
        XCTAssertEqual(embed.data.count, 2048 * 128 * 4)
        let rows = try store.view("model.embed_tokens.weight", rows: 5 ..< 7)
        XCTAssertEqual(floats(rows), Array(floats(head)[5 * 128 ..< 7 * 128]))
        XCTAssertNil(store.tensorInfos["format"])
    }

    func testDTypesAndAliasInAWrittenFile() throws {
        let f16: [UInt8] = [0x00, 0x3C, 0x00, 0xC0]            // 1.0, -2.0
        let bf16: [UInt8] = [0x80, 0x3F, 0x40, 0x40]           // 1.0, 3.0
        let bytes = makeSafetensors([("a", "F16", [2], f16), ("b", "BF16", [1, 2], bf16), ("c", "I64", [2], Array(repeating: 0, count: 16)),
                                     ("d", "F32", [], floatBytes([7]))], metadata: ["e": "b", "f": "missing"])
        let store = try SafetensorsStore(bytes: bytes, path: "mem.safetensors")
        XCTAssertEqual(try store.view("a").dequantized(), [1, -2])
        XCTAssertEqual(try store.view("b").dequantized(), [1, 3])
        XCTAssertEqual(try store.view("e").dequantized(), [1, 3])
        XCTAssertEqual(try store.view("d").info.shape, [])
        XCTAssertEqual(store.unsupportedDTypes, ["c": "I64"])
        assertFormatError(["mem.safetensors", "tensor 'c'", "dtype I64", "F32, F16 and BF16"]) { try store.view("c") }
        assertFormatError(["no tensor named 'f'"]) { try store.view("f") }
    }

    func testShardedSetThroughTheIndex() throws {
        let dir = try makeTempFolder(self)
        let a: [Float] = (0 ..< 12).map { Float($0) * 0.5 }, b: [Float] = [9, 8, 7], c: [Float] = [-1, -2]
        try Data(makeSafetensors([("x.weight", "F32", [3, 4], floatBytes(a)), ("y.bias", "F32", [3], floatBytes(b))]))
            .write(to: dir.appendingPathComponent("model-00001-of-00002.safetensors"))
        try Data(makeSafetensors([("z.weight", "F32", [1, 2], floatBytes(c))], metadata: ["tied.weight": "x.weight"]))
            .write(to: dir.appendingPathComponent("model-00002-of-00002.safetensors"))
        let index = #"{"metadata": {"total_size": 68}, "weight_map": {"x.weight": "model-00001-of-00002.safetensors", "#
            + #""y.bias": "model-00001-of-00002.safetensors", "z.weight": "model-00002-of-00002.safetensors"}}"#
        try Data(index.utf8).write(to: dir.appendingPathComponent("model.safetensors.index.json"))
        try Data(#"{"model_type": "llama", "hidden_size": 4}"#.utf8).write(to: dir.appendingPathComponent("config.json"))

        let store = try SafetensorsStore(folder: dir.path)
        XCTAssertEqual(store.files.count, 2)
        XCTAssertEqual(Set(store.tensorInfos.keys), ["x.weight", "y.bias", "z.weight", "tied.weight"])
        XCTAssertEqual(floats(try store.view("x.weight")), a)
        XCTAssertEqual(floats(try store.view("x.weight", rows: 1 ..< 3)), Array(a[4...]))
        XCTAssertEqual(floats(try store.view("y.bias")), b)
        XCTAssertEqual(floats(try store.view("z.weight")), c)
        XCTAssertEqual(floats(try store.view("tied.weight")), a)

        let folder = try HuggingFaceFolder(path: dir.path)
        XCTAssertEqual(folder.config["hidden_size"]?.int, 4)
        XCTAssertNil(folder.tokenizerJSON)
        XCTAssertEqual(folder.weights.tensorInfos.count, 4)

        // The index names a tensor its shard lacks; then a shard that does not exist.
        let badIndex = #"{"weight_map": {"x.weight": "model-00002-of-00002.safetensors", "z.weight": "model-00002-of-00002.safetensors"}}"#
        try Data(badIndex.utf8).write(to: dir.appendingPathComponent("model.safetensors.index.json"))
        assertFormatError(["model.safetensors.index.json", "'x.weight'", "missing from model-00002-of-00002.safetensors"]) {
            try SafetensorsStore(folder: dir.path)
        }
        try Data(#"{"weight_map": {"x.weight": "model-00003-of-00003.safetensors"}}"#.utf8)
            .write(to: dir.appendingPathComponent("model.safetensors.index.json"))
        assertFormatError(["model-00003-of-00003.safetensors", "no such file"]) { try SafetensorsStore(folder: dir.path) }
        try Data(#"{"weight_map": {"x.weight": "../etc/passwd"}}"#.utf8).write(to: dir.appendingPathComponent("model.safetensors.index.json"))
        assertFormatError(["not a file name in the folder"]) { try SafetensorsStore(folder: dir.path) }
    }

    func testBadHeaders() throws {
        let good = makeSafetensors([("w", "F32", [2, 2], floatBytes([1, 2, 3, 4]))])
        func header(_ json: String, data: Int = 16) -> [UInt8] {
            var b = Bytes(); b.u64(UInt64(json.utf8.count)); b.raw(Array(json.utf8)); b.raw(Array(repeating: 0, count: data))
            return b.data
        }
        assertFormatError(["s.st", "truncated", "8-byte header length"]) { try SafetensorsStore(bytes: Array(good[..<5]), path: "s.st") }
        var huge = good
        huge.replaceSubrange(0 ..< 8, with: [0, 0, 0, 0, 0, 0, 0, 0x10])
        assertFormatError(["header length 1152921504606846976", "limit"]) { try SafetensorsStore(bytes: huge, path: "s.st") }
        var long = good
        long.replaceSubrange(0 ..< 8, with: [0, 0, 1, 0, 0, 0, 0, 0])
        assertFormatError(["truncated", "header length 65536"]) { try SafetensorsStore(bytes: long, path: "s.st") }
        assertFormatError(["invalid JSON"]) { try SafetensorsStore(bytes: header(#"{"w": "#), path: "s.st") }
        assertFormatError(["not a JSON object"]) { try SafetensorsStore(bytes: header("[1, 2]"), path: "s.st") }
        assertFormatError(["tensor 'w'", "unknown dtype 'Q9'"]) {
            try SafetensorsStore(bytes: header(#"{"w": {"dtype": "Q9", "shape": [2], "data_offsets": [0, 8]}}"#), path: "s.st")
        }
        assertFormatError(["tensor 'w'", "outside the 16-byte data buffer"]) {
            try SafetensorsStore(bytes: header(#"{"w": {"dtype": "F32", "shape": [8], "data_offsets": [0, 32]}}"#), path: "s.st")
        }
        assertFormatError(["tensor 'w'", "has 8 bytes of data", "needs 12"]) {
            try SafetensorsStore(bytes: header(#"{"w": {"dtype": "F32", "shape": [3], "data_offsets": [0, 8]}}"#), path: "s.st")
        }
        assertFormatError(["tensor 'w'", "too many elements"]) {
            let json = #"{"w": {"dtype": "F32", "shape": [4294967296, 4294967296], "data_offsets": [0, 8]}}"#
            return try SafetensorsStore(bytes: header(json), path: "s.st")
        }
        assertFormatError(["tensor 'w'", "invalid shape"]) {
            try SafetensorsStore(bytes: header(#"{"w": {"dtype": "F32", "shape": [-2], "data_offsets": [0, 8]}}"#), path: "s.st")
        }
        assertFormatError(["tensor 'w'", "data_offsets"]) {
            try SafetensorsStore(bytes: header(#"{"w": {"dtype": "F32", "shape": [2], "data_offsets": [8, 0]}}"#), path: "s.st")
        }
        assertFormatError(["s.st", "empty file"]) { try SafetensorsStore(bytes: [], path: "s.st") }
    }
}
