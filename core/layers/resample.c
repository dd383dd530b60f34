/* Nearest upsampling, pixel shuffle and pooling (PyTorch semantics). */
#include <float.h>
#include <string.h>

#include "layers.h"

void upsample_nearest_forward(float *out, const float *in, int n, int c, int h, int w, int f)
{
    // in (n,c,h,w) -> out (n,c,h*f,w*f)
    const int wo = w * f;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < n * c; p++) {
        const float *src = in + (size_t)p * h * w;
        float *dst = out + (size_t)p * h * w * f * f;
        for (int y = 0; y < h; y++) {
            float *row = dst + (size_t)y * f * wo;
            for (int x = 0; x < w; x++)
                for (int j = 0; j < f; j++)
                    row[x * f + j] = src[(size_t)y * w + x];
            for (int i = 1; i < f; i++)
                memcpy(row + (size_t)i * wo, row, sizeof(float) * wo);
        }
    }
}

void upsample_nearest_backward(float *din, const float *dout, int n, int c, int h, int w, int f)
{
    const int wo = w * f;
#pragma omp parallel for schedule(static)
    for (int p = 0; p < n * c; p++) {
        const float *src = dout + (size_t)p * h * w * f * f;
        float *dst = din + (size_t)p * h * w;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < w; x++) {
                float acc = 0;
                for (int i = 0; i < f; i++)
                    for (int j = 0; j < f; j++)
                        acc += src[((size_t)y * f + i) * wo + x * f + j];
                dst[(size_t)y * w + x] = acc;
            }
    }
}

/* Moves values between the channel-stacked layout (n, c·r·r, h, w) and the shuffled one
 * (n, c, h·r, w·r): shuffled[c][y·r+i][x·r+j] = stacked[c·r·r + i·r + j][y][x]. The
 * backward pass of a permutation is the inverse permutation. */
static void shuffle_copy(float *shuffled, float *stacked, int n, int c, int h, int w, int r,
                         int to_shuffled)
{
    const int wo = w * r;
#pragma omp parallel for collapse(2) schedule(static)
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++)
            for (int i = 0; i < r; i++)
                for (int j = 0; j < r; j++) {
                    float *plane = stacked + (((size_t)b * c + ch) * r * r + i * r + j) * h * w;
                    float *big = shuffled + ((size_t)b * c + ch) * h * r * wo;
                    for (int y = 0; y < h; y++)
                        for (int x = 0; x < w; x++) {
                            float *a = &big[((size_t)y * r + i) * wo + x * r + j];
                            float *p = &plane[(size_t)y * w + x];
                            if (to_shuffled)
                                *a = *p;
                            else
                                *p = *a;
                        }
                }
}

void pixel_shuffle_forward(float *out, const float *in, int n, int c, int h, int w, int r)
{
    shuffle_copy(out, (float *)in, n, c, h, w, r, 1); /* in is only read */
}

void pixel_shuffle_backward(float *din, const float *dout, int n, int c, int h, int w, int r)
{
    shuffle_copy((float *)dout, din, n, c, h, w, r, 0); /* dout is only read */
}

void pool2d_shape(PoolShape *s)
{
    s->hout = (s->h + 2 * s->pad - s->k) / s->stride + 1;
    s->wout = (s->w + 2 * s->pad - s->k) / s->stride + 1;
}

void avg_pool_forward(float *out, const float *in, const PoolShape *s)
{
    /* padded zeros count in the divisor (count_include_pad, PyTorch's default) */
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
    /* padding never wins (-inf); the first maximum in scan order wins ties, as in PyTorch */
#pragma omp parallel for schedule(static)
    for (int p = 0; p < s->n * s->c; p++) {
        const float *src = in + (size_t)p * s->h * s->w;
        size_t o = (size_t)p * s->hout * s->wout;
        for (int oy = 0; oy < s->hout; oy++)
            for (int ox = 0; ox < s->wout; ox++, o++) {
                float best = -FLT_MAX;
                int32_t at = -1;
                for (int ky = 0; ky < s->k; ky++) {
                    int iy = oy * s->stride - s->pad + ky;
                    if (iy < 0 || iy >= s->h)
                        continue;
                    for (int kx = 0; kx < s->k; kx++) {
                        int ix = ox * s->stride - s->pad + kx;
                        if (ix < 0 || ix >= s->w)
                            continue;
                        float v = src[(size_t)iy * s->w + ix];
                        if (at < 0 || v > best) {
                            best = v;
                            at = iy * s->w + ix;
                        }
                    }
                }
                out[o] = best;
                argmax[o] = at;
            }
    }
}

void max_pool_backward(float *din, const float *dout, const int32_t *argmax, const PoolShape *s)
{
#pragma omp parallel for schedule(static)
    for (int p = 0; p < s->n * s->c; p++) {
        float *dst = din + (size_t)p * s->h * s->w;
        size_t o = (size_t)p * s->hout * s->wout;
        memset(dst, 0, sizeof(float) * s->h * s->w);
        for (int i = 0; i < s->hout * s->wout; i++)
            if (argmax[o + i] >= 0)
                dst[argmax[o + i]] += dout[o + i];
    }
}

void global_avg_pool_forward(float *out, const float *in, int n, int c, int hw)
{
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
#pragma omp parallel for schedule(static)
    for (int p = 0; p < n * c; p++) {
        float g = dout[p] / (float)hw;
        for (int i = 0; i < hw; i++)
            din[(size_t)p * hw + i] = g;
    }
}
