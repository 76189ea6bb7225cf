// Quantization of float rows into the k-quant super-blocks (Q2_K … Q6_K), Q4_1 and the non-linear IQ4 types,
// following ggml's reference algorithms without an importance matrix — per sub-block a weighted least-squares fit of
// scale (and minimum) over a few candidate grids, then the sub-block scales quantized against one half-precision
// super-block scale and every value re-rounded against the scale it will be read with. Layouts are those `Dequant`
// reads (Dequantize.swift). Float sums run in element order, so results match ggml's up to its compiler's fused
// multiply-adds.

enum SuperBlockQuantizer {
    /// Round half to even, as ggml's `nearest_int` does for the magnitudes that occur here.
    @inline(__always) static func nearest(_ x: Float) -> Int { Int(x.rounded(.toNearestOrEven)) }

    /// Affine fit x ≈ scale·L − minimum, L in 0...nmax, minimum ≥ 0 (an offset is only ever subtracted): first the
    /// range grid, then `steps + 1` grids of nmax + rmin + k·rdelta levels from the best offset so far to the
    /// maximum, keeping the one with the least weighted squared (or absolute, `absolute`) error, scale and minimum
    /// solved by weighted least squares.
    static func fitAffine(_ x: UnsafePointer<Float>, _ n: Int, nmax: Int, weights w: UnsafePointer<Float>,
                          levels L: UnsafeMutablePointer<UInt8>, rmin: Float, rdelta: Float, steps: Int,
                          absolute: Bool) -> (scale: Float, minimum: Float) {
        var lo = x[0], hi = x[0], sumW = w[0], sumX = w[0] * x[0]
        for i in 1 ..< n {
            lo = min(lo, x[i]); hi = max(hi, x[i])
            sumW += w[i]; sumX += w[i] * x[i]
        }
        if lo > 0 { lo = 0 }
        if hi == lo {
            for i in 0 ..< n { L[i] = 0 }
            return (0, -lo)
        }
        func error(_ scale: Float, _ offset: Float, _ level: (Int) -> UInt8) -> Float {
            var e: Float = 0
            for i in 0 ..< n {
                let diff = scale * Float(level(i)) + offset - x[i]
                e += w[i] * (absolute ? abs(diff) : diff * diff)
            }
            return e
        }
        var iscale = Float(nmax) / (hi - lo), scale = 1 / iscale, offset = lo
        for i in 0 ..< n { L[i] = UInt8(max(0, min(nmax, nearest(iscale * (x[i] - lo))))) }
        var best = error(scale, offset) { L[$0] }
        guard steps >= 1 else { return (scale, -offset) }
        withUnsafeTemporaryAllocation(of: UInt8.self, capacity: n) { trial in
            for step in 0 ... steps {
                // the grid starts at the best offset so far (ggml moves it as better fits are found)
                iscale = (rmin + rdelta * Float(step) + Float(nmax)) / (hi - offset)
                var sumL: Float = 0, sumL2: Float = 0, sumXL: Float = 0
                for i in 0 ..< n {
                    let l = max(0, min(nmax, nearest(iscale * (x[i] - offset))))
                    trial[i] = UInt8(l)
                    let fl = Float(l)
                    sumL += w[i] * fl; sumL2 += w[i] * fl * fl; sumXL += w[i] * fl * x[i]
                }
                let det = sumW * sumL2 - sumL * sumL
                guard det > 0 else { continue }
                var s = (sumW * sumXL - sumX * sumL) / det, m = (sumL2 * sumX - sumL * sumXL) / det
                if m > 0 { m = 0; s = sumXL / sumL2 }
                let e = error(s, m) { trial[$0] }
                if e < best {
                    for i in 0 ..< n { L[i] = trial[i] }
                    best = e; scale = s; offset = m
                }
            }
        }
        return (scale, -offset)
    }

