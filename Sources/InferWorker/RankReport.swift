import Foundation
import TesseraCollectives
import TesseraEngine
import TesseraFormats
import TesseraModels
import TesseraParallel

/// What each rank reports to the coordinator after a distributed run: weight bytes it holds resident versus the
/// bytes its share of the plan needs, and seconds spent communicating.
struct RankReport {
    var residentWeightBytes = 0
    var plannedWeightBytes = 0
    var communicationSeconds = 0.0
    /// Seconds from this rank's first step to the end of the run, and the steps it ran.
    var wallSeconds = 0.0
    var steps = 0
    /// Tokens of those steps, and the bytes this rank moved for them through its tensor-parallel and pipeline
    /// communicators (all-gather results, point-to-point payloads): what `--wire` changes.
    var tokens = 0
    var activationBytes = 0

    /// This rank's report after a run. Resident weights = pages of this rank's weight mappings + the slices it
    /// copied into its own memory + its repacked copies; the whole token-embedding table is left out where it
    /// serves only lookups.
    init(_ deployment: Deployment, source: ModelSource) {
        let memory = deployment.memory
        var resident = memory.owned + memory.repacked
        if deployment.model != nil, case .gguf(let file) = source {
            resident += file.residentIsolatedBytes(excluding: memory.lookupOnlyEmbedding ? ["token_embd.weight"] : [])
        }
        let communication = deployment.groups.communicationSeconds
        let groups = deployment.groups
        let moved = [groups.tensorParallel, groups.pipeline].compactMap { $0 }
            .reduce(0) { $0 + $1.stats.snapshot().values.reduce(0) { $0 + $1.bytes } }
        self.init(residentWeightBytes: resident, plannedWeightBytes: memory.planned, communicationSeconds: communication,
                  wallSeconds: deployment.firstStep.map { Date().timeIntervalSince($0) } ?? 0, steps: deployment.steps,
                  tokens: deployment.tokens, activationBytes: moved)
    }

    init(residentWeightBytes: Int = 0, plannedWeightBytes: Int = 0, communicationSeconds: Double = 0,
         wallSeconds: Double = 0, steps: Int = 0, tokens: Int = 0, activationBytes: Int = 0) {
        self.residentWeightBytes = residentWeightBytes; self.plannedWeightBytes = plannedWeightBytes
        self.communicationSeconds = communicationSeconds; self.wallSeconds = wallSeconds; self.steps = steps
        self.tokens = tokens; self.activationBytes = activationBytes
    }

    /// Collects every rank's report on the coordinator (nil elsewhere). Collective over the world.
    static func gather(_ mine: RankReport, groups: ProcessGroups) throws -> [RankReport]? {
        let world = groups.world, root = groups.topology.coordinator
        let words: [Int64] = [Int64(mine.residentWeightBytes), Int64(mine.plannedWeightBytes),
                              Int64(mine.communicationSeconds * 1e6), Int64(mine.wallSeconds * 1e6), Int64(mine.steps),
                              Int64(mine.tokens), Int64(mine.activationBytes)]
        let w = words.count
        var all = [Int64](repeating: 0, count: world.rank == root ? w * world.size : 0)
        try words.withUnsafeBufferPointer { input in
            try all.withUnsafeMutableBufferPointer { try world.gather(input, into: world.rank == root ? $0 : nil, root: root) }
        }
        guard world.rank == root else { return nil }
        return (0..<world.size).map {
            RankReport(residentWeightBytes: Int(all[w * $0]), plannedWeightBytes: Int(all[w * $0 + 1]),
                       communicationSeconds: Double(all[w * $0 + 2]) / 1e6, wallSeconds: Double(all[w * $0 + 3]) / 1e6,
                       steps: Int(all[w * $0 + 4]), tokens: Int(all[w * $0 + 5]), activationBytes: Int(all[w * $0 + 6]))
        }
    }

    /// One line per rank: its weights, and how its steps divided into computing and communicating (waiting for
    /// a peer included).
    static func render(_ reports: [RankReport], groups: ProcessGroups) -> String {
        var lines = ["tessera: rank  role            weights resident / planned (MiB)   comm s  comm share  per step: compute / comm ms  activations KiB/token"]
        for (r, report) in reports.enumerated() {
            let role: String
            switch groups.topology.role(of: r) {
            case .decoder(let d): role = "stage \(d.ppStage) tp \(d.tpRank)"
            case .vision: role = "vision"
            }
            guard report.steps > 0 else {
                lines.append(String(format: "tessera: %4d  %-14@  idle (no model part in this job)", r, role as NSString))
                continue
            }
            let n = Double(report.steps), comm = report.communicationSeconds, wall = report.wallSeconds
            let perStep = String(format: "%8.2f / %.2f", 1000 * max(wall - comm, 0) / n, 1000 * comm / n)
            lines.append(String(format: "tessera: %4d  %-14@  %12.2f / %-12.2f          %7.3f  %5.1f%%      %-24@  %.2f", r, role as NSString,
                                Double(report.residentWeightBytes) / 1048576, Double(report.plannedWeightBytes) / 1048576,
                                comm, wall > 0 ? 100 * min(comm / wall, 1) : 0, perStep as NSString,
                                Double(report.activationBytes) / 1024 / Double(max(report.tokens, 1))))
        }
        return lines.joined(separator: "\n")
    }
}

extension ProcessGroups {
    /// Seconds this rank spent in MPI operations over all its communicators.
    var communicationSeconds: Double { all.reduce(0) { $0 + $1.stats.totalSeconds } }
}

/// `--profile` across ranks: every rank's operator table, gathered as text to the coordinator, which prints them
/// in rank order.
enum ProfileReport {
    /// This rank's table (empty for a rank without a model, e.g. an idle vision rank).
    static func text(_ model: (any LanguageModel)?, steps: Int, groups: ProcessGroups?) -> String {
        guard let profiler = model?.profiler else { return "" }
        let communication = groups?.communicationSeconds
        return profiler.report(steps: steps, communication: communication)
    }

    /// Collective over the world: returns every rank's text on the coordinator, nil elsewhere.
    static func gather(_ mine: String, groups: ProcessGroups) throws -> [String]? {
        let world = groups.world, root = groups.topology.coordinator, bytes = Array(mine.utf8)
        var counts = [Int64](repeating: 0, count: world.size)
        try [Int64(bytes.count)].withUnsafeBufferPointer { input in
            try counts.withUnsafeMutableBufferPointer { try world.allGather(input, into: $0) }
        }
        let sizes = counts.map { Int($0) }
        var all = [UInt8](repeating: 0, count: world.rank == root ? sizes.reduce(0, +) : 0)
        try bytes.withUnsafeBufferPointer { input in
            try all.withUnsafeMutableBufferPointer { out in
                try world.gather(input, into: world.rank == root ? out : nil, counts: sizes, root: root)
            }
        }
        guard world.rank == root else { return nil }
        var texts: [String] = [], offset = 0
        for size in sizes {
            texts.append(String(decoding: all[offset..<(offset + size)], as: UTF8.self))
            offset += size
        }
        return texts
    }

    /// Prints each rank's table under a heading naming the rank (one table, unlabelled, for a single rank).
    static func render(_ texts: [String]) -> String {
        if texts.count == 1 { return "tessera: profile\n" + texts[0] }
        return texts.enumerated().filter { !$0.element.isEmpty }
            .map { "tessera: profile of rank \($0.offset)\n" + $0.element }.joined(separator: "\n")
    }
}
