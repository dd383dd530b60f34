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
#include <stdlib.h>
#include <string.h>

#include "layers.h"
#include "percept/percept.h"

typedef struct {
    ConvShape conv;
    PoolShape pool;
    float *w, *b;
} Rff;

static int rff_init(Rff *r, const PerceptMmdConfig *cfg, const PerceptTensor *x)
{
    const int P = cfg->patch, D = cfg->features, C = x->c;
    r->conv = (ConvShape){x->n, C, x->h, x->w, D, P, 1, 0, PAD_ZERO, 0, 0};
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
    const int taps = P * P;
    for (int d = 0; d < D; d++) {
        r->b[d] = 2.0f * (float)M_PI * percept_rng_uniform(cfg->seed ^ 0xb1a5ull, (uint64_t)d);
        for (int c = 0; c < C; c++) {
            float *w = r->w + ((size_t)d * C + c) * taps;
            double mean = 0;
            for (int t = 0; t < taps; t++) {
                w[t] = percept_rng_normal(cfg->seed, ((uint64_t)d * C + c) * taps + t) / cfg->sigma;
                mean += w[t];
            }
            for (int t = 0; cfg->channel_norm && t < taps; t++)
                w[t] -= (float)(mean / taps);
        }
    }
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
    conv2d_forward(z, x, r->w, r->b, scratch, &r->conv);
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
