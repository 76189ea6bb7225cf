// A batch of tokens from one or more sequences, flattened, as one forward pass consumes it.

/// Tokens of several sequences in one flat list (`count` entries in each array).
/// Token `i` is `tokens[i]` at `positions[i]` of the sequence in cache slot `sequences[i]`; the forward pass
/// returns logits, in batch order, only for tokens whose `wantsLogits[i]` is set.
/// Within a slot, tokens must be consecutive positions in order, starting at most at the slot's cached length.
public struct Batch: Sendable, Equatable {
    public var tokens: [Int] = []
    public var positions: [Int] = []
    public var sequences: [Int] = []
    public var wantsLogits: [Bool] = []

    public init() {}

    /// One sequence's tokens at positions `start...`, logits for the last one only or for all.
    public init(tokens: [Int], sequence: Int = 0, startingAt start: Int = 0, allLogits: Bool = false) {
        for (i, token) in tokens.enumerated() {
            append(token: token, position: start + i, sequence: sequence,
                   wantsLogits: allLogits || i == tokens.count - 1)
        }
    }

    public var count: Int { tokens.count }
    /// Number of logit rows the forward pass writes.
    public var logitCount: Int { wantsLogits.reduce(0) { $0 + ($1 ? 1 : 0) } }

    public mutating func append(token: Int, position: Int, sequence: Int, wantsLogits: Bool) {
        tokens.append(token); positions.append(position); sequences.append(sequence)
        self.wantsLogits.append(wantsLogits)
    }

    /// Empties the batch, keeping its storage for the next step.
    public mutating func removeAll() {
        tokens.removeAll(keepingCapacity: true); positions.removeAll(keepingCapacity: true)
        sequences.removeAll(keepingCapacity: true); wantsLogits.removeAll(keepingCapacity: true)
    }
}
