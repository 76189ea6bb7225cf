// One rank's part of a job, assembled from the topology: its groups, its share of the model (a pipeline stage's
// layers over a tensor-parallel shard), its KV cache, and what it runs: the coordinator's executor or a worker loop.
import Foundation
import TesseraCollectives
import TesseraFormats
import TesseraKernels
import TesseraModels
import TesseraParallel
import TesseraTopology

/// How a job builds and runs its model, the same on every rank.
public struct DeploymentOptions: Sendable {
    /// Arithmetic, threads, KV type, quantize-at-load, profiling (`layers` is set from the topology).
    public var load: LoadOptions
    /// Sequence slots of the KV cache (the most sequences one step may mix).
    public var sequenceSlots: Int
    /// Positions per sequence; nil = the model's trained context, capped so the KV cache takes at most half the
    /// available memory. All ranks agree on the smallest any of them can afford.
    public var context: Int?
    /// How tensor-parallel partial sums are added.
    public var reduction: CommunicatorGroup.Reduction
    /// How activations travel between ranks (pipeline hidden states, tensor-parallel partial sums).
    public var wire: WireFormat
    /// Recompute every prefix instead of caching keys and values (one rank only; for measuring the cache).
    public var recompute: Bool
    /// A failure to inject on its rank (fault drills).
    public var fault: InjectedFault?
    /// Positions per KV block.
    public var kvBlockSize: Int
    /// Bytes of KV blocks per rank; nil = enough for every slot's whole context, capped at half the available
    /// memory. All ranks take the smallest block count any of them can afford.
    public var kvCacheMemory: Int?

    public init(load: LoadOptions = LoadOptions(), sequenceSlots: Int = 1, context: Int? = nil,
                reduction: CommunicatorGroup.Reduction = .rankOrder, wire: WireFormat = .f32, recompute: Bool = false,
                fault: InjectedFault? = nil, kvBlockSize: Int = 16, kvCacheMemory: Int? = nil) {
        self.load = load; self.sequenceSlots = sequenceSlots; self.context = context; self.reduction = reduction
        self.wire = wire
        self.recompute = recompute; self.fault = fault; self.kvBlockSize = kvBlockSize; self.kvCacheMemory = kvCacheMemory
    }
}

/// What this rank runs.
public enum RankPart {
    /// Owns requests: the generation loop (next, the scheduler and server) drives this executor; every step it
    /// runs reaches all decoder ranks. Call `Deployment.finish` when done.
    case coordinator(any StepExecutor)
    /// Serves the coordinator's steps until it finishes (a decoder stage), or waits for the end (an idle vision
    /// rank in a text job).
    case worker
}

/// One rank's share of the job and the loop it runs. Collective: every rank of the world builds its deployment
/// with the same topology, checkpoint and options.
public final class Deployment {
    public let groups: ProcessGroups
    public let blueprint: ModelBlueprint
    /// This rank's model (a stage's layers, a TP shard); nil on ranks without a part in the decoder.
    public let model: (any LanguageModel)?
    /// Positions per sequence every rank reserved.
    public let context: Int
    /// The KV block pool every decoder rank holds.
    public let paging: KVPaging
    /// Bytes of this rank's KV blocks.
    public let kvCacheBytes: Int
    /// The pipeline stage, in a multi-rank job.
    public let stage: PipelineStage?
    /// Weight bytes the plan gives this rank, and what it holds beyond its mapped slices.
    public let memory: RankMemory
    public let part: RankPart
    private let distributed: DistributedExecutor?
    /// When this rank's first step started (communication counters are reset there).
    public private(set) var firstStep: Date?
    private var finished = false

    public var topology: Topology { groups.topology }

    /// How the model was loaded.
    public let loadOptions: LoadOptions

    /// In `.fast` mode, the notice naming the matrices that have no fast kernel (nil when all have one): the
    /// coordinator prints it once, so no tensor takes the slow path silently.
    public var slowPathNotice: String? {
        loadOptions.compute.mode == .fast ? blueprint.slowPathNotice(quantize: loadOptions.quantize) : nil
    }

