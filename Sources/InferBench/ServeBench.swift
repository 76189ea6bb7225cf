import ArgumentParser
import Foundation
import NIOCore
import NIOPosix

/// `infer-bench serve`: a load generator for OpenAI-compatible servers. It replays prompts (one per line of a text
/// file) as streamed `/v1/completions` requests at each fixed concurrency, or at a Poisson request rate, and reports
/// request throughput, output tokens/s, TTFT, TPOT, ITL and end-to-end latency (mean, p50, p99) and errors, as a
/// table, CSV and an SVG chart. Unless `--url` names a running server it starts each server itself on the same GGUF
/// with the same threads — Tessera (`launch/tessera serve`) and llama.cpp's `llama-server` — one at a time,
/// alternating at every concurrency level, and prints the ratios of the first against the others.
struct ServeBench: AsyncParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve",
        abstract: "Load-test OpenAI-compatible servers: Tessera vs llama-server, same GGUF and threads, alternating.")

    @Option(help: "Measure a server already running at this URL (http://HOST:PORT) instead of starting servers.")
    var url: String?
    @Option(help: "Bearer key for --url.") var apiKey: String?
    @Option(help: "Servers to start, in order (ratios are the first against each other): tessera, tessera-no-prefix-cache, llama-server.")
    var servers = "tessera,llama-server"
    @Option(help: "GGUF file both servers load (default: the default model).") var model: String?
    @Option(help: "Tessera's topology file (launch/tessera --topology); llama-server then gets threads × world size threads.")
    var topology: String?
    @Option(help: "Threads per Tessera rank, and llama-server's threads (times the world size).") var threads = 2
    @Option(help: "Context per sequence (llama-server: -c CONTEXT × slots, split among its slots).") var context = 1024
    @Option(help: "Comma-separated concurrency levels; each server gets as many sequence slots as the level.")
    var concurrency = "1,4,16"
    @Option(help: "Poisson arrival rate in requests/s (default: none, each stream sends its next request when the last ends).")
    var rate: Double?
    @Option(help: "Requests measured per concurrency level.") var requests = 64
    @Option(help: "Requests sent one at a time before measuring, not counted.") var warmup = 2
    @Option(help: "Tokens each request generates (ignore_eos, greedy), the same on every server.") var maxTokens = 64
    @Option(help: "Text file of prompts, one per non-empty line, replayed in order (default: a built-in list).")
    var prompts: String?
    @Option(help: "A text file put in front of every prompt (a shared system prompt: the prefix cache's workload).")
    var sharedPrefix: String?
    @Flag(inversion: .prefixedNo, help: "Number each request's prompt after the shared prefix, so no two prompts are the same.")
    var unique = true
    @Option(help: "Seconds before a request counts as failed.") var timeout = 600
    @Option(help: "Extra arguments for infer-worker serve, space-separated.") var tesseraArgs = ""
    @Option(help: "Extra arguments for llama-server, space-separated.") var llamaArgs = ""
    @Option(help: "Folder of llama.cpp's programs (launch/setup --llama-tools).")
    var llamaTools = NSString(string: "~/.cache/tessera/llama-tools").expandingTildeInPath
    @Option(help: "CSV output (and NAME.svg: throughput and p99 TTFT against concurrency).") var csv = "serve.csv"

    func run() async throws {
        let levels = concurrency.split(separator: ",").compactMap { Int($0.trimmingCharacters(in: .whitespaces)) }
        guard !levels.isEmpty, levels.allSatisfy({ $0 >= 1 }) else { throw ValidationError("--concurrency wants positive numbers, got '\(concurrency)'") }
        guard requests >= 1, maxTokens >= 1 else { throw ValidationError("--requests and --max-tokens must be at least 1") }
        if let rate, !(rate > 0) { throw ValidationError("--rate must be positive, got \(rate)") }
        let texts = try promptTexts()
        let prefix = try sharedPrefix.map { try String(contentsOfFile: $0, encoding: .utf8).trimmingCharacters(in: .whitespacesAndNewlines) + "\n\n" } ?? ""
        let maxTokens = self.maxTokens, unique = self.unique
        let body: @Sendable (Int) -> [UInt8] = { i in
            let prompt = prefix + (unique ? "(\(i)) " : "") + texts[(i < 0 ? -i : i) % texts.count]
            let object: [String: Any] = [
                "model": "bench", "prompt": prompt, "max_tokens": maxTokens, "temperature": 0, "ignore_eos": true,
                "stream": true, "stream_options": ["include_usage": true]]
            return [UInt8](try! JSONSerialization.data(withJSONObject: object))
        }
        let exchange = HTTPExchange(group: MultiThreadedEventLoopGroup.singleton)

        let names: [String]
        if url != nil { names = ["url"] } else {
            names = servers.split(separator: ",").map { $0.trimmingCharacters(in: .whitespaces) }
            for name in names where !["tessera", "tessera-no-prefix-cache", "llama-server"].contains(name) {
                throw ValidationError("--servers: unknown server '\(name)' (tessera, tessera-no-prefix-cache, llama-server)")
            }
        }
        let modelPath = try model ?? repositoryRoot().appendingPathComponent("models/SmolLM2-135M-Instruct.Q4_1.gguf").path
        print("infer-bench serve: \(url ?? (modelPath as NSString).lastPathComponent); \(requests) streamed /v1/completions requests per level, \(maxTokens) tokens each (greedy, ignore_eos); \(rate.map { "Poisson arrivals at \($0) requests/s" } ?? "closed loop"); \(texts.count) prompts\(prefix.isEmpty ? "" : " after a shared prefix of \(prefix.count) characters")")
        if names.contains("llama-server") { print("peer: llama-server (" + ((try? String(contentsOfFile: "\(llamaTools)/BUILD", encoding: .utf8)) ?? "").split(separator: "\n").joined(separator: "; ") + ")") }

        var cells: [ServeCell] = []
        for level in levels {
            for name in names {
                let server: LaunchedServer?
                let endpoint: Endpoint
                if let url {
                    server = nil; endpoint = try Endpoint(url: url, apiKey: apiKey)
                } else {
                    let launched = try await launch(name, slots: level, model: modelPath, exchange: exchange)
                    server = launched; endpoint = launched.endpoint
                }
                do {
                    for w in 0..<warmup {
                        let r = await exchange.stream("/v1/completions", body: body(-1 - w), to: endpoint, timeout: .seconds(Int64(timeout)))
                        if let error = r.error { throw LoadError("\(name): the warm-up request failed: \(error)") }
                    }
                    let plan = LoadPlan(requests: requests, concurrency: level, rate: rate)
                    var (records, seconds) = await runLoad(plan, body: body, path: "/v1/completions", endpoint: endpoint,
                                                           exchange: exchange, timeout: .seconds(Int64(timeout)))
                    for k in records.indices where records[k].ok && records[k].outputTokens != maxTokens {
                        records[k].error = "incomplete: \(records[k].outputTokens) of \(maxTokens) tokens (finish reason \(records[k].finishReason ?? "none"))"
                    }
                    let cell = ServeCell(server: name, concurrency: level, summary: LoadSummary(records, seconds: seconds))
                    cell.printLine()
                    cells.append(cell)
                } catch {
                    server?.stop()
                    throw error
                }
                if let server, let failure = server.stop() { print("\(name): \(failure)") }
            }
        }
        printRatios(cells, names: names, levels: levels)
        try writeCSV(cells)
        let chart = (csv.hasSuffix(".csv") ? String(csv.dropLast(4)) : csv) + ".svg"
        try ServeChart(cells: cells, names: names, levels: levels).svg().write(toFile: chart, atomically: true, encoding: .utf8)
        print("csv: \(csv)\nchart: \(chart)")
        let failed = cells.reduce(0) { $0 + $1.summary.errors }
        if failed > 0 { throw ExitCode(1) }
    }

    func promptTexts() throws -> [String] {
        guard let prompts else { return Self.builtInPrompts }
        let lines = try String(contentsOfFile: prompts, encoding: .utf8).split(separator: "\n")
            .map { $0.trimmingCharacters(in: .whitespaces) }.filter { !$0.isEmpty }
        guard !lines.isEmpty else { throw ValidationError("--prompts \(prompts): no non-empty lines") }
        return lines
    }

    /// Starts one server with `slots` sequence slots and waits until /health says it is ready.
    func launch(_ name: String, slots: Int, model: String, exchange: HTTPExchange) async throws -> LaunchedServer {
        let root = try repositoryRoot()
        let extra: (String) -> [String] = { $0.split(separator: " ").map(String.init) }
        if name == "llama-server" {
            let program = "\(llamaTools)/bin/llama-server"
            guard FileManager.default.isExecutableFile(atPath: program) else {
                throw ValidationError("no llama-server at \(program): run launch/setup --llama-tools")
            }
            let port = try freePort()
            let llamaThreads = threads * (try worldSize(root))
            let arguments = ["-m", model, "--host", "127.0.0.1", "--port", String(port), "-t", String(llamaThreads),
                             "-tb", String(llamaThreads), "-np", String(slots), "-c", String(context * slots),
                             "--alias", "bench", "--no-webui"] + extra(llamaArgs)
            return try await LaunchedServer.start(name, URL(fileURLWithPath: program), arguments, port: port, exchange: exchange)
        }
        var arguments = (topology.map { ["--topology", $0] } ?? []) + [
            "serve", "--model", model, "--threads", String(threads), "--port", "0", "--context", String(context),
            "--max-sequences", String(slots), "--max-queue", String(max(256, requests)), "--served-model-name", "bench"]
        if name == "tessera-no-prefix-cache" { arguments.append("--no-prefix-cache") }
        return try await LaunchedServer.start(name, root.appendingPathComponent("launch/tessera"), arguments + extra(tesseraArgs),
                                              port: nil, exchange: exchange)
    }

    func worldSize(_ root: URL) throws -> Int {
        guard let topology else { return 1 }
        let (status, out, err) = try runCapturing(root.appendingPathComponent(".build/release/infer-worker"),
                                                  ["world-size", "--topology", topology])
        guard status == 0, let size = Int(out.trimmingCharacters(in: .whitespacesAndNewlines)) else {
            throw ValidationError("--topology \(topology): \(err.trimmingCharacters(in: .whitespacesAndNewlines))")
        }
        return size
    }

    func printRatios(_ cells: [ServeCell], names: [String], levels: [Int]) {
        guard names.count > 1, let first = names.first else { return }
        print("\nratios, \(first) / other (output tokens/s higher is better; TTFT lower is better):")
        for level in levels {
            guard let ours = cells.first(where: { $0.server == first && $0.concurrency == level }) else { continue }
            for other in names.dropFirst() {
                guard let theirs = cells.first(where: { $0.server == other && $0.concurrency == level }) else { continue }
                let a = ours.summary, b = theirs.summary
                print(String(format: "  concurrency %3d vs %@: output tokens/s %.2fx, TTFT mean %.2fx, TTFT p99 %.2fx, TPOT p50 %.2fx",
                             level, other, a.outputTokensPerSecond / b.outputTokensPerSecond, a.ttft.mean / b.ttft.mean,
                             a.ttft.p99 / b.ttft.p99, a.tpot.p50 / b.tpot.p50))
            }
        }
    }

    func writeCSV(_ cells: [ServeCell]) throws {
        var lines = ["server,concurrency,rate,requests,completed,errors,seconds,requests_per_s,output_tokens_per_s,prompt_tokens,cached_tokens,ttft_mean_ms,ttft_p50_ms,ttft_p99_ms,tpot_mean_ms,tpot_p50_ms,tpot_p99_ms,itl_mean_ms,itl_p50_ms,itl_p99_ms,e2e_mean_s,e2e_p99_s"]
        for c in cells {
            let s = c.summary
            lines.append(String(format: "%@,%d,%@,%d,%d,%d,%.3f,%.3f,%.2f,%d,%d,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.2f,%.3f,%.3f",
                                c.server, c.concurrency, rate.map { String($0) } ?? "", s.requests, s.completed, s.errors,
                                s.seconds, s.requestsPerSecond, s.outputTokensPerSecond, s.promptTokens, s.cachedTokens,
                                s.ttft.mean * 1e3, s.ttft.p50 * 1e3, s.ttft.p99 * 1e3, s.tpot.mean * 1e3, s.tpot.p50 * 1e3,
                                s.tpot.p99 * 1e3, s.itl.mean * 1e3, s.itl.p50 * 1e3, s.itl.p99 * 1e3, s.e2e.mean, s.e2e.p99))
        }
        try (lines.joined(separator: "\n") + "\n").write(toFile: csv, atomically: true, encoding: .utf8)
    }

    static let builtInPrompts = [
        "Write a short story about a lighthouse keeper who finds a message in a bottle.",
        "Explain how a refrigerator keeps food cold, step by step.",
        "List five ideas for a rainy afternoon with children.",
        "What are the main differences between a virus and a bacterium?",
        "Describe the water cycle to a ten-year-old.",
        "Write a polite email asking a colleague to review a report by Friday.",
        "Give three tips for learning to play the guitar as an adult.",
        "Summarize the plot of a detective story set on a train.",
        "Why is the sky blue? Answer in a few sentences.",
        "Write a recipe for a simple vegetable soup.",
        "Explain what a binary search does and when to use it.",
        "Describe a walk through a forest in autumn.",
        "What should someone pack for a weekend camping trip?",
        "Write a short poem about the sea at night.",
        "Explain the difference between weather and climate.",
        "Give advice to a student preparing for a mathematics exam.",
    ]
}

