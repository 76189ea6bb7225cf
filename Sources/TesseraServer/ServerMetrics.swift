// /metrics in Prometheus text format. Names are vLLM's with a `tessera:` prefix, so dashboards built for vLLM map
// over: gauges of running and waiting requests and KV cache usage, token and preemption counters, prefix-cache
// queries and hits (in tokens), and latency histograms.
import Foundation
import Prometheus
import TesseraEngine

public final class ServerMetrics: Sendable {
    public let registry: PrometheusCollectorRegistry
    let running, waiting, kvUsage: Gauge
    let promptTokens, generationTokens, preemptions, prefixQueries, prefixHits: Counter
    let timeToFirstToken, interTokenLatency, endToEnd, queueTime: ValueHistogram
    let lastCounters = LockedCounters()

    public init() {
        let registry = PrometheusCollectorRegistry()
        self.registry = registry
        func gauge(_ name: String, _ help: String) -> Gauge {
            registry.makeGauge(descriptor: MetricNameDescriptor(metricName: "tessera:" + name, unitName: "", helpText: help))
        }
        func counter(_ name: String, _ help: String) -> Counter {
            registry.makeCounter(descriptor: MetricNameDescriptor(metricName: "tessera:" + name, unitName: "", helpText: help))
        }
        func histogram(_ name: String, _ help: String, _ buckets: [Double]) -> ValueHistogram {
            registry.makeValueHistogram(descriptor: MetricNameDescriptor(metricName: "tessera:" + name, unitName: "seconds", helpText: help),
                                        buckets: buckets)
        }
        running = gauge("num_requests_running", "Requests in the running batch.")
        waiting = gauge("num_requests_waiting", "Requests waiting to be scheduled.")
        kvUsage = gauge("kv_cache_usage_perc", "Fraction of KV cache blocks in use (1 = full).")
        promptTokens = counter("prompt_tokens_total", "Prompt tokens submitted.")
        generationTokens = counter("generation_tokens_total", "Tokens generated.")
        preemptions = counter("num_preemptions_total", "Requests preempted for lack of KV blocks (recomputed later).")
        prefixQueries = counter("prefix_cache_queries_total", "Prompt tokens looked up in the prefix cache.")
        prefixHits = counter("prefix_cache_hits_total", "Prompt tokens found in the prefix cache.")
        let latency = [0.001, 0.005, 0.01, 0.02, 0.04, 0.06, 0.08, 0.1, 0.25, 0.5, 0.75, 1, 2.5, 5, 7.5, 10, 20, 40, 80]
        timeToFirstToken = histogram("time_to_first_token", "Time from arrival to the first generated token.", latency)
        interTokenLatency = histogram("inter_token_latency", "Time between consecutive generated tokens of a request.", latency)
        endToEnd = histogram("e2e_request_latency", "Time from arrival to the end of a request.", latency)
        queueTime = histogram("request_queue_time", "Time from arrival to the first step that ran a request.", latency)
    }

    /// Sets gauges and advances counters by what changed since the last status.
    func update(_ s: EngineStatus) {
        running.set(Double(s.running))
        waiting.set(Double(s.waiting + s.inbox))
        kvUsage.set(s.kvBlocks > 0 ? Double(s.kvBlocksUsed) / Double(s.kvBlocks) : 0)
        let now = [s.counters.promptTokens, s.counters.generatedTokens, s.counters.preemptions,
                   s.prefixQueriedTokens, s.prefixHitTokens]
        let delta = lastCounters.advance(to: now)
        for (counter, d) in zip([promptTokens, generationTokens, preemptions, prefixQueries, prefixHits], delta) where d > 0 {
            counter.increment(by: Int64(d))
        }
    }

    func requestFinished(_ o: GenerationOutput, latency: Double) {
        endToEnd.record(latency)
        if let t = o.timeToFirstToken { timeToFirstToken.record(t) }
        if let q = o.queueTime { queueTime.record(q) }
    }

    /// The exposition text.
    public func render() -> [UInt8] { registry.emitToBuffer() }
}

/// The counter values last exported (updates come from the engine thread only, but the type must be Sendable).
final class LockedCounters: @unchecked Sendable {
    private var last: [Int] = []
    private let lock = NSLock()
    func advance(to now: [Int]) -> [Int] {
        lock.lock(); defer { lock.unlock() }
        defer { last = now }
        return last.isEmpty ? now : zip(now, last).map { $0 - $1 }
    }
}
