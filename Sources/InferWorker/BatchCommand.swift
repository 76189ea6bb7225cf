import ArgumentParser
import Foundation
import TesseraCollectives
import TesseraEngine
import TesseraServer
import TesseraTokenizer

/// `infer-worker batch`: a JSONL file of OpenAI-style requests (request bodies, or OpenAI Batch API lines) through
/// the scheduler, offline; one result line per request, in input order. Rerunning with the same output resumes:
/// requests whose results are already there are skipped. Exits 1 (after writing every other result) when a line
/// was refused, naming the lines.
struct BatchCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "batch", abstract: "Run a JSONL file of OpenAI-style requests; results in input order, resumable.")

    @OptionGroup var topologyOptions: TopologyOptions
    @OptionGroup var modelOptions: ModelOptions
    @OptionGroup(title: "Scheduling") var scheduling: SchedulingOptions
    @Option(help: "Requests, one JSON object per line: a /v1/completions or /v1/chat/completions body, or {custom_id, url, body}.")
    var input: String
    @Option(help: "Results, one JSON line per request in input order (appended to: a rerun resumes).")
    var output: String
    @Option(help: "Refuse lines whose 'model' is not this name (default: the field is ignored).")
    var servedModelName: String?
    @Flag(inversion: .prefixedNo, help: "A progress bar on stderr (default: when stderr is a terminal).")
    var progress: Bool?

    func validate() throws {
        guard FileManager.default.isReadableFile(atPath: input) else { throw ValidationError("--input \(input): no such readable file") }
        let folder = URL(fileURLWithPath: output).deletingLastPathComponent().path
        guard FileManager.default.isWritableFile(atPath: folder) else { throw ValidationError("--output \(output): cannot write in \(folder)") }
    }

    func run() throws {
        let path = try modelOptions.resolvedPath()
        WorkerSession.runWithStatus { runtime in try batch(runtime: runtime, modelPath: path) }
    }

    /// The rank's exit status: 1 on the coordinator when a line was refused.
    func batch(runtime: MPIRuntime, modelPath: String) throws -> Int32 {
        let loadStart = Date()
        let topology = try topologyOptions.load()
        let slots = scheduling.maxSequences ?? ServeCommand.defaultSequences
        let (deployment, source, load) = try loadDeployment(
            world: try topologyOptions.world(runtime), modelPath: modelPath, topology: topology, model: modelOptions, scheduling: scheduling,
            slots: slots, wire: try topologyOptions.wireFormat(), fault: nil)
        guard case .coordinator(let executor) = deployment.part else {
            try deployment.serve()
            return 0
        }
        logLoaded(deployment, modelPath: modelPath, load: load, since: loadStart)
        let tokenizer = try Tokenizer.load(source)
        let scheduler = try Scheduler(executor: executor, tokenizer: tokenizer,
                                      options: scheduling.scheduler(prefixCacheByDefault: true))
        let model = try ServedModel(name: servedModelName ?? URL(fileURLWithPath: modelPath).lastPathComponent,
                                    tokenizer: tokenizer, context: deployment.context)
        let run = BatchRun(input: input, output: output, model: model, scheduler: scheduler,
                           window: 4 * min(slots, executor.sequenceSlots),
                           progress: progress ?? (isatty(STDERR_FILENO) != 0), checkModelName: servedModelName != nil)
        let summary = try run.run()
        try deployment.finish()
        let c = scheduler.counters
        log(String(format: "tessera: batch %@: %d results written (%d already there), %d refused; %d prompt tokens (%d from the prefix cache), %d generated in %.2f s, %.1f tokens/s",
                   output, summary.succeeded + summary.failedLines.count, summary.skipped, summary.failedLines.count,
                   c.promptTokens, scheduler.blocks.hitTokens, summary.generatedTokens, summary.seconds,
                   Double(summary.generatedTokens) / max(summary.seconds, 1e-9)))
        if !summary.failedLines.isEmpty {
            let n = summary.failedLines.count
            log("tessera: error: \(input): line\(n == 1 ? "" : "s") \(summary.failedLines.prefix(20).map(String.init).joined(separator: ", "))\(n > 20 ? ", …" : "") \(n == 1 ? "was" : "were") refused (the errors are in \(output))")
            return 1
        }
        return 0
    }
}
