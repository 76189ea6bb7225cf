import ArgumentParser

@main
struct InferBench: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "infer-bench",
        abstract: "Tessera benchmarks: each prints ratios against a peer measured in the same run.",
        subcommands: [CollectivesBench.self, ParallelBench.self, CompareBench.self, SyntheticModelCommand.self])
}
