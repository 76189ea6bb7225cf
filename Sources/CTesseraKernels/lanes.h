// Lane helpers shared by the SIMD kernels: tail masks and a horizontal sum. Include after <immintrin.h>.
#ifndef TK_LANES_H
#define TK_LANES_H

/// The first `rest` of 16 lanes (none when rest <= 0, all when rest >= 16).
TK_INLINE TK_AVX512 __mmask16 mask16(int64_t rest) {
    return rest >= 16 ? (__mmask16)0xFFFF : rest <= 0 ? 0 : (__mmask16)((1u << rest) - 1);
}

/// The first `rest` of 8 lanes as an all-ones/zero vector mask (for maskload/maskstore).
TK_INLINE TK_AVX2 __m256i mask8(int64_t rest) {
    const int32_t r = rest >= 8 ? 8 : rest <= 0 ? 0 : (int32_t)rest;
    return _mm256_cmpgt_epi32(_mm256_set1_epi32(r), _mm256_setr_epi32(0, 1, 2, 3, 4, 5, 6, 7));
}

/// Sum of the 8 lanes.
TK_INLINE TK_AVX2 float hsum8(__m256 v) {
    __m128 s = _mm_add_ps(_mm256_castps256_ps128(v), _mm256_extractf128_ps(v, 1));
    s = _mm_add_ps(s, _mm_movehl_ps(s, s));
    return _mm_cvtss_f32(_mm_add_ss(s, _mm_movehdup_ps(s)));
}

#endif
