/* Instance and batch normalisation: outputs and saved statistics against two-pass double
 * computations, PyTorch's running-statistics rule, precision on 1024² planes far from zero,
 * every gradient against finite differences, and the accumulate/assign contract. */
#include "check.h"
#include "layers.h"

#define EPS 1e-5f

static float *alloc_uniform(size_t n, uint64_t seed, float lo, float hi)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    fill_uniform(p, n, seed, lo, hi);
    return p;
}

/* Mean and biased variance of `planes` planes of hw values spaced `stride` apart, in
 * double and in two passes: slow, obviously right. */
static void ref_stats(double *mean, double *var, const float *x, int planes, size_t stride,
                      int hw)
{
    double s = 0, ss = 0, count = (double)planes * hw;
    for (int p = 0; p < planes; p++)
        for (int i = 0; i < hw; i++)
            s += x[p * stride + i];
    for (int p = 0; p < planes; p++)
        for (int i = 0; i < hw; i++)
            ss += pow(x[p * stride + i] - s / count, 2);
    *mean = s / count;
    *var = ss / count;
}

static double rel_err(double a, double b) { return fabs(a - b) / fmax(fabs(b), 1e-30); }

/* ---- forward ----------------------------------------------------------------------- */

static void check_instance_forward(int n, int c, int hw, int affine)
{
    size_t total = (size_t)n * c * hw;
    float *x = alloc_uniform(total, 1 + hw, -2, 3), *out = malloc(sizeof(float) * total);
    float *again = malloc(sizeof(float) * total), *mean = malloc(sizeof(float) * n * c);
    float *rstd = malloc(sizeof(float) * n * c);
    float *g = affine ? alloc_uniform(c, 2, 0.5f, 1.5f) : NULL;
    float *b = affine ? alloc_uniform(c, 3, -1, 1) : NULL;
    instance_norm_forward(out, mean, rstd, x, g, b, n, c, hw, EPS, NULL);
    double worst_stat = 0, worst_out = 0, worst_moment = 0;
    for (int p = 0; p < n * c; p++) {
        const float *xp = x + (size_t)p * hw, *yp = out + (size_t)p * hw;
        double m, v, ym, yv;
        ref_stats(&m, &v, xp, 1, hw, hw);
        worst_stat = fmax(worst_stat, rel_err(mean[p], m));
        worst_stat = fmax(worst_stat, rel_err(rstd[p], 1 / sqrt(v + EPS)));
        double gc = affine ? g[p % c] : 1, bc = affine ? b[p % c] : 0;
        for (int i = 0; i < hw; i++) {
            double want = (xp[i] - m) / sqrt(v + EPS) * gc + bc;
            worst_out = fmax(worst_out, fabs(yp[i] - want) / (1e-5 + 1e-5 * fabs(want)));
        }
        /* normalised planes: mean gamma·0 + beta, variance gamma²·var/(var+eps) */
        ref_stats(&ym, &yv, yp, 1, hw, hw);
        worst_moment = fmax(worst_moment, fabs(ym - bc));
        worst_moment = fmax(worst_moment, fabs(yv / (gc * gc) - v / (v + EPS)));
    }
    CHECK(worst_stat < 1e-6, "instance norm n%d c%d hw%d: saved mean/rstd off by %g", n, c, hw,
          worst_stat);
    CHECK(worst_out <= 1, "instance norm n%d c%d hw%d affine%d: output off (%g)", n, c, hw,
          affine, worst_out);
    CHECK(worst_moment < 1e-5, "instance norm n%d c%d hw%d: output moments off by %g", n, c, hw,
          worst_moment);
    /* the saved statistics reproduce the forward exactly: tiles can share them */
    instance_norm_apply(again, x, mean, rstd, g, b, n, c, hw, NULL);
    CHECK(!memcmp(again, out, sizeof(float) * total),
          "instance_norm_apply with the saved statistics differs from the forward");
    free(x); free(out); free(again); free(mean); free(rstd); free(g); free(b);
}

