/* Layers that combine tensors: residual add, channel concat, linear, fixed per-channel
 * affine maps. */
#include <cblas.h>
#include <string.h>

#include "layers.h"

void add_forward(float *out, const float *a, const float *b, size_t n)
{
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < n; i++)
        out[i] = a[i] + b[i];
}

void epilogue_apply(float *y, const float *add, int relu, size_t n)
{
    if (add)
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            y[i] += add[i];
    if (relu)
#pragma omp simd
        for (size_t i = 0; i < n; i++)
            y[i] = y[i] < 0.0f ? 0.0f : y[i]; /* as relu_forward: NaN passes through */
}

/* Along channels, each image of the joined tensor is its parts' images one after another. */
void concat_forward(float *out, const float *const *ins, const int *cs, int count, int n, int hw)
{
    // ins[k] (n, cs[k], hw) -> out (n, sum cs, hw)
    for (int b = 0; b < n; b++)
        for (int k = 0; k < count; k++) {
            size_t len = (size_t)cs[k] * hw;
            memcpy(out, ins[k] + (size_t)b * len, sizeof(float) * len);
            out += len;
        }
}

void concat_backward(float *const *dins, const float *dout, const int *cs, int count, int n,
                     int hw)
{
    // dout (n, sum cs, hw) -> dins[k] (n, cs[k], hw); a NULL dins[k] is skipped
    for (int b = 0; b < n; b++)
        for (int k = 0; k < count; k++) {
            size_t len = (size_t)cs[k] * hw;
            if (dins[k])
                memcpy(dins[k] + (size_t)b * len, dout, sizeof(float) * len);
            dout += len;
        }
}

void linear_forward(float *out, const float *in, const float *weight, const float *bias, int n,
                    int fin, int fout)
{
    // in (n, fin), weight (fout, fin), out (n, fout) = in · weightᵀ + bias
    for (int b = 0; b < n; b++)
        for (int o = 0; o < fout; o++)
            out[(size_t)b * fout + o] = bias ? bias[o] : 0.0f;
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, n, fout, fin, 1.0f, in, fin, weight,
                fin, 1.0f, out, fout);
}

void linear_backward(float *din, float *dweight, float *dbias, const float *dout,
                     const float *in, const float *weight, int n, int fin, int fout)
{
    // dout (n, fout) -> din (n, fin) = dout · weight; dweight (fout, fin) += doutᵀ · in
    if (din)
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, fin, fout, 1.0f, dout, fout,
                    weight, fin, 0.0f, din, fin);
    if (dweight)
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, fout, fin, n, 1.0f, dout, fout, in,
                    fin, 1.0f, dweight, fin);
    if (dbias)
        for (int b = 0; b < n; b++)
            for (int o = 0; o < fout; o++)
                dbias[o] += dout[(size_t)b * fout + o];
}

/* Planes are split into blocks for the threads: an RGB image has only three planes. */
enum { AFFINE_BLOCK = 16384 };

void channel_affine_forward(float *out, const float *in, const float *scale, const float *shift,
                            int n, int c, int hw)
{
    // in, out (n, c, hw); scale, shift (c)
    const int blocks = (hw + AFFINE_BLOCK - 1) / AFFINE_BLOCK;
#pragma omp parallel for collapse(2) schedule(static)
    for (int p = 0; p < n * c; p++)
        for (int k = 0; k < blocks; k++) {
            const float a = scale[p % c], b = shift[p % c];
            const size_t base = (size_t)p * hw;
            const size_t lo = (size_t)k * AFFINE_BLOCK;
            const size_t hi = lo + AFFINE_BLOCK < (size_t)hw ? lo + AFFINE_BLOCK : (size_t)hw;
            for (size_t i = lo; i < hi; i++)
                out[base + i] = in[base + i] * a + b;
        }
}

void channel_affine_backward(float *din, const float *dout, const float *scale, int n, int c,
                             int hw)
{
    // dout, din (n, c, hw); the shift has no gradient (it is fixed)
    const int blocks = (hw + AFFINE_BLOCK - 1) / AFFINE_BLOCK;
#pragma omp parallel for collapse(2) schedule(static)
    for (int p = 0; p < n * c; p++)
        for (int k = 0; k < blocks; k++) {
            const float a = scale[p % c];
            const size_t base = (size_t)p * hw;
            const size_t lo = (size_t)k * AFFINE_BLOCK;
            const size_t hi = lo + AFFINE_BLOCK < (size_t)hw ? lo + AFFINE_BLOCK : (size_t)hw;
            for (size_t i = lo; i < hi; i++)
                din[base + i] = dout[base + i] * a;
        }
}
