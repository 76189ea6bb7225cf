import CMPI

/// A group of ranks that communicate: the world, or a sub-group made by `split` (a tensor-parallel group, pipeline
/// neighbours, the vision group). Buffers are contiguous typed memory; every operation throws `MPIError` on failure
/// and records calls, bytes and seconds in `stats`.
public struct Communicator: @unchecked Sendable {
    final class Handle: @unchecked Sendable {
        let comm: MPI_Comm?
        let owned: Bool
        /// The world rank of each rank of the group, for messages that name a peer.
        let worldRanks: [Int]
        init(comm: MPI_Comm?, owned: Bool, worldRanks: [Int]) { self.comm = comm; self.owned = owned; self.worldRanks = worldRanks }
        deinit {
            if owned && MPIRuntime.isActive {
                var c = comm
                MPI_Comm_free(&c)
            }
        }
    }

    let handle: Handle
    let reductions: Reductions
    /// This rank's index in the group, 0 ..< size.
    public let rank: Int
    /// Number of ranks in the group.
    public let size: Int
    /// A label for messages and profiles ("world", "tp", "pp", ...).
    public let name: String
    /// Calls, bytes and seconds per operation kind on this communicator.
    public let stats: CommunicatorStats
    /// The step watchdog that waits for this communicator's operations (nil: MPI's blocking calls).
    public let watchdog: Watchdog?

    var comm: MPI_Comm? { handle.comm }

    init(adopting comm: MPI_Comm?, name: String, reductions: Reductions, owned: Bool, watchdog: Watchdog? = nil) throws {
        var r: Int32 = 0, s: Int32 = 0
        try check(MPI_Comm_rank(comm, &r), "MPI_Comm_rank", rank: -1)
        try check(MPI_Comm_size(comm, &s), "MPI_Comm_size", rank: Int(r))
        handle = Handle(comm: comm, owned: owned, worldRanks: try Self.worldRanks(of: comm, size: Int(s), rank: Int(r)))
        self.reductions = reductions
        rank = Int(r); size = Int(s); self.name = name
        stats = CommunicatorStats(); self.watchdog = watchdog
    }

    /// The same communicator (and counters) waited on by `watchdog`.
    init(_ other: Communicator, watchdog: Watchdog) {
        handle = other.handle; reductions = other.reductions; rank = other.rank; size = other.size; name = other.name
        stats = other.stats; self.watchdog = watchdog
    }

    /// Splits this group: ranks passing the same `color` form one new group, ordered by `key` (then by rank here).
    /// Ranks passing `nil` take part in the call but join no group and get `nil` back. Collective over this group.
    public func split(color: Int?, key: Int, name: String) throws -> Communicator? {
        var newComm: MPI_Comm? = nil
        try check(MPI_Comm_split(comm, color.map { Int32($0) } ?? tmpi_undefined(), Int32(key), &newComm),
                  "MPI_Comm_split(\(name))", rank: rank)
        guard color != nil, let newComm, newComm != tmpi_comm_null() else { return nil }
        MPI_Comm_set_errhandler(newComm, tmpi_errors_return())
        return try Communicator(adopting: newComm, name: name, reductions: reductions, owned: true, watchdog: watchdog)
    }

    /// World ranks of the ranks of `comm`.
    private static func worldRanks(of comm: MPI_Comm?, size: Int, rank: Int) throws -> [Int] {
        var group: MPI_Group? = nil, worldGroup: MPI_Group? = nil
        try check(MPI_Comm_group(comm, &group), "MPI_Comm_group", rank: rank)
        try check(MPI_Comm_group(tmpi_comm_world(), &worldGroup), "MPI_Comm_group(world)", rank: rank)
        defer { MPI_Group_free(&group); MPI_Group_free(&worldGroup) }
        var mine = (0..<Int32(size)).map { $0 }, theirs = [Int32](repeating: 0, count: size)
        try check(MPI_Group_translate_ranks(group, Int32(size), &mine, worldGroup, &theirs), "MPI_Group_translate_ranks", rank: rank)
        return theirs.map(Int.init)
    }

