import ArgumentParser
import Foundation
import TesseraCollectives
import TesseraEngine
import TesseraServer
import TesseraTokenizer

/// `infer-worker serve`: an OpenAI-compatible HTTP server on the coordinator rank; every other rank serves the
/// coordinator's steps. The listener opens before the model loads (/health answers 503 until it is ready).
/// SIGTERM or SIGINT to the coordinator drains: new requests get 503, running ones finish (at most
/// --drain-seconds), then every rank exits 0. `launch/tessera serve` forwards its own SIGTERM there.
struct ServeCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "serve", abstract: "Serve the model over an OpenAI-compatible HTTP API (continuous batching).")

    @OptionGroup var topologyOptions: TopologyOptions
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup(title: "Scheduling") var scheduling: SchedulingOptions
    @Option(help: "Address to listen on (127.0.0.1 unless told otherwise; 0.0.0.0 for every interface).")
    var host = "127.0.0.1"
    @Option(help: "Port to listen on (0: any free port, printed on stderr).")
    var port = 8080
    @Option(help: "Require 'Authorization: Bearer KEY' on /v1, /tokenize and /detokenize (default: $TESSERA_API_KEY, else none).")
    var apiKey: String?
    @Option(help: "Largest request body, e.g. 4M; bigger ones get 413.", transform: parseByteCount)
    var maxBodyBytes: Int = 4 << 20
    @Option(help: "Most requests waiting to start; more get 429.")
    var maxQueue = 256
    @Option(help: "Seconds running requests may take to finish after SIGTERM before they are cancelled.")
    var drainSeconds: Double = 30
    @Option(help: "The model name clients send (default: the model file's name).")
    var servedModelName: String?
    @Option(help: ArgumentHelp("Inject a failure: RANK:STEP[:throw|kill|stop] (fault drills).", visibility: .hidden))
    var fault: String?

    static let defaultSequences = 16

    func validate() throws {
        guard (0...65535).contains(port) else { throw ValidationError("--port must be in 0...65535, got \(port)") }
        guard maxQueue >= 1 else { throw ValidationError("--max-queue must be at least 1, got \(maxQueue)") }
        guard drainSeconds >= 0 else { throw ValidationError("--drain-seconds must be >= 0, got \(drainSeconds)") }
        if let fault, InjectedFault(fault) == nil { throw ValidationError("--fault wants RANK:STEP[:throw|kill|stop], got '\(fault)'") }
    }

    func run() throws {
        let path = try modelOptions.resolvedPath()
        WorkerSession.run { runtime in try serve(runtime: runtime, modelPath: path) }
    }

    func serverOptions() -> ServerOptions {
        var o = ServerOptions()
        o.host = host; o.port = port; o.maxBodyBytes = maxBodyBytes; o.drainSeconds = drainSeconds
        o.apiKey = apiKey ?? ProcessInfo.processInfo.environment["TESSERA_API_KEY"].flatMap { $0.isEmpty ? nil : $0 }
        return o
    }

    func serve(runtime: MPIRuntime, modelPath: String) throws {
        let loadStart = Date()
        let topology = try topologyOptions.load()
        let metrics = ServerMetrics()
        let engine = EngineLoop(metrics: metrics, maxQueue: maxQueue)
        let server = OpenAIServer(options: serverOptions(), engine: engine, metrics: metrics)
        let serverDone = DispatchSemaphore(value: 0)
        if runtime.world.rank == topology.coordinator {
            let host = self.host, port = self.port
            Task.detached {
                do {
                    try await server.run { bound in log("tessera: listening on http://\(host):\(bound)") }
                } catch {
                    MPIRuntime.abortJob("the HTTP server on \(host):\(port) failed: \(error)")
                }
                serverDone.signal()
            }
        }
        let (deployment, source, load) = try loadDeployment(
            world: try topologyOptions.world(runtime), modelPath: modelPath, topology: topology, model: modelOptions, scheduling: scheduling,
            slots: scheduling.maxSequences ?? Self.defaultSequences, wire: try topologyOptions.wireFormat(), fault: fault)
        guard case .coordinator(let executor) = deployment.part else {
            try deployment.serve()
            return
        }
        logLoaded(deployment, modelPath: modelPath, load: load, since: loadStart)
        let tokenizer = try Tokenizer.load(source)
        let scheduler = try Scheduler(executor: executor, tokenizer: tokenizer,
                                      options: scheduling.scheduler(prefixCacheByDefault: true))
        engine.attach(scheduler)
        server.ready(try ServedModel(name: servedModelName ?? URL(fileURLWithPath: modelPath).lastPathComponent,
                                     tokenizer: tokenizer, context: deployment.context))
        log("tessera: ready: \(scheduler.options.maxBatchTokens) tokens and \(min(scheduling.maxSequences ?? Self.defaultSequences, executor.sequenceSlots)) sequences per step, prefix cache \(scheduler.blocks.prefixCaching ? "on" : "off")")
        do { try engine.run() } catch {
            Thread.sleep(forTimeInterval: 0.5)   // let the 503 answers reach their clients before the job goes down
            throw error
        }
        serverDone.wait()
        try deployment.finish()
        let c = scheduler.counters
        log("tessera: served \(c.finished) requests: \(c.promptTokens) prompt tokens (\(scheduler.blocks.hitTokens) from the prefix cache), \(c.generatedTokens) generated, \(c.steps) steps, \(c.preemptions) preemption\(c.preemptions == 1 ? "" : "s")")
    }
}
