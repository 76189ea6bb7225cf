// Checks that keep the Llama forward pass memory-safe: layer shapes against the arena, batch sizes, token ids.

extension LlamaModel {
    /// Checks that every block and the head chain together within the config's sizes (so the arena holds their
    /// activations) and grows the weight-row scratch to what the linears need.
    func fitLayout() throws {
        let c = config, d = c.headDim
        func fail(_ what: String) -> ModelError { .invalidBuffer("model layout: \(what)") }
        var scratch = head.scratchCount
        guard head.inputSize == c.hiddenSize, head.outputSize == c.vocabularySize else {
            throw fail("head maps \(head.inputSize) -> \(head.outputSize), expected \(c.hiddenSize) -> \(c.vocabularySize)")
        }
        guard norm.count == c.hiddenSize else { throw fail("final norm has \(norm.count) weights, expected \(c.hiddenSize)") }
        for (i, b) in blocks.enumerated() {
            let l = heldLayers.lowerBound + i
            let a = b.attention, m = b.mlp
            let q = a.headCount * d, kv = a.kvHeadCount * d
            let shapes = [(a.q, c.hiddenSize, q), (a.k, c.hiddenSize, kv), (a.v, c.hiddenSize, kv), (a.o, q, c.hiddenSize),
                          (m.gate, c.hiddenSize, m.gate.outputSize), (m.up, c.hiddenSize, m.gate.outputSize),
                          (m.down, m.gate.outputSize, c.hiddenSize)]
            for (i, (linear, input, output)) in shapes.enumerated() {
                guard linear.inputSize == input, linear.outputSize == output else {
                    let name = ["q", "k", "v", "o", "gate", "up", "down"][i]
                    throw fail("layer \(l) \(name) maps \(linear.inputSize) -> \(linear.outputSize), expected \(input) -> \(output)")
                }
                scratch = max(scratch, linear.scratchCount)
            }
            guard a.kvHeadCount > 0, a.headCount % a.kvHeadCount == 0, q <= c.queryDim,
                  kv == kvDim, m.gate.outputSize <= c.intermediateSize else {
                throw fail("layer \(l) has \(a.headCount)/\(a.kvHeadCount) heads and \(m.gate.outputSize) MLP features, beyond the config's \(c.headCount)/\(c.kvHeadCount) and \(c.intermediateSize)")
            }
            guard b.attentionNorm.count == c.hiddenSize, b.mlpNorm.count == c.hiddenSize else {
                throw fail("layer \(l) norms have \(b.attentionNorm.count)/\(b.mlpNorm.count) weights, expected \(c.hiddenSize)")
            }
        }
        workspace.reserveRowScratch(scratch)
    }

    func checkChunk(_ batch: Batch) throws {
        guard batch.count <= maxBatchTokens else {
            throw ModelError.invalidBatch("\(batch.count) tokens exceed the arena's \(maxBatchTokens); split the batch")
        }
    }

    func checkTokens(_ batch: Batch) throws {
        for (i, token) in batch.tokens.enumerated() where token < 0 || token >= vocabularySize {
            throw ModelError.invalidBatch("token \(i): id \(token) outside the vocabulary 0..<\(vocabularySize)")
        }
    }
}
