// Q2_K, Q3_K, Q4_K, Q5_K, Q6_K and IQ4_XS weights × Q8_K activations in 256-bit integer arithmetic, included by the AVX2 and AVX-512 files.
// The includer defines KQ_TARGET (function attribute), KQ(name) (name suffix) and KQ_MADD_ADD(acc, p16, s16)
// (acc + pairwise s16 products as s32). Integer block sums are exact; the per-block float formula is the portable one,
// so results are bit-identical to the portable level. Tiles are one weight row × NR activation rows.

TK_INLINE KQ_TARGET int32_t KQ(hsum_i32)(__m256i v) {
    __m128i s = _mm_add_epi32(_mm256_castsi256_si128(v), _mm256_extracti128_si256(v, 1));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0x4E));
    s = _mm_add_epi32(s, _mm_shuffle_epi32(s, 0xB1));
    return _mm_cvtsi128_si32(s);
}

/// The lane sums of two vectors at once: *x = Σ u, *y = Σ v.
TK_INLINE KQ_TARGET void KQ(hsum2_i32)(__m256i u, __m256i v, int32_t *x, int32_t *y) {
    const __m256i h = _mm256_hadd_epi32(u, v);                 // per 128-bit half: u01 u23 v01 v23
    const __m128i s = _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
    const __m128i t = _mm_hadd_epi32(s, s);                    // Σu Σv Σu Σv
    *x = _mm_cvtsi128_si32(t); *y = _mm_extract_epi32(t, 1);
}

/// The lane sums of u[0..NR) (NR ≤ 4, a constant) in lanes 0..NR of the result, the others 0: one hadd tree for the
/// tile's rows instead of a reduction per row (integer sums: the same numbers in any order).
TK_INLINE KQ_TARGET __m128i KQ(hsum4_i32)(const __m256i *u, const int NR) {
    if (NR == 1) return _mm_cvtsi32_si128(KQ(hsum_i32)(u[0]));
    const __m256i z = _mm256_setzero_si256();
    const __m256i h = _mm256_hadd_epi32(_mm256_hadd_epi32(u[0], u[1]),
                                        NR > 2 ? _mm256_hadd_epi32(u[2], NR > 3 ? u[3] : z) : z);
    return _mm_add_epi32(_mm256_castsi256_si128(h), _mm256_extracti128_si256(h, 1));
}

/// hsum4 of u and of v (one row: both in one tree).
TK_INLINE KQ_TARGET void KQ(hsum4x2_i32)(const __m256i *u, const __m256i *v, const int NR, __m128i *su, __m128i *sv) {
    if (NR == 1) {
        int32_t x, y; KQ(hsum2_i32)(u[0], v[0], &x, &y);
        *su = _mm_cvtsi32_si128(x); *sv = _mm_cvtsi32_si128(y);
    } else {
        *su = KQ(hsum4_i32)(u, NR); *sv = KQ(hsum4_i32)(v, NR);
    }
}

/// The tile's activation rows' block-b scales d[k][b] in lanes k < NR, the others 0.
TK_INLINE KQ_TARGET __m128 KQ(block_d4)(const float **d, int64_t b, const int NR) {
    return _mm_setr_ps(d[0][b], NR > 1 ? d[1][b] : 0.0f, NR > 2 ? d[2][b] : 0.0f, NR > 3 ? d[3][b] : 0.0f);
}

/// acc ± (s·d)·n in every lane: the portable level's per-block step (acc += (s·d)·(float)n), NR rows at once.
TK_INLINE KQ_TARGET __m128 KQ(block_step)(__m128 acc, float s, __m128 d, __m128i n, const int SUBTRACT) {
    const __m128 t = _mm_mul_ps(_mm_mul_ps(_mm_set1_ps(s), d), _mm_cvtepi32_ps(n));
    return SUBTRACT ? _mm_sub_ps(acc, t) : _mm_add_ps(acc, t);
}

