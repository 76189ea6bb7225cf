// CTesseraKernels: the intrinsics layer under TesseraKernels.
// Every kernel exists as a portable C version and, on x86-64, as AVX2 and AVX-512 (VNNI) variants compiled with
// per-function target attributes; the level is chosen once from cpuid (or TESSERA_CPU) and may be lowered at run time.
#ifndef CTESSERA_KERNELS_H
#define CTESSERA_KERNELS_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

// MARK: - CPU dispatch

/// Instruction levels, lowest first.
enum {
    TK_LEVEL_PORTABLE = 0,  ///< plain C, any CPU
    TK_LEVEL_AVX2 = 1,      ///< AVX2 + FMA + F16C
    TK_LEVEL_AVX512 = 2,    ///< AVX-512 F/BW/VL + VNNI (plus the AVX2 set)
};

/// Highest level this CPU (and OS) supports.
int32_t tk_cpu_supported_level(void);
/// Level the kernels use now: the supported level, or TESSERA_CPU=avx512|avx2|portable read at first use
/// (never above the supported level).
int32_t tk_cpu_level(void);
/// Sets the active level, clamped to [portable, supported]; returns the level now active.
int32_t tk_cpu_set_level(int32_t level);

// MARK: - Activation rows quantized to 8 bits

/// Q8_0 row of `cols` elements (a multiple of 32), nb = cols / 32 blocks, laid out as
/// `qs: int8[cols] | d: float[nb] | s: float[nb] | sum: int32[nb]` with x ≈ d·q per block, sum = Σq and s = d·sum
/// (for weights with an offset). Size in bytes, rounded up to 64 so consecutive rows stay 64-byte aligned.
size_t tk_q8_0_row_bytes(int64_t cols);
/// Q8_K row of `cols` elements (a multiple of 256), nb = cols / 256 blocks:
/// `qs: int8[cols] | d: float[nb] | bsums: int16[cols / 16]` (bsums: Σq of each 16 elements). Rounded up to 64.
size_t tk_q8_K_row_bytes(int64_t cols);

/// Quantizes `n` rows (`x_stride` floats apart) to Q8_0 rows `dst_stride` bytes apart: per block d = max|x| / 127,
/// q = round-to-nearest-even(x · 127 / max|x|). Bit-identical at every level.
void tk_quantize_q8_0(const float *x, int64_t x_stride, int64_t n, int64_t cols, void *dst, size_t dst_stride);
/// Same for Q8_K (blocks of 256).
void tk_quantize_q8_K(const float *x, int64_t x_stride, int64_t n, int64_t cols, void *dst, size_t dst_stride);

/// Activation formats the product kernels take.
enum {
    TK_ACT_NONE = 0,  ///< no kernel for this weight type
    TK_ACT_F32 = 1,   ///< float rows (F32, F16, BF16 weights)
    TK_ACT_Q8_0 = 2,  ///< Q8_0 rows (Q4_0, Q4_1, Q8_0 weights)
    TK_ACT_Q8_K = 3,  ///< Q8_K rows (Q2_K … Q6_K and IQ4_XS weights)
};
/// The activation format the kernels for weights of GGML type id `ggml_type` take.
int32_t tk_activation_format(uint32_t ggml_type);

// MARK: - Products

/// One product y[n × rows] = x[n × cols] · Wᵀ, described once and computed in row ranges (one range per task).
typedef struct {
    uint32_t type;        ///< GGML type id of the weights
    const void *weights;  ///< row r starts at weights + r · row_bytes
    size_t row_bytes;
    int64_t cols;         ///< elements per weight row (a whole number of blocks)
    const void *x;        ///< n activation rows in tk_activation_format(type), x_stride bytes apart
    size_t x_stride;
    int64_t n;
    float *y;             ///< y[i · y_stride + r]
    int64_t y_stride;
    const void *packed;   ///< rows 0 ..< packed_rows repacked by tk_pack (Q4_0, Q4_1, Q8_0), or NULL
    int64_t packed_rows;  ///< a multiple of 16
    int32_t accumulate;   ///< nonzero: y[i, r] += product (a residual add fused into the store) instead of =
} tk_matmul_args;

/// Writes y[i, r] for r in [r0, r1) and every i < n. Each weight row is read once for all n activation rows
/// (tiles of weight rows × activation rows); y[i, r] does not depend on n, r0, r1 or the tiling.
/// Packed rows are read from `packed` (start r0 at a multiple of 16 to use them all); results from packed rows equal
/// the portable level's bit for bit. Returns 0, or -1 when the type has no kernel.
int32_t tk_matmul(const tk_matmul_args *args, int64_t r0, int64_t r1);

// MARK: - Weights repacked for the products ("x16": 16 rows interleaved per block, see packed.c)

/// Bytes of the packed form of the first `rows` rows (rounded down to a multiple of 16) of a `cols`-column matrix;
/// 0 when `ggml_type` has no packed form (only Q4_0, Q4_1 and Q8_0 do). The packed form has the GGML form's size.
size_t tk_packed_bytes(uint32_t ggml_type, int64_t rows, int64_t cols);
/// Repacks rows 0 ..< rows (a multiple of 16) of GGML-layout `weights` into `dst` (tk_packed_bytes bytes).
/// Returns 0, or -1 for a type without a packed form.
int32_t tk_pack(uint32_t ggml_type, const void *weights, size_t row_bytes, int64_t rows, int64_t cols, void *dst);

// MARK: - Element-wise helpers (fast path)

/// gate[i] = silu(gate[i]) · up[i] with a vectorised exp (relative error ~1e-7 against expf).
void tk_silu_mul(float *gate, const float *up, int64_t count);

