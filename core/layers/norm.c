/* Instance and batch normalisation (PyTorch semantics: biased variance for normalising,
 * eps inside the square root, running variance updated with the unbiased estimate).
 * Statistics accumulate in double around a pivot so that 1024² planes of values near 100
 * keep full float precision in mean and rstd. */
#include <math.h>

#include "layers.h"

/* Below this many elements waking the threads costs about what it saves. */
#define PARALLEL_MIN 16384

/* Adds the sums of d and d² over hw floats, d = x - pivot. (A function of its own: GCC
 * leaves this reduction scalar when it is inlined into a loop over a constant one plane.) */
static void shifted_sums(double *s, double *ss, const float *x, int hw, double pivot)
{
    double a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
    for (int i = 0; i < hw; i++) {
        double d = x[i] - pivot;
        a += d;
        b += d * d;
    }
    *s += a;
    *ss += b;
}

/* Mean and biased variance of `planes` planes of `hw` floats spaced `stride` apart
 * (instance norm: one plane; batch norm: one channel across the batch). */
static void group_stats(double *mean, double *var, const float *x, int planes, size_t stride,
                        int hw)
{
    /* One pass over the data (it is read once, which is what bounds the speed), but the
     * sums are taken around a pivot from the data: var = E[d²] - E[d]² with d = x - pivot
     * does not cancel catastrophically when |mean| >> std, as plain sums of x² would. */
    double pivot = x[0], s = 0, ss = 0;
    for (int p = 0; p < planes; p++)
        shifted_sums(&s, &ss, x + (size_t)p * stride, hw, pivot);
    double count = (double)planes * hw, m = s / count, v = ss / count - m * m;
    *mean = pivot + m;
    *var = v > 0 ? v : 0; /* rounding can leave a constant plane slightly negative */
}

/* out = (in - mean) * rstd * gamma + beta over one plane; subtracting the mean first keeps
 * the result accurate when |mean| >> std (in * a + (beta - mean * a) would cancel). */
static void normalise_plane(float *out, const float *in, int hw, float mean, float rstd,
                            float gamma, float beta)
{
    float a = rstd * gamma;
#pragma omp simd
    for (int i = 0; i < hw; i++)
        out[i] = (in[i] - mean) * a + beta;
}

/* The epilogue of plane p (of hw floats), while the plane is in cache. */
static void plane_epilogue(float *out, const Epilogue *ep, size_t p, int hw)
{
    if (ep)
        epilogue_apply(out + p * hw, ep->add ? ep->add + p * hw : NULL, ep->relu, (size_t)hw);
}

void instance_norm_forward(float *out, float *mean, float *rstd, const float *in,
                           const float *gamma, const float *beta, int n, int c, int hw,
                           float eps, const Epilogue *ep)
{
    // in, out (n,c,hw); mean, rstd (n*c); gamma, beta (c) or NULL
#pragma omp parallel for schedule(static) if ((size_t)n * c * hw >= PARALLEL_MIN)
    for (int p = 0; p < n * c; p++) {
        const float *x = in + (size_t)p * hw;
        double m, v;
        group_stats(&m, &v, x, 1, hw, hw);
        mean[p] = (float)m;
        rstd[p] = (float)(1.0 / sqrt(v + eps));
        int ch = p % c;
        normalise_plane(out + (size_t)p * hw, x, hw, mean[p], rstd[p], gamma ? gamma[ch] : 1.0f,
                        beta ? beta[ch] : 0.0f);
        plane_epilogue(out, ep, (size_t)p, hw);
    }
}

void instance_norm_apply(float *out, const float *in, const float *mean, const float *rstd,
                         const float *gamma, const float *beta, int n, int c, int hw,
                         const Epilogue *ep)
{
    // in, out (n,c,hw); mean, rstd (n*c); gamma, beta (c) or NULL
#pragma omp parallel for schedule(static) if ((size_t)n * c * hw >= PARALLEL_MIN)
    for (int p = 0; p < n * c; p++) {
        int ch = p % c;
        normalise_plane(out + (size_t)p * hw, in + (size_t)p * hw, hw, mean[p], rstd[p],
                        gamma ? gamma[ch] : 1.0f, beta ? beta[ch] : 0.0f);
        plane_epilogue(out, ep, (size_t)p, hw);
    }
}

/* Adds sum(dy) and sum(dy·xhat) over hw values, xhat = (x - mean)·rstd (a function of
 * its own for the same reason as shifted_sums). */
static void grad_sums(double *s1, double *s2, const float *dy, const float *x, int hw,
                      float mean, float rstd)
{
    double a = 0, b = 0;
#pragma omp simd reduction(+ : a, b)
    for (int i = 0; i < hw; i++) {
        a += dy[i];
        b += (double)dy[i] * ((x[i] - mean) * rstd);
    }
    *s1 += a;
    *s2 += b;
}

/* Gradient of y = xhat·g + b with xhat normalised over the group's `count` values:
 * dx = g·rstd·(dy − mean(dy) − xhat·mean(dy·xhat)). Returns sum(dy) and sum(dy·xhat),
 * which are also dbeta and dgamma. din NULL: only the sums. */
