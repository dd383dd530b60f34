/* SSIM (Wang et al. 2004) with its gradient.
 *
 * Per channel, local means, variances and covariance come from a window (Gaussian σ = 1.5,
 * 11×11, or uniform), evaluated only where the window fits inside the image ("valid"), which
 * is exactly scikit-image's cropped average. Variances are population ones
 * (use_sample_covariance=False). The index is averaged over positions, channels and images.
 *
 * Gradient: with S = (2 μx μy + C1)(2 σxy + C2) / ((μx² + μy² + C1)(σx² + σy² + C2)) at each
 * position and μx = G∗x, σx² = G∗x² − μx², σxy = G∗(xy) − μx μy,
 *     dS/dx = Gᵀ∗A + 2x · Gᵀ∗B + y · Gᵀ∗C,
 * with A = ∂S/∂μx − 2 μx ∂S/∂σx² − μy ∂S/∂σxy, B = ∂S/∂σx², C = ∂S/∂σxy, and Gᵀ∗ the adjoint of
 * the valid filter (a zero-padded full convolution). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "percept/percept.h"

#define MAX_TAPS 64

typedef struct {
    int taps;
    float w[MAX_TAPS]; /* 1-D weights; the window is their outer product */
} Window;

static void make_window(Window *win, const PerceptSsimConfig *cfg)
{
    win->taps = cfg->window;
    double sum = 0, r = (cfg->window - 1) / 2.0;
    for (int i = 0; i < win->taps; i++) {
        double v = cfg->sigma > 0 ? exp(-(i - r) * (i - r) / (2.0 * cfg->sigma * cfg->sigma)) : 1.0;
        win->w[i] = (float)v;
        sum += v;
    }
    for (int i = 0; i < win->taps; i++)
        win->w[i] = (float)(win->w[i] / sum);
}

/* out (ho×wo) = valid separable filter of in (h×w); tmp holds h×wo */
static void filter_valid(float *out, const float *in, int h, int w, const Window *g, float *tmp)
{
    const int t = g->taps, wo = w - t + 1, ho = h - t + 1;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < wo; x++) {
            float acc = 0;
            for (int k = 0; k < t; k++)
                acc += g->w[k] * in[(size_t)y * w + x + k];
            tmp[(size_t)y * wo + x] = acc;
        }
    for (int y = 0; y < ho; y++)
        for (int x = 0; x < wo; x++) {
            float acc = 0;
            for (int k = 0; k < t; k++)
                acc += g->w[k] * tmp[(size_t)(y + k) * wo + x];
            out[(size_t)y * wo + x] = acc;
        }
}

/* out (h×w) = adjoint of filter_valid applied to in (ho×wo); tmp holds h×wo */
static void filter_adjoint(float *out, const float *in, int h, int w, const Window *g, float *tmp)
{
    const int t = g->taps, wo = w - t + 1, ho = h - t + 1;
    memset(tmp, 0, sizeof(float) * h * wo);
    for (int y = 0; y < ho; y++)
        for (int k = 0; k < t; k++)
            for (int x = 0; x < wo; x++)
                tmp[(size_t)(y + k) * wo + x] += g->w[k] * in[(size_t)y * wo + x];
    memset(out, 0, sizeof(float) * h * w);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < wo; x++)
            for (int k = 0; k < t; k++)
                out[(size_t)y * w + x + k] += g->w[k] * tmp[(size_t)y * wo + x];
}

int percept_ssim(const PerceptTensor *x, const PerceptTensor *y, const PerceptSsimConfig *cfg,
                 double *value, float *grad)
{
    const PerceptSsimConfig def = PERCEPT_SSIM_WANG;
    if (!cfg)
        cfg = &def;
    if (x->n != y->n || x->c != y->c || x->h != y->h || x->w != y->w)
        return percept_fail("SSIM: images of %d×%d and %d×%d (×%d and ×%d channels) differ in size",
                            x->w, x->h, y->w, y->h, x->c, y->c);
    if (cfg->window < 1 || cfg->window > MAX_TAPS || !(cfg->data_range > 0))
        return percept_fail("SSIM: window must be 1..%d and the data range positive", MAX_TAPS);
    if (x->h < cfg->window || x->w < cfg->window)
        return percept_fail("SSIM: a %d×%d image is smaller than the %d×%d window", x->w, x->h,
                            cfg->window, cfg->window);
    Window g;
    make_window(&g, cfg);
    const int h = x->h, w = x->w, ho = h - g.taps + 1, wo = w - g.taps + 1;
    const size_t hw = (size_t)h * w, m = (size_t)ho * wo;
    const double c1 = pow(cfg->k1 * cfg->data_range, 2), c2 = pow(cfg->k2 * cfg->data_range, 2);
    const int planes = x->n * x->c;
    const double count = (double)planes * m;
    double total = 0;
    int failed = 0;
#pragma omp parallel for reduction(+ : total) schedule(dynamic)
    for (int p = 0; p < planes; p++) {
        /* five filtered maps, three gradient maps, products and scratch for one plane */
        float *buf = malloc(sizeof(float) * (8 * m + 3 * hw + (size_t)h * wo));
        if (!buf) {
            failed = 1;
            continue;
        }
        float *mx = buf, *my = mx + m, *sxx = my + m, *syy = sxx + m, *sxy = syy + m;
        float *ga = sxy + m, *gb = ga + m, *gc = gb + m, *prod = gc + m, *full = prod + hw;
        float *full2 = full + hw, *tmp = full2 + hw;
        const float *a = x->data + (size_t)p * hw, *b = y->data + (size_t)p * hw;
        filter_valid(mx, a, h, w, &g, tmp);
        filter_valid(my, b, h, w, &g, tmp);
        for (size_t i = 0; i < hw; i++)
            prod[i] = a[i] * a[i];
        filter_valid(sxx, prod, h, w, &g, tmp);
        for (size_t i = 0; i < hw; i++)
            prod[i] = b[i] * b[i];
        filter_valid(syy, prod, h, w, &g, tmp);
        for (size_t i = 0; i < hw; i++)
            prod[i] = a[i] * b[i];
        filter_valid(sxy, prod, h, w, &g, tmp);
        double plane_sum = 0;
        for (size_t i = 0; i < m; i++) {
            double ux = mx[i], uy = my[i];
            double vx = sxx[i] - ux * ux, vy = syy[i] - uy * uy, vxy = sxy[i] - ux * uy;
            double n1 = 2 * ux * uy + c1, n2 = 2 * vxy + c2;
            double d1 = ux * ux + uy * uy + c1, d2 = vx + vy + c2;
            double s = n1 * n2 / (d1 * d2);
            plane_sum += s;
            double ds_dux = 2 * uy * n2 / (d1 * d2) - 2 * ux * s / d1;
            double ds_dvx = -s / d2, ds_dvxy = 2 * n1 / (d1 * d2);
            ga[i] = (float)((ds_dux - 2 * ux * ds_dvx - uy * ds_dvxy) / count);
            gb[i] = (float)(ds_dvx / count);
            gc[i] = (float)(ds_dvxy / count);
        }
        total += plane_sum;
        if (grad) {
            float *out = grad + (size_t)p * hw;
            filter_adjoint(out, ga, h, w, &g, tmp);
            filter_adjoint(full, gb, h, w, &g, tmp);
            filter_adjoint(full2, gc, h, w, &g, tmp);
            for (size_t i = 0; i < hw; i++)
                out[i] += 2 * a[i] * full[i] + b[i] * full2[i];
        }
        free(buf);
    }
    if (failed)
        return percept_fail("SSIM: out of memory");
    *value = total / count;
    return 0;
}
