// Errors raised when a kernel's operand does not fit it (checked once, when the operand is built).

/// A tensor that cannot serve as a kernel operand; the description names the tensor and the reason.
public struct KernelError: Error, CustomStringConvertible, Equatable {
    public let tensor: String
    public let reason: String
    public init(tensor: String, reason: String) {
        self.tensor = tensor; self.reason = reason
    }
    public var description: String { "tensor '\(tensor)': \(reason)" }
}
