import CMPI
import Synchronization

/// Kinds of operations the per-communicator counters distinguish.
public enum OperationKind: Int, CaseIterable, Sendable, CustomStringConvertible {
    case barrier, broadcast, allReduce, allGather, reduceScatter, gather, send, recv, sendRecv, nonBlocking, wait

    public var description: String {
        switch self {
        case .barrier: return "barrier"; case .broadcast: return "broadcast"; case .allReduce: return "all-reduce"
        case .allGather: return "all-gather"; case .reduceScatter: return "reduce-scatter"; case .gather: return "gather"
        case .send: return "send"; case .recv: return "recv"; case .sendRecv: return "sendrecv"
        case .nonBlocking: return "non-blocking start"; case .wait: return "wait"
        }
    }
}

/// Totals for one operation kind: calls, payload bytes (the operation's buffer as this rank sees it), and wall time.
public struct OperationCounter: Sendable, Equatable {
    public var calls = 0
    public var bytes = 0
    public var seconds = 0.0
}

/// Per-communicator counters that profiling reads. Written by the one thread that calls MPI on this communicator
/// with relaxed loads and stores (no lock, no read-modify-write: a few nanoseconds per operation); readable from
/// any thread. Time is kept in ticks of `tmpi_ticks` and converted when read.
public final class CommunicatorStats: Sendable {
    private final class Cell: Sendable {
        let calls = Atomic<Int>(0), bytes = Atomic<Int>(0), ticks = Atomic<Int>(0)
    }
    private let cells = OperationKind.allCases.map { _ in Cell() }
    private let clock = TickClock()

    /// Current tick count, for timing an operation.
    @inline(__always) static func ticks() -> UInt64 { tmpi_ticks() }

    @inline(__always)
    func record(_ kind: OperationKind, bytes count: Int, since start: UInt64) {
        let elapsed = Int(truncatingIfNeeded: tmpi_ticks() &- start)
        let cell = cells[kind.rawValue]
        cell.calls.store(cell.calls.load(ordering: .relaxed) &+ 1, ordering: .relaxed)
        cell.bytes.store(cell.bytes.load(ordering: .relaxed) &+ count, ordering: .relaxed)
        cell.ticks.store(cell.ticks.load(ordering: .relaxed) &+ elapsed, ordering: .relaxed)
    }

    /// The counters now, by kind (kinds never used are absent).
    public func snapshot() -> [OperationKind: OperationCounter] {
        let secondsPerTick = clock.secondsPerTick()
        var result: [OperationKind: OperationCounter] = [:]
        for kind in OperationKind.allCases {
            let cell = cells[kind.rawValue], n = cell.calls.load(ordering: .relaxed)
            if n > 0 {
                result[kind] = OperationCounter(calls: n, bytes: cell.bytes.load(ordering: .relaxed),
                                                seconds: Double(cell.ticks.load(ordering: .relaxed)) * secondsPerTick)
            }
        }
        return result
    }

    /// Seconds spent in all operations.
    public var totalSeconds: Double { snapshot().values.reduce(0) { $0 + $1.seconds } }

    /// Zeroes the counters (call from the thread that calls MPI).
    public func reset() {
        for cell in cells {
            cell.calls.store(0, ordering: .relaxed); cell.bytes.store(0, ordering: .relaxed); cell.ticks.store(0, ordering: .relaxed)
        }
    }
}

/// Converts ticks to seconds by comparing the tick counter with MPI's wall clock since this object was made.
private final class TickClock: Sendable {
    private let startTicks = tmpi_ticks()
    private let startSeconds = MPI_Wtime()

    func secondsPerTick() -> Double {
        let ticks = Double(tmpi_ticks() &- startTicks), seconds = MPI_Wtime() - startSeconds
        return ticks > 0 && seconds > 1e-3 ? seconds / ticks : 1e-9   // too soon to tell: assume 1 GHz
    }
}