/// One (server, concurrency) measurement.
struct ServeCell {
    let server: String
    let concurrency: Int
    let summary: LoadSummary

    func printLine() {
        let s = summary
        print(server.padding(toLength: 24, withPad: " ", startingAt: 0) + String(format: " c=%-3d %4d/%-4d ok %3d err %7.2f s  %6.2f req/s %8.1f out tok/s | TTFT ms mean %7.1f p50 %7.1f p99 %7.1f | TPOT ms mean %6.1f p50 %6.1f p99 %6.1f | ITL ms mean %6.1f p50 %6.1f p99 %6.1f | cached %d/%d prompt tokens",
                     concurrency, s.completed, s.requests, s.errors, s.seconds, s.requestsPerSecond,
                     s.outputTokensPerSecond, s.ttft.mean * 1e3, s.ttft.p50 * 1e3, s.ttft.p99 * 1e3, s.tpot.mean * 1e3,
                     s.tpot.p50 * 1e3, s.tpot.p99 * 1e3, s.itl.mean * 1e3, s.itl.p50 * 1e3, s.itl.p99 * 1e3,
                     s.cachedTokens, s.promptTokens))
        if let error = s.firstError { print("  first error: \(error.prefix(300))") }
    }
}

/// A server process the benchmark started, its output in a log file.
final class LaunchedServer {
    let name: String
    let process: Process
    let endpoint: Endpoint
    let log: URL

