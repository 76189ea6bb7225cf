import CMPI
#if canImport(Glibc)
import Glibc
#endif

/// The step watchdog: a rank that stops answering (stopped by a signal, stuck in a kernel, cut off by the network)
/// ends the job with its name instead of leaving every other rank waiting forever.
///
/// Under a watchdog, every operation of the communicators that carry it runs non-blocking and is waited on here, in
/// a loop that polls MPI. While the rank is inside a step (`arm`), a wait that lasts longer than `timeout` seconds
/// starts a census: this rank asks every rank of the world what it is doing, over a communicator of its own, and
/// gives them `grace` seconds to answer. Every waiting rank answers from its wait loop, armed or not (an idle worker
/// waiting for the next step answers too); a rank that does not answer is the one at fault. The rank then aborts
/// the job with a message naming the ranks that did not answer, their hosts, and what each other rank was waiting
/// in. Outside steps (loading, idle) waits have no deadline.
public final class Watchdog: @unchecked Sendable {
    /// Seconds a wait inside a step may last.
    public let timeout: Double
    /// Seconds the census waits for answers.
    public let grace: Double
    private let census: MPI_Comm?
    private let rank: Int
    private let hosts: [String]
    public private(set) var armed = false

    static let pingTag: Int32 = 1, answerTag: Int32 = 2
    static let answerBytes = 256

    /// Sets up the watchdog on `world` (collective: every rank calls it with the same timeout): a private
    /// communicator for the census, and every rank's host name.
    init(world: Communicator, timeout: Double) throws {
        self.timeout = timeout
        grace = min(max(timeout / 4, 0.5), 3)
        rank = world.rank
        var dup: MPI_Comm? = nil
        try check(MPI_Comm_dup(world.comm, &dup), "MPI_Comm_dup(watchdog)", rank: world.rank)
        MPI_Comm_set_errhandler(dup, tmpi_errors_return())
        census = dup
        let width = 64
        var mine = [UInt8](MPIRuntime.processorName().utf8.prefix(width - 1))
        mine += [UInt8](repeating: 0, count: width - mine.count)
        var all = [UInt8](repeating: 0, count: width * world.size)
        try mine.withUnsafeBufferPointer { i in
            try all.withUnsafeMutableBufferPointer { o in
                try check(MPI_Allgather(i.baseAddress, Int32(width), tmpi_uint8(), o.baseAddress, Int32(width), tmpi_uint8(),
                                        world.comm), "all-gather of host names (watchdog)", rank: world.rank)
            }
        }
        hosts = (0..<world.size).map { r in
            String(decoding: all[(r * width)..<((r + 1) * width)].prefix { $0 != 0 }, as: UTF8.self)
        }
    }

    deinit {
        if MPIRuntime.isActive { var c = census; MPI_Comm_free(&c) }
    }

    /// A step has started on this rank: waits from now on have a deadline.
    public func arm() { armed = true }
    /// The rank is between steps (idle, or waiting for the next one): waits have no deadline.
    public func disarm() { armed = false }

    /// Waits for `request` while answering the census; past the deadline (armed) runs the census and aborts.
    func wait(_ request: inout MPI_Request?, status: UnsafeMutablePointer<MPI_Status>?, operation: () -> String) throws {
        let start = MPIRuntime.now()
        var spins = 0
        while true {
            var flag: Int32 = 0
            try check(MPI_Test(&request, &flag, status ?? tmpi_status_ignore()), "wait for \(operation())", rank: rank)
            if flag != 0 { return }
            spins += 1
            if spins & 63 == 0 {
                answerCensus(waitingIn: operation, since: start)
                let waited = MPIRuntime.now() - start
                if armed && waited > timeout { runCensus(operation, waited: waited) }
                // an idle rank (between steps) backs off after a while instead of spinning a core
                if !armed && waited > 0.01 { usleep(waited > 1 ? 2000 : 200); continue }
            }
            if spins > 256 { sched_yield() }
        }
    }

