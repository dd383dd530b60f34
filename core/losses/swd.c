/* A sliced Wasserstein patch loss: how far the distribution of an image's Laplacian-pyramid
 * patches lies from its target's, as Karras et al.'s SWD metric measures it, but exact for
 * the patches taken and differentiable.
 *
 * Per image and pyramid level, every P×P patch (stride S; all channels) is projected on D
 * random unit directions — a P×P convolution with D filters — and, per direction, the
 * sorted projections of the image are compared with the target's sorted projections: the
 * squared 1-D Wasserstein-2 distance, whose gradient goes to each projection through the
 * rank it holds (Heitz et al.'s texture loss, on pixels instead of VGG features). A loss
 * that compares sorted values does not care where a texture's patches sit, only that the
 * image has them: the pixel losses' blur, which averages plausible textures into none, is
 * what it penalises.
 *
 * Two options keep that freedom from being abused. With `phases`, patches are compared only
 * with the target's at the same position modulo the period: an upsampling network can widen
 * its projections' spread with a grid of its own period (different offsets at each phase),
 * which a whole-image comparison takes for texture. With `window`, the comparison is made
 * window by window, so texture goes near where the target has it, not anywhere in the crop
 * (dark halos along edges were the cheapest spread to add).
 *
 * Each level's value is divided by the target level's variance (so the fine bands, whose
 * values are small, count as much as the coarse ones) and levels are averaged. New
 * directions are drawn for every target, from the seed and a hash of the target's values:
 * a training run sees many, and a run and its resumption draw the same ones. */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "laplacian.h"
#include "layers.h"
#include "percept/percept.h"

typedef struct {
    float v;
    int i;
} Ranked;

static int by_value(const void *a, const void *b)
{
    float x = ((const Ranked *)a)->v, y = ((const Ranked *)b)->v;
    return (x > y) - (x < y);
}

static int by_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

int percept_swd_config_check(const PerceptSwdConfig *cfg)
{
    if (cfg->patch < 1 || cfg->patch > 15 || cfg->directions < 1 || cfg->directions > 4096 ||
        cfg->stride < 1 || cfg->stride > 15 || cfg->levels < 1 || cfg->levels > 8 ||
        cfg->phases < 1 || cfg->phases > 16 || cfg->window < 0 || cfg->window > 4096)
        return percept_fail("SWD loss: patch 1..15, directions 1..4096, stride 1..15, "
                            "levels 1..8, phases 1..16 and window 0..4096 (got p%d d%d s%d "
                            "levels%d phases%d w%d)", cfg->patch, cfg->directions, cfg->stride,
                            cfg->levels, cfg->phases, cfg->window);
    return 0;
}

/* FNV-1a over the values' bits */
static uint64_t hash_floats(const float *v, size_t n)
{
    uint64_t h = 0xcbf29ce484222325ull;
    for (size_t i = 0; i < n; i++) {
        uint32_t bits;
        memcpy(&bits, &v[i], sizeof bits);
        h = (h ^ bits) * 0x100000001b3ull;
    }
    return h;
}

/* lev[k] (n·c planes of hk×wk): bands for k < levels − 1, the last level low-pass */
static int build_pyramid(float **lev, const PerceptTensor *x, int levels, const int *hk,
                         const int *wk, float *tmp, float *tmp2)
{
    const int planes = x->n * x->c;
    for (int k = 0; k < levels; k++)
        if (!(lev[k] = malloc(sizeof(float) * planes * (size_t)hk[k] * wk[k])))
            return percept_fail("SWD loss: out of memory for the pyramid");
    memcpy(lev[0], x->data, sizeof(float) * percept_tensor_numel(x));
    for (int k = 0; k + 1 < levels; k++)
        for (int p = 0; p < planes; p++)
            laplacian_step(lev[k] + (size_t)p * hk[k] * wk[k],
                           lev[k + 1] + (size_t)p * hk[k + 1] * wk[k + 1], hk[k], wk[k], tmp,
                           tmp2);
    return 0;
}

static double variance(const float *v, size_t n)
{
    double s = 0, ss = 0;
    for (size_t i = 0; i < n; i++) {
        s += v[i];
        ss += (double)v[i] * v[i];
    }
    return fmax(ss / n - (s / n) * (s / n), 0);
}

/* How patch positions are grouped: by window (window×window level pixels; 0: the whole
 * image), and within it by where they sit in a period×period cell (their phase). */
typedef struct {
    int period, window, windows_x, count;
} Grouping;