/// Attention of one query position over positions first ..< first + length of a block table: block b holds
/// positions b·block_size ..< (b+1)·block_size, its keys at blocks[2b] and its values at blocks[2b+1]; inside a
/// block, position r of KV head k is at r · kv_stride + k · head_stride floats (a dense cache is one block).
/// query [heads × head_dim]; query head h reads KV head h / (heads / kv_heads); scores [length] scratch; output
/// [heads × head_dim]. FMA dot products and a vectorised exp: equal to the exact form up to rounding.
void tk_attention(const float *query, const void *const *blocks, int64_t block_size, int64_t first, int64_t length,
                  int64_t kv_stride, int64_t head_stride, int32_t heads, int32_t kv_heads, int32_t head_dim,
                  float scale, float *scores, float *output);

/// Partial attention of `group` query heads sharing one KV head (`q`: group × head_dim) over positions j0 ..< j1 of
/// float keys/values `stride` floats apart, already offset to that KV head: an online softmax over chunks of 16
/// positions (no score array), chunks outer and heads inner so each chunk is read from memory once for the group.
/// Writes per head g: m[g] = max score, l[g] = Σ exp(s − m[g]), acc[g · head_dim + d] = Σ exp(s − m[g])·v[d], with
/// s = scale·q·k; an empty range gives m = −inf, l = 0, acc = 0. With `resume` set, m, l and acc hold a previous
/// range's results and are carried on (how a span that crosses KV blocks is walked, block by block).
void tk_attention_partial(const float *q, int32_t group, const float *keys, const float *values, int64_t j0,
                          int64_t j1, int64_t stride, int32_t head_dim, float scale, float *m, float *l, float *acc,
                          int32_t resume);

// MARK: - Quantized KV cache

/// One cached position (keys or values) of `kv_dim` = kv_heads · head_dim floats in 8 bits, blocks of B elements
/// (B = 32 when head_dim is a multiple of 32, else head_dim, so a block never spans two heads):
/// `q: int8[kv_dim] | d: float[kv_dim / B]`, x ≈ d·q per block. Size in bytes, rounded up to 16 (0 if either
/// size is not positive).
size_t tk_kv_q8_row_bytes(int64_t kv_dim, int32_t head_dim);
/// Quantizes one row: per block d = max|x| / 127, q = round-to-nearest-even(x / d) (0 when d = 0); the padding bytes
/// are zeroed. One portable routine: bit-identical at every level.
void tk_kv_q8_quantize(const float *x, int64_t kv_dim, int32_t head_dim, void *dst);
/// dst[i] = d·q of element i of one row.
void tk_kv_q8_dequantize(const void *src, int64_t kv_dim, int32_t head_dim, float *dst);

/// Partial attention of one query head `q[head_dim]` over positions j0 ..< j1 of KV head `kv_head`, rows
/// `row_bytes` apart starting at `keys`/`values`. Writes *m = max score·scale, *l = Σ exp(s − m),
/// acc[d] = Σ exp(s − m)·v[d].
/// An empty range (j1 <= j0) writes m = −inf, l = 0, acc = 0; with `resume` set, *m, *l and acc hold a previous
/// range's results and are carried on.
/// Online softmax over chunks of 16 positions (no score array of the range); scores are
/// scale · Σ_blocks d · Σ q[i]·k[i] with the query in float; a vectorised exp at the SIMD levels.
void tk_attention_q8_partial(const float *q, const void *keys, const void *values, int64_t j0, int64_t j1,
                             size_t row_bytes, int64_t kv_dim, int32_t head_dim, int32_t kv_head, float scale,
                             float *m, float *l, float *acc, int32_t resume);
/// Merges partial results of `parts` splits of one head — split p's max m[p · part_stride], sum l[p · part_stride]
/// and accumulator acc + p · acc_stride — into out[head_dim] = Σ acc·e^(m − M) / Σ l·e^(m − M), M the largest m
/// (splits with m = −inf weigh nothing; at least one must be non-empty). `out` may be `acc` itself.
void tk_attention_combine(const float *m, const float *l, const float *acc, int32_t parts, int32_t head_dim,
                          int64_t part_stride, int64_t acc_stride, float *out);

// MARK: - Memory bandwidth probe

/// Reads `bytes` (a multiple of 8) at `buffer` with the active level's widest loads; returns the words' 64-bit sum
/// (equal at every level), so the reads cannot be optimised away. infer-bench times it: the machine's read bandwidth,
/// the roofline's denominator.
uint64_t tk_read_memory(const void *buffer, size_t bytes);

// MARK: - Thread pool

/// A pool of persistent worker threads: created once, spinning briefly and then parked between jobs.
typedef struct tk_pool tk_pool;
/// One task of a job; `worker` is in [0, threads) and unique among the tasks running at one time.
typedef void (*tk_task_fn)(void *ctx, int64_t task, int32_t worker);

/// A pool of `threads` threads in all: the caller of tk_pool_run and threads − 1 workers. NULL on failure.
tk_pool *tk_pool_create(int32_t threads);
/// Stops and joins the workers.
void tk_pool_destroy(tk_pool *pool);
int32_t tk_pool_threads(const tk_pool *pool);
/// Runs fn(ctx, t, worker) for every t in [0, tasks) on the pool and the calling thread; returns when all are done.
/// Jobs from several threads are serialised; a job started from inside a task runs inline on that thread.
void tk_pool_run(tk_pool *pool, tk_task_fn fn, void *ctx, int64_t tasks);

#ifdef __cplusplus
}
#endif
#endif
