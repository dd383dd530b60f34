/* Instance and batch normalisation (PyTorch semantics: biased variance for normalising,
 * eps inside the square root). Statistics accumulate in double so 1024² planes of values
 * near 100 keep their precision. */
#include <math.h>
#include <string.h>

#include "layers.h"

/* mean and 1/sqrt(var + eps) of `count` values read from `planes` planes of `hw` floats
 * spaced `stride` apart (stride == hw for one contiguous block). */
static void plane_stats(float *mean, float *rstd, const float *x, int planes, size_t stride,
                        int hw, float eps)
{
    /* one pass: sums of x and x² in double stay exact enough for the variance of 1024²
     * planes of values near 100 (relative error ~1e-12), and the data is read once */
    double s = 0, ss = 0;
    for (int p = 0; p < planes; p++) {
        const float *v = x + (size_t)p * stride;
        double ps = 0, pss = 0;
#pragma omp simd reduction(+ : ps, pss)
        for (int i = 0; i < hw; i++) {
            ps += v[i];
            pss += (double)v[i] * v[i];
        }
        s += ps;
        ss += pss;
    }
    double count = (double)planes * hw, m = s / count, var = ss / count - m * m;
    *mean = (float)m;
    *rstd = (float)(1.0 / sqrt((var > 0 ? var : 0) + eps));
}

/* out = (in - mean) * rstd * gamma + beta over one plane */
static void normalise_plane(float *out, const float *in, int hw, float mean, float rstd,
                            float gamma, float beta)
{
    float a = rstd * gamma, b = beta - mean * a;
    for (int i = 0; i < hw; i++)
        out[i] = in[i] * a + b;
}

void instance_norm_forward(float *out, float *mean, float *rstd, const float *in,
                           const float *gamma, const float *beta, int n, int c, int hw,
                           float eps)
{
    // in, out (n,c,hw); mean, rstd (n*c); gamma, beta (c) or NULL
#pragma omp parallel for schedule(static)
    for (int p = 0; p < n * c; p++) {
        const float *x = in + (size_t)p * hw;
        plane_stats(&mean[p], &rstd[p], x, 1, hw, hw, eps);
        int ch = p % c;
        normalise_plane(out + (size_t)p * hw, x, hw, mean[p], rstd[p], gamma ? gamma[ch] : 1.0f,
                        beta ? beta[ch] : 0.0f);
    }
}

void instance_norm_apply(float *out, const float *in, const float *mean, const float *rstd,
                         const float *gamma, const float *beta, int n, int c, int hw)
{
#pragma omp parallel for schedule(static)
    for (int p = 0; p < n * c; p++) {
        int ch = p % c;
        normalise_plane(out + (size_t)p * hw, in + (size_t)p * hw, hw, mean[p], rstd[p],
                        gamma ? gamma[ch] : 1.0f, beta ? beta[ch] : 0.0f);
    }
}

/* Gradient of y = xhat·g + b with xhat normalised over `count` values:
 * dx = g·rstd·(dy − mean(dy) − xhat·mean(dy·xhat)). Returns sum(dy) and sum(dy·xhat). */
static void norm_backward_group(float *din, double *sum_dy, double *sum_dy_xhat,
                                const float *dout, const float *in, int planes, size_t stride,
                                int hw, float mean, float rstd, float g)
{
    double s1 = 0, s2 = 0;
    for (int p = 0; p < planes; p++) {
        const float *dy = dout + (size_t)p * stride, *x = in + (size_t)p * stride;
        for (int i = 0; i < hw; i++) {
            s1 += dy[i];
            s2 += (double)dy[i] * (x[i] - mean) * rstd;
        }
    }
    *sum_dy = s1;
    *sum_dy_xhat = s2;
    if (!din)
        return;
    double count = (double)planes * hw;
    float m1 = (float)(s1 / count), m2 = (float)(s2 / count), k = g * rstd;
    for (int p = 0; p < planes; p++) {
        const float *dy = dout + (size_t)p * stride, *x = in + (size_t)p * stride;
        float *dx = din + (size_t)p * stride;
        for (int i = 0; i < hw; i++)
            dx[i] = k * (dy[i] - m1 - (x[i] - mean) * rstd * m2);
    }
}

void instance_norm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                            const float *in, const float *mean, const float *rstd,
                            const float *gamma, int n, int c, int hw)
{
    /* a thread owns a channel, so the parameter sums need no atomics */
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < c; ch++) {
        double g_acc = 0, b_acc = 0;
        for (int b = 0; b < n; b++) {
            int p = b * c + ch;
            double s1, s2;
            norm_backward_group(din ? din + (size_t)p * hw : NULL, &s1, &s2,
                                dout + (size_t)p * hw, in + (size_t)p * hw, 1, hw, hw, mean[p],
                                rstd[p], gamma ? gamma[ch] : 1.0f);
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
    // in, out (n,c,hw); mean, rstd, running stats, gamma, beta (c)
    size_t stride = (size_t)c * hw;
#pragma omp parallel for schedule(static)
    for (int ch = 0; ch < c; ch++) {
        const float *x = in + (size_t)ch * hw;
        plane_stats(&mean[ch], &rstd[ch], x, n, stride, hw, eps);
        float g = gamma ? gamma[ch] : 1.0f, b = beta ? beta[ch] : 0.0f;
        for (int i = 0; i < n; i++)
            normalise_plane(out + i * stride + (size_t)ch * hw, x + i * stride, hw, mean[ch],
                            rstd[ch], g, b);
        /* PyTorch updates the running variance with the unbiased estimate */
        double count = (double)n * hw;
        double var = 1.0 / ((double)rstd[ch] * rstd[ch]) - eps;
        double unbiased = count > 1 ? var * count / (count - 1) : var;
        if (running_mean)
            running_mean[ch] = (1 - momentum) * running_mean[ch] + momentum * mean[ch];
        if (running_var)
            running_var[ch] = (float)((1 - momentum) * running_var[ch] + momentum * unbiased);
    }
}

void batch_norm_forward_eval(float *out, const float *in, const float *running_mean,
                             const float *running_var, const float *gamma, const float *beta,
                             int n, int c, int hw, float eps)
{
    size_t stride = (size_t)c * hw;
#pragma omp parallel for collapse(2) schedule(static)
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            normalise_plane(out + i * stride + (size_t)ch * hw, in + i * stride + (size_t)ch * hw,
                            hw, running_mean[ch], 1.0f / sqrtf(running_var[ch] + eps),
                            gamma ? gamma[ch] : 1.0f, beta ? beta[ch] : 0.0f);
}

void batch_norm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                         const float *in, const float *mean, const float *rstd,
                         const float *gamma, int n, int c, int hw)
{
    size_t stride = (size_t)c * hw;
#pragma omp parallel for schedule(static)
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
