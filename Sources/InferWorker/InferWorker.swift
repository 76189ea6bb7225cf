import ArgumentParser

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
}