    private init(name: String, process: Process, endpoint: Endpoint, log: URL) {
        self.name = name; self.process = process; self.endpoint = endpoint; self.log = log
    }

    /// Starts `program`; with no `port`, reads the one Tessera prints ("tessera: listening on http://H:P"). Waits
    /// (at most 180 s) for /health to answer 200.
    static func start(_ name: String, _ program: URL, _ arguments: [String], port: Int?, exchange: HTTPExchange) async throws -> LaunchedServer {
        let log = FileManager.default.temporaryDirectory.appendingPathComponent("infer-bench-\(name)-\(getpid()).log")
        _ = FileManager.default.createFile(atPath: log.path, contents: nil)
        let handle = try FileHandle(forWritingTo: log)
        let process = Process()
        process.executableURL = program
        process.arguments = arguments
        process.standardInput = FileHandle.nullDevice
        process.standardOutput = handle
        process.standardError = handle
        try runUnblocked(process)
        try? handle.close()
        func tail() -> String { String(((try? String(contentsOf: log, encoding: .utf8)) ?? "").suffix(1500)) }
        let deadline = Date().addingTimeInterval(180)
        var resolved = port
        while Date() < deadline {
            guard process.isRunning else {
                throw LoadError("\(name) exited with status \(process.terminationStatus) before it was ready (\(program.path) \(arguments.joined(separator: " "))):\n\(tail())")
            }
            if resolved == nil, let text = try? String(contentsOf: log, encoding: .utf8),
               let line = text.split(separator: "\n").first(where: { $0.contains("tessera: listening on http://") }),
               let p = line.split(separator: ":").last.flatMap({ Int($0.trimmingCharacters(in: .whitespaces)) }) {
                resolved = p
            }
            if let resolved {
                let endpoint = Endpoint(host: "127.0.0.1", port: resolved)
                if await exchange.status("/health", at: endpoint) == 200 {
                    return LaunchedServer(name: name, process: process, endpoint: endpoint, log: log)
                }
            }
            try await Task.sleep(for: .milliseconds(200))
        }
        process.terminate()
        throw LoadError("\(name) was not ready after 180 s:\n\(tail())")
    }

