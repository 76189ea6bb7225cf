// INT8 (Q8) KV cache: rows of keys or values quantized per block, and attention of one query head over a range of
// quantized positions as a partial result (online softmax: running max, running sum, unnormalised accumulator),
// per level. tk_attention_combine merges the partials of a split range.
#include "internal.h"
#include <math.h>
#if TK_X86
#include <immintrin.h>
#include "vexp.h"
#include "lanes.h"
#endif

/// Positions scored, exponentiated and accumulated together; the accumulator is rescaled at most once a chunk.
#define TK_KV_CHUNK 16

/// Elements per scale: 32, or the whole head when head_dim is not a multiple of 32.
TK_INLINE int64_t kv_block(int32_t head_dim) { return head_dim % 32 == 0 ? 32 : head_dim; }

size_t tk_kv_q8_row_bytes(int64_t kv_dim, int32_t head_dim) {
    if (head_dim <= 0 || kv_dim <= 0) return 0;
    return ((size_t)kv_dim + 4 * (size_t)(kv_dim / kv_block(head_dim)) + 15) & ~(size_t)15;
}

void tk_kv_q8_quantize(const float *x, int64_t kv_dim, int32_t head_dim, void *dst) {
    const size_t bytes = tk_kv_q8_row_bytes(kv_dim, head_dim);
    if (bytes == 0) return;
    const int64_t B = kv_block(head_dim), nb = kv_dim / B;
    int8_t *q = (int8_t *)dst;
    uint8_t *d = (uint8_t *)dst + kv_dim;
    for (int64_t b = 0; b < nb; b++) {
        const float *xb = x + b * B;
        float amax = 0;
        for (int64_t i = 0; i < B; i++) amax = fmaxf(amax, fabsf(xb[i]));
        const float db = amax / 127.0f;
        for (int64_t i = 0; i < B; i++) q[b * B + i] = db != 0 ? tk_round_q8(xb[i] / db) : 0;
        memcpy(d + 4 * b, &db, 4);
    }
    memset(d + 4 * nb, 0, bytes - (size_t)kv_dim - 4 * (size_t)nb);
}

void tk_kv_q8_dequantize(const void *src, int64_t kv_dim, int32_t head_dim, float *dst) {
    if (tk_kv_q8_row_bytes(kv_dim, head_dim) == 0) return;
    const int64_t B = kv_block(head_dim);
    const int8_t *q = (const int8_t *)src;
    const uint8_t *d = (const uint8_t *)src + kv_dim;
    for (int64_t i = 0; i < kv_dim; i++) dst[i] = tk_f32_at(d + 4 * (i / B)) * (float)q[i];
}

/// One query head against one KV head of a range of rows.
typedef struct {
    const float *q;        ///< [head_dim]
    const uint8_t *k, *v;  ///< the head's int8 elements in the range's first row
    size_t row_bytes;
    int64_t d_offset;      ///< bytes from k (or v) to the head's first block scale in the same row
    int64_t head_dim, block;
    float scale;
} tk_kv_head;

TK_INLINE const uint8_t *kv_row(const uint8_t *base, const tk_kv_head *h, int64_t j) {
    return base + (size_t)j * h->row_bytes;
}

/// The online softmax over positions 0 ..< n of `h`, a chunk at a time, from one level's steps:
/// SCORE(h, j) = Σ_blocks d · Σ q·k of position j; EXPS(s, cn, top) replaces s[c] by exp(s[c] − top) and returns
/// their sum; ACCUM(h, j, cn, p, f, acc) sets acc = f·acc + Σ_c p[c]·v of positions j ..< j + cn.
/// acc starts zeroed; f = exp(old max − new max) (0 for the first chunk, 1 while the max holds).
#define TK_KV_PARTIAL(target, name, SCORE, EXPS, ACCUM)                                         \
    static target void name(const tk_kv_head *h, int64_t phase, int64_t n, float *m, float *l,  \
                            float *acc) {                                                      \
        float top = *m, sum = *l, s[TK_KV_CHUNK];                                              \
        for (int64_t j = 0, cn; j < n; j += cn) {                                              \
            const int64_t room = TK_KV_CHUNK - (phase + j) % TK_KV_CHUNK;                      \
            cn = n - j < room ? n - j : room;                                                  \
            float peak = top;                                                                  \
            for (int c = 0; c < cn; c++) {                                                     \
                s[c] = SCORE(h, j + c) * h->scale;                                             \
                peak = s[c] > peak ? s[c] : peak;                                              \
            }                                                                                  \
            const float f = top == -INFINITY ? 0.0f : expf(top - peak);                        \
            top = peak;                                                                        \
            sum = sum * f + EXPS(s, (int)cn, top);                                             \
            ACCUM(h, j, (int)cn, s, f, acc);                                                   \
        }                                                                                      \
        *m = top;                                                                              \
        *l = sum;                                                                              \
    }

