// Attention of one query position over cached keys and values (the fast path): FMA dot products, a vectorised
// softmax and the weighted value sum kept in registers, per level. Same contract as TesseraKernels.attention.
#include "internal.h"
#include <math.h>
#if TK_X86
#include <immintrin.h>
#include "vexp.h"
#include "lanes.h"
#endif

// MARK: - Portable

/// One KV head's rows of a span: positions first ..< first + length of a block table (block b holds positions
/// b·block_size ..< (b+1)·block_size; its keys at blocks[2b], its values at blocks[2b+1]), rows `stride` floats
/// apart inside a block, the head `offset` floats into a row.
typedef struct {
    const void *const *blocks;
    int64_t block_size, first, stride, offset;
} tk_span;

/// The run of rows from span row j to the end of its block, at most `left`: its length, and the keys and values of
/// its first row. A one-block table (a dense cache) is a single run.
TK_INLINE int64_t span_run(const tk_span *s, int64_t j, int64_t left, const float **k, const float **v) {
    const int64_t a = s->first + j, b = a / s->block_size, r = a - b * s->block_size;
    *k = (const float *)s->blocks[2 * b] + s->offset + r * s->stride;
    *v = (const float *)s->blocks[2 * b + 1] + s->offset + r * s->stride;
    return s->block_size - r < left ? s->block_size - r : left;
}

static void head_portable(const float *q, const tk_span *sp, int64_t length, int64_t hd, float scale, float *p,
                          float *out) {
    const int64_t stride = sp->stride;
    float peak = -INFINITY, sum = 0;
    for (int64_t j = 0; j < length;) {
        const float *k, *v;
        for (int64_t t = 0, n = span_run(sp, j, length - j, &k, &v); t < n; t++, j++) {
            float s = 0;
            for (int64_t d = 0; d < hd; d++) s += q[d] * k[t * stride + d];
            p[j] = s * scale;
            peak = p[j] > peak ? p[j] : peak;
        }
    }
    for (int64_t j = 0; j < length; j++) { p[j] = expf(p[j] - peak); sum += p[j]; }
    for (int64_t d = 0; d < hd; d++) out[d] = 0;
    for (int64_t j = 0; j < length;) {
        const float *k, *v;
        for (int64_t t = 0, n = span_run(sp, j, length - j, &k, &v); t < n; t++, j++) {
            const float w = p[j] / sum;
            for (int64_t d = 0; d < hd; d++) out[d] += w * v[t * stride + d];
        }
    }
}

#if TK_X86

// MARK: - AVX-512

/// q · k over hd floats: FMA in two accumulators, masked tail.
TK_INLINE TK_AVX512 float dot_avx512(const float *q, const float *kj, int64_t hd) {
    __m512 a0 = _mm512_setzero_ps(), a1 = _mm512_setzero_ps();
    int64_t d = 0;
    for (; d + 32 <= hd; d += 32) {
        a0 = _mm512_fmadd_ps(_mm512_loadu_ps(q + d), _mm512_loadu_ps(kj + d), a0);
        a1 = _mm512_fmadd_ps(_mm512_loadu_ps(q + d + 16), _mm512_loadu_ps(kj + d + 16), a1);
    }
    for (; d < hd; d += 16) {
        const __mmask16 m = mask16(hd - d);
        a0 = _mm512_fmadd_ps(_mm512_maskz_loadu_ps(m, q + d), _mm512_maskz_loadu_ps(m, kj + d), a0);
    }
    return _mm512_reduce_add_ps(_mm512_add_ps(a0, a1));
}