    public init(topology: Topology, world: Communicator, source: ModelSource, options: DeploymentOptions) throws {
        loadOptions = options.load
        groups = try ProcessGroups.build(topology: topology, world: world)
        blueprint = try ModelRegistry.blueprint(of: source)
        guard !options.recompute || world.size == 1 else {
            throw GenerationError(description: "--no-kv-cache runs on one rank only (this job has \(world.size))")
        }
        guard case .decoder(let role) = groups.role else {
            model = nil; context = 0; stage = nil; distributed = nil
            paging = KVPaging(blockSize: 1, blockCount: 0); kvCacheBytes = 0
            memory = RankMemory(); part = .worker
            return
        }
        let layers = try topology.layerRanges(layerCount: blueprint.layerCount)[role.ppStage]
        var load = options.load
        load.layers = layers
        let model: any LanguageModel, share: WeightShare
        if let tp = groups.tensorParallel, tp.size > 1 {
            let plan = try TensorParallelPlan(blueprint: blueprint, size: tp.size)   // fails before any weight is read
            let shard = try TensorParallel.load(blueprint, plan: plan,
                                                group: try CommunicatorGroup(tp, reduction: options.reduction, wire: options.wire),
                                                options: load)
            model = shard.model; share = shard.plannedWeights
            memory = RankMemory(planned: share, owned: shard.heldWeights.owned, repacked: model.repackedWeightBytes,
                                lookupOnlyEmbedding: true, isLastStage: role.ppStage == topology.decoder.pipelineParallel - 1)
        } else {
            model = try blueprint.load(options: load)
            share = try TensorParallelPlan(blueprint: blueprint, size: 1)[0].weights(layers: layers)
            let last = role.ppStage == topology.decoder.pipelineParallel - 1
            memory = RankMemory(planned: share, owned: 0, repacked: model.repackedWeightBytes,
                                lookupOnlyEmbedding: !last, isLastStage: last)
        }
        self.model = model
        context = try Deployment.agreeOnContext(model: model, options: options, decoder: groups.decoder!)
        let slots = options.sequenceSlots
        paging = try Deployment.agreeOnPaging(model: model, layers: layers.count, context: context, options: options,
                                              decoder: groups.decoder!)
        kvCacheBytes = layers.count * model.kvBytesPerPosition * paging.blockSize * paging.blockCount
        if world.size == 1 {
            stage = nil; distributed = nil
            part = .coordinator(options.recompute
                ? try RecomputingExecutor(model: model, sequenceSlots: slots, contextLength: context)
                : try LocalExecutor(model: model, sequenceSlots: slots, contextLength: context, paging: paging))
            return
        }
        let stage = try PipelineStage(model: model, layers: layers, pipeline: groups.pipeline!, sequenceSlots: slots,
                                      contextLength: context, paging: paging, wire: options.wire)
        if let fault = options.fault, fault.rank == world.rank { stage.fault = fault }
        self.stage = stage
        if groups.isCoordinator {
            let executor = try DistributedExecutor(groups: groups, stage: stage, sequenceSlots: slots, contextLength: context)
            distributed = executor
            part = .coordinator(executor)
        } else {
            distributed = nil
            part = .worker
        }
        stage.onFirstStep = { [unowned self] in
            for c in groups.all { c.stats.reset() }
            firstStep = Date()
        }
    }

    /// A worker's loop: a decoder stage serves steps until the coordinator finishes; a rank without a decoder part
    /// returns at once (it takes no part in steps). Does nothing on the coordinator.
    public func serve() throws {
        guard case .worker = part, let stage else { return }
        try DecoderWorker.serve(groups: groups, stage: stage)
    }

    /// On the coordinator: tells every worker to stop serving (once). Elsewhere nothing.
    public func finish() throws {
        guard !finished else { return }
        finished = true
        try distributed?.shutdown()
    }

