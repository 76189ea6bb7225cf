// Where a forward pass spends its time: wall time per operator kind and per layer, accumulated over a run
// (`--profile`). Timing is on the calling thread, so an operator's time includes its pool workers' share and, in
// tensor-parallel linears, the collective they end with.
import Foundation

/// The operator kinds a model's forward pass is cut into.
public enum ProfiledOperator: Int, CaseIterable, Sendable {
    case embedding, attentionNorm, qkv, ropeAndCache, attention, attentionOutput
    case mlpNorm, gateUp, silu, down, head

    public var label: String {
        switch self {
        case .embedding: return "embedding lookup"
        case .attentionNorm: return "attention RMSNorm"
        case .qkv: return "Q/K/V products"
        case .ropeAndCache: return "RoPE + KV cache write"
        case .attention: return "attention"
        case .attentionOutput: return "attention output + residual"
        case .mlpNorm: return "MLP RMSNorm"
        case .gateUp: return "gate/up products"
        case .silu: return "SiLU·mul"
        case .down: return "down product + residual"
        case .head: return "final norm + head"
        }
    }
}

/// Accumulated nanoseconds per (layer, operator); one forward pass at a time (the model's own thread).
public final class Profiler: @unchecked Sendable {
    public let layers: Int
    private let nanoseconds: UnsafeMutablePointer<UInt64>   // [(layers + 1) × operators]: row `layers` = no layer
    private let operators = ProfiledOperator.allCases.count

    public init(layers: Int) {
        self.layers = layers
        nanoseconds = .allocate(capacity: (layers + 1) * operators)
        nanoseconds.initialize(repeating: 0, count: (layers + 1) * operators)
    }

    deinit { nanoseconds.deallocate() }

    @inline(__always) public static func now() -> UInt64 {
        var t = timespec()
        clock_gettime(CLOCK_MONOTONIC, &t)
        return UInt64(t.tv_sec) &* 1_000_000_000 &+ UInt64(t.tv_nsec)
    }

    /// Adds the time since `start` to `op` of `layer` (nil: outside the layers).
    @inline(__always) public func add(_ op: ProfiledOperator, layer: Int?, since start: UInt64) {
        let row = layer.map { min(max($0, 0), layers) } ?? layers
        nanoseconds[row &* operators &+ op.rawValue] &+= Profiler.now() &- start
    }

    public func seconds(_ op: ProfiledOperator, layer: Int?) -> Double {
        Double(nanoseconds[(layer ?? layers) * operators + op.rawValue]) / 1e9
    }

    /// Seconds of `op` over every layer and outside them.
    public func seconds(_ op: ProfiledOperator) -> Double {
        (0...layers).reduce(0) { $0 + Double(nanoseconds[$1 * operators + op.rawValue]) / 1e9 }
    }

    /// Seconds of all operators of `layer`.
    public func seconds(layer: Int) -> Double {
        ProfiledOperator.allCases.reduce(0) { $0 + seconds($1, layer: layer) }
    }

    public var totalSeconds: Double { ProfiledOperator.allCases.reduce(0) { $0 + seconds($1) } }

    /// A table of operator kinds (time, share, per step) and per-layer times; `communication` is the seconds the
    /// rank's collectives took (part of the operators that end in one), `steps` the forward steps run.
    public func report(steps: Int, communication: Double? = nil) -> String {
        let total = totalSeconds, perStep = 1000 / Double(max(steps, 1))
        func row(_ label: String, _ seconds: Double) -> String {
            label.padding(toLength: 30, withPad: " ", startingAt: 0)
                + String(format: " %10.4f %6.1f%% %12.4f", seconds, 100 * seconds / max(total, 1e-12), seconds * perStep)
        }
        var lines = ["operator".padding(toLength: 30, withPad: " ", startingAt: 0) + "    seconds   share  ms per step"]
        for op in ProfiledOperator.allCases where seconds(op) > 0 { lines.append(row(op.label, seconds(op))) }
        lines.append(row("all operators", total))
        if let communication { lines.append(row("  of which communication", communication)) }
        let held = (0..<layers).filter { seconds(layer: $0) > 0 }
        if !held.isEmpty {
            lines.append("per layer, ms per step:")
            var row = ""
            for (i, l) in held.enumerated() {
                row += String(format: "  %3d: %7.4f", l, seconds(layer: l) * perStep)
                if i % 6 == 5 || i == held.count - 1 { lines.append(row); row = "" }
            }
        }
        return lines.joined(separator: "\n")
    }
}
