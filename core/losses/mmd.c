/* The MMD patch loss of Amir & Weiss (2021): the maximum mean discrepancy, under a Gaussian
 * RBF kernel of bandwidth σ, between the distributions of P×P patches of two images inside
 * every W×W window (stride S), averaged over windows.
 *
 * The kernel is approximated with random Fourier features (Rahimi & Recht), as the authors
 * do: φ(p) = √(2/D) cos(w·p + b), w ~ N(0, 1/σ²), b ~ U(0, 2π), so k(p, q) ≈ φ(p)·φ(q) and a
 * window's MMD² ≈ ‖mean φ(x patches) − mean φ(y patches)‖². The projection w·p + b is a
 * P×P convolution with random weights; the window means are an average pool. Channel
 * normalisation (ignoring each channel's DC within a patch) is the same as centring each
 * channel's random weights over the patch, so it costs nothing.
 *
 * MMD++ adds the paper's local term — a robust loss between corresponding patches,
 * 2 − 2 k(p_i, q_i), averaged over positions and computed exactly — and a small L2:
 * 0.001 L2 + 0.05 local + 1.0 MMD, the weights of the authors' code. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "arch-build.h"
#include "graph.h"
#include "layers.h"
#include "percept/percept.h"

typedef struct {
    ConvShape conv;
    PoolShape pool;
    float *w, *b;
} Rff;

/* The random features' projection for C channels: w (D, C, P, P), b (D) */
static void rff_fill(const PerceptMmdConfig *cfg, int C, float *w_all, float *b)
{
    const int P = cfg->patch, D = cfg->features, taps = P * P;
    for (int d = 0; d < D; d++) {
        b[d] = 2.0f * (float)M_PI * percept_rng_uniform(cfg->seed ^ 0xb1a5ull, (uint64_t)d);
        for (int c = 0; c < C; c++) {
            float *w = w_all + ((size_t)d * C + c) * taps;
            double mean = 0;
            for (int t = 0; t < taps; t++) {
                w[t] = percept_rng_normal(cfg->seed, ((uint64_t)d * C + c) * taps + t) / cfg->sigma;
                mean += w[t];
            }
            for (int t = 0; cfg->channel_norm && t < taps; t++)
                w[t] -= (float)(mean / taps);
        }
    }
}

static int rff_init(Rff *r, const PerceptMmdConfig *cfg, const PerceptTensor *x)
{
    const int P = cfg->patch, D = cfg->features, C = x->c;
    r->conv = (ConvShape){x->n, C, x->h, x->w, D, P, 1, 0, PAD_ZERO, 0, 0, 1};
    conv2d_shape(&r->conv);
    int win_h = cfg->window < r->conv.hout ? cfg->window : r->conv.hout;
    int win_w = cfg->window < r->conv.wout ? cfg->window : r->conv.wout;
    /* an image smaller than the window is one window: pool over what there is */
    int win = win_h < win_w ? win_h : win_w;
    r->pool = (PoolShape){x->n, D, r->conv.hout, r->conv.wout, win, cfg->stride, 0, 0, 0};
    pool2d_shape(&r->pool);
    r->w = malloc(sizeof(float) * (size_t)D * C * P * P);
    r->b = malloc(sizeof(float) * D);
    if (!r->w || !r->b)
        return percept_fail("MMD: out of memory for %d random features", D);
    rff_fill(cfg, C, r->w, r->b);
    return 0;
}

static void rff_free(Rff *r)
{
    free(r->w);
    free(r->b);
}

/* pooled (n, D, ph, pw) mean features of x; keeps z (the projections) for the gradient */
static void rff_features(float *pooled, float *z, float *phi, const Rff *r, const float *x,
                         float *scratch)
{
    const size_t nz = (size_t)r->conv.n * r->conv.cout * r->conv.hout * r->conv.wout;
    const float amp = sqrtf(2.0f / (float)r->conv.cout);
    conv2d_forward(z, x, r->w, r->b, scratch, &r->conv, NULL);
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < nz; i++)
        phi[i] = amp * cosf(z[i]);
    avg_pool_forward(pooled, phi, &r->pool);
}

