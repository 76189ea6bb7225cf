// The tile driver shared by the SIMD levels: weight rows in groups of MR, activation rows in groups of NR, every
// (mr ≤ MR, nr ≤ NR) edge tile a separate instantiation with constant sizes so accumulators stay in registers.
#ifndef TK_TILES_H
#define TK_TILES_H

/// Calls tile(args, r, i, mr, nr) with mr, nr in 1...4 as compile-time constants.
#define TK_TILE_SWITCH(tile, mr, nr, args, r, i)                  \
    switch ((mr) * 8 + (nr)) {                                    \
    case 9: tile(args, r, i, 1, 1); break;                        \
    case 10: tile(args, r, i, 1, 2); break;                       \
    case 11: tile(args, r, i, 1, 3); break;                       \
    case 12: tile(args, r, i, 1, 4); break;                       \
    case 17: tile(args, r, i, 2, 1); break;                       \
    case 18: tile(args, r, i, 2, 2); break;                       \
    case 19: tile(args, r, i, 2, 3); break;                       \
    case 20: tile(args, r, i, 2, 4); break;                       \
    case 25: tile(args, r, i, 3, 1); break;                       \
    case 26: tile(args, r, i, 3, 2); break;                       \
    case 27: tile(args, r, i, 3, 3); break;                       \
    case 28: tile(args, r, i, 3, 4); break;                       \
    case 33: tile(args, r, i, 4, 1); break;                       \
    case 34: tile(args, r, i, 4, 2); break;                       \
    case 35: tile(args, r, i, 4, 3); break;                       \
    default: tile(args, r, i, 4, 4); break;                       \
    }

/// A row-range driver `name(args, r0, r1)` over `tile`: MR weight rows × NR activation rows (NR1 when n == 1).
#define TK_DRIVER(target, name, tile, MR, NR, NR1)                                          \
    static target void name(const tk_matmul_args *a, int64_t r0, int64_t r1) {             \
        const int64_t nrx = a->n == 1 ? (NR1) : (NR);                                       \
        for (int64_t r = r0; r < r1; r += (MR)) {                                           \
            const int mr = (int)(r1 - r < (MR) ? r1 - r : (MR));                             \
            for (int64_t i = 0; i < a->n; i += nrx) {                                       \
                const int nr = (int)(a->n - i < nrx ? a->n - i : nrx);                       \
                TK_TILE_SWITCH(tile, mr, nr, a, r, i)                                       \
            }                                                                               \
        }                                                                                   \
    }

/// Weight row r + m and activation row i + k of a tile.
#define TK_WROW(a, r, m) ((const uint8_t *)(a)->weights + (size_t)((r) + (m)) * (a)->row_bytes)
#define TK_XROW(a, i, k) ((const uint8_t *)(a)->x + (size_t)((i) + (k)) * (a)->x_stride)
#define TK_Y(a, i, k, r, m) ((a)->y[((i) + (k)) * (a)->y_stride + (r) + (m)])

#endif
