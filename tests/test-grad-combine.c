/* Combining layers: residual add, channel concat, linear and the fixed per-channel affine
 * map against brute-force computations written here, their gradients against finite
 * differences, and the accumulate/assign contract of the backward passes. */
#include "check.h"
#include "layers.h"

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

/* Activation gradients start as junk: a backward pass that accumulates into them instead of
 * assigning, or misses an element, fails the gradient check. */
static float *alloc_junk(size_t n)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        p[i] = 1e3f;
    return p;
}

/* ---- add ------------------------------------------------------------------------------- */

static void check_add(size_t n)
{
    float *a = alloc_uniform(n, 1), *b = alloc_uniform(n, 2), *out = alloc_junk(n);
    add_forward(out, a, b, n);
    int bad = 0;
    for (size_t i = 0; i < n; i++)
        bad += out[i] != a[i] + b[i];
    CHECK(!bad, "add of %zu elements: %d wrong", n, bad);
    /* in place over the first operand, as a residual block may run it */
    add_forward(a, a, b, n);
    CHECK(!memcmp(a, out, sizeof(float) * n), "add of %zu elements in place differs", n);
    free(a); free(b); free(out);
}

/* ---- concat ---------------------------------------------------------------------------- */

enum { MAX_PARTS = 4 };

typedef struct {
    int count, n, hw, cs[MAX_PARTS];
    float *ins[MAX_PARTS], *out;
} ConcatCase;

static void concat_case_forward(void *p)
{
    ConcatCase *k = p;
    concat_forward(k->out, (const float *const *)k->ins, k->cs, k->count, k->n, k->hw);
}

static void check_concat(int n, int hw, int count, const int *cs)
{
    ConcatCase k = {count, n, hw, {0}, {0}, 0};
    int total = 0;
    for (int i = 0; i < count; i++) {
        k.cs[i] = cs[i];
        k.ins[i] = alloc_uniform((size_t)n * cs[i] * hw, 10 + i);
        total += cs[i];
    }
    size_t nout = (size_t)n * total * hw;
    k.out = alloc_junk(nout);
    concat_case_forward(&k);
    /* element (b, channel ch of part i, x) lands at channel (sum of earlier parts) + ch */
    int bad = 0;
    for (int b = 0; b < n; b++) {
        int first = 0;
        for (int i = 0; i < count; i++) {
            for (int ch = 0; ch < cs[i]; ch++)
                for (int x = 0; x < hw; x++)
                    bad += k.out[((size_t)b * total + first + ch) * hw + x] !=
                           k.ins[i][((size_t)b * cs[i] + ch) * hw + x];
            first += cs[i];
        }
    }
    CHECK(!bad, "concat n%d hw%d of %d parts: %d values misplaced", n, hw, count, bad);

    float *r = alloc_uniform(nout, 20), *dins[MAX_PARTS];
    for (int i = 0; i < count; i++)
        dins[i] = alloc_junk((size_t)n * cs[i] * hw);
    concat_backward(dins, r, cs, count, n, hw);
    for (int i = 0; i < count; i++) {
        char label[64];
        snprintf(label, sizeof label, "concat n%d hw%d part %d of %d", n, hw, i, count);
        GRADCHECK_SERIAL(label, k.ins[i], dins[i], (size_t)n * cs[i] * hw, concat_case_forward, &k,
                  k.out, r, nout, 1e-2f, 1e-2, 1e-3, 300);
    }
    /* a NULL gradient is skipped; the others are still written */
    if (count > 1) {
        float *kept = malloc(sizeof(float) * n * cs[1] * hw);
        memcpy(kept, dins[1], sizeof(float) * n * cs[1] * hw);
        float *first = dins[0];
        dins[0] = NULL;
        for (size_t i = 0; i < (size_t)n * cs[1] * hw; i++)
            dins[1][i] = 1e3f;
        concat_backward(dins, r, cs, count, n, hw);
        CHECK(!memcmp(kept, dins[1], sizeof(float) * n * cs[1] * hw),
              "concat n%d hw%d: a NULL first gradient changes the second", n, hw);
        dins[0] = first;
        free(kept);
    }
    for (int i = 0; i < count; i++) {
        free(k.ins[i]); free(dins[i]);
    }
    free(k.out); free(r);
}

/* ---- linear ---------------------------------------------------------------------------- */

typedef struct {
    int n, fin, fout;
    float *x, *w, *b, *out;
} LinearCase;

static void linear_case_forward(void *p)
{
    LinearCase *k = p;
    linear_forward(k->out, k->x, k->w, k->b, k->n, k->fin, k->fout);
}

