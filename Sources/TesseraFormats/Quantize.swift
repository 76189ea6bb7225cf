// Quantization of float rows into GGML block formats, following ggml's reference quantizers (round to nearest,
// scales stored as IEEE half), so files Tessera writes read back identically in llama.cpp. The 32-element types are
// here; the super-block types and the IQ4 types are in SuperBlockQuantize.swift.

extension GGMLType {
    /// Whether `quantize` can produce this type.
    public var canQuantize: Bool { self != .q8_1 && self != .q8_K }

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
        case .q5_0:
            for b in 0..<count / 32 {   // d = signed max / −16, q = x / d + 16 in 0...31; d(0) qh(2..6) qs(6..22)
                let x = src + 32 * b, out = dst + 22 * b
                var amax: Float = 0, signedMax: Float = 0
                for i in 0..<32 where abs(x[i]) > amax { amax = abs(x[i]); signedMax = x[i] }
                let d = signedMax / -16, id: Float = d != 0 ? 1 / d : 0
                storeQ5(out, d: d, m: nil) { i in UInt8(min(31, Int8(x[i] * id + 16.5))) }
            }
        case .q5_1:
            for b in 0..<count / 32 {   // d = (max − min) / 31, q = (x − min) / d in 0...31; d(0) m(2) qh(4..8) qs(8..24)
                let x = src + 32 * b, out = dst + 24 * b
                var lo = x[0], hi = x[0]
                for i in 1..<32 { lo = min(lo, x[i]); hi = max(hi, x[i]) }
                let d = (hi - lo) / 31, id: Float = d != 0 ? 1 / d : 0
                storeQ5(out, d: d, m: lo) { i in UInt8(min(31, Int8((x[i] - lo) * id + 0.5))) }
            }
        case .q4_1: SuperBlockQuantizer.q4_1(src, count / 32, dst)
        case .q2_K: SuperBlockQuantizer.q2_K(src, count / 256, dst)
        case .q3_K: SuperBlockQuantizer.q3_K(src, count / 256, dst)
        case .q4_K: SuperBlockQuantizer.q4_5_K(src, count / 256, dst, fiveBits: false)
        case .q5_K: SuperBlockQuantizer.q4_5_K(src, count / 256, dst, fiveBits: true)
        case .q6_K: SuperBlockQuantizer.q6_K(src, count / 256, dst)
        case .iq4_nl: SuperBlockQuantizer.iq4_nl(src, count / 32, dst)
        case .iq4_xs: SuperBlockQuantizer.iq4_xs(src, count / 256, dst)
        case .bf16: for i in 0..<count { dst.storeBytes(of: floatToBFloat16(src[i]), toByteOffset: 2 * i, as: UInt16.self) }
        case .q8_1, .q8_K: break
        }
    }

    /// Writes a Q5 block: the half scale (and minimum), the fifth bits of the 32 values `q(i)` (0...31) as one
    /// little-endian word, then their low nibbles (element i and i + 16 share a byte).
    private func storeQ5(_ out: UnsafeMutableRawPointer, d: Float, m: Float?, _ q: (Int) -> UInt8) {
        out.storeBytes(of: floatToHalf(d), as: UInt16.self)
        if let m { out.storeBytes(of: floatToHalf(m), toByteOffset: 2, as: UInt16.self) }
        let qh = m == nil ? 2 : 4
        var high: UInt32 = 0
        for i in 0..<16 {
            let a = q(i), b = q(i + 16)
            high |= UInt32(a >> 4) << UInt32(i) | UInt32(b >> 4) << UInt32(i + 16)
            out.storeBytes(of: (a & 0x0F) | (b & 0x0F) << 4, toByteOffset: qh + 4 + i, as: UInt8.self)
        }
        out.storeBytes(of: high.littleEndian, toByteOffset: qh, as: UInt32.self)
    }
}

/// bfloat16 from float: the upper half of the bits, rounded to nearest even; NaN stays a quiet NaN.
public func floatToBFloat16(_ value: Float) -> UInt16 {
    guard !value.isNaN else { return 0x7FC0 }
    let bits = value.bitPattern
    return UInt16(truncatingIfNeeded: (bits &+ 0x7FFF &+ ((bits >> 16) & 1)) >> 16)
}

/// IEEE 754 half from float, round to nearest even (as hardware conversion does).
public func floatToHalf(_ value: Float) -> UInt16 { Float16(value).bitPattern }