static TK_AVX512 void head_avx512(const float *q, const tk_span *sp, int64_t length, int64_t hd, float scale,
                                  float *p, float *out) {
    const int64_t stride = sp->stride;
    __m512 peak = _mm512_set1_ps(-INFINITY);
    for (int64_t j = 0; j < length;) {
        const float *k, *v;
        for (int64_t t = 0, n = span_run(sp, j, length - j, &k, &v); t < n; t++, j++) {
            p[j] = dot_avx512(q, k + t * stride, hd) * scale;
        }
    }
    for (int64_t j = 0; j < length; j += 16) peak = _mm512_max_ps(peak, _mm512_mask_loadu_ps(peak, mask16(length - j), p + j));
    const __m512 top = _mm512_set1_ps(_mm512_reduce_max_ps(peak));
    __m512 sum = _mm512_setzero_ps();
    for (int64_t j = 0; j < length; j += 16) {
        const __mmask16 m = mask16(length - j);
        const __m512 e = _mm512_maskz_mov_ps(m, exp16(_mm512_sub_ps(_mm512_maskz_loadu_ps(m, p + j), top)));
        _mm512_mask_storeu_ps(p + j, m, e);
        sum = _mm512_add_ps(sum, e);
    }
    const __m512 inv = _mm512_set1_ps(1.0f / _mm512_reduce_add_ps(sum));
    for (int64_t d0 = 0; d0 < hd; d0 += 64) {   // 64 output values at a time in four registers
        const __mmask16 m0 = mask16(hd - d0), m1 = mask16(hd - d0 - 16), m2 = mask16(hd - d0 - 32), m3 = mask16(hd - d0 - 48);
        __m512 c0 = _mm512_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
        for (int64_t j = 0; j < length;) {
            const float *k, *v;
            for (int64_t t = 0, n = span_run(sp, j, length - j, &k, &v); t < n; t++, j++) {
                const __m512 w = _mm512_set1_ps(p[j]);
                const float *vj = v + t * stride + d0;
                c0 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m0, vj), c0);
                if (hd - d0 > 16) c1 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m1, vj + 16), c1);
                if (hd - d0 > 32) c2 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m2, vj + 32), c2);
                if (hd - d0 > 48) c3 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m3, vj + 48), c3);
            }
        }
        _mm512_mask_storeu_ps(out + d0, m0, _mm512_mul_ps(c0, inv));
        if (hd - d0 > 16) _mm512_mask_storeu_ps(out + d0 + 16, m1, _mm512_mul_ps(c1, inv));
        if (hd - d0 > 32) _mm512_mask_storeu_ps(out + d0 + 32, m2, _mm512_mul_ps(c2, inv));
        if (hd - d0 > 48) _mm512_mask_storeu_ps(out + d0 + 48, m3, _mm512_mul_ps(c3, inv));
    }
}

// MARK: - AVX2

/// q · k over hd floats: FMA in two accumulators, masked tail.
TK_INLINE TK_AVX2 float dot_avx2(const float *q, const float *kj, int64_t hd) {
    __m256 a0 = _mm256_setzero_ps(), a1 = _mm256_setzero_ps();
    int64_t d = 0;
    for (; d + 16 <= hd; d += 16) {
        a0 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d), _mm256_loadu_ps(kj + d), a0);
        a1 = _mm256_fmadd_ps(_mm256_loadu_ps(q + d + 8), _mm256_loadu_ps(kj + d + 8), a1);
    }
    for (; d < hd; d += 8) {
        const __m256i m = mask8(hd - d);
        a0 = _mm256_fmadd_ps(_mm256_maskload_ps(q + d, m), _mm256_maskload_ps(kj + d, m), a0);
    }
    return hsum8(_mm256_add_ps(a0, a1));
}

static TK_AVX2 void head_avx2(const float *q, const tk_span *sp, int64_t length, int64_t hd, float scale, float *p,
                              float *out) {
    const int64_t stride = sp->stride;
    float peak = -INFINITY, sum = 0;
    for (int64_t j = 0; j < length;) {
        const float *k, *v;
        for (int64_t t = 0, n = span_run(sp, j, length - j, &k, &v); t < n; t++, j++) {
            p[j] = dot_avx2(q, k + t * stride, hd) * scale;
            peak = p[j] > peak ? p[j] : peak;
        }
    }
    int64_t j = 0;
    for (; j + 8 <= length; j += 8) {
        const __m256 e = exp8(_mm256_sub_ps(_mm256_loadu_ps(p + j), _mm256_set1_ps(peak)));
        _mm256_storeu_ps(p + j, e);
        sum += hsum8(e);
    }
    for (; j < length; j++) { p[j] = expf(p[j] - peak); sum += p[j]; }
    const __m256 inv = _mm256_set1_ps(1.0f / sum);
    for (int64_t d0 = 0; d0 < hd; d0 += 32) {   // 32 output values at a time in four registers
        const __m256i m0 = mask8(hd - d0), m1 = mask8(hd - d0 - 8), m2 = mask8(hd - d0 - 16), m3 = mask8(hd - d0 - 24);
        __m256 c0 = _mm256_setzero_ps(), c1 = c0, c2 = c0, c3 = c0;
        for (int64_t i = 0; i < length;) {
            const float *k, *v;
            for (int64_t t = 0, n = span_run(sp, i, length - i, &k, &v); t < n; t++, i++) {
                const __m256 w = _mm256_set1_ps(p[i]);
                const float *vi = v + t * stride + d0;
                c0 = _mm256_fmadd_ps(w, _mm256_maskload_ps(vi, m0), c0);
                if (hd - d0 > 8) c1 = _mm256_fmadd_ps(w, _mm256_maskload_ps(vi + 8, m1), c1);
                if (hd - d0 > 16) c2 = _mm256_fmadd_ps(w, _mm256_maskload_ps(vi + 16, m2), c2);
                if (hd - d0 > 24) c3 = _mm256_fmadd_ps(w, _mm256_maskload_ps(vi + 24, m3), c3);
            }
        }
        _mm256_maskstore_ps(out + d0, m0, _mm256_mul_ps(c0, inv));
        if (hd - d0 > 8) _mm256_maskstore_ps(out + d0 + 8, m1, _mm256_mul_ps(c1, inv));
        if (hd - d0 > 16) _mm256_maskstore_ps(out + d0 + 16, m2, _mm256_mul_ps(c2, inv));
        if (hd - d0 > 24) _mm256_maskstore_ps(out + d0 + 24, m3, _mm256_mul_ps(c3, inv));
    }
}
#endif

