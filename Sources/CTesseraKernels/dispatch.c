// CPU detection (cpuid + xgetbv), the active level, and the public entry points that dispatch on it.
#include "internal.h"
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#if TK_X86
#include <cpuid.h>

static uint64_t tk_xgetbv(void) {
    uint32_t lo, hi;
    __asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
    return ((uint64_t)hi << 32) | lo;
}

static int32_t tk_detect(void) {
    unsigned a, b, c, d;
    if (!__get_cpuid(1, &a, &b, &c, &d)) return TK_LEVEL_PORTABLE;
    const int fma = (c >> 12) & 1, osxsave = (c >> 27) & 1, avx = (c >> 28) & 1, f16c = (c >> 29) & 1;
    if (!(osxsave && avx && fma && f16c)) return TK_LEVEL_PORTABLE;
    const uint64_t xcr0 = tk_xgetbv();
    if ((xcr0 & 0x6) != 0x6) return TK_LEVEL_PORTABLE;             // XMM and YMM state
    if (!__get_cpuid_count(7, 0, &a, &b, &c, &d)) return TK_LEVEL_PORTABLE;
    if (!((b >> 5) & 1)) return TK_LEVEL_PORTABLE;                  // AVX2
    const int f = (b >> 16) & 1, bw = (b >> 30) & 1, vl = (b >> 31) & 1, vnni = (c >> 11) & 1;
    const int zmm = (xcr0 & 0xE0) == 0xE0;                           // opmask, ZMM0-15 upper halves, ZMM16-31
    return (f && bw && vl && vnni && zmm) ? TK_LEVEL_AVX512 : TK_LEVEL_AVX2;
}
#else
static int32_t tk_detect(void) { return TK_LEVEL_PORTABLE; }
#endif

static _Atomic int32_t tk_supported = -1;
static _Atomic int32_t tk_active = -1;

int32_t tk_cpu_supported_level(void) {
    int32_t s = atomic_load_explicit(&tk_supported, memory_order_relaxed);
    if (s < 0) {
        s = tk_detect();
        atomic_store_explicit(&tk_supported, s, memory_order_relaxed);
    }
    return s;
}

static int32_t tk_clamp(int32_t level) {
    const int32_t s = tk_cpu_supported_level();
    return level < TK_LEVEL_PORTABLE ? TK_LEVEL_PORTABLE : (level > s ? s : level);
}

int32_t tk_cpu_level(void) {
    int32_t l = atomic_load_explicit(&tk_active, memory_order_relaxed);
    if (l >= 0) return l;
    l = tk_cpu_supported_level();
    const char *env = getenv("TESSERA_CPU");
    if (env && *env) {
        if (strcmp(env, "portable") == 0) l = TK_LEVEL_PORTABLE;
        else if (strcmp(env, "avx2") == 0) l = tk_clamp(TK_LEVEL_AVX2);
        else if (strcmp(env, "avx512") == 0) l = tk_clamp(TK_LEVEL_AVX512);
        else fprintf(stderr, "tessera: ignoring TESSERA_CPU=%s (expected avx512, avx2 or portable)\n", env);
    }
    int32_t expected = -1;   // a concurrent tk_cpu_set_level wins
    atomic_compare_exchange_strong(&tk_active, &expected, l);
    return atomic_load_explicit(&tk_active, memory_order_relaxed);
}

int32_t tk_cpu_set_level(int32_t level) {
    const int32_t l = tk_clamp(level);
    atomic_store_explicit(&tk_active, l, memory_order_relaxed);
    return l;
}

// MARK: - Dispatching entry points

size_t tk_q8_0_row_bytes(int64_t cols) { return ((size_t)cols + 12 * (size_t)(cols / 32) + 63) & ~(size_t)63; }
size_t tk_q8_K_row_bytes(int64_t cols) {
    return ((size_t)cols + 4 * (size_t)(cols / 256) + 2 * (size_t)(cols / 16) + 63) & ~(size_t)63;
}

