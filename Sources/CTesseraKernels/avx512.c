// AVX-512 (F/BW/VL + VNNI) kernels: two 32-element blocks per 512-bit register, vpdpbusd integer dot products.
#include "internal.h"
#if TK_X86
#include <immintrin.h>
#include "tiles.h"
#include "vexp.h"

#pragma STDC FP_CONTRACT OFF

// MARK: - Activation quantization

/// 16 floats → 16 int8 (round to nearest even, saturating); returns their sum.
TK_INLINE TK_AVX512 int32_t quantize16(const float *x, __m512 id, int8_t *out) {
    const __m512i v = _mm512_cvtps_epi32(_mm512_mul_ps(_mm512_loadu_ps(x), id));
    _mm_storeu_si128((__m128i *)out, _mm512_cvtsepi32_epi8(v));
    return _mm512_reduce_add_epi32(v);
}

TK_INLINE TK_AVX512 float absmax(const float *x, int count) {
    __m512 m = _mm512_setzero_ps();
    for (int j = 0; j < count; j += 16) m = _mm512_max_ps(m, _mm512_abs_ps(_mm512_loadu_ps(x + j)));
    return _mm512_reduce_max_ps(m);
}

TK_AVX512 void tk_quantize_q8_0_avx512(const float *x, int64_t cols, void *dst) {
    const int64_t nb = cols / 32;
    int8_t *qs = (int8_t *)dst;
    float *d = (float *)(qs + cols), *s = d + nb;
    int32_t *sums = (int32_t *)(s + nb);
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + 32 * b;
        const float amax = absmax(xb, 32);
        const __m512 id = _mm512_set1_ps(amax != 0 ? 127.0f / amax : 0.0f);
        const int32_t sum = quantize16(xb, id, qs + 32 * b) + quantize16(xb + 16, id, qs + 32 * b + 16);
        d[b] = amax / 127.0f;
        s[b] = d[b] * (float)sum;
        sums[b] = sum;
    }
}

TK_AVX512 void tk_quantize_q8_K_avx512(const float *x, int64_t cols, void *dst) {
    const int64_t nb = cols / 256;
    int8_t *qs = (int8_t *)dst;
    float *d = (float *)(qs + cols);
    int16_t *bsums = (int16_t *)(d + nb);
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + 256 * b;
        const float amax = absmax(xb, 256);
        const __m512 id = _mm512_set1_ps(amax != 0 ? 127.0f / amax : 0.0f);
        for (int g = 0; g < 16; g++) bsums[16 * b + g] = (int16_t)quantize16(xb + 16 * g, id, qs + 256 * b + 16 * g);
        d[b] = amax / 127.0f;
    }
}

// MARK: - Q4_0, Q4_1, Q8_0 weights × Q8_0 activations
// A step covers blocks b and b + 1: int32 lanes 0..7 hold block b's partial sums, lanes 8..15 block b + 1's, and
// the float scales are spread the same way. An odd last block is paired with zeros (`full` = 0).

/// Lane pattern: lanes 0..7 take element `lo` of a 4-float vector, lanes 8..15 element `hi`.
#define TK_SPREAD(lo, hi) _mm512_set_epi32(hi, hi, hi, hi, hi, hi, hi, hi, lo, lo, lo, lo, lo, lo, lo, lo)