static Grouping grouping(const ConvShape *conv, int period, int window)
{
    const int span_y = (conv->hout - 1) * conv->stride, span_x = (conv->wout - 1) * conv->stride;
    Grouping g = {period, window, window ? span_x / window + 1 : 1, 0};
    g.count = g.windows_x * (window ? span_y / window + 1 : 1) * period * period;
    return g;
}

static int group_of(const ConvShape *conv, const Grouping *g, int i)
{
    const int y = i / conv->wout * conv->stride, x = i % conv->wout * conv->stride;
    const int win = g->window ? y / g->window * g->windows_x + x / g->window : 0;
    return (win * g->period + y % g->period) * g->period + x % g->period;
}

/* order lists the patch positions group by group, start[k]..start[k + 1] those of group k */
static int group_positions(const ConvShape *conv, const Grouping *g, int **order, int **start)
{
    const int positions = conv->hout * conv->wout;
    *order = malloc(sizeof(int) * positions);
    *start = calloc((size_t)g->count + 1, sizeof(int));
    int *next = malloc(sizeof(int) * g->count);
    if (!*order || !*start || !next) {
        free(next);
        return percept_fail("SWD loss: out of memory");
    }
    for (int i = 0; i < positions; i++)
        (*start)[group_of(conv, g, i) + 1]++;
    for (int k = 0; k < g->count; k++)
        (*start)[k + 1] += (*start)[k];
    memcpy(next, *start, sizeof(int) * g->count);
    for (int i = 0; i < positions; i++)
        (*order)[next[group_of(conv, g, i)]++] = i;
    free(next);
    return 0;
}

/* One level: its value (the mean over images, directions and patches, divided by the target
 * level's variance and the level count), and with gx non-NULL d value / d level. Each group
 * of patches is compared with the same group of the target. */
static int level_loss(const float *lx, const float *ly, int n, int c, int h, int w,
                      const PerceptSwdConfig *cfg, int period, int window, uint64_t seed,
                      double target_var, int levels, double *value, float *gx)
{
    const int P = cfg->patch, D = cfg->directions, dims = c * P * P;
    ConvShape conv = {n, c, h, w, D, P, cfg->stride, 0, PAD_ZERO, 0, 0, 1};
    conv2d_shape(&conv);
    const Grouping grp = grouping(&conv, period, window);
    const int groups = grp.count;
    const int positions = conv.hout * conv.wout;
    const double scale = 1.0 / ((double)n * D * (double)positions * target_var * levels);
    const size_t nz = (size_t)n * D * positions;
    float *dirs = malloc(sizeof(float) * (size_t)D * dims);
    float *zx = malloc(sizeof(float) * nz), *zy = malloc(sizeof(float) * nz);
    float *scratch = malloc(sizeof(float) * (conv2d_scratch_floats(&conv) + 1));
    int *order = NULL, *start = NULL;
    int rc = dirs && zx && zy && scratch ? group_positions(&conv, &grp, &order, &start)
                                         : percept_fail("SWD loss: out of memory");
    for (int d = 0; d < D && !rc; d++) {
        double norm = 0;
        float *u = dirs + (size_t)d * dims;
        for (int j = 0; j < dims; j++) {
            u[j] = percept_rng_normal(seed, (uint64_t)d * dims + j);
            norm += (double)u[j] * u[j];
        }
        for (int j = 0; j < dims; j++)
            u[j] = (float)(u[j] / sqrt(norm));
    }
    /* per (image, direction) sums, added in order afterwards: the same value on any number
     * of threads */
    double *sums = rc ? NULL : calloc((size_t)n * D, sizeof(double)), sum = 0;
    if (!rc && !sums)
        rc = percept_fail("SWD loss: out of memory");
    int failed = 0;
    if (!rc) {
        conv2d_forward(zx, lx, dirs, NULL, scratch, &conv, NULL);
        conv2d_forward(zy, ly, dirs, NULL, scratch, &conv, NULL);
#pragma omp parallel for schedule(dynamic) reduction(+ : failed)
        for (int bd = 0; bd < n * D; bd++) {
            float *px = zx + (size_t)bd * positions, *py = zy + (size_t)bd * positions;
            Ranked *r = malloc(sizeof(Ranked) * positions);
            float *q = malloc(sizeof(float) * positions);
            for (int g = 0; r && q && g < groups; g++) {
                const int a = start[g], m = start[g + 1] - a;
                for (int i = 0; i < m; i++) {
                    r[i] = (Ranked){px[order[a + i]], order[a + i]};
                    q[i] = py[order[a + i]];
                }
                qsort(r, m, sizeof *r, by_value);
                qsort(q, m, sizeof *q, by_float);
                for (int i = 0; i < m; i++) {
                    double diff = (double)r[i].v - q[i];
                    sums[bd] += diff * diff;
                    px[r[i].i] = (float)(2 * diff * scale); /* zx becomes d value / d zx */
                }
            }
            failed += !r || !q;
            free(r), free(q);
        }
        if (failed)
            rc = percept_fail("SWD loss: out of memory for sorting");
        for (int bd = 0; bd < n * D; bd++)
            sum += sums[bd];
    }
    free(sums);
    if (!rc && gx)
        conv2d_backward(gx, NULL, NULL, zx, lx, dirs, scratch, &conv);
    *value = sum * scale;
    free(dirs), free(zx), free(zy), free(scratch), free(order), free(start);
    return rc;
}

