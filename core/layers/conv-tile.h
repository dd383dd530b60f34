/* The direct convolution's register tile, written once for every vector width: the file
 * that includes it defines TILE_VL (floats per vector register) and TILE_REGS (how many
 * registers) and is compiled for that instruction set; everything here is static to it.
 *
 * A tile of CB output channels × XV vectors of one output row sums over the taps with its
 * CB·XV accumulators in registers: per tap, either the XV input vectors are loaded once
 * and the CB weights broadcast one at a time, or the CB weights are held and the input
 * vectors stream, whichever fits the registers. */
#include <string.h>

#include "conv-direct.h"

/* Built without AVX (-Dnative_arch=false), GCC warns that returning a 32-byte vector
 * changes the ABI; these helpers are always inlined, so no such call exists. */
#pragma GCC diagnostic ignored "-Wpsabi"

typedef float vec __attribute__((vector_size(4 * TILE_VL)));
typedef float vecu __attribute__((vector_size(4 * TILE_VL), aligned(4))); /* unaligned */

enum { XV_MAX = TILE_XV_MAX };

typedef int veci __attribute__((vector_size(4 * TILE_VL)));

/* f in every lane (one vbroadcastss; `vec + f` would add to zero first) */
static inline __attribute__((always_inline)) vec broadcast(float f)
{
    return __builtin_shuffle((vec){f}, (veci){0});
}

static inline __attribute__((always_inline)) void
tile(float *out, size_t ostride, int n, const float *x, const TileGeom *g, int ncin,
     const float *w, const float *bias, int first, const int CB, const int XV)
{
    vec acc[4][XV_MAX];
#pragma GCC unroll 4
    for (int c = 0; c < CB; c++) {
        if (first) {
            vec b = broadcast(bias ? bias[c] : 0.0f);
#pragma GCC unroll 16
            for (int j = 0; j < XV; j++)
                acc[c][j] = b;
        } else if (n == XV * TILE_VL) {
#pragma GCC unroll 16
            for (int j = 0; j < XV; j++)
                acc[c][j] = *(const vecu *)(out + c * ostride + TILE_VL * j);
        } else {
            vec part[XV_MAX] = {0};
            memcpy(part, out + c * ostride, sizeof(float) * n);
#pragma GCC unroll 16
            for (int j = 0; j < XV; j++)
                acc[c][j] = part[j];
        }
    }
    /* One loop over the (channel, window row, phase) rows a tile reads, not three nested
     * ones: with the nest, GCC spilled and reloaded 7 of the 31 live vectors around every
     * window row. A channel's rows lie wq apart (x[ci][row][phase][wq], kystride =
     * stride·wq), its first one cstride after the last channel's. */
    const int k = g->k, st = g->stride, per_channel = k * st;
    const float *row = x;
    for (int r = 0, i = 0, ph = 0; r < ncin * per_channel; r++) {
        for (int kx = ph, m = 0; kx < k; kx += st, m++, w += CB) {
                    const float *p = row + m;
                    if (CB * XV + XV + 1 <= TILE_REGS) {
                        vec xv[XV_MAX];
#pragma GCC unroll 16
                        for (int j = 0; j < XV; j++)
                            xv[j] = *(const vecu *)(p + TILE_VL * j);
#pragma GCC unroll 4
                        for (int c = 0; c < CB; c++) {
                            vec wv = broadcast(w[c]);
#pragma GCC unroll 16
                            for (int j = 0; j < XV; j++)
                                acc[c][j] += wv * xv[j];
                        }
                    } else {
                        vec wv[4];
#pragma GCC unroll 4
                        for (int c = 0; c < CB; c++)
                            wv[c] = broadcast(w[c]);
#pragma GCC unroll 16
                        for (int j = 0; j < XV; j++) {
                            vec xj = *(const vecu *)(p + TILE_VL * j);
                            /* in a register: GCC would otherwise fold the load into
                             * each of the CB multiply-adds, loading it CB times (a
                             * 64→3 9×9 layer ran at 60% of the sgemm rate so) */
                            __asm__("" : "+v"(xj));
#pragma GCC unroll 4
                            for (int c = 0; c < CB; c++)
                                acc[c][j] += wv[c] * xj;
                        }
                    }
        }
        if (++i < per_channel) {
            row += g->wq;
            ph = ph + 1 < st ? ph + 1 : 0;
        } else {
            i = ph = 0;
            x += g->cstride;
            row = x;
        }
    }
#pragma GCC unroll 4
    for (int c = 0; c < CB; c++) {
        if (n == XV * TILE_VL) {
#pragma GCC unroll 16
            for (int j = 0; j < XV; j++)
                *(vecu *)(out + c * ostride + TILE_VL * j) = acc[c][j];
        } else {
            memcpy(out + c * ostride, acc[c], sizeof(float) * n);
        }
    }
}

/* A table file lists its shapes once, as TILES(X) calling X(CB, XV) for each, then
 * TILE_TABLE(name, isa) defines every tile function and the table that holds them. */
#define TILE_FN(CB, XV)                                                                    \
    static void tile_##CB##_##XV(float *out, size_t ostride, int n, const float *x,        \
                                 const TileGeom *g, int ncin, const float *w,              \
                                 const float *bias, int first)                             \
    {                                                                                      \
        tile(out, ostride, n, x, g, ncin, w, bias, first, CB, XV);                         \
    }
#define TILE_ENTRY(CB, XV) .fn[CB][XV] = tile_##CB##_##XV,
#define TILE_TABLE(name, isa_name)                                                         \
    TILES(TILE_FN)                                                                         \
    const DirectTiles name = {.isa = isa_name, .vl = TILE_VL, TILES(TILE_ENTRY)};