    /// The value of largest magnitude (the first of equals), or nil with every level 0 when all are (nearly) zero.
    private static func largestOrZero(_ x: UnsafePointer<Float>, _ n: Int, _ L: UnsafeMutablePointer<Int8>) -> Float? {
        var amax: Float = 0, signedMax: Float = 0
        for i in 0 ..< n where abs(x[i]) > amax { amax = abs(x[i]); signedMax = x[i] }
        guard amax >= 1e-15 else {
            for i in 0 ..< n { L[i] = 0 }
            return nil
        }
        return signedMax
    }

    /// Symmetric fit x ≈ scale·(L − nmax), L − nmax in −nmax...nmax−1, weighted by x²: the grid through the largest
    /// magnitude, then 18 nearby grids (nmax ± 0.1k), keeping the one with the largest (Σwxl)²/Σwl².
    static func fitSymmetric(_ x: UnsafePointer<Float>, _ n: Int, nmax: Int, levels L: UnsafeMutablePointer<Int8>) -> Float {
        guard let signedMax = largestOrZero(x, n, L) else { return 0 }
        func sums(_ iscale: Float) -> (Float, Float) {
            var sumLX: Float = 0, sumL2: Float = 0
            for i in 0 ..< n {
                let l = Float(max(-nmax, min(nmax - 1, nearest(iscale * x[i])))), w = x[i] * x[i]
                sumLX += w * x[i] * l; sumL2 += w * l * l
            }
            return (sumLX, sumL2)
        }
        func store(_ iscale: Float) {
            for i in 0 ..< n { L[i] = Int8(nmax + max(-nmax, min(nmax - 1, nearest(iscale * x[i])))) }
        }
        var iscale = -Float(nmax) / signedMax
        store(iscale)
        var (sumLX, sumL2) = sums(iscale)
        var scale: Float = sumL2 != 0 ? sumLX / sumL2 : 0, best = scale * sumLX
        for k in -9 ... 9 where k != 0 {
            iscale = -(Float(nmax) + 0.1 * Float(k)) / signedMax
            (sumLX, sumL2) = sums(iscale)
            if sumL2 > 0 && sumLX * sumLX > best * sumL2 {
                store(iscale)
                scale = sumLX / sumL2; best = scale * sumLX
            }
        }
        return scale
    }

    /// Q3_K's sub-block fit: the grid through the largest magnitude, then up to five passes moving single values to
    /// the level that raises (Σwxl)²/Σwl² (w = x²); L = l + nmax in 0...2·nmax−1.
    static func fitQ3(_ x: UnsafePointer<Float>, _ n: Int, nmax: Int, levels L: UnsafeMutablePointer<Int8>) -> Float {
        guard let signedMax = largestOrZero(x, n, L) else { return 0 }
        let iscale = -Float(nmax) / signedMax
        var sumLX: Float = 0, sumL2: Float = 0
        for i in 0 ..< n {
            let l = max(-nmax, min(nmax - 1, nearest(iscale * x[i])))
            L[i] = Int8(l)
            let w = x[i] * x[i], fl = Float(l)
            sumLX += w * x[i] * fl; sumL2 += w * fl * fl
        }
        for _ in 0 ..< 5 {
            var changed = false
            for i in 0 ..< n {
                let w = x[i] * x[i], li = Float(L[i])
                var slx = sumLX - w * x[i] * li
                guard slx > 0 else { continue }
                var sl2 = sumL2 - w * li * li
                let candidate = max(-nmax, min(nmax - 1, nearest(x[i] * sl2 / slx)))
                guard candidate != Int(L[i]) else { continue }
                let fc = Float(candidate)
                slx += w * x[i] * fc; sl2 += w * fc * fc
                if sl2 > 0 && slx * slx * sumL2 > sumLX * sumLX * sl2 {
                    L[i] = Int8(candidate); sumLX = slx; sumL2 = sl2; changed = true
                }
            }
            if !changed { break }
        }
        for i in 0 ..< n { L[i] += Int8(nmax) }
        return sumL2 > 0 ? sumLX / sumL2 : 0
    }

