// Shared by the kernel files: target attributes, half-float conversion, GGML block offsets, per-level entry points.
#ifndef TK_INTERNAL_H
#define TK_INTERNAL_H

#include "CTesseraKernels.h"
#include <string.h>

#if defined(__x86_64__) || defined(_M_X64)
#define TK_X86 1
#define TK_AVX2 __attribute__((target("avx2,fma,f16c")))
#define TK_AVX512 __attribute__((target("avx2,fma,f16c,avx512f,avx512bw,avx512vl,avx512vnni")))
#else
#define TK_X86 0
#endif

#define TK_INLINE static inline __attribute__((always_inline))

/// Bytes ahead of the current weight block that the SIMD kernels prefetch (weights stream from DRAM in decode).
#define TK_PREFETCH 4096
/// Stores one product output: y = v, or y += v when the product accumulates into its output (a fused residual add).
#define TK_PUT(a, y, v) ((y) = (a)->accumulate ? (y) + (v) : (v))

// GGML type ids (GGUF `ggml_type`).
enum {
    TK_F32 = 0, TK_F16 = 1, TK_Q4_0 = 2, TK_Q4_1 = 3, TK_Q5_0 = 6, TK_Q5_1 = 7, TK_Q8_0 = 8,
    TK_Q2_K = 10, TK_Q3_K = 11, TK_Q4_K = 12, TK_Q5_K = 13, TK_Q6_K = 14, TK_IQ4_NL = 20, TK_IQ4_XS = 23, TK_BF16 = 30,
};

// Block sizes in bytes; byte offsets of the fields are noted where they are read.
enum {
    TK_Q4_0_BYTES = 18, TK_Q4_1_BYTES = 20, TK_Q5_0_BYTES = 22, TK_Q5_1_BYTES = 24, TK_Q8_0_BYTES = 34,
    TK_Q2_K_BYTES = 84, TK_Q3_K_BYTES = 110, TK_Q4_K_BYTES = 144, TK_Q5_K_BYTES = 176, TK_Q6_K_BYTES = 210, TK_IQ4_NL_BYTES = 18, TK_IQ4_XS_BYTES = 136,
};

/// Bytes of one 32-element block by the SIMD levels' KIND numbering: 0 Q4_0, 1 Q4_1, 2 Q8_0, 3 Q5_0, 4 Q5_1,
/// 5 IQ4_NL.
TK_INLINE size_t tk_q32_block_bytes(int kind) {
    static const size_t bytes[] = {TK_Q4_0_BYTES, TK_Q4_1_BYTES, TK_Q8_0_BYTES, TK_Q5_0_BYTES, TK_Q5_1_BYTES,
                                   TK_IQ4_NL_BYTES};
    return bytes[kind];
}

/// IQ4_NL's and IQ4_XS's 16 non-linear levels (ggml's kvalues_iq4nl), indexed by a nibble.
static const int8_t tk_iq4_levels[16] = {-127, -104, -83, -65, -49, -35, -22, -10, 1, 13, 25, 38, 53, 69, 89, 113};

/// Q3_K's 6-bit scale of sub-block s (16 elements), less 32: the low nibble from scales[s % 8] (bits 4·(s / 8)), the
/// high two bits from scales[8 + s % 4] (bits 2·(s / 4)); the scales start at byte 96.
TK_INLINE int tk_q3_K_scale(const uint8_t *block, int s) {
    const int low = (block[96 + s % 8] >> (4 * (s / 8))) & 0x0F, high = (block[104 + s % 4] >> (2 * (s / 4))) & 0x03;
    return (low | high << 4) - 32;
}

/// IQ4_XS's 6-bit scale of sub-block i, less 32: nibble i of scales_l (4..8) and bits 2i, 2i+1 of scales_h (2..4).
TK_INLINE int tk_iq4_xs_scale(const uint8_t *block, int i) {
    const uint32_t high = (uint32_t)block[2] | (uint32_t)block[3] << 8;
    return (int)(((block[4 + i / 2] >> (4 * (i % 2))) & 0x0F) | (((high >> (2 * i)) & 3) << 4)) - 32;
}

