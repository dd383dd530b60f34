/* The losses' and Adam's arithmetic on the GPU: twins of percept_loss_mse, percept_loss_l1,
 * percept_loss_tv, the Gram difference of percept_loss_style (core/losses/pixel.c, gram.c)
 * and the host's Adam step (core/nets/math.c). The Gram products themselves are cuBLAS's
 * (math.cu). A loss's value is a sum in double: each block sums its share into partial[its
 * index], then gpu_sum_partials adds the partials in one block — a fixed order, so a value is
 * the same on every run (no atomics). */
#include "common.cuh"
#include "kernels.h"

/* blocks of a reduction over n elements: each thread strides through several */
unsigned gpu_reduce_blocks(size_t n)
{
    const unsigned b = blocks(n);
    return b < 1024u ? (b ? b : 1u) : 1024u;
}

__global__ void sum_partials_k(double *out, const double *partial, unsigned count)
{
    double s[1] = {0};
    for (unsigned i = threadIdx.x; i < count; i += blockDim.x)
        s[0] += partial[i];
    block_sum<1>(s);
    if (threadIdx.x == 0)
        *out = s[0];
}

void gpu_sum_partials(double *out, const double *partial, unsigned count)
{
    LAUNCH(sum_partials_k, 1, out, partial, count);
}

/* ---- pixel losses --------------------------------------------------------------------- */

__global__ void mse_k(double *partial, float *grad, const float *x, const float *t, size_t n,
                      float scale)
{
    double s[1] = {0};
    FOR_EACH(i, n) {
        const float d = x[i] - t[i];
        s[0] += (double)d * d;
        if (grad)
            grad[i] = scale * d;
    }
    block_sum<1>(s);
    if (threadIdx.x == 0)
        partial[blockIdx.x] = s[0];
}

void gpu_mse(double *partial, float *grad, const float *x, const float *t, size_t n)
{
    LAUNCH(mse_k, gpu_reduce_blocks(n), partial, grad, x, t, n, 2.0f / (float)n);
}

__global__ void l1_k(double *partial, float *grad, const float *x, const float *t, size_t n,
                     float scale)
{
    double s[1] = {0};
    FOR_EACH(i, n) {
        const float d = x[i] - t[i];
        s[0] += fabs((double)d);
        if (grad)
            grad[i] = d > 0 ? scale : d < 0 ? -scale : 0.0f;
    }
    block_sum<1>(s);
    if (threadIdx.x == 0)
        partial[blockIdx.x] = s[0];
}

void gpu_l1(double *partial, float *grad, const float *x, const float *t, size_t n)
{
    LAUNCH(l1_k, gpu_reduce_blocks(n), partial, grad, x, t, n, 1.0f / (float)n);
}

/* Each pixel adds the squared differences to its right and lower neighbours, and its
 * gradient gathers the four differences it takes part in (the CPU's order). */
__global__ void tv_k(double *partial, float *grad, const float *x, size_t total, int h, int w,
                     float scale)
{
    double s[1] = {0};
    FOR_EACH(idx, total) {
        const int j = (int)(idx % w), i = (int)(idx / w % h);
        const float *v = x + (idx - (size_t)i * w - j); /* the plane */
        const float c = v[i * w + j];
        float acc = 0;
        if (j + 1 < w) {
            const float d = v[i * w + j + 1] - c;
            s[0] += (double)d * d;
            acc -= 2 * d;
        }
        if (j > 0)
            acc += 2 * (c - v[i * w + j - 1]);
        if (i + 1 < h) {
            const float d = v[(i + 1) * w + j] - c;
            s[0] += (double)d * d;
            acc -= 2 * d;
        }
        if (i > 0)
            acc += 2 * (c - v[(i - 1) * w + j]);
        if (grad)
            grad[idx] = acc * scale;
    }
    block_sum<1>(s);
    if (threadIdx.x == 0)
        partial[blockIdx.x] = s[0];
}

void gpu_tv(double *partial, float *grad, const float *x, int planes, int h, int w, float scale)
{
    const size_t total = (size_t)planes * h * w;
    LAUNCH(tv_k, gpu_reduce_blocks(total), partial, grad, x, total, h, w, scale);
}

__global__ void count_nonfinite_k(double *partial, const float *x, size_t n)
{
    double s[1] = {0};
    FOR_EACH(i, n)
        s[0] += !isfinite(x[i]);
    block_sum<1>(s);
    if (threadIdx.x == 0)
        partial[blockIdx.x] = s[0];
}

void gpu_count_nonfinite(double *partial, const float *x, size_t n)
{
    LAUNCH(count_nonfinite_k, gpu_reduce_blocks(n), partial, x, n);
}

