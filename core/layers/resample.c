/* Nearest upsampling, pixel shuffle and pooling (PyTorch semantics).
 *
 * Upsampling and pixel shuffle run on whole images (1024² × 64 channels), where they are
 * bound by memory bandwidth: the loops go over output rows so that writes are contiguous,
 * and parallelise over (image, channel, row) so that a 3-channel output still splits
 * evenly across threads. Every output element is written by exactly one thread with a
 * fixed summation order, so results do not depend on the thread count. */
#include <math.h>
#include <string.h>

#include "layers.h"

void upsample_nearest_forward(float *out, const float *in, int n, int c, int h, int w, int f)
{
    // in (n,c,h,w) -> out (n,c,h*f,w*f)
    const size_t wo = (size_t)w * f;
    const long rows = (long)n * c * h;
#pragma omp parallel for schedule(static)
    for (long q = 0; q < rows; q++) {
        const float *src = in + (size_t)q * w;
        float *dst = out + (size_t)q * f * wo; /* input row q becomes output rows q*f.. */
        for (int x = 0; x < w; x++)
            for (int j = 0; j < f; j++)
                dst[(size_t)x * f + j] = src[x];
        for (int i = 1; i < f; i++)
            memcpy(dst + i * wo, dst, sizeof(float) * wo);
    }
}

void upsample_nearest_backward(float *din, const float *dout, int n, int c, int h, int w, int f)
{
    // dout (n,c,h*f,w*f) -> din (n,c,h,w): each input pixel sums its f×f block
    const size_t wo = (size_t)w * f;
    const long rows = (long)n * c * h;
#pragma omp parallel for schedule(static)
    for (long q = 0; q < rows; q++) {
        const float *src = dout + (size_t)q * f * wo;
        float *dst = din + (size_t)q * w;
        for (int x = 0; x < w; x++)
            dst[x] = 0.0f;
        for (int i = 0; i < f; i++) /* row by row: dout is read contiguously */
            for (int x = 0; x < w; x++)
                for (int j = 0; j < f; j++)
                    dst[x] += src[i * wo + (size_t)x * f + j];
    }
}

/* out[b][ch][y*r+i][x*r+j] = in[b][ch*r*r + i*r + j][y][x] (torch pixel_shuffle). Row q of
 * the input planes (b, ch, y) feeds output rows y*r .. y*r+r-1 of plane (b, ch). */
void pixel_shuffle_forward(float *out, const float *in, int n, int c, int h, int w, int r)
{
    // in (n, c*r*r, h, w) -> out (n, c, h*r, w*r)
    const size_t plane = (size_t)h * w, wo = (size_t)w * r;
    const long rows = (long)n * c * h;
#pragma omp parallel for schedule(static)
    for (long q = 0; q < rows; q++) {
        const long bc = q / h, y = q % h;
        const float *src = in + (size_t)bc * r * r * plane + (size_t)y * w;
        float *dst = out + (size_t)q * r * wo;
        for (int i = 0; i < r; i++)
            for (int j = 0; j < r; j++) {
                const float *s = src + (size_t)(i * r + j) * plane;
                float *d = dst + i * wo + j;
                for (int x = 0; x < w; x++)
                    d[(size_t)x * r] = s[x];
            }
    }
}

void pixel_shuffle_backward(float *din, const float *dout, int n, int c, int h, int w, int r)
{
    // dout (n, c, h*r, w*r) -> din (n, c*r*r, h, w): the inverse permutation
    const size_t plane = (size_t)h * w, wo = (size_t)w * r;
    const long rows = (long)n * c * h;
#pragma omp parallel for schedule(static)
    for (long q = 0; q < rows; q++) {
        const long bc = q / h, y = q % h;
        const float *src = dout + (size_t)q * r * wo;
        float *dst = din + (size_t)bc * r * r * plane + (size_t)y * w;
        for (int i = 0; i < r; i++)
            for (int j = 0; j < r; j++) {
                const float *s = src + i * wo + j;
                float *d = dst + (size_t)(i * r + j) * plane;
                for (int x = 0; x < w; x++)
                    d[x] = s[(size_t)x * r];
            }
    }
}

void pool2d_shape(PoolShape *s)
{
    s->hout = (s->h + 2 * s->pad - s->k) / s->stride + 1;
    s->wout = (s->w + 2 * s->pad - s->k) / s->stride + 1;
}

