import Foundation
import NIOCore
import NIOHTTP1
import NIOPosix
import TesseraFormats

/// An OpenAI-compatible server's address, from a URL such as `http://127.0.0.1:8080`.
struct Endpoint: Sendable, CustomStringConvertible {
    let host: String
    let port: Int
    let apiKey: String?

    init(host: String, port: Int, apiKey: String? = nil) { self.host = host; self.port = port; self.apiKey = apiKey }

    init(url: String, apiKey: String?) throws {
        guard let parts = URLComponents(string: url), parts.scheme == "http", let host = parts.host, !host.isEmpty else {
            throw LoadError("'\(url)' is not an http://HOST:PORT URL")
        }
        self.init(host: host, port: parts.port ?? 80, apiKey: apiKey)
    }

    var description: String { "http://\(host):\(port)" }
}

struct LoadError: Error, CustomStringConvertible {
    let description: String
    init(_ description: String) { self.description = description }
}

/// What one streamed request measured; times in seconds from the moment it was sent.
struct RequestRecord: Sendable {
    var error: String?
    var promptTokens = 0
    var outputTokens = 0
    var cachedTokens = 0
    var ttft = Double.nan
    var e2e = 0.0
    /// Gaps between successive chunks that carried text (inter-token latencies).
    var gaps: [Double] = []
    var finishReason: String?
    var ok: Bool { error == nil }
}

/// HTTP/1.1 exchanges over SwiftNIO, one connection per request (`Connection: close`), the response body handed over
/// in the pieces the socket delivers them in, so a streamed answer is timed as it arrives.
struct HTTPExchange {
    let group: EventLoopGroup

    /// Sends one request and calls `onBody` with each piece of the body; returns the status. Gives up (closing the
    /// connection) after `timeout`.
    func send(_ method: HTTPMethod, _ path: String, body: [UInt8]?, to endpoint: Endpoint, timeout: TimeAmount,
              onBody: (ByteBuffer) throws -> Void) async throws -> Int {
        let channel = try await ClientBootstrap(group: group)
            .connectTimeout(.seconds(10))
            .connect(host: endpoint.host, port: endpoint.port) { channel in
                channel.eventLoop.makeCompletedFuture {
                    try channel.pipeline.syncOperations.addHTTPClientHandlers()
                    return try NIOAsyncChannel<HTTPClientResponsePart, HTTPClientRequestPart>(wrappingChannelSynchronously: channel)
                }
            }
        let watchdog = channel.channel.eventLoop.scheduleTask(in: timeout) { channel.channel.close(promise: nil) }
        defer { watchdog.cancel() }
        return try await channel.executeThenClose { inbound, outbound in
            var head = HTTPRequestHead(version: .http1_1, method: method, uri: path)
            head.headers.add(name: "Host", value: "\(endpoint.host):\(endpoint.port)")
            head.headers.add(name: "Connection", value: "close")
            if let key = endpoint.apiKey { head.headers.add(name: "Authorization", value: "Bearer \(key)") }
            if let body {
                head.headers.add(name: "Content-Type", value: "application/json")
                head.headers.add(name: "Content-Length", value: String(body.count))
            }
            try await outbound.write(.head(head))
            if let body { try await outbound.write(.body(.byteBuffer(ByteBuffer(bytes: body)))) }
            try await outbound.write(.end(nil))
            var status = 0, ended = false
            for try await part in inbound {
                switch part {
                case .head(let h): status = Int(h.status.code)
                case .body(let piece): try onBody(piece)
                case .end: ended = true
                }
                if ended { break }
            }
            guard ended else { throw LoadError("the connection closed before the response ended (timed out after \(timeout.nanoseconds / 1_000_000_000) s?)") }
            return status
        }
    }

    /// GET `path`; the status, or nil when nothing answers.
    func status(_ path: String, at endpoint: Endpoint) async -> Int? {
        try? await send(.GET, path, body: nil, to: endpoint, timeout: .seconds(5)) { _ in }
    }

