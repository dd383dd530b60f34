/* The direct convolution's tiles for 8-float vectors and 16 registers (AVX2, and any
 * x86-64 when percept is built without -march=x86-64-v3): about 12 accumulators each,
 * one width per channel count. */
#define TILE_VL 8
#define TILE_REGS 16
#include "conv-tile.h"

#define TILES(X) X(1, 8) X(2, 6) X(3, 4) X(4, 3)
TILE_TABLE(conv_tiles_avx2, "avx2")
