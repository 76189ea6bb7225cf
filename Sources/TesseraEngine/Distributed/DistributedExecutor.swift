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

/// The coordinator's view of a multi-rank job: each step is broadcast to every decoder rank, the coordinator runs
/// its own stage, and the logits come from the topology's logits rank. Sampling stays on the coordinator, so every
/// topology produces the same tokens. Under pipeline parallelism up to one step per stage is in flight (`start`,
/// then `finishOldest`): the coordinator's stage starts the next step while later stages finish earlier ones.
public final class DistributedExecutor: StepExecutor {
    let groups: ProcessGroups
    let decoder: Communicator
    let stage: PipelineStage
    public let vocabularySize: Int
    public let contextLength: Int
    public let sequenceSlots: Int

    /// A started step: its control message on its way, the receive of its logits, the buffer they land in.
    private struct Flight {
        let control: PostedControl
        let receive: Request?
        let buffer: Int
        let count: Int
    }
    private var inFlight: [Flight] = []
    /// Logits buffers, one per step that can be in flight, used round-robin.
    private var buffers: [UnsafeMutableBufferPointer<Float>]
    private var nextBuffer = 0

    /// `groups` must be the coordinator's (a decoder rank of the first stage).
    public init(groups: ProcessGroups, stage: PipelineStage, sequenceSlots: Int, contextLength: Int) throws {
        guard let decoder = groups.decoder, groups.isCoordinator else {
            throw ProtocolError("rank \(groups.world.rank) is not the coordinator of \(groups.topology.source)")
        }
        self.groups = groups; self.decoder = decoder; self.stage = stage
        self.sequenceSlots = sequenceSlots; self.contextLength = contextLength
        vocabularySize = stage.model.vocabularySize
        buffers = (0..<stage.stageCount).map { _ in .allocate(capacity: 0) }
    }

    deinit {
        inFlight.removeAll()   // unfinished receives wait in their deinit, before their buffers go
        for b in buffers { b.deallocate() }
    }

    public var paging: KVPaging { stage.cache.paging }
    public var pipelineDepth: Int { stage.stageCount }

    /// One step alone: `start` (cut so every stage can work at once), then its logits copied out.
    public func execute(_ batch: Batch, updates: BlockTableUpdates, logits: UnsafeMutableBufferPointer<Float>) throws {
        guard inFlight.isEmpty else { throw ProtocolError("a step was executed while \(inFlight.count) are in flight") }
        try start(batch, updates: updates, alone: true)
        let rows = try finishOldest()
        guard logits.count >= rows.count else {
            throw ProtocolError("logits buffer holds \(logits.count) floats, the step needs \(rows.count)")
        }
        _ = logits.update(fromContentsOf: rows)
    }

    public func start(_ batch: Batch, updates: BlockTableUpdates, alone: Bool) throws {
        guard inFlight.count < pipelineDepth else {
            throw ProtocolError("a step was started while \(inFlight.count) (the pipeline's depth) are in flight")
        }
        // the other steps in flight keep the later stages busy, so a step stays whole at full batch width; one
        // alone, or long enough to lose little width when cut (a prompt), is cut so the stages overlap inside it
        let parts = alone || batch.count >= 64 * stage.stageCount ? stage.stageCount : 1
        decoder.watchdog?.arm()
        let control = try ControlMessage.step(batch, updates, microBatches: parts).post(from: decoder.rank, over: decoder)
        let count = batch.logitCount * vocabularySize, b = nextBuffer
        nextBuffer = (nextBuffer + 1) % buffers.count
        if buffers[b].count < count {   // the flight that used it last has finished: at most `depth` are in flight
            buffers[b].deallocate()
            buffers[b] = .allocate(capacity: count)
        }
        let logits = UnsafeMutableBufferPointer(rebasing: buffers[b][0..<count])
        try stage.run(batch, updates: updates, microBatches: parts, logits: stage.isLast ? logits.baseAddress : nil)
        let sender = groups.topology.logitsRank
        let receive = sender == groups.world.rank ? nil : try decoder.irecv(logits, from: sender, tag: MessageTag.logits)
        inFlight.append(Flight(control: control, receive: receive, buffer: b, count: count))
    }

    public func finishOldest() throws -> UnsafeMutableBufferPointer<Float> {
        guard !inFlight.isEmpty else { throw ProtocolError("no step is in flight") }
        let flight = inFlight.removeFirst()
        try flight.receive?.wait()
        try flight.control.wait()
        if inFlight.isEmpty { decoder.watchdog?.disarm() }
        return UnsafeMutableBufferPointer(rebasing: buffers[flight.buffer][0..<flight.count])
    }

    /// Tells every other decoder rank to stop serving.
    public func shutdown() throws {
        guard inFlight.isEmpty else { throw ProtocolError("shutdown while \(inFlight.count) steps are in flight") }
        decoder.watchdog?.arm()
        try ControlMessage.shutdown.post(from: decoder.rank, over: decoder).wait()
        decoder.watchdog?.disarm()
    }
}

/// Every decoder rank but the coordinator: serve the coordinator's steps until it says to stop. The logits rank
/// sends each step's logits without waiting for the coordinator to take them (it may be starting the next step),
/// from two buffers in turn.
public enum DecoderWorker {
    public static func serve(groups: ProcessGroups, stage: PipelineStage) throws {
        guard let decoder = groups.decoder else {
            throw ProtocolError("rank \(groups.world.rank) is not a decoder rank of \(groups.topology.source)")
        }
        let coordinator = groups.topology.coordinator   // decoder ranks are world ranks 0..<tp·pp: the same numbers
        let sendsLogits = groups.world.rank == groups.topology.logitsRank
        var logits: [UnsafeMutableBufferPointer<Float>] = [.allocate(capacity: 0), .allocate(capacity: 0)]
        var sends: [Request?] = [nil, nil]
        var turn = 0
        defer {
            sends.removeAll()   // an unfinished send waits in its deinit, before its buffer goes
            for b in logits { b.deallocate() }
        }
        while true {
            switch try ControlMessage.receive(from: coordinator, over: decoder) {
            case .shutdown:
                try Request.waitAll(sends.compactMap { $0 })
                return
            case .step(let batch, let updates, let parts):
                let count = batch.logitCount * stage.model.vocabularySize
                try sends[turn]?.wait()    // its buffer is about to be written again
                sends[turn] = nil
                if stage.isLast && logits[turn].count < count {
                    logits[turn].deallocate()
                    logits[turn] = .allocate(capacity: count)
                }
                try stage.run(batch, updates: updates, microBatches: parts, logits: stage.isLast ? logits[turn].baseAddress : nil)
                if sendsLogits {
                    sends[turn] = try decoder.isend(UnsafeBufferPointer(rebasing: logits[turn][0..<count]), to: coordinator,
                                                    tag: MessageTag.logits)
                }
                turn = 1 - turn
            }
        }
    }
}
