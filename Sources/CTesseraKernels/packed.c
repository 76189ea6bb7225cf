// Q4_0, Q4_1 and Q8_0 weights repacked in groups of 16 rows ("x16"), and their products at every level.
//
// Group g holds rows 16g..16g+15; for each block b it stores, contiguously:
//   d: f16[16] (row j's scale), [Q4_1: m: f16[16]], then chunks of 64 bytes where bytes 4j..4j+3 of chunk c are
//   row j's quantized bytes 4c..4c+3 (Q4: 4 chunks of packed nibbles; Q8_0: 8 chunks, stored as q + 128 unsigned).
// One 512-bit dpbusd of a chunk against a broadcast activation dword then adds 4 products to each row's lane, so
// the per-block float work (scale, convert, accumulate) is done once for 16 rows. Each row accumulates its blocks in
// order with the portable formula (no FMA), so every level gives the portable row kernel's results bit for bit.
#include "internal.h"
#include "tiles.h"
#if TK_X86
#include <immintrin.h>
#endif

#pragma STDC FP_CONTRACT OFF

/// Bytes of one packed block of 16 rows, and where its quantized chunks start.
TK_INLINE int64_t packed_block_bytes(uint32_t type) {
    switch (type) {
    case TK_Q4_0: return 32 + 256;
    case TK_Q4_1: return 64 + 256;
    case TK_Q8_0: return 32 + 512;
    default: return 0;
    }
}
TK_INLINE int64_t packed_header(uint32_t type) { return type == TK_Q4_1 ? 64 : 32; }

size_t tk_packed_bytes(uint32_t type, int64_t rows, int64_t cols) {
    return (size_t)(rows / 16) * (size_t)(cols / 32) * (size_t)packed_block_bytes(type);
}

int32_t tk_pack(uint32_t type, const void *weights, size_t row_bytes, int64_t rows, int64_t cols, void *dst) {
    const int64_t pb = packed_block_bytes(type), header = packed_header(type), nb = cols / 32;
    if (pb == 0) return -1;
    const size_t src_block = type == TK_Q4_0 ? TK_Q4_0_BYTES : type == TK_Q4_1 ? TK_Q4_1_BYTES : TK_Q8_0_BYTES;
    const int qs_offset = type == TK_Q4_1 ? 4 : 2, chunks = type == TK_Q8_0 ? 8 : 4;
    const uint8_t flip = type == TK_Q8_0 ? 0x80 : 0;
    uint8_t *out = (uint8_t *)dst;
    for (int64_t g = 0; g < rows / 16; g++) {
        for (int64_t b = 0; b < nb; b++, out += pb) {
            for (int j = 0; j < 16; j++) {
                const uint8_t *src = (const uint8_t *)weights + (size_t)(16 * g + j) * row_bytes + (size_t)b * src_block;
                memcpy(out + 2 * j, src, 2);                                // d
                if (type == TK_Q4_1) memcpy(out + 32 + 2 * j, src + 2, 2);  // m
                for (int c = 0; c < chunks; c++) {
                    for (int t = 0; t < 4; t++) out[header + 64 * c + 4 * j + t] = src[qs_offset + 4 * c + t] ^ flip;
                }
            }
        }
    }
    return 0;
}

// MARK: - Portable

