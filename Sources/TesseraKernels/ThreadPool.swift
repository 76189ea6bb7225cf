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
            var job = body
            withUnsafeMutablePointer(to: &job) { pointer in
                tk_pool_run(handle, { context, task, worker in
                    context!.assumingMemoryBound(to: ((Int, Int) -> Void).self).pointee(Int(task), Int(worker))
                }, pointer, Int64(tasks))
            }
        }
    }
}
