/* Dropout, Ridgeway's binary code layer and the VAE's reparameterisation. Noise comes from
 * the counter-based generator, so element i's draw depends only on (seed, i): the same on
 * any thread count or backend. */
#include <math.h>

#include "layers.h"
#include "percept/percept.h"

void dropout_forward(float *out, float *mask, const float *in, size_t n, float p, uint64_t seed)
{
    // in, out, mask (n); p < 1. p = 0 keeps everything with mask 1: the identity
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

/* Element o = (b, i) of the output reads mu at (b, i) and logvar at (b, c*hw + i) of the
 * input; eps[o] is draw o of the seed's stream. */
void reparam_forward(float *out, float *eps, const float *in, int n, int c, int hw,
                     uint64_t seed)
{
    // in (n, 2c, hw): mu then logvar; out, eps (n, c, hw)
    const size_t half = (size_t)c * hw, total = (size_t)n * half;
#pragma omp parallel for schedule(static)
    for (size_t o = 0; o < total; o++) {
        const float *x = in + o + (o / half) * half; /* skips the logvar halves before it */
        eps[o] = percept_rng_normal(seed, o);
        out[o] = x[0] + expf(0.5f * x[half]) * eps[o];
    }
}

void reparam_backward(float *din, const float *dout, const float *in, const float *eps,
                      int n, int c, int hw)
{
    // dout, eps (n, c, hw) -> din (n, 2c, hw): dmu = dout, dlogvar = dout * eps * std / 2
    const size_t half = (size_t)c * hw, total = (size_t)n * half;
#pragma omp parallel for schedule(static)
    for (size_t o = 0; o < total; o++) {
        const size_t at = o + (o / half) * half;
        din[at] = dout[o];
        din[at + half] = dout[o] * eps[o] * 0.5f * expf(0.5f * in[at + half]);
    }
}