void tk_matmul_packed_portable(const tk_matmul_args *a, int64_t g0, int64_t g1) {
    const uint32_t type = a->type;
    const int64_t cols = a->cols, nb = cols / 32, pb = packed_block_bytes(type), header = packed_header(type);
    for (int64_t g = g0; g < g1; g++) {
        for (int64_t i = 0; i < a->n; i++) {
            const int8_t *q = (const int8_t *)TK_XROW(a, i, 0);
            const float *d = tk_q8_0_d(q, cols), *s = tk_q8_0_s(q, cols);
            const int32_t *sum = tk_q8_0_sum(q, cols);
            float acc[16] = {0};
            const uint8_t *p = (const uint8_t *)a->packed + (size_t)(g * nb) * (size_t)pb;
            for (int64_t b = 0; b < nb; b++, p += pb) {
                const int8_t *qb = q + 32 * b;
                for (int j = 0; j < 16; j++) {
                    int32_t isum = type == TK_Q4_0 ? -8 * sum[b] : type == TK_Q8_0 ? -128 * sum[b] : 0;
                    for (int c = 0; c < (type == TK_Q8_0 ? 8 : 4); c++) {
                        for (int t = 0; t < 4; t++) {
                            const uint8_t v = p[header + 64 * c + 4 * j + t];
                            if (type == TK_Q8_0) isum += v * qb[4 * c + t];
                            else isum += (v & 0x0F) * qb[4 * c + t] + (v >> 4) * qb[16 + 4 * c + t];
                        }
                    }
                    acc[j] += (float)isum * (tk_half_at(p + 2 * j) * d[b]);
                    if (type == TK_Q4_1) acc[j] += tk_half_at(p + 32 + 2 * j) * s[b];
                }
            }
            for (int j = 0; j < 16; j++) TK_PUT(a, TK_Y(a, i, 0, 16 * g, j), acc[j]);
        }
    }
}

#if TK_X86

// MARK: - AVX-512: 16 rows per register, NR activation rows per pass over a group

TK_INLINE TK_AVX512 void packed_tile_avx512(const tk_matmul_args *a, int64_t g, int64_t i, const int NR,
                                            const int KIND) {
    const int64_t cols = a->cols, nb = cols / 32;
    const int64_t pb = KIND == 0 ? 288 : KIND == 1 ? 320 : 544, header = KIND == 1 ? 64 : 32;
    const int8_t *q[4]; const float *d[4], *s[4]; const int32_t *sum[4];
    __m512 acc[4];
    for (int k = 0; k < NR; k++) {
        q[k] = (const int8_t *)TK_XROW(a, i, k);
        d[k] = tk_q8_0_d(q[k], cols); s[k] = tk_q8_0_s(q[k], cols); sum[k] = tk_q8_0_sum(q[k], cols);
        acc[k] = _mm512_setzero_ps();
    }
    const __m512i m4 = _mm512_set1_epi8(0x0F);
    const uint8_t *p = (const uint8_t *)a->packed + (size_t)(g * nb) * (size_t)pb;
    for (int64_t b = 0; b < nb; b++, p += pb) {
        for (int64_t o = 0; o < pb; o += 64) _mm_prefetch((const char *)p + TK_PREFETCH + o, _MM_HINT_T0);
        __m512i wv[8];
        if (KIND == 2) {
            for (int c = 0; c < 8; c++) wv[c] = _mm512_loadu_si512(p + header + 64 * c);
        } else {
            for (int c = 0; c < 4; c++) {
                const __m512i v = _mm512_loadu_si512(p + header + 64 * c);
                wv[c] = _mm512_and_si512(v, m4);
                wv[4 + c] = _mm512_and_si512(_mm512_srli_epi16(v, 4), m4);
            }
        }
        const __m512 dv = _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)p));
        const __m512 mv = KIND == 1 ? _mm512_cvtph_ps(_mm256_loadu_si256((const __m256i *)(p + 32))) : _mm512_setzero_ps();
        for (int k = 0; k < NR; k++) {
            const int32_t *qa = (const int32_t *)(q[k] + 32 * b);   // activation dwords
            // wv[c] holds elements 4c..4c+3 of each row (Q4: c ≥ 4 are the high nibbles), as dword c of the block;
            // four independent dpbusd chains (integer sums: the same result in any order) hide its latency
            __m512i s0 = _mm512_set1_epi32(KIND == 0 ? -8 * sum[k][b] : KIND == 2 ? -128 * sum[k][b] : 0);
            __m512i s1 = _mm512_setzero_si512(), s2 = _mm512_setzero_si512(), s3 = _mm512_setzero_si512();
            s0 = _mm512_dpbusd_epi32(s0, wv[0], _mm512_set1_epi32(qa[0]));
            s1 = _mm512_dpbusd_epi32(s1, wv[1], _mm512_set1_epi32(qa[1]));
            s2 = _mm512_dpbusd_epi32(s2, wv[2], _mm512_set1_epi32(qa[2]));
            s3 = _mm512_dpbusd_epi32(s3, wv[3], _mm512_set1_epi32(qa[3]));
            s0 = _mm512_dpbusd_epi32(s0, wv[4], _mm512_set1_epi32(qa[4]));
            s1 = _mm512_dpbusd_epi32(s1, wv[5], _mm512_set1_epi32(qa[5]));
            s2 = _mm512_dpbusd_epi32(s2, wv[6], _mm512_set1_epi32(qa[6]));
            s3 = _mm512_dpbusd_epi32(s3, wv[7], _mm512_set1_epi32(qa[7]));
            const __m512i isum = _mm512_add_epi32(_mm512_add_epi32(s0, s1), _mm512_add_epi32(s2, s3));
            const __m512 scale = _mm512_mul_ps(dv, _mm512_set1_ps(d[k][b]));
            acc[k] = _mm512_add_ps(acc[k], _mm512_mul_ps(_mm512_cvtepi32_ps(isum), scale));
            if (KIND == 1) acc[k] = _mm512_add_ps(acc[k], _mm512_mul_ps(mv, _mm512_set1_ps(s[k][b])));
        }
    }
    for (int k = 0; k < NR; k++) {
        float *y = &TK_Y(a, i, k, 16 * g, 0);
        _mm512_storeu_ps(y, a->accumulate ? _mm512_add_ps(_mm512_loadu_ps(y), acc[k]) : acc[k]);
    }
}

