/* The direct convolution's tiles for 16-float vectors and 32 registers (AVX-512F; this
 * file alone is compiled with -mavx512f and only runs where the CPU has it). At its widest
 * each channel count has 16 to 24 accumulators; the narrower ones let a row be cut into
 * tiles of equal width (128 columns at 4 channels: 64 + 64, not 96 + 32, whose 8
 * accumulators would wait on the loads). */
#define TILE_VL 16
#define TILE_REGS 32
#include "conv-tile.h"

TILE_FN(1, 16)
TILE_FN(1, 8)
TILE_FN(1, 4)
TILE_FN(1, 2)
TILE_FN(1, 1)
TILE_FN(2, 12)
TILE_FN(2, 8)
TILE_FN(2, 6)
TILE_FN(2, 4)
TILE_FN(2, 2)
TILE_FN(2, 1)
TILE_FN(3, 8)
TILE_FN(3, 6)
TILE_FN(3, 5)
TILE_FN(3, 4)
TILE_FN(3, 3)
TILE_FN(3, 2)
TILE_FN(3, 1)
TILE_FN(4, 6)
TILE_FN(4, 5)
TILE_FN(4, 4)
TILE_FN(4, 3)
TILE_FN(4, 2)
TILE_FN(4, 1)

const DirectTiles conv_tiles_avx512 = {
    .isa = "avx512",
    .vl = TILE_VL,
    TILE_ENTRY(1, 16), TILE_ENTRY(1, 8), TILE_ENTRY(1, 4), TILE_ENTRY(1, 2), TILE_ENTRY(1, 1),
    TILE_ENTRY(2, 12), TILE_ENTRY(2, 8), TILE_ENTRY(2, 6), TILE_ENTRY(2, 4), TILE_ENTRY(2, 2),
    TILE_ENTRY(2, 1),
    TILE_ENTRY(3, 8), TILE_ENTRY(3, 6), TILE_ENTRY(3, 5), TILE_ENTRY(3, 4), TILE_ENTRY(3, 3),
    TILE_ENTRY(3, 2), TILE_ENTRY(3, 1),
    TILE_ENTRY(4, 6), TILE_ENTRY(4, 5), TILE_ENTRY(4, 4), TILE_ENTRY(4, 3), TILE_ENTRY(4, 2),
    TILE_ENTRY(4, 1),
};
