/* Nearest upsampling, pixel shuffle and reflection padding with their gradients: twins of
 * core/layers/resample.c and of the CPU convolution's reflected borders. One thread per
 * output element of the pass (gathers only: no atomics, the same sums in the same order
 * on every run). */
#include "common.cuh"
#include "kernels-half.h"
#include "kernels.h"

template <typename T>
__global__ void upsample_k(T *out, const T *in, size_t total, int h, int w, int f)
{
    const int wo = w * f, ho = h * f;
    FOR_EACH(i, total) {
        size_t plane = i / ((size_t)ho * wo);
        int y = (int)(i / wo % ho), x = (int)(i % wo);
        out[i] = in[(plane * h + y / f) * w + x / f];
    }
}

__global__ void upsample_back_k(float *din, const float *dout, size_t total, int h, int w, int f)
{
    const int wo = w * f;
    FOR_EACH(i, total) {
        size_t plane = i / ((size_t)h * w);
        int y = (int)(i / w % h), x = (int)(i % w);
        const float *d = dout + (plane * h * f + (size_t)y * f) * wo + (size_t)x * f;
        float s = 0;
        for (int a = 0; a < f; a++)
            for (int b = 0; b < f; b++)
                s += d[(size_t)a * wo + b];
        din[i] = s;
    }
}

template <typename T> static void upsample(T *out, const T *in, int planes, int h, int w, int f)
{
    size_t total = (size_t)planes * h * f * w * f;
    if (total)
        LAUNCH(upsample_k<T>, blocks(total), out, in, total, h, w, f);
}

void gpu_upsample_nearest(float *out, const float *in, int planes, int h, int w, int f)
{
    upsample(out, in, planes, h, w, f);
}

void gpu_upsample_nearest(__half *out, const __half *in, int planes, int h, int w, int f)
{
    upsample(out, in, planes, h, w, f);
}

void gpu_upsample_nearest_backward(float *din, const float *dout, int planes, int h, int w, int f)
{
    size_t total = (size_t)planes * h * w;
    if (total)
        LAUNCH(upsample_back_k, blocks(total), din, dout, total, h, w, f);
}

/* out (n, c, h·r, w·r)[b, ch, y·r+i, x·r+j] = in (n, c·r², h, w)[b, ch·r²+i·r+j, y, x];
 * forward gathers into out, backward gathers into din: the same map read both ways */
template <typename T>
__global__ void shuffle_k(T *out, const T *in, size_t total, int c, int h, int w, int r,
                          int backward)
{
    const int ho = h * r, wo = w * r;
    FOR_EACH(i, total) {
        size_t bc = i / ((size_t)ho * wo); /* b·c + ch */
        int yo = (int)(i / wo % ho), xo = (int)(i % wo);
        size_t src = ((bc * r * r + (size_t)(yo % r) * r + xo % r) * h + yo / r) * w + xo / r;
        if (backward)
            out[src] = in[i];
        else
            out[i] = in[src];
    }
}

template <typename T> static void shuffle(T *out, const T *in, int n, int c, int h, int w, int r)
{
    size_t total = (size_t)n * c * h * r * w * r;
    if (total)
        LAUNCH(shuffle_k<T>, blocks(total), out, in, total, c, h, w, r, 0);
}

void gpu_pixel_shuffle(float *out, const float *in, int n, int c, int h, int w, int r)
{
    shuffle(out, in, n, c, h, w, r);
}

void gpu_pixel_shuffle(__half *out, const __half *in, int n, int c, int h, int w, int r)
{
    shuffle(out, in, n, c, h, w, r);
}

void gpu_pixel_shuffle_backward(float *din, const float *dout, int n, int c, int h, int w, int r)
{
    /* a permutation: every element of din is written exactly once */
    size_t total = (size_t)n * c * h * r * w * r;
    if (total)
        LAUNCH(shuffle_k<float>, blocks(total), din, dout, total, c, h, w, r, 1);
}

/* h × w: the input as read, through a nearest upsampling by up (in is h/up × w/up) */
template <typename T>
__global__ void pad_k(T *out, const T *in, size_t total, int h, int w, int p, int up)
{
    const int hp = h + 2 * p, wp = w + 2 * p, hs = h / up, ws = w / up;
    FOR_EACH(i, total) {
        size_t plane = i / ((size_t)hp * wp);
        int y = (int)(i / wp % hp), x = (int)(i % wp);
        const int sy = reflect_source(y - p, h) / up, sx = reflect_source(x - p, w) / up;
        out[i] = in[(plane * hs + sy) * ws + sx];
    }
}

/* din[y, x] = Σ dpad[qy, qx] over the padded positions that read (y, x): the centre, and
 * border positions (at most p on each side) whose reflection lands there */
__global__ void pad_back_k(float *din, const float *dpad, size_t total, int h, int w, int p)
{
    const int wp = w + 2 * p;
    FOR_EACH(i, total) {
        size_t plane = i / ((size_t)h * w);
        int y = (int)(i / w % h), x = (int)(i % w);
        int qy[3], qx[3];
        const int ny = padded_readers(y, h, p, 1, qy), nx = padded_readers(x, w, p, 1, qx);
        const float *d = dpad + plane * (size_t)(h + 2 * p) * wp;
        float s = 0;
        for (int a = 0; a < ny; a++)
            for (int b = 0; b < nx; b++)
                s += d[(size_t)qy[a] * wp + qx[b]];
        din[i] = s;
    }
}

template <typename T>
static void pad(T *out, const T *in, int planes, int h, int w, int p, int up)
{
    size_t total = (size_t)planes * (h + 2 * p) * (w + 2 * p);
    if (total)
        LAUNCH(pad_k<T>, blocks(total), out, in, total, h, w, p, up > 1 ? up : 1);
}

void gpu_reflect_pad(float *out, const float *in, int planes, int h, int w, int p, int up)
{
    pad(out, in, planes, h, w, p, up);
}

void gpu_reflect_pad(__half *out, const __half *in, int planes, int h, int w, int p, int up)
{
    pad(out, in, planes, h, w, p, up);
}

void gpu_reflect_pad_backward(float *din, const float *dpad, int planes, int h, int w, int p)
{
    size_t total = (size_t)planes * h * w;
    if (total)
        LAUNCH(pad_back_k, blocks(total), din, dpad, total, h, w, p);
}