int percept_mmd(const PerceptTensor *x, const PerceptTensor *y, const PerceptMmdConfig *cfg,
                double *value, float *grad)
{
    const PerceptMmdConfig def = PERCEPT_MMD_DEFAULT;
    if (!cfg)
        cfg = &def;
    if (x->n != y->n || x->c != y->c || x->h != y->h || x->w != y->w)
        return percept_fail("MMD: the two images differ in size (%d×%d and %d×%d)", x->w, x->h,
                            y->w, y->h);
    if (cfg->patch < 1 || cfg->patch > 15 || cfg->features < 1 || cfg->features > 65536 ||
        cfg->window < 1 || cfg->stride < 1 || !(cfg->sigma > 0))
        return percept_fail("MMD: patch 1..15, features 1..65536, window and stride ≥ 1 and "
                            "σ > 0 (got p%d f%d w%d s%d σ%g)", cfg->patch, cfg->features,
                            cfg->window, cfg->stride, cfg->sigma);
    if (x->h < cfg->patch || x->w < cfg->patch)
        return percept_fail("MMD: a %d×%d image is smaller than a %d×%d patch", x->w, x->h,
                            cfg->patch, cfg->patch);
    Rff r;
    memset(&r, 0, sizeof r);
    if (rff_init(&r, cfg, x))
        goto fail;
    const size_t nz = (size_t)x->n * cfg->features * r.conv.hout * r.conv.wout;
    const size_t np = (size_t)x->n * cfg->features * r.pool.hout * r.pool.wout;
    const size_t scratch_n = conv2d_scratch_floats(&r.conv);
    float *mem = malloc(sizeof(float) * (3 * nz + 2 * np + scratch_n + 1));
    if (!mem) {
        percept_fail("MMD: out of memory for %zu features", nz);
        goto fail;
    }
    float *zx = mem, *phi = zx + nz, *zy = phi + nz, *px = zy + nz, *py = px + np;
    float *scratch = py + np;
    rff_features(py, zy, phi, &r, y->data, scratch);
    rff_features(px, zx, phi, &r, x->data, scratch);
    /* MMD² per window = Σ_d (px − py)²; averaged over windows and images */
    const double windows = (double)x->n * r.pool.hout * r.pool.wout;
    double sum = 0;
    for (size_t i = 0; i < np; i++) {
        float d = px[i] - py[i];
        sum += (double)d * d;
        px[i] = (float)(2.0 * d / windows); /* becomes d loss / d pooled */
    }
    *value = sum / windows;
    if (grad) {
        const float amp = sqrtf(2.0f / (float)cfg->features);
        avg_pool_backward(phi, px, &r.pool);
#pragma omp parallel for schedule(static)
        for (size_t i = 0; i < nz; i++)
            phi[i] *= -amp * sinf(zx[i]);
        conv2d_backward(grad, NULL, NULL, phi, x->data, r.w, scratch, &r.conv);
    }
    free(mem);
    rff_free(&r);
    return 0;
fail:
    rff_free(&r);
    return -1;
}

/* 2 − 2 k(p_i, q_i) between corresponding P×P patches (valid positions), averaged */
static double local_patch_loss(const PerceptTensor *x, const PerceptTensor *y, int P, float sigma,
                               float *grad, float weight)
{
    const int h = x->h, w = x->w, ho = h - P + 1, wo = w - P + 1, C = x->c;
    const double count = (double)x->n * ho * wo, inv2s2 = 1.0 / (2.0 * sigma * sigma);
    double sum = 0;
    for (int b = 0; b < x->n; b++) {
        const float *xa = x->data + (size_t)b * C * h * w, *ya = y->data + (size_t)b * C * h * w;
        float *g = grad ? grad + (size_t)b * C * h * w : NULL;
        for (int i = 0; i < ho; i++)
            for (int j = 0; j < wo; j++) {
                double d2 = 0;
                for (int c = 0; c < C; c++)
                    for (int u = 0; u < P; u++)
                        for (int v = 0; v < P; v++) {
                            size_t o = ((size_t)c * h + i + u) * w + j + v;
                            double d = xa[o] - ya[o];
                            d2 += d * d;
                        }
                double k = exp(-d2 * inv2s2);
                sum += 2 - 2 * k;
                if (!g)
                    continue;
                /* d(2 − 2k)/dp = 2k (p − q) / σ² */
                float f = (float)(weight * 2 * k * 2 * inv2s2 / count);
                for (int c = 0; c < C; c++)
                    for (int u = 0; u < P; u++)
                        for (int v = 0; v < P; v++) {
                            size_t o = ((size_t)c * h + i + u) * w + j + v;
                            g[o] += f * (xa[o] - ya[o]);
                        }
            }
    }
    return sum / count;
}

