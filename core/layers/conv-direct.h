/* The direct convolution's register tiles (conv.c's direct path), one table per
 * instruction set: conv-tiles-avx2.c for every x86-64 machine percept runs on,
 * conv-tiles-avx512.c (compiled with -mavx512f) for the CPUs that have AVX-512, chosen at
 * run time. A tile computes CB output channels (1..4) × `width` columns of one output row. */
#ifndef PERCEPT_CONV_DIRECT_H
#define PERCEPT_CONV_DIRECT_H

#include <stddef.h>

enum {
    TILE_MAX = 256, /* widest tile of any table, floats: the prepared rows' margin */
    TILE_XV_MAX = 16 /* most vectors across a tile */
};

/* Where a tile finds its operands in the prepared rows. */
typedef struct {
    size_t cstride, kystride, wq; /* floats between channels, window rows, phases */
    int k, stride;
} TileGeom;

/* out[c][0 .. n), c < CB (channels ostride apart), += the taps of input channels [0, ncin)
 * of x (starting from the bias, or zero, when `first`); n <= the tile's width. */
typedef void (*TileFn)(float *out, size_t ostride, int n, const float *x, const TileGeom *g,
                       int ncin, const float *w, const float *bias, int first);

/* fn[CB][XV]: the tile of CB channels × XV vectors, NULL where the table has none (a row
 * then takes the next wider one and leaves part of it unused) */
typedef struct {
    const char *isa;
    int vl; /* floats per vector */
    TileFn fn[5][TILE_XV_MAX + 1];
} DirectTiles;

extern const DirectTiles conv_tiles_avx2;
#ifdef PERCEPT_HAVE_AVX512
extern const DirectTiles conv_tiles_avx512;
#endif

#endif
