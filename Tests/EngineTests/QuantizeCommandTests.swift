import Foundation
import TesseraFormats
import TesseraTestSupport
import XCTest

/// `infer-worker quantize` end to end on stories260K (F32): the converted files load, keep every metadata key but
/// `general.file_type` and `general.quantization_version`, hold the types llama.cpp's rules give each tensor, and
/// score within their tolerance of the F32 file's perplexity; bad input exits non-zero with a message naming what is
/// wrong.
final class QuantizeCommandTests: XCTestCase {
    var dir: URL!

    override func setUpWithError() throws {
        dir = FileManager.default.temporaryDirectory.appendingPathComponent("tessera-quantize-\(UUID().uuidString)")
        try FileManager.default.createDirectory(at: dir, withIntermediateDirectories: true)
    }

    override func tearDownWithError() throws { try? FileManager.default.removeItem(at: dir) }

    var storiesGGUF: String { Repo.shared.appendingPathComponent("models/stories260K/gguf/stories260K-f32.gguf").path }
    var storiesHF: String { Repo.shared.appendingPathComponent("models/stories260K/hf").path }

    func quantize(_ arguments: [String]) throws -> ProcessResult {
        try runProcess(Repo.executable("infer-worker"), ["quantize"] + arguments, timeout: 120)
    }

    func perplexity(_ model: String, _ extra: [String] = ["--exact-f32"], file: StaticString = #filePath, line: UInt = #line) throws -> Double {
        let text = Repo.shared.appendingPathComponent("reference/ppl.txt").path
        let r = try runProcess(Repo.executable("infer-worker"), ["perplexity", "--model", model, "--file", text] + extra,
                               timeout: 120)
        XCTAssertEqual(r.status, 0, "\(r)", file: file, line: line)
        let fields = r.stdout.split(separator: " ")
        return try XCTUnwrap(fields.count > 1 ? Double(fields[1]) : nil, "no perplexity in \(r)", file: file, line: line)
    }

