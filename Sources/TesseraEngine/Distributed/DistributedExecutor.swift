import TesseraCollectives
import TesseraModels
import TesseraParallel
import TesseraTopology

/// The coordinator's view of a multi-rank job: each `execute` broadcasts the step to every rank, runs the
/// coordinator's own stage, and receives the logits from the last stage (its tpRank-0 rank). Sampling stays on
/// the coordinator, so every topology produces the same tokens.
public final class DistributedExecutor: StepExecutor {
    let groups: ProcessGroups
    let stage: PipelineStage
    /// World rank that sends the logits: last stage, tpRank 0.
    let logitsRank: Int
    public let vocabularySize: Int
    public let contextLength: Int
    public let sequenceSlots: Int
    private var scratch: [Float] = []

    public init(groups: ProcessGroups, stage: PipelineStage, sequenceSlots: Int, contextLength: Int) {
        self.groups = groups; self.stage = stage
        self.sequenceSlots = sequenceSlots; self.contextLength = contextLength
        vocabularySize = stage.model.vocabularySize
        logitsRank = DistributedExecutor.logitsRank(groups.topology)
    }

    static func logitsRank(_ topology: Topology) -> Int {
        (topology.decoder.pipelineParallel - 1) * topology.decoder.tensorParallel
    }

    public func execute(_ batch: Batch, logits: UnsafeMutableBufferPointer<Float>) throws {
        let world = groups.world
        try ControlMessage.step(batch).broadcast(from: world.rank, over: world)
        let count = batch.logitCount * vocabularySize
        guard logits.count >= count else {
            throw ProtocolError("logits buffer holds \(logits.count) floats, the step needs \(count)")
        }
        if stage.isLast {
            try stage.run(batch, logits: logits.baseAddress)
        } else {
            try stage.run(batch, logits: nil)
        }
        if world.rank != logitsRank {
            try world.recv(UnsafeMutableBufferPointer(rebasing: logits[0..<count]), from: logitsRank, tag: DecoderWorker.logitsTag)
        }
    }

    public func release(sequence: Int) throws {
        try ControlMessage.release(sequence: sequence).broadcast(from: groups.world.rank, over: groups.world)
        stage.release(sequence: sequence)
    }

    /// Tells every other rank to stop serving.
    public func shutdown() throws {
        try ControlMessage.shutdown.broadcast(from: groups.world.rank, over: groups.world)
    }
}

/// Every rank but the coordinator: serve the coordinator's steps until it says to stop.
public enum DecoderWorker {
    static let logitsTag = 9_999

    /// `stage` is nil on ranks outside the decoder (vision ranks in a text-only job).
    public static func serve(groups: ProcessGroups, stage: PipelineStage?) throws {
        let coordinator = groups.topology.coordinator, world = groups.world
        let sendsLogits = world.rank == DistributedExecutor.logitsRank(groups.topology)
        var logits: [Float] = []
        while true {
            switch try ControlMessage.receive(from: coordinator, over: world) {
            case .shutdown:
                return
            case .release(let sequence):
                stage?.release(sequence: sequence)
            case .step(let batch):
                guard let stage else { continue }
                let count = batch.logitCount * stage.model.vocabularySize
                if stage.isLast && logits.count < count { logits = [Float](repeating: 0, count: count) }
                try logits.withUnsafeMutableBufferPointer { buffer in
                    try stage.run(batch, logits: stage.isLast ? buffer.baseAddress : nil)
                    if sendsLogits {
                        try world.send(UnsafeBufferPointer(rebasing: buffer[0..<count]), to: coordinator, tag: logitsTag)
                    }
                }
            }
        }
    }
}
