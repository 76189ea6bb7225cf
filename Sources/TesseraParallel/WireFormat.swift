// How activations travel between ranks: pipeline hidden states and tensor-parallel partial sums.
import TesseraCollectives

/// The encoding of float activations on the wire. `f32` sends them as they are (exact: what the equality tests
/// use); `bf16` keeps the top half of each float (2× fewer bytes, ~3 significant digits); `q8_0` sends blocks of 32
/// as one float scale and 32 signed bytes (x ≈ d·q, d = max|x| / 127; 3.6× fewer bytes). Every rank that receives
/// a buffer decodes the same values, so tensor-parallel sums stay identical on every rank of the group.
public enum WireFormat: String, Sendable, CaseIterable, CustomStringConvertible {
    case f32, bf16, q8_0

    public var description: String { rawValue }

    static let block = 32
    static let blockBytes = 4 + block

    /// Bytes `count` floats take on the wire (q8_0 pads the last block).
    public func bytes(count: Int) -> Int {
        switch self {
        case .f32: return 4 * count
        case .bf16: return 2 * count
        case .q8_0: return (count + Self.block - 1) / Self.block * Self.blockBytes
        }
    }

    /// Encodes `count` floats into `bytes(count:)` bytes at `wire`.
    public func encode(_ x: UnsafePointer<Float>, count: Int, into wire: UnsafeMutableRawPointer) {
        switch self {
        case .f32:
            wire.copyMemory(from: x, byteCount: 4 * count)
        case .bf16:
            let out = wire.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { out[i] = BFloat16(x[i]).bits }
        case .q8_0:
            var start = 0, block = wire
            while start < count {
                let n = min(Self.block, count - start)
                var amax: Float = 0
                for i in 0..<n { amax = max(amax, abs(x[start + i])) }
                let d = amax / 127, inverse = amax > 0 ? 127 / amax : 0
                block.storeBytes(of: d, as: Float.self)
                let q = (block + 4).assumingMemoryBound(to: Int8.self)
                for i in 0..<n { q[i] = Int8((x[start + i] * inverse).rounded(.toNearestOrEven)) }
                for i in n..<Self.block { q[i] = 0 }
                start += n; block += Self.blockBytes
            }
        }
    }

    /// Decodes `count` floats from `wire` (as `encode` wrote them) into `y`.
    public func decode(_ wire: UnsafeRawPointer, count: Int, into y: UnsafeMutablePointer<Float>) {
        switch self {
        case .f32:
            UnsafeMutableRawPointer(y).copyMemory(from: wire, byteCount: 4 * count)
        case .bf16:
            let input = wire.assumingMemoryBound(to: UInt16.self)
            for i in 0..<count { y[i] = Float(bitPattern: UInt32(input[i]) << 16) }
        case .q8_0:
            var start = 0, block = wire
            while start < count {
                let n = min(Self.block, count - start)
                let d = block.loadUnaligned(as: Float.self)
                let q = (block + 4).assumingMemoryBound(to: Int8.self)
                for i in 0..<n { y[start + i] = d * Float(q[i]) }
                start += n; block += Self.blockBytes
            }
        }
    }
}
