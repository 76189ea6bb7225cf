import TesseraModels

/// Runs forward steps for the coordinator. The generation loop is written against this alone, so it is the same
/// whether one process computes the step (`LocalExecutor`) or a whole MPI job does (tensor/pipeline parallel).
public protocol StepExecutor: AnyObject {
    var vocabularySize: Int { get }
    /// Positions each sequence slot holds.
    var contextLength: Int { get }
    /// Sequence slots available (the most sequences one batch may mix).
    var sequenceSlots: Int { get }
    /// Runs one step and writes `[batch.logitCount × vocabularySize]` logits, in batch order.
    func execute(_ batch: Batch, logits: UnsafeMutableBufferPointer<Float>) throws
    /// Forgets a slot's cached positions so a new sequence can use it.
    func release(sequence: Int) throws
}

/// One process runs the whole model.
public final class LocalExecutor: StepExecutor {
    public let model: any LanguageModel
    public let cache: any KVCache

    public init(model: any LanguageModel, sequenceSlots: Int, contextLength: Int) throws {
        self.model = model
        cache = try model.makeCache(sequences: sequenceSlots, contextLength: contextLength)
    }

    public var vocabularySize: Int { model.vocabularySize }
    public var contextLength: Int { cache.contextLength }
    public var sequenceSlots: Int { cache.sequenceCount }

    public func execute(_ batch: Batch, logits: UnsafeMutableBufferPointer<Float>) throws {
        try model.forward(batch, cache: cache, logits: logits)
    }

    public func release(sequence: Int) throws { cache.setOffset(0, of: sequence) }
}