#define TK_PACKED_DRIVER(target, name, tile, NR)                                       \
    static target void name(const tk_matmul_args *a, int64_t g0, int64_t g1) {         \
        for (int64_t g = g0; g < g1; g++) {                                            \
            for (int64_t i = 0; i < a->n; i += (NR)) {                                 \
                switch (a->n - i < (NR) ? a->n - i : (NR)) {                           \
                case 1: tile(a, g, i, 1); break;                                       \
                case 2: tile(a, g, i, 2); break;                                       \
                case 3: tile(a, g, i, 3); break;                                       \
                default: tile(a, g, i, 4); break;                                      \
                }                                                                      \
            }                                                                          \
        }                                                                              \
    }

#define Q4_0_X16_512(a, g, i, NR) packed_tile_avx512(a, g, i, NR, 0)
#define Q4_1_X16_512(a, g, i, NR) packed_tile_avx512(a, g, i, NR, 1)
#define Q8_0_X16_512(a, g, i, NR) packed_tile_avx512(a, g, i, NR, 2)
TK_PACKED_DRIVER(TK_AVX512, q4_0_x16_avx512, Q4_0_X16_512, 4)
TK_PACKED_DRIVER(TK_AVX512, q4_1_x16_avx512, Q4_1_X16_512, 4)
TK_PACKED_DRIVER(TK_AVX512, q8_0_x16_avx512, Q8_0_X16_512, 4)

TK_AVX512 void tk_matmul_packed_avx512(const tk_matmul_args *a, int64_t g0, int64_t g1) {
    switch (a->type) {
    case TK_Q4_0: q4_0_x16_avx512(a, g0, g1); break;
    case TK_Q4_1: q4_1_x16_avx512(a, g0, g1); break;
    default: q8_0_x16_avx512(a, g0, g1); break;
    }
}

// MARK: - AVX2: each group as two halves of 8 rows (bytes 0..31 and 32..63 of every chunk)