/* instance_norm_apply uses the statistics it is given, not the plane's own. */
static void check_instance_apply(void)
{
    enum { N = 2, C = 3, HW = 12 };
    float *x = alloc_uniform(N * C * HW, 5, -1, 1), out[N * C * HW];
    float *mean = alloc_uniform(N * C, 6, -1, 1), *rstd = alloc_uniform(N * C, 7, 0.5f, 3);
    float *g = alloc_uniform(C, 8, 0.5f, 1.5f), *b = alloc_uniform(C, 9, -1, 1);
    instance_norm_apply(out, x, mean, rstd, g, b, N, C, HW, NULL);
    double worst = 0;
    for (int p = 0; p < N * C; p++)
        for (int i = 0; i < HW; i++) {
            double want = ((double)x[p * HW + i] - mean[p]) * rstd[p] * g[p % C] + b[p % C];
            worst = fmax(worst, fabs(out[p * HW + i] - want));
        }
    CHECK(worst < 1e-5, "instance_norm_apply off by %g", worst);
    free(x); free(mean); free(rstd); free(g); free(b);
}

/* 1024² planes of values near 100: sums of x² in float, or in double without care,
 * lose the variance to cancellation. The spread of the second plane is tiny on purpose. */
static void check_large_planes(void)
{
    enum { HW = 1024 * 1024 };
    float *x = malloc(sizeof(float) * 2 * HW), *y = malloc(sizeof(float) * 2 * HW);
    fill_uniform(x, HW, 31, 99, 101);
    fill_uniform(x + HW, HW, 32, 99.99f, 100.01f);
    float mean[2], rstd[2], rm[1] = {0}, rv[1] = {1};
    instance_norm_forward(y, mean, rstd, x, NULL, NULL, 1, 2, HW, EPS, NULL);
    for (int p = 0; p < 2; p++) {
        double m, v, ym, yv;
        ref_stats(&m, &v, x + (size_t)p * HW, 1, HW, HW);
        double em = rel_err(mean[p], m), er = rel_err(rstd[p], 1 / sqrt(v + EPS));
        CHECK(em < 1e-6 && er < 1e-6, "instance norm 1024² plane %d near 100: mean off %g, rstd "
              "off %g (relative)", p, em, er);
        ref_stats(&ym, &yv, y + (size_t)p * HW, 1, HW, HW);
        CHECK(fabs(ym) < 1e-4 && fabs(yv - v / (v + EPS)) < 1e-4,
              "instance norm 1024² plane %d near 100: output mean %g variance %g", p, ym, yv);
    }
    /* batch norm over the same two planes as a batch of two */
    batch_norm_forward_train(y, mean, rstd, rm, rv, x, NULL, NULL, 2, 1, HW, EPS, 0.1f);
    double m, v;
    ref_stats(&m, &v, x, 2, HW, HW);
    double em = rel_err(mean[0], m), er = rel_err(rstd[0], 1 / sqrt(v + EPS));
    CHECK(em < 1e-6 && er < 1e-6, "batch norm 2x1024² near 100: mean off %g, rstd off %g", em, er);
    free(x); free(y);
}

/* A constant plane has zero variance: the output is beta, never NaN. */
static void check_constant_plane(void)
{
    float x[2 * 6] = {7, 7, 7, 7, 7, 7, 1, 2, 3, 4, 5, 6}, y[12], mean[2], rstd[2];
    float g[1] = {2}, b[1] = {0.25f}, rm[1] = {0}, rv[1] = {1};
    instance_norm_forward(y, mean, rstd, x, g, b, 2, 1, 6, EPS, NULL);
    CHECK(y[0] == 0.25f && y[5] == 0.25f && rstd[0] == (float)(1 / sqrt(EPS)),
          "constant plane: out %g rstd %g", y[0], rstd[0]);
    batch_norm_forward_train(y, mean, rstd, rm, rv, x, g, b, 1, 1, 6, EPS, 0.1f);
    CHECK(y[3] == 0.25f && fabsf(rv[0] - 0.9f) < 1e-7f,
          "constant batch-norm channel: out %g running var %g", y[3], rv[0]);
}

