/* The counter-based generator (determinism, distribution) and Adam against formulas
 * evaluated in double precision, with checkpoint save/load continuing exactly. */
#include <unistd.h>

#include "check.h"
#include "percept/percept.h"

static void check_rng(void)
{
    enum { N = 100000 };
    double su = 0, suu = 0, sn = 0, snn = 0;
    int differ = 0, outside = 0;
    for (int i = 0; i < N; i++) {
        float u = percept_rng_uniform(7, i), z = percept_rng_normal(7, i);
        outside += !(u >= 0 && u < 1);
        su += u; suu += (double)u * u;
        sn += z; snn += (double)z * z;
        differ += percept_rng_u64(7, i) != percept_rng_u64(8, i);
    }
    CHECK(!outside, "%d uniform values outside [0, 1)", outside);
    CHECK(fabs(su / N - 0.5) < 0.005 && fabs(suu / N - su * su / N / N - 1.0 / 12) < 0.002,
          "uniform mean %g", su / N);
    CHECK(fabs(sn / N) < 0.015 && fabs(snn / N - 1) < 0.02, "normal mean %g var %g", sn / N, snn / N);
    CHECK(differ == N, "seeds 7 and 8 share %d values", N - differ);
    CHECK(percept_rng_u64(1, 5) == percept_rng_u64(1, 5) && percept_rng_u64(1, 5) != percept_rng_u64(1, 6),
          "counter determinism");
}

/* Adam in double, written out from the paper / PyTorch docs */
static void adam_reference(double *p, double *m, double *v, const float *g, int n, int step,
                           PerceptAdamConfig c)
{
    for (int i = 0; i < n; i++) {
        p[i] -= (double)c.lr * c.weight_decay * p[i];
        m[i] = c.beta1 * m[i] + (1 - c.beta1) * g[i];
        v[i] = c.beta2 * v[i] + (1 - c.beta2) * (double)g[i] * g[i];
        double mh = m[i] / (1 - pow(c.beta1, step)), vh = v[i] / (1 - pow(c.beta2, step));
        p[i] -= c.lr * mh / (sqrt(vh) + c.eps);
    }
}

static void check_adam(float decay)
{
    enum { N = 37 };
    PerceptAdamConfig cfg = {1e-2f, 0.9f, 0.999f, 1e-8f, decay};
    PerceptAdam a;
    CHECK(percept_adam_init(&a, N, cfg) == 0, "init: %s", percept_error());
    float p[N], g[N];
    double rp[N], rm[N] = {0}, rv[N] = {0};
    fill_uniform(p, N, 1, -1, 1);
    for (int i = 0; i < N; i++)
        rp[i] = p[i];
    for (int step = 1; step <= 3; step++) {
        fill_uniform(g, N, 10 + step, -2, 2);
        percept_adam_step(&a, p, g);
        adam_reference(rp, rm, rv, g, N, step, cfg);
    }
    double worst = 0;
    for (int i = 0; i < N; i++)
        worst = fmax(worst, fabs(p[i] - rp[i]));
    CHECK(worst < 1e-6, "Adam (decay %g) differs from the formula by %g", decay, worst);
    percept_adam_free(&a);
}

static void check_adam_resume(void)
{
    enum { N = 50 };
    PerceptAdamConfig cfg = {1e-3f, 0.9f, 0.99f, 1e-8f, 0.01f};
    char path[512];
    const char *t = getenv("PERCEPT_TEST_TMP");
    snprintf(path, sizeof path, "%s/adam-%d.safetensors", t ? t : "/tmp", (int)getpid());
    PerceptAdam a, b;
    float pa[N], pb[N], g[N];
    fill_uniform(pa, N, 3, -1, 1);
    memcpy(pb, pa, sizeof pa);
    percept_adam_init(&a, N, cfg);
    percept_adam_init(&b, N, cfg);
    for (int s = 0; s < 5; s++) {
        fill_uniform(g, N, 100 + s, -1, 1);
        percept_adam_step(&a, pa, g);
        if (s < 2)
            percept_adam_step(&b, pb, g);
        if (s == 1) {
            CHECK(percept_adam_save(&b, path) == 0, "save: %s", percept_error());
            percept_adam_free(&b);
            percept_adam_init(&b, N, cfg);
            CHECK(percept_adam_load(&b, path) == 0 && b.step == 2, "load: %s", percept_error());
        }
        if (s >= 2)
            percept_adam_step(&b, pb, g);
    }
    CHECK(!memcmp(pa, pb, sizeof pa), "resumed Adam differs from an uninterrupted run");
    PerceptAdam c;
    percept_adam_init(&c, N + 1, cfg);
    CHECK(percept_adam_load(&c, path) == -1 && strstr(percept_error(), "50 parameters"),
          "wrong count: %s", percept_error());
    percept_adam_free(&c);
    CHECK(percept_adam_init(&c, 4, (PerceptAdamConfig){-1, 0.9f, 0.999f, 1e-8f, 0}) == -1,
          "negative learning rate accepted");
    percept_adam_free(&a);
    percept_adam_free(&b);
    unlink(path);
}

int main(void)
{
    check_rng();
    check_adam(0);
    check_adam(0.1f);
    check_adam_resume();
    return check_done("test-rng-adam");
}