/// Writes lanes k < NR of acc to output row i + k, column r + m.
TK_INLINE KQ_TARGET void KQ(put_rows)(const tk_matmul_args *a, int64_t r, int64_t i, int m, const int NR, __m128 acc) {
    float out[4]; _mm_storeu_ps(out, acc);
    for (int k = 0; k < NR; k++) TK_PUT(a, TK_Y(a, i, k, r, m), out[k]);
}

/// Q4_K's and Q5_K's eight 6-bit scales (bytes 0..7 of the result) and eight 6-bit minimums (bytes 8..15) from the
/// 12 packed bytes: sub-blocks 0..3 in the low six bits of bytes 0..3 (scales) and 4..7 (minimums), 4..7 in the
/// nibbles of bytes 8..11 with their top two bits in the top bits of bytes 0..7.
TK_INLINE KQ_TARGET __m128i KQ(q4_K_scales)(const uint8_t *p) {
    uint32_t u[3]; memcpy(u, p, 12);
    const uint32_t six = 0x3F3F3F3Fu, low4 = 0x0F0F0F0Fu, top2 = 0x03030303u;
    const uint32_t sc_lo = u[0] & six, mn_lo = u[1] & six;
    const uint32_t sc_hi = (u[2] & low4) | (((u[0] >> 6) & top2) << 4);
    const uint32_t mn_hi = ((u[2] >> 4) & low4) | (((u[1] >> 6) & top2) << 4);
    return _mm_setr_epi32((int)sc_lo, (int)sc_hi, (int)mn_lo, (int)mn_hi);
}

/// From eight s16 scales in both 128-bit halves (sub-blocks 8h..8h+7 of a block): scale 2c in every word of the low
/// half and scale 2c + 1 in the high half, for a 32-element chunk whose elements 0..15 and 16..31 are two sub-blocks.
TK_INLINE KQ_TARGET __m256i KQ(pair_scales)(__m256i half, const int c) {
    return _mm256_shuffle_epi8(half, _mm256_setr_epi8(
        4 * c, 4 * c + 1, 4 * c, 4 * c + 1, 4 * c, 4 * c + 1, 4 * c, 4 * c + 1,
        4 * c, 4 * c + 1, 4 * c, 4 * c + 1, 4 * c, 4 * c + 1, 4 * c, 4 * c + 1,
        4 * c + 2, 4 * c + 3, 4 * c + 2, 4 * c + 3, 4 * c + 2, 4 * c + 3, 4 * c + 2, 4 * c + 3,
        4 * c + 2, 4 * c + 3, 4 * c + 2, 4 * c + 3, 4 * c + 2, 4 * c + 3, 4 * c + 2, 4 * c + 3));
}

/// Sub-block scales 8h..8h+7 of a 16-scale s16 vector, in both halves.
TK_INLINE KQ_TARGET __m256i KQ(scale_half)(__m256i sc16, const int h) {
    return _mm256_broadcastsi128_si256(h ? _mm256_extracti128_si256(sc16, 1) : _mm256_castsi256_si128(sc16));
}

/// Q3_K's sixteen signed scales (6 bits less 32) as s16 from the 12 packed bytes: scale s has its low four bits in
/// nibble s / 8 of byte s % 8 and its top two in bits 2(s / 4) of byte 8 + s % 4.
TK_INLINE KQ_TARGET __m256i KQ(q3_K_scales)(const uint8_t *p) {
    uint32_t u[3]; memcpy(u, p, 12);
    const uint32_t low4 = 0x0F0F0F0Fu, top2 = 0x03030303u;
    const __m128i v = _mm_setr_epi32((int)((u[0] & low4) | ((u[2] & top2) << 4)),
                                     (int)((u[1] & low4) | (((u[2] >> 2) & top2) << 4)),
                                     (int)(((u[0] >> 4) & low4) | (((u[2] >> 4) & top2) << 4)),
                                     (int)(((u[1] >> 4) & low4) | (((u[2] >> 6) & top2) << 4)));
    return _mm256_cvtepi8_epi16(_mm_sub_epi8(v, _mm_set1_epi8(32)));
}