static void check_batch_forward(int n, int c, int hw, int affine, float momentum)
{
    size_t total = (size_t)n * c * hw, stride = (size_t)c * hw;
    float *x = alloc_uniform(total, 11 + hw, -1, 4), *out = malloc(sizeof(float) * total);
    float *mean = malloc(sizeof(float) * c), *rstd = malloc(sizeof(float) * c);
    float *rm = alloc_uniform(c, 12, -1, 1), *rv = alloc_uniform(c, 13, 0.5f, 2);
    float *rm0 = malloc(sizeof(float) * c), *rv0 = malloc(sizeof(float) * c);
    memcpy(rm0, rm, sizeof(float) * c);
    memcpy(rv0, rv, sizeof(float) * c);
    float *g = affine ? alloc_uniform(c, 14, 0.5f, 1.5f) : NULL;
    float *b = affine ? alloc_uniform(c, 15, -1, 1) : NULL;
    batch_norm_forward_train(out, mean, rstd, rm, rv, x, g, b, n, c, hw, EPS, momentum);
    double worst_stat = 0, worst_out = 0, worst_run = 0, worst_eval = 0;
    for (int ch = 0; ch < c; ch++) {
        double m, v, count = (double)n * hw;
        ref_stats(&m, &v, x + (size_t)ch * hw, n, stride, hw);
        worst_stat = fmax(worst_stat, rel_err(mean[ch], m));
        worst_stat = fmax(worst_stat, rel_err(rstd[ch], 1 / sqrt(v + EPS)));
        /* PyTorch: running_var tracks the unbiased variance */
        double want_rm = (1 - momentum) * rm0[ch] + momentum * m;
        double want_rv = (1 - momentum) * rv0[ch] + momentum * v * count / (count - 1);
        worst_run = fmax(worst_run, fmax(rel_err(rm[ch], want_rm), rel_err(rv[ch], want_rv)));
        double gc = affine ? g[ch] : 1, bc = affine ? b[ch] : 0;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < hw; k++) {
                size_t at = i * stride + (size_t)ch * hw + k;
                double want = (x[at] - m) / sqrt(v + EPS) * gc + bc;
                worst_out = fmax(worst_out, fabs(out[at] - want) / (1e-5 + 1e-5 * fabs(want)));
            }
    }
    CHECK(worst_stat < 1e-6, "batch norm n%d c%d hw%d: saved mean/rstd off by %g", n, c, hw,
          worst_stat);
    CHECK(worst_out <= 1, "batch norm n%d c%d hw%d affine%d: output off (%g)", n, c, hw, affine,
          worst_out);
    CHECK(worst_run < 1e-6, "batch norm n%d c%d hw%d momentum %g: running stats off by %g", n,
          c, hw, momentum, worst_run);
    /* eval: the fixed affine map from the running statistics */
    batch_norm_forward_eval(out, x, rm, rv, g, b, n, c, hw, EPS, NULL);
    for (int i = 0; i < n; i++)
        for (int ch = 0; ch < c; ch++)
            for (int k = 0; k < hw; k++) {
                size_t at = i * stride + (size_t)ch * hw + k;
                double want = ((double)x[at] - rm[ch]) / sqrt((double)rv[ch] + EPS) *
                              (affine ? g[ch] : 1) + (affine ? b[ch] : 0);
                worst_eval = fmax(worst_eval, fabs(out[at] - want) / (1e-5 + 1e-5 * fabs(want)));
            }
    CHECK(worst_eval <= 1, "batch norm eval n%d c%d hw%d: output off (%g)", n, c, hw, worst_eval);
    free(x); free(out); free(mean); free(rstd); free(rm); free(rv); free(rm0); free(rv0);
    free(g); free(b);
}

/* One step worked by hand, independent of ref_stats: channel 0 holds 1, 2, 3, 6 over a
 * batch of two, mean 3, biased variance 3.5, unbiased 14/3. */
static void check_batch_by_hand(void)
{
    float x[2 * 2 * 2] = {1, 2, 0, 4, 3, 6, 0, 8}, y[8], mean[2], rstd[2];
    float rm[2] = {0.5f, 0}, rv[2] = {2, 1};
    batch_norm_forward_train(y, mean, rstd, rm, rv, x, NULL, NULL, 2, 2, 2, EPS, 0.1f);
    CHECK(fabsf(mean[0] - 3) < 1e-6f && fabsf(rm[0] - 0.75f) < 1e-6f &&
          fabsf(rv[0] - (0.9f * 2 + 0.1f * 14.0f / 3)) < 1e-6f,
          "batch norm by hand: mean %g running mean %g running var %g", mean[0], rm[0], rv[0]);
    CHECK(fabsf(y[0] - (1 - 3) / sqrtf(3.5f + EPS)) < 1e-6f, "batch norm by hand: out %g", y[0]);
}

/* ---- gradients ---------------------------------------------------------------------- */

typedef struct {
    int batch, n, c, hw;
    float *x, *g, *b, *out, *mean, *rstd, *rm, *rv;
} NormCase;

