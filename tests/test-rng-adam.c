/* The counter-based generator (pinned values, distribution, independence of seeds and
 * counters) and Adam against its formulas evaluated in double precision, with wrong
 * variants of the formulas shown to be told apart, thread-count independence, and
 * checkpoints that continue exactly. */
#include <sys/stat.h>
#include <unistd.h>
#ifdef _OPENMP
#include <omp.h>
#endif

#include "check.h"
#include "percept/percept.h"

enum { DRAWS = 100000 };

static char tmpdir[256];

/* The stream is part of the format: dropout masks and MMD features must be the same on
 * every machine and in every release, so a few values are pinned. */
static void check_rng_pinned(void)
{
    CHECK(percept_rng_u64(0, 0) == 0xf6c78eb1892a7202ull, "u64(0,0) changed");
    CHECK(percept_rng_u64(1, 0) == 0xe21c7b3e455f2204ull, "u64(1,0) changed");
    CHECK(percept_rng_u64(42, 1000000007ull) == 0x925c70648776c594ull, "u64(42,1e9+7) changed");
    CHECK(percept_rng_uniform(0, 0) == 0.963982463f, "uniform(0,0) = %.9g", percept_rng_uniform(0, 0));
    CHECK(percept_rng_uniform(42, 3) == 0.174829543f, "uniform(42,3) = %.9g", percept_rng_uniform(42, 3));
    /* normal goes through log and cos: allow a libm's last bit */
    CHECK(fabsf(percept_rng_normal(0, 0) - -0.0190588161f) < 1e-6f, "normal(0,0) = %.9g",
          percept_rng_normal(0, 0));
    CHECK(fabsf(percept_rng_normal(42, 3) - 0.874163449f) < 1e-6f, "normal(42,3) = %.9g",
          percept_rng_normal(42, 3));
    int same = 1;
    for (int i = 0; i < 1000; i++)
        same &= percept_rng_u64(9, i) == percept_rng_u64(9, i) &&
                percept_rng_normal(9, i) == percept_rng_normal(9, i);
    CHECK(same, "the same (seed, counter) gave different values");
}

/* Pearson correlation of two sequences. */
static double correlation(const double *x, const double *y, int n)
{
    double sx = 0, sy = 0, sxx = 0, syy = 0, sxy = 0;
    for (int i = 0; i < n; i++) {
        sx += x[i]; sy += y[i];
        sxx += x[i] * x[i]; syy += y[i] * y[i]; sxy += x[i] * y[i];
    }
    double cov = sxy / n - sx / n * sy / n;
    return cov / sqrt((sxx / n - sx / n * sx / n) * (syy / n - sy / n * sy / n));
}

static void check_uniform(void)
{
    static double u[DRAWS + 1], w[DRAWS];
    int outside = 0, bins[10] = {0};
    double s = 0, ss = 0;
    for (int i = 0; i <= DRAWS; i++)
        u[i] = percept_rng_uniform(7, i);
    for (int i = 0; i < DRAWS; i++) {
        outside += !(u[i] >= 0 && u[i] < 1);
        s += u[i]; ss += u[i] * u[i];
        if (u[i] >= 0 && u[i] < 1)
            bins[(int)(u[i] * 10)]++;
        w[i] = percept_rng_uniform(8, i);
    }
    double mean = s / DRAWS, var = ss / DRAWS - mean * mean, chi2 = 0;
    for (int b = 0; b < 10; b++)
        chi2 += (bins[b] - DRAWS / 10.0) * (bins[b] - DRAWS / 10.0) / (DRAWS / 10.0);
    /* bounds are about 5 standard errors: a fixed stream either passes or never does */
    CHECK(!outside, "%d uniform values outside [0, 1)", outside);
    CHECK(fabs(mean - 0.5) < 0.005, "uniform mean %g", mean);
    CHECK(fabs(var - 1.0 / 12) < 0.002, "uniform variance %g (1/12 expected)", var);
    CHECK(chi2 < 33.7, "uniform histogram chi² %g over 10 bins (99.99%% bound 33.7)", chi2);
    /* counter independence: neighbouring counters and other seeds are uncorrelated */
    double lag1 = correlation(u, u + 1, DRAWS), seeds = correlation(u, w, DRAWS);
    CHECK(fabs(lag1) < 0.015, "uniform(7,i) and uniform(7,i+1) correlate: %g", lag1);
    CHECK(fabs(seeds) < 0.015, "seeds 7 and 8 correlate: %g", seeds);
}