/// The NR Q8_K activation rows of a tile from row i: their quants, block scales and 16-element sums.
TK_INLINE KQ_TARGET void KQ(q8_K_rows)(const tk_matmul_args *a, int64_t i, const int NR, const int8_t **q,
                                      const float **d, const int16_t **bs) {
    for (int k = 0; k < NR; k++) {
        q[k] = (const int8_t *)TK_XROW(a, i, k);
        d[k] = tk_q8_K_d(q[k], a->cols); bs[k] = tk_q8_K_bsums(q[k], a->cols);
    }
}

/// Q4_K (HIGH 0) and Q5_K (HIGH 1, a fifth bit per weight from the 32 qh bytes: bit j for sub-block j).
TK_INLINE KQ_TARGET void KQ(q45_K_tile)(const tk_matmul_args *a, int64_t r, int64_t i, const int MR, const int NR,
                                       const int HIGH) {
    const int64_t cols = a->cols, nb = cols / 256;
    const size_t bytes = HIGH ? TK_Q5_K_BYTES : TK_Q4_K_BYTES, qs_at = HIGH ? 48 : 16;
    const __m256i m4 = _mm256_set1_epi8(0x0F), one = _mm256_set1_epi8(1);
    for (int m = 0; m < MR; m++) {
        const uint8_t *w = TK_WROW(a, r, m);
        const int8_t *q[4]; const float *d[4]; const int16_t *bs[4];
        __m128 acc = _mm_setzero_ps();
        KQ(q8_K_rows)(a, i, NR, q, d, bs);
        for (int64_t b = 0; b < nb; b++, w += bytes) {   // d(0) dmin(2) scales(4..16) [qh(16..48)] qs(qs_at..)
            for (size_t o = 0; o < bytes; o += 64) _mm_prefetch((const char *)w + TK_PREFETCH + o, _MM_HINT_T0);
            const __m128i packed = KQ(q4_K_scales)(w + 4);
            // minimums as s16, each twice (one per 16-element activation sum); scales as s16 in both halves
            const __m256i mins = _mm256_cvtepu8_epi16(_mm_unpackhi_epi8(packed, packed));
            const __m256i scales = _mm256_broadcastsi128_si256(_mm_cvtepu8_epi16(packed));
            __m256i isum[4], isum2[4];
            for (int k = 0; k < NR; k++) isum[k] = isum2[k] = _mm256_setzero_si256();
            const __m256i qh = HIGH ? _mm256_loadu_si256((const __m256i *)(w + 16)) : _mm256_setzero_si256();
            for (int g = 0; g < 4; g++) {   // 64 elements: low nibbles sub-block 2g, high nibbles 2g + 1
                const __m256i v = _mm256_loadu_si256((const __m256i *)(w + qs_at + 32 * g));
                __m256i lo = _mm256_and_si256(v, m4), hi = _mm256_and_si256(_mm256_srli_epi16(v, 4), m4);
                if (HIGH) {   // bit 2g (2g + 1) of each qh byte, moved to bit 4 (per byte: the shifts stay in lane)
                    lo = _mm256_or_si256(lo, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * g), one), 4));
                    hi = _mm256_or_si256(hi, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(qh, 2 * g + 1), one), 4));
                }
                // scale words 2g and 2g + 1 in every lane (pshufb picking bytes 4g, 4g + 1 and 4g + 2, 4g + 3)
                const __m256i slo = _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)(((4 * g + 1) << 8) | (4 * g))));
                const __m256i shi = _mm256_shuffle_epi8(scales, _mm256_set1_epi16((short)(((4 * g + 3) << 8) | (4 * g + 2))));
                for (int k = 0; k < NR; k++) {
                    const int8_t *qa = q[k] + 256 * b + 64 * g;
                    const __m256i pl = _mm256_maddubs_epi16(lo, _mm256_loadu_si256((const __m256i *)qa));
                    const __m256i ph = _mm256_maddubs_epi16(hi, _mm256_loadu_si256((const __m256i *)(qa + 32)));
                    isum[k] = KQ_MADD_ADD(isum[k], pl, slo);
                    isum2[k] = KQ_MADD_ADD(isum2[k], ph, shi);   // a second chain: half the dependent latency
                }
            }
            __m256i ms[4];   // Σ min·bsum
            for (int k = 0; k < NR; k++) {
                isum[k] = _mm256_add_epi32(isum[k], isum2[k]);
                ms[k] = _mm256_madd_epi16(mins, _mm256_loadu_si256((const __m256i *)(bs[k] + 16 * b)));
            }
            __m128i is, im;
            KQ(hsum4x2_i32)(isum, ms, NR, &is, &im);
            const __m128 db = KQ(block_d4)(d, b, NR);
            acc = KQ(block_step)(acc, tk_half_at(w), db, is, 0);
            acc = KQ(block_step)(acc, tk_half_at(w + 2), db, im, 1);
        }
        KQ(put_rows)(a, r, i, m, NR, acc);
    }
}

