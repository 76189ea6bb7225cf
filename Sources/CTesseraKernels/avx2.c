// AVX2 + FMA + F16C kernels: one 32-element block per 256-bit register, maddubs/madd integer dot products.
#include "internal.h"
#if TK_X86
#include <immintrin.h>
#include "tiles.h"
#include "vexp.h"
#include "lanes.h"

#pragma STDC FP_CONTRACT OFF

TK_INLINE TK_AVX2 int32_t hsum_epi32(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

TK_INLINE TK_AVX2 float hmax_ps(__m256 v) {
    __m128 s = _mm_max_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_max_ps(s, _mm_movehl_ps(s, s));
    s = _mm_max_ss(s, _mm_movehdup_ps(s));
    return _mm_cvtss_f32(s);
}

// MARK: - Activation quantization

/// 16 floats → 16 int8 (round to nearest even, saturating); returns their sum.
TK_INLINE TK_AVX2 int32_t quantize16(const float *x, __m256 id, int8_t *out) {
    const __m256i i0 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x), id));
    const __m256i i1 = _mm256_cvtps_epi32(_mm256_mul_ps(_mm256_loadu_ps(x + 8), id));
    const __m128i h0 = _mm_packs_epi32(_mm256_castsi256_si128(i0), _mm256_extracti128_si256(i0, 1));
    const __m128i h1 = _mm_packs_epi32(_mm256_castsi256_si128(i1), _mm256_extracti128_si256(i1, 1));
    _mm_storeu_si128((__m128i *)out, _mm_packs_epi16(h0, h1));
    return hsum_epi32(_mm256_add_epi32(i0, i1));
}

TK_INLINE TK_AVX2 float absmax(const float *x, int count) {
    const __m256 sign = _mm256_set1_ps(-0.0f);
    __m256 m = _mm256_setzero_ps();
    for (int j = 0; j < count; j += 8) m = _mm256_max_ps(m, _mm256_andnot_ps(sign, _mm256_loadu_ps(x + j)));
    return hmax_ps(m);
}

TK_AVX2 void tk_quantize_q8_0_avx2(const float *x, int64_t cols, void *dst) {
    const int64_t nb = cols / 32;
    int8_t *qs = (int8_t *)dst;
    float *d = (float *)(qs + cols), *s = d + nb;
    int32_t *sums = (int32_t *)(s + nb);
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + 32 * b;
        const float amax = absmax(xb, 32);
        const __m256 id = _mm256_set1_ps(amax != 0 ? 127.0f / amax : 0.0f);
        const int32_t sum = quantize16(xb, id, qs + 32 * b) + quantize16(xb + 16, id, qs + 32 * b + 16);
        d[b] = amax / 127.0f;
        s[b] = d[b] * (float)sum;
        sums[b] = sum;
    }
}

TK_AVX2 void tk_quantize_q8_K_avx2(const float *x, int64_t cols, void *dst) {
    const int64_t nb = cols / 256;
    int8_t *qs = (int8_t *)dst;
    float *d = (float *)(qs + cols);
    int16_t *bsums = (int16_t *)(d + nb);
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + 256 * b;
        const float amax = absmax(xb, 256);
        const __m256 id = _mm256_set1_ps(amax != 0 ? 127.0f / amax : 0.0f);
        for (int g = 0; g < 16; g++) bsums[16 * b + g] = (int16_t)quantize16(xb + 16 * g, id, qs + 256 * b + 16 * g);
        d[b] = amax / 127.0f;
    }
}

// MARK: - Q4_0, Q4_1, Q8_0 weights × Q8_0 activations (tiles of MR weight rows × NR activation rows)

/// Unsigned nibbles of a 16-byte block: low nibbles are elements 0..15, high nibbles 16..31.
TK_INLINE TK_AVX2 __m256i nibbles(const uint8_t *qs) {
    const __m128i q = _mm_loadu_si128((const __m128i *)qs);
    return _mm256_and_si256(_mm256_setr_m128i(q, _mm_srli_epi16(q, 4)), _mm256_set1_epi8(0x0F));
}

/// 0x10 in byte j where bit j of the 32 bits at `qh` is set (a Q5 block's fifth bits, elements in order).
TK_INLINE TK_AVX2 __m256i fifth_bits(const uint8_t *qh) {
    uint32_t bits;
    memcpy(&bits, qh, 4);
    const __m256i spread = _mm256_shuffle_epi8(_mm256_set1_epi32((int)bits),
        _mm256_setr_epi8(0, 0, 0, 0, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 1, 1, 2, 2, 2, 2, 2, 2, 2, 2, 3, 3, 3, 3, 3, 3, 3, 3));
    const __m256i bit = _mm256_set1_epi64x((long long)0x8040201008040201ull);
    return _mm256_and_si256(_mm256_cmpeq_epi8(_mm256_and_si256(spread, bit), bit), _mm256_set1_epi8(0x10));
}

