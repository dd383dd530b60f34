/* Average, max and global average pooling with their gradients: twins of the pooling in
 * core/layers/resample.c (zero padding, counted in the average's divisor; max: padding
 * skipped, the first maximum in scan order wins, a NaN wins over everything). Forward: a
 * thread per output. Backward: a thread per input pixel, gathering over the windows that
 * contain it in the CPU's order (output rows, then columns), so each sum is the CPU's
 * scatter-add term for term, and needs no atomics. */
#include <math.h>

#include "common.cuh"
#include "kernels-half.h"
#include "kernels.h"

/* The outputs [*lo, *hi) along an axis whose windows (starting at o·stride − pad, k wide)
 * contain input position i. */
__device__ static void windows_over(int i, int k, int stride, int pad, int out, int *lo, int *hi)
{
    const int first = i + pad - k + 1; /* o·stride must reach at least this */
    const int last = (i + pad) / stride; /* i + pad ≥ 0 */
    *lo = first <= 0 ? 0 : (first + stride - 1) / stride;
    *hi = last < out ? last + 1 : out;
}

/* Where output i of a pass over p lies: its plane, row and column. */
__device__ static size_t output_at(size_t i, const GpuPool &p, int *oy, int *ox)
{
    *oy = (int)(i / p.wout % p.hout);
    *ox = (int)(i % p.wout);
    return i / ((size_t)p.hout * p.wout);
}

template <typename T> __global__ void avg_pool_k(T *out, const T *in, GpuPool p, size_t total)
{
    const float inv = 1.0f / (float)(p.k * p.k); /* floor mode: every window is k × k */
    FOR_EACH(i, total) {
        int oy, ox;
        const T *src = in + output_at(i, p, &oy, &ox) * p.h * p.w;
        float acc = 0;
        for (int ky = 0; ky < p.k; ky++) {
            const int iy = oy * p.stride - p.pad + ky;
            if (iy < 0 || iy >= p.h)
                continue;
            for (int kx = 0; kx < p.k; kx++) {
                const int ix = ox * p.stride - p.pad + kx;
                if (ix >= 0 && ix < p.w)
                    acc += load_f(src + (size_t)iy * p.w + ix);
            }
        }
        store_f(out + i, acc * inv);
    }
}

__global__ void avg_pool_back_k(float *din, const float *dout, GpuPool p, size_t total)
{
    const float inv = 1.0f / (float)(p.k * p.k);
    FOR_EACH(i, total) {
        const size_t plane = i / ((size_t)p.h * p.w);
        const int iy = (int)(i / p.w % p.h), ix = (int)(i % p.w);
        int y0, y1, x0, x1;
        windows_over(iy, p.k, p.stride, p.pad, p.hout, &y0, &y1);
        windows_over(ix, p.k, p.stride, p.pad, p.wout, &x0, &x1);
        const float *d = dout + plane * p.hout * p.wout;
        float s = 0;
        /* the CPU rounds each term before adding it: no fused multiply-add here */
        for (int oy = y0; oy < y1; oy++)
            for (int ox = x0; ox < x1; ox++)
                s += __fmul_rn(d[(size_t)oy * p.wout + ox], inv);
        din[i] = s;
    }
}

template <typename T>
__global__ void max_pool_k(T *out, int *argmax, const T *in, GpuPool p, size_t total)
{
    FOR_EACH(i, total) {
        int oy, ox;
        const T *src = in + output_at(i, p, &oy, &ox) * p.h * p.w;
        const int y0 = oy * p.stride - p.pad, x0 = ox * p.stride - p.pad;
        const int ya = y0 < 0 ? 0 : y0, yb = y0 + p.k < p.h ? y0 + p.k : p.h;
        const int xa = x0 < 0 ? 0 : x0, xb = x0 + p.k < p.w ? x0 + p.k : p.w;
        float best = -INFINITY;
        int at = ya * p.w + xa;
        for (int iy = ya; iy < yb; iy++)
            for (int ix = xa; ix < xb; ix++) {
                const float v = load_f(src + (size_t)iy * p.w + ix);
                if (v > best || isnan(v)) {
                    best = v;
                    at = iy * p.w + ix;
                }
            }
        store_f(out + i, best);
        argmax[i] = at;
    }
}

