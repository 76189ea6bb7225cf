// The machine's memory read bandwidth, measured the way decoding reads weights: every thread streams its share of
// a buffer much larger than the caches. The denominator of the roofline infer-bench reports.
import CTesseraKernels
import Foundation

public enum MemoryBandwidth {
    /// Checksum of `bytes` (a multiple of 8) read with the active level's loads; equal at every level.
    public static func read(_ buffer: UnsafeRawPointer, bytes: Int) -> UInt64 { tk_read_memory(buffer, bytes) }

    /// Best read bandwidth in bytes per second over `passes` passes of `bytes` (rounded to 4 KiB per thread), split
    /// across `threads` threads of a pool.
    public static func measure(bytes: Int, threads: Int, passes: Int = 5) -> Double {
        let pool = ThreadPool(threads: threads), share = max(4096, bytes / pool.threads / 4096 * 4096)
        let total = share * pool.threads
        let buffer = UnsafeMutableRawPointer.allocate(byteCount: total, alignment: 4096)
        defer { buffer.deallocate() }
        memset(buffer, 1, total)   // fault every page in before timing
        let sums = UnsafeMutablePointer<UInt64>.allocate(capacity: pool.threads)
        defer { sums.deallocate() }
        var best = 0.0
        for _ in 0..<max(1, passes) {
            let start = Profiler.now()
            pool.run(tasks: pool.threads, ReadJob(buffer: buffer, share: share, sums: sums))
            let seconds = Double(Profiler.now() - start) / 1e9
            best = max(best, Double(total) / seconds)
        }
        return best
    }

    private struct ReadJob: PoolJob {
        let buffer: UnsafeMutableRawPointer, share: Int, sums: UnsafeMutablePointer<UInt64>
        func run(task: Int, worker: Int) { sums[task] = tk_read_memory(buffer + task * share, share) }
    }
}