void tk_attention(const float *query, const void *const *blocks, int64_t block_size, int64_t first, int64_t length,
                  int64_t kv_stride, int64_t head_stride, int32_t heads, int32_t kv_heads, int32_t head_dim,
                  float scale, float *scores, float *output) {
    if (length <= 0 || block_size <= 0 || heads <= 0 || kv_heads <= 0 || head_dim <= 0) return;
    void (*head)(const float *, const tk_span *, int64_t, int64_t, float, float *, float *) = head_portable;
#if TK_X86
    switch (tk_cpu_level()) {
    case TK_LEVEL_AVX512: head = head_avx512; break;
    case TK_LEVEL_AVX2: head = head_avx2; break;
    default: break;
    }
#endif
    const int32_t group = heads / kv_heads;
    for (int32_t h = 0; h < heads; h++) {
        const tk_span span = { .blocks = blocks, .block_size = block_size, .first = first, .stride = kv_stride,
                               .offset = (int64_t)(h / group) * head_stride };
        head(query + (int64_t)h * head_dim, &span, length, head_dim, scale, scores, output + (int64_t)h * head_dim);
    }
}

// MARK: - Partial attention with an online softmax (chunks of positions; no score array)

/// Positions scored at a time before the running max, sum and accumulator are updated.
enum { TK_ATT_CHUNK = 16 };

/// One chunk (count ≤ TK_ATT_CHUNK positions from k/v) of one head's online softmax: updates the running max *m,
/// sum *l and unnormalised output acc[hd].
static void chunk_portable(const float *q, const float *k, const float *v, int64_t count, int64_t stride, int64_t hd,
                           float scale, float *mo, float *lo, float *acc) {
    float s[TK_ATT_CHUNK], top = *mo;
    for (int64_t t = 0; t < count; t++) {
        float dot = 0;
        for (int64_t d = 0; d < hd; d++) dot += q[d] * k[t * stride + d];
        s[t] = dot * scale;
        top = s[t] > top ? s[t] : top;
    }
    const float correction = expf(*mo - top);
    float l = *lo * correction;
    for (int64_t d = 0; d < hd; d++) acc[d] *= correction;
    for (int64_t t = 0; t < count; t++) {
        const float p = expf(s[t] - top);
        l += p;
        for (int64_t d = 0; d < hd; d++) acc[d] += p * v[t * stride + d];
    }
    *mo = top; *lo = l;
}

#if TK_X86