static void norm_backward_group(float *din, double *sum_dy, double *sum_dy_xhat,
                                const float *dout, const float *in, int planes, size_t stride,
                                int hw, float mean, float rstd, float g)
{
    double s1 = 0, s2 = 0;
    for (int p = 0; p < planes; p++)
        grad_sums(&s1, &s2, dout + (size_t)p * stride, in + (size_t)p * stride, hw, mean, rstd);
    *sum_dy = s1;
    *sum_dy_xhat = s2;
    if (!din)
        return;
    double count = (double)planes * hw;
    float m1 = (float)(s1 / count), m2 = (float)(s2 / count), k = g * rstd;
    for (int p = 0; p < planes; p++) {
        const float *dy = dout + (size_t)p * stride, *x = in + (size_t)p * stride;
        float *dx = din + (size_t)p * stride;
#pragma omp simd
        for (int i = 0; i < hw; i++)
            dx[i] = k * (dy[i] - m1 - (x[i] - mean) * rstd * m2);
    }
}

void instance_norm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                            const float *in, const float *mean, const float *rstd,
                            const float *gamma, int n, int c, int hw)
{
    // din, dout, in (n,c,hw); mean, rstd (n*c); gamma, dgamma, dbeta (c) or NULL
    /* a thread owns a channel, so the parameter sums need no atomics */
#pragma omp parallel for schedule(static) if ((size_t)n * c * hw >= PARALLEL_MIN)
    for (int ch = 0; ch < c; ch++) {
        double g_acc = 0, b_acc = 0;
        for (int b = 0; b < n; b++) {
            size_t p = (size_t)b * c + ch;
            double s1, s2;
            norm_backward_group(din ? din + p * hw : NULL, &s1, &s2, dout + p * hw, in + p * hw,
                                1, hw, hw, mean[p], rstd[p], gamma ? gamma[ch] : 1.0f);
            b_acc += s1;
            g_acc += s2;
        }
        if (dgamma)
            dgamma[ch] += (float)g_acc;
        if (dbeta)
            dbeta[ch] += (float)b_acc;
    }
}

void batch_norm_forward_train(float *out, float *mean, float *rstd, float *running_mean,
                              float *running_var, const float *in, const float *gamma,
                              const float *beta, int n, int c, int hw, float eps,
                              float momentum)
{
    // in, out (n,c,hw); mean, rstd, running stats (c); gamma, beta (c) or NULL
    size_t stride = (size_t)c * hw;
#pragma omp parallel for schedule(static) if ((size_t)n * c * hw >= PARALLEL_MIN)
    for (int ch = 0; ch < c; ch++) {
        const float *x = in + (size_t)ch * hw;
        double m, v;
        group_stats(&m, &v, x, n, stride, hw);
        mean[ch] = (float)m;
        rstd[ch] = (float)(1.0 / sqrt(v + eps));
        float g = gamma ? gamma[ch] : 1.0f, b = beta ? beta[ch] : 0.0f;
        for (int i = 0; i < n; i++)
            normalise_plane(out + i * stride + (size_t)ch * hw, x + i * stride, hw, mean[ch],
                            rstd[ch], g, b);
        /* PyTorch normalises with the biased variance but tracks the unbiased one (a single
         * value per channel has no unbiased variance; PyTorch refuses it, we keep 0) */
        double count = (double)n * hw, unbiased = count > 1 ? v * count / (count - 1) : v;
        if (running_mean)
            running_mean[ch] = (float)((1.0 - momentum) * running_mean[ch] + momentum * m);
        if (running_var)
            running_var[ch] = (float)((1.0 - momentum) * running_var[ch] + momentum * unbiased);
    }
}

void batch_norm_forward_eval(float *out, const float *in, const float *running_mean,
                             const float *running_var, const float *gamma, const float *beta,
                             int n, int c, int hw, float eps, const Epilogue *ep)
{
    // in, out (n,c,hw); running stats (c); gamma, beta (c) or NULL
#pragma omp parallel for collapse(2) schedule(static) if ((size_t)n * c * hw >= PARALLEL_MIN)
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++) {
            size_t p = (size_t)i * c + ch;
            float rstd = (float)(1.0 / sqrt((double)running_var[ch] + eps));
            normalise_plane(out + p * hw, in + p * hw, hw, running_mean[ch], rstd,
                            gamma ? gamma[ch] : 1.0f, beta ? beta[ch] : 0.0f);
            plane_epilogue(out, ep, p, hw);
        }
}

void batch_norm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                         const float *in, const float *mean, const float *rstd,
                         const float *gamma, int n, int c, int hw)
{
    // din, dout, in (n,c,hw); mean, rstd (c) saved by the training forward;
    // gamma, dgamma, dbeta (c) or NULL
    size_t stride = (size_t)c * hw;
#pragma omp parallel for schedule(static) if ((size_t)n * c * hw >= PARALLEL_MIN)
    for (int ch = 0; ch < c; ch++) {
        double s1, s2;
        size_t off = (size_t)ch * hw;
        norm_backward_group(din ? din + off : NULL, &s1, &s2, dout + off, in + off, n, stride,
                            hw, mean[ch], rstd[ch], gamma ? gamma[ch] : 1.0f);
        if (dgamma)
            dgamma[ch] += (float)s2;
        if (dbeta)
            dbeta[ch] += (float)s1;
    }
}
