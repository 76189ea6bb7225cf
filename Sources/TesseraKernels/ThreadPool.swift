// Persistent worker threads that products split their rows across (the pool itself is C: CTesseraKernels/pool.c).
import CTesseraKernels

/// `threads` threads in all: the caller of `run` plus `threads − 1` workers created once. Between jobs the workers
/// spin for about 2 ms, then park on a condition variable; no thread is created per operation.
public final class ThreadPool: @unchecked Sendable {
    /// Threads that run a job, the caller included (fewer than asked if the system refused to create some).
    public let threads: Int
    private let handle: OpaquePointer?

    /// - Parameter threads: clamped to at least 1; 1 runs every job inline on the caller.
    public init(threads: Int) {
        let count = Int32(clamping: max(1, threads))
        handle = count > 1 ? tk_pool_create(count) : nil
        self.threads = handle.map { Int(tk_pool_threads($0)) } ?? 1
    }

    deinit { if let handle { tk_pool_destroy(handle) } }

    /// Calls `body(task, worker)` for every task in `0..<tasks` across the pool and returns when all are done.
    /// `worker` is in `0..<threads` and no two tasks running at the same time share it (index per-thread scratch
    /// with it). Jobs from several threads are serialised; a `run` from inside a task runs inline.
    public func run(tasks: Int, _ body: (_ task: Int, _ worker: Int) -> Void) {
        guard tasks > 0 else { return }
        guard let handle else {
            for t in 0..<tasks { body(t, 0) }
            return
        }
        withoutActuallyEscaping(body) { body in
            // The closure travels inside a struct: a bare closure passed through a generic pointer would be
            // re-abstracted, which allocates a thunk context on every job.
            var job = Job(body: body)
            withUnsafeMutablePointer(to: &job) { pointer in
                tk_pool_run(handle, { context, task, worker in
                    context!.assumingMemoryBound(to: Job.self).pointee.body(Int(task), Int(worker))
                }, pointer, Int64(tasks))
            }
        }
    }

    private struct Job {
        let body: (Int, Int) -> Void
    }

    /// Runs `job.run(task:worker:)` for every task in `0..<tasks`, like `run(tasks:_:)`, without allocating: the job
    /// is a value the caller builds on its stack, reached by the workers through a pointer. Hot paths (every product
    /// and attention of a decode step) use this form; a closure converted for the C pool would be heap-allocated.
    public func run<Job: PoolJob>(tasks: Int, _ job: Job) {
        guard tasks > 0 else { return }
        guard let handle else {
            for t in 0..<tasks { job.run(task: t, worker: 0) }
            return
        }
        withUnsafePointer(to: job) { pointer in
            // one word of payload: stored inline in the existential, no box
            var erased: any PoolJobReference = JobReference(pointer: pointer)
            withUnsafeMutablePointer(to: &erased) { context in
                tk_pool_run(handle, { context, task, worker in
                    context!.assumingMemoryBound(to: (any PoolJobReference).self).pointee.run(task: Int(task),
                                                                                            worker: Int(worker))
                }, context, Int64(tasks))
            }
        }
    }
}

/// Work split into tasks for `ThreadPool.run(tasks:_:)`: `run` is called once per task, on any thread, with a
/// `worker` index unique among the tasks running at the same time.
public protocol PoolJob {
    func run(task: Int, worker: Int)
}

private protocol PoolJobReference {
    func run(task: Int, worker: Int)
}

private struct JobReference<Job: PoolJob>: PoolJobReference {
    let pointer: UnsafePointer<Job>
    func run(task: Int, worker: Int) { pointer.pointee.run(task: task, worker: worker) }
}
