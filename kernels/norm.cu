/* Instance and batch norm with their gradients: twins of core/layers/norm.c (and of the
 * CPU backend's batch_norm_backward_eval), with the same arithmetic — statistics in double
 * around a pivot (the group's first value), biased variance, eps inside the square root,
 * the running variance updated with the unbiased estimate. A group is what one set of
 * statistics covers: a plane (instance norm) or a channel across the batch (batch norm);
 * one block reduces one group, walking its planes in order, so the parameter gradients
 * need no atomics and come out the same on every run. */
#include "common.cuh"
#include "kernels-half.h"
#include "kernels.h"

/* The CPU's group_stats: mean and biased variance of `planes` planes of hw floats spaced
 * `stride` apart, for every thread of the block. */
template <typename T>
__device__ static void group_stats(double *mean, double *var, const T *x, int planes,
                                   size_t stride, int hw)
{
    const double pivot = load_f(x);
    double v[2] = {0, 0};
    for (int p = 0; p < planes; p++)
        for (int i = threadIdx.x; i < hw; i += blockDim.x) {
            double d = load_f(x + (size_t)p * stride + i) - pivot;
            v[0] += d;
            v[1] += d * d;
        }
    block_sum<2>(v);
    const double count = (double)planes * hw, m = v[0] / count, s = v[1] / count - m * m;
    *mean = pivot + m;
    *var = s > 0 ? s : 0; /* rounding can leave a constant group slightly negative */
}

/* The CPU's norm_backward_group: v = (sum dy, sum dy·xhat) over the group, xhat = (x −
 * mean)·rstd, for every thread; then, if dx, dx = g·rstd·(dy − mean(dy) − xhat·mean(dy·xhat))
 * (assigned). */
__device__ static void norm_backward_group(float *dx, double *v, const float *dout,
                                           const float *x, int planes, size_t stride, int hw,
                                           float mean, float rstd, float g)
{
    v[0] = v[1] = 0;
    for (int p = 0; p < planes; p++)
        for (int i = threadIdx.x; i < hw; i += blockDim.x) {
            const size_t j = (size_t)p * stride + i;
            v[0] += dout[j];
            v[1] += (double)dout[j] * ((x[j] - mean) * rstd);
        }
    block_sum<2>(v);
    if (!dx)
        return;
    const double count = (double)planes * hw;
    const float m1 = (float)(v[0] / count), m2 = (float)(v[1] / count), k = g * rstd;
    for (int p = 0; p < planes; p++)
        for (int i = threadIdx.x; i < hw; i += blockDim.x) {
            const size_t j = (size_t)p * stride + i;
            dx[j] = k * (dout[j] - m1 - (x[j] - mean) * rstd * m2);
        }
}

/* ---- instance norm: forward one block per (image, channel) plane, backward one block per
 * channel ---------------------------------------------------------------------------------- */

/* the inference epilogue (plan.c) of a normalised value v at i: + add[i], then ReLU */
template <typename T> __device__ static float epilogue(float v, const T *add, size_t i, int relu)
{
    if (add)
        v += load_f(add + i);
    return relu && v < 0.0f ? 0.0f : v;
}

template <typename T>
__global__ void in_forward_k(T *out, float *mean, float *rstd, const T *x, const float *gamma,
                             const float *beta, int c, int hw, float eps, const T *add, int relu)
{
    const int plane = blockIdx.x, ch = plane % c;
    const T *px = x + (size_t)plane * hw, *pa = add ? add + (size_t)plane * hw : NULL;
    T *po = out + (size_t)plane * hw;
    double m, v;
    group_stats(&m, &v, px, 1, hw, hw);
    const float fm = (float)m, fr = (float)(1.0 / sqrt(v + eps));
    if (threadIdx.x == 0) {
        mean[plane] = fm;
        rstd[plane] = fr;
    }
    const float a = fr * (gamma ? gamma[ch] : 1.0f), b = beta ? beta[ch] : 0.0f;
    for (int i = threadIdx.x; i < hw; i += blockDim.x)
        store_f(po + i, epilogue((load_f(px + i) - fm) * a + b, pa, i, relu));
}

void gpu_instance_norm(float *out, float *mean, float *rstd, const float *x, const float *gamma,
                       const float *beta, int n, int c, int hw, float eps, const float *add,
                       int relu)
{
    if (n * c > 0)
        LAUNCH(in_forward_k<float>, n * c, out, mean, rstd, x, gamma, beta, c, hw, eps, add,
               relu);
}

void gpu_instance_norm(__half *out, float *mean, float *rstd, const __half *x, const float *gamma,
                       const float *beta, int n, int c, int hw, float eps, const __half *add,
                       int relu)
{
    if (n * c > 0)
        LAUNCH(in_forward_k<__half>, n * c, out, mean, rstd, x, gamma, beta, c, hw, eps, add,
               relu);
}