static void check_normal(void)
{
    static double z[DRAWS + 1];
    double s = 0, ss = 0;
    int tail = 0, differ = 0;
    for (int i = 0; i <= DRAWS; i++)
        z[i] = percept_rng_normal(7, i);
    for (int i = 0; i < DRAWS; i++) {
        s += z[i]; ss += z[i] * z[i];
        tail += fabs(z[i]) > 2;
        differ += percept_rng_u64(7, i) != percept_rng_u64(8, i) &&
                  percept_rng_normal(7, i) != percept_rng_normal(8, i);
    }
    double mean = s / DRAWS, var = ss / DRAWS - mean * mean, lag1 = correlation(z, z + 1, DRAWS);
    CHECK(fabs(mean) < 0.015, "normal mean %g", mean);
    CHECK(fabs(var - 1) < 0.02, "normal variance %g", var);
    /* P(|z| > 2) = 4.55%: catches a generator with the right variance but the wrong shape */
    CHECK(fabs(tail / (double)DRAWS - 0.0455) < 0.003, "normal |z| > 2 in %g of draws",
          tail / (double)DRAWS);
    CHECK(fabs(lag1) < 0.015, "normal(7,i) and normal(7,i+1) correlate: %g", lag1);
    CHECK(differ == DRAWS, "seeds 7 and 8 share %d values", DRAWS - differ);
}

/* Values depend on (seed, counter) only, not on which thread asks or in which order. */
static void check_rng_threads(void)
{
#ifdef _OPENMP
    enum { N = 10000 };
    static float serial[N], parallel[N];
    for (int i = N - 1; i >= 0; i--)
        serial[i] = percept_rng_normal(3, i);
#pragma omp parallel for schedule(dynamic, 7) num_threads(4)
    for (int i = 0; i < N; i++)
        parallel[i] = percept_rng_normal(3, i);
    CHECK(!memcmp(serial, parallel, sizeof serial), "threaded draws differ from serial ones");
#endif
}

/* ---- Adam ------------------------------------------------------------------------- */

/* PyTorch's Adam/AdamW in double, and the mistakes an implementation could make. */
typedef enum { REF_PYTORCH, REF_NO_BIAS_CORRECTION, REF_EPS_INSIDE_SQRT, REF_COUPLED_DECAY,
               REF_NO_DECAY } RefVariant;

static void adam_reference(double *p, double *m, double *v, const float *g, int n, int step,
                           PerceptAdamConfig c, RefVariant variant)
{
    double wd = variant == REF_NO_DECAY ? 0 : c.weight_decay;
    for (int i = 0; i < n; i++) {
        double gi = g[i];
        if (variant == REF_COUPLED_DECAY)
            gi += wd * p[i]; /* L2 through the gradient: Adam with weight_decay, not AdamW */
        else
            p[i] *= 1 - (double)c.lr * wd;
        m[i] = c.beta1 * m[i] + (1 - (double)c.beta1) * gi;
        v[i] = c.beta2 * v[i] + (1 - (double)c.beta2) * gi * gi;
        double mh = m[i] / (1 - pow(c.beta1, step)), vh = v[i] / (1 - pow(c.beta2, step));
        if (variant == REF_NO_BIAS_CORRECTION)
            mh = m[i], vh = v[i];
        double denom = variant == REF_EPS_INSIDE_SQRT ? sqrt(vh + c.eps) : sqrt(vh) + c.eps;
        p[i] -= c.lr * mh / denom;
    }
}

