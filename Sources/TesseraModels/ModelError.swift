// Typed errors of model loading and inference; each description names the file, key, tensor or sequence at fault.

/// Why a model could not be built or run.
public enum ModelError: Error, CustomStringConvertible, Equatable {
    /// A configuration value is absent, of the wrong type or out of range.
    case invalidConfig(file: String, key: String, reason: String)
    /// A tensor the architecture needs is not in the checkpoint.
    case missingTensor(file: String, tensor: String)
    /// A tensor's shape disagrees with the configuration.
    case shapeMismatch(tensor: String, expected: [Int], found: [Int])
    /// A tensor is present but unusable (encoding, layout).
    case unsupportedTensor(tensor: String, reason: String)
    /// No registered architecture has this name.
    case unknownArchitecture(String, supported: [String])
    /// A sequence would grow past its cache's context length.
    case contextFull(sequence: Int, limit: Int)
    /// A batch is malformed (lengths, slots, positions, token ids).
    case invalidBatch(String)
    /// A buffer handed in is too small, or memory could not be reserved.
    case invalidBuffer(String)

    public var description: String {
        switch self {
        case let .invalidConfig(file, key, reason): return "\(file): config key '\(key)': \(reason)"
        case let .missingTensor(file, tensor): return "\(file): tensor '\(tensor)' is missing"
        case let .shapeMismatch(tensor, expected, found):
            return "tensor '\(tensor)': expected shape \(expected), found \(found)"
        case let .unsupportedTensor(tensor, reason): return "tensor '\(tensor)': \(reason)"
        case let .unknownArchitecture(name, supported):
            return "unknown architecture '\(name)'; supported: \(supported.joined(separator: ", "))"
        case let .contextFull(sequence, limit):
            return "sequence \(sequence) is full: its context holds \(limit) positions"
        case let .invalidBatch(reason): return "invalid batch: \(reason)"
        case let .invalidBuffer(reason): return "invalid buffer: \(reason)"
        }
    }
}
