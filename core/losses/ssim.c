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
#include "graph.h"

#define MAX_TAPS SSIM_MAX_TAPS

typedef struct {
    int taps;
    float w[MAX_TAPS]; /* 1-D weights; the window is their outer product */
} Window;

void ssim_window(const PerceptSsimConfig *cfg, float *w)
{
    double sum = 0, r = (cfg->window - 1) / 2.0;
    for (int i = 0; i < cfg->window; i++) {
        double v = cfg->sigma > 0 ? exp(-(i - r) * (i - r) / (2.0 * cfg->sigma * cfg->sigma)) : 1.0;
        w[i] = (float)v;
        sum += v;
    }
    for (int i = 0; i < cfg->window; i++)
        w[i] = (float)(w[i] / sum);
}

static void make_window(Window *win, const PerceptSsimConfig *cfg)
{
    win->taps = cfg->window;
    ssim_window(cfg, win->w);
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

/* One plane: mean SSIM and mean contrast-structure term over the valid positions, and, when
 * grad is non-NULL, grad += ws · d(mean SSIM)/dx + wcs · d(mean CS)/dx. buf holds
 * plane_floats() floats. */
static size_t plane_floats(int h, int w, int taps)
{
    size_t m = (size_t)(h - taps + 1) * (w - taps + 1), hw = (size_t)h * w;
    return 8 * m + 3 * hw + (size_t)h * w;
}

static void ssim_plane(const float *a, const float *b, int h, int w, const Window *g, double c1,
                       double c2, double *s_mean, double *cs_mean, double ws, double wcs,
                       float *grad, float *buf)
{
    const int ho = h - g->taps + 1, wo = w - g->taps + 1;
    const size_t hw = (size_t)h * w, m = (size_t)ho * wo;
    float *mx = buf, *my = mx + m, *sxx = my + m, *syy = sxx + m, *sxy = syy + m;
    float *ga = sxy + m, *gb = ga + m, *gc = gb + m, *prod = gc + m, *full = prod + hw;
    float *full2 = full + hw, *tmp = full2 + hw;
    filter_valid(mx, a, h, w, g, tmp);
    filter_valid(my, b, h, w, g, tmp);
    for (size_t i = 0; i < hw; i++)
        prod[i] = a[i] * a[i];
    filter_valid(sxx, prod, h, w, g, tmp);
    for (size_t i = 0; i < hw; i++)
        prod[i] = b[i] * b[i];
    filter_valid(syy, prod, h, w, g, tmp);
    for (size_t i = 0; i < hw; i++)
        prod[i] = a[i] * b[i];
    filter_valid(sxy, prod, h, w, g, tmp);
    double s_sum = 0, cs_sum = 0;
    ws /= (double)m;
    wcs /= (double)m;
    for (size_t i = 0; i < m; i++) {
        double ux = mx[i], uy = my[i];
        double vx = sxx[i] - ux * ux, vy = syy[i] - uy * uy, vxy = sxy[i] - ux * uy;
        double n1 = 2 * ux * uy + c1, n2 = 2 * vxy + c2;
        double d1 = ux * ux + uy * uy + c1, d2 = vx + vy + c2;
        double cs = n2 / d2, s = n1 / d1 * cs;
        s_sum += s;
        cs_sum += cs;
        /* ∂/∂μx, ∂/∂σx², ∂/∂σxy of ws·S + wcs·CS */
        double d_ux = ws * (2 * uy * n2 / (d1 * d2) - 2 * ux * s / d1);
        double d_vx = -(ws * s + wcs * cs) / d2;
        double d_vxy = (ws * n1 / d1 + wcs) * 2 / d2;
        ga[i] = (float)(d_ux - 2 * ux * d_vx - uy * d_vxy);
        gb[i] = (float)d_vx;
        gc[i] = (float)d_vxy;
    }
    *s_mean = s_sum / (double)m;
    *cs_mean = cs_sum / (double)m;
    if (!grad)
        return;
    filter_adjoint(full, ga, h, w, g, tmp);
    for (size_t i = 0; i < hw; i++)
        grad[i] += full[i];
    filter_adjoint(full, gb, h, w, g, tmp);
    filter_adjoint(full2, gc, h, w, g, tmp);
    for (size_t i = 0; i < hw; i++)
        grad[i] += 2 * a[i] * full[i] + b[i] * full2[i];
}

static int check_pair(const PerceptTensor *x, const PerceptTensor *y, const char *what)
{
    if (x->n != y->n || x->c != y->c || x->h != y->h || x->w != y->w)
        return percept_fail("%s: images of %d×%d and %d×%d (×%d and ×%d channels) differ in size",
                            what, x->w, x->h, y->w, y->h, x->c, y->c);
    return 0;
}

static int check_ssim(const PerceptTensor *x, const PerceptTensor *y,
                      const PerceptSsimConfig *cfg)
{
    if (check_pair(x, y, "SSIM"))
        return -1;
    if (cfg->window < 1 || cfg->window > MAX_TAPS || !(cfg->data_range > 0))
        return percept_fail("SSIM: window must be 1..%d and the data range positive", MAX_TAPS);
    if (x->h < cfg->window || x->w < cfg->window)
        return percept_fail("SSIM: a %d×%d image is smaller than the %d×%d window", x->w, x->h,
                            cfg->window, cfg->window);
    return 0;
}

int ssim_where(const PerceptTensor *x, const PerceptTensor *y, const PerceptSsimConfig *cfg,
               double *value, float *grad)
{
    float w[MAX_TAPS];
    if (check_ssim(x, y, cfg))
        return -1;
    ssim_window(cfg, w);
    return MATH_FOR(x->data, y->data, grad)->ssim(x, y, cfg, w, value, grad);
}

int percept_ssim(const PerceptTensor *x, const PerceptTensor *y, const PerceptSsimConfig *cfg,
                 double *value, float *grad)
{
    const PerceptSsimConfig def = PERCEPT_SSIM_WANG;
    if (!cfg)
        cfg = &def;
    if (check_ssim(x, y, cfg))
        return -1;
    Window g;
    make_window(&g, cfg);
    const size_t hw = (size_t)x->h * x->w;
    const double c1 = pow(cfg->k1 * cfg->data_range, 2), c2 = pow(cfg->k2 * cfg->data_range, 2);
    const int planes = x->n * x->c;
    double total = 0;
    int failed = 0;
    if (grad)
        memset(grad, 0, sizeof(float) * hw * planes);
#pragma omp parallel for reduction(+ : total) schedule(dynamic)
    for (int p = 0; p < planes; p++) {
        float *buf = malloc(sizeof(float) * plane_floats(x->h, x->w, g.taps));
        double s, cs;
        if (!buf) {
            failed = 1;
            continue;
        }
        ssim_plane(x->data + p * hw, y->data + p * hw, x->h, x->w, &g, c1, c2, &s, &cs,
                   1.0 / planes, 0, grad ? grad + p * hw : NULL, buf);
        total += s;
        free(buf);
    }
    if (failed)
        return percept_fail("SSIM: out of memory");
    *value = total / planes;
    return 0;
}

/* ---- MS-SSIM (Wang, Simoncelli & Bovik 2003) --------------------------------------------
 * As pytorch-msssim: five scales with weights 0.0448, 0.2856, 0.3001, 0.2363, 0.1333; 2×2
 * average pooling between scales (an odd side padded by one zero, counted in the mean);
 * per image and channel MS-SSIM = Π_{j<5} relu(cs_j)^w_j · relu(ssim_5)^w_5, then averaged. */

#define SCALES 5
static const double ms_weights[SCALES] = {0.0448, 0.2856, 0.3001, 0.2363, 0.1333};

/* 2×2 average pool with PyTorch's padding = side % 2 (zeros counted) */
static void pool_half(float *out, const float *in, int h, int w, int *ho, int *wo)
{
    const int ph = h % 2, pw = w % 2;
    *ho = (h + 2 * ph - 2) / 2 + 1;
    *wo = (w + 2 * pw - 2) / 2 + 1;
    for (int y = 0; y < *ho; y++)
        for (int x = 0; x < *wo; x++) {
            float acc = 0;
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) {
                    int iy = 2 * y - ph + i, ix = 2 * x - pw + j;
                    if (iy >= 0 && iy < h && ix >= 0 && ix < w)
                        acc += in[(size_t)iy * w + ix];
                }
            out[(size_t)y * *wo + x] = acc * 0.25f;
        }
}

