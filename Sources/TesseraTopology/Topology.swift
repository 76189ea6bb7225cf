/// Which rank plays which part in a Tessera job. One value, decoded and validated from a topology file, passed down
/// explicitly (never read from a global).
///
/// Rank layout. The language decoder takes ranks `0 ..< tp·pp`; tensor-parallel peers are consecutive, so a hostfile
/// that fills hosts in order keeps each TP group inside one host and sends only pipeline traffic between hosts:
///
///     decoder rank r:  tpRank = r % tp,  ppStage = r / tp
///     vision rank  v:  world ranks tp·pp ..< worldSize, vision index v - tp·pp
///
/// Worked example, `tp2-pp4.yaml` (8 ranks, tp = 2, pp = 4):
///
///     TP groups (one per stage):  [0,1] [2,3] [4,5] [6,7]
///     PP groups (one per tpRank): [0,2,4,6] [1,3,5,7]
///     rank 5 = stage 2, tpRank 1; it receives from rank 3 and sends to rank 7.
///
/// `vision2-tp2-pp3.yaml` (8 ranks): decoder ranks 0-5 (TP groups [0,1] [2,3] [4,5]), vision ranks 6 and 7, which
/// feed the first decoder stage (ranks 0 and 1).
public struct Topology: Sendable, Equatable {
    /// Where this topology was read from (for messages).
    public let source: String
    public let worldSize: Int
    /// The rank that owns requests: tokenizes, schedules steps, samples, streams text.
    public let coordinator: Int
    public let decoder: DecoderGroup
    public let vision: VisionGroup?

    public struct DecoderGroup: Sendable, Equatable {
        public let tensorParallel: Int
        public let pipelineParallel: Int
        /// Layers per pipeline stage, first stage first; nil means an even split.
        public let layersPerStage: [Int]?
        public var rankCount: Int { tensorParallel * pipelineParallel }
        public init(tensorParallel: Int, pipelineParallel: Int, layersPerStage: [Int]?) {
            self.tensorParallel = tensorParallel; self.pipelineParallel = pipelineParallel
            self.layersPerStage = layersPerStage
        }
    }

    public struct VisionGroup: Sendable, Equatable {
        public enum Mode: String, Sendable, Equatable, CaseIterable {
            case dataParallel = "data_parallel", tensorParallel = "tensor_parallel"
        }
        public let ranks: Int
        public let mode: Mode
        public init(ranks: Int, mode: Mode) { self.ranks = ranks; self.mode = mode }
    }

    public init(source: String, worldSize: Int, coordinator: Int, decoder: DecoderGroup, vision: VisionGroup?) throws {
        self.source = source; self.worldSize = worldSize; self.coordinator = coordinator
        self.decoder = decoder; self.vision = vision
        try validate()
    }

    private func validate() throws {
        func fail(_ key: String, _ reason: String) -> TopologyError { TopologyError(source: source, key: key, reason: reason) }
        guard worldSize >= 1 else { throw fail("world_size", "must be at least 1, got \(worldSize)") }
        guard decoder.tensorParallel >= 1 else {
            throw fail("decoder.tensor_parallel", "must be at least 1, got \(decoder.tensorParallel)")
        }
        guard decoder.pipelineParallel >= 1 else {
            throw fail("decoder.pipeline_parallel", "must be at least 1, got \(decoder.pipelineParallel)")
        }
        if let split = decoder.layersPerStage {
            guard split.count == decoder.pipelineParallel else {
                throw fail("decoder.layers", "lists \(split.count) stages but pipeline_parallel is \(decoder.pipelineParallel)")
            }
            if let bad = split.firstIndex(where: { $0 < 1 }) {
                throw fail("decoder.layers", "stage \(bad) has \(split[bad]) layers; every stage needs at least 1")
            }
        }
        if let vision, vision.ranks < 1 { throw fail("vision.ranks", "must be at least 1, got \(vision.ranks)") }
        let used = decoder.rankCount + (vision?.ranks ?? 0)
        guard used == worldSize else {
            let parts = "tensor_parallel \(decoder.tensorParallel) × pipeline_parallel \(decoder.pipelineParallel)"
                + (vision.map { " + vision.ranks \($0.ranks)" } ?? "")
            throw fail("world_size", "is \(worldSize) but \(parts) = \(used)")
        }
        guard coordinator >= 0 && coordinator < worldSize else {
            throw fail("coordinator", "rank \(coordinator) is outside 0..<\(worldSize)")
        }
        guard coordinator < decoder.tensorParallel else {   // it runs its own share of the first stage
            throw fail("coordinator", "rank \(coordinator) is not in the decoder's first stage (ranks 0..<\(decoder.tensorParallel))")
        }
    }

    // MARK: - Derived layout

