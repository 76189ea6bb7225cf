// The bridge between HTTP handlers (Swift concurrency, any thread) and the scheduler, which runs on the thread
// that owns MPI (the coordinator's main thread): handlers post submissions and cancellations to an inbox and read
// their request's events from an AsyncStream; the loop drains the inbox, runs one step, and repeats, sleeping on
// a condition variable while there is nothing to do.
import Foundation
import TesseraEngine

/// What a handler hears about its request, in order: `token` per generated token (with its log-probability when
/// asked for), `text` whenever text became final, then exactly one `finished` or `failed`.
public enum EngineEvent: Sendable {
    case token(Int, TokenLogprob?)
    case text(String)
    case finished(GenerationOutput)
    /// The request was refused or the engine failed; `status` is the HTTP status to answer with.
    case failed(status: Int, message: String)
}

/// The engine's state as handlers and /metrics see it, published after every step.
public struct EngineStatus: Sendable {
    public enum Phase: Sendable { case loading, ready, draining, stopped, failed(String) }
    public var phase: Phase = .loading
    public var waiting = 0
    public var running = 0
    public var kvBlocksUsed = 0
    public var kvBlocks = 0
    public var counters = SchedulerCounters()
    public var prefixQueriedTokens = 0
    public var prefixHitTokens = 0
    /// Requests posted but not yet seen by the loop.
    public var inbox = 0
}

/// Owns the scheduler once the model is loaded; every method but `run` may be called from any thread.
public final class EngineLoop: @unchecked Sendable {
    private enum Command {
        case submit(Int, GenerationRequest, AsyncStream<EngineEvent>.Continuation, Date)
        case cancel(Int)
    }

    private let condition = NSCondition()
    // Guarded by `condition`:
    private var inbox: [Command] = []
    private var status = EngineStatus()
    private var nextID = 0
    private var stopRequested = false
    private var drainDeadline: Date?
    // Only touched by the loop's thread:
    private var scheduler: Scheduler?
    private var flights: [Int: Flight] = [:]
    private let metrics: ServerMetrics?

    /// A request in the engine: where its events go and when its tokens came.
    private struct Flight {
        let events: AsyncStream<EngineEvent>.Continuation
        let submitted: Date
        var lastToken: Date?
    }

    /// Most requests that may wait for a slot: after each step, newer ones beyond it are turned away with 429.
    private let maxQueue: Int

    public init(metrics: ServerMetrics? = nil, maxQueue: Int = .max) { self.metrics = metrics; self.maxQueue = maxQueue }

    /// A copy of the current status.
    public var snapshot: EngineStatus { condition.lock(); defer { condition.unlock() }; return status }

    /// Hands over the loaded model's scheduler; the engine becomes ready.
    public func attach(_ scheduler: Scheduler) {
        self.scheduler = scheduler
        scheduler.onToken = { [unowned self] id, token, logprob in
            let now = Date()
            if let last = flights[id]?.lastToken { metrics?.interTokenLatency.record(now.timeIntervalSince(last)) }
            flights[id]?.lastToken = now
            flights[id]?.events.yield(.token(token, logprob))
        }
        scheduler.onText = { [unowned self] id, text in flights[id]?.events.yield(.text(String(text))) }
        scheduler.onFinish = { [unowned self] id, output in
            guard let flight = flights.removeValue(forKey: id) else { return }
            metrics?.requestFinished(output, latency: Date().timeIntervalSince(flight.submitted))
            flight.events.yield(.finished(output))
            flight.events.finish()
        }
        condition.lock()
        status.phase = .ready
        status.kvBlocks = scheduler.blocks.paging.blockCount
        condition.unlock()
    }