// MARK: - Portable

TK_INLINE float score_portable(const tk_kv_head *h, int64_t j) {
    const uint8_t *row = kv_row(h->k, h, j), *d = row + h->d_offset;
    float total = 0;
    for (int64_t b = 0; b < h->head_dim; b += h->block, d += 4) {
        float t = 0;
        for (int64_t i = b; i < b + h->block; i++) t += h->q[i] * (float)(int8_t)row[i];
        total += t * tk_f32_at(d);
    }
    return total;
}

TK_INLINE float exps_portable(float *s, int cn, float top) {
    float sum = 0;
    for (int c = 0; c < cn; c++) { s[c] = expf(s[c] - top); sum += s[c]; }
    return sum;
}

TK_INLINE void accum_portable(const tk_kv_head *h, int64_t j, int cn, const float *p, float f, float *acc) {
    for (int64_t i = 0; i < h->head_dim; i++) acc[i] *= f;
    for (int c = 0; c < cn; c++) {
        const uint8_t *row = kv_row(h->v, h, j + c), *d = row + h->d_offset;
        for (int64_t b = 0; b < h->head_dim; b += h->block, d += 4) {
            const float w = p[c] * tk_f32_at(d);
            for (int64_t i = b; i < b + h->block; i++) acc[i] += w * (float)(int8_t)row[i];
        }
    }
}

TK_KV_PARTIAL(, partial_portable, score_portable, exps_portable, accum_portable)

#if TK_X86

// MARK: - AVX-512

/// Up to 16 int8 (lanes of `m`) as floats.
TK_INLINE TK_AVX512 __m512 i8x16(const uint8_t *p, __mmask16 m) {
    return _mm512_cvtepi32_ps(_mm512_cvtepi8_epi32(_mm_maskz_loadu_epi8(m, p)));
}

/// c + w · (up to 16 int8 at p as floats).
TK_INLINE TK_AVX512 __m512 axpy16(__m512 c, float w, const uint8_t *p, __mmask16 m) {
    return _mm512_fmadd_ps(_mm512_set1_ps(w), i8x16(p, m), c);
}

TK_INLINE TK_AVX512 float score_avx512(const tk_kv_head *h, int64_t j) {
    const uint8_t *row = kv_row(h->k, h, j), *d = row + h->d_offset;
    __m512 total = _mm512_setzero_ps();
    for (int64_t b = 0; b < h->head_dim; b += h->block, d += 4) {
        __m512 t = _mm512_setzero_ps();
        for (int64_t i = b; i < b + h->block; i += 16) {
            const __mmask16 m = mask16(b + h->block - i);
            t = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, h->q + i), i8x16(row + i, m), t);
        }
        total = _mm512_fmadd_ps(t, _mm512_set1_ps(tk_f32_at(d)), total);
    }
    return _mm512_reduce_add_ps(total);
}

TK_INLINE TK_AVX512 float exps_avx512(float *s, int cn, float top) {
    __m512 sum = _mm512_setzero_ps();
    for (int c = 0; c < cn; c += 16) {
        const __mmask16 m = mask16(cn - c);
        const __m512 x = _mm512_sub_ps(_mm512_maskz_loadu_ps(m, s + c), _mm512_set1_ps(top));
        const __m512 e = _mm512_maskz_mov_ps(m, exp16(x));
        _mm512_mask_storeu_ps(s + c, m, e);
        sum = _mm512_add_ps(sum, e);
    }
    return _mm512_reduce_add_ps(sum);
}