    /// SIGTERM, then SIGKILL after 60 s; says what went wrong when the server did not exit 0 (its log kept then).
    @discardableResult
    func stop() -> String? {
        if process.isRunning { process.terminate() }
        let deadline = Date().addingTimeInterval(60)
        while process.isRunning && Date() < deadline { usleep(50_000) }
        if process.isRunning {
            kill(process.processIdentifier, SIGKILL)
            process.waitUntilExit()
            return "did not exit within 60 s of SIGTERM (killed); log: \(log.path)"
        }
        guard process.terminationStatus == 0 || name == "llama-server" else {
            return "exited with status \(process.terminationStatus) after SIGTERM; log: \(log.path)"
        }
        try? FileManager.default.removeItem(at: log)
        return nil
    }
}

/// Starts `process` from a fresh thread with no signals blocked: a child inherits its parent thread's signal mask,
/// and the concurrency runtime's threads block SIGTERM, which would leave the server deaf to `stop()`.
func runUnblocked(_ process: Process) throws {
    final class Outcome: @unchecked Sendable { var error: Error? }
    let outcome = Outcome(), done = DispatchSemaphore(value: 0)
    let thread = Thread {
        var none = sigset_t()
        sigemptyset(&none)
        pthread_sigmask(SIG_SETMASK, &none, nil)
        do { try process.run() } catch { outcome.error = error }
        done.signal()
    }
    thread.start()
    done.wait()
    if let error = outcome.error { throw error }
}

