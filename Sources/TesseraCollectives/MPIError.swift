import CMPI

/// An MPI call that did not succeed, or a collective used wrongly. Carries the operation and the rank that saw it.
public struct MPIError: Error, CustomStringConvertible, Sendable {
    public let operation: String
    public let rank: Int
    public let code: Int32
    public let message: String

    public var description: String {
        code == 0 ? "rank \(rank): \(operation): \(message)" : "rank \(rank): \(operation) failed: \(message) (MPI error \(code))"
    }

    /// A usage error found before MPI is called (mismatched buffer sizes, bad peer rank).
    static func usage(_ operation: String, rank: Int, _ message: String) -> MPIError {
        MPIError(operation: operation, rank: rank, code: 0, message: message)
    }

    static func describe(code: Int32) -> String {
        var buffer = [CChar](repeating: 0, count: Int(tmpi_max_error_string()) + 1)
        var length: Int32 = 0
        guard MPI_Error_string(code, &buffer, &length) == tmpi_success() else { return "unknown MPI error" }
        return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }
}

/// Throws `MPIError` unless `code` is MPI_SUCCESS.
@inline(__always)
func check(_ code: Int32, _ operation: @autoclosure () -> String, rank: Int) throws {
    if code != 0 {
        throw MPIError(operation: operation(), rank: rank, code: code, message: MPIError.describe(code: code))
    }
}
