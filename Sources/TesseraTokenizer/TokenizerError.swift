/// A tokenizer that cannot be built from its source: names the file, the key at fault and why.
public struct TokenizerError: Error, CustomStringConvertible, Sendable {
    /// The file (tokenizer.json, tokenizer_config.json, a GGUF file) the problem was found in.
    public let path: String
    /// The key (JSON path or GGUF metadata key) at fault.
    public let key: String
    public let reason: String

    public init(path: String, key: String, reason: String) {
        self.path = path; self.key = key; self.reason = reason
    }

    public var description: String { "\(path): \(key): \(reason)" }
}