int32_t tk_activation_format(uint32_t type) {
    switch (type) {
    case TK_F32: case TK_F16: case TK_BF16: return TK_ACT_F32;
    case TK_Q4_0: case TK_Q4_1: case TK_Q5_0: case TK_Q5_1: case TK_Q8_0: case TK_IQ4_NL: return TK_ACT_Q8_0;
    case TK_Q2_K: case TK_Q3_K: case TK_Q4_K: case TK_Q5_K: case TK_Q6_K: case TK_IQ4_XS: return TK_ACT_Q8_K;
    default: return TK_ACT_NONE;
    }
}

typedef void (*tk_quantize_fn)(const float *, int64_t, void *);

static void tk_quantize_rows(tk_quantize_fn fn, const float *x, int64_t xs, int64_t n, int64_t cols,
                             void *dst, size_t ds) {
    for (int64_t i = 0; i < n; i++) fn(x + i * xs, cols, (uint8_t *)dst + (size_t)i * ds);
}

void tk_quantize_q8_0(const float *x, int64_t xs, int64_t n, int64_t cols, void *dst, size_t ds) {
    tk_quantize_fn fn = tk_quantize_q8_0_portable;
#if TK_X86
    switch (tk_cpu_level()) {
    case TK_LEVEL_AVX512: fn = tk_quantize_q8_0_avx512; break;
    case TK_LEVEL_AVX2: fn = tk_quantize_q8_0_avx2; break;
    default: break;
    }
#endif
    tk_quantize_rows(fn, x, xs, n, cols, dst, ds);
}

void tk_quantize_q8_K(const float *x, int64_t xs, int64_t n, int64_t cols, void *dst, size_t ds) {
    tk_quantize_fn fn = tk_quantize_q8_K_portable;
#if TK_X86
    switch (tk_cpu_level()) {
    case TK_LEVEL_AVX512: fn = tk_quantize_q8_K_avx512; break;
    case TK_LEVEL_AVX2: fn = tk_quantize_q8_K_avx2; break;
    default: break;
    }
#endif
    tk_quantize_rows(fn, x, xs, n, cols, dst, ds);
}

static int32_t tk_matmul_rows(const tk_matmul_args *a, int64_t r0, int64_t r1, int32_t level) {
#if TK_X86
    switch (level) {
    case TK_LEVEL_AVX512: return tk_matmul_avx512(a, r0, r1);
    case TK_LEVEL_AVX2: return tk_matmul_avx2(a, r0, r1);
    default: break;
    }
#endif
    (void)level;
    return tk_matmul_portable(a, r0, r1);
}

static void tk_matmul_groups(const tk_matmul_args *a, int64_t g0, int64_t g1, int32_t level) {
#if TK_X86
    switch (level) {
    case TK_LEVEL_AVX512: tk_matmul_packed_avx512(a, g0, g1); return;
    case TK_LEVEL_AVX2: tk_matmul_packed_avx2(a, g0, g1); return;
    default: break;
    }
#endif
    (void)level;
    tk_matmul_packed_portable(a, g0, g1);
}

int32_t tk_matmul(const tk_matmul_args *a, int64_t r0, int64_t r1) {
    if (tk_activation_format(a->type) == TK_ACT_NONE) return -1;
    if (r0 >= r1 || a->n <= 0) return 0;
    const int32_t level = tk_cpu_level();
    int64_t lo = r0;
    if (a->packed && tk_packed_bytes(a->type, 16, a->cols) > 0) {
        const int64_t end = r1 < a->packed_rows ? r1 : a->packed_rows;
        const int64_t g0 = (lo + 15) / 16, g1 = end / 16;
        if (g0 < g1) {
            if (lo < 16 * g0) tk_matmul_rows(a, lo, 16 * g0, level);   // an unaligned start
            tk_matmul_groups(a, g0, g1, level);
            lo = 16 * g1;
        }
    }
    return lo < r1 ? tk_matmul_rows(a, lo, r1, level) : 0;
}

void tk_silu_mul(float *gate, const float *up, int64_t count) {
#if TK_X86
    switch (tk_cpu_level()) {
    case TK_LEVEL_AVX512: tk_silu_mul_avx512(gate, up, count); return;
    case TK_LEVEL_AVX2: tk_silu_mul_avx2(gate, up, count); return;
    default: break;
    }
#endif
    tk_silu_mul_portable(gate, up, count);
}