TK_INLINE TK_AVX512 void q32_step(int64_t b, const int full, const int MR, const int NR, const int KIND,
                                  const uint8_t *const *w, const int8_t *const *q, const float *const *d,
                                  const float *const *s, __m512 acc[4][4]) {
    const size_t bytes = tk_q32_block_bytes(KIND);
    const int minimum = KIND == 1 || KIND == 4;   // d·q + m
    const __m512i zero = _mm512_setzero_si512();
    __m512i wv[4], wa[4]; __mmask64 neg[4]; __m512 dv[4], mv[4];
    for (int m = 0; m < MR; m++) {
        const uint8_t *b0 = w[m] + (size_t)b * bytes, *b1 = b0 + bytes;
        _mm_prefetch((const char *)b0 + TK_PREFETCH, _MM_HINT_T0);   // weights stream from DRAM: ask early
        if (KIND == 2) {   // d(0) qs(2..34)
            const __m256i lo = _mm256_loadu_si256((const __m256i *)(b0 + 2));
            wv[m] = full ? _mm512_inserti64x4(_mm512_castsi256_si512(lo), _mm256_loadu_si256((const __m256i *)(b1 + 2)), 1)
                         : _mm512_zextsi256_si512(lo);
            wa[m] = _mm512_abs_epi8(wv[m]);
            neg[m] = _mm512_movepi8_mask(wv[m]);
        } else {           // Q4_0: d(0) qs(2..18); Q4_1: d(0) m(2) qs(4..20) → [lo b, hi b, lo b+1, hi b+1]
            // Q5_0: d(0) qh(2..6) qs(6..22); Q5_1: d(0) m(2) qh(4..8) qs(8..24)
            const int off = KIND == 0 ? 2 : KIND == 1 ? 4 : KIND == 3 ? 6 : 8;
            __m512i v = _mm512_broadcast_i32x4(_mm_loadu_si128((const __m128i *)(b0 + off)));
            v = full ? _mm512_mask_broadcast_i32x4(v, 0xFF00, _mm_loadu_si128((const __m128i *)(b1 + off)))
                     : _mm512_maskz_mov_epi32(0x00FF, v);
            wv[m] = _mm512_and_si512(_mm512_srlv_epi64(v, _mm512_set_epi64(4, 4, 0, 0, 4, 4, 0, 0)),
                                     _mm512_set1_epi8(0x0F));
            if (KIND >= 3) {   // the fifth bits: bit j of qh is element j's, bytes in element order
                uint32_t h0, h1 = 0;
                memcpy(&h0, b0 + off - 4, 4);
                if (full) memcpy(&h1, b1 + off - 4, 4);
                wv[m] = _mm512_mask_add_epi8(wv[m], (__mmask64)h0 | (__mmask64)h1 << 32, wv[m], _mm512_set1_epi8(0x10));
            }
        }
        if (minimum) {     // [d b, m b, d b+1, m b+1]
            uint32_t dm0, dm1 = 0;
            memcpy(&dm0, b0, 4);
            if (full) memcpy(&dm1, b1, 4);
            const __m512 f = _mm512_castps128_ps512(_mm_cvtph_ps(_mm_set_epi32(0, 0, (int)dm1, (int)dm0)));
            dv[m] = _mm512_permutexvar_ps(TK_SPREAD(0, 2), f);
            mv[m] = _mm512_permutexvar_ps(TK_SPREAD(1, 3), f);
        } else {           // [d b, d b+1]
            const uint32_t d01 = tk_u16(b0) | (full ? (uint32_t)tk_u16(b1) << 16 : 0);
            dv[m] = _mm512_permutexvar_ps(TK_SPREAD(0, 1), _mm512_castps128_ps512(_mm_cvtph_ps(_mm_cvtsi32_si128((int)d01))));
        }
    }
    for (int k = 0; k < NR; k++) {
        const int8_t *qa = q[k] + 32 * b;
        const __m512i av = full ? _mm512_loadu_si512(qa) : _mm512_maskz_loadu_epi8(0xFFFFFFFFull, qa);
        const __m128 ds = full ? _mm_movelh_ps(_mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(d[k] + b))),
                                               _mm_castsi128_ps(_mm_loadl_epi64((const __m128i *)(s[k] + b))))
                               : _mm_movelh_ps(_mm_load_ss(d[k] + b), _mm_load_ss(s[k] + b));
        const __m512 f = _mm512_castps128_ps512(ds);     // [d b, d b+1, s b, s b+1]
        const __m512 dav = _mm512_permutexvar_ps(TK_SPREAD(0, 1), f);
        // Q4_1's m·s is added on all 8 lanes of a block, so s enters as s / 8 (exact)
        const __m512 sav = minimum ? _mm512_mul_ps(_mm512_permutexvar_ps(TK_SPREAD(2, 3), f), _mm512_set1_ps(0.125f))
                                     : _mm512_setzero_ps();
        // Q4_0 / Q5_0: Σ(u − c)·a = Σ u·a − c·Σa (c = 8 / 16); start the sums at −c·Σa
        const __m512i base = KIND == 0 || KIND == 3
            ? _mm512_sub_epi32(zero, _mm512_dpbusd_epi32(zero, _mm512_set1_epi8(KIND == 0 ? 8 : 16), av)) : zero;
        for (int m = 0; m < MR; m++) {
            const __m512i p = KIND == 2 ? _mm512_dpbusd_epi32(zero, wa[m], _mm512_mask_sub_epi8(av, neg[m], zero, av))
                                        : _mm512_dpbusd_epi32(base, wv[m], av);
            acc[m][k] = _mm512_fmadd_ps(_mm512_cvtepi32_ps(p), _mm512_mul_ps(dv[m], dav), acc[m][k]);
            if (minimum) acc[m][k] = _mm512_fmadd_ps(mv[m], sav, acc[m][k]);
        }
    }
}