/// A TCP port nothing listens on now (bound to port 0 and released).
func freePort() throws -> Int {
    let fd = socket(AF_INET, Int32(SOCK_STREAM.rawValue), 0)
    guard fd >= 0 else { throw LoadError("socket() failed: errno \(errno)") }
    defer { close(fd) }
    var address = sockaddr_in()
    address.sin_family = sa_family_t(AF_INET)
    address.sin_addr.s_addr = inet_addr("127.0.0.1")
    address.sin_port = 0
    var length = socklen_t(MemoryLayout<sockaddr_in>.size)
    let bound = withUnsafeMutablePointer(to: &address) {
        $0.withMemoryRebound(to: sockaddr.self, capacity: 1) { pointer -> Bool in
            bind(fd, pointer, length) == 0 && getsockname(fd, pointer, &length) == 0
        }
    }
    guard bound else { throw LoadError("could not bind a free port: errno \(errno)") }
    return Int(UInt16(bigEndian: address.sin_port))
}

/// Output tokens/s and p99 TTFT against concurrency, one line per server.
struct ServeChart {
    let cells: [ServeCell]
    let names: [String]
    let levels: [Int]

    func svg() -> String {
        let panelWidth = 340.0, height = 220.0, top = 40.0, left = 60.0, gap = 80.0, bottom = 50.0
        let colors = ["#4477aa", "#ee7733", "#228833", "#aa3377"]
        var out = [String(format: #"<svg xmlns="http://www.w3.org/2000/svg" width="%.0f" height="%.0f" font-family="sans-serif" font-size="11">"#,
                          left + 2 * panelWidth + gap + 20, top + height + bottom + 16 * Double(names.count))]
        let panels: [(String, (LoadSummary) -> Double)] = [("output tokens/s", { $0.outputTokensPerSecond }),
                                                         ("p99 time to first token, ms", { $0.ttft.p99 * 1e3 })]
        for (p, (title, value)) in panels.enumerated() {
            let x0 = left + Double(p) * (panelWidth + gap)
            let top0 = top
            let values = cells.map { value($0.summary) }.filter(\.isFinite)
            let maxValue = max(1e-9, (values.max() ?? 1) * 1.1)
            func x(_ i: Int) -> Double { x0 + (levels.count == 1 ? panelWidth / 2 : panelWidth * Double(i) / Double(levels.count - 1)) }
            func y(_ v: Double) -> Double { top0 + height * (1 - v / maxValue) }
            out.append(String(format: #"<text x="%.0f" y="%.0f" font-size="13">%@</text>"#, x0, top0 - 14, title))
            out.append(String(format: ##"<line x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f" stroke="#444"/>"##, x0, x0 + panelWidth, top0 + height, top0 + height))
            out.append(String(format: ##"<line x1="%.0f" x2="%.0f" y1="%.0f" y2="%.0f" stroke="#444"/>"##, x0, x0, top0, top0 + height))
            for k in 0...4 {
                let v = maxValue * Double(k) / 4
                out.append(String(format: #"<text x="%.0f" y="%.1f" text-anchor="end" font-size="9">%.0f</text>"#, x0 - 4, y(v) + 3, v))
            }
            for (i, level) in levels.enumerated() {
                out.append(String(format: #"<text x="%.1f" y="%.0f" text-anchor="middle">%d</text>"#, x(i), top0 + height + 14, level))
            }
            out.append(String(format: #"<text x="%.0f" y="%.0f" text-anchor="middle">concurrent streams</text>"#, x0 + panelWidth / 2, top0 + height + 30))
            for (n, name) in names.enumerated() {
                let points = levels.enumerated().compactMap { i, level -> String? in
                    guard let cell = cells.first(where: { $0.server == name && $0.concurrency == level }) else { return nil }
                    let v = value(cell.summary)
                    return v.isFinite ? String(format: "%.1f,%.1f", x(i), y(v)) : nil
                }
                let color = colors[n % colors.count]
                out.append(#"<polyline fill="none" stroke-width="2" stroke="\#(color)" points="\#(points.joined(separator: " "))"/>"#)
                for point in points {
                    let xy = point.split(separator: ",")
                    out.append(#"<circle r="3" fill="\#(color)" cx="\#(xy[0])" cy="\#(xy[1])"/>"#)
                }
            }
        }
        for (n, name) in names.enumerated() {
            let y = top + height + bottom + 16 * Double(n)
            out.append(String(format: #"<rect x="%.0f" y="%.0f" width="12" height="4" fill="%@"/><text x="%.0f" y="%.0f">%@</text>"#,
                              left, y - 4, colors[n % colors.count], left + 18, y, name))
        }
        out.append("</svg>")
        return out.joined(separator: "\n") + "\n"
    }
}
