import TesseraCollectives
import TesseraModels

/// What the coordinator tells every decoder rank, once per step. Broadcast over the decoder communicator as Int64
/// words: a header `[kind, count, updateWords, microBatches]`, then for a step `count` tokens, positions, sequence
/// slots and logit flags, followed by the step's block-table updates. `microBatches` is how many parts the pipeline
/// stages cut the step into (one per stage when the step runs alone, 1 when other steps are in flight with it).
public enum ControlMessage: Equatable, Sendable {
    case step(Batch, BlockTableUpdates, microBatches: Int)
    case shutdown

    enum Kind: Int64 { case step = 1, shutdown = 3 }
    static let headerWords = 4

    /// Starts sending `self` from `root` (call on the root) and returns at once: the coordinator can go on with
    /// its stage while slower ranks are still busy with earlier steps. Every rank takes the message with
    /// non-blocking broadcasts (a blocking one would not match them).
    func post(from root: Int, over comm: Communicator) throws -> PostedControl {
        var words: [Int64]
        switch self {
        case .step(let batch, let updates, let parts):
            let updateWords = BlockTableUpdates.wordCount(updates: updates.count, blocks: updates.blocks.count)
            words = [Kind.step.rawValue, Int64(batch.count), Int64(updateWords), Int64(parts)]
            words.reserveCapacity(Self.headerWords + 4 * batch.count + updateWords)
            words += batch.tokens.map(Int64.init)
            words += batch.positions.map(Int64.init)
            words += batch.sequences.map(Int64.init)
            words += batch.wantsLogits.map { $0 ? 1 : 0 }
            updates.encoded(into: &words)
        case .shutdown:
            words = [Kind.shutdown.rawValue, 0, 0, 0]
        }
        return try PostedControl(words, root: root, over: comm)
    }

    /// Receives the message `root` broadcasts (call on every other rank). Waiting for the header is waiting between
    /// steps; from its arrival the rank is inside a step, and the step watchdog (if any) is armed.
    static func receive(from root: Int, over comm: Communicator) throws -> ControlMessage {
        var header = [Int64](repeating: 0, count: headerWords)
        comm.watchdog?.disarm()
        try header.withUnsafeMutableBufferPointer { try comm.ibroadcast($0, root: root).wait() }
        comm.watchdog?.arm()
        switch Kind(rawValue: header[0]) {
        case .step:
            let n = Int(header[1]), u = Int(header[2]), parts = Int(header[3])
            guard n >= 0 && n <= 1 << 24, u >= 2 && u <= 1 << 26, parts >= 1 && parts <= 1 << 16 else {
                throw ProtocolError("step of \(n) tokens, \(u) block-table words and \(parts) micro-batches from rank \(root)")
            }
            var payload = [Int64](repeating: 0, count: 4 * n + u)
            try payload.withUnsafeMutableBufferPointer { try comm.ibroadcast($0, root: root).wait() }
            var batch = Batch()
            for i in 0..<n {
                batch.append(token: Int(payload[i]), position: Int(payload[n + i]), sequence: Int(payload[2 * n + i]),
                             wantsLogits: payload[3 * n + i] != 0)
            }
            guard let updates = BlockTableUpdates(words: payload[(4 * n)...]) else {
                throw ProtocolError("malformed block-table updates in a step from rank \(root)")
            }
            return .step(batch, updates, microBatches: parts)
        case .shutdown: return .shutdown
        case nil: throw ProtocolError("unknown control message \(header[0]) from rank \(root)")
        }
    }
}

/// A control message on its way from the root: its words stay allocated until every rank has them.
final class PostedControl {
    private let words: UnsafeMutableBufferPointer<Int64>
    private var requests: [Request] = []

    /// Broadcasts the header, then the rest (a step's payload), both non-blocking.
    init(_ message: [Int64], root: Int, over comm: Communicator) throws {
        let h = ControlMessage.headerWords
        words = .allocate(capacity: message.count)
        _ = words.initialize(from: message)
        requests.append(try comm.ibroadcast(UnsafeMutableBufferPointer(rebasing: words[0..<h]), root: root))
        if message.count > h {
            requests.append(try comm.ibroadcast(UnsafeMutableBufferPointer(rebasing: words[h...]), root: root))
        }
    }

    /// Blocks until every rank has the message.
    func wait() throws {
        try Request.waitAll(requests)
        requests.removeAll()
    }

    deinit {
        requests.removeAll()   // an unfinished request waits in its deinit, before the words go
        words.deallocate()
    }
}

public struct ProtocolError: Error, CustomStringConvertible {
    public let description: String
    init(_ description: String) { self.description = description }
}