TK_INLINE TK_AVX512 void q32_tile(const tk_matmul_args *a, int64_t r, int64_t i, const int MR, const int NR,
                                  const int KIND) {
    const int64_t cols = a->cols, nb = cols / 32;
    const uint8_t *w[4]; const int8_t *q[4]; const float *d[4], *s[4];
    __m512 acc[4][4];
    for (int m = 0; m < MR; m++) w[m] = TK_WROW(a, r, m);
    for (int k = 0; k < NR; k++) {
        q[k] = (const int8_t *)TK_XROW(a, i, k); d[k] = tk_q8_0_d(q[k], cols); s[k] = tk_q8_0_s(q[k], cols);
    }
    for (int m = 0; m < MR; m++) for (int k = 0; k < NR; k++) acc[m][k] = _mm512_setzero_ps();
    int64_t b = 0;
    for (; b + 1 < nb; b += 2) q32_step(b, 1, MR, NR, KIND, w, q, d, s, acc);
    if (b < nb) q32_step(b, 0, MR, NR, KIND, w, q, d, s, acc);
    for (int m = 0; m < MR; m++) for (int k = 0; k < NR; k++) TK_PUT(a, TK_Y(a, i, k, r, m), _mm512_reduce_add_ps(acc[m][k]));
}

#define Q4_0_TILE(a, r, i, MR, NR) q32_tile(a, r, i, MR, NR, 0)
#define Q4_1_TILE(a, r, i, MR, NR) q32_tile(a, r, i, MR, NR, 1)
#define Q8_0_TILE(a, r, i, MR, NR) q32_tile(a, r, i, MR, NR, 2)
#define Q5_0_TILE(a, r, i, MR, NR) q32_tile(a, r, i, MR, NR, 3)
#define Q5_1_TILE(a, r, i, MR, NR) q32_tile(a, r, i, MR, NR, 4)
TK_DRIVER(TK_AVX512, q4_0_rows, Q4_0_TILE, 4, 2, 1)
TK_DRIVER(TK_AVX512, q4_1_rows, Q4_1_TILE, 4, 2, 1)
TK_DRIVER(TK_AVX512, q8_0_rows, Q8_0_TILE, 4, 2, 1)
TK_DRIVER(TK_AVX512, q5_0_rows, Q5_0_TILE, 4, 2, 1)
TK_DRIVER(TK_AVX512, q5_1_rows, Q5_1_TILE, 4, 2, 1)

// MARK: - Q2_K … Q6_K and IQ4_XS weights × Q8_K activations (256-bit, VNNI word dot products)

#define KQ_TARGET TK_AVX512
#define KQ(name) name##_avx512
#define KQ_MADD_ADD(acc, p, s) _mm256_dpwssd_epi32(acc, p, s)
#include "kquants.h"
#define Q4_K_TILE(a, r, i, MR, NR) q45_K_tile_avx512(a, r, i, MR, NR, 0)
#define Q5_K_TILE(a, r, i, MR, NR) q45_K_tile_avx512(a, r, i, MR, NR, 1)
#define IQ4_XS_TILE(a, r, i, MR, NR) iq4_xs_tile_avx512(a, r, i, MR, NR)
#define Q2_K_TILE(a, r, i, MR, NR) q23_K_tile_avx512(a, r, i, MR, NR, 0)
#define Q3_K_TILE(a, r, i, MR, NR) q23_K_tile_avx512(a, r, i, MR, NR, 1)
#define Q6_K_TILE(a, r, i, MR, NR) q6_K_tile_avx512(a, r, i, MR, NR)
TK_DRIVER(TK_AVX512, q4_K_rows, Q4_K_TILE, 1, 4, 1)
TK_DRIVER(TK_AVX512, q5_K_rows, Q5_K_TILE, 1, 4, 1)
TK_DRIVER(TK_AVX512, iq4_xs_rows, IQ4_XS_TILE, 1, 4, 1)
TK_DRIVER(TK_AVX512, q2_K_rows, Q2_K_TILE, 1, 4, 1)
TK_DRIVER(TK_AVX512, q3_K_rows, Q3_K_TILE, 1, 4, 1)
TK_DRIVER(TK_AVX512, q6_K_rows, Q6_K_TILE, 1, 4, 1)

