import ArgumentParser
import TesseraCollectives
import TesseraParallel

@main
struct InferWorker: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infer-worker",
        abstract: "Tessera worker: run it as N MPI ranks (mpirun -n N, or launch/tessera).",
        subcommands: [GenerateCommand.self, ServeCommand.self, BatchCommand.self, PerplexityCommand.self, QuantizeCommand.self, TopologyCommand.self,
                      SelfTestCommand.self, FaultDrillCommand.self, WorldSizeCommand.self, InspectCommand.self])
}

/// Options every distributed subcommand takes.
struct TopologyOptions: ParsableArguments {
    @Option(name: .long, help: "Topology file (topologies/*.yaml). Default: one rank.")
    var topology: String?
    @Option(help: "Seconds a rank may wait for another inside a step before the job ends, naming the rank that did not answer (a stopped or stuck rank, a cut link); 'off' waits forever (debuggers).")
    var stepTimeout = "60"
    @Option(help: "How activations travel between ranks (pipeline hidden states, tensor-parallel partial sums): f32 (exact), bf16 (2x fewer bytes) or q8_0 (3.6x fewer).")
    var wire = "f32"

    /// The wire format named by `--wire`.
    func wireFormat() throws -> WireFormat {
        guard let format = WireFormat(rawValue: wire) else {
            throw ValidationError("--wire must be f32, bf16 or q8_0, got '\(wire)'")
        }
        return format
    }

    func validate() throws { _ = try stepTimeoutSeconds(); _ = try wireFormat() }

    /// The step timeout in seconds; nil when off.
    func stepTimeoutSeconds() throws -> Double? {
        if stepTimeout == "off" { return nil }
        guard let s = Double(stepTimeout), s > 0, s.isFinite else {
            throw ValidationError("--step-timeout must be a positive number of seconds or 'off', got '\(stepTimeout)'")
        }
        return s
    }

    /// The job's world, under the step watchdog unless it is off (collective: every rank calls it once).
    func world(_ runtime: MPIRuntime) throws -> Communicator {
        try runtime.world.watched(timeout: try stepTimeoutSeconds())
    }
}