/* Thread 0 adds a channel's sums (v[0] = Σ dy, v[1] = Σ dy·x̂) to the affine gradients. */
__device__ static void add_affine_grads(float *dgamma, float *dbeta, int ch, const double *v)
{
    if (threadIdx.x == 0) {
        if (dgamma)
            dgamma[ch] += (float)v[1];
        if (dbeta)
            dbeta[ch] += (float)v[0];
    }
}

__global__ void in_backward_k(float *dx, float *dgamma, float *dbeta, const float *dout,
                              const float *x, const float *mean, const float *rstd,
                              const float *gamma, int n, int c, int hw)
{
    const int ch = blockIdx.x;
    double total[2] = {0, 0}; /* Σ dy, Σ dy·x̂ over the batch */
    for (int img = 0; img < n; img++) {
        const size_t plane = (size_t)img * c + ch, off = plane * hw;
        double v[2];
        norm_backward_group(dx ? dx + off : NULL, v, dout + off, x + off, 1, hw, hw,
                            mean[plane], rstd[plane], gamma ? gamma[ch] : 1.0f);
        total[0] += v[0];
        total[1] += v[1];
    }
    add_affine_grads(dgamma, dbeta, ch, total);
}

void gpu_instance_norm_backward(float *dx, float *dgamma, float *dbeta, const float *dout,
                                const float *x, const float *mean, const float *rstd,
                                const float *gamma, int n, int c, int hw)
{
    if (c > 0)
        LAUNCH(in_backward_k, c, dx, dgamma, dbeta, dout, x, mean, rstd, gamma, n, c, hw);
}

/* ---- batch norm: per-channel statistics (a block per channel, or a thread per channel
 * for the running ones), then one elementwise pass that normalises with them ------------- */

__global__ void bn_batch_stats_k(float *mean, float *rstd, float *running_mean,
                                 float *running_var, const float *x, int c, int planes, int hw,
                                 float eps, float momentum)
{
    const int ch = blockIdx.x;
    double m, v;
    group_stats(&m, &v, x + (size_t)ch * hw, planes, (size_t)c * hw, hw);
    if (threadIdx.x)
        return;
    mean[ch] = (float)m;
    rstd[ch] = (float)(1.0 / sqrt(v + eps));
    /* normalised with the biased variance, tracked with the unbiased one (a single value
     * has none: kept as 0, as the CPU does) */
    const double count = (double)planes * hw, unbiased = count > 1 ? v * count / (count - 1) : v;
    if (running_mean)
        running_mean[ch] = (float)((1.0 - momentum) * running_mean[ch] + momentum * m);
    if (running_var)
        running_var[ch] = (float)((1.0 - momentum) * running_var[ch] + momentum * unbiased);
}

/* eval: mean and rstd from the running statistics, rstd rounded from double as the CPU's
 * forward does */
__global__ void bn_running_stats_k(float *mean, float *rstd, const float *running_mean,
                                   const float *running_var, int c, float eps)
{
    FOR_EACH(ch, (size_t)c) {
        mean[ch] = running_mean[ch];
        rstd[ch] = (float)(1.0 / sqrt((double)running_var[ch] + eps));
    }
}

/* out = (x − mean)·(rstd·gamma) + beta, the CPU's normalise_plane */
template <typename T>
__global__ void bn_apply_k(T *out, const T *x, const float *mean, const float *rstd,
                           const float *gamma, const float *beta, int c, int hw, size_t total,
                           const T *add, int relu)
{
    FOR_EACH(i, total) {
        const int ch = (int)(i / hw % c);
        const float a = rstd[ch] * (gamma ? gamma[ch] : 1.0f), b = beta ? beta[ch] : 0.0f;
        store_f(out + i, epilogue((load_f(x + i) - mean[ch]) * a + b, add, i, relu));
    }
}

template <typename T>
static void bn_apply(T *out, const T *x, const float *mean, const float *rstd, const float *gamma,
                     const float *beta, int n, int c, int hw, const T *add = NULL, int relu = 0)
{
    size_t total = (size_t)n * c * hw;
    if (total)
        LAUNCH(bn_apply_k<T>, blocks(total), out, x, mean, rstd, gamma, beta, c, hw, total, add,
               relu);
}

void gpu_instance_norm_fixed(float *out, const float *x, const float *mean, const float *rstd,
                             const float *gamma, const float *beta, int n, int c, int hw,
                             const float *add, int relu)
{
    bn_apply(out, x, mean, rstd, gamma, beta, n, c, hw, add, relu);
}

void gpu_instance_norm_fixed(__half *out, const __half *x, const float *mean, const float *rstd,
                             const float *gamma, const float *beta, int n, int c, int hw,
                             const __half *add, int relu)
{
    bn_apply(out, x, mean, rstd, gamma, beta, n, c, hw, add, relu);
}

void gpu_batch_norm_train(float *out, float *mean, float *rstd, float *running_mean,
                          float *running_var, const float *x, const float *gamma,
                          const float *beta, int n, int c, int hw, float eps, float momentum)
{
    if (c <= 0)
        return;
    LAUNCH(bn_batch_stats_k, c, mean, rstd, running_mean, running_var, x, c, n, hw, eps,
                                     momentum);
    bn_apply(out, x, mean, rstd, gamma, beta, n, c, hw);
}