    /// Steps this rank ran, and their tokens (0 on a single rank, which has no stage).
    public var steps: Int { stage?.steps ?? 0 }
    public var tokens: Int { stage?.tokens ?? 0 }

    /// The requested context, else the model's own capped so the KV cache takes at most half the available memory;
    /// then the smallest over the decoder ranks.
    static func agreeOnContext(model: any LanguageModel, options: DeploymentOptions, decoder: Communicator) throws -> Int {
        let mine: Int
        if let requested = options.context {
            guard requested > 0 else { throw GenerationError(description: "--context must be positive, got \(requested)") }
            mine = requested
        } else {
            let trained = model.trainedContextLength
            let bytesPerPosition = model.layerCount * model.kvBytesPerPosition
            let budget = availableMemory() / 2
            let fits = max(1, budget / max(bytesPerPosition, 1))
            if fits < trained {
                FileHandle.standardError.write(Data("tessera: context capped at \(fits) positions (the model's \(trained) would need \(trained * bytesPerPosition >> 20) MiB of KV cache for one sequence; \(budget >> 20) MiB available); set --context to choose\n".utf8))
            }
            mine = min(fits, trained)
        }
        var agreed = [Int64(mine)]
        try agreed.withUnsafeMutableBufferPointer { try decoder.allReduce($0, op: .min) }
        return Int(agreed[0])
    }

    /// Blocks of `kvBlockSize` positions in `kvCacheMemory` bytes of this rank's layers, else enough for every
    /// slot's whole context but at most half the available memory; then the smallest count over the decoder ranks.
    static func agreeOnPaging(model: any LanguageModel, layers: Int, context: Int, options: DeploymentOptions,
                              decoder: Communicator) throws -> KVPaging {
        guard options.kvBlockSize > 0 else {
            throw GenerationError(description: "--kv-block-size must be positive, got \(options.kvBlockSize)")
        }
        if let m = options.kvCacheMemory, m <= 0 {
            throw GenerationError(description: "--kv-cache-memory must be positive, got \(m)")
        }
        let bytesPerBlock = max(1, layers * model.kvBytesPerPosition * options.kvBlockSize)
        var paging = KVPaging.covering(sequences: options.sequenceSlots, contextLength: context, blockSize: options.kvBlockSize)
        paging.blockCount = max(1, options.kvCacheMemory.map { $0 / bytesPerBlock }
                                   ?? min(paging.blockCount, availableMemory() / 2 / bytesPerBlock))
        var agreed = [Int64(paging.blockCount)]
        try agreed.withUnsafeMutableBufferPointer { try decoder.allReduce($0, op: .min) }
        paging.blockCount = Int(agreed[0])
        return paging
    }
}

/// What one rank's weights should take, for the per-rank table: its planned share and the copies it owns.
public struct RankMemory: Sendable {
    /// The plan's bytes for this rank's layers (the head only on the last stage, the one that reads it).
    public var planned = 0
    /// Row-parallel slices copied into the rank's memory.
    public var owned = 0
    /// Repacked (`--fast`) copies held instead of, or beside, mapped slices.
    public var repacked = 0
    /// The whole embedding table serves only lookups here (single rows read on demand): everywhere but a
    /// pipeline-only last stage, whose tied head it is.
    public var lookupOnlyEmbedding = true

    public init() {}

    init(planned share: WeightShare, owned: Int, repacked: Int, lookupOnlyEmbedding: Bool, isLastStage: Bool) {
        planned = share.total - (isLastStage ? 0 : share.head); self.owned = owned; self.repacked = repacked
        self.lookupOnlyEmbedding = lookupOnlyEmbedding
    }
}

/// MemAvailable from /proc/meminfo (8 GiB if it cannot be read).
public func availableMemory() -> Int {
    guard let text = try? String(contentsOfFile: "/proc/meminfo", encoding: .utf8),
          let line = text.split(separator: "\n").first(where: { $0.hasPrefix("MemAvailable:") }),
          let kb = Int(line.split(separator: " ").dropFirst().first ?? "") else { return 8 << 30 }
    return kb * 1024
}