    // MARK: the block formats

    @inline(__always) static func storeHalf(_ out: UnsafeMutableRawPointer, _ offset: Int, _ value: Float) {
        out.storeBytes(of: floatToHalf(value), toByteOffset: offset, as: UInt16.self)
    }
    @inline(__always) static func half(_ out: UnsafeMutableRawPointer, _ offset: Int) -> Float {
        halfToFloat(out.loadUnaligned(fromByteOffset: offset, as: UInt16.self))
    }

    /// Q4_1 (20 bytes / 32): d = (max − min)/15 and m = min as halves, q = round((x − min)/d) clamped to 15.
    static func q4_1(_ src: UnsafePointer<Float>, _ blocks: Int, _ dst: UnsafeMutableRawPointer) {
        for b in 0 ..< blocks {
            let x = src + 32 * b, out = dst + 20 * b
            var lo = Float.greatestFiniteMagnitude, hi = -Float.greatestFiniteMagnitude
            for i in 0 ..< 32 { lo = min(lo, x[i]); hi = max(hi, x[i]) }
            let d = (hi - lo) / 15, id: Float = d != 0 ? 1 / d : 0
            storeHalf(out, 0, d); storeHalf(out, 2, lo)
            for i in 0 ..< 16 {
                let a = UInt8(min(15, Int8((x[i] - lo) * id + 0.5))), c = UInt8(min(15, Int8((x[16 + i] - lo) * id + 0.5)))
                out.storeBytes(of: a | c << 4, toByteOffset: 4 + i, as: UInt8.self)
            }
        }
    }

    /// Q4_K (144 bytes) and Q5_K (176 bytes) per 256: eight sub-blocks of 32 with a 6-bit scale and a 6-bit minimum
    /// each (packed into 12 bytes), d and dmin halves; Q5_K adds 32 bytes of fifth bits before the nibbles.
    static func q4_5_K(_ src: UnsafePointer<Float>, _ blocks: Int, _ dst: UnsafeMutableRawPointer, fiveBits: Bool) {
        let nmax = fiveBits ? 31 : 15, size = fiveBits ? 176 : 144
        var L = [UInt8](repeating: 0, count: 256), weights = [Float](repeating: 0, count: 32)
        var scales = [Float](repeating: 0, count: 8), mins = [Float](repeating: 0, count: 8)
        for b in 0 ..< blocks {
            let x = src + 256 * b, out = dst + size * b
            var maxScale: Float = 0, maxMin: Float = 0
            for j in 0 ..< 8 {
                let xs = x + 32 * j
                var sumX2: Float = 0
                for l in 0 ..< 32 { sumX2 += xs[l] * xs[l] }
                let average = (sumX2 / 32).squareRoot()
                for l in 0 ..< 32 { weights[l] = average + abs(xs[l]) }
                let fit = L.withUnsafeMutableBufferPointer { levels in
                    fitAffine(xs, 32, nmax: nmax, weights: weights, levels: levels.baseAddress! + 32 * j,
                              rmin: fiveBits ? -0.5 : -1, rdelta: 0.1, steps: fiveBits ? 15 : 20, absolute: false)
                }
                scales[j] = fit.scale; mins[j] = fit.minimum
                if fit.scale > maxScale { maxScale = fit.scale }    // not max(): a −0 minimum must not replace +0
                if fit.minimum > maxMin { maxMin = fit.minimum }
            }
            let invScale: Float = maxScale > 0 ? 63 / maxScale : 0, invMin: Float = maxMin > 0 ? 63 / maxMin : 0
            var packed = [UInt8](repeating: 0, count: 12)
            for j in 0 ..< 8 {
                let ls = UInt8(min(63, UInt8(truncatingIfNeeded: nearest(invScale * scales[j]))))
                let lm = UInt8(min(63, UInt8(truncatingIfNeeded: nearest(invMin * mins[j]))))
                if j < 4 {
                    packed[j] = ls; packed[j + 4] = lm
                } else {
                    packed[j + 4] = (ls & 0x0F) | (lm & 0x0F) << 4
                    packed[j - 4] |= (ls >> 4) << 6
                    packed[j] |= (lm >> 4) << 6
                }
            }
            storeHalf(out, 0, maxScale / 63); storeHalf(out, 2, maxMin / 63)
            for i in 0 ..< 12 { out.storeBytes(of: packed[i], toByteOffset: 4 + i, as: UInt8.self) }
            let d = half(out, 0), dmin = half(out, 2)
            for j in 0 ..< 8 {
                let (sc, m) = j < 4 ? (packed[j] & 63, packed[j + 4] & 63)
                    : ((packed[j + 4] & 0x0F) | (packed[j - 4] >> 6) << 4, (packed[j + 4] >> 4) | (packed[j] >> 6) << 4)
                let ds = d * Float(sc)
                guard ds != 0 else { continue }
                let dm = dmin * Float(m)
                for i in 0 ..< 32 { L[32 * j + i] = UInt8(max(0, min(nmax, nearest((x[32 * j + i] + dm) / ds)))) }
            }
            let qs = fiveBits ? 48 : 16
            if fiveBits { for i in 0 ..< 32 { out.storeBytes(of: UInt8(0), toByteOffset: 16 + i, as: UInt8.self) } }
            for chunk in 0 ..< 4 {              // 64 values per chunk: element l low nibble, l + 32 high nibble
                for l in 0 ..< 32 {
                    let a = L[64 * chunk + l], c = L[64 * chunk + l + 32]
                    out.storeBytes(of: (a & 0x0F) | (c & 0x0F) << 4, toByteOffset: qs + 32 * chunk + l, as: UInt8.self)
                    if fiveBits {
                        let bits = (a >> 4) << (2 * chunk) | (c >> 4) << (2 * chunk + 1)
                        let old = out.load(fromByteOffset: 16 + l, as: UInt8.self)
                        out.storeBytes(of: old | UInt8(bits), toByteOffset: 16 + l, as: UInt8.self)
                    }
                }
            }
        }
    }

