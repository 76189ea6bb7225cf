import ArgumentParser
import TesseraEngine

/// How the coordinator batches requests and how big the KV block pool is (generate, perplexity, serve, batch).
struct SchedulingOptions: ParsableArguments {
    @Option(help: "Most tokens one step runs: running decodes first, then chunks of waiting prompts.")
    var maxBatchTokens = 512
    @Option(help: "Most sequences running at once (the KV cache's slots). Default: the number of prompts.")
    var maxSequences: Int?
    @Option(help: "Positions per KV cache block.")
    var kvBlockSize = 16
    @Option(help: "Memory for KV cache blocks per rank, e.g. 512M or 2G. Default: every running sequence's whole context, at most half the available memory.", transform: parseByteCount)
    var kvCacheMemory: Int?
    @Flag(inversion: .prefixedNo, help: "Share full KV blocks between requests with the same prefix (a system prompt, earlier chat turns). Default: on in serve and batch, off in generate.")
    var prefixCache: Bool?
    @Option(help: "Most steps in flight at once under pipeline parallelism: the first stage starts the next step while later stages finish earlier ones, each step with its own share of the running sequences. Default: one per stage; 1 samples each step before the next starts.")
    var stepsInFlight: Int?

    func scheduler(prefixCacheByDefault: Bool = false) -> SchedulerOptions {
        SchedulerOptions(maxBatchTokens: maxBatchTokens, maxSequences: maxSequences, prefixCache: prefixCache ?? prefixCacheByDefault,
                         stepsInFlight: stepsInFlight)
    }

    func validate() throws {
        guard maxBatchTokens > 0 else { throw ValidationError("--max-batch-tokens must be positive, got \(maxBatchTokens)") }
        if let m = maxSequences, m <= 0 { throw ValidationError("--max-sequences must be positive, got \(m)") }
        if let d = stepsInFlight, d <= 0 { throw ValidationError("--steps-in-flight must be positive, got \(d)") }
        guard kvBlockSize > 0 else { throw ValidationError("--kv-block-size must be positive, got \(kvBlockSize)") }
    }
}

/// `123`, `64K`, `512M`, `2G` (powers of 1024; a trailing B or iB allowed) as bytes.
func parseByteCount(_ text: String) throws -> Int {
    var t = text.uppercased()
    for suffix in ["IB", "B"] where t.hasSuffix(suffix) && t.count > suffix.count { t.removeLast(suffix.count); break }
    let shift: Int
    switch t.last {
    case "K": shift = 10
    case "M": shift = 20
    case "G": shift = 30
    case "T": shift = 40
    default: shift = 0
    }
    if shift > 0 { t.removeLast() }
    guard let value = Double(t), value > 0, value * Double(1 << shift) < Double(1 << 50) else {
        throw ValidationError("'\(text)' is not a positive size such as 65536, 64K, 512M or 2G")
    }
    return Int(value * Double(1 << shift))
}
