import Foundation

/// Paths of the checkout, ../shared and the built executables, for tests.
public enum Repo {
    /// The repository root (this file is Tests/TesseraTestSupport/TestSupport.swift).
    public static let root = URL(fileURLWithPath: #filePath).deletingLastPathComponent().deletingLastPathComponent()
        .deletingLastPathComponent()
    /// ../shared: test models and reference outputs.
    public static let shared = root.deletingLastPathComponent().appendingPathComponent("shared")
    /// The default model, fetched by `launch/setup --model`.
    public static let defaultModel = root.appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf")

    /// Folder of the products built with the running tests (the test bundle's own folder).
    public static let binDirectory: URL = {
        let candidates = [URL(fileURLWithPath: CommandLine.arguments[0]).deletingLastPathComponent(),
                          root.appendingPathComponent(".build/release"), root.appendingPathComponent(".build/debug")]
        return candidates.first { FileManager.default.isExecutableFile(atPath: $0.appendingPathComponent("infer-worker").path) }
            ?? candidates[0]
    }()

    public static func executable(_ name: String) -> URL { binDirectory.appendingPathComponent(name) }
}

/// What a finished child process left behind.
public struct ProcessResult: CustomStringConvertible {
    public let status: Int32
    public let stdout: String
    public let stderr: String
    public let seconds: Double
    public let timedOut: Bool
    public var description: String {
        "exit \(status)\(timedOut ? " (killed after timeout)" : "") in \(String(format: "%.1f", seconds)) s\n--- stdout\n\(stdout.suffix(3000))\n--- stderr\n\(stderr.suffix(3000))"
    }
}

/// Runs a program to completion, killing its process group if it outlives `timeout` seconds.
public func runProcess(_ executable: URL, _ arguments: [String], environment: [String: String] = [:],
                       timeout: Double = 600) throws -> ProcessResult {
    let process = Process()
    process.executableURL = executable
    process.arguments = arguments
    process.environment = ProcessInfo.processInfo.environment.merging(environment) { $1 }
    process.currentDirectoryURL = Repo.root
    let out = Pipe(), err = Pipe()
    process.standardOutput = out; process.standardError = err
    process.standardInput = FileHandle.nullDevice
    let outData = Collected(), errData = Collected()
    let group = DispatchGroup()
    group.enter(); DispatchQueue.global().async { outData.data = out.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    group.enter(); DispatchQueue.global().async { errData.data = err.fileHandleForReading.readDataToEndOfFile(); group.leave() }
    let start = Date()
    try process.run()
    var timedOut = false
    while process.isRunning {
        if Date().timeIntervalSince(start) > timeout {
            timedOut = true
            process.terminate()          // mpirun forwards SIGTERM to its ranks
            usleep(2_000_000)
            if process.isRunning { kill(process.processIdentifier, SIGKILL) }
            break
        }
        usleep(20_000)
    }
    process.waitUntilExit()
    let seconds = Date().timeIntervalSince(start)
    _ = group.wait(timeout: .now() + 10)
    return ProcessResult(status: process.terminationStatus, stdout: String(decoding: outData.data, as: UTF8.self),
                         stderr: String(decoding: errData.data, as: UTF8.self), seconds: seconds, timedOut: timedOut)
}

/// Runs `infer-worker SUBCOMMAND ARGS` as an MPI job through launch/tessera (which adds what mpirun needs here):
/// `launch/tessera [--cluster] [--topology FILE] [--ranks N] SUBCOMMAND ARGS` (`cluster`: on the emulated
/// cluster of launch/cluster).
public func launch(ranks: Int? = nil, topology: String? = nil, cluster: Bool = false, _ subcommand: String,
                   _ arguments: [String] = [], timeout: Double = 600) throws -> ProcessResult {
    var args: [String] = cluster ? ["--cluster"] : []
    if let topology { args += ["--topology", Repo.root.appendingPathComponent(topology).path] }
    if let ranks { args += ["--ranks", String(ranks)] }
    return try runProcess(Repo.root.appendingPathComponent("launch/tessera"), args + [subcommand] + arguments,
                          environment: ["TESSERA_WORKER": Repo.executable("infer-worker").path], timeout: timeout)
}

/// Bytes a reader thread collects; read only after the thread has finished (the dispatch group orders it).
private final class Collected: @unchecked Sendable {
    var data = Data()
}

/// Deterministic pseudo-random numbers (SplitMix64).
public struct SplitMix64: RandomNumberGenerator {
    public var state: UInt64
    public init(seed: UInt64) { state = seed }
    public mutating func next() -> UInt64 {
        state &+= 0x9E37_79B9_7F4A_7C15
        var z = state
        z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
        z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
        return z ^ (z >> 31)
    }
}