    /// Q6_K (210 bytes / 256): sixteen sub-blocks of 16 with signed 8-bit scales against one half d; values
    /// l + 32 in 0...63 as low nibbles (128 bytes) and high pairs (64 bytes).
    static func q6_K(_ src: UnsafePointer<Float>, _ blocks: Int, _ dst: UnsafeMutableRawPointer) {
        var L = [Int8](repeating: 0, count: 256), scales = [Float](repeating: 0, count: 16)
        for b in 0 ..< blocks {
            let x = src + 256 * b, out = dst + 210 * b
            let maxScale = signedLargest(x, &L, &scales) { fitSymmetric($0, 16, nmax: 32, levels: $1) }
            guard abs(maxScale) >= 1e-15 else {
                out.initializeMemory(as: UInt8.self, repeating: 0, count: 210)
                continue
            }
            let iscale = -128 / maxScale
            storeHalf(out, 208, 1 / iscale)
            let d = half(out, 208)
            for j in 0 ..< 16 {
                let s = Int8(truncatingIfNeeded: min(127, nearest(iscale * scales[j])))
                out.storeBytes(of: s, toByteOffset: 192 + j, as: Int8.self)
                let ds = d * Float(s)
                guard ds != 0 else { continue }
                for i in 0 ..< 16 { L[16 * j + i] = Int8(max(-32, min(31, nearest(x[16 * j + i] / ds))) + 32) }
            }
            for half in 0 ..< 2 {           // 128 values per half: ql 64 bytes, qh 32 bytes
                for l in 0 ..< 32 {
                    let base = 128 * half + l
                    let q = (UInt8(L[base]), UInt8(L[base + 32]), UInt8(L[base + 64]), UInt8(L[base + 96]))
                    out.storeBytes(of: (q.0 & 0x0F) | (q.2 & 0x0F) << 4, toByteOffset: 64 * half + l, as: UInt8.self)
                    out.storeBytes(of: (q.1 & 0x0F) | (q.3 & 0x0F) << 4, toByteOffset: 64 * half + l + 32, as: UInt8.self)
                    let high = (q.0 >> 4) | (q.1 >> 4) << 2 | (q.2 >> 4) << 4 | (q.3 >> 4) << 6
                    out.storeBytes(of: high, toByteOffset: 128 + 32 * half + l, as: UInt8.self)
                }
            }
        }
    }

