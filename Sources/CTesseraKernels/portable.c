// Portable C kernels: the reference every SIMD level is tested against, and the path on non-x86 CPUs.
// The float formula of each product is written out once here; SIMD levels compute the same integer block sums.
#include "internal.h"
#include <math.h>

#pragma STDC FP_CONTRACT OFF

// MARK: - Activation quantization

void tk_quantize_q8_0_portable(const float *x, int64_t cols, void *dst) {
    const int64_t nb = cols / 32;
    int8_t *qs = (int8_t *)dst;
    float *d = (float *)(qs + cols), *s = d + nb;
    int32_t *sums = (int32_t *)(s + nb);
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + 32 * b;
        float amax = 0;
        for (int j = 0; j < 32; j++) amax = fmaxf(amax, fabsf(xb[j]));
        const float id = amax != 0 ? 127.0f / amax : 0.0f;
        int32_t sum = 0;
        for (int j = 0; j < 32; j++) {
            const int8_t q = tk_round_q8(xb[j] * id);
            qs[32 * b + j] = q;
            sum += q;
        }
        d[b] = amax / 127.0f;
        s[b] = d[b] * (float)sum;
        sums[b] = sum;
    }
}

void tk_quantize_q8_K_portable(const float *x, int64_t cols, void *dst) {
    const int64_t nb = cols / 256;
    int8_t *qs = (int8_t *)dst;
    float *d = (float *)(qs + cols);
    int16_t *bsums = (int16_t *)(d + nb);
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + 256 * b;
        float amax = 0;
        for (int j = 0; j < 256; j++) amax = fmaxf(amax, fabsf(xb[j]));
        const float id = amax != 0 ? 127.0f / amax : 0.0f;
        for (int g = 0; g < 16; g++) {
            int32_t sum = 0;
            for (int j = 16 * g; j < 16 * g + 16; j++) {
                const int8_t q = tk_round_q8(xb[j] * id);
                qs[256 * b + j] = q;
                sum += q;
            }
            bsums[16 * b + g] = (int16_t)sum;
        }
        d[b] = amax / 127.0f;
    }
}

// MARK: - Quantized weights · Q8 activations (one weight row, one activation row)

static float dot_q4_0(const uint8_t *w, const void *xq, int64_t cols) {
    const int8_t *q = (const int8_t *)xq;
    const float *d = tk_q8_0_d(xq, cols);
    float acc = 0;
    for (int64_t b = 0; b < cols / 32; b++, w += TK_Q4_0_BYTES, q += 32) {
        int32_t isum = 0;   // d(0) qs(2..18): element j low nibble, j + 16 high nibble; value nibble − 8
        for (int j = 0; j < 16; j++) isum += ((w[2 + j] & 0x0F) - 8) * q[j] + ((w[2 + j] >> 4) - 8) * q[j + 16];
        acc += (float)isum * (tk_half_at(w) * d[b]);
    }
    return acc;
}

static float dot_q4_1(const uint8_t *w, const void *xq, int64_t cols) {
    const int8_t *q = (const int8_t *)xq;
    const float *d = tk_q8_0_d(xq, cols), *s = tk_q8_0_s(xq, cols);
    float acc = 0;
    for (int64_t b = 0; b < cols / 32; b++, w += TK_Q4_1_BYTES, q += 32) {
        int32_t isum = 0;   // d(0) m(2) qs(4..20); value d·nibble + m
        for (int j = 0; j < 16; j++) isum += (w[4 + j] & 0x0F) * q[j] + (w[4 + j] >> 4) * q[j + 16];
        acc += (float)isum * (tk_half_at(w) * d[b]);
        acc += tk_half_at(w + 2) * s[b];
    }
    return acc;
}

