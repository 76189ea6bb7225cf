import Foundation
import TesseraTestSupport
import XCTest

/// `infer-worker inspect`: a model's tensor types and the product path each matrix takes.
final class InspectCLITests: XCTestCase {
    func testListsTypesAndPaths() throws {
        let r = try runProcess(Repo.executable("infer-worker"), ["inspect", "--model", Repo.defaultModel.path, "--all"],
                               timeout: 60)
        XCTAssertEqual(r.status, 0, "\(r)")
        XCTAssertTrue(r.stdout.contains("llama (family llama), 30 layers, hidden 576, heads 9/3 of 64"), r.stdout)
        XCTAssertTrue(r.stdout.contains("token embedding token_embd.weight: Q8_0 [49152, 576]"), r.stdout)
        // every layer's seven linears in Q4_1, the tied head in Q8_0, and one line per matrix with --all
        XCTAssertNotNil(r.stdout.range(of: #"Q4_1\s+210\s+[0-9.]+\s+fast \(Q8_0 activations"#, options: .regularExpression), r.stdout)
        XCTAssertEqual(r.stdout.split(separator: "\n").filter { $0.hasPrefix("  blk.") }.count, 210)
        XCTAssertTrue(r.stdout.contains("  blk.29.ffn_down.weight: Q4_1 [576, 1536]"), r.stdout)
    }

    func testQuantizeShowsTheConvertedTypes() throws {
        let model = Repo.shared.appendingPathComponent("models/stories260K/gguf/stories260K-f32.gguf").path
        let r = try runProcess(Repo.executable("infer-worker"), ["inspect", "--model", model, "--quantize", "q8_0"],
                               timeout: 60)
        XCTAssertEqual(r.status, 0, "\(r)")
        // ffn_down's rows of 172 do not fit Q8_0's blocks of 32: they stay float32 (and fast)
        XCTAssertNotNil(r.stdout.range(of: #"F32\s+5\s"#, options: .regularExpression), r.stdout)
        XCTAssertNotNil(r.stdout.range(of: #"Q8_0\s+\d+\s"#, options: .regularExpression), r.stdout)
        let bad = try runProcess(Repo.executable("infer-worker"), ["inspect", "--model", "/nonexistent.gguf"], timeout: 60)
        XCTAssertNotEqual(bad.status, 0)
        XCTAssertTrue(bad.stderr.contains("/nonexistent.gguf"), bad.stderr)
    }
}
