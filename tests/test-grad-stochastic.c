/* Stochastic and code layers: dropout's mask follows the counter-based generator (same for
 * a seed, different across seeds, the right fraction kept, independent of threads), binary
 * codes pass gradients straight through, and the reparameterisation's noise is standard
 * normal and its gradients match finite differences. */
#include "check.h"
#include "layers.h"
#include "percept/percept.h"

#ifdef _OPENMP
#include <omp.h>
#endif

static int get_threads(void)
{
#ifdef _OPENMP
    return omp_get_max_threads();
#else
    return 1;
#endif
}

static void set_threads(int t)
{
#ifdef _OPENMP
    omp_set_num_threads(t);
#else
    (void)t;
#endif
}

/* A gradient check runs the forward pass hundreds of times on tiny tensors; on one thread,
 * so that a loaded machine does not stall it at every parallel region. */
#define GRADCHECK_SERIAL(...)                                                                  \
    do {                                                                                       \
        int threads_ = get_threads();                                                          \
        set_threads(1);                                                                        \
        gradcheck(__VA_ARGS__);                                                                \
        set_threads(threads_);                                                                 \
    } while (0)

static float *alloc_uniform(size_t n, uint64_t seed)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    fill_uniform(p, n, seed, -1, 1);
    return p;
}

/* Gradient buffers start as junk so that a backward pass that does not assign shows. */
static float *alloc_junk(size_t n)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        p[i] = 1e3f;
    return p;
}

/* ---- dropout --------------------------------------------------------------------------- */

typedef struct {
    size_t n;
    float p;
    uint64_t seed;
    float *x, *out, *mask;
} DropoutCase;

static void dropout_case_forward(void *q)
{
    DropoutCase *k = q;
    dropout_forward(k->out, k->mask, k->x, k->n, k->p, k->seed);
}

/* Element i is kept, scaled by 1/(1-p), exactly when draw i of the seed's stream is >= p;
 * the kept fraction is within 6 binomial standard deviations of 1 - p. */
static void check_dropout_mask(size_t n, float p, uint64_t seed)
{
    float *x = alloc_uniform(n, 1), *out = alloc_junk(n), *mask = alloc_junk(n);
    dropout_forward(out, mask, x, n, p, seed);
    const float keep = 1.0f / (1.0f - p);
    size_t bad = 0, kept = 0;
    for (size_t i = 0; i < n; i++) {
        float want = percept_rng_uniform(seed, i) >= p ? keep : 0.0f;
        bad += mask[i] != want || out[i] != x[i] * want;
        kept += mask[i] != 0;
    }
    CHECK(!bad, "dropout p%g seed %llu: %zu of %zu elements break the mask rule", p,
          (unsigned long long)seed, bad, n);
    double frac = (double)kept / n, sd = sqrt(p * (1.0 - p) / n);
    CHECK(fabs(frac - (1.0 - p)) <= 6 * sd + 1e-12, "dropout p%g: kept %.4f of %zu, want %.4f",
          p, frac, n, 1.0 - p);
    free(x); free(out); free(mask);
}

static void check_dropout_seeds(size_t n, float p)
{
    float *x = alloc_uniform(n, 2), *out[3], *mask[3];
    const uint64_t seeds[3] = {5, 5, 6};
    for (int i = 0; i < 3; i++) {
        out[i] = alloc_junk(n);
        mask[i] = alloc_junk(n);
        dropout_forward(out[i], mask[i], x, n, p, seeds[i]);
    }
    CHECK(!memcmp(mask[0], mask[1], sizeof(float) * n) &&
              !memcmp(out[0], out[1], sizeof(float) * n),
          "dropout p%g: the same seed gives different masks", p);
    /* two independent masks agree on a fraction p² + (1-p)² of elements */
    size_t same = 0;
    for (size_t i = 0; i < n; i++)
        same += mask[0][i] == mask[2][i];
    double agree = (double)same / n, want = p * p + (1.0 - p) * (1.0 - p);
    CHECK(fabs(agree - want) < 0.02, "dropout p%g: seeds 5 and 6 agree on %.4f of the mask, "
          "independent masks on %.4f", p, agree, want);
    /* the same seed on 1 and on 3 threads */
    const int keep = get_threads();
    set_threads(1);
    dropout_forward(out[2], mask[2], x, n, p, seeds[0]);
    set_threads(3);
    dropout_forward(out[1], mask[1], x, n, p, seeds[0]);
    set_threads(keep);
    CHECK(!memcmp(mask[1], mask[2], sizeof(float) * n) &&
              !memcmp(mask[0], mask[2], sizeof(float) * n),
          "dropout p%g: the mask depends on the thread count", p);
    for (int i = 0; i < 3; i++) {
        free(out[i]); free(mask[i]);
    }
    free(x);
}

