// What a request asks of the sampler, validated before any token is drawn.

/// Sampling settings for one sequence. Every filter has an "off" value; the defaults are pure sampling from the
/// model's distribution (temperature 1, nothing filtered, no penalties), as in Hugging Face and the OpenAI API.
///
/// Order of operations for each token (see `Sampler`):
/// 1. penalties on the raw logits over the last `penaltyWindow` tokens of the history (prompt included):
///    repetition first, then presence and frequency;
/// 2. greedy (`temperature == 0`): the argmax of the penalised logits, ties to the lowest token id — nothing else runs;
/// 3. top-k: keep the `topK` largest logits (ties to the lower id);
/// 4. temperature: divide the kept logits by `temperature`;
/// 5. softmax over the kept tokens;
/// 6. top-p: keep the smallest set of most probable tokens whose probability sum reaches `topP`;
/// 7. min-p: keep tokens whose probability is at least `minP` times the largest probability;
/// 8. draw one token in proportion to the remaining probabilities (inverse CDF, one 53-bit uniform per token).
public struct SamplingParameters: Sendable, Equatable {
    /// Softmax temperature; 0 means greedy (argmax). Must be finite and >= 0.
    public var temperature: Double
    /// Keep only the k most likely tokens; 0 = off. Must be >= 0.
    public var topK: Int
    /// Nucleus sampling threshold; 1 = off. Must be in (0, 1].
    public var topP: Double
    /// Minimum probability relative to the most likely token; 0 = off. Must be in [0, 1].
    public var minP: Double
    /// Multiplicative penalty on tokens in the window (llama.cpp / Hugging Face rule: a logit > 0 is divided by it,
    /// any other logit multiplied); 1 = off. Must be finite and > 0.
    public var repetitionPenalty: Double
    /// OpenAI presence penalty: subtracted once from the logit of every token that occurs in the window; 0 = off.
    public var presencePenalty: Double
    /// OpenAI frequency penalty: subtracted once per occurrence in the window; 0 = off.
    public var frequencyPenalty: Double
    /// How many of the most recent history tokens the penalties look at (llama.cpp's `repeat_last_n`); 0 = none.
    public var penaltyWindow: Int
    /// Seed of the sampler's `RandomGenerator`.
    public var seed: UInt64

    public init(temperature: Double = 1, topK: Int = 0, topP: Double = 1, minP: Double = 0,
                repetitionPenalty: Double = 1, presencePenalty: Double = 0, frequencyPenalty: Double = 0,
                penaltyWindow: Int = 64, seed: UInt64 = 0) {
        self.temperature = temperature; self.topK = topK; self.topP = topP; self.minP = minP
        self.repetitionPenalty = repetitionPenalty
        self.presencePenalty = presencePenalty; self.frequencyPenalty = frequencyPenalty
        self.penaltyWindow = penaltyWindow; self.seed = seed
    }

    /// Greedy decoding without penalties: always the most likely token.
    public static let greedy = SamplingParameters(temperature: 0)

    /// True when at least one penalty changes logits.
    public var hasPenalties: Bool {
        penaltyWindow > 0 && (repetitionPenalty != 1 || presencePenalty != 0 || frequencyPenalty != 0)
    }

    /// Throws `SamplingParameterError` naming the first out-of-range parameter.
    public func validate() throws {
        func fail(_ name: String, _ rule: String, _ value: Double) -> SamplingParameterError {
            SamplingParameterError(parameter: name, reason: "must be \(rule), got \(formatted(value))")
        }
        guard temperature.isFinite, temperature >= 0 else { throw fail("temperature", ">= 0", temperature) }
        guard topK >= 0 else { throw fail("topK", ">= 0", Double(topK)) }
        guard topP > 0, topP <= 1 else { throw fail("topP", "in (0, 1]", topP) }
        guard minP >= 0, minP <= 1 else { throw fail("minP", "in [0, 1]", minP) }
        guard repetitionPenalty.isFinite, repetitionPenalty > 0 else {
            throw fail("repetitionPenalty", "finite and > 0", repetitionPenalty)
        }
        guard presencePenalty.isFinite else { throw fail("presencePenalty", "finite", presencePenalty) }
        guard frequencyPenalty.isFinite else { throw fail("frequencyPenalty", "finite", frequencyPenalty) }
        guard penaltyWindow >= 0 else { throw fail("penaltyWindow", ">= 0", Double(penaltyWindow)) }
    }
}

/// A sampling parameter out of range; the description reads e.g. `temperature must be >= 0, got -1`.
public struct SamplingParameterError: Error, CustomStringConvertible, Equatable {
    /// The parameter's name as spelled in `SamplingParameters`.
    public let parameter: String
    public let reason: String
    public var description: String { "\(parameter) \(reason)" }
}

/// Integral values without a trailing ".0" (`-1`, not `-1.0`).
private func formatted(_ value: Double) -> String {
    if value.isFinite, value == value.rounded(), abs(value) < 1e15 { return String(Int64(value)) }
    return "\(value)"
}
