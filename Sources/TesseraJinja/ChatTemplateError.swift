/// Why a chat template could not be parsed or rendered. `line` is the 1-based template line.
public enum ChatTemplateError: Error, CustomStringConvertible, Equatable {
    /// Malformed template text ("unexpected 'endif'", "unterminated string").
    case syntax(line: Int, reason: String)
    /// A valid Jinja construct this renderer does not implement ("tag 'call'", "filter 'format'").
    case unsupported(line: Int, construct: String)
    /// An error while rendering (undefined variable used in arithmetic, wrong types, ...).
    case runtime(line: Int, reason: String)
    /// The template called `raise_exception(message)`, e.g. "Conversation roles must alternate ...".
    case raised(line: Int, message: String)

    public var description: String {
        switch self {
        case .syntax(let line, let reason): return "chat template: syntax error at line \(line): \(reason)"
        case .unsupported(let line, let construct): return "chat template: unsupported \(construct) at line \(line)"
        case .runtime(let line, let reason): return "chat template: error at line \(line): \(reason)"
        case .raised(let line, let message): return "chat template raised an exception at line \(line): \(message)"
        }
    }
}