/* p = 0 (the eval-like setting) is the identity, bit for bit, with a mask of ones. */
static void check_dropout_identity(size_t n)
{
    float *x = alloc_uniform(n, 3), *out = alloc_junk(n), *mask = alloc_junk(n);
    dropout_forward(out, mask, x, n, 0.0f, 9);
    size_t ones = 0;
    for (size_t i = 0; i < n; i++)
        ones += mask[i] == 1.0f;
    CHECK(!memcmp(out, x, sizeof(float) * n) && ones == n, "dropout p0 is not the identity "
          "(%zu of %zu mask values are 1)", ones, n);
    free(x); free(out); free(mask);
}

static void check_dropout_gradient(size_t n, float p)
{
    DropoutCase k = {n, p, 11, alloc_uniform(n, 4), alloc_junk(n), alloc_junk(n)};
    float *r = alloc_uniform(n, 5), *dx = alloc_junk(n);
    dropout_case_forward(&k);
    dropout_backward(dx, r, k.mask, n);
    char label[48];
    snprintf(label, sizeof label, "dropout n%zu p%g", n, p);
    GRADCHECK_SERIAL(label, k.x, dx, n, dropout_case_forward, &k, k.out, r, n, 1e-2f, 1e-2, 1e-3,
                     300);
    free(k.x); free(k.out); free(k.mask); free(r); free(dx);
}

/* ---- binary ---------------------------------------------------------------------------- */

static void check_binary(void)
{
    enum { N = 1003 };
    float *x = alloc_uniform(N, 6), out[N], dout[N], din[N];
    x[0] = 0.25f; /* exactly at the threshold: not above it, so low */
    x[1] = nextafterf(0.25f, 1.0f);
    binary_forward(out, x, N, 0.25f, -1.0f, 2.0f);
    int bad = 0;
    for (int i = 0; i < N; i++)
        bad += out[i] != (x[i] > 0.25f ? 2.0f : -1.0f);
    CHECK(!bad && out[0] == -1.0f && out[1] == 2.0f, "binary: %d values on the wrong side", bad);
    fill_uniform(dout, N, 7, -1, 1);
    for (int i = 0; i < N; i++)
        din[i] = 1e3f;
    binary_backward(din, dout, N);
    CHECK(!memcmp(din, dout, sizeof din), "binary: the straight-through gradient is not dout");
    free(x);
}

/* ---- reparameterisation ---------------------------------------------------------------- */

typedef struct {
    int n, c, hw;
    uint64_t seed;
    float *x, *out, *eps;
} ReparamCase;

static void reparam_case_forward(void *q)
{
    ReparamCase *k = q;
    reparam_forward(k->out, k->eps, k->x, k->n, k->c, k->hw, k->seed);
}