/// The IEEE half at `p` as float through F16C (the same value as `tk_half_at`, in one instruction).
TK_INLINE TK_AVX2 float half_f16c(const uint8_t *p) {
    return _mm_cvtss_f32(_mm_cvtph_ps(_mm_cvtsi32_si128((int)tk_u16(p))));
}

/// Σ u8·s8 over 32 bytes as eight int32 lanes.
TK_INLINE TK_AVX2 __m256i dot_u8s8(__m256i u, __m256i s) {
    return _mm256_madd_epi16(_mm256_maddubs_epi16(u, s), _mm256_set1_epi16(1));
}

/// One tile over blocks of 32; KIND 0: Q4_0, 1: Q4_1, 2: Q8_0, 3: Q5_0, 4: Q5_1, 5: IQ4_NL.
TK_INLINE TK_AVX2 void q32_tile(const tk_matmul_args *a, int64_t r, int64_t i, const int MR, const int NR,
                                const int KIND) {
    const int64_t cols = a->cols, nb = cols / 32;
    const size_t bytes = tk_q32_block_bytes(KIND);
    // d·q + m (Q4_1, Q5_1), and Q5_0's d·(u − 16) as d·u + (−16·d): the m·Σa term is added apart, from the
    // activation row's d·Σa, instead of a second integer dot product per block
    const int minimum = KIND == 1 || KIND == 3 || KIND == 4;
    const uint8_t *w[4]; const int8_t *q[4]; const float *d[4], *s[4];
    __m256 acc[4][4]; float macc[4][4];
    const __m256i levels = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)tk_iq4_levels));
    for (int m = 0; m < MR; m++) w[m] = TK_WROW(a, r, m);
    for (int k = 0; k < NR; k++) {
        q[k] = (const int8_t *)TK_XROW(a, i, k); d[k] = tk_q8_0_d(q[k], cols); s[k] = tk_q8_0_s(q[k], cols);
    }
    for (int m = 0; m < MR; m++) for (int k = 0; k < NR; k++) { acc[m][k] = _mm256_setzero_ps(); macc[m][k] = 0; }
    for (int64_t b = 0; b < nb; b++) {
        __m256i wv[4], wa[4]; float dw[4], mw[4];
        for (int m = 0; m < MR; m++) {
            const uint8_t *blk = w[m] + (size_t)b * bytes;
            _mm_prefetch((const char *)blk + TK_PREFETCH, _MM_HINT_T0);
            dw[m] = half_f16c(blk);
            if (KIND == 0) wv[m] = nibbles(blk + 2);
            if (KIND == 1) { wv[m] = nibbles(blk + 4); mw[m] = half_f16c(blk + 2); }
            if (KIND == 3) {                                                                 // d(0) qh(2) qs(6)
                wv[m] = _mm256_or_si256(nibbles(blk + 6), fifth_bits(blk + 2));
                mw[m] = -16.0f * dw[m];
            }
            if (KIND == 4) {                                                                 // d(0) m(2) qh(4) qs(8)
                wv[m] = _mm256_or_si256(nibbles(blk + 8), fifth_bits(blk + 4));
                mw[m] = half_f16c(blk + 2);
            }
            if (KIND == 2 || KIND == 5) {   // signed bytes: Q8_0's d(0) qs(2..34), IQ4_NL's levels of d(0) qs(2..18)
                wv[m] = KIND == 2 ? _mm256_loadu_si256((const __m256i *)(blk + 2)) : _mm256_shuffle_epi8(levels, nibbles(blk + 2));
                wa[m] = _mm256_abs_epi8(wv[m]);
            }
        }
        for (int k = 0; k < NR; k++) {
            const __m256i av = _mm256_loadu_si256((const __m256i *)(q[k] + 32 * b));
            const float da = d[k][b];
            // Q4_0 stores q + 8: Σ(u − 8)·a = Σ u·a − 8·Σa
            const __m256i c8 = KIND == 0 ? dot_u8s8(_mm256_set1_epi8(8), av) : _mm256_setzero_si256();
            for (int m = 0; m < MR; m++) {
                __m256i p;
                if (KIND == 2 || KIND == 5) p = dot_u8s8(wa[m], _mm256_sign_epi8(av, wv[m]));   // |w| · (a·sign w)
                else p = _mm256_sub_epi32(dot_u8s8(wv[m], av), c8);
                acc[m][k] = _mm256_fmadd_ps(_mm256_cvtepi32_ps(p), _mm256_set1_ps(dw[m] * da), acc[m][k]);
                if (minimum) macc[m][k] += mw[m] * s[k][b];
            }
        }
    }
    for (int m = 0; m < MR; m++) for (int k = 0; k < NR; k++) TK_PUT(a, TK_Y(a, i, k, r, m), hsum8(acc[m][k]) + macc[m][k]);
}

