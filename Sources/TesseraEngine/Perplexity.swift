import Foundation
import TesseraModels

/// Teacher-forced perplexity of a token sequence: mean negative log-likelihood of each token given the ones before.
public struct PerplexityResult: Sendable {
    public let tokens: Int
    public let meanNLL: Double
    public var perplexity: Double { exp(meanNLL) }
}

public enum Perplexity {
    /// Scores `tokens` as one window (the first token is context only). The window must fit the executor's context.
    public static func evaluate(_ tokens: [Int], executor: any StepExecutor, slot: Int = 0) throws -> PerplexityResult {
        guard tokens.count >= 2 else { throw GenerationError(description: "perplexity needs at least 2 tokens, got \(tokens.count)") }
        guard tokens.count <= executor.contextLength else {
            throw GenerationError(description: "\(tokens.count) tokens exceed the context of \(executor.contextLength) (raise --context)")
        }
        let vocab = executor.vocabularySize
        var batch = Batch(tokens: tokens, sequence: slot, startingAt: 0, allLogits: true)
        batch.wantsLogits[tokens.count - 1] = false      // nothing to predict after the last token
        var logits = [Float](repeating: 0, count: (tokens.count - 1) * vocab)
        try logits.withUnsafeMutableBufferPointer { try executor.executeAlone(batch, slot: slot, logits: $0) }
        var total = 0.0
        for i in 0..<(tokens.count - 1) {
            let row = logits[i * vocab ..< (i + 1) * vocab]
            let m = row.max()!
            var sum = 0.0
            for v in row { sum += exp(Double(v - m)) }
            total += (Double(m) + log(sum)) - Double(row[row.startIndex + tokens[i + 1]])
        }
        return PerplexityResult(tokens: tokens.count - 1, meanNLL: total / Double(tokens.count - 1))
    }
}