    /// `peer` of this group as messages name it: its world rank, and its rank here when that differs.
    func describe(peer: Int) -> String {
        let world = peer >= 0 && peer < size ? handle.worldRanks[peer] : peer
        return world == peer ? "rank \(peer) on \(name)" : "rank \(world) (\(name) rank \(peer))"
    }

    /// This group as messages name it: its name and its members' world ranks.
    var label: String {
        handle.worldRanks == Array(0..<size) ? name : "\(name) (ranks \(handle.worldRanks.map(String.init).joined(separator: ", ")))"
    }

    /// Runs a blocking operation: MPI's blocking call, or under a watchdog its non-blocking twin, waited on there.
    @inline(__always)
    private func perform(_ operation: @autoclosure () -> String, status: UnsafeMutablePointer<MPI_Status>? = nil,
                         _ blocking: () -> Int32, _ nonBlocking: (UnsafeMutablePointer<MPI_Request?>) -> Int32) throws {
        guard let watchdog else { return try check(blocking(), operation(), rank: rank) }
        var request: MPI_Request? = nil
        try check(nonBlocking(&request), operation(), rank: rank)
        try watchdog.wait(&request, status: status, operation: operation)
    }

    // MARK: - Blocking collectives

    public func barrier() throws {
        let start = CommunicatorStats.ticks()
        try perform("barrier on \(label)", { MPI_Barrier(comm) }, { MPI_Ibarrier(comm, $0) })
        stats.record(.barrier, bytes: 0, since: start)
    }

    /// Copies `root`'s buffer into every rank's buffer (all ranks pass the same count).
    public func broadcast<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws {
        try validatePeer(root, "broadcast")
        let count = try mpiCount(buffer.count, "broadcast")
        let start = CommunicatorStats.ticks()
        try perform("broadcast from \(describe(peer: root))", { MPI_Bcast(buffer.baseAddress, count, T.mpiDatatype, Int32(root), comm) },
                    { MPI_Ibcast(buffer.baseAddress, count, T.mpiDatatype, Int32(root), comm, $0) })
        stats.record(.broadcast, bytes: buffer.count * MemoryLayout<T>.stride, since: start)
    }

