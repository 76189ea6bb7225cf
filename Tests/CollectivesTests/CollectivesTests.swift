import Foundation
import TesseraTestSupport
import XCTest

/// Every collective, every element type, sizes 0, 1, odd, 1 MiB and 64 MiB, under real mpirun. Each rank checks
/// the results against values it computes itself from what every peer contributed (infer-worker selftest).
final class CollectivesTests: XCTestCase {
    func selftest(ranks: Int) throws {
        let result = try launch(ranks: ranks, "selftest", ["--sizes", "0,1,1001,1m,64m"], timeout: 900)
        XCTAssertEqual(result.status, 0, "\(result)")
        XCTAssertTrue(result.stdout.contains("checks passed on \(ranks) ranks"), "\(result)")
    }

    func testOneRank() throws { try selftest(ranks: 1) }
    func testTwoRanks() throws { try selftest(ranks: 2) }
    func testThreeRanks() throws { try selftest(ranks: 3) }
    func testFourRanks() throws { try selftest(ranks: 4) }
    func testEightRanks() throws { try selftest(ranks: 8) }

    /// Without mpirun, MPI starts as a singleton: one rank.
    func testSingletonWithoutMpirun() throws {
        let result = try runProcess(Repo.executable("infer-worker"), ["selftest", "--sizes", "0,1,1001"], timeout: 120)
        XCTAssertEqual(result.status, 0, "\(result)")
        XCTAssertTrue(result.stdout.contains("checks passed on 1 ranks"), "\(result)")
    }

    /// One rank throws in the middle of a collective sequence: every rank must be gone within 10 s, non-zero, and
    /// the message must name the failing rank.
    func testFailingRankBringsTheJobDown() throws {
        let result = try launch(ranks: 4, "fault-drill", ["--fail-rank", "2", "--fail-step", "5"], timeout: 60)
        XCTAssertNotEqual(result.status, 0, "\(result)")
        XCTAssertFalse(result.timedOut, "\(result)")
        XCTAssertLessThan(result.seconds, 10, "\(result)")
        XCTAssertTrue(result.stderr.contains("tessera: rank 2 ("), "\(result)")
        XCTAssertTrue(result.stderr.contains("failing on purpose at step 5"), "\(result)")
    }
}
