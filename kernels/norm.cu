/* Instance norm and its gradient: twins of core/layers/norm.c, with the same arithmetic —
 * statistics in double around a pivot (the plane's first value), biased variance, eps
 * inside the square root. Forward: one block per (image, channel) plane. Backward: one
 * block per channel, walking the images in order, so dgamma and dbeta need no atomics and
 * come out the same on every run. */
#include "kernels.h"

static const int THREADS = 256;

/* Sums a and b over the block; every thread gets the totals. */
__device__ static void block_sum2(double *a, double *b)
{
    __shared__ double sa[THREADS / 32], sb[THREADS / 32];
    for (int o = 16; o > 0; o /= 2) {
        *a += __shfl_down_sync(0xffffffffu, *a, o);
        *b += __shfl_down_sync(0xffffffffu, *b, o);
    }
    const int lane = threadIdx.x % 32, warp = threadIdx.x / 32;
    if (lane == 0) {
        sa[warp] = *a;
        sb[warp] = *b;
    }
    __syncthreads();
    if (warp == 0) {
        *a = lane < THREADS / 32 ? sa[lane] : 0;
        *b = lane < THREADS / 32 ? sb[lane] : 0;
        for (int o = 16; o > 0; o /= 2) {
            *a += __shfl_down_sync(0xffffffffu, *a, o);
            *b += __shfl_down_sync(0xffffffffu, *b, o);
        }
        if (lane == 0) {
            sa[0] = *a;
            sb[0] = *b;
        }
    }
    __syncthreads();
    *a = sa[0];
    *b = sb[0];
    __syncthreads(); /* the shared slots may be reused by the next call */
}

__global__ void in_forward_k(float *out, float *mean, float *rstd, const float *x,
                             const float *gamma, const float *beta, int c, int hw, float eps)
{
    const int plane = blockIdx.x, ch = plane % c;
    const float *px = x + (size_t)plane * hw;
    float *po = out + (size_t)plane * hw;
    const double pivot = px[0];
    double s = 0, ss = 0;
    for (int i = threadIdx.x; i < hw; i += blockDim.x) {
        double d = px[i] - pivot;
        s += d;
        ss += d * d;
    }
    block_sum2(&s, &ss);
    double m = s / hw, v = ss / hw - m * m;
    v = v > 0 ? v : 0;
    const float fm = (float)(pivot + m), fr = (float)(1.0 / sqrt(v + eps));
    if (threadIdx.x == 0) {
        mean[plane] = fm;
        rstd[plane] = fr;
    }
    const float a = fr * (gamma ? gamma[ch] : 1.0f), b = beta ? beta[ch] : 0.0f;
    for (int i = threadIdx.x; i < hw; i += blockDim.x)
        po[i] = (px[i] - fm) * a + b;
}

void gpu_instance_norm(float *out, float *mean, float *rstd, const float *x, const float *gamma,
                       const float *beta, int n, int c, int hw, float eps)
{
    if (n * c > 0)
        in_forward_k<<<n * c, THREADS>>>(out, mean, rstd, x, gamma, beta, c, hw, eps);
}

__global__ void in_backward_k(float *dx, float *dgamma, float *dbeta, const float *dout,
                              const float *x, const float *mean, const float *rstd,
                              const float *gamma, int n, int c, int hw)
{
    const int ch = blockIdx.x;
    double total_dy = 0, total_dy_xhat = 0;
    for (int img = 0; img < n; img++) {
        const int plane = img * c + ch;
        const float *dy = dout + (size_t)plane * hw, *px = x + (size_t)plane * hw;
        const float m = mean[plane], r = rstd[plane];
        double s1 = 0, s2 = 0;
        for (int i = threadIdx.x; i < hw; i += blockDim.x) {
            s1 += dy[i];
            s2 += (double)dy[i] * ((px[i] - m) * r);
        }
        block_sum2(&s1, &s2);
        total_dy += s1;
        total_dy_xhat += s2;
        if (dx) {
            const float m1 = (float)(s1 / hw), m2 = (float)(s2 / hw);
            const float k = (gamma ? gamma[ch] : 1.0f) * r;
            float *pd = dx + (size_t)plane * hw;
            for (int i = threadIdx.x; i < hw; i += blockDim.x)
                pd[i] = k * (dy[i] - m1 - (px[i] - m) * r * m2);
        }
    }
    if (threadIdx.x == 0) {
        if (dgamma)
            dgamma[ch] += (float)total_dy_xhat;
        if (dbeta)
            dbeta[ch] += (float)total_dy;
    }
}

void gpu_instance_norm_backward(float *dx, float *dgamma, float *dbeta, const float *dout,
                                const float *x, const float *mean, const float *rstd,
                                const float *gamma, int n, int c, int hw)
{
    if (c > 0)
        in_backward_k<<<c, THREADS>>>(dx, dgamma, dbeta, dout, x, mean, rstd, gamma, n, c, hw);
}