static void norm_case_forward(void *p)
{
    NormCase *k = p;
    if (k->batch)
        batch_norm_forward_train(k->out, k->mean, k->rstd, k->rm, k->rv, k->x, k->g, k->b, k->n,
                                 k->c, k->hw, EPS, 0.1f);
    else
        instance_norm_forward(k->out, k->mean, k->rstd, k->x, k->g, k->b, k->n, k->c, k->hw, EPS,
                              NULL);
}

static void norm_case_backward(const NormCase *k, float *din, float *dg, float *db,
                               const float *dout)
{
    if (k->batch)
        batch_norm_backward(din, dg, db, dout, k->x, k->mean, k->rstd, k->g, k->n, k->c, k->hw);
    else
        instance_norm_backward(din, dg, db, dout, k->x, k->mean, k->rstd, k->g, k->n, k->c,
                               k->hw);
}

static void check_gradients(int batch, int n, int c, int hw, int affine)
{
    size_t total = (size_t)n * c * hw, nstat = batch ? (size_t)c : (size_t)n * c;
    NormCase k = {batch, n, c, hw, alloc_uniform(total, 41 + hw, -1, 1),
                  affine ? alloc_uniform(c, 42, 0.5f, 1.5f) : NULL,
                  affine ? alloc_uniform(c, 43, -1, 1) : NULL, malloc(sizeof(float) * total),
                  malloc(sizeof(float) * nstat), malloc(sizeof(float) * nstat),
                  calloc(c, sizeof(float)), calloc(c, sizeof(float))};
    float *r = alloc_uniform(total, 44, -1, 1), *dx = alloc_uniform(total, 45, 5, 9);
    float *dg = calloc(c, sizeof(float)), *db = calloc(c, sizeof(float));
    norm_case_forward(&k);
    norm_case_backward(&k, dx, affine ? dg : NULL, affine ? db : NULL, r);
    char label[96];
    snprintf(label, sizeof label, "%s n%d c%d hw%d%s", batch ? "batch_norm" : "instance_norm",
             n, c, hw, affine ? "" : " no-affine");
    char l2[128];
    snprintf(l2, sizeof l2, "%s din", label);
    gradcheck(l2, k.x, dx, total, norm_case_forward, &k, k.out, r, total, 1e-2f, 1e-2, 1e-3, 200);
    if (affine) {
        snprintf(l2, sizeof l2, "%s dgamma", label);
        gradcheck(l2, k.g, dg, c, norm_case_forward, &k, k.out, r, total, 1e-2f, 1e-2, 1e-3, 200);
        snprintf(l2, sizeof l2, "%s dbeta", label);
        gradcheck(l2, k.b, db, c, norm_case_forward, &k, k.out, r, total, 1e-2f, 1e-2, 1e-3, 200);
        /* parameter gradients accumulate, din is assigned, and din NULL changes nothing */
        float *dx2 = alloc_uniform(total, 46, -9, -5), *dg1 = malloc(sizeof(float) * c);
        float *db1 = malloc(sizeof(float) * c);
        memcpy(dg1, dg, sizeof(float) * c);
        memcpy(db1, db, sizeof(float) * c);
        norm_case_backward(&k, dx2, dg, db, r);
        int doubled = 1;
        for (int i = 0; i < c; i++)
            doubled &= dg[i] == 2 * dg1[i] && db[i] == 2 * db1[i];
        CHECK(doubled, "%s: dgamma/dbeta do not accumulate over two backward calls", label);
        CHECK(!memcmp(dx, dx2, sizeof(float) * total), "%s: din is not assigned", label);
        norm_case_backward(&k, NULL, dg, db, r);
        int tripled = 1;
        for (int i = 0; i < c; i++)
            tripled &= dg[i] == 3 * dg1[i] && db[i] == 3 * db1[i];
        CHECK(tripled, "%s: backward without din gives other parameter gradients", label);
        free(dx2); free(dg1); free(db1);
    }
    free(k.x); free(k.g); free(k.b); free(k.out); free(k.mean); free(k.rstd); free(k.rm);
    free(k.rv); free(r); free(dx); free(dg); free(db);
}

/* The closed-form gradient in double on a shape large enough for threads:
 * din = g·rstd·(dy − mean(dy) − xhat·mean(dy·xhat)) over each group, dgamma = Σ dy·xhat,
 * dbeta = Σ dy. */