    /// One streamed completion: POSTs `body` to `path` and times each server-sent event that carries text.
    func stream(_ path: String, body: [UInt8], to endpoint: Endpoint, timeout: TimeAmount) async -> RequestRecord {
        var record = RequestRecord()
        var events = ServerSentEvents()
        var textChunks = 0
        let start = ContinuousClock.now
        var last = start
        func seconds(_ d: Duration) -> Double {
            Double(d.components.seconds) + Double(d.components.attoseconds) * 1e-18
        }
        do {
            let status = try await send(.POST, path, body: body, to: endpoint, timeout: timeout) { piece in
                let now = ContinuousClock.now
                for payload in events.feed(piece) {
                    let chunk = try StreamChunk(payload)
                    if let error = chunk.error { throw LoadError(error) }
                    if chunk.hasText {
                        textChunks += 1
                        if record.ttft.isNaN { record.ttft = seconds(now - start) } else { record.gaps.append(seconds(now - last)) }
                        last = now
                    }
                    if let usage = chunk.usage {
                        record.promptTokens = usage.prompt; record.outputTokens = usage.completion; record.cachedTokens = usage.cached
                    }
                    if let reason = chunk.finishReason { record.finishReason = reason }
                }
            }
            record.e2e = seconds(ContinuousClock.now - start)
            if status != 200 {
                record.error = "HTTP \(status): " + String(decoding: events.unparsed.prefix(300), as: UTF8.self)
            } else if !events.done {
                record.error = "the stream ended without data: [DONE]"
            } else if record.ttft.isNaN {
                record.error = "no text came back"
            }
            if record.outputTokens == 0 { record.outputTokens = textChunks }   // a server without usage in the stream
        } catch {
            record.e2e = seconds(ContinuousClock.now - start)
            record.error = "\(error)"
        }
        return record
    }
}

/// Splits a `text/event-stream` body into `data:` payloads as bytes arrive.
struct ServerSentEvents {
    private var pending: [UInt8] = []
    private(set) var done = false
    /// Bytes that were not events (an error body).
    private(set) var unparsed: [UInt8] = []

    mutating func feed(_ piece: ByteBuffer) -> [[UInt8]] {
        pending.append(contentsOf: piece.readableBytesView)
        var payloads: [[UInt8]] = []
        while let newline = pending.firstIndex(of: UInt8(ascii: "\n")) {
            var line = Array(pending[..<newline])
            pending.removeSubrange(...newline)
            if line.last == UInt8(ascii: "\r") { line.removeLast() }
            let prefix = Array("data:".utf8)
            guard line.starts(with: prefix) else {
                if !line.isEmpty && !line.starts(with: Array(":".utf8)) { unparsed += line + [10] }
                continue
            }
            var payload = line.dropFirst(prefix.count)
            if payload.first == UInt8(ascii: " ") { payload = payload.dropFirst() }
            if payload.elementsEqual("[DONE]".utf8) { done = true; continue }
            payloads.append(Array(payload))
        }
        return payloads
    }
}

/// The parts of one streamed completion or chat chunk the benchmark reads.
struct StreamChunk {
    var hasText = false
    var finishReason: String?
    var usage: (prompt: Int, completion: Int, cached: Int)?
    var error: String?

    init(_ payload: [UInt8]) throws {
        guard let object = (try? payload.withUnsafeBytes { try JSONValue.parse($0, path: "stream chunk") })?.object else {
            throw LoadError("a stream chunk is not a JSON object: \(String(decoding: payload.prefix(200), as: UTF8.self))")
        }
        if let error = object["error"] {
            self.error = error["message"]?.string ?? "\(error)"
        }
        if let choice = object["choices"]?.array?.first {
            let text = choice["text"]?.string ?? choice["delta"]?["content"]?.string ?? ""
            hasText = !text.isEmpty
            finishReason = choice["finish_reason"]?.string
        }
        if let usage = object["usage"], usage.object != nil {
            self.usage = (usage["prompt_tokens"]?.int ?? 0, usage["completion_tokens"]?.int ?? 0,
                          usage["prompt_tokens_details"]?["cached_tokens"]?.int ?? 0)
        }
    }
}

/// A load: `requests` bodies sent by `concurrency` streams, each sending its next request when the last one ends;
/// with a `rate`, requests also wait for their arrival time in a Poisson process of that many requests per second.
struct LoadPlan: Sendable {
    var requests: Int
    var concurrency: Int
    var rate: Double?
    var seed: UInt64 = 1

