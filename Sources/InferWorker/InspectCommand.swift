import ArgumentParser
import Foundation
import TesseraFormats
import TesseraModels

/// `infer-worker inspect`: a model's architecture, its tensor types, and the product path each matrix takes in
/// `--fast` mode (no MPI, no weights read).
struct InspectCommand: ParsableCommand {
    static let configuration = CommandConfiguration(
        commandName: "inspect", abstract: "List a model's tensor types and which product path each matrix takes.")

    /// `--model` and `--quantize` (paths as the load would convert them) are read; the other options are ignored.
    @OptionGroup var modelOptions: ModelOptions
    @Flag(help: "List every matrix (default: a summary per type and the matrices without a fast kernel).")
    var all = false

    func run() throws {
        let path = try modelOptions.resolvedPath(), options = try modelOptions.loadOptions()
        let blueprint = try ModelRegistry.blueprint(of: try ModelSource.open(path: path))
        let paths = blueprint.productPaths(quantize: options.quantize)
        let layout = blueprint.layout
        print("\(path): \(blueprint.architecture) (family \(blueprint.family)), \(blueprint.layerCount) layers, hidden \(layout.hiddenSize), heads \(layout.queryHeads)/\(layout.kvHeads) of \(layout.headDim), vocabulary \(layout.vocabularySize)")
        if let embedding = blueprint.source.tensors.tensorInfos[layout.embedding] {
            print("token embedding \(embedding.name): \(embedding.type) \(embedding.shape), rows dequantized per looked-up token")
        }
        print("type      matrices        MiB  path in --fast mode")
        for type in Set(paths.map(\.type)).sorted(by: { $0.rawValue < $1.rawValue }) {
            let group = paths.filter { $0.type == type }
            print(type.description.padding(toLength: 8, withPad: " ", startingAt: 0)
                  + String(format: "  %8d  %9.1f  ", group.count, Double(group.reduce(0) { $0 + $1.bytes }) / 1048576)
                  + group[0].description)
        }
        for p in paths where all || !p.fast {
            print("  \(p.name): \(p.type) \(p.shape), " + String(format: "%.2f MiB, ", Double(p.bytes) / 1048576)
                  + p.description)
        }
    }
}