template <typename T>
static void batch_norm_eval(T *out, float *mean, float *rstd, const T *x,
                            const float *running_mean, const float *running_var,
                            const float *gamma, const float *beta, int n, int c, int hw, float eps,
                            const T *add, int relu)
{
    if (c <= 0)
        return;
    LAUNCH(bn_running_stats_k, blocks(c), mean, rstd, running_mean, running_var, c, eps);
    bn_apply(out, x, mean, rstd, gamma, beta, n, c, hw, add, relu);
}

void gpu_batch_norm_eval(float *out, float *mean, float *rstd, const float *x,
                         const float *running_mean, const float *running_var, const float *gamma,
                         const float *beta, int n, int c, int hw, float eps, const float *add,
                         int relu)
{
    batch_norm_eval(out, mean, rstd, x, running_mean, running_var, gamma, beta, n, c, hw, eps,
                    add, relu);
}

void gpu_batch_norm_eval(__half *out, float *mean, float *rstd, const __half *x,
                         const float *running_mean, const float *running_var, const float *gamma,
                         const float *beta, int n, int c, int hw, float eps, const __half *add,
                         int relu)
{
    batch_norm_eval(out, mean, rstd, x, running_mean, running_var, gamma, beta, n, c, hw, eps,
                    add, relu);
}

__global__ void fold_bn_k(float *wf, float *bf, const float *w, const float *b, const float *mean,
                          const float *var, const float *gamma, const float *beta, size_t per,
                          size_t total, float eps)
{
    FOR_EACH(i, total) {
        const size_t c = i / per;
        const double a = (gamma ? gamma[c] : 1.0) / sqrt((double)var[c] + eps);
        wf[i] = (float)(w[i] * a);
        if (i % per == 0)
            bf[c] = (float)(((b ? b[c] : 0.0) - mean[c]) * a + (beta ? beta[c] : 0.0));
    }
}

void gpu_fold_batch_norm(float *wf, float *bf, const float *w, const float *b, const float *mean,
                         const float *var, const float *gamma, const float *beta, int cout,
                         size_t per, float eps)
{
    const size_t total = (size_t)cout * per;
    if (total)
        LAUNCH(fold_bn_k, blocks(total), wf, bf, w, b, mean, var, gamma, beta, per, total, eps);
}

__global__ void bn_backward_k(float *dx, float *dgamma, float *dbeta, const float *dout,
                              const float *x, const float *mean, const float *rstd,
                              const float *gamma, int n, int c, int hw)
{
    const int ch = blockIdx.x;
    const size_t off = (size_t)ch * hw;
    double v[2];
    norm_backward_group(dx ? dx + off : NULL, v, dout + off, x + off, n, (size_t)c * hw, hw,
                        mean[ch], rstd[ch], gamma ? gamma[ch] : 1.0f);
    add_affine_grads(dgamma, dbeta, ch, v);
}

void gpu_batch_norm_backward(float *dx, float *dgamma, float *dbeta, const float *dout,
                             const float *x, const float *mean, const float *rstd,
                             const float *gamma, int n, int c, int hw)
{
    if (c > 0)
        LAUNCH(bn_backward_k, c, dx, dgamma, dbeta, dout, x, mean, rstd, gamma, n, c, hw);
}

/* eval: a fixed affine map, so dx = dy·gamma·rstd; rstd in float from the running variance,
 * exactly as the CPU backend's batch_norm_backward_eval computes it (not the forward's) */
__global__ void bn_backward_eval_k(float *dx, float *dgamma, float *dbeta, const float *dout,
                                   const float *x, const float *running_mean,
                                   const float *running_var, const float *gamma, int n, int c,
                                   int hw, float eps)
{
    const int ch = blockIdx.x;
    const float rstd = 1.0f / sqrtf(running_var[ch] + eps), g = gamma ? gamma[ch] : 1.0f;
    const float m = running_mean[ch];
    double v[2] = {0, 0}; /* sum dy, sum dy·xhat */
    for (int img = 0; img < n; img++) {
        const size_t base = ((size_t)img * c + ch) * hw;
        for (int i = threadIdx.x; i < hw; i += blockDim.x) {
            const float d = dout[base + i];
            v[0] += d;
            v[1] += (double)d * (x[base + i] - m) * rstd;
            if (dx)
                dx[base + i] = d * g * rstd;
        }
    }
    block_sum<2>(v);
    add_affine_grads(dgamma, dbeta, ch, v);
}

void gpu_batch_norm_backward_eval(float *dx, float *dgamma, float *dbeta, const float *dout,
                                  const float *x, const float *running_mean,
                                  const float *running_var, const float *gamma, int n, int c,
                                  int hw, float eps)
{
    if (c > 0)
        LAUNCH(bn_backward_eval_k, c, dx, dgamma, dbeta, dout, x, running_mean,
                                           running_var, gamma, n, c, hw, eps);
}