#define Q4_0_TILE(a, r, i, MR, NR) q32_tile(a, r, i, MR, NR, 0)
#define Q4_1_TILE(a, r, i, MR, NR) q32_tile(a, r, i, MR, NR, 1)
#define Q8_0_TILE(a, r, i, MR, NR) q32_tile(a, r, i, MR, NR, 2)
#define Q5_0_TILE(a, r, i, MR, NR) q32_tile(a, r, i, MR, NR, 3)
#define Q5_1_TILE(a, r, i, MR, NR) q32_tile(a, r, i, MR, NR, 4)
#define IQ4_NL_TILE(a, r, i, MR, NR) q32_tile(a, r, i, MR, NR, 5)
TK_DRIVER(TK_AVX2, iq4_nl_rows, IQ4_NL_TILE, 2, 4, 1)
TK_DRIVER(TK_AVX2, q4_0_rows, Q4_0_TILE, 2, 4, 1)
TK_DRIVER(TK_AVX2, q4_1_rows, Q4_1_TILE, 2, 4, 1)
TK_DRIVER(TK_AVX2, q8_0_rows, Q8_0_TILE, 2, 4, 1)
TK_DRIVER(TK_AVX2, q5_0_rows, Q5_0_TILE, 2, 4, 1)
TK_DRIVER(TK_AVX2, q5_1_rows, Q5_1_TILE, 2, 4, 1)

// MARK: - Q2_K … Q6_K and IQ4_XS weights × Q8_K activations

#define KQ_TARGET TK_AVX2
#define KQ(name) name##_avx2
#define KQ_MADD_ADD(acc, p, s) _mm256_add_epi32(acc, _mm256_madd_epi16(p, s))
#include "kquants.h"
#define Q4_K_TILE(a, r, i, MR, NR) q45_K_tile_avx2(a, r, i, MR, NR, 0)
#define Q5_K_TILE(a, r, i, MR, NR) q45_K_tile_avx2(a, r, i, MR, NR, 1)
#define IQ4_XS_TILE(a, r, i, MR, NR) iq4_xs_tile_avx2(a, r, i, MR, NR)
#define Q2_K_TILE(a, r, i, MR, NR) q23_K_tile_avx2(a, r, i, MR, NR, 0)
#define Q3_K_TILE(a, r, i, MR, NR) q23_K_tile_avx2(a, r, i, MR, NR, 1)
#define Q6_K_TILE(a, r, i, MR, NR) q6_K_tile_avx2(a, r, i, MR, NR)
TK_DRIVER(TK_AVX2, q4_K_rows, Q4_K_TILE, 1, 4, 1)
TK_DRIVER(TK_AVX2, q5_K_rows, Q5_K_TILE, 1, 4, 1)
TK_DRIVER(TK_AVX2, iq4_xs_rows, IQ4_XS_TILE, 1, 4, 1)
TK_DRIVER(TK_AVX2, q2_K_rows, Q2_K_TILE, 1, 4, 1)
TK_DRIVER(TK_AVX2, q3_K_rows, Q3_K_TILE, 1, 4, 1)
TK_DRIVER(TK_AVX2, q6_K_rows, Q6_K_TILE, 1, 4, 1)

// MARK: - F32, F16, BF16 weights × float activations

/// Eight weights as floats; KIND 0: F32, 1: F16, 2: BF16.
TK_INLINE TK_AVX2 __m256 load_w8(const uint8_t *w, int64_t j, const int KIND) {
    if (KIND == 0) return _mm256_loadu_ps((const float *)(w + 4 * j));
    const __m128i h = _mm_loadu_si128((const __m128i *)(w + 2 * j));
    if (KIND == 1) return _mm256_cvtph_ps(h);
    return _mm256_castsi256_ps(_mm256_slli_epi32(_mm256_cvtepu16_epi32(h), 16));
}