enum { AN = 37, ASTEPS = 3 };
#define ADAM_TOL 1e-6

/* Largest |p - reference| after ASTEPS steps of a variant from the same start. */
static double adam_distance(const float *p, PerceptAdamConfig cfg, float gscale,
                            RefVariant variant)
{
    double rp[AN], rm[AN] = {0}, rv[AN] = {0};
    float p0[AN], g[AN];
    fill_uniform(p0, AN, 1, -1, 1);
    for (int i = 0; i < AN; i++)
        rp[i] = p0[i];
    for (int step = 1; step <= ASTEPS; step++) {
        fill_uniform(g, AN, 10 + step, -gscale, gscale);
        adam_reference(rp, rm, rv, g, AN, step, cfg, variant);
    }
    double worst = 0;
    for (int i = 0; i < AN; i++)
        worst = fmax(worst, fabs(p[i] - rp[i]));
    return worst;
}

/* Three steps against the formulas; then the formulas' likely mistakes must each land far
 * outside the tolerance, so the comparison could have caught them. */
static void check_adam(const char *label, PerceptAdamConfig cfg, float gscale,
                       const RefVariant *must_differ, int n_differ)
{
    PerceptAdam a;
    float p[AN], g[AN];
    CHECK(percept_adam_init(&a, AN, cfg) == 0, "%s: init: %s", label, percept_error());
    fill_uniform(p, AN, 1, -1, 1);
    for (int step = 1; step <= ASTEPS; step++) {
        fill_uniform(g, AN, 10 + step, -gscale, gscale);
        percept_adam_step(&a, p, g);
    }
    CHECK(a.step == ASTEPS, "%s: step counter %lld", label, (long long)a.step);
    double d = adam_distance(p, cfg, gscale, REF_PYTORCH);
    CHECK(d < ADAM_TOL, "%s: differs from PyTorch's formula by %g", label, d);
    for (int k = 0; k < n_differ; k++) {
        double w = adam_distance(p, cfg, gscale, must_differ[k]);
        CHECK(w > 100 * ADAM_TOL, "%s: indistinguishable from wrong variant %d (%g)", label,
              (int)must_differ[k], w);
    }
    percept_adam_free(&a);
}

static void check_adam_formulas(void)
{
    static const RefVariant plain[] = {REF_NO_BIAS_CORRECTION};
    static const RefVariant decayed[] = {REF_NO_BIAS_CORRECTION, REF_COUPLED_DECAY, REF_NO_DECAY};
    static const RefVariant eps[] = {REF_NO_BIAS_CORRECTION, REF_EPS_INSIDE_SQRT};
    check_adam("Adam", (PerceptAdamConfig){1e-2f, 0.9f, 0.999f, 1e-8f, 0}, 2, plain, 1);
    check_adam("AdamW", (PerceptAdamConfig){1e-2f, 0.9f, 0.999f, 1e-8f, 0.1f}, 2, decayed, 3);
    /* gradients as small as eps make eps's place in the denominator visible */
    check_adam("Adam, large eps", (PerceptAdamConfig){1e-2f, 0.8f, 0.99f, 1e-3f, 0}, 1e-3f, eps, 2);
}

static void check_adam_settings(void)
{
    PerceptAdam a;
    static const PerceptAdamConfig bad[] = {
        {-1, 0.9f, 0.999f, 1e-8f, 0}, {1e-3f, 1, 0.999f, 1e-8f, 0},
        {1e-3f, 0.9f, -0.1f, 1e-8f, 0}, {1e-3f, 0.9f, 0.999f, NAN, 0},
        {1e-3f, 0.9f, 0.999f, 1e-8f, -0.1f}, {INFINITY, 0.9f, 0.999f, 1e-8f, 0},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        int rc = percept_adam_init(&a, 4, bad[i]);
        CHECK(rc == -1 && strstr(percept_error(), "invalid settings") && !a.m,
              "bad settings %zu accepted: %s", i, percept_error());
        if (!rc)
            percept_adam_free(&a);
    }
}