/* din[pixel] = Σ dout[o] over the windows o whose argmax is that pixel (each argmax lies in
 * its own window, so the windows over the pixel are all there is to look at) */
__global__ void max_pool_back_k(float *din, const float *dout, const int *argmax, GpuPool p,
                                size_t total)
{
    FOR_EACH(i, total) {
        const size_t plane = i / ((size_t)p.h * p.w);
        const int iy = (int)(i / p.w % p.h), ix = (int)(i % p.w), me = iy * p.w + ix;
        int y0, y1, x0, x1;
        windows_over(iy, p.k, p.stride, p.pad, p.hout, &y0, &y1);
        windows_over(ix, p.k, p.stride, p.pad, p.wout, &x0, &x1);
        const size_t base = plane * p.hout * p.wout;
        float s = 0;
        for (int oy = y0; oy < y1; oy++)
            for (int ox = x0; ox < x1; ox++) {
                const size_t o = base + (size_t)oy * p.wout + ox;
                if (argmax[o] == me)
                    s += dout[o];
            }
        din[i] = s;
    }
}

static size_t outputs(const GpuPool *p)
{
    return (size_t)p->planes * p->hout * p->wout;
}

static size_t inputs(const GpuPool *p)
{
    return (size_t)p->planes * p->h * p->w;
}

void gpu_avg_pool(float *out, const float *in, const GpuPool *p)
{
    if (outputs(p))
        LAUNCH(avg_pool_k<float>, blocks(outputs(p)), out, in, *p, outputs(p));
}

void gpu_avg_pool(__half *out, const __half *in, const GpuPool *p)
{
    if (outputs(p))
        LAUNCH(avg_pool_k<__half>, blocks(outputs(p)), out, in, *p, outputs(p));
}

void gpu_avg_pool_backward(float *din, const float *dout, const GpuPool *p)
{
    if (inputs(p))
        LAUNCH(avg_pool_back_k, blocks(inputs(p)), din, dout, *p, inputs(p));
}

void gpu_max_pool(float *out, int *argmax, const float *in, const GpuPool *p)
{
    if (outputs(p))
        LAUNCH(max_pool_k<float>, blocks(outputs(p)), out, argmax, in, *p, outputs(p));
}

void gpu_max_pool(__half *out, int *argmax, const __half *in, const GpuPool *p)
{
    if (outputs(p))
        LAUNCH(max_pool_k<__half>, blocks(outputs(p)), out, argmax, in, *p, outputs(p));
}

void gpu_max_pool_backward(float *din, const float *dout, const int *argmax, const GpuPool *p)
{
    if (inputs(p))
        LAUNCH(max_pool_back_k, blocks(inputs(p)), din, dout, argmax, *p, inputs(p));
}

/* a block per plane; the CPU sums in double too, so the two agree to the float rounding */
template <typename T> __global__ void global_avg_pool_k(T *out, const T *in, int hw)
{
    const T *src = in + (size_t)blockIdx.x * hw;
    double v[1] = {0};
    for (int i = threadIdx.x; i < hw; i += blockDim.x)
        v[0] += load_f(src + i);
    block_sum<1>(v);
    if (threadIdx.x == 0)
        store_f(out + blockIdx.x, (float)(v[0] / hw));
}

__global__ void global_avg_pool_back_k(float *din, const float *dout, int hw, size_t total)
{
    FOR_EACH(i, total)
        din[i] = dout[i / hw] / (float)hw;
}

void gpu_global_avg_pool(float *out, const float *in, int planes, int hw)
{
    if (planes > 0)
        LAUNCH(global_avg_pool_k<float>, planes, out, in, hw);
}

void gpu_global_avg_pool(__half *out, const __half *in, int planes, int hw)
{
    if (planes > 0)
        LAUNCH(global_avg_pool_k<__half>, planes, out, in, hw);
}

void gpu_global_avg_pool_backward(float *din, const float *dout, int planes, int hw)
{
    size_t total = (size_t)planes * hw;
    if (total)
        LAUNCH(global_avg_pool_back_k, blocks(total), din, dout, hw, total);
}