TK_INLINE TK_AVX2 void packed_tile_avx2(const tk_matmul_args *a, int64_t g, int64_t i, const int NR, const int KIND) {
    const int64_t cols = a->cols, nb = cols / 32;
    const int64_t pb = KIND == 0 ? 288 : KIND == 1 ? 320 : 544, header = KIND == 1 ? 64 : 32;
    const int8_t *q[4]; const float *d[4], *s[4]; const int32_t *sum[4];
    for (int k = 0; k < NR; k++) {
        q[k] = (const int8_t *)TK_XROW(a, i, k);
        d[k] = tk_q8_0_d(q[k], cols); s[k] = tk_q8_0_s(q[k], cols); sum[k] = tk_q8_0_sum(q[k], cols);
    }
    const __m256i m4 = _mm256_set1_epi8(0x0F), ones = _mm256_set1_epi16(1), flip = _mm256_set1_epi8((char)0x80);
    for (int h = 0; h < 2; h++) {
        __m256 acc[4];
        for (int k = 0; k < NR; k++) acc[k] = _mm256_setzero_ps();
        const uint8_t *p = (const uint8_t *)a->packed + (size_t)(g * nb) * (size_t)pb;
        for (int64_t b = 0; b < nb; b++, p += pb) {
            if (h == 0) for (int64_t o = 0; o < pb; o += 64) _mm_prefetch((const char *)p + TK_PREFETCH + o, _MM_HINT_T0);
            __m256i wv[8], wa[8];
            if (KIND == 2) {   // back to signed q; |q| and sign for maddubs (no overflow: 128 · 127 · 2 < 2^15)
                for (int c = 0; c < 8; c++) {
                    wv[c] = _mm256_xor_si256(_mm256_loadu_si256((const __m256i *)(p + header + 64 * c + 32 * h)), flip);
                    wa[c] = _mm256_abs_epi8(wv[c]);
                }
            } else {
                for (int c = 0; c < 4; c++) {
                    const __m256i v = _mm256_loadu_si256((const __m256i *)(p + header + 64 * c + 32 * h));
                    wv[c] = _mm256_and_si256(v, m4);
                    wv[4 + c] = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                }
            }
            const __m256 dv = _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 16 * h)));
            const __m256 mv = KIND == 1 ? _mm256_cvtph_ps(_mm_loadu_si128((const __m128i *)(p + 32 + 16 * h)))
                                        : _mm256_setzero_ps();
            for (int k = 0; k < NR; k++) {
                const int32_t *qa = (const int32_t *)(q[k] + 32 * b);
                __m256i isum = _mm256_set1_epi32(KIND == 0 ? -8 * sum[k][b] : 0);
                for (int c = 0; c < 8; c++) {
                    const __m256i av = _mm256_set1_epi32(qa[c]);   // elements 4c..4c+3, as wv[c] holds them
                    __m256i p16;
                    if (KIND == 2) p16 = _mm256_maddubs_epi16(wa[c], _mm256_sign_epi8(av, wv[c]));
                    else p16 = _mm256_maddubs_epi16(wv[c], av);
                    isum = _mm256_add_epi32(isum, _mm256_madd_epi16(p16, ones));
                }
                const __m256 scale = _mm256_mul_ps(dv, _mm256_set1_ps(d[k][b]));
                acc[k] = _mm256_add_ps(acc[k], _mm256_mul_ps(_mm256_cvtepi32_ps(isum), scale));
                if (KIND == 1) acc[k] = _mm256_add_ps(acc[k], _mm256_mul_ps(mv, _mm256_set1_ps(s[k][b])));
            }
        }
        for (int k = 0; k < NR; k++) {
            float *y = &TK_Y(a, i, k, 16 * g, 8 * h);
            _mm256_storeu_ps(y, a->accumulate ? _mm256_add_ps(_mm256_loadu_ps(y), acc[k]) : acc[k]);
        }
    }
}

#define Q4_0_X16_256(a, g, i, NR) packed_tile_avx2(a, g, i, NR, 0)
#define Q4_1_X16_256(a, g, i, NR) packed_tile_avx2(a, g, i, NR, 1)
#define Q8_0_X16_256(a, g, i, NR) packed_tile_avx2(a, g, i, NR, 2)
TK_PACKED_DRIVER(TK_AVX2, q4_0_x16_avx2, Q4_0_X16_256, 2)
TK_PACKED_DRIVER(TK_AVX2, q4_1_x16_avx2, Q4_1_X16_256, 2)
TK_PACKED_DRIVER(TK_AVX2, q8_0_x16_avx2, Q8_0_X16_256, 2)

TK_AVX2 void tk_matmul_packed_avx2(const tk_matmul_args *a, int64_t g0, int64_t g1) {
    switch (a->type) {
    case TK_Q4_0: q4_0_x16_avx2(a, g0, g1); break;
    case TK_Q4_1: q4_1_x16_avx2(a, g0, g1); break;
    default: q8_0_x16_avx2(a, g0, g1); break;
    }
}
#endif
