/* Pointwise activations. Backward of tanh-like functions reads the output (cheaper than
 * recomputing); in-place use (out == in, din == dout) is allowed everywhere. */
#include <math.h>
#include <stdint.h>

#include "layers.h"

/* Below this many elements waking the threads costs about what it saves (the cheap loops
 * run ~1 ns per element, the exp-based ones a few). */
#define PARALLEL_MIN 4096

/* exp(y) for y <= 0 to about 2 ulp (0 below -87, where it leaves the normal floats), in
 * plain arithmetic that GCC vectorises (libm's expf and tanhf are a call per element:
 * tanhf took 30 ms of Johnson's SR net's 1 s at 1024²): y = n·ln 2 + r with |r| <= ln 2 / 2
 * (ln 2 in two parts, so r is exact), e^r by its Taylor series to r⁷ (the rest is below
 * 6e-9), 2^n put into the exponent bits. */
static inline float exp_nonpositive(float y)
{
    const float y0 = y;
    y = y > -87.0f ? y : -87.0f;
    const float n = __builtin_rintf(y * 1.44269504f);
    const float r = (y - n * 0.693145752f) - n * 1.42860677e-6f;
    const float p = 1.0f + r * (1.0f + r * (1.0f / 2 + r * (1.0f / 6 + r * (1.0f / 24 +
                    r * (1.0f / 120 + r * (1.0f / 720 + r * (1.0f / 5040)))))));
    union { int32_t i; float f; } two_n = {.i = ((int32_t)n + 127) << 23};
    return y0 < -87.0f ? 0.0f : p * two_n.f;
}

/* tanh to a few ulp (test-grad-activation measures it against libm): below |x| = 0.25 its
 * odd Taylor series to x⁹ (what is left is under 1e-8 relative), above it
 * (1 − e)/(1 + e) with e = exp(−2|x|), whose cancellation costs at most 2 ulp there; from
 * |x| = 9 on, ±1. NaN passes through. */
static inline float fast_tanh(float x)
{
    const float a = fabsf(x), a2 = a * a;
    const float e = exp_nonpositive(-2.0f * (a < 9.0f ? a : 9.0f));
    const float big = (1.0f - e) / (1.0f + e);
    const float small = a * (1.0f + a2 * (-1.0f / 3 + a2 * (2.0f / 15 + a2 * (-17.0f / 315 +
                        a2 * (62.0f / 2835)))));
    const float t = a < 0.25f ? small : a < 9.0f ? big : 1.0f;
    return x != x ? x : copysignf(t, x);
}

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
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        out[i] = fast_tanh(in[i]);
}

void tanh_backward(float *din, const float *dout, const float *out, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        din[i] = dout[i] * (1.0f - out[i] * out[i]);
}

void scaled_tanh_forward(float *out, const float *in, size_t n, float scale, float shift)
{
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        out[i] = scale * fast_tanh(in[i]) + shift;
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
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
    for (size_t i = 0; i < n; i++) {
        /* exp of a non-positive argument only: no overflow for large |x| */
        float x = in[i], e = exp_nonpositive(-fabsf(x));
        out[i] = x != x ? x : x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
    }
}

void sigmoid_backward(float *din, const float *dout, const float *out, size_t n)
{
#pragma omp parallel for simd schedule(static) if (n >= PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        din[i] = dout[i] * out[i] * (1.0f - out[i]);
}

void cos_forward(float *out, const float *in, size_t n, float scale)
{
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        out[i] = scale * cosf(in[i]);
}

void cos_backward(float *din, const float *dout, const float *in, size_t n, float scale)
{
#pragma omp parallel for schedule(static) if (n >= PARALLEL_MIN)
    for (size_t i = 0; i < n; i++)
        din[i] = dout[i] * (-scale * sinf(in[i]));
}