void avg_pool_forward(float *out, const float *in, const PoolShape *s)
{
    // in (n,c,h,w) -> out (n,c,hout,wout)
    /* padded zeros count in the divisor (count_include_pad, PyTorch's default); in floor
     * mode no window reaches past the padding, so the divisor is always k*k */
    const float inv = 1.0f / (float)(s->k * s->k);
#pragma omp parallel for schedule(static)
    for (int p = 0; p < s->n * s->c; p++) {
        const float *src = in + (size_t)p * s->h * s->w;
        float *dst = out + (size_t)p * s->hout * s->wout;
        for (int oy = 0; oy < s->hout; oy++)
            for (int ox = 0; ox < s->wout; ox++) {
                float acc = 0;
                for (int ky = 0; ky < s->k; ky++) {
                    int iy = oy * s->stride - s->pad + ky;
                    if (iy < 0 || iy >= s->h)
                        continue;
                    for (int kx = 0; kx < s->k; kx++) {
                        int ix = ox * s->stride - s->pad + kx;
                        if (ix >= 0 && ix < s->w)
                            acc += src[(size_t)iy * s->w + ix];
                    }
                }
                dst[(size_t)oy * s->wout + ox] = acc * inv;
            }
    }
}

void avg_pool_backward(float *din, const float *dout, const PoolShape *s)
{
    // dout (n,c,hout,wout) -> din (n,c,h,w); one plane per thread, so the scatter is safe
    const float inv = 1.0f / (float)(s->k * s->k);
#pragma omp parallel for schedule(static)
    for (int p = 0; p < s->n * s->c; p++) {
        float *dst = din + (size_t)p * s->h * s->w;
        const float *src = dout + (size_t)p * s->hout * s->wout;
        memset(dst, 0, sizeof(float) * s->h * s->w);
        for (int oy = 0; oy < s->hout; oy++)
            for (int ox = 0; ox < s->wout; ox++) {
                float g = src[(size_t)oy * s->wout + ox] * inv;
                for (int ky = 0; ky < s->k; ky++) {
                    int iy = oy * s->stride - s->pad + ky;
                    if (iy < 0 || iy >= s->h)
                        continue;
                    for (int kx = 0; kx < s->k; kx++) {
                        int ix = ox * s->stride - s->pad + kx;
                        if (ix >= 0 && ix < s->w)
                            dst[(size_t)iy * s->w + ix] += g;
                    }
                }
            }
    }
}

void max_pool_forward(float *out, int32_t *argmax, const float *in, const PoolShape *s)
{
    // in (n,c,h,w) -> out, argmax (n,c,hout,wout)
    /* As PyTorch's CPU kernel: padding is -inf (skipped), the first maximum in scan order
     * wins ties, and a NaN wins over everything so it propagates. */
#pragma omp parallel for schedule(static)
    for (int p = 0; p < s->n * s->c; p++) {
        const float *src = in + (size_t)p * s->h * s->w;
        size_t o = (size_t)p * s->hout * s->wout;
        for (int oy = 0; oy < s->hout; oy++)
            for (int ox = 0; ox < s->wout; ox++, o++) {
                const int y0 = oy * s->stride - s->pad, x0 = ox * s->stride - s->pad;
                const int ya = y0 < 0 ? 0 : y0, yb = y0 + s->k < s->h ? y0 + s->k : s->h;
                const int xa = x0 < 0 ? 0 : x0, xb = x0 + s->k < s->w ? x0 + s->k : s->w;
                float best = -INFINITY;
                int32_t at = ya * s->w + xa;
                for (int iy = ya; iy < yb; iy++)
                    for (int ix = xa; ix < xb; ix++) {
                        float v = src[(size_t)iy * s->w + ix];
                        if (v > best || isnan(v)) {
                            best = v;
                            at = iy * s->w + ix;
                        }
                    }
                out[o] = best;
                argmax[o] = at;
            }
    }
}

void max_pool_backward(float *din, const float *dout, const int32_t *argmax, const PoolShape *s)
{
    // dout, argmax (n,c,hout,wout) -> din (n,c,h,w); overlapping windows may share a winner
#pragma omp parallel for schedule(static)
    for (int p = 0; p < s->n * s->c; p++) {
        float *dst = din + (size_t)p * s->h * s->w;
        size_t o = (size_t)p * s->hout * s->wout;
        memset(dst, 0, sizeof(float) * s->h * s->w);
        for (int i = 0; i < s->hout * s->wout; i++)
            dst[argmax[o + i]] += dout[o + i];
    }
}

void global_avg_pool_forward(float *out, const float *in, int n, int c, int hw)
{
    // in (n,c,hw) -> out (n,c); double sums keep large planes accurate
#pragma omp parallel for schedule(static)
    for (int p = 0; p < n * c; p++) {
        double acc = 0;
        for (int i = 0; i < hw; i++)
            acc += in[(size_t)p * hw + i];
        out[p] = (float)(acc / hw);
    }
}

void global_avg_pool_backward(float *din, const float *dout, int n, int c, int hw)
{
    // dout (n,c) -> din (n,c,hw)
#pragma omp parallel for schedule(static)
    for (int p = 0; p < n * c; p++) {
        float g = dout[p] / (float)hw;
        for (int i = 0; i < hw; i++)
            din[(size_t)p * hw + i] = g;
    }
}