/// The sums of 16 vectors as one vector (lane t = Σ v[t]): a transpose-and-add tree, about 3 operations per
/// vector instead of a full horizontal reduction each.
TK_INLINE TK_AVX512 __m512 sum16x16(const __m512 v[16]) {
    __m512 w[8], x[4];
    for (int i = 0; i < 8; i++) {   // per 128-bit lane: v2i and v2i+1 partial sums, interleaved
        w[i] = _mm512_add_ps(_mm512_unpacklo_ps(v[2 * i], v[2 * i + 1]), _mm512_unpackhi_ps(v[2 * i], v[2 * i + 1]));
    }
    for (int i = 0; i < 4; i++) {   // per 128-bit lane: that lane's sums of v4i .. v4i+3
        x[i] = _mm512_add_ps(_mm512_shuffle_ps(w[2 * i], w[2 * i + 1], _MM_SHUFFLE(1, 0, 1, 0)),
                             _mm512_shuffle_ps(w[2 * i], w[2 * i + 1], _MM_SHUFFLE(3, 2, 3, 2)));
    }
    const __m512 y = _mm512_add_ps(_mm512_shuffle_f32x4(x[0], x[1], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_f32x4(x[0], x[1], _MM_SHUFFLE(3, 1, 3, 1)));
    const __m512 z = _mm512_add_ps(_mm512_shuffle_f32x4(x[2], x[3], _MM_SHUFFLE(2, 0, 2, 0)),
                                   _mm512_shuffle_f32x4(x[2], x[3], _MM_SHUFFLE(3, 1, 3, 1)));
    return _mm512_add_ps(_mm512_shuffle_f32x4(y, z, _MM_SHUFFLE(2, 0, 2, 0)),
                         _mm512_shuffle_f32x4(y, z, _MM_SHUFFLE(3, 1, 3, 1)));
}

/// q · k of `count` (≤ 16) consecutive key rows from `k`, `stride` floats apart; lanes from `count` on are 0.
/// Head sizes that are a multiple of 16 up to 128 keep the query in registers and each row's sum in one register.
TK_INLINE TK_AVX512 __m512 dots16_avx512(const float *q, const float *k, int64_t count, int64_t stride, int64_t hd) {
    __m512 a[16];
    if (hd % 16 == 0 && hd <= 128) {
        const int blocks = (int)(hd / 16);
        __m512 qv[8];
        for (int b = 0; b < blocks; b++) qv[b] = _mm512_loadu_ps(q + 16 * b);
        for (int t = 0; t < 16; t++) {
            if (t >= count) { a[t] = _mm512_setzero_ps(); continue; }
            const float *kt = k + t * stride;
            __m512 x = _mm512_mul_ps(qv[0], _mm512_loadu_ps(kt)), y = _mm512_setzero_ps();
            for (int b = 1; b < blocks; b += 2) {
                y = _mm512_fmadd_ps(qv[b], _mm512_loadu_ps(kt + 16 * b), y);
                if (b + 1 < blocks) x = _mm512_fmadd_ps(qv[b + 1], _mm512_loadu_ps(kt + 16 * (b + 1)), x);
            }
            a[t] = _mm512_add_ps(x, y);
        }
        return sum16x16(a);
    }
    for (int t = 0; t < 16; t++) a[t] = _mm512_setzero_ps();
    for (int64_t d = 0; d < hd; d += 16) {
        const __mmask16 mk = mask16(hd - d);
        const __m512 qd = _mm512_maskz_loadu_ps(mk, q + d);
        for (int64_t t = 0; t < count; t++) a[t] = _mm512_fmadd_ps(qd, _mm512_maskz_loadu_ps(mk, k + t * stride + d), a[t]);
    }
    return sum16x16(a);
}

static TK_AVX512 void chunk_avx512(const float *q, const float *k, const float *v, int64_t count, int64_t stride,
                                   int64_t hd, float scale, float *mo, float *lo, float *acc) {
    float s[TK_ATT_CHUNK] __attribute__((aligned(64)));
    const __mmask16 live = mask16(count);
    const __m512 sv = _mm512_mask_mov_ps(_mm512_set1_ps(-INFINITY), live,
                                         _mm512_mul_ps(dots16_avx512(q, k, count, stride, hd), _mm512_set1_ps(scale)));
    const float chunkTop = _mm512_reduce_max_ps(sv), top = chunkTop > *mo ? chunkTop : *mo;
    const float correction = expf(*mo - top);
    const __m512 p = _mm512_maskz_mov_ps(live, exp16(_mm512_sub_ps(sv, _mm512_set1_ps(top))));
    _mm512_store_ps(s, p);
    *lo = *lo * correction + _mm512_reduce_add_ps(p);
    *mo = top;
    const __m512 c = _mm512_set1_ps(correction);
    for (int64_t d0 = 0; d0 < hd; d0 += 64) {   // 64 outputs in four registers: four independent FMA chains
        const __mmask16 m0 = mask16(hd - d0), m1 = mask16(hd - d0 - 16), m2 = mask16(hd - d0 - 32),
                        m3 = mask16(hd - d0 - 48);
        __m512 a0 = _mm512_mul_ps(_mm512_maskz_loadu_ps(m0, acc + d0), c);
        __m512 a1 = _mm512_mul_ps(_mm512_maskz_loadu_ps(m1, acc + d0 + 16), c);
        __m512 a2 = _mm512_mul_ps(_mm512_maskz_loadu_ps(m2, acc + d0 + 32), c);
        __m512 a3 = _mm512_mul_ps(_mm512_maskz_loadu_ps(m3, acc + d0 + 48), c);
        for (int64_t t = 0; t < count; t++) {
            const __m512 w = _mm512_set1_ps(s[t]);
            const float *vt = v + t * stride + d0;
            a0 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m0, vt), a0);
            a1 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m1, vt + 16), a1);
            a2 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m2, vt + 32), a2);
            a3 = _mm512_fmadd_ps(w, _mm512_maskz_loadu_ps(m3, vt + 48), a3);
        }
        _mm512_mask_storeu_ps(acc + d0, m0, a0);
        _mm512_mask_storeu_ps(acc + d0 + 16, m1, a1);
        _mm512_mask_storeu_ps(acc + d0 + 32, m2, a2);
        _mm512_mask_storeu_ps(acc + d0 + 48, m3, a3);
    }
}