static void pool_half_adjoint(float *din, const float *dout, int h, int w, int ho, int wo)
{
    const int ph = h % 2, pw = w % 2;
    for (int y = 0; y < ho; y++)
        for (int x = 0; x < wo; x++)
            for (int i = 0; i < 2; i++)
                for (int j = 0; j < 2; j++) {
                    int iy = 2 * y - ph + i, ix = 2 * x - pw + j;
                    if (iy >= 0 && iy < h && ix >= 0 && ix < w)
                        din[(size_t)iy * w + ix] += 0.25f * dout[(size_t)y * wo + x];
                }
}

/* One plane through all scales: value and, with grad, d value / d a (assigned). */
static double ms_ssim_plane(const float *a, const float *b, int h, int w, const Window *g,
                            double c1, double c2, float *grad, float *area)
{
    float *xs[SCALES], *ys[SCALES], *gs[SCALES];
    int hs[SCALES], wsz[SCALES];
    size_t off = 0;
    hs[0] = h;
    wsz[0] = w;
    for (int j = 0; j < SCALES; j++) {
        size_t n = (size_t)hs[j] * wsz[j];
        xs[j] = j ? area + off : (float *)a;
        ys[j] = j ? area + off + n : (float *)b;
        gs[j] = area + off + (j ? 2 * n : 0);
        off += (j ? 3 : 1) * n;
        if (j + 1 < SCALES) {
            pool_half(area + off, xs[j], hs[j], wsz[j], &hs[j + 1], &wsz[j + 1]);
            size_t n1 = (size_t)hs[j + 1] * wsz[j + 1];
            pool_half(area + off + n1, ys[j], hs[j], wsz[j], &hs[j + 1], &wsz[j + 1]);
        }
    }
    float *buf = area + off;
    double s[SCALES], cs[SCALES], value = 1;
    for (int j = 0; j < SCALES; j++) {
        ssim_plane(xs[j], ys[j], hs[j], wsz[j], g, c1, c2, &s[j], &cs[j], 0, 0, NULL, buf);
        double term = j < SCALES - 1 ? cs[j] : s[j];
        value *= term > 0 ? pow(term, ms_weights[j]) : 0.0;
    }
    if (!grad)
        return value;
    /* d value / d term_j = w_j value / term_j; relu(term) = 0 passes no gradient */
    for (int j = SCALES - 1; j >= 0; j--) {
        size_t n = (size_t)hs[j] * wsz[j];
        double term = j < SCALES - 1 ? cs[j] : s[j], dterm = term > 0 ? ms_weights[j] * value / term : 0;
        double ignore_s, ignore_cs;
        memset(gs[j], 0, sizeof(float) * n);
        ssim_plane(xs[j], ys[j], hs[j], wsz[j], g, c1, c2, &ignore_s, &ignore_cs,
                   j == SCALES - 1 ? dterm : 0, j == SCALES - 1 ? 0 : dterm, gs[j], buf);
        if (j + 1 < SCALES)
            pool_half_adjoint(gs[j], gs[j + 1], hs[j], wsz[j], hs[j + 1], wsz[j + 1]);
    }
    if (gs[0] != grad)
        memcpy(grad, gs[0], sizeof(float) * (size_t)h * w);
    return value;
}