    /// Reduces every rank's buffer element-wise with `op`, in place; all ranks end with the result.
    public func allReduce<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp) throws {
        let count = try mpiCount(buffer.count, "all-reduce")
        let start = CommunicatorStats.ticks()
        let mpiOp = reductions.mpiOp(op, kind: T.kind)
        try perform("all-reduce(\(op)) on \(label)",
                    { MPI_Allreduce(tmpi_in_place(), buffer.baseAddress, count, T.mpiDatatype, mpiOp, comm) },
                    { MPI_Iallreduce(tmpi_in_place(), buffer.baseAddress, count, T.mpiDatatype, mpiOp, comm, $0) })
        stats.record(.allReduce, bytes: buffer.count * MemoryLayout<T>.stride, since: start)
    }

    /// Reduces `input` from every rank into `output` (same count) on every rank.
    public func allReduce<T: MPIScalar>(_ input: UnsafeBufferPointer<T>, into output: UnsafeMutableBufferPointer<T>,
                                        op: ReduceOp) throws {
        guard input.count == output.count else {
            throw MPIError.usage("all-reduce on \(name)", rank: rank, "input has \(input.count) elements, output \(output.count)")
        }
        let count = try mpiCount(input.count, "all-reduce")
        let start = CommunicatorStats.ticks()
        let mpiOp = reductions.mpiOp(op, kind: T.kind)
        try perform("all-reduce(\(op)) on \(label)",
                    { MPI_Allreduce(input.baseAddress, output.baseAddress, count, T.mpiDatatype, mpiOp, comm) },
                    { MPI_Iallreduce(input.baseAddress, output.baseAddress, count, T.mpiDatatype, mpiOp, comm, $0) })
        stats.record(.allReduce, bytes: input.count * MemoryLayout<T>.stride, since: start)
    }

    /// Concatenates every rank's `input` (equal counts) into `output`, in rank order, on every rank.
    public func allGather<T: MPIScalar>(_ input: UnsafeBufferPointer<T>, into output: UnsafeMutableBufferPointer<T>) throws {
        guard output.count == input.count * size else {
            throw MPIError.usage("all-gather on \(label)", rank: rank,
                                 "output has \(output.count) elements, expected \(input.count) × \(size) ranks")
        }
        let count = try mpiCount(input.count, "all-gather")
        let start = CommunicatorStats.ticks()
        try perform("all-gather on \(label)",
                    { MPI_Allgather(input.baseAddress, count, T.mpiDatatype, output.baseAddress, count, T.mpiDatatype, comm) },
                    { MPI_Iallgather(input.baseAddress, count, T.mpiDatatype, output.baseAddress, count, T.mpiDatatype, comm, $0) })
        stats.record(.allGather, bytes: output.count * MemoryLayout<T>.stride, since: start)
    }

    /// Concatenates every rank's `input` into `output` in rank order, where rank r contributes `counts[r]` elements.
    public func allGather<T: MPIScalar>(_ input: UnsafeBufferPointer<T>, into output: UnsafeMutableBufferPointer<T>,
                                        counts: [Int]) throws {
        let (mpiCounts, displacements) = try layout(counts, total: output.count, mine: input.count, "all-gather(v)")
        let start = CommunicatorStats.ticks()
        try perform("all-gather(v) on \(label)",
                    { MPI_Allgatherv(input.baseAddress, Int32(input.count), T.mpiDatatype, output.baseAddress,
                                     mpiCounts, displacements, T.mpiDatatype, comm) },
                    { MPI_Iallgatherv(input.baseAddress, Int32(input.count), T.mpiDatatype, output.baseAddress,
                                      mpiCounts, displacements, T.mpiDatatype, comm, $0) })
        stats.record(.allGather, bytes: output.count * MemoryLayout<T>.stride, since: start)
    }

    /// Reduces `input` (the same count on every rank) with `op` and scatters the result: rank r receives the
    /// `counts[r]` elements that start at the sum of the counts before it.
    public func reduceScatter<T: MPIScalar>(_ input: UnsafeBufferPointer<T>, into output: UnsafeMutableBufferPointer<T>,
                                            counts: [Int], op: ReduceOp) throws {
        let (mpiCounts, _) = try layout(counts, total: input.count, mine: output.count, "reduce-scatter")
        let start = CommunicatorStats.ticks()
        let mpiOp = reductions.mpiOp(op, kind: T.kind)
        try perform("reduce-scatter(\(op)) on \(label)",
                    { MPI_Reduce_scatter(input.baseAddress, output.baseAddress, mpiCounts, T.mpiDatatype, mpiOp, comm) },
                    { MPI_Ireduce_scatter(input.baseAddress, output.baseAddress, mpiCounts, T.mpiDatatype, mpiOp, comm, $0) })
        stats.record(.reduceScatter, bytes: input.count * MemoryLayout<T>.stride, since: start)
    }

    /// Reduce-scatter in equal blocks: `input.count == output.count × size`.
    public func reduceScatter<T: MPIScalar>(_ input: UnsafeBufferPointer<T>, into output: UnsafeMutableBufferPointer<T>,
                                            op: ReduceOp) throws {
        guard input.count == output.count * size else {
            throw MPIError.usage("reduce-scatter on \(name)", rank: rank,
                                 "input has \(input.count) elements, expected \(output.count) × \(size) ranks")
        }
        let count = try mpiCount(output.count, "reduce-scatter")
        let start = CommunicatorStats.ticks()
        let mpiOp = reductions.mpiOp(op, kind: T.kind)
        try perform("reduce-scatter(\(op)) on \(label)",
                    { MPI_Reduce_scatter_block(input.baseAddress, output.baseAddress, count, T.mpiDatatype, mpiOp, comm) },
                    { MPI_Ireduce_scatter_block(input.baseAddress, output.baseAddress, count, T.mpiDatatype, mpiOp, comm, $0) })
        stats.record(.reduceScatter, bytes: input.count * MemoryLayout<T>.stride, since: start)
    }

    /// Concatenates every rank's `input` (equal counts) into `output` on `root`; other ranks pass `output: nil`.
    public func gather<T: MPIScalar>(_ input: UnsafeBufferPointer<T>, into output: UnsafeMutableBufferPointer<T>?,
                                     root: Int) throws {
        try validatePeer(root, "gather")
        if rank == root {
            guard let output, output.count == input.count * size else {
                throw MPIError.usage("gather on \(name)", rank: rank,
                                     "root's output must hold \(input.count) × \(size) elements, has \(output?.count ?? 0)")
            }
        }
        let count = try mpiCount(input.count, "gather")
        let start = CommunicatorStats.ticks()
        try perform("gather to \(describe(peer: root))",
                    { MPI_Gather(input.baseAddress, count, T.mpiDatatype, output?.baseAddress, count, T.mpiDatatype, Int32(root), comm) },
                    { MPI_Igather(input.baseAddress, count, T.mpiDatatype, output?.baseAddress, count, T.mpiDatatype, Int32(root), comm, $0) })
        stats.record(.gather, bytes: input.count * MemoryLayout<T>.stride, since: start)
    }

    /// Gathers `counts[r]` elements from each rank r into `output` on `root` (rank order); others pass `output: nil`.
    public func gather<T: MPIScalar>(_ input: UnsafeBufferPointer<T>, into output: UnsafeMutableBufferPointer<T>?,
                                     counts: [Int], root: Int) throws {
        try validatePeer(root, "gather(v)")
        let (mpiCounts, displacements) = try layout(counts, total: rank == root ? (output?.count ?? -1) : counts.reduce(0, +),
                                                    mine: input.count, "gather(v)")
        let start = CommunicatorStats.ticks()
        try perform("gather(v) to \(describe(peer: root))",
                    { MPI_Gatherv(input.baseAddress, Int32(input.count), T.mpiDatatype, output?.baseAddress, mpiCounts,
                                  displacements, T.mpiDatatype, Int32(root), comm) },
                    { MPI_Igatherv(input.baseAddress, Int32(input.count), T.mpiDatatype, output?.baseAddress, mpiCounts,
                                   displacements, T.mpiDatatype, Int32(root), comm, $0) })
        stats.record(.gather, bytes: input.count * MemoryLayout<T>.stride, since: start)
    }

    // MARK: - Point to point

    public func send<T: MPIScalar>(_ buffer: UnsafeBufferPointer<T>, to peer: Int, tag: Int = 0) throws {
        try validatePeer(peer, "send")
        let count = try mpiCount(buffer.count, "send")
        let start = CommunicatorStats.ticks()
        try perform("send to \(describe(peer: peer))", { MPI_Send(buffer.baseAddress, count, T.mpiDatatype, Int32(peer), Int32(tag), comm) },
                    { MPI_Isend(buffer.baseAddress, count, T.mpiDatatype, Int32(peer), Int32(tag), comm, $0) })
        stats.record(.send, bytes: buffer.count * MemoryLayout<T>.stride, since: start)
    }

    /// Receives exactly `buffer.count` elements from `peer`; a message of another length is an error.
    public func recv<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, from peer: Int, tag: Int = 0) throws {
        try validatePeer(peer, "recv")
        let count = try mpiCount(buffer.count, "recv")
        var status = MPI_Status()
        let start = CommunicatorStats.ticks()
        try withUnsafeMutablePointer(to: &status) { st in
            try perform("recv from \(describe(peer: peer))", status: st,
                        { MPI_Recv(buffer.baseAddress, count, T.mpiDatatype, Int32(peer), Int32(tag), comm, st) },
                        { MPI_Irecv(buffer.baseAddress, count, T.mpiDatatype, Int32(peer), Int32(tag), comm, $0) })
        }
        try checkReceived(&status, expected: count, T.self, "recv from \(peer)")
        stats.record(.recv, bytes: buffer.count * MemoryLayout<T>.stride, since: start)
    }

    /// Sends to one peer and receives from another in one step, so ring and pipeline exchanges cannot deadlock.
    public func sendRecv<T: MPIScalar>(_ output: UnsafeBufferPointer<T>, to destination: Int, sendTag: Int = 0,
                                       receiving input: UnsafeMutableBufferPointer<T>, from source: Int, recvTag: Int = 0) throws {
        try validatePeer(destination, "sendrecv"); try validatePeer(source, "sendrecv")
        let sendCount = try mpiCount(output.count, "sendrecv"), recvCount = try mpiCount(input.count, "sendrecv")
        var status = MPI_Status()
        let start = CommunicatorStats.ticks()
        if let watchdog {   // both halves non-blocking, waited on by the watchdog
            var receive: MPI_Request? = nil, send: MPI_Request? = nil
            let operation = { "sendrecv to \(describe(peer: destination)) and from \(describe(peer: source))" }
            try check(MPI_Irecv(input.baseAddress, recvCount, T.mpiDatatype, Int32(source), Int32(recvTag), comm, &receive),
                      operation(), rank: rank)
            try check(MPI_Isend(output.baseAddress, sendCount, T.mpiDatatype, Int32(destination), Int32(sendTag), comm, &send),
                      operation(), rank: rank)
            try watchdog.wait(&send, status: nil, operation: operation)
            try watchdog.wait(&receive, status: &status, operation: operation)
        } else {
            try check(MPI_Sendrecv(output.baseAddress, sendCount, T.mpiDatatype, Int32(destination), Int32(sendTag),
                                   input.baseAddress, recvCount, T.mpiDatatype, Int32(source), Int32(recvTag), comm, &status),
                      "sendrecv to \(describe(peer: destination)) and from \(describe(peer: source))", rank: rank)
        }
        try checkReceived(&status, expected: recvCount, T.self, "sendrecv from \(source)")
        stats.record(.sendRecv, bytes: (output.count + input.count) * MemoryLayout<T>.stride, since: start)
    }

    // MARK: - Non-blocking

    /// Starts sending `buffer`; it must stay alive and unchanged until the request completes.
    public func isend<T: MPIScalar>(_ buffer: UnsafeBufferPointer<T>, to peer: Int, tag: Int = 0) throws -> Request {
        try validatePeer(peer, "isend")
        let count = try mpiCount(buffer.count, "isend")
        var request: MPI_Request? = nil
        try check(MPI_Isend(buffer.baseAddress, count, T.mpiDatatype, Int32(peer), Int32(tag), comm, &request),
                  "isend to \(describe(peer: peer))", rank: rank)
        stats.record(.nonBlocking, bytes: buffer.count * MemoryLayout<T>.stride, since: CommunicatorStats.ticks())
        return Request(request, operation: "isend to \(describe(peer: peer))", communicator: self)
    }

    /// Starts receiving into `buffer`; it must stay alive and untouched until the request completes.
    public func irecv<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, from peer: Int, tag: Int = 0) throws -> Request {
        try validatePeer(peer, "irecv")
        let count = try mpiCount(buffer.count, "irecv")
        var request: MPI_Request? = nil
        try check(MPI_Irecv(buffer.baseAddress, count, T.mpiDatatype, Int32(peer), Int32(tag), comm, &request),
                  "irecv from \(describe(peer: peer))", rank: rank)
        stats.record(.nonBlocking, bytes: buffer.count * MemoryLayout<T>.stride, since: CommunicatorStats.ticks())
        return Request(request, operation: "irecv from \(describe(peer: peer))", communicator: self)
    }

    /// Starts a broadcast of `root`'s buffer (every rank of the communicator starts the same broadcasts in the same
    /// order; a blocking `broadcast` does not match it). `buffer` must stay alive until the request completes.
    public func ibroadcast<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, root: Int) throws -> Request {
        try validatePeer(root, "ibroadcast")
        let count = try mpiCount(buffer.count, "ibroadcast")
        var request: MPI_Request? = nil
        try check(MPI_Ibcast(buffer.baseAddress, count, T.mpiDatatype, Int32(root), comm, &request),
                  "ibroadcast on \(name)", rank: rank)
        stats.record(.nonBlocking, bytes: buffer.count * MemoryLayout<T>.stride, since: CommunicatorStats.ticks())
        return Request(request, operation: "ibroadcast from \(describe(peer: root))", communicator: self)
    }

    /// Starts an in-place all-reduce; `buffer` must stay alive and untouched until the request completes.
    public func iallReduce<T: MPIScalar>(_ buffer: UnsafeMutableBufferPointer<T>, op: ReduceOp) throws -> Request {
        let count = try mpiCount(buffer.count, "iallreduce")
        var request: MPI_Request? = nil
        try check(MPI_Iallreduce(tmpi_in_place(), buffer.baseAddress, count, T.mpiDatatype,
                                 reductions.mpiOp(op, kind: T.kind), comm, &request), "iallreduce(\(op)) on \(label)", rank: rank)
        stats.record(.nonBlocking, bytes: buffer.count * MemoryLayout<T>.stride, since: CommunicatorStats.ticks())
        return Request(request, operation: "iallreduce(\(op)) on \(label)", communicator: self)
    }

    // MARK: - Checks

    func validatePeer(_ peer: Int, _ operation: String) throws {
        guard peer >= 0 && peer < size else {
            throw MPIError.usage("\(operation) on \(label)", rank: rank, "peer rank \(peer) is outside 0..<\(size)")
        }
    }

    func mpiCount(_ count: Int, _ operation: String) throws -> Int32 {
        guard count <= Int(Int32.max) else {
            throw MPIError.usage("\(operation) on \(label)", rank: rank, "\(count) elements exceed MPI's 32-bit count")
        }
        return Int32(count)
    }

    /// MPI counts and displacements for a variable-count operation, checked against the buffers.
    private func layout(_ counts: [Int], total: Int, mine: Int, _ operation: String) throws -> ([Int32], [Int32]) {
        guard counts.count == size else {
            throw MPIError.usage("\(operation) on \(label)", rank: rank, "\(counts.count) counts given for \(size) ranks")
        }
        guard counts.allSatisfy({ $0 >= 0 }), counts.reduce(0, +) == total, counts[rank] == mine,
              counts.reduce(0, +) <= Int(Int32.max) else {
            throw MPIError.usage("\(operation) on \(label)", rank: rank,
                                 "counts \(counts) do not fit buffers of \(mine) (this rank) and \(total) (total) elements")
        }
        var displacements = [Int32](), offset = 0
        for c in counts { displacements.append(Int32(offset)); offset += c }
        return (counts.map { Int32($0) }, displacements)
    }

    @inline(__always)
    private func checkReceived<T: MPIScalar>(_ status: inout MPI_Status, expected: Int32, _: T.Type, _ operation: @autoclosure () -> String) throws {
        let bytes = tmpi_status_bytes(&status)
        guard bytes == Int64(expected) * Int64(MemoryLayout<T>.stride) else {
            throw MPIError.usage("\(operation()) on \(label)", rank: rank,
                                 "expected \(expected) elements, received \(bytes / Int64(MemoryLayout<T>.stride))")
        }
    }
}