TK_INLINE KQ_TARGET void KQ(q6_K_tile)(const tk_matmul_args *a, int64_t r, int64_t i, const int MR, const int NR) {
    const int64_t cols = a->cols, nb = cols / 256;
    const __m256i m4 = _mm256_set1_epi8(0x0F), m30 = _mm256_set1_epi8(0x30);
    for (int m = 0; m < MR; m++) {
        const uint8_t *w = TK_WROW(a, r, m);
        const int8_t *q[4]; const float *d[4]; const int16_t *bs[4];
        __m128 acc = _mm_setzero_ps();
        KQ(q8_K_rows)(a, i, NR, q, d, bs);
        for (int64_t b = 0; b < nb; b++, w += TK_Q6_K_BYTES) {   // ql(0..128) qh(128..192) scales(192..208) d(208)
            for (int o = 0; o < TK_Q6_K_BYTES; o += 64) _mm_prefetch((const char *)w + TK_PREFETCH + o, _MM_HINT_T0);
            const __m256i sc16 = _mm256_cvtepi8_epi16(_mm_loadu_si128((const __m128i *)(w + 192)));
            __m256i isum[4], isum2[4];   // two chains (chunks 0, 2 and 1, 3): half the dependent latency
            for (int k = 0; k < NR; k++) isum[k] = isum2[k] = _mm256_setzero_si256();
            for (int h = 0; h < 2; h++) {   // elements 128h + 32c + l, c = 0..3
                const __m256i ql0 = _mm256_loadu_si256((const __m256i *)(w + 64 * h));
                const __m256i ql1 = _mm256_loadu_si256((const __m256i *)(w + 64 * h + 32));
                const __m256i qh = _mm256_loadu_si256((const __m256i *)(w + 128 + 32 * h));
                __m256i qc[4];
                qc[0] = _mm256_or_si256(_mm256_and_si256(ql0, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 4), m30));
                qc[1] = _mm256_or_si256(_mm256_and_si256(ql1, m4), _mm256_and_si256(_mm256_slli_epi16(qh, 2), m30));
                qc[2] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql0, 4), m4), _mm256_and_si256(qh, m30));
                qc[3] = _mm256_or_si256(_mm256_and_si256(_mm256_srli_epi16(ql1, 4), m4),
                                        _mm256_and_si256(_mm256_srli_epi16(qh, 2), m30));
                const __m256i half = KQ(scale_half)(sc16, h);   // scales 8h..8h+7
                for (int c = 0; c < 4; c++) {
                    // scales 8h + 2c (elements 0..15 of this chunk, low 128 bits) and 8h + 2c + 1 (16..31, high)
                    const __m256i sv = KQ(pair_scales)(half, c);
                    for (int k = 0; k < NR; k++) {
                        const __m256i av = _mm256_loadu_si256((const __m256i *)(q[k] + 256 * b + 128 * h + 32 * c));
                        if (c % 2 == 0) isum[k] = KQ_MADD_ADD(isum[k], _mm256_maddubs_epi16(qc[c], av), sv);
                        else isum2[k] = KQ_MADD_ADD(isum2[k], _mm256_maddubs_epi16(qc[c], av), sv);
                    }
                }
            }
            __m256i cs[4];   // Σ scale·bsum: the −32 offset of every weight
            for (int k = 0; k < NR; k++) {
                isum[k] = _mm256_add_epi32(isum[k], isum2[k]);
                cs[k] = _mm256_madd_epi16(sc16, _mm256_loadu_si256((const __m256i *)(bs[k] + 16 * b)));
            }
            __m128i sum, corr;
            KQ(hsum4x2_i32)(isum, cs, NR, &sum, &corr);
            acc = KQ(block_step)(acc, tk_half_at(w + 208), KQ(block_d4)(d, b, NR),
                                 _mm_sub_epi32(sum, _mm_slli_epi32(corr, 5)), 0);
        }
        KQ(put_rows)(a, r, i, m, NR, acc);
    }
}

