import Foundation
import ArgumentParser
import TesseraCollectives
import TesseraParallel
import TesseraTopology

/// `infer-worker topology`: checks a cluster layout before any model is loaded. Every rank derives its role, the
/// communicators are built and each is exercised once (a barrier and an all-reduce); rank 0 prints the rank map.
struct TopologyCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "topology", abstract: "Check a topology on the running ranks and print the rank map.")

    @OptionGroup var options: TopologyOptions

    func run() throws {
        let topology = try options.topology.map { try Topology.load(path: $0) } ?? .singleRank
        WorkerSession.run { runtime in
            let groups = try ProcessGroups.build(topology: topology, world: runtime.world)
            try exercise(groups)
            let hosts = try gatherHostNames(runtime.world)
            if runtime.world.rank == 0 { print(RankMap(topology: topology, hosts: hosts).render()) }
        }
    }

    /// A barrier and an all-reduce of the members' world ranks on every group, checked against the topology.
    private func exercise(_ groups: ProcessGroups) throws {
        let topology = groups.topology
        var expected: [(Communicator, [Int])] = [(groups.world, Array(0..<topology.worldSize))]
        switch groups.role {
        case .decoder(let d):
            expected.append((groups.tensorParallel!, d.tensorParallelGroup))
            expected.append((groups.pipeline!, d.pipelineGroup))
            expected.append((groups.decoder!, Array(0..<topology.decoder.rankCount)))
        case .vision(let v):
            expected.append((groups.vision!, v.group))
        }
        for (comm, members) in expected {
            try comm.barrier()
            guard comm.size == members.count, members[comm.rank] == groups.world.rank else {
                throw CheckFailure("group \(comm.name) has rank \(comm.rank) of \(comm.size); topology says \(members)")
            }
            var value = [Int64(groups.world.rank)]
            try value.withUnsafeMutableBufferPointer { try comm.allReduce($0, op: .sum) }
            guard value[0] == Int64(members.reduce(0, +)) else {
                throw CheckFailure("all-reduce on \(comm.name) gave \(value[0]), expected \(members.reduce(0, +))")
            }
        }
    }
}

struct CheckFailure: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// Every rank's host name, on rank 0 (empty elsewhere).
func gatherHostNames(_ world: Communicator) throws -> [String] {
    let width = 64
    var mine = [UInt8](repeating: 0, count: width)
    for (i, byte) in MPIRuntime.processorName().utf8.prefix(width - 1).enumerated() { mine[i] = byte }
    var all = [UInt8](repeating: 0, count: world.rank == 0 ? width * world.size : 0)
    try mine.withUnsafeBufferPointer { input in
        try all.withUnsafeMutableBufferPointer { output in
            try world.gather(input, into: world.rank == 0 ? output : nil, root: 0)
        }
    }
    return (0..<(world.rank == 0 ? world.size : 0)).map { r in
        String(decoding: all[r * width ..< (r + 1) * width].prefix { $0 != 0 }, as: UTF8.self)
    }
}

/// The human-readable rank map rank 0 prints.
struct RankMap {
    let topology: Topology
    let hosts: [String]

    func render() -> String {
        let d = topology.decoder
        var lines = ["topology \(topology.source): \(topology.worldSize) rank\(topology.worldSize == 1 ? "" : "s"); decoder tp=\(d.tensorParallel) × pp=\(d.pipelineParallel)"
            + (topology.vision.map { "; vision \($0.ranks) ranks (\($0.mode.rawValue))" } ?? "")
            + "; coordinator rank \(topology.coordinator)"]
        lines.append(pad(["rank", "role", "tp rank", "pp stage", "recv from", "send to", "host"]))
        for role in topology.roles {
            var row: [String]
            switch role {
            case .decoder(let c):
                row = ["\(c.rank)", "decoder", "\(c.tpRank)", "\(c.ppStage)",
                       c.previousStage.map(String.init) ?? "-", c.nextStage.map(String.init) ?? "-"]
            case .vision(let v):
                row = ["\(v.rank)", "vision", v.mode == .tensorParallel ? "\(v.index)" : "-", "-", "-",
                       v.feeds.map(String.init).joined(separator: ",")]
            }
            row.append((role.rank < hosts.count ? hosts[role.rank] : "?") + (role.rank == topology.coordinator ? "  (coordinator)" : ""))
            lines.append(pad(row))
        }
        let decoderRoles = topology.roles.compactMap { r -> DecoderCoordinates? in if case .decoder(let c) = r { return c }; return nil }
        let tpGroups = Set(decoderRoles.map(\.tensorParallelGroup)).sorted { $0[0] < $1[0] }
        let ppGroups = Set(decoderRoles.map(\.pipelineGroup)).sorted { $0[0] < $1[0] }
        lines.append("tensor-parallel groups: " + tpGroups.map { "\($0)" }.joined(separator: " "))
        lines.append("pipeline groups:        " + ppGroups.map { "\($0)" }.joined(separator: " "))
        lines.append("checked: barrier and all-reduce on every group: ok")
        return lines.joined(separator: "\n")
    }

    private func pad(_ cells: [String]) -> String {
        let widths = [5, 8, 8, 9, 10, 8]
        return cells.enumerated().map { i, c in i < widths.count ? c.padding(toLength: max(widths[i], c.count + 1), withPad: " ", startingAt: 0) : c }
            .joined()
    }
}