/// Q5_0: d(0) qh(2..6) qs(6..22); Q5_1: d(0) m(2) qh(4..8) qs(8..24). Element j's fifth bit is bit j of qh; the
/// value is d·(q − 16) (Q5_0) or d·q + m (Q5_1).
static float dot_q5(const uint8_t *w, const void *xq, int64_t cols, const int minimum) {
    const int8_t *q = (const int8_t *)xq;
    const float *d = tk_q8_0_d(xq, cols), *s = tk_q8_0_s(xq, cols);
    const size_t bytes = minimum ? TK_Q5_1_BYTES : TK_Q5_0_BYTES;
    const int qh_at = minimum ? 4 : 2, qs_at = qh_at + 4, bias = minimum ? 0 : 16;
    float acc = 0;
    for (int64_t b = 0; b < cols / 32; b++, w += bytes, q += 32) {
        uint32_t qh;
        memcpy(&qh, w + qh_at, 4);
        int32_t isum = 0;
        for (int j = 0; j < 16; j++) {
            const int lo = (w[qs_at + j] & 0x0F) | (int)((qh >> j) & 1) << 4;
            const int hi = (w[qs_at + j] >> 4) | (int)((qh >> (j + 16)) & 1) << 4;
            isum += (lo - bias) * q[j] + (hi - bias) * q[j + 16];
        }
        acc += (float)isum * (tk_half_at(w) * d[b]);
        if (minimum) acc += tk_half_at(w + 2) * s[b];
    }
    return acc;
}
static float dot_q5_0(const uint8_t *w, const void *xq, int64_t cols) { return dot_q5(w, xq, cols, 0); }
static float dot_q5_1(const uint8_t *w, const void *xq, int64_t cols) { return dot_q5(w, xq, cols, 1); }

static float dot_q8_0(const uint8_t *w, const void *xq, int64_t cols) {
    const int8_t *q = (const int8_t *)xq;
    const float *d = tk_q8_0_d(xq, cols);
    float acc = 0;
    for (int64_t b = 0; b < cols / 32; b++, w += TK_Q8_0_BYTES, q += 32) {
        int32_t isum = 0;   // d(0) qs(2..34)
        for (int j = 0; j < 32; j++) isum += (int8_t)w[2 + j] * q[j];
        acc += (float)isum * (tk_half_at(w) * d[b]);
    }
    return acc;
}

/// Q2_K (HIGH 0): scales(0..16: scale | min << 4 per 16 elements) qs(16..80) d(80) dmin(82); element 16s + i is
/// 2-bit field (s % 8) / 2 of qs[32·(s / 8) + 16·(s % 2) + i], weight d·sc·u − dmin·m.
/// Q3_K (HIGH 1): hmask(0..32) qs(32..96) scales(96..108) d(108); u gains bit s / 2 of hmask[16·(s % 2) + i] as
/// bit 2, weight d·(sc − 32)·(u − 4): Σ(u − 4)·a = Σu·a − 4·bsum.
static float dot_q23_K(const uint8_t *w, const void *xq, int64_t cols, const int HIGH) {
    const int8_t *q = (const int8_t *)xq;
    const float *d = tk_q8_K_d(xq, cols);
    const int16_t *bs = tk_q8_K_bsums(xq, cols);
    const size_t bytes = HIGH ? TK_Q3_K_BYTES : TK_Q2_K_BYTES, qs_at = HIGH ? 32 : 16;
    float acc = 0;
    for (int64_t b = 0; b < cols / 256; b++, w += bytes, q += 256, bs += 16) {
        int32_t isum = 0, imin = 0;
        for (int s = 0; s < 16; s++) {
            const uint8_t *qs = w + qs_at + 32 * (s / 8) + 16 * (s % 2), *hm = w + 16 * (s % 2);
            const int shift = 2 * ((s % 8) / 2), hbit = s / 2;
            int32_t dot = 0;
            for (int i = 0; i < 16; i++) {
                const int u = ((qs[i] >> shift) & 3) | (HIGH ? ((hm[i] >> hbit) & 1) << 2 : 0);
                dot += u * q[16 * s + i];
            }
            if (HIGH) {
                isum += tk_q3_K_scale(w, s) * (dot - 4 * bs[s]);
            } else {
                isum += (w[s] & 0x0F) * dot;
                imin += (w[s] >> 4) * bs[s];
            }
        }
        acc += (tk_half_at(w + (HIGH ? 108 : 80)) * d[b]) * (float)isum;
        if (!HIGH) acc -= (tk_half_at(w + 82) * d[b]) * (float)imin;
    }
    return acc;
}
static float dot_q2_K(const uint8_t *w, const void *xq, int64_t cols) { return dot_q23_K(w, xq, cols, 0); }
static float dot_q3_K(const uint8_t *w, const void *xq, int64_t cols) { return dot_q23_K(w, xq, cols, 1); }

