// Entry points that build a Tokenizer from a model source or from tokenizer files alone.
import Foundation
import TesseraFormats

extension Tokenizer {
    /// The tokenizer of a model: GGUF `tokenizer.*` metadata, or the folder's tokenizer.json (+ configs).
    public static func load(_ source: ModelSource) throws -> Tokenizer {
        switch source {
        case .gguf(let file):
            return try load(ggufMetadata: file.metadata, path: file.path)
        case .huggingFace(let folder):
            let path = URL(fileURLWithPath: folder.path).appendingPathComponent("tokenizer.json").path
            guard let tokenizer = folder.tokenizerJSON else {
                throw TokenizerError(path: path, key: "(file)", reason: "missing: the folder has no tokenizer.json")
            }
            return Tokenizer(spec: try TokenizerSpec(huggingFace: HuggingFaceTokenizerFiles(
                tokenizer: tokenizer, tokenizerPath: path, tokenizerConfig: folder.tokenizerConfig,
                generationConfig: folder.generationConfig, modelConfig: folder.config, folder: folder.path)))
        }
    }

    /// The tokenizer of a GGUF file or Hugging Face folder at `path`.
    public static func load(path: String) throws -> Tokenizer {
        try load(ModelSource.open(path: path))
    }

    /// A tokenizer from GGUF metadata (`path` names the file in errors).
    public static func load(ggufMetadata: [String: GGUFValue], path: String) throws -> Tokenizer {
        Tokenizer(spec: try TokenizerSpec(gguf: ggufMetadata, path: path))
    }

    /// A tokenizer from a tokenizer.json file alone, with tokenizer_config.json, generation_config.json and
    /// config.json read from the same folder when present (no weights needed).
    public static func load(tokenizerFile path: String) throws -> Tokenizer {
        let folder = URL(fileURLWithPath: path).deletingLastPathComponent()
        func read(_ file: String, required: Bool) throws -> JSONValue? {
            guard let data = FileManager.default.contents(atPath: file) else {
                if required { throw TokenizerError(path: file, key: "(file)", reason: "cannot be read") }
                return nil
            }
            return try JSONValue.parse(data, path: file)
        }
        guard let tokenizer = try read(path, required: true) else {
            throw TokenizerError(path: path, key: "(file)", reason: "cannot be read")
        }
        let sibling = { folder.appendingPathComponent($0).path }
        return Tokenizer(spec: try TokenizerSpec(huggingFace: HuggingFaceTokenizerFiles(
            tokenizer: tokenizer, tokenizerPath: path,
            tokenizerConfig: try read(sibling("tokenizer_config.json"), required: false),
            generationConfig: try read(sibling("generation_config.json"), required: false),
            modelConfig: try read(sibling("config.json"), required: false), folder: folder.path)))
    }

    /// A tokenizer from already parsed Hugging Face JSON (`path` names tokenizer.json in errors).
    public static func load(tokenizerJSON: JSONValue, tokenizerConfig: JSONValue? = nil,
                            generationConfig: JSONValue? = nil, modelConfig: JSONValue? = nil,
                            path: String = "tokenizer.json") throws -> Tokenizer {
        Tokenizer(spec: try TokenizerSpec(huggingFace: HuggingFaceTokenizerFiles(
            tokenizer: tokenizerJSON, tokenizerPath: path, tokenizerConfig: tokenizerConfig,
            generationConfig: generationConfig, modelConfig: modelConfig, folder: nil)))
    }
}
