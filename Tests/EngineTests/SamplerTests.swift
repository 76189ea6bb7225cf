import Foundation
import TesseraEngine
import TesseraTestSupport
import XCTest

/// Sampler, sampling parameters and the random generator, checked against distributions computed here
/// independently (Foundation `exp`, plain sorting) and against reference outputs of the published PRNG algorithms.
final class SamplerTests: XCTestCase {

    // MARK: - Random generator

    /// Reference values from a separate Python implementation of SplitMix64 seeding + xoshiro256**
    /// (its SplitMix64(0) starts with the published 0xE220A8397B1DCDAF).
    func testRandomGeneratorMatchesReferenceStream() {
        var g0 = RandomGenerator(seed: 0)
        XCTAssertEqual((0..<5).map { _ in g0.next() },
                       [0x99ec5f36cb75f2b4, 0xbf6e1f784956452a, 0x1a5f849d4933e6e0, 0x6aa594f1262d2d2c, 0xbba5ad4a1f842e59])
        var g42 = RandomGenerator(seed: 42)
        XCTAssertEqual((0..<5).map { _ in g42.next() },
                       [0x15780b2e0c2ec716, 0x6104d9866d113a7e, 0xae17533239e499a1, 0xecb8ad4703b360a1, 0xfde6dc7fe2ec5e64])
    }

    func testNextDoubleUsesTop53Bits() {
        var a = RandomGenerator(seed: 7), b = a
        var sum = 0.0
        for _ in 0..<10_000 {
            let d = a.nextDouble()
            XCTAssertEqual(d, Double(b.next() >> 11) / 9_007_199_254_740_992)   // 2^53
            XCTAssert(d >= 0 && d < 1)
            sum += d
        }
        XCTAssertEqual(sum / 10_000, 0.5, accuracy: 0.015)   // 5 sigma of a uniform mean
    }

    // MARK: - Greedy

    func testGreedyIsArgmaxWithTiesToLowestID() throws {
        var source = RandomGenerator(seed: 3)
        var sampler = try Sampler(parameters: .greedy, vocabularySize: 1000)
        for _ in 0..<50 {
            let logits = (0..<1000).map { _ in Float(source.nextDouble() * 20 - 10) }
            let expected = logits.indices.max { logits[$0] < logits[$1] || (logits[$0] == logits[$1] && $0 > $1) }
            XCTAssertEqual(sampler.sample(logits: logits, history: []), expected)
        }
        XCTAssertEqual(sampler.sample(logits: [1, 3, 3, 2], history: []), 1)
        XCTAssertEqual(sampler.sample(logits: [0, 0, 0], history: []), 0)
        XCTAssertEqual(sampler.sample(logits: [-.infinity, .nan, 2, .nan, 2], history: []), 2)
        XCTAssertEqual(sampler.random, RandomGenerator(seed: 0), "greedy draws no random numbers")
    }

    func testGreedyIsArgmaxAfterPenalties() throws {
        let logits: [Float] = [1, 4, 3.9, -2]
        var plain = try Sampler(parameters: .greedy, vocabularySize: 4)
        XCTAssertEqual(plain.sample(logits: logits, history: [1, 1]), 1)
        var penalised = try Sampler(parameters: SamplingParameters(temperature: 0, repetitionPenalty: 1.1),
                                    vocabularySize: 4)
        XCTAssertEqual(penalised.sample(logits: logits, history: [1, 1]), 2)   // 4 / 1.1 < 3.9
    }

    // MARK: - Distributions

    func testTemperatureSamplingMatchesSoftmax() throws {
        let logits: [Float] = [2.0, 1.0, 0.5, 0.0, -1.0, -2.5, 1.5, 0.2]
        for temperature in [0.7, 1.0, 1.8] {
            let expected = softmax(logits.map { Double($0) / temperature })
            let counts = try histogram(SamplingParameters(temperature: temperature, seed: 11), logits, draws: 20_000)
            assertMatches(counts, expected, "temperature \(temperature)")
        }
    }

