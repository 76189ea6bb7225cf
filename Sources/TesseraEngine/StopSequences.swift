// Stop strings on streamed text: emit what is safe, hold back a possible partial match, cut at the first match.

/// Incremental stop-string matcher for text that arrives in chunks.
///
/// Matching is on Unicode scalars, exactly (no normalisation): a chunk always holds whole scalars, so the result
/// never depends on how the text was split — grapheme clusters may span chunks and would not have that property.
/// The stop that completes first in the text wins (earliest end; at the same end the longest, i.e. earliest start),
/// which is what a token-by-token check would find. The output is cut before the match; the stop string itself
/// is never emitted. Empty stop strings are ignored.
public struct StopSequences: Sendable {
    private let stops: [[Unicode.Scalar]]
    private let longest: Int                  // scalars in the longest stop string
    private var pending: [Unicode.Scalar] = []  // held back: a suffix that may begin a stop string
    /// The stop string that ended the text, once one has.
    public private(set) var matched: String?
    /// True once a stop string has been found; further input is discarded.
    public var isStopped: Bool { matched != nil }

    public init(_ stopStrings: [String]) {
        stops = stopStrings.filter { !$0.isEmpty }.map { Array($0.unicodeScalars) }
        longest = stops.map(\.count).max() ?? 0
        pending.reserveCapacity(longest + 64)
    }

    /// Takes the next chunk; returns the text that can be shown now and whether a stop string was found.
    /// After a stop, returns `("", true)`.
    public mutating func feed(_ text: String) -> (emit: String, stopped: Bool) {
        var emit = ""
        let stopped = feed(Array(text.unicodeScalars), into: &emit)
        return (emit, stopped)
    }

    /// Takes the next characters and appends the ones that can be shown now to `output`; returns whether a stop
    /// string was found (its text and what follows are never appended). Allocates nothing once `output` has room.
    public mutating func feed(_ scalars: [Unicode.Scalar], into output: inout String) -> Bool {
        if isStopped { return true }
        if stops.isEmpty {
            Self.append(scalars[...], to: &output)
            return false
        }
        let searchFrom = pending.count   // earlier ends were checked by previous feeds
        pending.append(contentsOf: scalars)

        if let (start, stop) = firstMatch(endingAfter: searchFrom) {
            matched = string(stop[...])
            Self.append(pending[..<start], to: &output)
            pending.removeAll()
            return true
        }
        let ready = pending.count - heldBackCount()
        Self.append(pending[..<ready], to: &output)
        pending.removeFirst(ready)
        return false
    }

    /// Text held back at the end of the stream (a prefix of a stop string that never completed); "" after a stop.
    public mutating func flush() -> String {
        defer { pending.removeAll() }
        return isStopped ? "" : string(pending[...])
    }

    /// The match with the smallest end position greater than `searchFrom` (ties to the longest stop).
    private func firstMatch(endingAfter searchFrom: Int) -> (start: Int, stop: [Unicode.Scalar])? {
        guard pending.count > searchFrom else { return nil }
        for end in (searchFrom + 1)...pending.count {
            var best: [Unicode.Scalar]?
            for stop in stops where stop.count <= end && stop.count > (best?.count ?? 0) {
                if pending[(end - stop.count)..<end].elementsEqual(stop) { best = stop }
            }
            if let best { return (end - best.count, best) }
        }
        return nil
    }

    /// Length of the longest suffix of `pending` that is a proper prefix of some stop string.
    private func heldBackCount() -> Int {
        var length = min(pending.count, longest - 1)
        while length > 0 {
            let suffix = pending[(pending.count - length)...]
            if stops.contains(where: { $0.count > length && $0.starts(with: suffix) }) { return length }
            length -= 1
        }
        return 0
    }

    /// One scalar at a time: the sequence form of `append(contentsOf:)` builds a temporary String (an allocation).
    private static func append(_ scalars: ArraySlice<Unicode.Scalar>, to output: inout String) {
        for scalar in scalars { output.unicodeScalars.append(scalar) }
    }

    /// Built scalar by scalar: text of up to 15 UTF-8 bytes (most tokens) stays in the String itself, unallocated.
    private func string(_ scalars: ArraySlice<Unicode.Scalar>) -> String {
        var text = ""
        for scalar in scalars { text.unicodeScalars.append(scalar) }
        return text
    }
}
