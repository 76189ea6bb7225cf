// The sampler's random source: xoshiro256** with explicit state, seeded through SplitMix64.
// Integer arithmetic only, so a seed gives the same stream on every machine.

/// A small, fast, explicit-state PRNG (xoshiro256**, Blackman & Vigna). Copying it copies the stream position.
public struct RandomGenerator: RandomNumberGenerator, Sendable, Equatable {
    private var s0, s1, s2, s3: UInt64   // the 256-bit state, never all zero

    /// Seeds the four state words with four consecutive SplitMix64 outputs of `seed` (the authors' recommendation).
    public init(seed: UInt64) {
        var x = seed
        func splitMix() -> UInt64 {
            x &+= 0x9E37_79B9_7F4A_7C15
            var z = x
            z = (z ^ (z >> 30)) &* 0xBF58_476D_1CE4_E5B9
            z = (z ^ (z >> 27)) &* 0x94D0_49BB_1331_11EB
            return z ^ (z >> 31)
        }
        // SplitMix64 is a bijection of distinct counters, so at most one of the four words can be zero.
        s0 = splitMix(); s1 = splitMix(); s2 = splitMix(); s3 = splitMix()
    }

    /// The next 64 random bits.
    @inline(__always)
    public mutating func next() -> UInt64 {
        let result = rotateLeft(s1 &* 5, 7) &* 9
        let t = s1 << 17
        s2 ^= s0; s3 ^= s1; s1 ^= s2; s0 ^= s3
        s2 ^= t
        s3 = rotateLeft(s3, 45)
        return result
    }

    /// A uniform double in [0, 1) carrying 53 random bits (the top bits of `next()`).
    @inline(__always)
    public mutating func nextDouble() -> Double {
        Double(next() >> 11) * 0x1.0p-53
    }

    @inline(__always)
    private func rotateLeft(_ x: UInt64, _ k: UInt64) -> UInt64 { (x << k) | (x >> (64 - k)) }
}