    /// The role of world rank `rank`.
    public func role(of rank: Int) -> RankRole {
        precondition(rank >= 0 && rank < worldSize, "rank \(rank) outside topology of \(worldSize)")
        let tp = decoder.tensorParallel, pp = decoder.pipelineParallel
        if rank < decoder.rankCount {
            let tpRank = rank % tp, stage = rank / tp
            return .decoder(DecoderCoordinates(
                rank: rank, tpRank: tpRank, ppStage: stage,
                tensorParallelGroup: Array(stageRanks(stage)),
                pipelineGroup: (0..<pp).map { $0 * tp + tpRank },
                previousStage: stage > 0 ? rank - tp : nil,
                nextStage: stage < pp - 1 ? rank + tp : nil))
        }
        let v = vision!
        let index = rank - decoder.rankCount
        return .vision(VisionCoordinates(
            rank: rank, index: index, mode: v.mode,
            group: Array(visionRanks),
            feeds: Array(stageRanks(0))))
    }

    /// World ranks of pipeline stage `stage`'s tensor-parallel group, tpRank order.
    public func stageRanks(_ stage: Int) -> Range<Int> {
        stage * decoder.tensorParallel ..< (stage + 1) * decoder.tensorParallel
    }

    /// The rank that sends each step's logits to the coordinator: the last stage's tpRank 0 (every rank of that
    /// stage holds the full logits after the head's gather).
    public var logitsRank: Int { stageRanks(decoder.pipelineParallel - 1).lowerBound }

    /// World ranks that take part in decoder steps (the coordinator broadcasts each step to them).
    public var decoderRanks: Range<Int> { 0..<decoder.rankCount }

    /// World ranks of the vision group (empty without one).
    public var visionRanks: Range<Int> { decoder.rankCount ..< worldSize }

    /// Every rank's role, by rank.
    public var roles: [RankRole] { (0..<worldSize).map(role(of:)) }

    /// The contiguous layer range of each pipeline stage for a model of `layerCount` layers: the explicit split if
    /// the file gives one (it must add up), else as even as possible with earlier stages taking the remainder.
    public func layerRanges(layerCount: Int) throws -> [Range<Int>] {
        let pp = decoder.pipelineParallel
        let counts: [Int]
        if let split = decoder.layersPerStage {
            guard split.reduce(0, +) == layerCount else {
                throw TopologyError(source: source, key: "decoder.layers",
                                    reason: "stages add up to \(split.reduce(0, +)) layers but the model has \(layerCount)")
            }
            counts = split
        } else {
            guard layerCount >= pp else {
                throw TopologyError(source: source, key: "decoder.pipeline_parallel",
                                    reason: "\(pp) stages need at least \(pp) layers; the model has \(layerCount)")
            }
            counts = (0..<pp).map { layerCount / pp + ($0 < layerCount % pp ? 1 : 0) }
        }
        var ranges: [Range<Int>] = [], start = 0
        for count in counts { ranges.append(start ..< start + count); start += count }
        return ranges
    }
}

/// What one rank does.
public enum RankRole: Sendable, Equatable {
    case decoder(DecoderCoordinates)
    case vision(VisionCoordinates)

    public var rank: Int {
        switch self { case .decoder(let d): return d.rank; case .vision(let v): return v.rank }
    }
}

/// A language-decoder rank's place: its stage, its tensor-parallel slot, and its neighbours (world ranks).
public struct DecoderCoordinates: Sendable, Equatable {
    public let rank: Int
    public let tpRank: Int
    public let ppStage: Int
    /// World ranks of this stage's tensor-parallel group, tpRank order.
    public let tensorParallelGroup: [Int]
    /// World ranks with the same tpRank in every stage, stage order.
    public let pipelineGroup: [Int]
    /// The rank this one receives activations from (nil on the first stage).
    public let previousStage: Int?
    /// The rank this one sends activations to (nil on the last stage).
    public let nextStage: Int?
}

/// A vision-encoder rank's place.
public struct VisionCoordinates: Sendable, Equatable {
    public let rank: Int
    /// Index within the vision group.
    public let index: Int
    public let mode: Topology.VisionGroup.Mode
    /// World ranks of the vision group.
    public let group: [Int]
    /// World ranks of the first decoder stage that receive the image embeddings.
    public let feeds: [Int]
}

/// A topology file that cannot be used: names the file, the key and the reason.
public struct TopologyError: Error, CustomStringConvertible, Sendable, Equatable {
    public let source: String
    public let key: String
    public let reason: String
    public var description: String { key.isEmpty ? "\(source): \(reason)" : "\(source): \(key): \(reason)" }
}

extension Topology {
    /// One rank running the whole model: what a run without a topology file uses.
    public static let singleRank = try! Topology(
        source: "(single rank)", worldSize: 1, coordinator: 0,
        decoder: DecoderGroup(tensorParallel: 1, pipelineParallel: 1, layersPerStage: nil), vision: nil)
}