static void check_linear(int n, int fin, int fout, int with_bias)
{
    LinearCase k = {n, fin, fout, alloc_uniform((size_t)n * fin, 31),
                    alloc_uniform((size_t)fout * fin, 32),
                    with_bias ? alloc_uniform(fout, 33) : NULL, alloc_junk((size_t)n * fout)};
    size_t nin = (size_t)n * fin, nw = (size_t)fout * fin, nout = (size_t)n * fout;
    linear_case_forward(&k);
    /* out[b][o] = sum_i in[b][i] * weight[o][i] + bias[o] (PyTorch's (fout, fin) weight) */
    double worst = 0;
    for (int b = 0; b < n; b++)
        for (int o = 0; o < fout; o++) {
            double want = with_bias ? k.b[o] : 0;
            for (int i = 0; i < fin; i++)
                want += (double)k.x[(size_t)b * fin + i] * k.w[(size_t)o * fin + i];
            double err = fabs(k.out[(size_t)b * fout + o] - want);
            worst = fmax(worst, err / (1e-5 + 1e-5 * fabs(want)));
        }
    CHECK(worst <= 1, "linear n%d fin%d fout%d%s differs from the sum (%g)", n, fin, fout,
          with_bias ? " bias" : "", worst);

    float *r = alloc_uniform(nout, 34), *dx = alloc_junk(nin);
    float *dw = calloc(nw, sizeof(float)), *db = calloc(fout, sizeof(float));
    linear_backward(dx, dw, with_bias ? db : NULL, r, k.x, k.w, n, fin, fout);
    char label[80];
    snprintf(label, sizeof label, "linear n%d fin%d fout%d din", n, fin, fout);
    GRADCHECK_SERIAL(label, k.x, dx, nin, linear_case_forward, &k, k.out, r, nout, 1e-2f, 1e-2,
                     1e-3, 300);
    snprintf(label, sizeof label, "linear n%d fin%d fout%d dweight", n, fin, fout);
    GRADCHECK_SERIAL(label, k.w, dw, nw, linear_case_forward, &k, k.out, r, nout, 1e-2f, 1e-2,
                     1e-3, 300);
    if (with_bias) {
        snprintf(label, sizeof label, "linear n%d fin%d fout%d dbias", n, fin, fout);
        GRADCHECK_SERIAL(label, k.b, db, fout, linear_case_forward, &k, k.out, r, nout, 1e-2f, 1e-2,
                  1e-3, 300);
    }

    /* parameter gradients accumulate (a second pass doubles them), din is assigned, and a
     * NULL din still gives the parameter gradients */
    float *dw1 = malloc(sizeof(float) * nw), *db1 = malloc(sizeof(float) * fout);
    float *dx2 = alloc_junk(nin);
    memcpy(dw1, dw, sizeof(float) * nw);
    memcpy(db1, db, sizeof(float) * fout);
    linear_backward(dx2, dw, with_bias ? db : NULL, r, k.x, k.w, n, fin, fout);
    linear_backward(NULL, dw, with_bias ? db : NULL, r, k.x, k.w, n, fin, fout);
    double wa = 0, ba = 0;
    for (size_t i = 0; i < nw; i++)
        wa = fmax(wa, fabs(dw[i] - 3 * dw1[i]) / (1e-6 + 1e-5 * fabs(dw1[i])));
    for (int i = 0; i < fout; i++)
        ba = fmax(ba, fabs(db[i] - 3 * db1[i]) / (1e-6 + 1e-5 * fabs(db1[i])));
    CHECK(wa <= 1 && ba <= 1, "linear n%d fin%d fout%d: parameter gradients do not accumulate "
          "(%g, %g)", n, fin, fout, wa, ba);
    CHECK(!memcmp(dx, dx2, sizeof(float) * nin), "linear n%d fin%d fout%d: din is not assigned",
          n, fin, fout);
    free(k.x); free(k.w); free(k.b); free(k.out);
    free(r); free(dx); free(dw); free(db); free(dw1); free(db1); free(dx2);
}

/* ---- channel affine -------------------------------------------------------------------- */

typedef struct {
    int n, c, hw;
    float *x, *scale, *shift, *out;
} AffineCase;

static void affine_case_forward(void *p)
{
    AffineCase *k = p;
    channel_affine_forward(k->out, k->x, k->scale, k->shift, k->n, k->c, k->hw);
}

static void check_affine(int n, int c, int hw)
{
    size_t total = (size_t)n * c * hw;
    AffineCase k = {n, c, hw, alloc_uniform(total, 41), alloc_uniform(c, 42), alloc_uniform(c, 43),
                    alloc_junk(total)};
    for (int i = 0; i < c; i++)
        k.scale[i] *= 3; /* scales beyond ±1, as 255 or 1/std are */
    affine_case_forward(&k);
    double worst = 0;
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++)
            for (int x = 0; x < hw; x++) {
                size_t i = ((size_t)b * c + ch) * hw + x;
                double want = (double)k.x[i] * k.scale[ch] + k.shift[ch];
                worst = fmax(worst, fabs(k.out[i] - want) / (1e-6 + 1e-6 * fabs(want)));
            }
    CHECK(worst <= 1, "channel_affine n%d c%d hw%d differs from in * scale + shift (%g)", n, c,
          hw, worst);
    if (total <= 4096) {
        float *r = alloc_uniform(total, 44), *dx = alloc_junk(total);
        channel_affine_backward(dx, r, k.scale, n, c, hw);
        char label[64];
        snprintf(label, sizeof label, "channel_affine n%d c%d hw%d", n, c, hw);
        GRADCHECK_SERIAL(label, k.x, dx, total, affine_case_forward, &k, k.out, r, total, 1e-2f,
                         1e-2, 1e-3, 300);
        free(r); free(dx);
    }
    free(k.x); free(k.scale); free(k.shift); free(k.out);
}

int main(void)
{
    check_add(1);
    check_add(1001);

    check_concat(2, 12, 3, (const int[]){2, 1, 3});
    check_concat(1, 7, 2, (const int[]){3, 3});
    check_concat(3, 1, 4, (const int[]){1, 2, 1, 5});
    check_concat(1, 5, 1, (const int[]){2});

    check_linear(3, 5, 4, 1);
    check_linear(1, 7, 1, 1);
    check_linear(4, 1, 3, 0);
    check_linear(2, 33, 17, 1);
    check_linear(5, 64, 10, 0);

    check_affine(2, 3, 12);
    check_affine(1, 1, 7);
    check_affine(3, 4, 5);
    /* planes longer than a thread's block, and fewer planes than threads */
    check_affine(1, 3, 16384 * 2 + 5);
    check_affine(2, 1, 16384 - 1);
    return check_done("test-grad-combine");
}