/// 64 accumulator elements at a time in four registers; a 16-element piece never spans two blocks (B = 32 or head_dim).
TK_INLINE TK_AVX512 void accum_avx512(const tk_kv_head *h, int64_t j, int cn, const float *p, float f, float *acc) {
    const int64_t hd = h->head_dim;
    const __m512 fv = _mm512_set1_ps(f);
    for (int64_t d0 = 0; d0 < hd; d0 += 64) {
        const __mmask16 m0 = mask16(hd - d0), m1 = mask16(hd - d0 - 16), m2 = mask16(hd - d0 - 32),
                        m3 = mask16(hd - d0 - 48);
        int64_t o[4];   // byte offsets of the pieces' block scales
        for (int r = 0; r < 4; r++) o[r] = h->d_offset + 4 * (d0 + 16 * r < hd ? (d0 + 16 * r) / h->block : 0);
        __m512 c0 = _mm512_mul_ps(fv, _mm512_maskz_loadu_ps(m0, acc + d0));
        __m512 c1 = _mm512_mul_ps(fv, _mm512_maskz_loadu_ps(m1, acc + d0 + 16));
        __m512 c2 = _mm512_mul_ps(fv, _mm512_maskz_loadu_ps(m2, acc + d0 + 32));
        __m512 c3 = _mm512_mul_ps(fv, _mm512_maskz_loadu_ps(m3, acc + d0 + 48));
        for (int c = 0; c < cn; c++) {
            const uint8_t *row = kv_row(h->v, h, j + c), *vi = row + d0;
            c0 = axpy16(c0, p[c] * tk_f32_at(row + o[0]), vi, m0);
            if (hd - d0 > 16) c1 = axpy16(c1, p[c] * tk_f32_at(row + o[1]), vi + 16, m1);
            if (hd - d0 > 32) c2 = axpy16(c2, p[c] * tk_f32_at(row + o[2]), vi + 32, m2);
            if (hd - d0 > 48) c3 = axpy16(c3, p[c] * tk_f32_at(row + o[3]), vi + 48, m3);
        }
        _mm512_mask_storeu_ps(acc + d0, m0, c0);
        _mm512_mask_storeu_ps(acc + d0 + 16, m1, c1);
        _mm512_mask_storeu_ps(acc + d0 + 32, m2, c2);
        _mm512_mask_storeu_ps(acc + d0 + 48, m3, c3);
    }
}

TK_KV_PARTIAL(TK_AVX512, partial_avx512, score_avx512, exps_avx512, accum_avx512)

// MARK: - AVX2

/// The first min(rest, 8) int8 at p as floats, zeros after (no byte past them is read).
TK_INLINE TK_AVX2 __m256 i8x8(const uint8_t *p, int64_t rest) {
    __m128i b;
    if (rest >= 8) {
        b = _mm_loadl_epi64((const __m128i *)p);
    } else {
        uint8_t tmp[8] = {0};
        memcpy(tmp, p, rest > 0 ? (size_t)rest : 0);
        b = _mm_loadl_epi64((const __m128i *)tmp);
    }
    return _mm256_cvtepi32_ps(_mm256_cvtepi8_epi32(b));
}

/// c + w · (the first min(rest, 8) int8 at p as floats).
TK_INLINE TK_AVX2 __m256 axpy8(__m256 c, float w, const uint8_t *p, int64_t rest) {
    return _mm256_fmadd_ps(_mm256_set1_ps(w), i8x8(p, rest), c);
}

TK_INLINE TK_AVX2 float score_avx2(const tk_kv_head *h, int64_t j) {
    const uint8_t *row = kv_row(h->k, h, j), *d = row + h->d_offset;
    __m256 total = _mm256_setzero_ps();
    for (int64_t b = 0; b < h->head_dim; b += h->block, d += 4) {
        __m256 t = _mm256_setzero_ps();
        for (int64_t i = b; i < b + h->block; i += 8) {
            const int64_t rest = b + h->block - i;
            const __m256 qv = rest >= 8 ? _mm256_loadu_ps(h->q + i) : _mm256_maskload_ps(h->q + i, mask8(rest));
            t = _mm256_fmadd_ps(qv, i8x8(row + i, rest), t);
        }
        total = _mm256_fmadd_ps(t, _mm256_set1_ps(tk_f32_at(d)), total);
    }
    return hsum8(total);
}

TK_INLINE TK_AVX2 float exps_avx2(float *s, int cn, float top) {
    __m256 sum = _mm256_setzero_ps();
    for (int c = 0; c < cn; c += 8) {
        const __m256i m = mask8(cn - c);
        const __m256 x = _mm256_sub_ps(_mm256_maskload_ps(s + c, m), _mm256_set1_ps(top));
        const __m256 e = _mm256_and_ps(exp8(x), _mm256_castsi256_ps(m));
        _mm256_maskstore_ps(s + c, m, e);
        sum = _mm256_add_ps(sum, e);
    }
    return hsum8(sum);
}

