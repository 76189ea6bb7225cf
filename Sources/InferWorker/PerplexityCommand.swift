import ArgumentParser
import Foundation
import TesseraEngine
import TesseraFormats
import TesseraKernels
import TesseraModels
import TesseraTokenizer

/// `infer-worker perplexity`: teacher-forced perplexity of a text file (one window, no stride), for checking a
/// model, a quantization or a parallel plan against a reference. Under a topology every rank tokenizes the text
/// (the window sizes the KV cache) and the coordinator prints the result.
struct PerplexityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perplexity", abstract: "Perplexity of a text file under the model.")

    @OptionGroup var topologyOptions: TopologyOptions
    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Text file to score.") var file: String

    func run() throws {
        let path = try modelOptions.resolvedPath()
        guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
        let text = String(decoding: data, as: UTF8.self)
        WorkerSession.run { runtime in
            let source = try ModelSource.open(path: path)
            let tokens = try Tokenizer.load(source).encode(text)
            let deployment = try Deployment(
                topology: try topologyOptions.load(), world: try topologyOptions.world(runtime), source: source,
                options: DeploymentOptions(load: try modelOptions.loadOptions(), sequenceSlots: 1,
                                           context: modelOptions.context ?? max(tokens.count, 1),
                                           wire: try topologyOptions.wireFormat()))
            guard case .coordinator(let executor) = deployment.part else { return try deployment.serve() }
            if let notice = deployment.slowPathNotice { log("tessera: " + notice) }
            defer { try? deployment.finish() }
            let start = Date()
            let result = try Perplexity.evaluate(tokens, executor: executor)
            try deployment.finish()
            print(String(format: "perplexity %.5f (mean NLL %.6f over %d predicted tokens)", result.perplexity, result.meanNLL, result.tokens))
            log(String(format: "tessera: %.1f tokens/s; weights %.1f MiB; peak memory %.1f MiB",
                       Double(tokens.count) / Date().timeIntervalSince(start), Double(deployment.model!.weightBytes) / 1048576,
                       Double(peakResidentBytes()) / 1048576))
        }
    }
}
