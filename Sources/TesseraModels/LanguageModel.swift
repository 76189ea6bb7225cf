import TesseraKernels
// What every architecture offers the engine: whole forward passes, and the pieces pipeline stages run.

/// A causal language model over flattened multi-sequence batches.
///
/// `forward(_:cache:logits:)` = `embed` → `forward(layers: 0..<layerCount)` → `logits`; a pipeline stage calls only
/// its contiguous layer range between receiving and sending hidden states (`[batch.count × hiddenSize]` floats).
public protocol LanguageModel: AnyObject {
    var vocabularySize: Int { get }
    var hiddenSize: Int { get }
    var layerCount: Int { get }
    /// The context length the model was trained for (its config's maximum positions).
    var trainedContextLength: Int { get }
    /// Key/value floats one position of one layer stores in the cache on this rank.
    var kvFloatsPerPosition: Int { get }
    /// Bytes one position of one layer takes in the cache on this rank (keys and values, in the cache's type).
    var kvBytesPerPosition: Int { get }
    /// Most tokens `embed`, `forward(layers:)` and `logits` take at once; `forward(_:cache:logits:)` chunks longer batches.
    var maxBatchTokens: Int { get }
    /// Bytes of the weight matrices this instance's products and lookups read, in their encodings (converted or
    /// repacked copies included, each matrix counted once).
    var weightBytes: Int { get }
    /// Bytes of repacked weight copies (`--fast`) among them: owned memory a rank holds beside its mapped slices.
    var repackedWeightBytes: Int { get }
    /// Time per operator and layer, when the model was loaded with `LoadOptions.profile`.
    var profiler: Profiler? { get }

    /// A cache for all layers with `sequences` slots of `contextLength` positions.
    func makeCache(sequences: Int, contextLength: Int) throws -> any KVCache
    /// A paged cache for all layers this instance holds: `sequences` slots of at most `contextLength` positions
    /// reading `paging.blockCount` shared blocks through block tables.
    func makePagedCache(sequences: Int, contextLength: Int, paging: KVPaging) throws -> PagedKVCache

    /// Runs the batch and writes `[batch.logitCount × vocabularySize]` logits, in batch order. Records the
    /// batch's positions in `cache` (positions past the context throw `contextFull` before anything is written).
    func forward(_ batch: Batch, cache: any KVCache, logits: UnsafeMutableBufferPointer<Float>) throws

    /// Token embeddings of the batch into `hidden` `[batch.count × hiddenSize]`.
    func embed(_ batch: Batch, into hidden: UnsafeMutablePointer<Float>) throws
    /// Layers `layers` over `hidden` in place, writing the batch's keys and values into `cache` (which must hold
    /// those layers). Does not advance the cache: the caller commits once all its layers ran (`cache.commit`).
    func forward(layers: Range<Int>, hidden: UnsafeMutablePointer<Float>, batch: Batch, cache: any KVCache) throws
    /// Final norm and output head for the tokens that want logits: `[batch.logitCount × vocabularySize]`.
    func logits(hidden: UnsafePointer<Float>, batch: Batch, into logits: UnsafeMutablePointer<Float>) throws
}

extension LanguageModel {
    /// Convenience form returning a new array of `batch.logitCount × vocabularySize` logits.
    public func forward(_ batch: Batch, cache: any KVCache) throws -> [Float] {
        var out = [Float](repeating: 0, count: batch.logitCount * vocabularySize)
        try out.withUnsafeMutableBufferPointer { try forward(batch, cache: cache, logits: $0) }
        return out
    }
}

extension KVCache {
    /// Checks that the batch fits: equal array lengths, known slots, consecutive positions per slot starting at
    /// most at the slot's offset, and every position inside the context (else `contextFull`).
    public func check(_ batch: Batch) throws {
        let n = batch.count
        guard batch.positions.count == n, batch.sequences.count == n, batch.wantsLogits.count == n else {
            throw ModelError.invalidBatch("arrays differ in length: \(n) tokens, \(batch.positions.count) positions, \(batch.sequences.count) sequences, \(batch.wantsLogits.count) logit flags")
        }
        try withUnsafeTemporaryAllocation(of: Int.self, capacity: sequenceCount) { next in  // (sequences,) next position
            next.initialize(repeating: -1)
            for i in 0..<n {
                let s = batch.sequences[i], p = batch.positions[i]
                guard s >= 0, s < sequenceCount else {
                    throw ModelError.invalidBatch("token \(i): sequence slot \(s) outside 0..<\(sequenceCount)")
                }
                if next[s] < 0 {
                    guard p >= 0, p <= offset(of: s) else {
                        throw ModelError.invalidBatch("token \(i): sequence \(s) holds \(offset(of: s)) positions, cannot continue at \(p)")
                    }
                } else if p != next[s] {
                    throw ModelError.invalidBatch("token \(i): sequence \(s) expects position \(next[s]), found \(p)")
                }
                guard p < contextLength else { throw ModelError.contextFull(sequence: s, limit: contextLength) }
                guard p < capacity(of: s) else {
                    throw ModelError.invalidBatch("token \(i): sequence \(s) has KV blocks for \(capacity(of: s)) positions, not position \(p)")
                }
                next[s] = p + 1
            }
        }
    }

    /// Records the batch's positions as stored (after all of this cache's layers ran).
    public func commit(_ batch: Batch) {
        for i in 0..<batch.count { setOffset(batch.positions[i] + 1, of: batch.sequences[i]) }
    }
}
