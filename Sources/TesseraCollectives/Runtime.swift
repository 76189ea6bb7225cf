import CMPI
#if canImport(Glibc)
import Glibc
#endif

/// How many threads of a rank may call MPI. Tessera's engine computes on many threads but calls MPI from one.
public enum ThreadLevel: Int32, Sendable, Comparable, CustomStringConvertible {
    case single, funneled, serialized, multiple

    var mpiValue: Int32 {
        switch self {
        case .single: return tmpi_thread_single()
        case .funneled: return tmpi_thread_funneled()
        case .serialized: return tmpi_thread_serialized()
        case .multiple: return tmpi_thread_multiple()
        }
    }
    init(mpiValue: Int32) {
        switch mpiValue {
        case tmpi_thread_multiple(): self = .multiple
        case tmpi_thread_serialized(): self = .serialized
        case tmpi_thread_funneled(): self = .funneled
        default: self = .single
        }
    }
    public static func < (a: ThreadLevel, b: ThreadLevel) -> Bool { a.rawValue < b.rawValue }
    public var description: String {
        switch self {
        case .single: return "single"; case .funneled: return "funneled"
        case .serialized: return "serialized"; case .multiple: return "multiple"
        }
    }
}

/// The process's MPI session: initialised once, finalised once. Works under mpirun and as a singleton without it.
/// The only state kept is MPI's own (MPI_Initialized / MPI_Finalized), plus the reduction operations created here.
public final class MPIRuntime: @unchecked Sendable {
    /// The thread level MPI granted (at least the one asked for, or `initialize` throws).
    public let threadLevel: ThreadLevel
    /// All ranks of the job.
    public let world: Communicator
    let reductions: Reductions

    /// Initialises MPI. Throws if MPI was initialised or finalised before in this process, or if it cannot grant
    /// `threadLevel`.
    public static func initialize(threadLevel required: ThreadLevel = .funneled) throws -> MPIRuntime {
        var flag: Int32 = 0
        MPI_Finalized(&flag)
        if flag != 0 { throw MPIError.usage("MPI_Init_thread", rank: -1, "MPI was already finalized in this process") }
        MPI_Initialized(&flag)
        if flag != 0 { throw MPIError.usage("MPI_Init_thread", rank: -1, "MPI is already initialized in this process") }
        var provided: Int32 = 0
        try check(MPI_Init_thread(nil, nil, required.mpiValue, &provided), "MPI_Init_thread", rank: -1)
        // Errors come back as return codes, which become Swift errors, instead of aborting inside MPI.
        MPI_Comm_set_errhandler(tmpi_comm_world(), tmpi_errors_return())
        let granted = ThreadLevel(mpiValue: provided)
        let reductions = try Reductions()
        let world = try Communicator(adopting: tmpi_comm_world(), name: "world", reductions: reductions, owned: false)
        guard granted >= required else {
            throw MPIError.usage("MPI_Init_thread", rank: world.rank,
                                 "asked for thread level \(required), MPI granted only \(granted)")
        }
        return MPIRuntime(threadLevel: granted, world: world, reductions: reductions)
    }

    private init(threadLevel: ThreadLevel, world: Communicator, reductions: Reductions) {
        self.threadLevel = threadLevel; self.world = world; self.reductions = reductions
    }

    /// Whether MPI is running right now in this process.
    public static var isActive: Bool {
        var initialized: Int32 = 0, finalized: Int32 = 0
        MPI_Initialized(&initialized); MPI_Finalized(&finalized)
        return initialized != 0 && finalized == 0
    }

    /// Finalises MPI. Communicators must not be used afterwards.
    public func finalize() {
        guard MPIRuntime.isActive else { return }
        reductions.free()
        MPI_Finalize()
    }

    /// Ends the whole job: prints `message` (prefixed with this rank and host) to stderr and aborts every rank.
    /// Without an active MPI session it exits this process.
    public static func abortJob(_ message: String, code: Int32 = 1) -> Never {
        var rank: Int32 = -1, size: Int32 = 1
        if isActive { MPI_Comm_rank(tmpi_comm_world(), &rank); MPI_Comm_size(tmpi_comm_world(), &size) }
        let line = "tessera: rank \(rank) (\(processorName())): fatal: \(message)\n"
        fputs(line, stderr)
        fflush(stderr)
        if isActive {
            if size > 1 { MPI_Abort(tmpi_comm_world(), code) }
            MPI_Finalize()   // alone in the job: nobody to bring down
        }
        exit(code)
    }

    /// This rank's host name as MPI reports it.
    public static func processorName() -> String {
        if isActive {
            var buffer = [CChar](repeating: 0, count: Int(tmpi_max_processor_name()) + 1)
            var length: Int32 = 0
            if MPI_Get_processor_name(&buffer, &length) == 0 {
                return String(decoding: buffer.prefix(Int(length)).map { UInt8(bitPattern: $0) }, as: UTF8.self)
            }
        }
        var buffer = [CChar](repeating: 0, count: 256)
        gethostname(&buffer, buffer.count - 1)
        return String(decoding: buffer.prefix { $0 != 0 }.map { UInt8(bitPattern: $0) }, as: UTF8.self)
    }

    /// Seconds on a monotonic clock.
    public static func now() -> Double { MPI_Wtime() }
}
