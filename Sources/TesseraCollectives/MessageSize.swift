/// Parses a message size as users write it on command lines: bytes, or with a `k` / `m` suffix (KiB, MiB).
/// Nil for anything else.
public func parseMessageSize(_ text: String) -> Int? {
    let lower = String(text.lowercased().filter { !$0.isWhitespace })
    let (digits, unit): (Substring, Int) = lower.hasSuffix("k") ? (lower.dropLast(), 1 << 10)
        : lower.hasSuffix("m") ? (lower.dropLast(), 1 << 20) : (Substring(lower), 1)
    guard let n = Int(digits), n >= 0 else { return nil }
    return n * unit
}
