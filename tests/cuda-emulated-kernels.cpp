/* percept's CUDA kernel files, compiled for the host emulator (cuda-emulator.h), their entry
 * points (kernels.h) with C linkage for tests/test-cuda-emulated.c. */
extern "C" {
#include "kernels.h"
}

#include "combine.cu"
#include "elementwise.cu"
#include "linear.cu"
#include "loss.cu"
#include "norm.cu"
#include "phases.cu"
#include "pool.cu"
#include "resample.cu"