/// Q4_K (high = 0) and Q5_K (high = 1): sub-block j's weights are d·sc·q − dmin·m, q the nibble of byte l of its
/// 32-byte group (low nibbles for even j), plus 16 × bit j of qh[l] in Q5_K.
static float dot_q45_K(const uint8_t *w, const void *xq, int64_t cols, int high) {
    const int8_t *q = (const int8_t *)xq;
    const float *d = tk_q8_K_d(xq, cols);
    const int16_t *bs = tk_q8_K_bsums(xq, cols);
    const size_t bytes = high ? TK_Q5_K_BYTES : TK_Q4_K_BYTES;
    float acc = 0;
    for (int64_t b = 0; b < cols / 256; b++, w += bytes, q += 256, bs += 16) {
        int32_t isum = 0, imin = 0;   // d(0) dmin(2) scales(4..16) [Q5_K: qh(16..48)] qs(16..144 | 48..176)
        const uint8_t *qh = w + 16;
        for (int j = 0; j < 8; j++) {
            uint8_t sc, m;
            tk_q4_K_scale_min(w + 4, j, &sc, &m);
            const uint8_t *qs = w + (high ? 48 : 16) + 32 * (j / 2);
            const int shift = 4 * (j % 2);
            int32_t dot = 0;
            for (int l = 0; l < 32; l++) {
                const int v = ((qs[l] >> shift) & 0x0F) | (high ? ((qh[l] >> j) & 1) << 4 : 0);
                dot += v * q[32 * j + l];
            }
            isum += sc * dot;
            imin += m * (bs[2 * j] + bs[2 * j + 1]);
        }
        acc += (tk_half_at(w) * d[b]) * (float)isum;
        acc -= (tk_half_at(w + 2) * d[b]) * (float)imin;
    }
    return acc;
}
static float dot_q4_K(const uint8_t *w, const void *xq, int64_t cols) { return dot_q45_K(w, xq, cols, 0); }

/// IQ4_NL: d(0) qs(2..18), weight d·level[nibble], low nibbles elements 0..15 (the Q8_0 formula).
static float dot_iq4_nl(const uint8_t *w, const void *xq, int64_t cols) {
    const int8_t *q = (const int8_t *)xq;
    const float *d = tk_q8_0_d(xq, cols);
    float acc = 0;
    for (int64_t b = 0; b < cols / 32; b++, w += TK_IQ4_NL_BYTES, q += 32) {
        int32_t isum = 0;
        for (int j = 0; j < 16; j++) {
            isum += tk_iq4_levels[w[2 + j] & 0x0F] * q[j] + tk_iq4_levels[w[2 + j] >> 4] * q[j + 16];
        }
        acc += (float)isum * (tk_half_at(w) * d[b]);
    }
    return acc;
}

/// IQ4_XS: d(0) scales_h(2) scales_l(4..8) qs(8..136), sub-block i's weights d·(ls_i − 32)·level[nibble].
static float dot_iq4_xs(const uint8_t *w, const void *xq, int64_t cols) {
    const int8_t *q = (const int8_t *)xq;
    const float *d = tk_q8_K_d(xq, cols);
    float acc = 0;
    for (int64_t b = 0; b < cols / 256; b++, w += TK_IQ4_XS_BYTES, q += 256) {
        int32_t isum = 0;
        for (int i = 0; i < 8; i++) {
            const uint8_t *qs = w + 8 + 16 * i;
            const int8_t *qa = q + 32 * i;
            int32_t dot = 0;
            for (int j = 0; j < 16; j++) dot += tk_iq4_levels[qs[j] & 0x0F] * qa[j] + tk_iq4_levels[qs[j] >> 4] * qa[j + 16];
            isum += tk_iq4_xs_scale(w, i) * dot;
        }
        acc += (tk_half_at(w) * d[b]) * (float)isum;
    }
    return acc;
}
static float dot_q5_K(const uint8_t *w, const void *xq, int64_t cols) { return dot_q45_K(w, xq, cols, 1); }