    /// Q2_K (84 bytes / 256): sixteen sub-blocks of 16, 2-bit values with a 4-bit scale and a 4-bit minimum each
    /// (scales 0..16, qs 16..80, d 80, dmin 82); the sub-block fit minimises absolute error weighted by |x|.
    static func q2_K(_ src: UnsafePointer<Float>, _ blocks: Int, _ dst: UnsafeMutableRawPointer) {
        var L = [UInt8](repeating: 0, count: 256), weights = [Float](repeating: 0, count: 16)
        var scales = [Float](repeating: 0, count: 16), mins = [Float](repeating: 0, count: 16)
        for b in 0 ..< blocks {
            let x = src + 256 * b, out = dst + 84 * b
            var maxScale: Float = 0, maxMin: Float = 0
            for j in 0 ..< 16 {
                for l in 0 ..< 16 { weights[l] = abs(x[16 * j + l]) }
                let fit = L.withUnsafeMutableBufferPointer { levels in
                    fitAffine(x + 16 * j, 16, nmax: 3, weights: weights, levels: levels.baseAddress! + 16 * j,
                              rmin: -0.5, rdelta: 0.1, steps: 15, absolute: true)
                }
                scales[j] = fit.scale; mins[j] = fit.minimum
                if fit.scale > maxScale { maxScale = fit.scale }    // not max(): a −0 minimum must not replace +0
                if fit.minimum > maxMin { maxMin = fit.minimum }
            }
            var packed = [UInt8](repeating: 0, count: 16)
            if maxScale > 0 {
                for j in 0 ..< 16 { packed[j] = UInt8(truncatingIfNeeded: nearest(15 / maxScale * scales[j])) }
            }
            storeHalf(out, 80, maxScale > 0 ? maxScale / 15 : 0)
            if maxMin > 0 {
                for j in 0 ..< 16 { packed[j] |= UInt8(truncatingIfNeeded: nearest(15 / maxMin * mins[j]) << 4) }
            }
            storeHalf(out, 82, maxMin > 0 ? maxMin / 15 : 0)
            for j in 0 ..< 16 { out.storeBytes(of: packed[j], toByteOffset: j, as: UInt8.self) }
            let d = half(out, 80), dmin = half(out, 82)
            for j in 0 ..< 16 {
                let ds = d * Float(packed[j] & 0x0F)
                guard ds != 0 else { continue }
                let dm = dmin * Float(packed[j] >> 4)
                for i in 0 ..< 16 { L[16 * j + i] = UInt8(max(0, min(3, nearest((x[16 * j + i] + dm) / ds)))) }
            }
            storeCrumbs(L, out + 16)
        }
    }

