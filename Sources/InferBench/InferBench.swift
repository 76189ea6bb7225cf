import ArgumentParser
import Foundation

@main
struct InferBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infer-bench",
        abstract: "Tessera benchmarks: each prints ratios against a peer measured in the same run.",
        subcommands: [CollectivesBench.self, ParallelBench.self, CompareBench.self, QuantizeBench.self, AblationBench.self, PositionsBench.self,
                      BandwidthBench.self, ServeBench.self,
                      SyntheticModelCommand.self])
}

/// Runs a program to completion; returns its exit status, stdout and stderr (both pipes drained concurrently, so
/// a chatty child cannot block).
func runCapturing(_ executable: URL, _ arguments: [String]) throws -> (status: Int32, stdout: String, stderr: String) {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.standardInput = FileHandle.nullDevice
    let out = Pipe(), err = Pipe()
    process.standardOutput = out; process.standardError = err
    let collected = Collected()
    let group = DispatchGroup()
    group.enter(); DispatchQueue.global().async { collected.stdout = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    group.enter(); DispatchQueue.global().async { collected.stderr = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    try process.run()
    process.waitUntilExit()
    group.wait()
    return (process.terminationStatus, String(decoding: collected.stdout, as: UTF8.self), String(decoding: collected.stderr, as: UTF8.self))
}

/// Output a reader thread collects; read only after the dispatch group has finished.
private final class Collected: @unchecked Sendable {
    var stdout = Data(), stderr = Data()
}