int percept_mmd_plus(const PerceptTensor *x, const PerceptTensor *y, const PerceptMmdConfig *cfg,
                     double *value, float *grad)
{
    const PerceptMmdConfig def = PERCEPT_MMD_DEFAULT;
    if (!cfg)
        cfg = &def;
    double mmd;
    if (percept_mmd(x, y, cfg, &mmd, grad))
        return -1;
    const size_t n = percept_tensor_numel(x);
    float *g2 = grad ? malloc(sizeof(float) * n) : NULL;
    if (grad && !g2)
        return percept_fail("MMD++: out of memory");
    double l2 = percept_loss_mse(x->data, y->data, n, g2);
    for (size_t i = 0; grad && i < n; i++)
        grad[i] += 0.001f * g2[i];
    free(g2);
    double local = local_patch_loss(x, y, cfg->patch, cfg->sigma, grad, 0.05f);
    *value = 0.001 * l2 + 0.05 * local + mmd;
    return 0;
}

/* ---- style as a patch distribution ---------------------------------------------------- */
/* Level k of the pyramid is the image average-pooled by 2^k; its P×P patches cover 2^k·P
 * pixels, so coarse levels see the painting's larger marks. Each level has its own random
 * features (seed + k): the same for the style image and for every image compared with it. */

static PerceptMmdConfig level_config(const PerceptMmdConfig *cfg, int k)
{
    PerceptMmdConfig c = *cfg;
    c.seed = cfg->seed + (uint64_t)k;
    return c;
}

/* pyr[k] (n, c, h>>k, w>>k): the pyramid of x, level 0 a copy; NULL on failure */
static float **pyramid(const PerceptTensor *x, int levels, PoolShape *pools)
{
    float **pyr = calloc((size_t)levels, sizeof *pyr);
    size_t n0 = percept_tensor_numel(x);
    if (!pyr || !(pyr[0] = malloc(sizeof(float) * n0))) {
        free(pyr);
        return NULL;
    }
    memcpy(pyr[0], x->data, sizeof(float) * n0);
    int h = x->h, w = x->w;
    for (int k = 1; k < levels; k++) {
        pools[k] = (PoolShape){x->n, x->c, h, w, 2, 2, 0, 0, 0};
        pool2d_shape(&pools[k]);
        h = pools[k].hout, w = pools[k].wout;
        if (!(pyr[k] = malloc(sizeof(float) * (size_t)x->n * x->c * h * w))) {
            while (k--)
                free(pyr[k]);
            free(pyr);
            return NULL;
        }
        avg_pool_forward(pyr[k], pyr[k - 1], &pools[k]);
    }
    return pyr;
}

static void pyramid_free(float **pyr, int levels)
{
    for (int k = 0; pyr && k < levels; k++)
        free(pyr[k]);
    free(pyr);
}

/* How many levels an image has room for: the coarsest still holds one patch. */
static int fitting_levels(const PerceptTensor *x, const PerceptMmdConfig *cfg, int levels)
{
    int k = 0;
    while (k < levels && (x->h >> k) >= cfg->patch && (x->w >> k) >= cfg->patch)
        k++;
    return k;
}

/* The style image must fill every level; a compared image at least the first. */
static int too_small(const PerceptTensor *x, const PerceptMmdConfig *cfg, int levels)
{
    if (fitting_levels(x, cfg, levels) >= levels)
        return 0;
    return percept_fail("MMD style: a %d×%d image is too small for %d levels of %d×%d patches "
                        "(at least %d pixels a side)", x->w, x->h, levels, cfg->patch, cfg->patch,
                        cfg->patch << (levels - 1));
}

/* One level: means[b·D + d] = mean over positions of φ_d(patches of image b); the
 * projections z stay for the gradient. */
