import TesseraCollectives
import TesseraModels

/// What the coordinator tells every decoder rank, once per step. Broadcast over the decoder communicator as Int64
/// words: a header `[kind, count, updateWords]`, then for a step `count` tokens, positions, sequence slots and logit
/// flags, followed by the step's block-table updates.
public enum ControlMessage: Equatable, Sendable {
    case step(Batch, BlockTableUpdates)
    case shutdown

    enum Kind: Int64 { case step = 1, shutdown = 3 }

    /// Sends `self` from `root` (call on the root).
    func broadcast(from root: Int, over comm: Communicator) throws {
        switch self {
        case .step(let batch, let updates):
            let updateWords = BlockTableUpdates.wordCount(updates: updates.count, blocks: updates.blocks.count)
            var header: [Int64] = [Kind.step.rawValue, Int64(batch.count), Int64(updateWords)]
            try header.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: root) }
            var payload = [Int64]()
            payload.reserveCapacity(4 * batch.count + updateWords)
            payload += batch.tokens.map(Int64.init)
            payload += batch.positions.map(Int64.init)
            payload += batch.sequences.map(Int64.init)
            payload += batch.wantsLogits.map { $0 ? 1 : 0 }
            updates.encoded(into: &payload)
            try payload.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: root) }
        case .shutdown:
            var header: [Int64] = [Kind.shutdown.rawValue, 0, 0]
            try header.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: root) }
        }
    }

    /// Receives the message `root` broadcasts (call on every other rank).
    static func receive(from root: Int, over comm: Communicator) throws -> ControlMessage {
        var header: [Int64] = [0, 0, 0]
        try header.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: root) }
        switch Kind(rawValue: header[0]) {
        case .step:
            let n = Int(header[1]), u = Int(header[2])
            guard n >= 0 && n <= 1 << 24, u >= 2 && u <= 1 << 26 else {
                throw ProtocolError("step of \(n) tokens and \(u) block-table words from rank \(root)")
            }
            var payload = [Int64](repeating: 0, count: 4 * n + u)
            try payload.withUnsafeMutableBufferPointer { try comm.broadcast($0, root: root) }
            var batch = Batch()
            for i in 0..<n {
                batch.append(token: Int(payload[i]), position: Int(payload[n + i]), sequence: Int(payload[2 * n + i]),
                             wantsLogits: payload[3 * n + i] != 0)
            }
            guard let updates = BlockTableUpdates(words: payload[(4 * n)...]) else {
                throw ProtocolError("malformed block-table updates in a step from rank \(root)")
            }
            return .step(batch, updates)
        case .shutdown: return .shutdown
        case nil: throw ProtocolError("unknown control message \(header[0]) from rank \(root)")
        }
    }
}

public struct ProtocolError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