// MARK: - F32, F16, BF16 weights × float activations

/// Sixteen weights (or the first `mask` of them) as floats; KIND 0: F32, 1: F16, 2: BF16.
TK_INLINE TK_AVX512 __m512 load_w16(const uint8_t *w, int64_t j, __mmask16 mask, const int KIND) {
    if (KIND == 0) return _mm512_maskz_loadu_ps(mask, w + 4 * j);
    const __m256i h = _mm256_maskz_loadu_epi16(mask, w + 2 * j);
    if (KIND == 1) return _mm512_cvtph_ps(h);
    return _mm512_castsi512_ps(_mm512_slli_epi32(_mm512_cvtepu16_epi32(h), 16));
}

TK_INLINE TK_AVX512 void float_tile(const tk_matmul_args *a, int64_t r, int64_t i, const int MR, const int NR,
                                    const int KIND) {
    const int64_t cols = a->cols;
    const uint8_t *w[4]; const float *x[4];
    __m512 acc[4][4];
    for (int m = 0; m < MR; m++) w[m] = TK_WROW(a, r, m);
    for (int k = 0; k < NR; k++) x[k] = (const float *)TK_XROW(a, i, k);
    for (int m = 0; m < MR; m++) for (int k = 0; k < NR; k++) acc[m][k] = _mm512_setzero_ps();
    for (int64_t j = 0; j < cols; j += 16) {
        const __mmask16 mask = cols - j >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (cols - j)) - 1);
        __m512 wv[4];
        for (int m = 0; m < MR; m++) {
            _mm_prefetch((const char *)w[m] + (size_t)j * (KIND == 0 ? 4 : 2) + TK_PREFETCH, _MM_HINT_T0);
            wv[m] = load_w16(w[m], j, mask, KIND);
        }
        for (int k = 0; k < NR; k++) {
            const __m512 xv = _mm512_maskz_loadu_ps(mask, x[k] + j);
            for (int m = 0; m < MR; m++) acc[m][k] = _mm512_fmadd_ps(wv[m], xv, acc[m][k]);
        }
    }
    for (int m = 0; m < MR; m++) for (int k = 0; k < NR; k++) TK_PUT(a, TK_Y(a, i, k, r, m), _mm512_reduce_add_ps(acc[m][k]));
}

#define F32_TILE(a, r, i, MR, NR) float_tile(a, r, i, MR, NR, 0)
#define F16_TILE(a, r, i, MR, NR) float_tile(a, r, i, MR, NR, 1)
#define BF16_TILE(a, r, i, MR, NR) float_tile(a, r, i, MR, NR, 2)
TK_DRIVER(TK_AVX512, f32_rows, F32_TILE, 4, 4, 1)
TK_DRIVER(TK_AVX512, f16_rows, F16_TILE, 4, 4, 1)
TK_DRIVER(TK_AVX512, bf16_rows, BF16_TILE, 4, 4, 1)

TK_AVX512 int32_t tk_matmul_avx512(const tk_matmul_args *a, int64_t r0, int64_t r1) {
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
    case TK_IQ4_NL: return tk_matmul_avx2(a, r0, r1);   // the AVX2 tile (no 512-bit one yet)
    case TK_Q6_K: q6_K_rows(a, r0, r1); return 0;
    case TK_F32: f32_rows(a, r0, r1); return 0;
    case TK_F16: f16_rows(a, r0, r1); return 0;
    case TK_BF16: bf16_rows(a, r0, r1); return 0;
    default: return -1;
    }
}

// MARK: - SiLU · up

TK_AVX512 void tk_silu_mul_avx512(float *gate, const float *up, int64_t count) {
    for (int64_t i = 0; i < count; i += 16) {
        const __mmask16 mask = count - i >= 16 ? (__mmask16)0xFFFF : (__mmask16)((1u << (count - i)) - 1);
        const __m512 g = _mm512_maskz_loadu_ps(mask, gate + i);
        const __m512 e = exp16(_mm512_sub_ps(_mm512_setzero_ps(), g));
        const __m512 silu = _mm512_div_ps(g, _mm512_add_ps(_mm512_set1_ps(1.0f), e));
        _mm512_mask_storeu_ps(gate + i, mask, _mm512_mul_ps(silu, _mm512_maskz_loadu_ps(mask, up + i)));
    }
}
#endif
