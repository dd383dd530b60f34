/* Channel concatenation and the fixed per-channel affine map with their gradients: twins of
 * core/layers/combine.c (the residual add is an elementwise op, elementwise.cu). */
#include "common.cuh"
#include "kernels.h"

/* dst[r·dst_stride + j] = src[r·src_stride + j] for r < rows, j < len: one part of a
 * concatenation, copied into the joined tensor (forward) or out of it (backward) */
__global__ void copy_rows_k(float *dst, size_t dst_stride, const float *src, size_t src_stride,
                            size_t len, size_t total)
{
    FOR_EACH(i, total) {
        const size_t r = i / len, j = i % len;
        dst[r * dst_stride + j] = src[r * src_stride + j];
    }
}

static void copy_rows(float *dst, size_t dst_stride, const float *src, size_t src_stride,
                      int rows, size_t len)
{
    size_t total = (size_t)rows * len;
    if (total)
        LAUNCH(copy_rows_k, blocks(total), dst, dst_stride, src, src_stride, len, total);
}

/* Along channels, each image of the joined tensor is its parts' images one after another:
 * part k is n rows of cs[k]·hw floats, each at offset Σ cs[<k]·hw of a row (an image) of
 * Σ cs·hw floats, which this returns. */
static size_t joined_row(const int *cs, int count, int hw)
{
    size_t total = 0;
    for (int k = 0; k < count; k++)
        total += (size_t)cs[k] * hw;
    return total;
}

void gpu_concat(float *out, const float *const *ins, const int *cs, int count, int n, int hw)
{
    const size_t row = joined_row(cs, count, hw);
    size_t at = 0;
    for (int k = 0; k < count; k++) {
        const size_t len = (size_t)cs[k] * hw;
        copy_rows(out + at, row, ins[k], len, n, len);
        at += len;
    }
}

void gpu_concat_backward(float *const *dins, const float *dout, const int *cs, int count, int n,
                         int hw)
{
    const size_t row = joined_row(cs, count, hw);
    size_t at = 0;
    for (int k = 0; k < count; k++) {
        const size_t len = (size_t)cs[k] * hw;
        if (dins[k])
            copy_rows(dins[k], len, dout + at, row, n, len);
        at += len;
    }
}

/* out = in·scale[ch] + shift[ch], or, without a shift, the gradient din = dout·scale[ch]
 * (the constants have none); ch = (i / hw) mod c, so c = 1 uses one pair for everything */
__global__ void affine_k(float *out, const float *in, const float *scale, const float *shift,
                         int c, int hw, size_t total)
{
    FOR_EACH(i, total) {
        const int ch = (int)(i / hw % c);
        out[i] = shift ? in[i] * scale[ch] + shift[ch] : in[i] * scale[ch];
    }
}

void gpu_channel_affine(float *out, const float *in, const float *scale, const float *shift,
                        size_t total, int c, int hw)
{
    if (total)
        LAUNCH(affine_k, blocks(total), out, in, scale, shift, c, hw, total);
}

void gpu_channel_affine_backward(float *din, const float *dout, const float *scale, size_t total,
                                 int c, int hw)
{
    if (total)
        LAUNCH(affine_k, blocks(total), din, dout, scale, (const float *)NULL, c, hw, total);
}
