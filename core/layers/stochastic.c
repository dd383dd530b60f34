/* Dropout, Ridgeway's binary code layer and the VAE's reparameterisation. Noise comes from
 * the counter-based generator, so element i's draw depends only on (seed, i): the same on
 * any thread count or backend. */
#include <math.h>

#include "layers.h"
#include "percept/percept.h"

void dropout_forward(float *out, float *mask, const float *in, size_t n, float p, uint64_t seed)
{
    const float keep = 1.0f / (1.0f - p);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        mask[i] = percept_rng_uniform(seed, i) >= p ? keep : 0.0f;
        out[i] = in[i] * mask[i];
    }
}

void dropout_backward(float *din, const float *dout, const float *mask, size_t n)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        din[i] = dout[i] * mask[i];
}

void binary_forward(float *out, const float *in, size_t n, float threshold, float low,
                    float high)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        out[i] = in[i] > threshold ? high : low;
}

void binary_backward(float *din, const float *dout, size_t n)
{
    /* straight-through: the threshold's gradient is taken as the identity (Ridgeway et al.,
     * following Krizhevsky & Hinton) */
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        din[i] = dout[i];
}

void reparam_forward(float *out, float *eps, const float *in, int n, int c, int hw,
                     uint64_t seed)
{
    // in (n, 2c, hw): mu then logvar; out, eps (n, c, hw)
    const size_t half = (size_t)c * hw;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < n; b++)
        for (size_t i = 0; i < half; i++) {
            size_t o = (size_t)b * half + i;
            const float mu = in[2 * b * half + i], logvar = in[2 * b * half + half + i];
            eps[o] = percept_rng_normal(seed, o);
            out[o] = mu + expf(0.5f * logvar) * eps[o];
        }
}

void reparam_backward(float *din, const float *dout, const float *in, const float *eps,
                      int n, int c, int hw)
{
    const size_t half = (size_t)c * hw;
#pragma omp parallel for schedule(static)
    for (int b = 0; b < n; b++)
        for (size_t i = 0; i < half; i++) {
            size_t o = (size_t)b * half + i;
            const float logvar = in[2 * b * half + half + i];
            din[2 * b * half + i] = dout[o];
            din[2 * b * half + half + i] = dout[o] * eps[o] * 0.5f * expf(0.5f * logvar);
        }
}
