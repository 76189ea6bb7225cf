import Foundation
import TesseraFormats
import TesseraTestSupport
import XCTest

/// Paths of the repository, ../shared and this test folder, found from this file.
enum Paths {
    static let testsFolder = URL(fileURLWithPath: #filePath).deletingLastPathComponent()
    static let repo = Repo.root
    static let shared = Repo.shared
    static let fixtures = testsFolder.appendingPathComponent("Fixtures")
    static let stories260KGGUF = shared.appendingPathComponent("models/stories260K/gguf/stories260K-f32.gguf").path
    static let stories260KHF = shared.appendingPathComponent("models/stories260K/hf").path
    static let tinyStories656K = shared.appendingPathComponent("models/tinystories-656k").path
    static let smolLM2 = repo.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
}

/// A fresh temporary folder, removed by the test's teardown.
func makeTempFolder(_ test: XCTestCase) throws -> URL {
    let url = FileManager.default.temporaryDirectory.appendingPathComponent("formats-tests-\(UUID().uuidString)")
    try FileManager.default.createDirectory(at: url, withIntermediateDirectories: true)
    test.addTeardownBlock { try? FileManager.default.removeItem(at: url) }
    return url
}

func writeFile(_ path: String, _ bytes: [UInt8]) throws {
    try Data(bytes).write(to: URL(fileURLWithPath: path))
}

/// Asserts that `body` throws a `FormatError` whose description contains every string of `expected`.
func assertFormatError<T>(_ expected: [String], file: StaticString = #filePath, line: UInt = #line,
                          _ body: () throws -> T) {
    do {
        _ = try body()
        XCTFail("expected a FormatError containing \(expected)", file: file, line: line)
    } catch let error as FormatError {
        for s in expected where !error.description.contains(s) {
            XCTFail("error \"\(error.description)\" does not contain \"\(s)\"", file: file, line: line)
        }
    } catch {
        XCTFail("expected a FormatError, got \(error)", file: file, line: line)
    }
}


/// Little-endian byte building for hand-made files (independent of `GGUFWriter`).
struct Bytes {
    var data: [UInt8] = []
    mutating func u8(_ v: UInt8) { data.append(v) }
    mutating func u32(_ v: UInt32) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    mutating func u64(_ v: UInt64) { withUnsafeBytes(of: v.littleEndian) { data.append(contentsOf: $0) } }
    mutating func f32(_ v: Float) { u32(v.bitPattern) }
    mutating func str(_ s: String) { u64(UInt64(s.utf8.count)); data.append(contentsOf: s.utf8) }
    mutating func raw(_ bytes: [UInt8]) { data.append(contentsOf: bytes) }
    mutating func pad(to alignment: Int) { while data.count % alignment != 0 { data.append(0) } }
}

/// A safetensors file from (name, dtype, shape, bytes) entries, written the way the reference implementation does.
func makeSafetensors(_ tensors: [(name: String, dtype: String, shape: [Int], data: [UInt8])],
                     metadata: [String: String] = [:]) -> [UInt8] {
    var header: [String: Any] = [:]
    var offset = 0
    var body: [UInt8] = []
    for t in tensors {
        header[t.name] = ["dtype": t.dtype, "shape": t.shape, "data_offsets": [offset, offset + t.data.count]] as [String: Any]
        offset += t.data.count
        body.append(contentsOf: t.data)
    }
    if !metadata.isEmpty { header["__metadata__"] = metadata }
    var json = Array((try? JSONSerialization.data(withJSONObject: header, options: [.sortedKeys])) ?? Data())
    while (json.count + 8) % 8 != 0 { json.append(0x20) }
    var out = Bytes()
    out.u64(UInt64(json.count))
    out.raw(json)
    out.raw(body)
    return out.data
}

func floatBytes(_ values: [Float]) -> [UInt8] { values.withUnsafeBytes { Array($0) } }

/// The elements of an F32 view (unaligned-safe).
func floats(_ view: TensorView) -> [Float] {
    (0 ..< view.data.count / 4).map { view.data.loadUnaligned(fromByteOffset: 4 * $0, as: Float.self) }
}
