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

/* Copies between the joined tensor (n, sum cs, hw) and its parts (n, cs[k], hw); parts[k]
 * may be NULL (skipped) when splitting. */
static void concat_copy(float *joined, float *const *parts, const int *cs, int count, int n,
                        int hw, int join)
{
    int total = 0;
    for (int k = 0; k < count; k++)
        total += cs[k];
    for (int b = 0; b < n; b++) {
        size_t off = (size_t)b * total * hw;
        for (int k = 0; k < count; k++) {
            size_t len = (size_t)cs[k] * hw;
            if (join)
                memcpy(joined + off, parts[k] + (size_t)b * len, sizeof(float) * len);
            else if (parts[k])
                memcpy(parts[k] + (size_t)b * len, joined + off, sizeof(float) * len);
            off += len;
        }
    }
}

void concat_forward(float *out, const float *const *ins, const int *cs, int count, int n, int hw)
{
    // ins[k] (n, cs[k], hw) -> out (n, sum cs, hw); the inputs are only read
    concat_copy(out, (float *const *)ins, cs, count, n, hw, 1);
}

void concat_backward(float *const *dins, const float *dout, const int *cs, int count, int n,
                     int hw)
{
    concat_copy((float *)dout, dins, cs, count, n, hw, 0); /* dout is only read */
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

void channel_affine_forward(float *out, const float *in, const float *scale, const float *shift,
                            int n, int c, int hw)
{
#pragma omp parallel for schedule(static)
    for (int p = 0; p < n * c; p++) {
        float a = scale[p % c], b = shift[p % c];
        for (int i = 0; i < hw; i++)
            out[(size_t)p * hw + i] = in[(size_t)p * hw + i] * a + b;
    }
}

void channel_affine_backward(float *din, const float *dout, const float *scale, int n, int c,
                             int hw)
{
#pragma omp parallel for schedule(static)
    for (int p = 0; p < n * c; p++) {
        float a = scale[p % c];
        for (int i = 0; i < hw; i++)
            din[(size_t)p * hw + i] = dout[(size_t)p * hw + i] * a;
    }
}