/// An operation in flight. Wait for it (or test it) before touching its buffer; a request dropped unfinished is
/// waited for in deinit, so no buffer is released under MPI's feet.
public final class Request: @unchecked Sendable {
    private var request: MPI_Request?
    private let operation: String
    private let communicator: Communicator

    init(_ request: MPI_Request?, operation: String, communicator: Communicator) {
        self.request = request; self.operation = operation; self.communicator = communicator
    }

    public var isComplete: Bool { request == nil || request == tmpi_request_null() }

    /// Blocks until the operation completes.
    public func wait() throws {
        guard !isComplete else { return }
        let start = CommunicatorStats.ticks()
        if let watchdog = communicator.watchdog {
            try watchdog.wait(&request, status: nil) { operation }
        } else {
            try check(MPI_Wait(&request, tmpi_status_ignore()), "wait for \(operation)", rank: communicator.rank)
        }
        request = nil
        communicator.stats.record(.wait, bytes: 0, since: start)
    }

    /// Returns whether the operation has completed, without blocking (it progresses MPI).
    public func test() throws -> Bool {
        guard !isComplete else { return true }
        var flag: Int32 = 0
        try check(MPI_Test(&request, &flag, tmpi_status_ignore()), "test of \(operation)", rank: communicator.rank)
        if flag != 0 { request = nil }
        return flag != 0
    }

    /// Waits for all `requests`.
    public static func waitAll(_ requests: [Request]) throws {
        for r in requests { try r.wait() }
    }

    deinit {
        if !isComplete && MPIRuntime.isActive { MPI_Wait(&request, tmpi_status_ignore()) }
    }
}