    /// Arrival offsets in seconds (all zero without a rate): exponential gaps from a seeded generator.
    func arrivals() -> [Double] {
        guard let rate, rate > 0 else { return Array(repeating: 0, count: requests) }
        var state = seed &* 0x9E37_79B9_7F4A_7C15 | 1
        var t = 0.0
        return (0..<requests).map { _ in
            state ^= state << 13; state ^= state >> 7; state ^= state << 17
            let u = (Double(state >> 11) + 0.5) / Double(1 << 53)
            t += -log(u) / rate
            return t
        }
    }
}

/// Hands out request indices to the streams of a load.
private actor Dispenser {
    private var next = 0
    let count: Int
    init(count: Int) { self.count = count }
    func take() -> Int? {
        guard next < count else { return nil }
        defer { next += 1 }
        return next
    }
}

/// Runs a load; returns every request's record, in request order, and the wall time of the whole load.
func runLoad(_ plan: LoadPlan, body: @escaping @Sendable (Int) -> [UInt8], path: String, endpoint: Endpoint,
             exchange: HTTPExchange, timeout: TimeAmount) async -> (records: [RequestRecord], seconds: Double) {
    let dispenser = Dispenser(count: plan.requests)
    let arrivals = plan.arrivals()
    let start = ContinuousClock.now
    let records = await withTaskGroup(of: [(Int, RequestRecord)].self) { group in
        for _ in 0..<max(1, min(plan.concurrency, plan.requests)) {
            group.addTask {
                var mine: [(Int, RequestRecord)] = []
                while let i = await dispenser.take() {
                    let due = start + .milliseconds(Int64(arrivals[i] * 1000))
                    if due > ContinuousClock.now { try? await Task.sleep(until: due, clock: .continuous) }
                    mine.append((i, await exchange.stream(path, body: body(i), to: endpoint, timeout: timeout)))
                }
                return mine
            }
        }
        var all = [RequestRecord](repeating: RequestRecord(error: "never sent"), count: plan.requests)
        for await batch in group { for (i, r) in batch { all[i] = r } }
        return all
    }
    let elapsed = ContinuousClock.now - start
    return (records, Double(elapsed.components.seconds) + Double(elapsed.components.attoseconds) * 1e-18)
}

/// What a load measured: throughput and the latency distributions, as vLLM's serving benchmark defines them
/// (TPOT per request excludes the first token; ITL is every gap between text chunks).
struct LoadSummary {
    let requests: Int
    let completed: Int
    let errors: Int
    let seconds: Double
    let outputTokens: Int
    let promptTokens: Int
    let cachedTokens: Int
    let ttft: Distribution
    let tpot: Distribution
    let itl: Distribution
    let e2e: Distribution
    let firstError: String?

    var requestsPerSecond: Double { Double(completed) / seconds }
    var outputTokensPerSecond: Double { Double(outputTokens) / seconds }

    init(_ records: [RequestRecord], seconds: Double) {
        let ok = records.filter(\.ok)
        requests = records.count; completed = ok.count; errors = records.count - ok.count
        self.seconds = seconds
        outputTokens = ok.reduce(0) { $0 + $1.outputTokens }
        promptTokens = ok.reduce(0) { $0 + $1.promptTokens }
        cachedTokens = ok.reduce(0) { $0 + $1.cachedTokens }
        ttft = Distribution(ok.map(\.ttft))
        tpot = Distribution(ok.compactMap { $0.outputTokens > 1 ? ($0.e2e - $0.ttft) / Double($0.outputTokens - 1) : nil })
        itl = Distribution(ok.flatMap(\.gaps))
        e2e = Distribution(ok.map(\.e2e))
        firstError = records.first(where: { !$0.ok })?.error
    }
}

/// Mean, median and 99th percentile (nearest rank) of a sample, in seconds.
struct Distribution {
    let mean: Double, p50: Double, p99: Double

    init(_ values: [Double]) {
        let sorted = values.filter(\.isFinite).sorted()
        guard !sorted.isEmpty else { mean = .nan; p50 = .nan; p99 = .nan; return }
        mean = sorted.reduce(0, +) / Double(sorted.count)
        func rank(_ q: Double) -> Double { sorted[min(sorted.count - 1, max(0, Int((q * Double(sorted.count)).rounded(.up)) - 1))] }
        p50 = rank(0.5); p99 = rank(0.99)
    }
}