    func testTopKKeepsOnlyTheKBest() throws {
        var source = RandomGenerator(seed: 5)
        let logits = (0..<200).map { _ in Float(source.nextDouble() * 4) }
        let best = Array(logits.indices.sorted { logits[$0] > logits[$1] || (logits[$0] == logits[$1] && $0 < $1) }
            .prefix(6))
        let counts = try histogram(SamplingParameters(topK: 6, seed: 1), logits, draws: 20_000)
        var expected = [Double](repeating: 0, count: logits.count)
        let kept = softmax(best.map { Double(logits[$0]) })
        for (i, id) in best.enumerated() { expected[id] = kept[i] }
        assertMatches(counts, expected, "top-k 6")

        // Ties at the boundary go to the lower id; top-k with k >= vocabulary is off.
        let tied = try histogram(SamplingParameters(topK: 2, seed: 2), [5, 4, 4, 4, 0], draws: 2000)
        XCTAssertEqual(tied.indices.filter { tied[$0] > 0 }, [0, 1])
        let evicted = try histogram(SamplingParameters(topK: 3, seed: 2), [3, 3, 3, 5, 1], draws: 2000)
        XCTAssertEqual(evicted.indices.filter { evicted[$0] > 0 }, [0, 1, 3])   // the highest tied id leaves
        let all = try histogram(SamplingParameters(topK: 9, seed: 2), [0, 0, 0], draws: 3000)
        XCTAssert(all.allSatisfy { $0 > 800 })
    }

    func testTopPKeepsTheMinimalNucleus() throws {
        // Probabilities 0.05 / 0.5 / 0.1 / 0.2 / 0.15 at ids 0...4: sorted 0.5, 0.2, 0.15 | 0.1, 0.05.
        let probabilities = [0.05, 0.5, 0.1, 0.2, 0.15]
        let logits = probabilities.map { Float(log($0)) }
        let counts = try histogram(SamplingParameters(topP: 0.8, seed: 4), logits, draws: 20_000)
        let nucleus: Set = [1, 3, 4]
        let mass = nucleus.map { probabilities[$0] }.reduce(0, +)
        assertMatches(counts, probabilities.indices.map { nucleus.contains($0) ? probabilities[$0] / mass : 0 }, "top-p")

        let single = try histogram(SamplingParameters(topP: 0.3, seed: 4), logits, draws: 1000)
        XCTAssertEqual(single[1], 1000)
        // Equal probabilities are ordered by id: 0.29 + 0.29 >= 0.5 keeps the two lowest of the three tied ids.
        let tied = try histogram(SamplingParameters(topP: 0.5, seed: 4), [1, 2, 2, 2, 0], draws: 2000)
        XCTAssertEqual(tied.indices.filter { tied[$0] > 0 }, [1, 2])
    }

    func testMinPIsRelativeToTheMostLikelyToken() throws {
        // Threshold 0.3 * 0.4 = 0.12 keeps 0.4, 0.3, 0.15.
        let probabilities = [0.1, 0.4, 0.05, 0.15, 0.3]
        let logits = probabilities.map { Float(log($0)) }
        let counts = try histogram(SamplingParameters(minP: 0.3, seed: 8), logits, draws: 20_000)
        let kept: Set = [1, 3, 4]
        let mass = kept.map { probabilities[$0] }.reduce(0, +)
        assertMatches(counts, probabilities.indices.map { kept.contains($0) ? probabilities[$0] / mass : 0 }, "min-p")
    }

    /// Every stage at once, with the expected distribution built stage by stage in the documented order.
    func testPipelineOrder() throws {
        var source = RandomGenerator(seed: 21)
        let logits = (0..<300).map { _ in Float(source.nextDouble() * 6 - 3) }
        let history = [7, 7, 12, 250, 12, 7, 999, -4]
        let parameters = SamplingParameters(temperature: 0.6, topK: 20, topP: 0.9, minP: 0.08, repetitionPenalty: 1.3,
                                            presencePenalty: 0.2, frequencyPenalty: 0.1, seed: 99)
        // Independent: penalties, sort, top-k, temperature, softmax, top-p, min-p.
        let penalised = referencePenalties(logits, history: history, parameters)
        let order = penalised.indices.sorted { penalised[$0] > penalised[$1] || (penalised[$0] == penalised[$1] && $0 < $1) }
        let topK = Array(order.prefix(parameters.topK))
        let p = softmax(topK.map { Double(penalised[$0]) / parameters.temperature })
        var keep = 0, cumulative = 0.0
        while keep < p.count {
            if keep > 0 && p[keep] < parameters.minP * p[0] { break }
            cumulative += p[keep]; keep += 1
            if cumulative >= parameters.topP { break }
        }
        let mass = p.prefix(keep).reduce(0, +)
        var expected = [Double](repeating: 0, count: logits.count)
        for i in 0..<keep { expected[topK[i]] = p[i] / mass }
        XCTAssertGreaterThan(keep, 2, "test setup: several tokens must survive")

        var sampler = try Sampler(parameters: parameters, vocabularySize: logits.count)
        var counts = [Int](repeating: 0, count: logits.count)
        for _ in 0..<20_000 { counts[sampler.sample(logits: logits, history: history)] += 1 }
        assertMatches(counts, expected, "pipeline")
    }

