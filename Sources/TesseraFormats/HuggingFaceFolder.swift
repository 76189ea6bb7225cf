import Foundation

/// A Hugging Face model folder: config.json, optional tokenizer files, safetensors weights.
public struct HuggingFaceFolder: Sendable {
    public let path: String
    /// config.json
    public let config: JSONValue
    /// tokenizer.json, if present.
    public let tokenizerJSON: JSONValue?
    /// tokenizer_config.json, if present.
    public let tokenizerConfig: JSONValue?
    /// generation_config.json, if present.
    public let generationConfig: JSONValue?
    public let weights: SafetensorsStore

    /// Opens the folder at `path`. Refuses folders whose only weights are PyTorch pickles (pytorch_model.bin),
    /// saying how to convert them; missing folder or config.json -> `FormatError` naming the path.
    public init(path: String) throws {
        var isDirectory: ObjCBool = false
        guard FileManager.default.fileExists(atPath: path, isDirectory: &isDirectory) else {
            throw FormatError(path: path, reason: "no such file or directory")
        }
        guard isDirectory.boolValue else { throw FormatError(path: path, reason: "not a folder") }
        let url = URL(fileURLWithPath: path)
        func optional(_ name: String) throws -> JSONValue? {
            let file = url.appendingPathComponent(name).path
            return FileManager.default.fileExists(atPath: file) ? try JSONValue.parse(file: file) : nil
        }
        self.path = path
        weights = try SafetensorsStore(folder: path)
        guard let config = try optional("config.json") else {
            throw FormatError(path: path, reason: "no config.json (not a Hugging Face model folder?)")
        }
        guard config.object != nil else {
            throw FormatError(path: url.appendingPathComponent("config.json").path, reason: "not a JSON object")
        }
        self.config = config
        tokenizerJSON = try optional("tokenizer.json")
        tokenizerConfig = try optional("tokenizer_config.json")
        generationConfig = try optional("generation_config.json")
    }
}
