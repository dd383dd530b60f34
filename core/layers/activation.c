/* Pointwise activations. Backward of tanh-like functions reads the output (cheaper than
 * recomputing); in-place use (out == in, din == dout) is allowed everywhere. */
#include <math.h>

#include "layers.h"

/* Below this many elements waking the threads costs about what it saves (the cheap loops
 * run ~1 ns per element, the expf/tanhf ones a few). */
#define PARALLEL_MIN 4096

void relu_forward(float *out, const float *in, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        out[i] = in[i] < 0.0f ? 0.0f : in[i]; /* NaN passes through, as in PyTorch */
}

void relu_backward(float *din, const float *dout, const float *in, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        din[i] = in[i] <= 0.0f ? 0.0f : dout[i]; /* PyTorch's threshold_backward */
}

void leaky_relu_forward(float *out, const float *in, size_t n, float alpha)
{
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        out[i] = in[i] > 0.0f ? in[i] : alpha * in[i];
}

void leaky_relu_backward(float *din, const float *dout, const float *in, size_t n, float alpha)
{
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        din[i] = in[i] > 0.0f ? dout[i] : alpha * dout[i];
}

void tanh_forward(float *out, const float *in, size_t n)
{
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        out[i] = tanhf(in[i]);
}

void tanh_backward(float *din, const float *dout, const float *out, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        din[i] = dout[i] * (1.0f - out[i] * out[i]);
}

void scaled_tanh_forward(float *out, const float *in, size_t n, float scale, float shift)
{
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        out[i] = scale * tanhf(in[i]) + shift;
}

void scaled_tanh_backward(float *din, const float *dout, const float *out, size_t n,
                          float scale, float shift)
{
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        float t = (out[i] - shift) / scale;
        din[i] = dout[i] * scale * (1.0f - t * t);
    }
}

void sigmoid_forward(float *out, const float *in, size_t n)
{
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        /* exp of a non-positive argument only: no overflow for large |x| */
        float e = expf(-fabsf(in[i]));
        out[i] = in[i] >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    }
}

void sigmoid_backward(float *din, const float *dout, const float *out, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        din[i] = dout[i] * out[i] * (1.0f - out[i]);
}