    func testInfiniteAndNaNLogitsAreNeverDrawn() throws {
        let logits: [Float] = [-.infinity, 1, .nan, 0.5, -.infinity]
        for parameters in [SamplingParameters(seed: 1), SamplingParameters(topK: 3, seed: 1),
                           SamplingParameters(topP: 0.99, seed: 1)] {
            let counts = try histogram(parameters, logits, draws: 2000)
            XCTAssertEqual(counts[0] + counts[2] + counts[4], 0, "\(parameters)")
            XCTAssert(counts[1] > 0 && counts[3] > 0)
        }
        let inf = try histogram(SamplingParameters(seed: 1), [1, .infinity, 3, .infinity], draws: 2000)
        XCTAssertEqual(inf[0] + inf[2], 0)
        XCTAssert(inf[1] > 800 && inf[3] > 800)
        var sampler = try Sampler(parameters: SamplingParameters(seed: 1), vocabularySize: 3)
        XCTAssertEqual(sampler.sample(logits: [-.infinity, -.infinity, -.infinity], history: []), 0)
        XCTAssertEqual(sampler.sample(logits: [], history: []), 0)
    }

    // MARK: - Penalties

    func testEachPenaltyChangesExactlyTheWindowTokens() throws {
        let logits: [Float] = [2.0, -1.5, 0.0, 3.0, -0.5, 1.25, 4.0, -3.0, 0.75, 1.0]
        // A window of 8 sees [3, 3, -1, 1, 9, 3, 42, 2]: ids outside the vocabulary take a place but count for
        // nothing; 6 and 8 are older than the window.
        let history = [6, 8, 6, 3, 3, -1, 1, 9, 3, 42, 2]
        let cases: [SamplingParameters] = [
            SamplingParameters(repetitionPenalty: 1.5, penaltyWindow: 8),
            SamplingParameters(presencePenalty: 0.7, penaltyWindow: 8),
            SamplingParameters(frequencyPenalty: 0.4, penaltyWindow: 8),
            SamplingParameters(repetitionPenalty: 0.8, presencePenalty: -0.3, frequencyPenalty: 0.25, penaltyWindow: 8),
            SamplingParameters(repetitionPenalty: 1.5, presencePenalty: 1, frequencyPenalty: 1, penaltyWindow: 0),
        ]
        for parameters in cases {
            var sampler = try Sampler(parameters: parameters, vocabularySize: logits.count)
            var actual = logits
            actual.withUnsafeMutableBufferPointer { sampler.applyPenalties(to: $0, history: history) }
            let expected = referencePenalties(logits, history: history, parameters)
            for i in logits.indices { XCTAssertEqual(actual[i], expected[i], accuracy: 1e-5, "token \(i), \(parameters)") }
            let touched = parameters.penaltyWindow == 0 ? [] : [1, 2, 3, 9]
            for i in logits.indices where !touched.contains(i) { XCTAssertEqual(actual[i], logits[i], "token \(i)") }
            // A second call must start from a clean count table.
            var again = logits
            again.withUnsafeMutableBufferPointer { sampler.applyPenalties(to: $0, history: history) }
            XCTAssertEqual(again, actual)
        }
    }

    // MARK: - Determinism

    func testSameSeedSameDrawsDifferentSeedDifferentDraws() throws {
        var source = RandomGenerator(seed: 9)
        let logits = (0..<512).map { _ in Float(source.nextDouble() * 3) }
        func run(_ seed: UInt64, topP: Double = 0.95) throws -> [Int] {
            var sampler = try Sampler(parameters: SamplingParameters(temperature: 0.9, topK: 100, topP: topP,
                                                                     repetitionPenalty: 1.1, seed: seed),
                                      vocabularySize: logits.count)
            var history: [Int] = [1, 2, 3]
            for _ in 0..<200 { history.append(sampler.sample(logits: logits, history: history)) }
            return history
        }
        XCTAssertEqual(try run(123), try run(123))
        XCTAssertNotEqual(try run(123), try run(124))
        XCTAssertNotEqual(try run(5, topP: 1), try run(6, topP: 1))

        // A copy continues the same stream with its own scratch; the pointer and array entry points agree.
        var a = try Sampler(parameters: SamplingParameters(seed: 77), vocabularySize: logits.count)
        _ = a.sample(logits: logits, history: [])
        var b = a
        for _ in 0..<50 {
            var copy = logits
            let viaPointer = copy.withUnsafeMutableBufferPointer { a.sample(logits: $0, history: [Int]()) }
            XCTAssertEqual(viaPointer, b.sample(logits: logits, history: []))
        }
    }

    func testLogitsLongerThanTheVocabularyGrowTheScratch() throws {
        var sampler = try Sampler(parameters: SamplingParameters(topP: 0.5, seed: 3), vocabularySize: 2)
        var logits = [Float](repeating: -5, count: 1000)
        logits[777] = 10
        XCTAssertEqual(sampler.sample(logits: logits, history: [777, 5000]), 777)
    }