/* The update of one element never depends on another, so any thread count gives the
 * same bits (an odd count leaves vector remainders in different places per thread). */
static void check_adam_threads(void)
{
#ifdef _OPENMP
    enum { N = 10007 };
    static float p1[N], p4[N], g[N];
    PerceptAdamConfig cfg = {1e-3f, 0.9f, 0.999f, 1e-8f, 0.01f};
    PerceptAdam a1, a4;
    percept_adam_init(&a1, N, cfg);
    percept_adam_init(&a4, N, cfg);
    fill_uniform(p1, N, 5, -1, 1);
    memcpy(p4, p1, sizeof p1);
    int keep = omp_get_max_threads();
    for (int s = 0; s < 3; s++) {
        fill_uniform(g, N, 50 + s, -1, 1);
        omp_set_num_threads(1);
        percept_adam_step(&a1, p1, g);
        omp_set_num_threads(4);
        percept_adam_step(&a4, p4, g);
    }
    omp_set_num_threads(keep);
    CHECK(!memcmp(p1, p4, sizeof p1) && !memcmp(a1.m, a4.m, N * sizeof(float)) &&
          !memcmp(a1.v, a4.v, N * sizeof(float)), "Adam with 1 and 4 threads differs");
    percept_adam_free(&a1);
    percept_adam_free(&a4);
#endif
}

/* ---- checkpoints ------------------------------------------------------------------- */

enum { RN = 50 };

static void state_path(char *path, size_t size, const char *what)
{
    snprintf(path, size, "%s/%s.safetensors", tmpdir, what);
}

/* Save after 2 of 5 steps, load into a fresh optimiser, continue: bit-identical to an
 * uninterrupted run. */
static void check_adam_resume(const char *path, PerceptAdamConfig cfg)
{
    PerceptAdam a, b;
    float pa[RN], pb[RN], g[RN];
    fill_uniform(pa, RN, 3, -1, 1);
    memcpy(pb, pa, sizeof pa);
    percept_adam_init(&a, RN, cfg);
    percept_adam_init(&b, RN, cfg);
    for (int s = 0; s < 5; s++) {
        fill_uniform(g, RN, 100 + s, -1, 1);
        percept_adam_step(&a, pa, g);
        percept_adam_step(&b, pb, g);
        if (s == 1) {
            CHECK(percept_adam_save(&b, path) == 0, "save: %s", percept_error());
            percept_adam_free(&b);
            percept_adam_init(&b, RN, cfg);
            CHECK(percept_adam_load(&b, path) == 0 && b.step == 2, "load: %s (step %lld)",
                  percept_error(), (long long)b.step);
        }
    }
    CHECK(!memcmp(pa, pb, sizeof pa) && !memcmp(a.m, b.m, sizeof pa) &&
          !memcmp(a.v, b.v, sizeof pa) && a.step == b.step,
          "resumed Adam differs from an uninterrupted run");
    percept_adam_free(&a);
    percept_adam_free(&b);
}

/* The checkpoint is an ordinary safetensors file a person or script can inspect. */
static void check_adam_file(const char *path)
{
    PerceptSafetensors *st = percept_st_read(path);
    CHECK(st != NULL, "checkpoint unreadable: %s", percept_error());
    if (!st)
        return;
    const PerceptStTensor *m = percept_st_find(st, "adam.m");
    const char *step = percept_st_meta(st, "adam.step"), *lr = percept_st_meta(st, "adam.lr"),
               *wd = percept_st_meta(st, "adam.weight_decay");
    CHECK(m && m->dtype == PERCEPT_DTYPE_F32 && m->ndim == 1 && m->shape[0] == RN &&
          percept_st_find(st, "adam.v"), "checkpoint tensors");
    CHECK(step && !strcmp(step, "2"), "adam.step = %s", step ? step : "(none)");
    CHECK(lr && (float)atof(lr) == 1e-3f && wd && (float)atof(wd) == 0.01f,
          "adam.lr = %s, adam.weight_decay = %s", lr ? lr : "(none)", wd ? wd : "(none)");
    CHECK(percept_st_meta(st, "adam.beta1") && percept_st_meta(st, "adam.beta2") &&
          percept_st_meta(st, "adam.eps") && percept_st_meta(st, "adam.count"),
          "checkpoint settings incomplete");
    percept_st_free(st);
}