static void check_backward_formula(int batch, int n, int c, int hw)
{
    size_t total = (size_t)n * c * hw, stride = (size_t)c * hw;
    int groups = batch ? c : n * c, planes = batch ? n : 1;
    float *x = alloc_uniform(total, 51, -1, 2), *dy = alloc_uniform(total, 52, -1, 1);
    float *out = malloc(sizeof(float) * total), *dx = malloc(sizeof(float) * total);
    float *g = alloc_uniform(c, 53, 0.5f, 1.5f), *b = alloc_uniform(c, 54, -1, 1);
    float *mean = malloc(sizeof(float) * groups), *rstd = malloc(sizeof(float) * groups);
    float *dg = calloc(c, sizeof(float)), *db = calloc(c, sizeof(float));
    float *rm = calloc(c, sizeof(float)), *rv = calloc(c, sizeof(float));
    double *want_dg = calloc(c, sizeof(double)), *want_db = calloc(c, sizeof(double));
    if (batch) {
        batch_norm_forward_train(out, mean, rstd, rm, rv, x, g, b, n, c, hw, EPS, 0.1f);
        batch_norm_backward(dx, dg, db, dy, x, mean, rstd, g, n, c, hw);
    } else {
        instance_norm_forward(out, mean, rstd, x, g, b, n, c, hw, EPS, NULL);
        instance_norm_backward(dx, dg, db, dy, x, mean, rstd, g, n, c, hw);
    }
    double worst = 0;
    for (int k = 0; k < groups; k++) {
        /* group k (a channel, or an (n,c) plane) starts at k·hw: planes planes, stride apart */
        int ch = k % c;
        size_t first = (size_t)k * hw;
        double m, v, s1 = 0, s2 = 0, count = (double)planes * hw;
        ref_stats(&m, &v, x + first, planes, stride, hw);
        double r = 1 / sqrt(v + EPS);
        for (int p = 0; p < planes; p++)
            for (int i = 0; i < hw; i++) {
                size_t at = first + p * stride + i;
                s1 += dy[at];
                s2 += dy[at] * (x[at] - m) * r;
            }
        want_db[ch] += s1;
        want_dg[ch] += s2;
        for (int p = 0; p < planes; p++)
            for (int i = 0; i < hw; i++) {
                size_t at = first + p * stride + i;
                double want = g[ch] * r * (dy[at] - s1 / count - (x[at] - m) * r * s2 / count);
                worst = fmax(worst, fabs(dx[at] - want) / (1e-5 + 1e-4 * fabs(want)));
            }
    }
    for (int ch = 0; ch < c; ch++)
        worst = fmax(worst, fmax(fabs(dg[ch] - want_dg[ch]) / (1e-3 + 1e-4 * fabs(want_dg[ch])),
                                 fabs(db[ch] - want_db[ch]) / (1e-3 + 1e-4 * fabs(want_db[ch]))));
    CHECK(worst <= 1, "%s n%d c%d hw%d: backward differs from the closed form (%g)",
          batch ? "batch_norm" : "instance_norm", n, c, hw, worst);
    free(x); free(dy); free(out); free(dx); free(g); free(b); free(mean); free(rstd);
    free(dg); free(db); free(rm); free(rv); free(want_dg); free(want_db);
}

int main(void)
{
    check_instance_forward(1, 1, 35, 1);
    check_instance_forward(2, 3, 35, 1);
    check_instance_forward(3, 4, 15, 0);
    check_instance_forward(2, 2, 4099, 1); /* large enough for the kernels to use threads */
    check_instance_apply();
    check_large_planes();
    check_constant_plane();
    check_batch_forward(1, 1, 35, 1, 0.1f);
    check_batch_forward(2, 3, 35, 1, 0.1f);
    check_batch_forward(3, 4, 15, 0, 0.3f);
    check_batch_forward(3, 2, 1, 1, 1.0f);
    check_batch_by_hand();

    static const int shapes[][3] = {{1, 1, 35}, {2, 3, 35}, {3, 4, 15}, {2, 2, 6}};
    for (int s = 0; s < 4; s++)
        for (int affine = 0; affine < 2; affine++) {
            check_gradients(0, shapes[s][0], shapes[s][1], shapes[s][2], affine);
            check_gradients(1, shapes[s][0], shapes[s][1], shapes[s][2], affine);
        }
    check_gradients(1, 3, 2, 1, 1); /* one value per sample: BatchNorm1d-like */
    check_backward_formula(0, 2, 3, 4099);
    check_backward_formula(1, 2, 3, 4099);
    return check_done("test-grad-norm");
}
