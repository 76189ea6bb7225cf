// N tensor-parallel ranks as N threads of one process: the in-process stand-in for an MPI group (tests, one host).
import Foundation

/// One rank's handle on a group of `size` threads that meet at a shared rendezvous (a barrier plus one posted
/// buffer per rank). Sums add in rank order, bit-identical to `CommunicatorGroup`. A handle is used by one thread.
public final class LocalGroup: TensorParallelGroup, @unchecked Sendable {
    public let rank: Int
    public var size: Int { rendezvous.size }
    private let rendezvous: Rendezvous
    private var sum: [Float] = []          // (count,) this rank's copy of the reduced buffer

    private init(rank: Int, rendezvous: Rendezvous) {
        self.rank = rank; self.rendezvous = rendezvous
    }

    /// Handles for ranks `0..<size` sharing one rendezvous; give handle r to the thread that runs rank r.
    /// A collective that waits longer than `timeout` seconds fails on every rank (a rank is missing).
    public static func make(size: Int, timeout: Double = 300) -> [LocalGroup] {
        let rendezvous = Rendezvous(size: max(size, 1), timeout: timeout)
        return (0..<max(size, 1)).map { LocalGroup(rank: $0, rendezvous: rendezvous) }
    }

    /// Runs `body` for every rank of a new group, each on its own thread, and returns the results in rank order.
    /// A rank that throws abandons the group, so the others' collectives fail instead of waiting; the first error
    /// thrown (the cause, not the others' failed waits) is rethrown.
    public static func run<T>(size: Int, timeout: Double = 300,
                              _ body: @escaping @Sendable (LocalGroup) throws -> T) throws -> [T] {
        let groups = make(size: size, timeout: timeout)
        let results = ResultSlots<T>(count: groups.count)
        let done = DispatchGroup()
        for group in groups {
            done.enter()
            let thread = Thread {
                do { results.set(group.rank, .success(try body(group))) } catch {
                    results.set(group.rank, .failure(error))
                    group.abandon()
                }
                done.leave()
            }
            thread.stackSize = 16 << 20
            thread.start()
        }
        done.wait()
        return try results.values()
    }

    /// Makes every pending and later collective of the whole group throw (this rank gave up).
    public func abandon() { rendezvous.abandon("rank \(rank) left the group") }

    public func allReduceSum(_ buffer: UnsafeMutableBufferPointer<Float>) throws {
        let n = buffer.count
        try rendezvous.post(rank, UnsafeRawPointer(buffer.baseAddress), count: n)
        try checkEqualCounts("all-reduce", n)
        if sum.count < n { sum = [Float](repeating: 0, count: n) }
        sum.withUnsafeMutableBufferPointer { out in
            sumInRankOrder(size, count: n, into: out.baseAddress!) { r in
                rendezvous.input(r)!.assumingMemoryBound(to: Float.self)
            }
        }
        try rendezvous.barrier(rank)        // every rank has read the inputs; now overwrite ours
        if n > 0 { sum.withUnsafeBufferPointer { buffer.baseAddress!.update(from: $0.baseAddress!, count: n) } }
    }

    public func allGather(_ input: UnsafeBufferPointer<Float>, into output: UnsafeMutableBufferPointer<Float>,
                          counts: [Int]) throws {
        guard counts.count == size, counts.allSatisfy({ $0 >= 0 }), counts[rank] == input.count,
              counts.reduce(0, +) == output.count else {
            throw fail("all-gather", "counts \(counts) do not fit an input of \(input.count) and an output of \(output.count) floats")
        }
        try rendezvous.post(rank, UnsafeRawPointer(input.baseAddress), count: input.count)
        for r in 0..<size where rendezvous.count(r) != counts[r] {
            throw fail("all-gather", "rank \(r) sent \(rendezvous.count(r)) floats, expected \(counts[r])")
        }
        var offset = 0
        for r in 0..<size {
            if counts[r] > 0 {
                (output.baseAddress! + offset).update(from: rendezvous.input(r)!.assumingMemoryBound(to: Float.self),
                                                      count: counts[r])
            }
            offset += counts[r]
        }
        try rendezvous.barrier(rank)        // every rank has copied ours before we reuse it
    }

