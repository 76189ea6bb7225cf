import TesseraCollectives
import TesseraTopology

/// This rank's communicators, derived from the topology: everything a parallel plan needs, passed down explicitly.
public struct ProcessGroups: Sendable {
    public let topology: Topology
    public let world: Communicator
    public let role: RankRole
    /// Ranks of this rank's decoder stage that share its layers (tp order); nil on vision ranks.
    public let tensorParallel: Communicator?
    /// Ranks with this rank's tpRank across all stages (stage order); nil on vision ranks.
    public let pipeline: Communicator?
    /// All decoder ranks; nil on vision ranks.
    public let decoder: Communicator?
    /// All vision ranks; nil elsewhere and when the topology has no vision group.
    public let vision: Communicator?

    public var isCoordinator: Bool { world.rank == topology.coordinator }

    /// Builds the groups. Collective over `world`: every rank must call it with the same topology. A world whose size
    /// differs from the topology's throws on every rank before any communication.
    public static func build(topology: Topology, world: Communicator) throws -> ProcessGroups {
        guard world.size == topology.worldSize else { throw WorldSizeMismatch(topology: topology, actual: world.size) }
        let role = topology.role(of: world.rank)
        let tp = topology.decoder.tensorParallel
        var decoderRole: DecoderCoordinates? = nil
        if case .decoder(let d) = role { decoderRole = d }
        // Colours: one split per kind of group; ranks outside a kind pass nil.
        let tpComm = try world.split(color: decoderRole.map { $0.ppStage }, key: world.rank, name: "tp")
        let ppComm = try world.split(color: decoderRole.map { $0.tpRank }, key: world.rank, name: "pp")
        let decoderComm = try world.split(color: decoderRole == nil ? nil : 0, key: world.rank, name: "decoder")
        let visionComm = topology.vision == nil ? nil
            : try world.split(color: decoderRole == nil ? 0 : nil, key: world.rank, name: "vision")
        if let d = decoderRole {   // the communicators must agree with the topology's formula
            let pp = topology.decoder.pipelineParallel
            guard let t = tpComm, t.rank == d.tpRank, t.size == tp else {
                throw GroupMismatch(rank: world.rank, group: "tensor-parallel",
                                    expected: "rank \(d.tpRank) of \(tp)", found: tpComm.map { "rank \($0.rank) of \($0.size)" })
            }
            guard let p = ppComm, p.rank == d.ppStage, p.size == pp else {
                throw GroupMismatch(rank: world.rank, group: "pipeline",
                                    expected: "stage \(d.ppStage) of \(pp)", found: ppComm.map { "rank \($0.rank) of \($0.size)" })
            }
        }
        return ProcessGroups(topology: topology, world: world, role: role, tensorParallel: tpComm, pipeline: ppComm,
                             decoder: decoderComm, vision: visionComm)
    }

    /// The communicators this rank belongs to, named.
    public var all: [Communicator] {
        [world, tensorParallel, pipeline, decoder, vision].compactMap { $0 }
    }
}

/// The job runs with a different number of ranks than the topology describes.
public struct WorldSizeMismatch: Error, CustomStringConvertible, Sendable {
    public let topology: Topology
    public let actual: Int
    public var description: String {
        "\(topology.source): world_size is \(topology.worldSize) but the job has \(actual) rank\(actual == 1 ? "" : "s")"
            + " (start it with mpirun -n \(topology.worldSize), or use launch/tessera, which computes -n from the topology)"
    }
}

/// A communicator built from the topology does not give this rank the place the topology's formula says.
public struct GroupMismatch: Error, CustomStringConvertible, Sendable {
    public let rank: Int
    public let group: String
    public let expected: String
    public let found: String?
    public var description: String {
        "rank \(rank): its \(group) communicator should make it \(expected), found \(found ?? "none")"
    }
}