TK_INLINE TK_AVX2 void float_tile(const tk_matmul_args *a, int64_t r, int64_t i, const int MR, const int NR,
                                  const int KIND) {
    const int64_t cols = a->cols, main = cols & ~(int64_t)7;
    const size_t esize = KIND == 0 ? 4 : 2;
    const uint8_t *w[4]; const float *x[4];
    __m256 acc[4][4];
    for (int m = 0; m < MR; m++) w[m] = TK_WROW(a, r, m);
    for (int k = 0; k < NR; k++) x[k] = (const float *)TK_XROW(a, i, k);
    for (int m = 0; m < MR; m++) for (int k = 0; k < NR; k++) acc[m][k] = _mm256_setzero_ps();
    for (int64_t j = 0; j < main; j += 8) {
        __m256 wv[4];
        for (int m = 0; m < MR; m++) {
            if ((j & 15) == 0) _mm_prefetch((const char *)w[m] + (size_t)j * esize + TK_PREFETCH, _MM_HINT_T0);
            wv[m] = load_w8(w[m], j, KIND);
        }
        for (int k = 0; k < NR; k++) {
            const __m256 xv = _mm256_loadu_ps(x[k] + j);
            for (int m = 0; m < MR; m++) acc[m][k] = _mm256_fmadd_ps(wv[m], xv, acc[m][k]);
        }
    }
    if (main < cols) {   // tail: the last < 8 elements through zero-padded copies
        const size_t rest = (size_t)(cols - main);
        __m256 wv[4];
        for (int m = 0; m < MR; m++) {
            uint8_t buf[32] = {0};
            memcpy(buf, w[m] + (size_t)main * esize, rest * esize);
            wv[m] = load_w8(buf, 0, KIND);
        }
        for (int k = 0; k < NR; k++) {
            float buf[8] = {0};
            memcpy(buf, x[k] + main, rest * 4);
            const __m256 xv = _mm256_loadu_ps(buf);
            for (int m = 0; m < MR; m++) acc[m][k] = _mm256_fmadd_ps(wv[m], xv, acc[m][k]);
        }
    }
    for (int m = 0; m < MR; m++) for (int k = 0; k < NR; k++) TK_PUT(a, TK_Y(a, i, k, r, m), hsum8(acc[m][k]));
}

#define F32_TILE(a, r, i, MR, NR) float_tile(a, r, i, MR, NR, 0)
#define F16_TILE(a, r, i, MR, NR) float_tile(a, r, i, MR, NR, 1)
#define BF16_TILE(a, r, i, MR, NR) float_tile(a, r, i, MR, NR, 2)
TK_DRIVER(TK_AVX2, f32_rows, F32_TILE, 2, 4, 1)
TK_DRIVER(TK_AVX2, f16_rows, F16_TILE, 2, 4, 1)
TK_DRIVER(TK_AVX2, bf16_rows, BF16_TILE, 2, 4, 1)

TK_AVX2 int32_t tk_matmul_avx2(const tk_matmul_args *a, int64_t r0, int64_t r1) {
    switch (a->type) {
    case TK_Q4_0: q4_0_rows(a, r0, r1); return 0;
    case TK_Q4_1: q4_1_rows(a, r0, r1); return 0;
    case TK_Q8_0: q8_0_rows(a, r0, r1); return 0;
    case TK_Q5_0: q5_0_rows(a, r0, r1); return 0;
    case TK_Q5_1: q5_1_rows(a, r0, r1); return 0;
    case TK_Q2_K: q2_K_rows(a, r0, r1); return 0;
    case TK_Q3_K: q3_K_rows(a, r0, r1); return 0;
    case TK_Q4_K: q4_K_rows(a, r0, r1); return 0;
    case TK_Q5_K: q5_K_rows(a, r0, r1); return 0;
    case TK_IQ4_XS: iq4_xs_rows(a, r0, r1); return 0;
    case TK_IQ4_NL: iq4_nl_rows(a, r0, r1); return 0;
    case TK_Q6_K: q6_K_rows(a, r0, r1); return 0;
    case TK_F32: f32_rows(a, r0, r1); return 0;
    case TK_F16: f16_rows(a, r0, r1); return 0;
    case TK_BF16: bf16_rows(a, r0, r1); return 0;
    default: return -1;
    }
}

// MARK: - SiLU · up

TK_AVX2 void tk_silu_mul_avx2(float *gate, const float *up, int64_t count) {
    int64_t i = 0;
    for (; i + 8 <= count; i += 8) {
        const __m256 g = _mm256_loadu_ps(gate + i);
        const __m256 e = exp8(_mm256_sub_ps(_mm256_setzero_ps(), g));
        const __m256 silu = _mm256_div_ps(g, _mm256_add_ps(_mm256_set1_ps(1.0f), e));
        _mm256_storeu_ps(gate + i, _mm256_mul_ps(silu, _mm256_loadu_ps(up + i)));
    }
    tk_silu_mul_portable(gate + i, up + i, count - i);
}
#endif
