// The in-process group: rank-order sums identical on every rank, variable-count gathers, and misuse that fails
// every rank instead of hanging.
import Foundation
import TesseraParallel
import XCTest

final class LocalGroupTests: XCTestCase {
    /// Rank r's contribution: magnitudes chosen so that the summation order changes the float result.
    static func values(rank r: Int, count: Int) -> [Float] {
        (0..<count).map { i in
            Float(sin(Double(r) * 12.9898 + Double(i) * 78.233) * 43758.5453 * pow(10, Double(r % 4) - 2))
        }
    }

    func testAllReduceSumsInRankOrderOnEveryRank() throws {
        for size in [1, 2, 3, 5, 8] {
            let count = 37
            let results = try LocalGroup.run(size: size) { group -> [Float] in
                var buffer = Self.values(rank: group.rank, count: count)
                for _ in 0..<3 {   // reuse: each round reduces fresh inputs
                    buffer = Self.values(rank: group.rank, count: count)
                    try buffer.withUnsafeMutableBufferPointer { try group.allReduceSum($0) }
                }
                return buffer
            }
            var expected = Self.values(rank: 0, count: count)   // ((r0 + r1) + r2) + …, computed here
            for r in 1..<size { for (i, v) in Self.values(rank: r, count: count).enumerated() { expected[i] += v } }
            for (r, result) in results.enumerated() {
                XCTAssertEqual(result.map(\.bitPattern), expected.map(\.bitPattern), "size \(size) rank \(r)")
            }
            if size >= 3 {   // the order matters for these values, so the test would see a different order
                var reversed = Self.values(rank: size - 1, count: count)
                for r in (0..<size - 1).reversed() { for (i, v) in Self.values(rank: r, count: count).enumerated() { reversed[i] += v } }
                XCTAssertNotEqual(reversed, expected)
            }
        }
    }

    func testAllGatherWithVariableCounts() throws {
        let size = 4, counts = [3, 0, 5, 1]
        let results = try LocalGroup.run(size: size) { group -> [Float] in
            let mine = (0..<counts[group.rank]).map { Float(100 * group.rank + $0) }
            var out = [Float](repeating: -1, count: counts.reduce(0, +))
            try mine.withUnsafeBufferPointer { input in
                try out.withUnsafeMutableBufferPointer { try group.allGather(input, into: $0, counts: counts) }
            }
            return out
        }
        let expected: [Float] = [0, 1, 2, 200, 201, 202, 203, 204, 300]
        for result in results { XCTAssertEqual(result, expected) }
    }

    func testMismatchedCountsFailEveryRank() {
        XCTAssertThrowsError(try LocalGroup.run(size: 3, timeout: 30) { group in
            var buffer = [Float](repeating: 1, count: group.rank == 1 ? 4 : 5)
            try buffer.withUnsafeMutableBufferPointer { try group.allReduceSum($0) }
        }) { error in
            let text = "\(error)"   // whichever rank saw it first: rank 1 passed 4, the others 5
            XCTAssertTrue(text.contains("all-reduce on rank") && (text.contains("passed 4 floats, this rank 5")
                          || text.contains("passed 5 floats, this rank 4")), text)
        }
    }

    func testARankThatThrowsReleasesTheOthers() {
        struct Boom: Error {}
        XCTAssertThrowsError(try LocalGroup.run(size: 4, timeout: 30) { group in
            if group.rank == 2 { throw Boom() }
            var buffer: [Float] = [1]
            try buffer.withUnsafeMutableBufferPointer { try group.allReduceSum($0) }
        }) { error in
            XCTAssertTrue(error is Boom, "the cause, not the other ranks' failed waits: \(error)")
        }
    }
}