    /// Throws unless all ranks posted `count` elements.
    private func checkEqualCounts(_ operation: String, _ count: Int) throws {
        for r in 0..<size where rendezvous.count(r) != count {
            throw fail(operation, "rank \(r) passed \(rendezvous.count(r)) floats, this rank \(count)")
        }
    }

    /// A misuse error; the group is abandoned first, so no other rank waits for this one forever.
    private func fail(_ operation: String, _ reason: String) -> TensorParallelError {
        rendezvous.abandon("rank \(rank) failed \(operation): \(reason)")
        return .collective(operation: operation, rank: rank, reason: reason)
    }
}

/// The shared meeting point: a reusable barrier and one posted (pointer, count) per rank.
/// A rank's slot is written only inside `post` (under the lock) and read by all ranks between that post's barrier
/// and the next barrier, so readers never race a writer.
final class Rendezvous: @unchecked Sendable {
    let size: Int
    private let timeout: Double
    private let lock = NSCondition()
    private var arrived = 0
    private var generation = 0
    private var failure: String?
    private let pointers: UnsafeMutablePointer<UnsafeRawPointer?>   // (size,)
    private let counts: UnsafeMutablePointer<Int>                  // (size,)

    init(size: Int, timeout: Double) {
        self.size = size; self.timeout = timeout
        pointers = .allocate(capacity: size); pointers.initialize(repeating: nil, count: size)
        counts = .allocate(capacity: size); counts.initialize(repeating: 0, count: size)
    }

    deinit { pointers.deallocate(); counts.deallocate() }

    func input(_ r: Int) -> UnsafeRawPointer? { pointers[r] }
    func count(_ r: Int) -> Int { counts[r] }

    /// Posts this rank's buffer, then waits for every rank's.
    func post(_ rank: Int, _ pointer: UnsafeRawPointer?, count: Int) throws {
        lock.lock()
        pointers[rank] = pointer; counts[rank] = count
        lock.unlock()
        try barrier(rank)
    }

    /// Waits until every rank has arrived; throws if the group was abandoned or the wait timed out.
    func barrier(_ rank: Int) throws {
        lock.lock()
        defer { lock.unlock() }
        if let failure { throw TensorParallelError.collective(operation: "barrier", rank: rank, reason: failure) }
        let mine = generation
        arrived += 1
        if arrived == size {
            arrived = 0; generation += 1
            lock.broadcast()
            return
        }
        let deadline = Date(timeIntervalSinceNow: timeout)
        while generation == mine && failure == nil {
            if !lock.wait(until: deadline) && generation == mine && failure == nil {
                failure = "timed out after \(timeout) s waiting for the other ranks"
                lock.broadcast()
            }
        }
        if generation == mine, let failure {
            throw TensorParallelError.collective(operation: "barrier", rank: rank, reason: failure)
        }
    }

    func abandon(_ reason: String) {
        lock.lock()
        if failure == nil { failure = reason }
        lock.broadcast()
        lock.unlock()
    }
}

/// Results of `LocalGroup.run`, one slot per rank, and the first error thrown by any rank.
private final class ResultSlots<T>: @unchecked Sendable {
    private var slots: [Result<T, Error>?]
    private var firstError: Error?
    private let lock = NSLock()
    init(count: Int) { slots = Array(repeating: nil, count: count) }
    func set(_ i: Int, _ value: Result<T, Error>) {
        lock.lock(); defer { lock.unlock() }
        slots[i] = value
        if case .failure(let error) = value, firstError == nil { firstError = error }
    }
    func values() throws -> [T] {
        lock.lock(); defer { lock.unlock() }
        if let firstError { throw firstError }
        return try slots.map { slot in
            guard let slot else { throw TensorParallelError.groupMismatch("a rank thread finished without a result") }
            return try slot.get()
        }
    }
}