    /// Queues a request unless the engine is not ready; a refusal (here, or 429 once more than `maxQueue`
    /// requests wait after a step) is the stream's only event.
    public func submit(_ request: GenerationRequest) -> (id: Int, events: AsyncStream<EngineEvent>) {
        let (stream, continuation) = AsyncStream<EngineEvent>.makeStream()
        condition.lock()
        defer { condition.unlock() }
        let id = nextID
        nextID += 1
        switch status.phase {
        case .ready: break
        case .loading: refuse(continuation, 503, "the model is still loading"); return (id, stream)
        case .draining, .stopped: refuse(continuation, 503, "the server is shutting down"); return (id, stream)
        case .failed(let why): refuse(continuation, 503, "the engine failed: \(why)"); return (id, stream)
        }
        inbox.append(.submit(id, request, continuation, Date()))
        status.inbox += 1
        condition.signal()
        return (id, stream)
    }

    private func refuse(_ c: AsyncStream<EngineEvent>.Continuation, _ status: Int, _ message: String) {
        c.yield(.failed(status: status, message: message))
        c.finish()
    }

    /// Ends a request (its client went away); its KV blocks are free for the next step.
    public func cancel(_ id: Int) {
        condition.lock()
        inbox.append(.cancel(id))
        condition.signal()
        condition.unlock()
    }

    /// Refuses new requests from now on; running ones may finish until `deadline`, then are cancelled.
    public func beginDrain(deadline: Date) {
        condition.lock()
        if case .ready = status.phase { status.phase = .draining }
        drainDeadline = deadline
        condition.signal()
        condition.unlock()
    }

    /// Makes `run` return once no request is left.
    public func stop() {
        condition.lock()
        if case .ready = status.phase { status.phase = .draining }
        stopRequested = true
        condition.signal()
        condition.unlock()
    }

    /// Runs steps on the calling thread (the one that owns MPI) until `stop()` and no work is left. A step's
    /// error fails every request with 503, marks the engine failed and is rethrown (the job then goes down).
    public func run() throws {
        guard let scheduler else { return }
        while true {
            condition.lock()
            while inbox.isEmpty && !scheduler.hasWork && !stopRequested { condition.wait() }
            let commands = inbox
            inbox.removeAll(keepingCapacity: true)
            status.inbox = 0
            let stopping = stopRequested, deadline = drainDeadline
            condition.unlock()

            for command in commands {
                switch command {
                case .submit(let id, let request, let events, let submitted):
                    flights[id] = Flight(events: events, submitted: submitted)
                    do { try scheduler.submit(request, id: id) } catch {
                        flights[id] = nil
                        refuse(events, 400, "\(error)")
                    }
                case .cancel(let id):
                    scheduler.cancel(id: id)
                }
            }
            if let deadline, Date() >= deadline { for id in Array(flights.keys) { scheduler.cancel(id: id) } }
            if !scheduler.hasWork {
                publish(scheduler)
                if stopping { break }
                continue
            }
            do { try scheduler.step() } catch {
                fail("\(error)")
                throw error
            }
            turnAwayOverflow(scheduler)
            publish(scheduler)
        }
        condition.lock()
        status.phase = .stopped
        condition.unlock()
    }

    /// After a step, the requests still waiting are the queue: the newest beyond `maxQueue` get 429.
    private func turnAwayOverflow(_ s: Scheduler) {
        while s.waitingCount > maxQueue, let id = s.newestWaiting {
            if let flight = flights.removeValue(forKey: id) {
                refuse(flight.events, 429, "the queue is full (\(maxQueue) requests waiting; --max-queue); retry later")
            }
            s.cancel(id: id)
        }
    }

    private func publish(_ s: Scheduler) {
        condition.lock()
        status.waiting = s.waitingCount
        status.running = s.runningCount
        status.kvBlocksUsed = s.blocks.held
        status.counters = s.counters
        status.prefixQueriedTokens = s.blocks.queriedTokens
        status.prefixHitTokens = s.blocks.hitTokens
        let snapshot = status
        condition.unlock()
        metrics?.update(snapshot)
    }

    private func fail(_ why: String) {
        condition.lock()
        status.phase = .failed(why)
        condition.unlock()
        for (_, flight) in flights { refuse(flight.events, 503, "the engine failed: \(why)") }
        flights.removeAll()
    }
}
