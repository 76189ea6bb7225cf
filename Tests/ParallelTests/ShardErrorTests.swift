// Loading and running a shard when something is wrong: a group that does not fit the plan, a collective that fails
// inside the forward pass (the sharded linear throws, the forward pass rethrows it, nothing is committed).
import TesseraFormats
import TesseraModels
import TesseraParallel
import XCTest

/// A group whose collectives always fail, as a broken MPI link would.
final class BrokenGroup: TensorParallelGroup, @unchecked Sendable {
    struct LinkDown: Error, Equatable {}
    let rank: Int, size: Int
    init(rank: Int, size: Int) { self.rank = rank; self.size = size }
    func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws { throw LinkDown() }
    func allGather(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>, counts: [Int]) throws {
        throw LinkDown()
    }
}

final class ShardErrorTests: XCTestCase {
    func testGroupMustMatchThePlan() throws {
        let source = try ModelSource.open(path: Models.stories260KGGUF)
        let plan = try TensorParallelPlan(source: source, size: 3)
        XCTAssertThrowsError(try TensorParallel.load(source, plan: plan, group: BrokenGroup(rank: 0, size: 2))) { error in
            XCTAssertEqual("\(error)", "tensor-parallel group: group of 2 ranks (this one 0) for a plan of 3")
        }
        // a plan made for another checkpoint (other tensors) is refused
        let other = try TensorParallelPlan(source: ModelSource.open(path: Models.tinyStories), size: 2)
        XCTAssertThrowsError(try TensorParallel.load(source, plan: other, group: BrokenGroup(rank: 0, size: 2)))
    }

    /// A sharded product whose collective fails throws out of the forward pass (no NaN-poisoned outputs).
    func testFailedCollectiveIsThrown() throws {
        let source = try ModelSource.open(path: Models.stories260KGGUF)
        let model = try TensorParallel.load(source, group: BrokenGroup(rank: 1, size: 2)).model
        let cache = try model.makeCache(sequences: 1, contextLength: 8)
        XCTAssertThrowsError(try model.forward(Batch(tokens: [1, 2, 3]), cache: cache)) { error in
            XCTAssertEqual(error as? BrokenGroup.LinkDown, BrokenGroup.LinkDown())
        }
        XCTAssertEqual(cache.offset(of: 0), 0, "a failed step commits no positions")
        XCTAssertThrowsError(try model.forward(Batch(tokens: [4]), cache: cache)) { error in
            XCTAssertEqual(error as? BrokenGroup.LinkDown, BrokenGroup.LinkDown())
        }
    }
}