    // MARK: - Validation

    func testInvalidParametersNameTheParameter() {
        let cases: [(SamplingParameters, String)] = [
            (SamplingParameters(temperature: -1), "temperature must be >= 0, got -1"),
            (SamplingParameters(temperature: .infinity), "temperature must be >= 0, got inf"),
            (SamplingParameters(topK: -3), "topK must be >= 0, got -3"),
            (SamplingParameters(topP: 0), "topP must be in (0, 1], got 0"),
            (SamplingParameters(topP: 1.5), "topP must be in (0, 1], got 1.5"),
            (SamplingParameters(minP: -0.1), "minP must be in [0, 1], got -0.1"),
            (SamplingParameters(repetitionPenalty: 0), "repetitionPenalty must be finite and > 0, got 0"),
            (SamplingParameters(presencePenalty: .nan), "presencePenalty must be finite, got nan"),
            (SamplingParameters(frequencyPenalty: -.infinity), "frequencyPenalty must be finite, got -inf"),
            (SamplingParameters(penaltyWindow: -1), "penaltyWindow must be >= 0, got -1"),
        ]
        for (parameters, message) in cases {
            XCTAssertThrowsError(try Sampler(parameters: parameters, vocabularySize: 10)) {
                XCTAssertEqual(($0 as? SamplingParameterError)?.description, message)
            }
        }
        XCTAssertThrowsError(try Sampler(parameters: SamplingParameters(), vocabularySize: 0)) {
            XCTAssertEqual("\($0)", "vocabularySize must be > 0, got 0")
        }
        XCTAssertNoThrow(try SamplingParameters(temperature: 0, topK: 0, topP: 1, minP: 1, repetitionPenalty: 0.5,
                                                presencePenalty: -2, frequencyPenalty: 2, penaltyWindow: 0).validate())
    }

    // MARK: - Helpers

    private func histogram(_ parameters: SamplingParameters, _ logits: [Float], draws: Int) throws -> [Int] {
        var sampler = try Sampler(parameters: parameters, vocabularySize: logits.count)
        var counts = [Int](repeating: 0, count: logits.count)
        for _ in 0..<draws { counts[sampler.sample(logits: logits, history: [])] += 1 }
        return counts
    }

    /// Each token within 5 sigma of its binomial expectation, impossible tokens never drawn, and a chi-square
    /// test over the possible tokens at significance 1e-4.
    private func assertMatches(_ counts: [Int], _ expected: [Double], _ label: String,
                               file: StaticString = #filePath, line: UInt = #line) {
        let n = Double(counts.reduce(0, +))
        var chiSquare = 0.0, bins = 0
        for (i, p) in expected.enumerated() {
            if p == 0 {
                XCTAssertEqual(counts[i], 0, "\(label): token \(i) is outside the allowed set", file: file, line: line)
                continue
            }
            let mean = n * p, sigma = (n * p * (1 - p)).squareRoot()
            XCTAssertLessThanOrEqual(abs(Double(counts[i]) - mean), 5 * sigma + 1,
                                     "\(label): token \(i) drawn \(counts[i]) times, expected \(mean)", file: file, line: line)
            chiSquare += (Double(counts[i]) - mean) * (Double(counts[i]) - mean) / mean
            bins += 1
        }
        // Upper 1e-4 quantiles of chi-square for 1...10 degrees of freedom.
        let critical = [15.14, 18.42, 21.11, 23.51, 25.74, 27.86, 29.88, 31.83, 33.72, 35.56]
        if bins >= 2 && bins - 1 <= critical.count {
            XCTAssertLessThan(chiSquare, critical[bins - 2], "\(label): chi-square", file: file, line: line)
        }
    }

    private func softmax(_ x: [Double]) -> [Double] {
        let m = x.max() ?? 0
        let e = x.map { exp($0 - m) }
        let s = e.reduce(0, +)
        return e.map { $0 / s }
    }

    /// llama.cpp's repetition rule, then OpenAI's presence/frequency rule, over the last `penaltyWindow` ids.
    private func referencePenalties(_ logits: [Float], history: [Int], _ p: SamplingParameters) -> [Float] {
        var counts: [Int: Int] = [:]
        for t in history.suffix(p.penaltyWindow) where logits.indices.contains(t) { counts[t, default: 0] += 1 }
        var out = logits
        for (t, c) in counts {
            var v = Double(out[t])
            v = v > 0 ? v / p.repetitionPenalty : v * p.repetitionPenalty
            v -= p.presencePenalty + p.frequencyPenalty * Double(c)
            out[t] = Float(v)
        }
        return out
    }
}
