/* The part of CUDA's cuda_fp16.h that percept's kernels use, for the host emulator: the
 * __half storage type and its conversions to and from float (round to nearest even, as the
 * GPU's __float2half), by core/io/half.c. */
#ifndef PERCEPT_FAKE_CUDA_FP16_H
#define PERCEPT_FAKE_CUDA_FP16_H

#include <stdint.h>

extern "C" {
#include "half.h"
}

extern "C++" {
struct __half {
    uint16_t x;
};
inline float __half2float(__half h) { return half_to_float(h.x); }
inline __half __float2half(float f) { return __half{float_to_half(f)}; }
}

#endif
