// Block dequantization, bit-identical to the PyPI `gguf` package (gguf/quants.py, numpy float32): every product
// and sum below is one float32 operation in the same order as there (no fused multiply-add, no reassociation).
// Block layouts are ggml's; offsets in comments are bytes within one block.

extension GGMLType {
    /// Dequantizes `count` elements (a whole number of blocks) starting at a block boundary; bit-identical to PyPI `gguf`.
    /// Elements past the last whole block are not written.
    public func dequantize(_ src: UnsafeRawPointer, count: Int, into dst: UnsafeMutablePointer<Float>) {
        let blocks = count / blockSize
        guard blocks > 0 else { return }
        switch self {
        case .f32: UnsafeMutableRawPointer(dst).copyMemory(from: src, byteCount: blocks * 4)
        case .f16: for i in 0 ..< blocks { dst[i] = halfToFloat(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) }
        case .bf16:
            for i in 0 ..< blocks {
                dst[i] = Float(bitPattern: UInt32(src.loadUnaligned(fromByteOffset: 2 * i, as: UInt16.self)) << 16)
            }
        case .q4_0: Dequant.nibbleLevels(src, blocks, dst, Dequant.q4_0Levels)
        case .q4_1: Dequant.q4_1(src, blocks, dst)
        case .q5_0: Dequant.q5_0(src, blocks, dst)
        case .q5_1: Dequant.q5_1(src, blocks, dst)
        case .q8_0: Dequant.q8(src, blocks, dst, blockBytes: 34, qsOffset: 2)
        case .q8_1: Dequant.q8(src, blocks, dst, blockBytes: 36, qsOffset: 4)
        case .q2_K: Dequant.q2_K(src, blocks, dst)
        case .q3_K: Dequant.q3_K(src, blocks, dst)
        case .q4_K: Dequant.q4_K(src, blocks, dst, withHighBits: false)
        case .q5_K: Dequant.q4_K(src, blocks, dst, withHighBits: true)
        case .q6_K: Dequant.q6_K(src, blocks, dst)
        case .q8_K: Dequant.q8_K(src, blocks, dst)
        case .iq4_nl: Dequant.nibbleLevels(src, blocks, dst, Dequant.iq4Levels)
        case .iq4_xs: Dequant.iq4_xs(src, blocks, dst)
        }
    }
}

extension TensorView {
    /// All elements of the view as float32 (dequantized when the type is quantized).
    public func dequantized() -> [Float] {
        let type = info.type
        let blocks = min(info.elementCount / type.blockSize, data.count / type.blockBytes)
        guard blocks > 0, let base = data.baseAddress else { return [] }
        return [Float](unsafeUninitializedCapacity: blocks * type.blockSize) { out, n in
            if let p = out.baseAddress { type.dequantize(base, count: blocks * type.blockSize, into: p) }
            n = blocks * type.blockSize
        }
    }
}

/// IEEE half (bits) to float, exact for every input including subnormals, infinities and NaN payloads.
@inline(__always)
public func halfToFloat(_ h: UInt16) -> Float {
    let shiftedExp: UInt32 = 0x7C00 << 13
    var bits = UInt32(h & 0x7FFF) << 13                 // exponent and mantissa in place
    let exp = bits & shiftedExp
    bits &+= (127 - 15) << 23                           // rebias the exponent
    if exp == shiftedExp {
        bits &+= (128 - 16) << 23                       // Inf / NaN
    } else if exp == 0 {
        bits &+= 1 << 23                                // zero / subnormal: renormalise with one exact subtraction
        bits = (Float(bitPattern: bits) - Float(bitPattern: 113 << 23)).bitPattern
    }
    return Float(bitPattern: bits | UInt32(h & 0x8000) << 16)
}

enum Dequant {
    @inline(__always) static func byte(_ p: UnsafeRawPointer, _ i: Int) -> UInt8 { p.load(fromByteOffset: i, as: UInt8.self) }
    @inline(__always) static func half(_ p: UnsafeRawPointer, _ i: Int) -> Float {
        halfToFloat(p.loadUnaligned(fromByteOffset: i, as: UInt16.self))
    }