int percept_swd_loss(const PerceptTensor *x, const PerceptTensor *y, const PerceptSwdConfig *cfg,
                     double *value, float *grad)
{
    const PerceptSwdConfig def = PERCEPT_SWD_DEFAULT;
    if (!cfg)
        cfg = &def;
    if (percept_swd_config_check(cfg))
        return -1;
    if (x->n != y->n || x->c != y->c || x->h != y->h || x->w != y->w)
        return percept_fail("SWD loss: the two images differ in size (%d×%d and %d×%d)", x->w,
                            x->h, y->w, y->h);
    if (x->h < cfg->patch || x->w < cfg->patch)
        return percept_fail("SWD loss: a %d×%d image is smaller than a %d×%d patch", x->w, x->h,
                            cfg->patch, cfg->patch);
    /* the levels that still hold a patch */
    int hk[8], wk[8], levels = 0;
    for (int h = x->h, w = x->w; levels < cfg->levels && h >= cfg->patch && w >= cfg->patch;
         h = (h + 1) / 2, w = (w + 1) / 2) {
        hk[levels] = h;
        wk[levels++] = w;
    }
    const int planes = x->n * x->c;
    const size_t hw = (size_t)x->h * x->w;
    float *lx[8] = {0}, *ly[8] = {0}, *gl[8] = {0};
    float *tmp = malloc(sizeof(float) * 2 * hw), *tmp2 = tmp ? tmp + hw : NULL;
    int rc = tmp ? 0 : percept_fail("SWD loss: out of memory");
    if (!rc)
        rc = build_pyramid(lx, x, levels, hk, wk, tmp, tmp2) ||
                     build_pyramid(ly, y, levels, hk, wk, tmp, tmp2) ? -1 : 0;
    const uint64_t seed = cfg->seed ^ hash_floats(y->data, percept_tensor_numel(y));
    double total = 0;
    for (int k = 0; k < levels && !rc; k++) {
        const size_t nk = planes * (size_t)hk[k] * wk[k];
        const int P = cfg->patch;
        /* ε: a flat target level (a blank sky) must not make the loss explode */
        const double var = variance(ly[k], nk) + 1e-5;
        double v = 0;
        if (grad && !(gl[k] = malloc(sizeof(float) * nk)))
            rc = percept_fail("SWD loss: out of memory");
        else
            rc = level_loss(lx[k], ly[k], x->n, x->c, hk[k], wk[k], cfg,
                            cfg->phases >> k > 1 ? cfg->phases >> k : 1,
                            cfg->window >> k >= 2 * P ? cfg->window >> k : 0,
                            seed + 0x9e3779b97f4a7c15ull * (uint64_t)(k + 1), var, levels, &v, gl[k]);
        total += v;
    }
    if (!rc && grad) {
        /* coarse to fine: each band's gradient, plus the next level's through the step */
        for (int k = levels - 2; k >= 0; k--)
            for (int p = 0; p < planes; p++)
                laplacian_step_adjoint(gl[k] + (size_t)p * hk[k] * wk[k],
                                       gl[k + 1] + (size_t)p * hk[k + 1] * wk[k + 1], hk[k],
                                       wk[k], tmp, tmp2);
        memcpy(grad, gl[0], sizeof(float) * percept_tensor_numel(x));
    }
    for (int k = 0; k < 8; k++)
        free(lx[k]), free(ly[k]), free(gl[k]);
    free(tmp);
    *value = total;
    return rc;
}