/// IQ4_XS: per sub-block i of 32, the levels of its 16 nibble bytes (low nibbles first) times the activations as
/// s16 pair sums (|w|·a·sign w: at most 2·127·127), then times ls_i − 32 into s32.
TK_INLINE KQ_TARGET void KQ(iq4_xs_tile)(const tk_matmul_args *a, int64_t r, int64_t i, const int MR, const int NR) {
    const int64_t cols = a->cols, nb = cols / 256;
    const __m256i m4 = _mm256_set1_epi8(0x0F);
    const __m256i levels = _mm256_broadcastsi128_si256(_mm_loadu_si128((const __m128i *)tk_iq4_levels));
    for (int m = 0; m < MR; m++) {
        const uint8_t *w = TK_WROW(a, r, m);
        const int8_t *q[4]; const float *d[4];
        __m128 acc = _mm_setzero_ps();
        for (int k = 0; k < NR; k++) { q[k] = (const int8_t *)TK_XROW(a, i, k); d[k] = tk_q8_K_d(q[k], cols); }
        for (int64_t b = 0; b < nb; b++, w += TK_IQ4_XS_BYTES) {   // d(0) scales_h(2) scales_l(4..8) qs(8..136)
            for (int o = 0; o < TK_IQ4_XS_BYTES; o += 64) _mm_prefetch((const char *)w + TK_PREFETCH + o, _MM_HINT_T0);
            __m256i isum[4];
            for (int k = 0; k < NR; k++) isum[k] = _mm256_setzero_si256();
            for (int s = 0; s < 8; s++) {
                const __m128i v = _mm_loadu_si128((const __m128i *)(w + 8 + 16 * s));
                const __m256i nib = _mm256_and_si256(_mm256_setr_m128i(v, _mm_srli_epi16(v, 4)), m4);
                const __m256i wv = _mm256_shuffle_epi8(levels, nib), wa = _mm256_abs_epi8(wv);
                const __m256i sc = _mm256_set1_epi16((short)tk_iq4_xs_scale(w, s));
                for (int k = 0; k < NR; k++) {
                    const __m256i av = _mm256_loadu_si256((const __m256i *)(q[k] + 256 * b + 32 * s));
                    isum[k] = KQ_MADD_ADD(isum[k], _mm256_maddubs_epi16(wa, _mm256_sign_epi8(av, wv)), sc);
                }
            }
            acc = KQ(block_step)(acc, tk_half_at(w), KQ(block_d4)(d, b, NR), KQ(hsum4_i32)(isum, NR), 0);
        }
        KQ(put_rows)(a, r, i, m, NR, acc);
    }
}