    /// Q4_0's levels: nibble - 8.
    static let q4_0Levels: [Float] = (0 ..< 16).map { Float($0 - 8) }
    /// IQ4_NL's and IQ4_XS's 16 non-linear levels (ggml's kvalues_iq4nl), indexed by a nibble.
    static let iq4Levels: [Float] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]

    /// Q4_0 and IQ4_NL, d(0) qs(2..18): x = d * level[nibble]; low nibbles are elements 0..15, high nibbles 16..31.
    static func nibbleLevels(_ src: UnsafeRawPointer, _ blocks: Int, _ dst: UnsafeMutablePointer<Float>, _ levels: [Float]) {
        levels.withUnsafeBufferPointer { level in
            for b in 0 ..< blocks {
                let p = src + b * 18, o = dst + b * 32
                let d = half(p, 0)
                for j in 0 ..< 16 {
                    let x = byte(p, 2 + j)
                    o[j] = d * level[Int(x & 0x0F)]
                    o[j + 16] = d * level[Int(x >> 4)]
                }
            }
        }
    }

    /// d(0) scales_h(2, u16) scales_l(4..8) qs(8..136): sub-block i of 32 has the 6-bit scale
    /// ls = (nibble i of scales_l) | (bits 2i, 2i+1 of scales_h) << 4 and x = (d * (ls - 32)) * level[nibble], its
    /// 16 bytes of qs as in IQ4_NL.
    static func iq4_xs(_ src: UnsafeRawPointer, _ blocks: Int, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0 ..< blocks {
            let p = src + b * 136, o = dst + b * 256
            let d = half(p, 0)
            let high = UInt32(byte(p, 2)) | UInt32(byte(p, 3)) << 8
            for i in 0 ..< 8 {
                let low = (byte(p, 4 + i / 2) >> (4 * UInt8(i % 2))) & 0x0F
                let ls = Int32(low) | Int32((high >> (2 * UInt32(i))) & 3) << 4
                let dl = d * Float(ls - 32)
                for j in 0 ..< 16 {
                    let x = byte(p, 8 + 16 * i + j)
                    o[32 * i + j] = dl * iq4Levels[Int(x & 0x0F)]
                    o[32 * i + j + 16] = dl * iq4Levels[Int(x >> 4)]
                }
            }
        }
    }

    /// d(0) m(2) qs(4..20): x = d * nibble + m.
    static func q4_1(_ src: UnsafeRawPointer, _ blocks: Int, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0 ..< blocks {
            let p = src + b * 20, o = dst + b * 32
            let d = half(p, 0), m = half(p, 2)
            for j in 0 ..< 16 {
                let x = byte(p, 4 + j)
                o[j] = d * Float(x & 0x0F) + m
                o[j + 16] = d * Float(x >> 4) + m
            }
        }
    }

    /// d(0) qh(2..6, u32: bit i = 5th bit of element i) qs(6..22): x = d * (q - 16).
    static func q5_0(_ src: UnsafeRawPointer, _ blocks: Int, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0 ..< blocks {
            let p = src + b * 22, o = dst + b * 32
            let d = half(p, 0)
            let qh = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 2, as: UInt32.self))
            for j in 0 ..< 16 {
                let x = UInt32(byte(p, 6 + j))
                let lo = (x & 0x0F) | ((qh >> UInt32(j)) & 1) << 4
                let hi = (x >> 4) | ((qh >> UInt32(j + 16)) & 1) << 4
                o[j] = d * Float(Int32(lo) - 16)
                o[j + 16] = d * Float(Int32(hi) - 16)
            }
        }
    }

    /// d(0) m(2) qh(4..8) qs(8..24): x = d * q + m.
    static func q5_1(_ src: UnsafeRawPointer, _ blocks: Int, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0 ..< blocks {
            let p = src + b * 24, o = dst + b * 32
            let d = half(p, 0), m = half(p, 2)
            let qh = UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 4, as: UInt32.self))
            for j in 0 ..< 16 {
                let x = UInt32(byte(p, 8 + j))
                let lo = (x & 0x0F) | ((qh >> UInt32(j)) & 1) << 4
                let hi = (x >> 4) | ((qh >> UInt32(j + 16)) & 1) << 4
                o[j] = d * Float(lo) + m
                o[j + 16] = d * Float(hi) + m
            }
        }
    }

    /// Q8_0: d(0) qs(2..34); Q8_1: d(0) s(2) qs(4..36). x = q * d.
    static func q8(_ src: UnsafeRawPointer, _ blocks: Int, _ dst: UnsafeMutablePointer<Float>, blockBytes: Int, qsOffset: Int) {
        for b in 0 ..< blocks {
            let p = src + b * blockBytes, o = dst + b * 32
            let d = half(p, 0)
            for j in 0 ..< 32 { o[j] = Float(p.load(fromByteOffset: qsOffset + j, as: Int8.self)) * d }
        }
    }

    /// d(0, float32) qs(4..260) bsums(260..292): x = d * q.
    static func q8_K(_ src: UnsafeRawPointer, _ blocks: Int, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0 ..< blocks {
            let p = src + b * 292, o = dst + b * 256
            let d = Float(bitPattern: UInt32(littleEndian: p.loadUnaligned(fromByteOffset: 0, as: UInt32.self)))
            for j in 0 ..< 256 { o[j] = d * Float(p.load(fromByteOffset: 4 + j, as: Int8.self)) }
        }
    }

    /// scales(0..16: low nibble scale, high nibble min) qs(16..80, 2 bits) d(80) dmin(82).
    /// Element e = 128h + 32k + l holds bits 2k of qs[32h + l]; x = (d * sc) * q - (dmin * m), per 16 elements.
    static func q2_K(_ src: UnsafeRawPointer, _ blocks: Int, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0 ..< blocks {
            let p = src + b * 84, o = dst + b * 256
            let d = half(p, 80), dmin = half(p, 82)
            for s in 0 ..< 16 {
                let sc = byte(p, s)
                let dl = d * Float(sc & 0x0F), ml = dmin * Float(sc >> 4)
                let q = p + 16 + (s / 8) * 32 + (s % 2) * 16
                let shift = UInt8(2 * ((s % 8) / 2))
                let out = o + 16 * s
                for i in 0 ..< 16 { out[i] = dl * Float((byte(q, i) >> shift) & 3) - ml }
            }
        }
    }

    /// hmask(0..32) qs(32..96, 2 bits) scales(96..108, 6-bit packed) d(108).
    /// q = low 2 bits - (hmask bit clear ? 4 : 0); x = (d * (scale - 32)) * q.
    static func q3_K(_ src: UnsafeRawPointer, _ blocks: Int, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0 ..< blocks {
            let p = src + b * 110, o = dst + b * 256
            let d = half(p, 108)
            for s in 0 ..< 16 {
                let low = (byte(p, 96 + s % 8) >> UInt8(4 * (s / 8))) & 0x0F
                let high = (byte(p, 104 + s % 4) >> UInt8(2 * (s / 4))) & 0x03
                let dl = d * Float(Int32(low | high << 4) - 32)
                let e0 = 16 * s
                let q = p + 32 + (e0 / 128) * 32 + e0 % 32     // 16 consecutive bytes of qs
                let shift = UInt8(2 * ((e0 % 128) / 32))
                let hbit = UInt8(e0 / 32)
                let hm = p + e0 % 32
                let out = o + e0
                for i in 0 ..< 16 {
                    let lo = Int32((byte(q, i) >> shift) & 3)
                    let h = Int32((byte(hm, i) >> hbit) & 1)
                    out[i] = dl * Float(lo - 4 + (h << 2))       // hmask bit clear: -4
                }
            }
        }
    }

    /// Q4_K: d(0) dmin(2) scales(4..16, 6-bit scales and mins) qs(16..144).
    /// Q5_K: d(0) dmin(2) scales(4..16) qh(16..48) qs(48..176).
    /// Element e = 64g + 32t + l holds nibble t of qs[32g + l] (+ bit e/32 of qh[l] << 4); x = (d*sc) * q - (dmin*m).
    static func q4_K(_ src: UnsafeRawPointer, _ blocks: Int, _ dst: UnsafeMutablePointer<Float>, withHighBits: Bool) {
        let blockBytes = withHighBits ? 176 : 144
        let qsOffset = withHighBits ? 48 : 16
        for b in 0 ..< blocks {
            let p = src + b * blockBytes, o = dst + b * 256
            let d = half(p, 0), dmin = half(p, 2)
            let sc = p + 4
            for j in 0 ..< 8 {
                let scale, min: UInt8
                if j < 4 {
                    scale = byte(sc, j) & 0x3F
                    min = byte(sc, j + 4) & 0x3F
                } else {
                    scale = (byte(sc, j + 4) & 0x0F) | ((byte(sc, j - 4) >> 2) & 0x30)
                    min = (byte(sc, j + 4) >> 4) | ((byte(sc, j) >> 2) & 0x30)
                }
                let dl = d * Float(scale), ml = dmin * Float(min)
                let q = p + qsOffset + (j / 2) * 32
                let shift = UInt8(4 * (j % 2))
                let out = o + 32 * j
                if withHighBits {
                    let hj = UInt8(j)
                    for l in 0 ..< 32 {
                        let v = ((byte(q, l) >> shift) & 0x0F) | ((byte(p, 16 + l) >> hj) & 1) << 4
                        out[l] = dl * Float(v) - ml
                    }
                } else {
                    for l in 0 ..< 32 { out[l] = dl * Float((byte(q, l) >> shift) & 0x0F) - ml }
                }
            }
        }
    }

    /// ql(0..128) qh(128..192) scales(192..208, int8) d(208).
    /// Element e = 128h + r: low 4 bits from ql[64h + r%64] >> 4(r/64), high 2 bits from qh[32h + r%32] >> 2(r/32).
    static func q6_K(_ src: UnsafeRawPointer, _ blocks: Int, _ dst: UnsafeMutablePointer<Float>) {
        for b in 0 ..< blocks {
            let p = src + b * 210, o = dst + b * 256
            let d = half(p, 208)
            for s in 0 ..< 16 {
                let ds = d * Float(p.load(fromByteOffset: 192 + s, as: Int8.self))
                let e0 = 16 * s, h = e0 / 128, r0 = e0 % 128
                let ql = p + 64 * h + r0 % 64, lshift = UInt8(4 * (r0 / 64))
                let qh = p + 128 + 32 * h + r0 % 32, hshift = UInt8(2 * (r0 / 32))
                let out = o + e0
                for i in 0 ..< 16 {
                    let v = ((byte(ql, i) >> lshift) & 0x0F) | ((byte(qh, i) >> hshift) & 3) << 4
                    out[i] = ds * Float(Int32(v) - 32)
                }
            }
        }
    }
}
