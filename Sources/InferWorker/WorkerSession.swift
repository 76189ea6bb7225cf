import Foundation
import TesseraCollectives

/// Runs one rank's work inside an MPI session. Any error that escapes `body` is fatal for the whole job: the rank
/// prints it (naming itself) and aborts every rank through MPI, so no peer waits forever in a collective.
enum WorkerSession {
    static func run(threadLevel: ThreadLevel = .funneled, _ body: (MPIRuntime) throws -> Void) -> Never {
        runWithStatus(threadLevel: threadLevel) { runtime in try body(runtime); return 0 }
    }

    /// As `run`, but the rank exits with the status `body` returns, after MPI is finalized (every rank's work done).
    static func runWithStatus(threadLevel: ThreadLevel = .funneled, _ body: (MPIRuntime) throws -> Int32) -> Never {
        let runtime: MPIRuntime
        do { runtime = try MPIRuntime.initialize(threadLevel: threadLevel) } catch {
            MPIRuntime.abortJob("cannot start MPI: \(error)")
        }
        let status: Int32
        do {
            status = try body(runtime)
        } catch {
            MPIRuntime.abortJob("\(error)")
        }
        runtime.finalize()
        exit(status)
    }
}

/// Writes a line to stderr (logs never go to stdout, which carries only results).
func log(_ message: String) {
    FileHandle.standardError.write(Data((message + "\n").utf8))
}