    func testStories260KToQ8_0AndF16() throws {
        let reference = try JSONSerialization.jsonObject(
            with: Data(contentsOf: Repo.shared.appendingPathComponent("reference/stories260K.json"))) as! [String: Any]
        let referencePPL = try XCTUnwrap((reference["perplexity"] as? [String: Any])?["ppl"] as? Double)
        let f32PPL = try perplexity(storiesGGUF)
        XCTAssertEqual(f32PPL, referencePPL, accuracy: referencePPL * 0.001, "F32 file against the transformers reference")
        let input = try GGUFFile(path: storiesGGUF)

        // (type, general.file_type, perplexity tolerance against F32)
        for (type, ggml, fileType, tolerance) in [("q8_0", GGMLType.q8_0, 7, 0.01), ("q5_1", .q5_1, 9, 0.03),
                                                  ("q5_0", .q5_0, 8, 0.03), ("f16", .f16, 1, 0.01)] {
            let out = dir.appendingPathComponent("stories260K-\(type).gguf").path
            let r = try quantize(["--model", storiesGGUF, "--type", type, "--out", out])
            XCTAssertEqual(r.status, 0, "\(r)")
            XCTAssertEqual(r.stdout, "", "the summary goes to stderr")
            // ffn_down's rows of 172 fit no block: F16; q5_0/q5_1's head (the tied embedding) is Q6_K, whose blocks
            // do not fit rows of 64: Q8_0
            let fallen = ggml == .f16 ? 0 : ggml == .q8_0 ? 5 : 6
            for piece in ["tensors as \(ggml.description)", "11 kept", "\(fallen) fallen back", "bytes", "ratio"] {
                XCTAssertTrue(r.stderr.contains(piece), "\(type): expected '\(piece)' in:\n\(r.stderr)")
            }

            let output = try GGUFFile(path: out)
            XCTAssertEqual(output.metadata["general.file_type"]?.int, fileType, type)
            XCTAssertEqual(output.metadata["general.quantization_version"]?.int, 2, type)
            let replaced: Set<String> = ["general.file_type", "general.quantization_version"]
            XCTAssertEqual(output.metadataKeys.filter { !replaced.contains($0) },
                           input.metadataKeys.filter { !replaced.contains($0) }, "\(type): keys and their order")
            for key in input.metadataKeys where !replaced.contains(key) {
                XCTAssertEqual(output.metadata[key], input.metadata[key], "\(type): metadata '\(key)'")
            }
            XCTAssertEqual(output.alignment, input.alignment)
            XCTAssertEqual(output.tensorNames, input.tensorNames, "\(type): tensor order")
            for name in input.tensorNames {
                let before = try XCTUnwrap(input.tensorInfos[name]), after = try XCTUnwrap(output.tensorInfos[name])
                // llama.cpp's rules: norms stay; rows of 172 fit no block (F16); the tied embedding is the head,
                // Q6_K unless the type is Q8_0, and Q6_K's 256-blocks do not fit rows of 64 (Q8_0)
                let expected: GGMLType = before.shape.count == 1 ? .f32
                    : name.hasSuffix("ffn_down.weight") ? .f16
                    : name == "token_embd.weight" && ggml.blockSize == 32 ? .q8_0 : ggml
                XCTAssertEqual(after, TensorInfo(name: name, type: expected, shape: before.shape), type)
            }

            let ppl = try perplexity(out)
            print(String(format: "stories260K perplexity: F32 %.5f, %@ %.5f (%+.3f%%); %d -> %d bytes", f32PPL, type, ppl,
                         100 * (ppl / f32PPL - 1), try size(storiesGGUF), try size(out)))
            XCTAssertEqual(ppl, f32PPL, accuracy: f32PPL * tolerance, "\(type) perplexity within \(100 * tolerance)% of F32")
            // the fast kernels on the written file (Q8 activations): within 1% of its exact perplexity
            let fast = try perplexity(out, ["--fast"])
            XCTAssertEqual(fast, ppl, accuracy: ppl * 0.01, "\(type) --fast perplexity within 1% of exact")
        }
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(),
                       ["stories260K-f16.gguf", "stories260K-q5_0.gguf", "stories260K-q5_1.gguf", "stories260K-q8_0.gguf"],
                       "no temporary left behind")
    }

    func size(_ path: String) throws -> Int { try FileManager.default.attributesOfItem(atPath: path)[.size] as! Int }

    func expectFailure(_ arguments: [String], _ expected: [String], file: StaticString = #filePath, line: UInt = #line) throws {
        let r = try quantize(arguments)
        XCTAssertNotEqual(r.status, 0, "\(r)", file: file, line: line)
        XCTAssertFalse(r.timedOut, file: file, line: line)
        for piece in expected { XCTAssertTrue(r.stderr.contains(piece), "expected '\(piece)' in:\n\(r.stderr)", file: file, line: line) }
    }

    func testBadInputs() throws {
        let out = dir.appendingPathComponent("out.gguf").path
        try expectFailure(["--model", "/nonexistent/model.gguf", "--type", "q8_0", "--out", out],
                          ["/nonexistent/model.gguf", "no such file"])
        for input in [storiesHF, storiesHF + "/model.safetensors"] {
            try expectFailure(["--model", input, "--type", "q8_0", "--out", out], [input, "GGUF", "--quantize"])
        }
        try expectFailure(["--model", storiesGGUF, "--type", "q7_k", "--out", out], ["q7_k", "q4_k_m", "q6_k", "q8_0, f16, bf16, f32"])
        try expectFailure(["--model", storiesGGUF, "--type", "q8_0", "--out", dir.path], [dir.path, "folder"])
        try expectFailure(["--model", storiesGGUF, "--type", "q8_0", "--out", "/nonexistent-folder/out.gguf"],
                          ["/nonexistent-folder/out.gguf", "cannot create"])

        // the input is refused as the output under any spelling, and left untouched
        let copy = dir.appendingPathComponent("in.gguf")
        try FileManager.default.copyItem(atPath: storiesGGUF, toPath: copy.path)
        let link = dir.appendingPathComponent("link.gguf").path
        try FileManager.default.createSymbolicLink(atPath: link, withDestinationPath: copy.path)
        for spelling in [copy.path, dir.path + "/./in.gguf", link] {
            try expectFailure(["--model", copy.path, "--type", "q8_0", "--out", spelling], [spelling, "input file", "overwrite"])
        }
        XCTAssertEqual(try Data(contentsOf: copy), try Data(contentsOf: URL(fileURLWithPath: storiesGGUF)))
        XCTAssertEqual(try FileManager.default.contentsOfDirectory(atPath: dir.path).sorted(), ["in.gguf", "link.gguf"],
                       "no output and no temporary written")
    }
}
