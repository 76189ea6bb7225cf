import ArgumentParser
import Foundation
import TesseraCollectives

/// `infer-bench collectives`: latency and bandwidth of all-reduce, all-gather, broadcast and sendrecv through
/// Tessera's `Communicator`, beside the same operation issued directly through the MPI C API on the same buffers,
/// alternating the two in every round. Run it under mpirun with any number of ranks (launch/tessera --ranks N bench collectives).
struct CollectivesBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "collectives", abstract: "Swift collectives vs raw MPI, sizes 4 B to 64 MiB.")

    @Option(help: "Smallest message in bytes (k/m suffixes allowed).") var from = "4"
    @Option(help: "Largest message in bytes.") var to = "64m"
    @Option(help: "Size step factor.") var step = 4
    @Option(help: "Rounds per size and operation (median reported).") var rounds = 15
    @Option(help: "Target seconds per timed batch.") var batchSeconds = 0.03
    @Option(help: "CSV output file (written by rank 0).") var csv = "collectives.csv"

    func run() throws {
        let runtime = try MPIRuntime.initialize()
        defer { runtime.finalize() }
        do { try benchmark(runtime.world) } catch { MPIRuntime.abortJob("\(error)") }
    }

    enum Operation: String, CaseIterable { case allReduce = "all-reduce", allGather = "all-gather", broadcast, sendRecv = "sendrecv" }

    private func benchmark(_ world: Communicator) throws {
        var sizes: [Int] = []
        var s = max(4, try parseBytes(from))
        let last = try parseBytes(to)
        while s <= last { sizes.append(s); s *= max(step, 2) }
        let maxFloats = (sizes.last ?? 4) / 4
        var a = [Float](repeating: 1, count: maxFloats * max(world.size, 1))
        var b = [Float](repeating: 0, count: maxFloats * max(world.size, 1))
        var rows: [Row] = []
        if world.rank == 0 {
            print("infer-bench collectives: \(world.size) ranks, host \(MPIRuntime.processorName()); median of \(rounds) rounds, Swift and raw C API alternating; ratio = median of per-round Swift/raw")
            print(Row.header)
        }
        for op in Operation.allCases {
            for bytes in sizes {
                let n = bytes / 4
                let row = try a.withUnsafeMutableBufferPointer { a in
                    try b.withUnsafeMutableBufferPointer { b in
                        try measure(op, n: n, a: a, b: b, world)
                    }
                }
                rows.append(row)
                if world.rank == 0 { print(row.line); fflush(stdout) }
            }
        }
        if world.rank == 0 {
            let text = Row.csvHeader + "\n" + rows.map(\.csv).joined(separator: "\n") + "\n"
            try text.write(toFile: csv, atomically: true, encoding: .utf8)
            let worst = rows.filter { $0.bytes >= 1024 }.map(\.ratio).max() ?? 0
            print(String(format: "worst Swift/raw time ratio at sizes >= 1 KiB: %.3f (goal <= 1.05); CSV: %@", worst, csv))
        }
    }

    /// One (operation, size): the median over rounds of the slowest rank's time per call, for both paths.
    private func measure(_ op: Operation, n: Int, a: UnsafeMutableBufferPointer<Float>, b: UnsafeMutableBufferPointer<Float>,
                         _ world: Communicator) throws -> Row {
        let input = UnsafeBufferPointer(rebasing: a[0..<n]), output = UnsafeMutableBufferPointer(rebasing: b[0..<n])
        let gathered = UnsafeMutableBufferPointer(rebasing: b[0..<(n * world.size)])
        let inPlace = UnsafeMutableBufferPointer(rebasing: a[0..<n])
        let next = (world.rank + 1) % world.size, prev = (world.rank - 1 + world.size) % world.size
        func swiftCall() throws {
            switch op {
            case .allReduce: try world.allReduce(inPlace, op: .sum)
            case .allGather: try world.allGather(input, into: gathered)
            case .broadcast: try world.broadcast(inPlace, root: 0)
            case .sendRecv: try world.sendRecv(input, to: next, receiving: output, from: prev)
            }
        }
        func rawCall() {
            switch op {
            case .allReduce: RawMPI.allReduceSum(inPlace, world)
            case .allGather: RawMPI.allGather(input, gathered, world)
            case .broadcast: RawMPI.broadcast(inPlace, root: 0, world)
            case .sendRecv: RawMPI.sendRecv(input, to: next, output, from: prev, world)
            }
        }
        // Calibrate the batch length on rank 0's timing, shared so every rank runs the same number of calls.
        // Warm up, then grow a batch until it lasts a quarter of the target.
        for _ in 0..<3 { try swiftCall(); rawCall() }
        var calibration = 1, elapsed = [0.0]
        var t0 = 0.0
        while true {
            try world.barrier()
            t0 = MPIRuntime.now()
            for _ in 0..<calibration { try swiftCall() }
            elapsed = [MPIRuntime.now() - t0]
            try elapsed.withUnsafeMutableBufferPointer { try world.allReduce($0, op: .max) }
            if elapsed[0] >= batchSeconds / 4 || calibration >= 100_000 { break }
            calibration *= 4
        }
        let iterations = max(1, min(100_000, Int(batchSeconds / (elapsed[0] / Double(calibration)))))

        var swiftTimes: [Double] = [], rawTimes: [Double] = []
        for round in 0..<rounds {
            for path in (round % 2 == 0 ? [0, 1] : [1, 0]) {
                try world.barrier()
                t0 = MPIRuntime.now()
                if path == 0 { for _ in 0..<iterations { try swiftCall() } } else { for _ in 0..<iterations { rawCall() } }
                var t = [(MPIRuntime.now() - t0) / Double(iterations)]
                try t.withUnsafeMutableBufferPointer { try world.allReduce($0, op: .max) }
                if path == 0 { swiftTimes.append(t[0]) } else { rawTimes.append(t[0]) }
            }
        }
        // The ratio pairs each round's two batches (run back to back), so drift between rounds cancels.
        let ratios = zip(swiftTimes, rawTimes).map { $1 > 0 ? $0 / $1 : 1 }
        return Row(op: op.rawValue, bytes: n * 4, ranks: world.size, iterations: iterations,
                   swift: median(swiftTimes), raw: median(rawTimes), ratio: median(ratios))
    }

    struct Row {
        let op: String, bytes: Int, ranks: Int, iterations: Int, swift: Double, raw: Double
        /// Median over rounds of (Swift time / raw time) within the round.
        let ratio: Double
        /// Algorithm bandwidth: message bytes per second.
        var gbps: Double { swift > 0 ? Double(bytes) / swift / 1e9 : 0 }
        static let header = "operation      bytes      swift µs    raw µs   swift/raw   swift GB/s   calls/batch"
        var line: String {
            String(format: "%-11@ %8@ %10.2f %10.2f %9.3f %12.3f %11d", op as NSString, humanBytes(bytes) as NSString,
                   swift * 1e6, raw * 1e6, ratio, gbps, iterations)
        }
        static let csvHeader = "operation,bytes,ranks,swift_us,raw_us,ratio,swift_GBps,calls_per_batch"
        var csv: String {
            String(format: "%@,%ld,%d,%.3f,%.3f,%.4f,%.4f,%d", op as NSString, bytes, ranks, swift * 1e6, raw * 1e6, ratio, gbps, iterations)
        }
    }
}

func median(_ values: [Double]) -> Double {
    let s = values.sorted()
    guard !s.isEmpty else { return 0 }
    return s.count % 2 == 1 ? s[s.count / 2] : (s[s.count / 2 - 1] + s[s.count / 2]) / 2
}

func humanBytes(_ n: Int) -> String {
    n >= 1 << 20 ? "\(n >> 20) MiB" : n >= 1 << 10 ? "\(n >> 10) KiB" : "\(n) B"
}

func parseBytes(_ text: String) throws -> Int {
    guard let n = parseMessageSize(text) else { throw ValidationError("bad size '\(text)': use bytes, e.g. 4, 64k, 1m") }
    return n
}