static void check_reparam(int n, int c, int hw, uint64_t seed)
{
    size_t half = (size_t)c * hw, nout = (size_t)n * half, nin = 2 * nout;
    ReparamCase k = {n, c, hw, seed, alloc_uniform(nin, 8), alloc_junk(nout), alloc_junk(nout)};
    reparam_case_forward(&k);
    /* image b's mu is its first c channels, its logvar the last c; eps[o] is draw o */
    double worst = 0;
    size_t bad_eps = 0;
    for (int b = 0; b < n; b++)
        for (size_t i = 0; i < half; i++) {
            size_t o = (size_t)b * half + i;
            const float *img = k.x + (size_t)b * 2 * half;
            double mu = img[i], logvar = img[half + i];
            bad_eps += k.eps[o] != percept_rng_normal(seed, o);
            double want = mu + exp(0.5 * logvar) * percept_rng_normal(seed, o);
            worst = fmax(worst, fabs(k.out[o] - want) / (1e-6 + 1e-6 * fabs(want)));
        }
    CHECK(!bad_eps, "reparam n%d c%d hw%d: %zu eps values are not the seed's draws", n, c, hw,
          bad_eps);
    CHECK(worst <= 1, "reparam n%d c%d hw%d: out is not mu + exp(logvar/2) eps (%g)", n, c, hw,
          worst);

    /* the seed is fixed, so the forward pass is a deterministic function of mu and logvar */
    float *r = alloc_uniform(nout, 9), *dx = alloc_junk(nin);
    reparam_backward(dx, r, k.x, k.eps, n, c, hw);
    char label[64];
    snprintf(label, sizeof label, "reparam n%d c%d hw%d d(mu, logvar)", n, c, hw);
    GRADCHECK_SERIAL(label, k.x, dx, nin, reparam_case_forward, &k, k.out, r, nout, 1e-2f, 1e-2,
                     1e-3, 400);
    free(k.x); free(k.out); free(k.eps); free(r); free(dx);
}

/* mu = 0, logvar = 0 gives out = eps: over 100k draws mean ≈ 0, variance ≈ 1 (6 standard
 * errors), a different seed gives different draws, and threads do not matter. */
static void check_reparam_noise(void)
{
    enum { C = 4, HW = 25000, N = C * HW };
    float *x = calloc(2 * N, sizeof(float)), *out = alloc_junk(N), *eps = alloc_junk(N);
    float *other = alloc_junk(N), *eps2 = alloc_junk(N);
    reparam_forward(out, eps, x, 1, C, HW, 42);
    double s = 0, ss = 0;
    for (int i = 0; i < N; i++) {
        s += out[i];
        ss += (double)out[i] * out[i];
    }
    double mean = s / N, var = ss / N - mean * mean;
    CHECK(fabs(mean) < 6 / sqrt(N) && fabs(var - 1) < 6 * sqrt(2.0 / N),
          "reparam noise over %d draws: mean %.4f variance %.4f", N, mean, var);
    reparam_forward(other, eps2, x, 1, C, HW, 43);
    size_t same = 0;
    for (int i = 0; i < N; i++)
        same += eps[i] == eps2[i];
    CHECK(same < 10, "reparam seeds 42 and 43 share %zu of %d draws", same, N);
    const int keep = get_threads();
    set_threads(3);
    reparam_forward(other, eps2, x, 1, C, HW, 42);
    set_threads(1);
    reparam_forward(out, eps, x, 1, C, HW, 42);
    set_threads(keep);
    CHECK(!memcmp(eps, eps2, sizeof(float) * N) && !memcmp(out, other, sizeof(float) * N),
          "reparam noise depends on the thread count");
    free(x); free(out); free(eps); free(other); free(eps2);
}

int main(void)
{
    check_dropout_mask(100000, 0.3f, 1);
    check_dropout_mask(100000, 0.5f, 2);
    check_dropout_mask(100000, 0.9f, 3);
    /* p equal to one of the draws: that element is kept (the rule is >=, not >) */
    check_dropout_mask(1000, percept_rng_uniform(4, 10), 4);
    check_dropout_seeds(100000, 0.5f);
    check_dropout_seeds(100001, 0.2f);
    check_dropout_identity(1001);
    check_dropout_gradient(37, 0.3f);
    check_dropout_gradient(200, 0.5f);

    check_binary();

    check_reparam(2, 3, 5, 7);
    check_reparam(1, 1, 1, 8);
    check_reparam(3, 2, 7, 9);
    check_reparam_noise();
    return check_done("test-grad-stochastic");
}
