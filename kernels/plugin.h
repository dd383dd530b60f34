/* What the CUDA backend's files (backend-cuda.cu, math.cu) share: the core's table, the
 * error check, the precision setting. */
#ifndef PERCEPT_KERNELS_PLUGIN_H
#define PERCEPT_KERNELS_PLUGIN_H

#include <cuda_runtime.h>

extern "C" {
#include "graph.h"
}

extern const PerceptCoreApi *core; /* backend-cuda.cu: set when the core loads the plugin */

#define CUDA_OK(call, what)                                                                    \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        if (e_ != cudaSuccess)                                                                 \
            return (e_ == cudaErrorMemoryAllocation ? core->fail_oom : core->fail)(           \
                "%s: %s", what, cudaGetErrorString(e_));                                       \
    } while (0)

typedef enum { PRECISION_FP32, PRECISION_TF32, PRECISION_FP16 } Precision;
/* PERCEPT_CUDA_PRECISION's value; -1 with a message when it names none */
int precision_setting(Precision *p);

/* backend-cuda.cu: whether p is device or managed memory (the backend's owns) */
int device_writable(const void *p);

/* math.cu: the losses' and Adam's arithmetic (graph.h: BackendMath) */
extern const BackendMath cuda_math;

#endif
