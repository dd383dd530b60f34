/* The direct convolution's tiles for 16-float vectors and 32 registers (AVX-512F; this
 * file alone is compiled with -mavx512f and only runs where the CPU has it). At its widest
 * each channel count has 16 to 24 accumulators; the narrower ones let a row be cut into
 * tiles of equal width (128 columns at 4 channels: 64 + 64, not 96 + 32, whose 8
 * accumulators would wait on the loads). */
#define TILE_VL 16
#define TILE_REGS 32
#include "conv-tile.h"

#define TILES(X)                                                                           \
    X(1, 16) X(1, 8) X(1, 4) X(1, 2) X(1, 1)                                               \
    X(2, 12) X(2, 8) X(2, 6) X(2, 4) X(2, 2) X(2, 1)                                       \
    X(3, 8) X(3, 6) X(3, 5) X(3, 4) X(3, 3) X(3, 2) X(3, 1)                                \
    X(4, 6) X(4, 5) X(4, 4) X(4, 3) X(4, 2) X(4, 1)
TILE_TABLE(conv_tiles_avx512, "avx512")
