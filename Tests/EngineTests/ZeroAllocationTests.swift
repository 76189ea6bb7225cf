// Steady-state decoding allocates nothing: 64 decode steps of the whole generation loop (forward pass, sampling,
// stop rules, streaming detokenisation) make zero heap allocations on every thread, counted by the malloc family
// the test executable interposes (CAllocationCounter).
import CAllocationCounter
import Foundation
import TesseraEngine
import TesseraFormats
import TesseraKernels
import TesseraModels
import TesseraTestSupport
import TesseraTokenizer
import XCTest

final class ZeroAllocationTests: XCTestCase {
    /// Allocations during decode steps `warmup ..< warmup + 64` of one generation.
    func allocations(model path: String, compute: ComputeOptions, kvCache: KVCacheType = .f32,
                     sampling: SamplingParameters, prompts: Int = 1, warmup: Int = 4) throws -> Int64 {
        let source = try ModelSource.open(path: path)
        let model = try ModelRegistry.load(source, options: LoadOptions(compute: compute, kvCache: kvCache))
        let tokenizer = try Tokenizer.load(source)
        let executor = try LocalExecutor(model: model, sequenceSlots: prompts, contextLength: 256)
        let generator = Generator(executor: executor, tokenizer: tokenizer)
        var counted: Int64 = -1
        generator.onDecodeStep = { step in
            if step == warmup { tac_start() }
            if step == warmup + 64 { counted = tac_stop() }
        }
        let prompt = tokenizer.encode("Once upon a time, there was a little robot who")
        let requests = (0..<prompts).map { i in
            var p = sampling
            p.seed = UInt64(i + 1)
            return GenerationRequest(promptTokens: prompt + [i], maxTokens: warmup + 70, sampling: p, stopStrings: ["THE END"],
                                     stopAtEOS: false)
        }
        var streamed = 0
        let (outputs, _) = try generator.generate(requests) { _, text in streamed += text.utf8.count }
        XCTAssertEqual(outputs.map(\.tokens.count), Array(repeating: warmup + 70, count: prompts), "ran the steps")
        XCTAssertGreaterThan(streamed, 0)
        return counted
    }

    func testCounterSeesAllocations() {
        XCTAssertEqual(tac_active(), 1, "the malloc family is not interposed: the counter would see nothing")
        tac_start()
        let array = (0..<100).map { $0 * 2 }
        let counted = tac_stop()
        XCTAssertEqual(array.count, 100)
        XCTAssertGreaterThan(counted, 0, "an Array allocation was not counted")
    }

    func testDecodeStepsAllocateNothing() throws {
        var sampled = SamplingParameters()
        sampled.temperature = 0.8; sampled.topK = 40; sampled.topP = 0.95; sampled.minP = 0.05
        sampled.repetitionPenalty = 1.1
        var greedy = SamplingParameters()
        greedy.temperature = 0
        let smol = Repo.defaultModel.path
        let tiny = Repo.shared.appendingPathComponent("models/tinystories-656k").path
        let runs: [(String, String, ComputeOptions, KVCacheType, SamplingParameters, Int)] = [
            ("SmolLM2 fast, 2 threads, sampled", smol, ComputeOptions(mode: .fast, pool: ThreadPool(threads: 2)), .f32, sampled, 1),
            ("SmolLM2 fast, 1 thread, greedy, 8-bit KV", smol, ComputeOptions(mode: .fast), .q8_0, greedy, 1),
            ("SmolLM2 exact, greedy", smol, .exact, .f32, greedy, 1),
            ("SmolLM2 fast unfused, 4 sequences", smol, ComputeOptions(mode: .fast, fused: false), .f32, sampled, 4),
            ("TinyStories-656K exact, 2 threads, sampled", tiny, ComputeOptions(pool: ThreadPool(threads: 2)), .f32, sampled, 1),
        ]
        for (name, path, compute, kv, sampling, prompts) in runs {
            let counted = try allocations(model: path, compute: compute, kvCache: kv, sampling: sampling, prompts: prompts)
            XCTAssertEqual(counted, 0, "\(name): heap allocations over 64 decode steps")
        }
    }
}
