import ArgumentParser
import Foundation
import TesseraEngine
import TesseraFormats
import TesseraKernels
import TesseraModels
import TesseraTokenizer

/// `infer-worker perplexity`: teacher-forced perplexity of a text file (one window, no stride), for checking a
/// model, a quantization or a parallel plan against a reference.
struct PerplexityCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "perplexity", abstract: "Perplexity of a text file under the model.")

    @OptionGroup var modelOptions: ModelOptions
    @Option(help: "Text file to score.") var file: String

    func run() throws {
        let path = try modelOptions.resolvedPath()
        guard let data = FileManager.default.contents(atPath: file) else { throw ValidationError("cannot read \(file)") }
        let text = String(decoding: data, as: UTF8.self)
        WorkerSession.run { _ in
            let source = try ModelSource.open(path: path)
            let tokenizer = try Tokenizer.load(source)
            let model = try ModelRegistry.load(source, options: try modelOptions.loadOptions())
            let tokens = tokenizer.encode(text)
            let executor = try LocalExecutor(model: model, sequenceSlots: 1,
                                             contextLength: modelOptions.context ?? max(tokens.count, 1))
            let start = Date()
            let result = try Perplexity.evaluate(tokens, executor: executor)
            print(String(format: "perplexity %.5f (mean NLL %.6f over %d predicted tokens)", result.perplexity, result.meanNLL, result.tokens))
            log(String(format: "tessera: %.1f tokens/s; weights %.1f MiB; peak memory %.1f MiB",
                       Double(tokens.count) / Date().timeIntervalSince(start), Double(model.weightBytes) / 1048576,
                       Double(peakResidentBytes()) / 1048576))
        }
    }
}
