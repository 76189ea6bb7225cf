import Foundation

/// A problem with a model file or folder: which path, and what is wrong with it.
public struct FormatError: Error, CustomStringConvertible, LocalizedError {
    /// The file or folder at fault.
    public let path: String
    /// What is wrong, naming the key, tensor or offset concerned.
    public let reason: String

    public init(path: String, reason: String) {
        self.path = path; self.reason = reason
    }

    public var description: String { "\(path): \(reason)" }
    public var errorDescription: String? { description }
}