/// Q2_K (HIGH 0) and Q3_K (HIGH 1): 128-element halves n of 32 bytes of 2-bit fields j (elements 128n + 32j + l from
/// byte l), Q3_K adding bit 4n + j of hmask[l] as bit 2; pair sums of u·a times the 16-element sub-block scales.
/// Q2_K subtracts dmin·Σ min·bsum; Q3_K's scales are signed (sc − 32) and its u − 4 is Σu·a − 4·bsum.
TK_INLINE KQ_TARGET void KQ(q23_K_tile)(const tk_matmul_args *a, int64_t r, int64_t i, const int MR, const int NR,
                                       const int HIGH) {
    const int64_t cols = a->cols, nb = cols / 256;
    const size_t bytes = HIGH ? TK_Q3_K_BYTES : TK_Q2_K_BYTES, qs_at = HIGH ? 32 : 16;
    const __m256i m3 = _mm256_set1_epi8(3), one = _mm256_set1_epi8(1);
    for (int m = 0; m < MR; m++) {
        const uint8_t *w = TK_WROW(a, r, m);
        const int8_t *q[4]; const float *d[4]; const int16_t *bs[4];
        __m128 acc = _mm_setzero_ps();
        KQ(q8_K_rows)(a, i, NR, q, d, bs);
        for (int64_t b = 0; b < nb; b++, w += bytes) {
            for (size_t o = 0; o < bytes; o += 64) _mm_prefetch((const char *)w + TK_PREFETCH + o, _MM_HINT_T0);
            // the sixteen scales as s16: Q3_K's signed 6-bit ones; Q2_K's bytes, scale in the low nibble, minimum high
            const __m256i q2sm = HIGH ? _mm256_setzero_si256() : _mm256_cvtepu8_epi16(_mm_loadu_si128((const __m128i *)w));
            const __m256i sc16 = HIGH ? KQ(q3_K_scales)(w + 96) : _mm256_and_si256(q2sm, _mm256_set1_epi16(0x0F));
            const __m256i hm = HIGH ? _mm256_loadu_si256((const __m256i *)w) : _mm256_setzero_si256();
            __m256i isum[4];
            for (int k = 0; k < NR; k++) isum[k] = _mm256_setzero_si256();
            for (int n = 0; n < 2; n++) {
                const __m256i v = _mm256_loadu_si256((const __m256i *)(w + qs_at + 32 * n));
                const __m256i half = KQ(scale_half)(sc16, n);
                for (int j = 0; j < 4; j++) {
                    __m256i u = _mm256_and_si256(_mm256_srli_epi16(v, 2 * j), m3);
                    if (HIGH) u = _mm256_or_si256(u, _mm256_slli_epi16(_mm256_and_si256(_mm256_srli_epi16(hm, 4 * n + j), one), 2));
                    // elements 0..15 of the 32: sub-block 8n + 2j, 16..31: 8n + 2j + 1
                    const __m256i sv = KQ(pair_scales)(half, j);
                    for (int k = 0; k < NR; k++) {
                        const __m256i av = _mm256_loadu_si256((const __m256i *)(q[k] + 256 * b + 128 * n + 32 * j));
                        isum[k] = KQ_MADD_ADD(isum[k], _mm256_maddubs_epi16(u, av), sv);
                    }
                }
            }
            const __m256i side = HIGH ? sc16 : _mm256_srli_epi16(q2sm, 4);   // Q3_K: Σ sc·bsum; Q2_K: the mins
            __m256i ts[4];
            for (int k = 0; k < NR; k++) ts[k] = _mm256_madd_epi16(side, _mm256_loadu_si256((const __m256i *)(bs[k] + 16 * b)));
            __m128i is, t;
            KQ(hsum4x2_i32)(isum, ts, NR, &is, &t);
            const float dw = tk_half_at(w + (HIGH ? 108 : 80));
            const __m128 db = KQ(block_d4)(d, b, NR);
            if (HIGH) {
                acc = KQ(block_step)(acc, dw, db, _mm_sub_epi32(is, _mm_slli_epi32(t, 2)), 0);
            } else {
                acc = KQ(block_step)(acc, dw, db, is, 0);
                acc = KQ(block_step)(acc, tk_half_at(w + 82), db, t, 1);
            }
        }
        KQ(put_rows)(a, r, i, m, NR, acc);
    }
}