/* ---- style: g −= target, and Σ (g − target)² -------------------------------------------- */

__global__ void gram_difference_k(double *partial, float *g, const float *target, size_t total,
                                  size_t cc, int per_image)
{
    double s[1] = {0};
    FOR_EACH(i, total) {
        const float d = g[i] - target[per_image ? i : i % cc];
        g[i] = d;
        s[0] += (double)d * d;
    }
    block_sum<1>(s);
    if (threadIdx.x == 0)
        partial[blockIdx.x] = s[0];
}

void gpu_gram_difference(double *partial, float *g, const float *target, int n, size_t cc,
                         int per_image)
{
    const size_t total = (size_t)n * cc;
    LAUNCH(gram_difference_k, gpu_reduce_blocks(total), partial, g, target, total, cc, per_image);
}

/* ---- vectors and Adam ------------------------------------------------------------------- */

__global__ void axpy_k(float *y, float a, const float *x, size_t n, int assign)
{
    FOR_EACH(i, n)
        y[i] = assign ? __fmul_rn(a, x[i]) : y[i] + __fmul_rn(a, x[i]);
}

void gpu_axpy(float *y, float a, const float *x, size_t n, int assign)
{
    if (n)
        LAUNCH(axpy_k, blocks(n), y, a, x, n, assign);
}

/* the host's formula (core/nets/math.c), each product rounded before it is added, as there
 * (no fused multiply-adds: Adam's updates compound, so GPU and CPU runs stay the same) */
__global__ void adam_k(float *p, float *m, float *v, const float *g, size_t n, GpuAdam c)
{
    FOR_EACH(i, n) {
        const float gi = g[i];
        m[i] = __fmul_rn(c.b1, m[i]) + __fmul_rn(1.0f - c.b1, gi);
        v[i] = __fmul_rn(c.b2, v[i]) + __fmul_rn(__fmul_rn(1.0f - c.b2, gi), gi);
        const float q = c.decay ? __fmul_rn(p[i], c.keep) : p[i];
        p[i] = q - __fmul_rn(c.step_size, m[i] / (sqrtf(v[i]) / c.bc2_sqrt + c.eps));
    }
}

void gpu_adam(float *p, float *m, float *v, const float *g, size_t n, GpuAdam c)
{
    if (n)
        LAUNCH(adam_k, blocks(n), p, m, v, g, n, c);
}

/* ---- SSIM ---------------------------------------------------------------------------------
 * core/losses/ssim.c's ssim_plane over every plane at once, in four gathers (no atomics):
 * the five maps (x, y, x², y², xy) filtered along rows ("valid"), then along columns, giving
 * each position's index and the three coefficient maps of its gradient; the gradient is the
 * adjoint filter of those, columns then rows. Each filter adds its taps in the CPU's order
 * (the adjoints': the order the CPU's scatter reaches an element in). */

/* rows: 5 maps of planes × h × wo */
__global__ void ssim_rows_k(float *rows, const float *x, const float *y, GpuSsim d)
{
    const int wo = d.w - d.taps + 1;
    const size_t total = (size_t)d.planes * d.h * wo;
    FOR_EACH(i, total) {
        const size_t line = i / wo; /* plane · h + row */
        const float *a = x + line * d.w + i % wo, *b = y + line * d.w + i % wo;
        float s[5] = {0, 0, 0, 0, 0};
        for (int k = 0; k < d.taps; k++) {
            const float ak = a[k], bk = b[k], g = d.win[k];
            s[0] += g * ak;
            s[1] += g * bk;
            s[2] += g * (ak * ak);
            s[3] += g * (bk * bk);
            s[4] += g * (ak * bk);
        }
        for (int j = 0; j < 5; j++)
            rows[j * total + i] = s[j];
    }
}

/* each valid position's index into partial; with coef (3 maps of planes × ho × wo) the
 * gradient's coefficients, weighted by ws (the plane's share of the mean) */