static float dot_q6_K(const uint8_t *w, const void *xq, int64_t cols) {
    const int8_t *q = (const int8_t *)xq;
    const float *d = tk_q8_K_d(xq, cols);
    const int16_t *bs = tk_q8_K_bsums(xq, cols);
    float acc = 0;
    for (int64_t b = 0; b < cols / 256; b++, w += TK_Q6_K_BYTES, q += 256, bs += 16) {
        int32_t isum = 0;   // ql(0..128) qh(128..192) scales(192..208, int8) d(208); value d·sc·(q − 32)
        for (int s = 0; s < 16; s++) {
            const int e0 = 16 * s, h = e0 / 128, r0 = e0 % 128;
            const uint8_t *ql = w + 64 * h + r0 % 64, *qh = w + 128 + 32 * h + r0 % 32;
            const int ls = 4 * (r0 / 64), hs = 2 * (r0 / 32);
            int32_t dot = 0;
            for (int i = 0; i < 16; i++) dot += (((ql[i] >> ls) & 0x0F) | (((qh[i] >> hs) & 3) << 4)) * q[e0 + i];
            isum += (int8_t)w[192 + s] * (dot - 32 * bs[s]);
        }
        acc += (tk_half_at(w + 208) * d[b]) * (float)isum;
    }
    return acc;
}

// MARK: - Float weights · float activations (8 partial sums)

#define TK_FLOAT_DOT(name, load)                                                          \
    static float name(const uint8_t *w, const void *xv, int64_t cols) {                   \
        const float *x = (const float *)xv;                                               \
        float acc[8] = {0};                                                               \
        for (int64_t j = 0; j < cols; j++) acc[j % 8] += (load) * x[j];                   \
        return ((acc[0] + acc[4]) + (acc[1] + acc[5])) + ((acc[2] + acc[6]) + (acc[3] + acc[7])); \
    }
TK_FLOAT_DOT(dot_f32, tk_f32_at(w + 4 * j))
TK_FLOAT_DOT(dot_f16, tk_half(tk_u16(w + 2 * j)))
TK_FLOAT_DOT(dot_bf16, tk_bf16(tk_u16(w + 2 * j)))

int32_t tk_matmul_portable(const tk_matmul_args *a, int64_t r0, int64_t r1) {
    float (*dot)(const uint8_t *, const void *, int64_t);
    switch (a->type) {
    case TK_Q4_0: dot = dot_q4_0; break;
    case TK_Q4_1: dot = dot_q4_1; break;
    case TK_Q5_0: dot = dot_q5_0; break;
    case TK_Q5_1: dot = dot_q5_1; break;
    case TK_Q8_0: dot = dot_q8_0; break;
    case TK_Q2_K: dot = dot_q2_K; break;
    case TK_Q3_K: dot = dot_q3_K; break;
    case TK_Q4_K: dot = dot_q4_K; break;
    case TK_Q5_K: dot = dot_q5_K; break;
    case TK_IQ4_NL: dot = dot_iq4_nl; break;
    case TK_IQ4_XS: dot = dot_iq4_xs; break;
    case TK_Q6_K: dot = dot_q6_K; break;
    case TK_F32: dot = dot_f32; break;
    case TK_F16: dot = dot_f16; break;
    case TK_BF16: dot = dot_bf16; break;
    default: return -1;
    }
    for (int64_t r = r0; r < r1; r++) {
        const uint8_t *w = (const uint8_t *)a->weights + (size_t)r * a->row_bytes;
        for (int64_t i = 0; i < a->n; i++) {
            TK_PUT(a, a->y[i * a->y_stride + r], dot(w, (const uint8_t *)a->x + (size_t)i * a->x_stride, a->cols));
        }
    }
    return 0;
}

void tk_silu_mul_portable(float *gate, const float *up, int64_t count) {
    for (int64_t i = 0; i < count; i++) {
        const float g = gate[i];
        gate[i] = g / (1.0f + expf(-g)) * up[i];
    }
}
