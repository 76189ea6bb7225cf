import ArgumentParser
import Foundation
import TesseraKernels

/// `infer-bench bandwidth`: the machine's memory read bandwidth per thread count (the roofline's denominator).
struct BandwidthBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "bandwidth", abstract: "Memory read bandwidth with 1..N threads (best of several passes).")

    @Option(help: "Buffer size (e.g. 1024m); far larger than the caches.") var size = "1024m"
    @Option(help: "Comma-separated thread counts.") var threads = "1,2"
    @Option(help: "Passes per thread count (best reported).") var passes = 7

    func run() throws {
        let bytes = try parseBytes(size)
        print("infer-bench bandwidth: \(humanBytes(bytes)) buffer, best of \(passes) passes, CPU level \(CPULevel.active)")
        for t in threads.split(separator: ",").compactMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) {
            let rate = MemoryBandwidth.measure(bytes: bytes, threads: t, passes: passes)
            print(String(format: "%3d thread%@  %8.2f GB/s", t, t == 1 ? " " : "s", rate / 1e9))
        }
    }
}
