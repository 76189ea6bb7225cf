import ArgumentParser
import TesseraCollectives

/// `infer-worker fault-drill`: a loop of collectives in which one rank throws at a chosen step. Used by the fault
/// tests (and by operators) to prove a failing rank brings the whole job down promptly instead of hanging it.
struct FaultDrillCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "fault-drill", abstract: "Run collectives until one rank fails on purpose.", shouldDisplay: false)

    @Option(help: "The rank that fails.") var failRank = 1
    @Option(help: "The step at which it fails.") var failStep = 3
    @Option(help: "Steps to run.") var steps = 1000

    func run() throws {
        WorkerSession.run { runtime in
            let world = runtime.world
            var buffer = [Float](repeating: 1, count: 1024)
            for step in 0..<steps {
                if world.rank == failRank && step == failStep {
                    throw CheckFailure("fault drill: failing on purpose at step \(step)")
                }
                try buffer.withUnsafeMutableBufferPointer { try world.allReduce($0, op: .max) }
            }
        }
    }
}