    /// Answers every census question that has arrived: what this rank waits in, and for how long.
    private func answerCensus(waitingIn operation: () -> String, since start: Double) {
        while true {
            var flag: Int32 = 0
            var status = MPI_Status()
            guard MPI_Iprobe(tmpi_any_source(), Self.pingTag, census, &flag, &status) == 0, flag != 0 else { return }
            let asker = tmpi_status_source(&status)
            var word: Int64 = 0
            MPI_Recv(&word, 1, tmpi_int64(), asker, Self.pingTag, census, tmpi_status_ignore())
            let state = "waiting \(seconds(MPIRuntime.now() - start)) in \(operation())" + (armed ? "" : " (between steps)")
            var answer = [UInt8](state.utf8.prefix(Self.answerBytes - 1))
            answer += [UInt8](repeating: 0, count: Self.answerBytes - answer.count)
            MPI_Send(&answer, Int32(Self.answerBytes), tmpi_uint8(), asker, Self.answerTag, census)
        }
    }

    /// Asks every rank what it is doing, gives them `grace` seconds, and ends the job naming those that did not
    /// answer.
    private func runCensus(_ operation: () -> String, waited: Double) -> Never {
        let size = hosts.count
        var me = Int64(rank)
        var asks: [MPI_Request?] = []
        for r in 0..<size where r != rank {
            var request: MPI_Request? = nil
            MPI_Isend(&me, 1, tmpi_int64(), Int32(r), Self.pingTag, census, &request)
            asks.append(request)
        }
        var answers: [Int: String] = [:]
        let deadline = MPIRuntime.now() + grace
        while answers.count < size - 1 && MPIRuntime.now() < deadline {
            answerCensus(waitingIn: operation, since: deadline - grace - waited)   // another rank may run a census too
            var flag: Int32 = 0
            var status = MPI_Status()
            if MPI_Iprobe(tmpi_any_source(), Self.answerTag, census, &flag, &status) == 0, flag != 0 {
                let from = Int(tmpi_status_source(&status))
                var answer = [UInt8](repeating: 0, count: Self.answerBytes)
                MPI_Recv(&answer, Int32(Self.answerBytes), tmpi_uint8(), Int32(from), Self.answerTag, census, tmpi_status_ignore())
                answers[from] = String(decoding: answer.prefix { $0 != 0 }, as: UTF8.self)
            } else {
                usleep(1000)
            }
        }
        let silent = (0..<size).filter { $0 != rank && answers[$0] == nil }
        var message = "step watchdog: waited \(seconds(waited)) in \(operation()) (--step-timeout \(seconds(timeout))); "
        if silent.isEmpty {
            message += "every rank answered, so the job is deadlocked, not hung"
        } else {
            message += silent.map { "rank \($0) on \(hosts[$0])" }.joined(separator: ", ")
                + " did not answer within \(seconds(grace)) (stopped, stuck or cut off)"
        }
        let others = answers.keys.sorted().map { "rank \($0) on \(hosts[$0]) was \(answers[$0]!)" }
        if !others.isEmpty { message += "; " + others.joined(separator: "; ") }
        MPIRuntime.abortJob(message, code: 124)
    }
}

/// `12.3 s`.
private func seconds(_ value: Double) -> String {
    let tenths = Int((value * 10).rounded())
    return "\(tenths / 10).\(tenths % 10) s"
}

extension Communicator {
    /// This communicator with a step watchdog of `timeout` seconds (nil: none), which groups split from it inherit.
    /// Collective over this communicator (call it on the world, before any split).
    public func watched(timeout: Double?) throws -> Communicator {
        guard let timeout else { return self }
        guard timeout > 0, timeout.isFinite else {
            throw MPIError.usage("step watchdog", rank: rank, "the step timeout must be a positive number of seconds, got \(timeout)")
        }
        return Communicator(self, watchdog: try Watchdog(world: self, timeout: timeout))
    }
}
