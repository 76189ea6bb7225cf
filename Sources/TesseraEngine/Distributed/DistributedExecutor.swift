import TesseraCollectives
import TesseraModels
import TesseraParallel
import TesseraTopology

/// Point-to-point message tags of a decoder job, in one place. Each kind travels on its own communicator, so
/// tags of different kinds never meet.
enum MessageTag {
    /// Hidden states of micro-batch `m` of a step, stage to stage over the pipeline communicator.
    static func hiddenStates(microBatch m: Int) -> Int { m }
    /// A step's logits, last stage to coordinator over the decoder communicator.
    static let logits = 1
}

/// The coordinator's view of a multi-rank job: each `execute` broadcasts the step to every decoder rank, runs the
/// coordinator's own stage, and receives the logits from the topology's logits rank. Sampling stays on the
/// coordinator, so every topology produces the same tokens.
public final class DistributedExecutor: StepExecutor {
    let groups: ProcessGroups
    let decoder: Communicator
    let stage: PipelineStage
    public let vocabularySize: Int
    public let contextLength: Int
    public let sequenceSlots: Int

    /// `groups` must be the coordinator's (a decoder rank of the first stage).
    public init(groups: ProcessGroups, stage: PipelineStage, sequenceSlots: Int, contextLength: Int) throws {
        guard let decoder = groups.decoder, groups.isCoordinator else {
            throw ProtocolError("rank \(groups.world.rank) is not the coordinator of \(groups.topology.source)")
        }
        self.groups = groups; self.decoder = decoder; self.stage = stage
        self.sequenceSlots = sequenceSlots; self.contextLength = contextLength
        vocabularySize = stage.model.vocabularySize
    }

    public var paging: KVPaging { stage.cache.paging }

    public func execute(_ batch: Batch, updates: BlockTableUpdates, logits: UnsafeMutableBufferPointer<Float>) throws {
        try ControlMessage.step(batch, updates).broadcast(from: decoder.rank, over: decoder)
        let count = batch.logitCount * vocabularySize
        guard logits.count >= count else {
            throw ProtocolError("logits buffer holds \(logits.count) floats, the step needs \(count)")
        }
        try stage.run(batch, updates: updates, logits: stage.isLast ? logits.baseAddress : nil)
        let sender = groups.topology.logitsRank
        if sender != groups.world.rank {
            try decoder.recv(UnsafeMutableBufferPointer(rebasing: logits[0..<count]), from: sender, tag: MessageTag.logits)
        }
    }

    /// Tells every other decoder rank to stop serving.
    public func shutdown() throws {
        try ControlMessage.shutdown.broadcast(from: decoder.rank, over: decoder)
    }
}

/// Every decoder rank but the coordinator: serve the coordinator's steps until it says to stop.
public enum DecoderWorker {
    public static func serve(groups: ProcessGroups, stage: PipelineStage) throws {
        guard let decoder = groups.decoder else {
            throw ProtocolError("rank \(groups.world.rank) is not a decoder rank of \(groups.topology.source)")
        }
        let coordinator = groups.topology.coordinator   // decoder ranks are world ranks 0..<tp·pp: the same numbers
        let sendsLogits = groups.world.rank == groups.topology.logitsRank
        var logits: [Float] = []
        while true {
            switch try ControlMessage.receive(from: coordinator, over: decoder) {
            case .shutdown:
                return
            case .step(let batch, let updates):
                let count = batch.logitCount * stage.model.vocabularySize
                if stage.isLast && logits.count < count { logits = [Float](repeating: 0, count: count) }
                try logits.withUnsafeMutableBufferPointer { buffer in
                    try stage.run(batch, updates: updates, logits: stage.isLast ? buffer.baseAddress : nil)
                    if sendsLogits {
                        try decoder.send(UnsafeBufferPointer(rebasing: buffer[0..<count]), to: coordinator,
                                         tag: MessageTag.logits)
                    }
                }
            }
        }
    }
}
