// `--profile`: a table of time per operator kind and per layer after the run, on one rank and on every rank of a
// tensor-parallel job (with the rank's communication time); the generated text is the same as without it.
import Foundation
import TesseraTestSupport
import XCTest

final class ProfileCLITests: XCTestCase {
    let args = ["--model", Repo.shared.appendingPathComponent("models/tinystories-656k").path, "--prompt", "Once upon a time",
                "--temperature", "0", "--max-tokens", "12", "--fast"]

    /// The seconds column of `label`'s row in one profile table.
    func seconds(_ label: String, in table: Substring) -> Double? {
        guard let line = table.split(separator: "\n").first(where: { $0.hasPrefix(label) }) else { return nil }
        return Double(line.dropFirst(30).split(separator: " ").first ?? "")
    }

    func testSingleRankProfile() throws {
        let plain = try runProcess(Repo.executable("infer-worker"), ["generate"] + args)
        let profiled = try runProcess(Repo.executable("infer-worker"), ["generate"] + args + ["--profile"])
        XCTAssertEqual(profiled.status, 0, "\(profiled)")
        XCTAssertEqual(profiled.stdout, plain.stdout, "profiling changed the output")
        let table = try XCTUnwrap(profiled.stderr.components(separatedBy: "tessera: profile\n").last?[...])
        for label in ["Q/K/V products", "attention ", "gate/up products", "down product + residual", "final norm + head"] {
            let s = try XCTUnwrap(seconds(label, in: table), "no row for \(label): \(profiled.stderr)")
            XCTAssertGreaterThanOrEqual(s, 0, label)   // a tiny model's attention can round to 0.0000 s
        }
        XCTAssertGreaterThan(try XCTUnwrap(seconds("all operators", in: table)), 0)
        let total = try XCTUnwrap(seconds("all operators", in: table))
        let parts = ["embedding lookup", "Q/K/V products", "RoPE + KV cache write", "attention ", "attention output",
                     "gate/up products", "down product", "final norm + head"].compactMap { seconds($0, in: table) }
        XCTAssertEqual(parts.reduce(0, +), total, accuracy: 0.0005 * Double(parts.count), "rows add up to the total")
        XCTAssertTrue(table.contains("per layer, ms per step"), table.description)
        XCTAssertTrue(table.contains("    1: "), "both layers listed: \(table)")
    }

    func testEveryRankOfATensorParallelJob() throws {
        let result = try launch(topology: "topologies/tp2.yaml", "generate", args + ["--profile", "--no-fusion"])
        XCTAssertEqual(result.status, 0, "\(result)")
        for rank in 0..<2 {
            let table = try XCTUnwrap(result.stderr.components(separatedBy: "tessera: profile of rank \(rank)\n").dropFirst().first?[...],
                                      "rank \(rank) missing: \(result.stderr)")
            XCTAssertNotNil(seconds("  of which communication", in: table), "rank \(rank): \(table)")
            XCTAssertNotNil(seconds("attention RMSNorm", in: table), "unfused runs time the norm on its own")
            XCTAssertNotNil(seconds("SiLU·mul", in: table))
        }
    }
}
