/* Our CUDA kernels (elementwise.cu, norm.cu, resample.cu): each has a CPU twin in
 * core/layers/ with the same semantics, which tests/test-cuda-parity.c compares it with.
 * All pointers are device-accessible; launches are asynchronous on the default stream. */
#ifndef PERCEPT_KERNELS_H
#define PERCEPT_KERNELS_H

#include <stddef.h>

enum { EW_ADD, EW_RELU, EW_LEAKY_RELU, EW_TANH, EW_SCALED_TANH, EW_SIGMOID };

/* out = op(a) (EW_ADD: a + b); p: LeakyReLU's α or the scaled tanh's scale, q its shift */
void gpu_elementwise(int op, float *out, const float *a, const float *b, size_t n, float p,
                     float q);
/* dx = dout · op'(ref): ref is the op's input for ReLU and LeakyReLU, its output for the
 * tanh and sigmoid family */
void gpu_elementwise_backward(int op, float *dx, const float *dout, const float *ref, size_t n,
                              float p, float q);

/* planes (n·c) of h × w */
void gpu_upsample_nearest(float *out, const float *in, int planes, int h, int w, int f);
void gpu_upsample_nearest_backward(float *din, const float *dout, int planes, int h, int w, int f);
/* (n, c·r², h, w) <-> (n, c, h·r, w·r) */
void gpu_pixel_shuffle(float *out, const float *in, int n, int c, int h, int w, int r);
void gpu_pixel_shuffle_backward(float *din, const float *dout, int n, int c, int h, int w, int r);
/* ReflectionPad2d by p (p < h, p < w) and its gradient (the borders folded back in) */
void gpu_reflect_pad(float *out, const float *in, int planes, int h, int w, int p);
void gpu_reflect_pad_backward(float *din, const float *dpad, int planes, int h, int w, int p);

/* instance norm over (n, c, hw): mean and rstd (n·c) saved; gamma, beta (c) or NULL */
void gpu_instance_norm(float *out, float *mean, float *rstd, const float *x, const float *gamma,
                       const float *beta, int n, int c, int hw, float eps);
/* dx assigned (or NULL), dgamma and dbeta accumulated (or NULL) */
void gpu_instance_norm_backward(float *dx, float *dgamma, float *dbeta, const float *dout,
                                const float *x, const float *mean, const float *rstd,
                                const float *gamma, int n, int c, int hw);

#endif