static int level_means(const PerceptTensor *xk, const PerceptMmdConfig *cfg, Rff *r, float **z,
                       float **scratch, float *means)
{
    if (rff_init(r, cfg, xk))
        return -1;
    const int D = cfg->features, positions = r->conv.hout * r->conv.wout;
    *z = malloc(sizeof(float) * (size_t)xk->n * D * positions);
    *scratch = malloc(sizeof(float) * (conv2d_scratch_floats(&r->conv) + 1));
    if (!*z || !*scratch)
        return percept_fail("MMD style: out of memory for %d×%d features", D, positions);
    conv2d_forward(*z, xk->data, r->w, r->b, *scratch, &r->conv, NULL);
    const float amp = sqrtf(2.0f / (float)D);
#pragma omp parallel for schedule(static)
    for (int bd = 0; bd < xk->n * D; bd++) {
        const float *zp = *z + (size_t)bd * positions;
        double s = 0;
        for (int p = 0; p < positions; p++)
            s += cosf(zp[p]);
        means[bd] = (float)(amp * s / positions);
    }
    return 0;
}

int percept_patch_embedding(const PerceptTensor *img, const PerceptMmdConfig *cfg, int levels,
                            float *embedding)
{
    if (img->n != 1 || levels < 1 || levels > 8)
        return percept_fail("MMD style: one image and 1..8 levels");
    if (too_small(img, cfg, levels))
        return -1;
    PoolShape pools[8];
    float **pyr = pyramid(img, levels, pools);
    int rc = pyr ? 0 : percept_fail("MMD style: out of memory for the pyramid");
    for (int k = 0; k < levels && !rc; k++) {
        PerceptTensor xk = {1, img->c, k ? pools[k].hout : img->h, k ? pools[k].wout : img->w,
                            pyr[k]};
        PerceptMmdConfig c = level_config(cfg, k);
        Rff r = {0};
        float *z = NULL, *scratch = NULL;
        rc = level_means(&xk, &c, &r, &z, &scratch, embedding + (size_t)k * cfg->features);
        free(z);
        free(scratch);
        rff_free(&r);
    }
    pyramid_free(pyr, levels);
    return rc;
}

int percept_mmd_to_embedding(const PerceptTensor *x, const float *embedding,
                             const PerceptMmdConfig *cfg, int levels, double *value, float *grad)
{
    if (levels < 1 || levels > 8)
        return percept_fail("MMD style: 1..8 levels");
    /* an image too small for the coarse levels is compared on the levels it has */
    if (too_small(x, cfg, 1))
        return -1;
    levels = fitting_levels(x, cfg, levels);
    const int D = cfg->features, n = x->n;
    PoolShape pools[8];
    float **pyr = pyramid(x, levels, pools), **g = calloc((size_t)levels, sizeof *g);
    float *means = malloc(sizeof(float) * (size_t)n * D);
    int rc = pyr && g && means ? 0 : percept_fail("MMD style: out of memory");
    double total = 0;
    for (int k = 0; k < levels && !rc; k++) {
        PerceptTensor xk = {n, x->c, k ? pools[k].hout : x->h, k ? pools[k].wout : x->w, pyr[k]};
        PerceptMmdConfig c = level_config(cfg, k);
        const float *target = embedding + (size_t)k * D;
        Rff r = {0};
        float *z = NULL, *scratch = NULL;
        rc = level_means(&xk, &c, &r, &z, &scratch, means);
        /* MMD² = ‖mean φ(x) − embedding‖² per image; batch mean */
        for (int b = 0; !rc && b < n; b++)
            for (int d = 0; d < D; d++) {
                float diff = means[(size_t)b * D + d] - target[d];
                total += (double)diff * diff / n;
                means[(size_t)b * D + d] = 2.0f * diff / (float)n; /* d loss / d mean */
            }
        if (!rc && grad) {
            const int positions = r.conv.hout * r.conv.wout;
            const float amp = sqrtf(2.0f / (float)D);
#pragma omp parallel for schedule(static)
            for (int bd = 0; bd < n * D; bd++) {
                float *zp = z + (size_t)bd * positions;
                const float f = -amp * means[bd] / (float)positions;
                for (int p = 0; p < positions; p++)
                    zp[p] = f * sinf(zp[p]);  /* z becomes d loss / d z */
            }
            if (!(g[k] = malloc(sizeof(float) * percept_tensor_numel(&xk))))
                rc = percept_fail("MMD style: out of memory");
            else
                conv2d_backward(g[k], NULL, NULL, z, xk.data, r.w, scratch, &r.conv);
        }
        free(z);
        free(scratch);
        rff_free(&r);
    }
    if (!rc && grad) {
        /* coarse to fine: each level's gradient through its pooling, plus the finer level's own */
        for (int k = levels - 1; k > 0; k--) {
            const size_t fine = (size_t)pools[k].n * pools[k].c * pools[k].h * pools[k].w;
            float *up = malloc(sizeof(float) * fine);
            if (!up) {
                rc = percept_fail("MMD style: out of memory");
                break;
            }
            avg_pool_backward(up, g[k], &pools[k]);
            for (size_t i = 0; i < fine; i++)
                g[k - 1][i] += up[i];
            free(up);
        }
        if (!rc)
            memcpy(grad, g[0], sizeof(float) * percept_tensor_numel(x));
    }
    for (int k = 0; g && k < levels; k++)
        free(g[k]);
    free(g);
    free(means);
    pyramid_free(pyr, levels);
    *value = total;
    return rc;
}

