import ArgumentParser
import TesseraTopology

/// `infer-worker world-size --topology FILE`: validates a topology file and prints the ranks its job needs (what
/// `launch/tessera` passes to mpirun -n). Runs without MPI.
struct WorldSizeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "world-size", abstract: "Print the number of ranks a topology file needs (validating it).")

    @Option(help: "Topology file (topologies/*.yaml).") var topology: String

    func run() throws {
        do { print(try Topology.load(path: topology).worldSize) } catch let error as TopologyError {
            throw ValidationError(error.description)
        }
    }
}
