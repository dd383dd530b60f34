/* A tiny test harness: CHECK records failures and the test exits non-zero at the end,
 * so a failing assertion can never be reported as a pass. */
#ifndef PERCEPT_TEST_CHECK_H
#define PERCEPT_TEST_CHECK_H

#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int check_failures = 0;
static int check_count = 0;

#define CHECK(cond, ...)                                                       \
    do {                                                                       \
        check_count++;                                                         \
        if (!(cond)) {                                                         \
            check_failures++;                                                  \
            fprintf(stderr, "FAIL %s:%d: ", __FILE__, __LINE__);               \
            fprintf(stderr, __VA_ARGS__);                                      \
            fprintf(stderr, "\n");                                             \
        }                                                                      \
    } while (0)

/* Call at the end of main: prints a summary and returns the exit status. */
static inline int check_done(const char *name)
{
    printf("%s: %d checks, %d failed\n", name, check_count, check_failures);
    return check_failures ? 1 : 0;
}

/* Deterministic test data in [lo, hi). */
static inline void fill_uniform(float *x, size_t n, uint64_t seed, float lo, float hi)
{
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = 0; i < n; i++) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        x[i] = lo + (hi - lo) * (float)((s >> 11) * (1.0 / 9007199254740992.0));
    }
}

/* Largest |a-b| / (atol + rtol |b|) over n elements; <= 1 means within tolerance. */
static inline double max_tol_ratio(const float *a, const float *b, size_t n, double atol,
                                   double rtol, size_t *worst)
{
    double m = 0;
    for (size_t i = 0; i < n; i++) {
        double r = fabs((double)a[i] - b[i]) / (atol + rtol * fabs((double)b[i]));
        if (!(r <= m)) { m = r; if (worst) *worst = i; }
    }
    return m;
}

/* Finite-difference gradient check.
 * The scalar checked is L = sum_i out[i] * weight[i]; the caller's analytic backward was
 * run with dout = weight and left dL/dx in `analytic`. forward(ctx) recomputes `out`
 * from the current contents of x. Central differences in float with step h; up to
 * `samples` elements of x are checked (all when n <= samples).
 * Passes when |num - ana| <= rtol * (|num| + |ana|) + atol_scale * max|ana| for every
 * checked element. Returns 1 on pass. */
static inline int gradcheck(const char *label, float *x, const float *analytic, size_t n,
                            void (*forward)(void *), void *ctx, const float *out,
                            const float *weight, size_t nout, float h, double rtol,
                            double atol_scale, size_t samples)
{
    double amax = 0;
    for (size_t i = 0; i < n; i++) amax = fmax(amax, fabs(analytic[i]));
    size_t stride = n <= samples ? 1 : n / samples;
    int ok = 1;
    double worst = 0;
    for (size_t i = 0; i < n; i += stride) {
        float keep = x[i];
        x[i] = keep + h; forward(ctx);
        double lp = 0; for (size_t j = 0; j < nout; j++) lp += (double)out[j] * weight[j];
        x[i] = keep - h; forward(ctx);
        double lm = 0; for (size_t j = 0; j < nout; j++) lm += (double)out[j] * weight[j];
        x[i] = keep;
        double num = (lp - lm) / (2.0 * h), ana = analytic[i];
        double err = fabs(num - ana), bound = rtol * (fabs(num) + fabs(ana)) + atol_scale * amax;
        if (err / (bound + 1e-30) > worst) worst = err / (bound + 1e-30);
        if (err > bound) {
            if (ok) fprintf(stderr, "  %s[%zu]: numeric %.6g analytic %.6g\n", label, i, num, ana);
            ok = 0;
        }
    }
    forward(ctx);
    check_count++;
    if (!ok) {
        check_failures++;
        fprintf(stderr, "FAIL gradcheck %s (worst error/bound %.3g)\n", label, worst);
    }
    return ok;
}

#endif
