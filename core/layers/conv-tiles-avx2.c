/* The direct convolution's tiles for 8-float vectors and 16 registers (AVX2, and any
 * x86-64 when percept is built without -march=x86-64-v3): about 12 accumulators each,
 * one width per channel count. */
#define TILE_VL 8
#define TILE_REGS 16
#include "conv-tile.h"

TILE_FN(1, 8)
TILE_FN(2, 6)
TILE_FN(3, 4)
TILE_FN(4, 3)

const DirectTiles conv_tiles_avx2 = {
    .isa = "avx2",
    .vl = TILE_VL,
    TILE_ENTRY(1, 8),
    TILE_ENTRY(2, 6),
    TILE_ENTRY(3, 4),
    TILE_ENTRY(4, 3),
};
