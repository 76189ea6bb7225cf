// Quantization of float rows into GGML block formats, following ggml's reference quantizers (round to nearest,
// scales stored as IEEE half), so files Tessera writes read back identically in llama.cpp.

extension GGMLType {
    /// Whether `quantize` can produce this type.
    public var canQuantize: Bool { self == .q8_0 || self == .q4_0 || self == .f32 || self == .f16 }

    /// Encodes `count` floats (a whole number of blocks) into `dst`, which holds `byteCount(elements: count)` bytes.
    public func quantize(_ src: UnsafePointer<Float>, count: Int, into dst: UnsafeMutableRawPointer) {
        precondition(canQuantize && count % blockSize == 0, "cannot quantize \(count) values to \(self)")
        switch self {
        case .f32: dst.copyMemory(from: src, byteCount: count * 4)
        case .f16: for i in 0..<count { dst.storeBytes(of: floatToHalf(src[i]), toByteOffset: 2 * i, as: UInt16.self) }
        case .q8_0:
            for b in 0..<count / 32 {
                let x = src + 32 * b, out = dst + 34 * b
                var amax: Float = 0
                for i in 0..<32 { amax = max(amax, abs(x[i])) }
                let d = amax / 127, id: Float = d != 0 ? 1 / d : 0
                out.storeBytes(of: floatToHalf(d), as: UInt16.self)
                for i in 0..<32 { out.storeBytes(of: Int8((x[i] * id).rounded()), toByteOffset: 2 + i, as: Int8.self) }
            }
        case .q4_0:
            for b in 0..<count / 32 {
                let x = src + 32 * b, out = dst + 18 * b
                var amax: Float = 0, signedMax: Float = 0
                for i in 0..<32 where abs(x[i]) > amax { amax = abs(x[i]); signedMax = x[i] }
                let d = signedMax / -8, id: Float = d != 0 ? 1 / d : 0
                out.storeBytes(of: floatToHalf(d), as: UInt16.self)
                for i in 0..<16 {
                    let lo = UInt8(min(15, Int8(x[i] * id + 8.5))), hi = UInt8(min(15, Int8(x[16 + i] * id + 8.5)))
                    out.storeBytes(of: lo | (hi << 4), toByteOffset: 2 + i, as: UInt8.self)
                }
            }
        default: break
        }
    }
}

/// IEEE 754 half from float, round to nearest even (as hardware conversion does).
public func floatToHalf(_ value: Float) -> UInt16 { Float16(value).bitPattern }