/* A load that fails says why and leaves the optimiser as it was. */
static void expect_load_failure(const char *label, const char *path, size_t count,
                                const char *expect)
{
    PerceptAdam c;
    PerceptAdamConfig cfg = {1e-3f, 0.9f, 0.999f, 1e-8f, 0};
    percept_adam_init(&c, count, cfg);
    int rc = percept_adam_load(&c, path);
    int untouched = c.step == 0;
    for (size_t i = 0; i < count; i++)
        untouched &= c.m[i] == 0 && c.v[i] == 0;
    CHECK(rc == -1 && strstr(percept_error(), path) && strstr(percept_error(), expect),
          "%s: expected '%s', got '%s'", label, expect, rc ? percept_error() : "(loaded)");
    CHECK(untouched, "%s: a failed load changed the state", label);
    percept_adam_free(&c);
}

/* A safetensors file with adam.m / adam.v of n values and the given step. */
static void write_state(const char *path, int n, const char *step, float v0)
{
    float m[RN] = {0}, v[RN] = {0};
    v[0] = v0;
    PerceptStWrite t[2] = {{"adam.m", PERCEPT_DTYPE_F32, 1, {n}, m},
                           {"adam.v", PERCEPT_DTYPE_F32, 1, {n}, v}};
    PerceptStMeta meta = {"adam.step", (char *)step};
    CHECK(percept_st_write(path, t, 2, &meta, 1) == 0, "write %s: %s", path, percept_error());
}

static void check_adam_load_failures(const char *good)
{
    char path[512];
    expect_load_failure("wrong count", good, RN + 1, "for 50 parameters, this network has 51");
    state_path(path, sizeof path, "missing");
    expect_load_failure("missing file", path, RN, "No such file");
    state_path(path, sizeof path, "plain");
    float w[2] = {1, 2};
    PerceptStWrite t = {"w", PERCEPT_DTYPE_F32, 1, {2}, w};
    CHECK(percept_st_write(path, &t, 1, NULL, 0) == 0, "write: %s", percept_error());
    expect_load_failure("not a state", path, RN, "not an Adam state");
    unlink(path);
    state_path(path, sizeof path, "badstep");
    write_state(path, RN, "2x", 0);
    expect_load_failure("bad step", path, RN, "adam.step");
    write_state(path, RN, "-3", 0);
    expect_load_failure("negative step", path, RN, "adam.step");
    write_state(path, RN, "99999999999999999999999", 0);
    expect_load_failure("step overflow", path, RN, "adam.step");
    write_state(path, RN, "4", -1);
    expect_load_failure("negative v", path, RN, "negative");
    unlink(path);
}

static void check_adam_checkpoints(void)
{
    char path[512];
    state_path(path, sizeof path, "adam");
    PerceptAdamConfig cfg = {1e-3f, 0.9f, 0.99f, 1e-8f, 0.01f};
    check_adam_resume(path, cfg);
    check_adam_file(path);
    check_adam_load_failures(path);
    unlink(path);
}

int main(void)
{
    const char *t = getenv("PERCEPT_TEST_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s/rng-adam-%d", t ? t : "/tmp", (int)getpid());
    if (mkdir(tmpdir, 0755)) {
        perror(tmpdir);
        return 1;
    }
    check_rng_pinned();
    check_uniform();
    check_normal();
    check_rng_threads();
    check_adam_formulas();
    check_adam_settings();
    check_adam_threads();
    check_adam_checkpoints();
    rmdir(tmpdir);
    return check_done("test-rng-adam");
}