/// IEEE half to float, exact (same values as F16C's vcvtph2ps).
TK_INLINE float tk_half(uint16_t h) {
    uint32_t bits = (uint32_t)(h & 0x7FFF) << 13;
    const uint32_t exp = bits & (0x7C00u << 13);
    bits += (127 - 15) << 23;
    if (exp == (0x7C00u << 13)) {
        bits += (128 - 16) << 23;
    } else if (exp == 0) {
        bits += 1 << 23;
        float f; memcpy(&f, &bits, 4);
        const uint32_t magic = 113u << 23; float m; memcpy(&m, &magic, 4);
        f -= m; memcpy(&bits, &f, 4);
    }
    bits |= (uint32_t)(h & 0x8000) << 16;
    float out; memcpy(&out, &bits, 4);
    return out;
}

TK_INLINE uint16_t tk_u16(const void *p) { uint16_t v; memcpy(&v, p, 2); return v; }
TK_INLINE float tk_half_at(const uint8_t *p) { return tk_half(tk_u16(p)); }
TK_INLINE float tk_f32_at(const uint8_t *p) { float v; memcpy(&v, p, 4); return v; }
TK_INLINE float tk_bf16(uint16_t h) { uint32_t b = (uint32_t)h << 16; float f; memcpy(&f, &b, 4); return f; }

/// Q4_K's (and Q5_K's) 6-bit scale and min of sub-block j from the 12 packed bytes.
TK_INLINE void tk_q4_K_scale_min(const uint8_t *s, int j, uint8_t *sc, uint8_t *m) {
    if (j < 4) {
        *sc = s[j] & 63; *m = s[j + 4] & 63;
    } else {
        *sc = (uint8_t)((s[j + 4] & 0x0F) | ((s[j - 4] >> 6) << 4));
        *m = (uint8_t)((s[j + 4] >> 4) | ((s[j] >> 6) << 4));
    }
}

/// Pointers into a quantized activation row (see the header for the layouts).
TK_INLINE const float *tk_q8_0_d(const void *row, int64_t cols) { return (const float *)((const int8_t *)row + cols); }
TK_INLINE const float *tk_q8_0_s(const void *row, int64_t cols) { return tk_q8_0_d(row, cols) + cols / 32; }
TK_INLINE const int32_t *tk_q8_0_sum(const void *row, int64_t cols) {
    return (const int32_t *)(tk_q8_0_s(row, cols) + cols / 32);
}
TK_INLINE const float *tk_q8_K_d(const void *row, int64_t cols) { return (const float *)((const int8_t *)row + cols); }
TK_INLINE const int16_t *tk_q8_K_bsums(const void *row, int64_t cols) {
    return (const int16_t *)(tk_q8_K_d(row, cols) + cols / 256);
}

/// Rounds to nearest even and clamps to ±127 (NaN to 0), as the SIMD conversions do for finite inputs.
TK_INLINE int8_t tk_round_q8(float v) {
    if (!(v == v)) return 0;
    if (v > 127.0f) v = 127.0f;
    if (v < -127.0f) v = -127.0f;
    return (int8_t)__builtin_rintf(v);
}

// Per-level entry points (the AVX ones exist only on x86-64).
void tk_quantize_q8_0_portable(const float *x, int64_t cols, void *dst);
void tk_quantize_q8_K_portable(const float *x, int64_t cols, void *dst);
int32_t tk_matmul_portable(const tk_matmul_args *a, int64_t r0, int64_t r1);
void tk_matmul_packed_portable(const tk_matmul_args *a, int64_t g0, int64_t g1);
void tk_silu_mul_portable(float *gate, const float *up, int64_t count);
#if TK_X86
void tk_quantize_q8_0_avx2(const float *x, int64_t cols, void *dst);
void tk_quantize_q8_K_avx2(const float *x, int64_t cols, void *dst);
int32_t tk_matmul_avx2(const tk_matmul_args *a, int64_t r0, int64_t r1);
void tk_matmul_packed_avx2(const tk_matmul_args *a, int64_t g0, int64_t g1);
void tk_silu_mul_avx2(float *gate, const float *up, int64_t count);
void tk_quantize_q8_0_avx512(const float *x, int64_t cols, void *dst);
void tk_quantize_q8_K_avx512(const float *x, int64_t cols, void *dst);
int32_t tk_matmul_avx512(const tk_matmul_args *a, int64_t r0, int64_t r1);
void tk_matmul_packed_avx512(const tk_matmul_args *a, int64_t g0, int64_t g1);
void tk_silu_mul_avx512(float *gate, const float *up, int64_t count);
#endif

#endif