__global__ void ssim_map_k(double *partial, float *coef, const float *rows, GpuSsim d, double ws)
{
    const int wo = d.w - d.taps + 1, ho = d.h - d.taps + 1;
    const size_t total = (size_t)d.planes * ho * wo, rows_total = (size_t)d.planes * d.h * wo;
    double sum[1] = {0};
    FOR_EACH(i, total) {
        const size_t p = i / ((size_t)ho * wo);
        const int r = (int)(i / wo % ho), c = (int)(i % wo);
        const float *base = rows + (p * d.h + r) * wo + c;
        float f[5] = {0, 0, 0, 0, 0};
        for (int k = 0; k < d.taps; k++)
            for (int j = 0; j < 5; j++)
                f[j] += d.win[k] * base[j * rows_total + (size_t)k * wo];
        const double ux = f[0], uy = f[1];
        const double vx = f[2] - ux * ux, vy = f[3] - uy * uy, vxy = f[4] - ux * uy;
        const double n1 = 2 * ux * uy + d.c1, n2 = 2 * vxy + d.c2;
        const double d1 = ux * ux + uy * uy + d.c1, d2 = vx + vy + d.c2;
        const double cs = n2 / d2, s = n1 / d1 * cs;
        sum[0] += s;
        if (coef) {
            const double d_ux = ws * (2 * uy * n2 / (d1 * d2) - 2 * ux * s / d1);
            const double d_vx = -(ws * s) / d2;
            const double d_vxy = (ws * n1 / d1) * 2 / d2;
            coef[i] = (float)(d_ux - 2 * ux * d_vx - uy * d_vxy);
            coef[total + i] = (float)d_vx;
            coef[2 * total + i] = (float)d_vxy;
        }
    }
    block_sum<1>(sum);
    if (threadIdx.x == 0)
        partial[blockIdx.x] = sum[0];
}

/* One output of the valid filter's adjoint along a line, for 3 maps at once: s[j] = Σ_k
 * win[k]·maps[j][line + (pos − k)·step] over the taps whose source pos − k lies in [0, len),
 * k descending — the order the CPU's scatter (filter_adjoint) adds them in. */
__device__ inline void adjoint_taps(float s[3], const float *maps, size_t map_size, size_t line,
                                    size_t step, int pos, int len, const GpuSsim &d)
{
    s[0] = s[1] = s[2] = 0;
    for (int k = d.taps - 1; k >= 0; k--) {
        const int src = pos - k;
        if (src < 0 || src >= len)
            continue;
        for (int j = 0; j < 3; j++)
            s[j] += d.win[k] * maps[j * map_size + line + (size_t)src * step];
    }
}

/* the column filter's adjoint: cols (3 maps of planes × h × wo) */
__global__ void ssim_cols_adjoint_k(float *cols, const float *coef, GpuSsim d)
{
    const int wo = d.w - d.taps + 1, ho = d.h - d.taps + 1;
    const size_t total = (size_t)d.planes * d.h * wo, coef_total = (size_t)d.planes * ho * wo;
    FOR_EACH(i, total) {
        const size_t p = i / ((size_t)d.h * wo);
        const int r = (int)(i / wo % d.h), c = (int)(i % wo);
        float s[3];
        adjoint_taps(s, coef, coef_total, p * ho * wo + c, wo, r, ho, d);
        for (int j = 0; j < 3; j++)
            cols[j * total + i] = s[j];
    }
}

/* the row filter's adjoint, and the gradient: A + 2x·B + y·C */
__global__ void ssim_grad_k(float *grad, const float *cols, const float *x, const float *y,
                            GpuSsim d)
{
    const int wo = d.w - d.taps + 1;
    const size_t total = (size_t)d.planes * d.h * d.w, cols_total = (size_t)d.planes * d.h * wo;
    FOR_EACH(i, total) {
        float s[3];
        adjoint_taps(s, cols, cols_total, i / d.w * wo, 1, (int)(i % d.w), wo, d);
        grad[i] = s[0] + (2 * x[i] * s[1] + y[i] * s[2]);
    }
}

size_t gpu_ssim_scratch_floats(const GpuSsim *d)
{
    const size_t wo = d->w - d->taps + 1, ho = d->h - d->taps + 1;
    return (size_t)d->planes * (8 * d->h * wo + 3 * ho * wo);
}

void gpu_ssim(double *partial, float *grad, const float *x, const float *y, const GpuSsim *d,
              float *scratch)
{
    const size_t wo = d->w - d->taps + 1, ho = d->h - d->taps + 1;
    const size_t rows_total = (size_t)d->planes * d->h * wo, m = (size_t)d->planes * ho * wo;
    float *rows = scratch, *coef = rows + 5 * rows_total, *cols = coef + 3 * m;
    /* the CPU's weight: (1 / planes) / positions per plane */
    const double ws = 1.0 / d->planes / (double)(ho * wo);
    LAUNCH(ssim_rows_k, blocks(rows_total), rows, x, y, *d);
    LAUNCH(ssim_map_k, gpu_reduce_blocks(m), partial, grad ? coef : (float *)NULL, rows, *d, ws);
    if (grad) {
        LAUNCH(ssim_cols_adjoint_k, blocks(rows_total), cols, coef, *d);
        LAUNCH(ssim_grad_k, blocks((size_t)d->planes * d->h * d->w), grad, cols, x, y, *d);
    }
}