    /// Q3_K (110 bytes / 256): hmask 0..32 (third bits), qs 32..96 (low pairs), twelve bytes of 6-bit signed
    /// sub-block scales 96..108, d 108.
    static func q3_K(_ src: UnsafePointer<Float>, _ blocks: Int, _ dst: UnsafeMutableRawPointer) {
        var L = [Int8](repeating: 0, count: 256), scales = [Float](repeating: 0, count: 16)
        for b in 0 ..< blocks {
            let x = src + 256 * b, out = dst + 110 * b
            let maxScale = signedLargest(x, &L, &scales) { fitQ3($0, 16, nmax: 4, levels: $1) }
            var packed = [UInt8](repeating: 0, count: 12)
            if maxScale != 0 {
                let iscale = -32 / maxScale
                for j in 0 ..< 16 {
                    let l = UInt8(max(-32, min(31, Int(Int8(truncatingIfNeeded: nearest(iscale * scales[j]))))) + 32)
                    if j < 8 { packed[j] = l & 0x0F } else { packed[j - 8] |= (l & 0x0F) << 4 }
                    packed[j % 4 + 8] |= (l >> 4) << (2 * (j / 4))
                }
                storeHalf(out, 108, 1 / iscale)
            } else {
                storeHalf(out, 108, 0)
            }
            for i in 0 ..< 12 { out.storeBytes(of: packed[i], toByteOffset: 96 + i, as: UInt8.self) }
            let d = half(out, 108)
            for j in 0 ..< 16 {
                let low = j < 8 ? packed[j] & 0x0F : packed[j - 8] >> 4
                let sc = Int(low | ((packed[8 + j % 4] >> (2 * (j / 4))) & 3) << 4) - 32
                let ds = d * Float(sc)
                guard ds != 0 else { continue }
                for i in 0 ..< 16 { L[16 * j + i] = Int8(max(-4, min(3, nearest(x[16 * j + i] / ds))) + 4) }
            }
            var hmask = [UInt8](repeating: 0, count: 32), low = [UInt8](repeating: 0, count: 256)
            for j in 0 ..< 256 {
                var l = UInt8(L[j])
                if l > 3 { hmask[j % 32] |= 1 << (j / 32); l -= 4 }
                low[j] = l
            }
            for i in 0 ..< 32 { out.storeBytes(of: hmask[i], toByteOffset: i, as: UInt8.self) }
            storeCrumbs(low, out + 32)
        }
    }

    /// Fits the sixteen 16-value sub-blocks of `x` with `fit` (levels into `L`, scales into `scales`); returns the
    /// scale of largest magnitude, with its sign (the first of equal magnitudes).
    private static func signedLargest(_ x: UnsafePointer<Float>, _ L: inout [Int8], _ scales: inout [Float],
                                      _ fit: (UnsafePointer<Float>, UnsafeMutablePointer<Int8>) -> Float) -> Float {
        var largest: Float = 0, magnitude: Float = 0
        L.withUnsafeMutableBufferPointer { levels in
            for j in 0 ..< 16 {
                scales[j] = fit(x + 16 * j, levels.baseAddress! + 16 * j)
                if abs(scales[j]) > magnitude { magnitude = abs(scales[j]); largest = scales[j] }
            }
        }
        return largest
    }

    /// 256 two-bit values into 64 bytes: per 128, byte l holds elements l, l + 32, l + 64, l + 96.
    private static func storeCrumbs(_ L: [UInt8], _ out: UnsafeMutableRawPointer) {
        for half in 0 ..< 2 {
            for l in 0 ..< 32 {
                let base = 128 * half + l
                let v = L[base] | L[base + 32] << 2 | L[base + 64] << 4 | L[base + 96] << 6
                out.storeBytes(of: v, toByteOffset: 32 * half + l, as: UInt8.self)
            }
        }
    }

    /// IQ4_NL's levels, in order.
    static let iq4Levels: [Int8] = [-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113]

    /// The index of the level nearest to `x` (the lower one on a tie).
    @inline(__always) static func nearestLevel(_ x: Float) -> Int {
        iq4Levels.withUnsafeBufferPointer { v in
            if x <= Float(v[0]) { return 0 }
            if x >= Float(v[15]) { return 15 }
            var lo = 0, hi = 15
            while hi - lo > 1 {
                let mid = (lo + hi) / 2
                if x < Float(v[mid]) { hi = mid } else { lo = mid }
            }
            return x - Float(v[hi - 1]) < Float(v[hi]) - x ? hi - 1 : hi
        }
    }

