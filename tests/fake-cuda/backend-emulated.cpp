/* kernels/backend-cuda.cu built for the host: the fake CUDA runtime and cuDNN of this folder,
 * the kernels under the emulator (libpercept-cuda-emulated.so; test-cuda-parity-emulated). */
extern "C" {
#include "kernels.h"
}

#include "backend-cuda.cu"
#include "math.cu"
