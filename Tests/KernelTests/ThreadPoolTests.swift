// The persistent pool: every task once, worker indices in range, reuse and parking, nesting, and products identical
// for 1...4 threads in both modes.
import TesseraFormats
import TesseraKernels
import XCTest

final class ThreadPoolTests: XCTestCase {
    func testEveryTaskRunsOnceAcrossManyJobs() {
        for threads in 1...4 {
            let pool = ThreadPool(threads: threads)
            XCTAssertEqual(pool.threads, threads)
            let tasks = 37
            let hits = UnsafeMutablePointer<Int>.allocate(capacity: tasks)
            let workers = UnsafeMutablePointer<Int>.allocate(capacity: tasks)
            defer { hits.deallocate(); workers.deallocate() }
            for job in 0..<300 {
                hits.initialize(repeating: 0, count: tasks)
                pool.run(tasks: tasks) { t, worker in hits[t] += 1; workers[t] = worker }
                for t in 0..<tasks {
                    XCTAssertEqual(hits[t], 1, "threads \(threads) job \(job) task \(t)")
                    XCTAssertTrue((0..<threads).contains(workers[t]))
                }
            }
        }
    }

    func testWorkersWakeAfterParking() {
        let pool = ThreadPool(threads: 3)
        var sum = [Int](repeating: 0, count: 8)
        for round in 1...3 {
            Thread.sleep(forTimeInterval: 0.01)   // longer than the spin: workers park
            sum.withUnsafeMutableBufferPointer { s in pool.run(tasks: 8) { t, _ in s[t] += t * round } }
        }
        XCTAssertEqual(sum, (0..<8).map { $0 * 6 })
    }

    func testNestedRunIsInline() {
        let pool = ThreadPool(threads: 2)
        let cells = UnsafeMutablePointer<Int>.allocate(capacity: 16)
        defer { cells.deallocate() }
        cells.initialize(repeating: 0, count: 16)
        pool.run(tasks: 4) { t, worker in
            pool.run(tasks: 4) { u, inner in
                XCTAssertEqual(inner, worker)
                cells[t * 4 + u] += 1
            }
        }
        XCTAssertEqual((0..<16).map { cells[$0] }, [Int](repeating: 1, count: 16))
    }

    func testProductsIdenticalForOneToFourThreads() throws {
        let rows = 150, cols = 576, n = 3
        for type in [GGMLType.q4_1, .q8_0, .f32] {
            let w = Weights(type, rows: rows, cols: cols, seed: 31)
            let x = activations(n: n, cols: cols, stride: cols, seed: 32)
            try w.withMatrix { m in
                for mode in [ComputeMode.exact, .fast] {
                    let one = product(m, x, n: n, xStride: cols, mode: mode)
                    for threads in 2...4 {
                        let y = product(m, x, n: n, xStride: cols, mode: mode, pool: ThreadPool(threads: threads))
                        XCTAssertEqual(y.map(\.bitPattern), one.map(\.bitPattern), "\(type) \(mode) \(threads) threads")
                    }
                }
            }
        }
    }
}