    /// One 32-value sub-block's IQ4 scale: the grid through the largest magnitude, then 15 grids around it,
    /// keeping the one with the largest (Σwqx)²/Σwq² (w = x²).
    private static func fitNonLinear(_ x: UnsafePointer<Float>) -> Float {
        var amax: Float = 0, signedMax: Float = 0
        for j in 0 ..< 32 where abs(x[j]) > amax { amax = abs(x[j]); signedMax = x[j] }
        guard amax >= 1e-15 else { return 0 }
        func sums(_ id: Float) -> (Float, Float) {
            var sumQX: Float = 0, sumQ2: Float = 0
            for j in 0 ..< 32 {
                let q = Float(iq4Levels[nearestLevel(id * x[j])]), w = x[j] * x[j]
                sumQX += w * q * x[j]; sumQ2 += w * q * q
            }
            return (sumQX, sumQ2)
        }
        var (sumQX, sumQ2) = sums(1 / (-signedMax / -127))
        var d: Float = sumQ2 > 0 ? sumQX / sumQ2 : 0, best = d * sumQX
        for k in -7 ... 7 {
            (sumQX, sumQ2) = sums((Float(k) - 127) / signedMax)
            if sumQ2 > 0 && sumQX * sumQX > best * sumQ2 { d = sumQX / sumQ2; best = d * sumQX }
        }
        return d
    }

    /// 32 values as IQ4 nibbles against the scale `d` (element j low nibble, j + 16 high nibble) at `out`.
    private static func storeNibbles(_ x: UnsafePointer<Float>, _ d: Float, _ out: UnsafeMutableRawPointer) {
        let id: Float = d != 0 ? 1 / d : 0
        for j in 0 ..< 16 {
            let a = UInt8(nearestLevel(id * x[j])), c = UInt8(nearestLevel(id * x[16 + j]))
            out.storeBytes(of: a | c << 4, toByteOffset: j, as: UInt8.self)
        }
    }

    /// IQ4_NL (18 bytes / 32): a half scale and 16 bytes of level indices.
    static func iq4_nl(_ src: UnsafePointer<Float>, _ blocks: Int, _ dst: UnsafeMutableRawPointer) {
        for b in 0 ..< blocks {
            let x = src + 32 * b, out = dst + 18 * b
            let d = fitNonLinear(x)
            storeHalf(out, 0, d)
            storeNibbles(x, d, out + 2)
        }
    }

    /// IQ4_XS (136 bytes / 256): eight sub-blocks of 32 with 6-bit signed scales (low nibbles 4..8, high pairs in
    /// the 16-bit word at 2) against the half d = −(largest sub-block scale)/32, then 128 bytes of level indices.
    static func iq4_xs(_ src: UnsafePointer<Float>, _ blocks: Int, _ dst: UnsafeMutableRawPointer) {
        var scales = [Float](repeating: 0, count: 8)
        for b in 0 ..< blocks {
            let x = src + 256 * b, out = dst + 136 * b
            var maxScale: Float = 0, amax: Float = 0
            for j in 0 ..< 8 {
                scales[j] = fitNonLinear(x + 32 * j)
                if abs(scales[j]) > amax { amax = abs(scales[j]); maxScale = scales[j] }
            }
            let d = -maxScale / 32, id: Float = d != 0 ? 1 / d : 0
            storeHalf(out, 0, d)
            var high: UInt16 = 0, low = [UInt8](repeating: 0, count: 4)
            for j in 0 ..< 8 {
                let l = max(-32, min(31, nearest(id * scales[j])))
                storeNibbles(x + 32 * j, d * Float(l), out + 8 + 16 * j)   // the float d, as ggml
                let u = UInt8(l + 32)
                low[j / 2] |= (u & 0x0F) << (4 * UInt8(j % 2))
                high |= UInt16(u >> 4) << UInt16(2 * j)
            }
            out.storeBytes(of: high.littleEndian, toByteOffset: 2, as: UInt16.self)
            for i in 0 ..< 4 { out.storeBytes(of: low[i], toByteOffset: 4 + i, as: UInt8.self) }
        }
    }
}