int percept_ms_ssim(const PerceptTensor *x, const PerceptTensor *y, double *value, float *grad)
{
    const PerceptSsimConfig cfg = PERCEPT_SSIM_WANG;
    const int min_side = (cfg.window - 1) * 16 + 1;
    if (check_pair(x, y, "MS-SSIM"))
        return -1;
    if (x->h < min_side || x->w < min_side)
        return percept_fail("MS-SSIM: a %d×%d image is too small for 5 scales (each side needs "
                            "at least %d pixels); use SSIM", x->w, x->h, min_side);
    Window g;
    make_window(&g, &cfg);
    const double c1 = pow(cfg.k1, 2), c2 = pow(cfg.k2, 2);
    const size_t hw = (size_t)x->h * x->w;
    const int planes = x->n * x->c;
    /* per plane: the pyramids of both images and their gradients, plus SSIM scratch */
    const size_t area = hw + 3 * hw / 2 + plane_floats(x->h, x->w, g.taps) + 64;
    double total = 0;
    int failed = 0;
#pragma omp parallel for reduction(+ : total) schedule(dynamic)
    for (int p = 0; p < planes; p++) {
        float *buf = malloc(sizeof(float) * area);
        if (!buf) {
            failed = 1;
            continue;
        }
        total += ms_ssim_plane(x->data + p * hw, y->data + p * hw, x->h, x->w, &g, c1, c2,
                               grad ? grad + p * hw : NULL, buf);
        free(buf);
    }
    if (failed)
        return percept_fail("MS-SSIM: out of memory");
    if (grad)
        for (size_t i = 0; i < hw * planes; i++)
            grad[i] /= planes;
    *value = total / planes;
    return 0;
}
