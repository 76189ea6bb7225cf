// Memory read bandwidth probe for the roofline in infer-bench: streams a buffer through the widest loads the active
// level has, as the product kernels stream weights.
#include "internal.h"
#if TK_X86
#include <immintrin.h>
#endif

static uint64_t read_portable(const uint64_t *p, size_t words) {
    uint64_t a = 0, b = 0, c = 0, d = 0;
    size_t i = 0;
    for (; i + 4 <= words; i += 4) { a += p[i]; b += p[i + 1]; c += p[i + 2]; d += p[i + 3]; }
    for (; i < words; i++) a += p[i];
    return a + b + c + d;
}

#if TK_X86
static TK_AVX512 uint64_t read_avx512(const uint64_t *p, size_t words) {
    __m512i a = _mm512_setzero_si512(), b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 32 <= words; i += 32) {
        a = _mm512_add_epi64(a, _mm512_loadu_si512(p + i));
        b = _mm512_add_epi64(b, _mm512_loadu_si512(p + i + 8));
        c = _mm512_add_epi64(c, _mm512_loadu_si512(p + i + 16));
        d = _mm512_add_epi64(d, _mm512_loadu_si512(p + i + 24));
    }
    const uint64_t tail = read_portable(p + i, words - i);
    return (uint64_t)_mm512_reduce_add_epi64(_mm512_add_epi64(_mm512_add_epi64(a, b), _mm512_add_epi64(c, d))) + tail;
}

static TK_AVX2 uint64_t read_avx2(const uint64_t *p, size_t words) {
    __m256i a = _mm256_setzero_si256(), b = a, c = a, d = a;
    size_t i = 0;
    for (; i + 16 <= words; i += 16) {
        a = _mm256_add_epi64(a, _mm256_loadu_si256((const __m256i *)(p + i)));
        b = _mm256_add_epi64(b, _mm256_loadu_si256((const __m256i *)(p + i + 4)));
        c = _mm256_add_epi64(c, _mm256_loadu_si256((const __m256i *)(p + i + 8)));
        d = _mm256_add_epi64(d, _mm256_loadu_si256((const __m256i *)(p + i + 12)));
    }
    __m256i s = _mm256_add_epi64(_mm256_add_epi64(a, b), _mm256_add_epi64(c, d));
    uint64_t lanes[4];
    _mm256_storeu_si256((__m256i *)lanes, s);
    return lanes[0] + lanes[1] + lanes[2] + lanes[3] + read_portable(p + i, words - i);
}
#endif

uint64_t tk_read_memory(const void *buffer, size_t bytes) {
    const uint64_t *p = (const uint64_t *)buffer;
    const size_t words = bytes / 8;
#if TK_X86
    switch (tk_cpu_level()) {
    case TK_LEVEL_AVX512: return read_avx512(p, words);
    case TK_LEVEL_AVX2: return read_avx2(p, words);
    default: break;
    }
#endif
    return read_portable(p, words);
}