static TK_AVX2 void chunk_avx2(const float *q, const float *k, const float *v, int64_t count, int64_t stride,
                               int64_t hd, float scale, float *mo, float *lo, float *acc) {
    float s[TK_ATT_CHUNK] __attribute__((aligned(32))), top = *mo;
    for (int64_t t = 0; t < count; t++) {
        s[t] = dot_avx2(q, k + t * stride, hd) * scale;
        top = s[t] > top ? s[t] : top;
    }
    const float correction = expf(*mo - top);
    float sum = 0;
    for (int64_t t = 0; t < count; t += 8) {
        const __m256i live = mask8(count - t);
        const __m256 e = _mm256_and_ps(_mm256_castsi256_ps(live),
                                       exp8(_mm256_sub_ps(_mm256_maskload_ps(s + t, live), _mm256_set1_ps(top))));
        _mm256_maskstore_ps(s + t, live, e);
        sum += hsum8(e);
    }
    *lo = *lo * correction + sum;
    *mo = top;
    const __m256 c = _mm256_set1_ps(correction);
    for (int64_t d = 0; d < hd; d += 8) {
        const __m256i mk = mask8(hd - d);
        __m256 a = _mm256_mul_ps(_mm256_maskload_ps(acc + d, mk), c);
        for (int64_t t = 0; t < count; t++) {
            a = _mm256_fmadd_ps(_mm256_set1_ps(s[t]), _mm256_maskload_ps(v + t * stride + d, mk), a);
        }
        _mm256_maskstore_ps(acc + d, mk, a);
    }
}
#endif

void tk_attention_partial(const float *q, int32_t group, const float *keys, const float *values, int64_t j0,
                          int64_t j1, int64_t stride, int32_t head_dim, float scale, float *m, float *l, float *acc,
                          int32_t resume) {
    void (*chunk)(const float *, const float *, const float *, int64_t, int64_t, int64_t, float, float *, float *,
                  float *) = chunk_portable;
#if TK_X86
    switch (tk_cpu_level()) {
    case TK_LEVEL_AVX512: chunk = chunk_avx512; break;
    case TK_LEVEL_AVX2: chunk = chunk_avx2; break;
    default: break;
    }
#endif
    for (int32_t g = 0; g < group && !resume; g++) {
        m[g] = -INFINITY; l[g] = 0;
        for (int32_t d = 0; d < head_dim; d++) acc[(int64_t)g * head_dim + d] = 0;
    }
    // chunks outer, heads inner: a chunk's keys and values are read from memory once for the whole group; the
    // next chunk's rows are prefetched meanwhile (rows `stride` apart: contiguous in a head-major cache, but not in a
    // position-major one)
    for (int64_t j = j0, count; j < j1; j += count) {
        const int64_t room = TK_ATT_CHUNK - j % TK_ATT_CHUNK;   // chunks end at rows that are multiples of 16
        count = j1 - j < room ? j1 - j : room;
        const int64_t ahead = j1 - j - count < TK_ATT_CHUNK ? j1 - j - count : TK_ATT_CHUNK;
        for (int64_t t = 0; t < ahead; t++) {
            const float *kt = keys + (j + count + t) * stride, *vt = values + (j + count + t) * stride;
            for (int32_t d = 0; d < head_dim; d += 16) {
                __builtin_prefetch(kt + d, 0, 3);
                __builtin_prefetch(vt + d, 0, 3);
            }
        }
        for (int32_t g = 0; g < group; g++) {
            chunk(q + (int64_t)g * head_dim, keys + j * stride, values + j * stride, count, stride, head_dim, scale,
                  m + g, l + g, acc + (int64_t)g * head_dim);
        }
    }
}
