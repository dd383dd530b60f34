/* fp16 inference (PERCEPT_CUDA_PRECISION=fp16, backend-cuda.cu): the forward kernels of
 * kernels.h on __half tensors, the same kernels instantiated for another element type —
 * values are read into float, computed in float (statistics in double, as in fp32) and
 * rounded to half once, when stored. Parameters, constants and saved statistics stay float.
 * C++ only (overloads of kernels.h's names). */
#ifndef PERCEPT_KERNELS_HALF_H
#define PERCEPT_KERNELS_HALF_H

#include <cuda_fp16.h>
#include <stddef.h>

#include "kernels.h"

void gpu_to_half(__half *out, const float *in, size_t n);
void gpu_to_float(float *out, const __half *in, size_t n);
void gpu_conv_epilogue(__half *y, const float *bias, const __half *add, int relu, size_t total,
                       int c, int hw);

void gpu_elementwise(int op, __half *out, const __half *a, const __half *b, size_t n, float p,
                     float q);
void gpu_linear(__half *out, const __half *in, const float *w, const float *b, int n, int fin,
                int fout);
void gpu_concat(__half *out, const __half *const *ins, const int *cs, int count, int n, int hw);
void gpu_channel_affine(__half *out, const __half *in, const float *scale, const float *shift,
                        size_t total, int c, int hw);
void gpu_upsample_nearest(__half *out, const __half *in, int planes, int h, int w, int f);
void gpu_pixel_shuffle(__half *out, const __half *in, int n, int c, int h, int w, int r);
void gpu_reflect_pad(__half *out, const __half *in, int planes, int h, int w, int p, int up);
void gpu_avg_pool(__half *out, const __half *in, const GpuPool *p);
void gpu_max_pool(__half *out, int *argmax, const __half *in, const GpuPool *p);
void gpu_global_avg_pool(__half *out, const __half *in, int planes, int hw);
void gpu_instance_norm(__half *out, float *mean, float *rstd, const __half *x, const float *gamma,
                       const float *beta, int n, int c, int hw, float eps, const __half *add,
                       int relu);
void gpu_instance_norm_fixed(__half *out, const __half *x, const float *mean, const float *rstd,
                             const float *gamma, const float *beta, int n, int c, int hw,
                             const __half *add, int relu);
void gpu_batch_norm_eval(__half *out, float *mean, float *rstd, const __half *x,
                         const float *running_mean, const float *running_var, const float *gamma,
                         const float *beta, int n, int c, int hw, float eps, const __half *add,
                         int relu);
void gpu_phase_input(__half *out, const __half *in, const GpuPhased *d);
void gpu_phase_weights(__half *out, const float *w, const GpuPhased *d);
void gpu_unphase_output(__half *out, const __half *in, const float *bias, const __half *add,
                        int relu, const GpuPhased *d);

#endif
