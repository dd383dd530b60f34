/* Channel concatenation and the fixed per-channel affine map with their gradients: twins of
 * core/layers/combine.c (the residual add is an elementwise op, elementwise.cu). */
#include "common.cuh"
#include "kernels-half.h"
#include "kernels.h"

/* dst[r·dst_stride + j] = src[r·src_stride + j] for r < rows, j < len: one part of a
 * concatenation, copied into the joined tensor (forward) or out of it (backward) */
template <typename T>
__global__ void copy_rows_k(T *dst, size_t dst_stride, const T *src, size_t src_stride, size_t len,
                            size_t total)
{
    FOR_EACH(i, total) {
        const size_t r = i / len, j = i % len;
        dst[r * dst_stride + j] = src[r * src_stride + j];
    }
}

template <typename T>
static void copy_rows(T *dst, size_t dst_stride, const T *src, size_t src_stride, int rows,
                      size_t len)
{
    size_t total = (size_t)rows * len;
    if (total)
        LAUNCH(copy_rows_k<T>, blocks(total), dst, dst_stride, src, src_stride, len, total);
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

template <typename T>
static void concat(T *out, const T *const *ins, const int *cs, int count, int n, int hw)
{
    const size_t row = joined_row(cs, count, hw);
    size_t at = 0;
    for (int k = 0; k < count; k++) {
        const size_t len = (size_t)cs[k] * hw;
        copy_rows(out + at, row, ins[k], len, n, len);
        at += len;
    }
}

void gpu_concat(float *out, const float *const *ins, const int *cs, int count, int n, int hw)
{
    concat(out, ins, cs, count, n, hw);
}

void gpu_concat(__half *out, const __half *const *ins, const int *cs, int count, int n, int hw)
{
    concat(out, ins, cs, count, n, hw);
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
template <typename T>
__global__ void affine_k(T *out, const T *in, const float *scale, const float *shift, int c,
                         int hw, size_t total)
{
    FOR_EACH(i, total) {
        const int ch = (int)(i / hw % c);
        const float x = load_f(in + i);
        store_f(out + i, shift ? x * scale[ch] + shift[ch] : x * scale[ch]);
    }
}

void gpu_channel_affine(float *out, const float *in, const float *scale, const float *shift,
                        size_t total, int c, int hw)
{
    if (total)
        LAUNCH(affine_k<float>, blocks(total), out, in, scale, shift, c, hw, total);
}

void gpu_channel_affine(__half *out, const __half *in, const float *scale, const float *shift,
                        size_t total, int c, int hw)
{
    if (total)
        LAUNCH(affine_k<__half>, blocks(total), out, in, scale, shift, c, hw, total);
}

void gpu_channel_affine_backward(float *din, const float *dout, const float *scale, size_t total,
                                 int c, int hw)
{
    if (total)
        LAUNCH(affine_k<float>, blocks(total), din, dout, scale, (const float *)NULL, c, hw,
               total);
}