/* ---- the style loss as a network -------------------------------------------------------
 * percept_mmd_to_embedding's means, computed by a network so that they run where networks
 * run (the GPU): per level k, the input average-pooled k times (pool<k>), the random
 * projection (rff<k>: a P×P convolution with the level's weights), scale·cos (cos<k>) and
 * the mean over positions (mean<k>), the levels' means concatenated into (n, levels·D, 1, 1). */
int mmd_style_levels(const PerceptTensor *x, const PerceptMmdConfig *cfg, int levels)
{
    if (too_small(x, cfg, 1))
        return -1;
    return fitting_levels(x, cfg, levels);
}

PerceptNet *mmd_style_network(const PerceptMmdConfig *cfg, int levels, int channels,
                              const char *device)
{
    ArchBuilder ab;
    char name[32], prev[32] = "input", arch_name[64];
    const int D = cfg->features;
    snprintf(arch_name, sizeof arch_name, "style-mmd-%d-levels", levels);
    if (ab_init(&ab, arch_name, channels))
        return NULL;
    cJSON *concat_in = cJSON_CreateArray();
    for (int k = 0; k < levels; k++) {
        if (k) {
            snprintf(name, sizeof name, "pool%d", k);
            ab_int(&ab, ab_node(&ab, name, "avg_pool", prev), "k", 2);
            snprintf(prev, sizeof prev, "%s", name);
        }
        snprintf(name, sizeof name, "rff%d", k);
        ab_conv(&ab, name, prev, channels, D, cfg->patch, 1, 0, 0);
        snprintf(name, sizeof name, "cos%d", k);
        ab_num(&ab, ab_node(&ab, name, "cos", NULL), "scale", sqrt(2.0 / D));
        snprintf(name, sizeof name, "mean%d", k);
        ab_node(&ab, name, "global_avg_pool", NULL);
        if (!concat_in || !cJSON_AddItemToArray(concat_in, cJSON_CreateString(name)))
            ab.failed = 1;
    }
    if (levels > 1) {
        cJSON *c = ab_node(&ab, "embedding", "concat", NULL);
        if (c && concat_in) {
            cJSON_DeleteItemFromObject(c, "in");
            cJSON_AddItemToObject(c, "in", concat_in);
            concat_in = NULL;
        }
    }
    cJSON_Delete(concat_in);
    char *arch = ab_finish(&ab, NULL);
    PerceptNet *net = arch ? net_from_arch_on(arch, 1, device) : NULL;
    free(arch);
    for (int k = 0; net && k < levels; k++) {
        size_t nw = 0, nb = 0;
        snprintf(name, sizeof name, "rff%d.weight", k);
        float *w = percept_net_param(net, name, &nw);
        snprintf(name, sizeof name, "rff%d.bias", k);
        float *b = percept_net_param(net, name, &nb);
        if (!w || !b || nw != (size_t)D * channels * cfg->patch * cfg->patch || nb != (size_t)D) {
            percept_fail("MMD style: the network's random projections are missing");
            percept_net_free(net);
            return NULL;
        }
        const PerceptMmdConfig c = level_config(cfg, k);
        rff_fill(&c, channels, w, b);
    }
    if (net) {
        percept_net_set_grad(net, 1);
        percept_net_set_frozen(net, 1); /* gradients flow to the image only */
    }
    return net;
}