/// 32 accumulator elements at a time in four registers; an 8-element piece never spans two blocks.
TK_INLINE TK_AVX2 void accum_avx2(const tk_kv_head *h, int64_t j, int cn, const float *p, float f, float *acc) {
    const int64_t hd = h->head_dim;
    const __m256 fv = _mm256_set1_ps(f);
    for (int64_t d0 = 0; d0 < hd; d0 += 32) {
        const __m256i m0 = mask8(hd - d0), m1 = mask8(hd - d0 - 8), m2 = mask8(hd - d0 - 16),
                      m3 = mask8(hd - d0 - 24);
        int64_t o[4];   // byte offsets of the pieces' block scales
        for (int r = 0; r < 4; r++) o[r] = h->d_offset + 4 * (d0 + 8 * r < hd ? (d0 + 8 * r) / h->block : 0);
        __m256 c0 = _mm256_mul_ps(fv, _mm256_maskload_ps(acc + d0, m0));
        __m256 c1 = _mm256_mul_ps(fv, _mm256_maskload_ps(acc + d0 + 8, m1));
        __m256 c2 = _mm256_mul_ps(fv, _mm256_maskload_ps(acc + d0 + 16, m2));
        __m256 c3 = _mm256_mul_ps(fv, _mm256_maskload_ps(acc + d0 + 24, m3));
        for (int c = 0; c < cn; c++) {
            const uint8_t *row = kv_row(h->v, h, j + c), *vi = row + d0;
            c0 = axpy8(c0, p[c] * tk_f32_at(row + o[0]), vi, hd - d0);
            if (hd - d0 > 8) c1 = axpy8(c1, p[c] * tk_f32_at(row + o[1]), vi + 8, hd - d0 - 8);
            if (hd - d0 > 16) c2 = axpy8(c2, p[c] * tk_f32_at(row + o[2]), vi + 16, hd - d0 - 16);
            if (hd - d0 > 24) c3 = axpy8(c3, p[c] * tk_f32_at(row + o[3]), vi + 24, hd - d0 - 24);
        }
        _mm256_maskstore_ps(acc + d0, m0, c0);
        _mm256_maskstore_ps(acc + d0 + 8, m1, c1);
        _mm256_maskstore_ps(acc + d0 + 16, m2, c2);
        _mm256_maskstore_ps(acc + d0 + 24, m3, c3);
    }
}

TK_KV_PARTIAL(TK_AVX2, partial_avx2, score_avx2, exps_avx2, accum_avx2)
#endif

// MARK: - Entry points

void tk_attention_q8_partial(const float *q, const void *keys, const void *values, int64_t j0, int64_t j1,
                             size_t row_bytes, int64_t kv_dim, int32_t head_dim, int32_t kv_head, float scale,
                             float *m, float *l, float *acc, int32_t resume) {
    if (head_dim <= 0) return;
    if (!resume) {
        for (int32_t i = 0; i < head_dim; i++) acc[i] = 0;
        *m = -INFINITY;
        *l = 0;
    }
    if (j1 <= j0) return;
    const int64_t B = kv_block(head_dim), off = (int64_t)kv_head * head_dim;
    const tk_kv_head h = {
        .q = q, .k = (const uint8_t *)keys + (size_t)j0 * row_bytes + off,
        .v = (const uint8_t *)values + (size_t)j0 * row_bytes + off, .row_bytes = row_bytes,
        .d_offset = kv_dim - off + 4 * (off / B), .head_dim = head_dim, .block = B, .scale = scale,
    };
    void (*partial)(const tk_kv_head *, int64_t, int64_t, float *, float *, float *) = partial_portable;
#if TK_X86
    switch (tk_cpu_level()) {
    case TK_LEVEL_AVX512: partial = partial_avx512; break;
    case TK_LEVEL_AVX2: partial = partial_avx2; break;
    default: break;
    }
#endif
    partial(&h, j0, j1 - j0, m, l, acc);
}

void tk_attention_combine(const float *m, const float *l, const float *acc, int32_t parts, int32_t head_dim,
                          int64_t part_stride, int64_t acc_stride, float *out) {
    if (parts <= 0 || head_dim <= 0) return;
    float top = m[0], sum = 0;
    for (int32_t p = 1; p < parts; p++) top = m[p * part_stride] > top ? m[p * part_stride] : top;
    for (int32_t p = 0; p < parts; p++) {
        const float w = expf(m[p * part_stride] - top);   // an empty split (m = −inf) weighs 0
        const float *a = acc + (int64_t)p * acc_stride;
        sum += l[p * part_stride] * w;
        // part 0 reads each element before writing it, so out may be acc
        if (p == 0) for (int32_t d = 0; d < head_dim; d++) out[d] = w * a[d];
        else for (int32_t d = 0; d < head_dim; d++) out[d] += w * a[d];
    }
    const float inv = sum > 0 ? 1.0f / sum : 0.0f;
    for (int32_t d = 0; d < head_dim; d++) out[d] *= inv;
}
