/* Resampling and pooling: every forward pass against a brute-force computation written
 * here (element mappings, padded planes), every backward pass against finite differences,
 * pixel shuffle against nearest upsampling where the two must agree, and results that do
 * not depend on the thread count. */
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

/* Gradient buffers start as junk: a backward pass that accumulates instead of assigning,
 * or misses an element, fails the gradient check. */
static float *alloc_junk(size_t n)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        p[i] = 1e3f;
    return p;
}

/* ---- one case of any op, so that one forward function serves the gradient checks ---- */

typedef enum { OP_UPSAMPLE, OP_SHUFFLE, OP_AVG, OP_MAX, OP_GLOBAL } Op;

typedef struct {
    Op op;
    int n, c, h, w, f;  /* f: upsampling factor or shuffle r; c: output channels for shuffle */
    PoolShape ps;
    float *x, *out;
    int32_t *arg;
} Case;

static size_t case_in_size(const Case *k)
{
    if (k->op == OP_AVG || k->op == OP_MAX)
        return (size_t)k->ps.n * k->ps.c * k->ps.h * k->ps.w;
    return (size_t)k->n * k->c * (k->op == OP_SHUFFLE ? k->f * k->f : 1) * k->h * k->w;
}

static size_t case_out_size(const Case *k)
{
    switch (k->op) {
    case OP_UPSAMPLE:
    case OP_SHUFFLE:
        return (size_t)k->n * k->c * k->h * k->f * k->w * k->f;
    case OP_AVG:
    case OP_MAX:
        return (size_t)k->ps.n * k->ps.c * k->ps.hout * k->ps.wout;
    case OP_GLOBAL:
        return (size_t)k->n * k->c;
    }
    return 0;
}

static void case_forward(void *p)
{
    Case *k = p;
    switch (k->op) {
    case OP_UPSAMPLE:
        upsample_nearest_forward(k->out, k->x, k->n, k->c, k->h, k->w, k->f);
        break;
    case OP_SHUFFLE:
        pixel_shuffle_forward(k->out, k->x, k->n, k->c, k->h, k->w, k->f);
        break;
    case OP_AVG:
        avg_pool_forward(k->out, k->x, &k->ps);
        break;
    case OP_MAX:
        max_pool_forward(k->out, k->arg, k->x, &k->ps);
        break;
    case OP_GLOBAL:
        global_avg_pool_forward(k->out, k->x, k->n, k->c, k->h * k->w);
        break;
    }
}

static void case_backward(const Case *k, float *din, const float *dout)
{
    switch (k->op) {
    case OP_UPSAMPLE:
        upsample_nearest_backward(din, dout, k->n, k->c, k->h, k->w, k->f);
        break;
    case OP_SHUFFLE:
        pixel_shuffle_backward(din, dout, k->n, k->c, k->h, k->w, k->f);
        break;
    case OP_AVG:
        avg_pool_backward(din, dout, &k->ps);
        break;
    case OP_MAX:
        max_pool_backward(din, dout, k->arg, &k->ps);
        break;
    case OP_GLOBAL:
        global_avg_pool_backward(din, dout, k->n, k->c, k->h * k->w);
        break;
    }
}

static Case make_case(Op op, int n, int c, int h, int w, int f, int k, int stride, int pad)
{
    Case cs = {op, n, c, h, w, f, {n, c, h, w, k, stride, pad, 0, 0}, 0, 0, 0};
    pool2d_shape(&cs.ps);
    cs.x = alloc_uniform(case_in_size(&cs), 7);
    cs.out = malloc(sizeof(float) * case_out_size(&cs));
    cs.arg = malloc(sizeof(int32_t) * (case_out_size(&cs) + 1));
    return cs;
}

static void free_case(Case *k)
{
    free(k->x); free(k->out); free(k->arg);
}

/* Values i * 0.05 in a shuffled order: max-pool windows have no near-ties, so steps of
 * h = 0.01 never change a winner. */
static void fill_distinct(float *x, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        x[i] = 0.05f * (float)i - 0.025f * (float)n;
    uint64_t s = seed * 0x9E3779B97F4A7C15ull + 1;
    for (size_t i = n; i > 1; i--) {
        s ^= s << 13; s ^= s >> 7; s ^= s << 17;
        size_t j = s % i;
        float t = x[i - 1]; x[i - 1] = x[j]; x[j] = t;
    }
}

static void check_gradient(Case *k, const char *label)
{
    size_t nin = case_in_size(k), nout = case_out_size(k);
    if (k->op == OP_MAX)
        fill_distinct(k->x, nin, 3);
    float *r = alloc_uniform(nout, 8), *din = alloc_junk(nin);
    case_forward(k);
    case_backward(k, din, r);
    GRADCHECK_SERIAL(label, k->x, din, nin, case_forward, k, k->out, r, nout, 1e-2f, 1e-2, 1e-3,
                     400);
    free(r); free(din);
}

/* ---- upsampling and pixel shuffle ------------------------------------------------------ */

static void check_upsample(int n, int c, int h, int w, int f)
{
    Case k = make_case(OP_UPSAMPLE, n, c, h, w, f, 1, 1, 0);
    case_forward(&k);
    int bad = 0;
    for (int p = 0; p < n * c; p++)
        for (int y = 0; y < h * f; y++)
            for (int x = 0; x < w * f; x++)
                bad += k.out[((size_t)p * h * f + y) * w * f + x] !=
                       k.x[((size_t)p * h + y / f) * w + x / f];
    CHECK(!bad, "upsample n%d c%d %dx%d f%d: %d values wrong", n, c, h, w, f, bad);
    char label[64];
    snprintf(label, sizeof label, "upsample n%d c%d %dx%d f%d", n, c, h, w, f);
    check_gradient(&k, label);
    free_case(&k);
}

static void check_shuffle(int n, int c, int h, int w, int r)
{
    Case k = make_case(OP_SHUFFLE, n, c, h, w, r, 1, 1, 0);
    case_forward(&k);
    int bad = 0;
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h * r; y++)
                for (int x = 0; x < w * r; x++) {
                    int src = ch * r * r + (y % r) * r + x % r; /* torch: C*r*r + i*r + j */
                    float want = k.x[(((size_t)b * c * r * r + src) * h + y / r) * w + x / r];
                    bad += k.out[(((size_t)b * c + ch) * h * r + y) * w * r + x] != want;
                }
    CHECK(!bad, "pixel_shuffle n%d c%d %dx%d r%d: %d values in the wrong place", n, c, h, w, r,
          bad);
    /* a permutation's gradient is its inverse: backward undoes forward exactly */
    size_t nin = case_in_size(&k);
    float *back = alloc_junk(nin);
    pixel_shuffle_backward(back, k.out, n, c, h, w, r);
    CHECK(!memcmp(back, k.x, sizeof(float) * nin), "pixel_shuffle n%d c%d %dx%d r%d: backward "
          "is not the inverse", n, c, h, w, r);
    free(back);
    char label[64];
    snprintf(label, sizeof label, "pixel_shuffle n%d c%d %dx%d r%d", n, c, h, w, r);
    check_gradient(&k, label);
    free_case(&k);
}

/* Shuffling r*r copies of a plane is nearest upsampling of that plane by r; backward,
 * shuffling's gradient summed over the copies is upsampling's gradient. */
static void check_shuffle_is_upsample(int n, int c, int h, int w, int r)
{
    size_t plane = (size_t)h * w, big = plane * r * r;
    float *u = alloc_uniform((size_t)n * c * plane, 31);
    float *copies = malloc(sizeof(float) * n * c * big);
    float *a = malloc(sizeof(float) * n * c * big), *b = malloc(sizeof(float) * n * c * big);
    for (int p = 0; p < n * c; p++)
        for (int q = 0; q < r * r; q++)
            memcpy(copies + ((size_t)p * r * r + q) * plane, u + p * plane, sizeof(float) * plane);
    pixel_shuffle_forward(a, copies, n, c, h, w, r);
    upsample_nearest_forward(b, u, n, c, h, w, r);
    CHECK(!memcmp(a, b, sizeof(float) * n * c * big), "pixel_shuffle of copies n%d c%d %dx%d "
          "r%d is not nearest upsampling", n, c, h, w, r);

    float *dout = alloc_uniform((size_t)n * c * big, 32), *dsh = alloc_junk((size_t)n * c * big);
    float *dup = alloc_junk((size_t)n * c * plane);
    float *sum = calloc((size_t)n * c * plane, sizeof(float));
    pixel_shuffle_backward(dsh, dout, n, c, h, w, r);
    upsample_nearest_backward(dup, dout, n, c, h, w, r);
    for (int p = 0; p < n * c; p++)
        for (int q = 0; q < r * r; q++)
            for (size_t i = 0; i < plane; i++)
                sum[p * plane + i] += dsh[((size_t)p * r * r + q) * plane + i];
    double worst = max_tol_ratio(dup, sum, (size_t)n * c * plane, 1e-6, 1e-6, NULL);
    CHECK(worst <= 1, "upsample backward n%d c%d %dx%d r%d is not the summed shuffle gradient "
          "(%g)", n, c, h, w, r, worst);
    free(u); free(copies); free(a); free(b); free(dout); free(dsh); free(dup); free(sum);
}

/* ---- pooling --------------------------------------------------------------------------- */

static void check_pool_shapes(void)
{
    /* floor mode: (h + 2 pad - k) / stride + 1, the incomplete last window dropped */
    static const int t[][5] = {/* h k stride pad -> hout */
        {7, 3, 2, 1, 4}, {6, 2, 2, 0, 3}, {5, 2, 2, 0, 2}, {224, 2, 2, 0, 112},
        {9, 4, 3, 2, 4}, {1, 1, 1, 0, 1}, {4, 3, 1, 1, 4}};
    for (size_t i = 0; i < sizeof t / sizeof *t; i++) {
        PoolShape s = {1, 1, t[i][0], t[i][0] + 1, t[i][1], t[i][2], t[i][3], 0, 0};
        pool2d_shape(&s);
        int wout = (t[i][0] + 1 + 2 * t[i][3] - t[i][1]) / t[i][2] + 1;
        CHECK(s.hout == t[i][4] && s.wout == wout, "pool shape h%d k%d s%d p%d: %dx%d, want "
              "%dx%d", t[i][0], t[i][1], t[i][2], t[i][3], s.hout, s.wout, t[i][4], wout);
    }
}

/* Plane p of `in` padded by `pad` on every side with `fill`. */
static float *padded_plane(const float *in, const PoolShape *s, int p, float fill)
{
    int hp = s->h + 2 * s->pad, wp = s->w + 2 * s->pad;
    float *q = malloc(sizeof(float) * hp * wp);
    for (int i = 0; i < hp * wp; i++)
        q[i] = fill;
    for (int y = 0; y < s->h; y++)
        for (int x = 0; x < s->w; x++)
            q[(y + s->pad) * wp + x + s->pad] = in[((size_t)p * s->h + y) * s->w + x];
    return q;
}

/* Average pooling as PyTorch defines it with count_include_pad: pad with zeros, then
 * average every k×k window of the padded plane. */
static void check_avg_pool(int n, int c, int h, int w, int k, int stride, int pad)
{
    Case cs = make_case(OP_AVG, n, c, h, w, 1, k, stride, pad);
    const PoolShape *s = &cs.ps;
    case_forward(&cs);
    int wp = w + 2 * pad;
    double worst = 0;
    for (int p = 0; p < n * c; p++) {
        float *q = padded_plane(cs.x, s, p, 0.0f);
        for (int oy = 0; oy < s->hout; oy++)
            for (int ox = 0; ox < s->wout; ox++) {
                double sum = 0;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++)
                        sum += q[(oy * stride + i) * wp + ox * stride + j];
                double want = sum / (k * k);
                float got = cs.out[((size_t)p * s->hout + oy) * s->wout + ox];
                worst = fmax(worst, fabs(got - want) / (1e-6 + 1e-6 * fabs(want)));
            }
        free(q);
    }
    CHECK(worst <= 1, "avg_pool n%d c%d %dx%d k%d s%d p%d differs from the padded average (%g)",
          n, c, h, w, k, stride, pad, worst);
    char label[64];
    snprintf(label, sizeof label, "avg_pool n%d c%d %dx%d k%d s%d p%d", n, c, h, w, k, stride, pad);
    check_gradient(&cs, label);
    free_case(&cs);
}

/* Max pooling by scanning each window of the (-inf) padded plane in row-major order, the
 * first maximum winning. Values are quantised to four levels, some negative, so windows are
 * full of ties and padding would win if it counted as zero. */
static void check_max_pool(int n, int c, int h, int w, int k, int stride, int pad)
{
    Case cs = make_case(OP_MAX, n, c, h, w, 1, k, stride, pad);
    const PoolShape *s = &cs.ps;
    size_t nin = case_in_size(&cs), nout = case_out_size(&cs);
    for (size_t i = 0; i < nin; i++)
        cs.x[i] = floorf((cs.x[i] + 1) * 2) - 3.5f; /* -3.5 .. -0.5 */
    case_forward(&cs);
    float *dout = alloc_uniform(nout, 9), *din = alloc_junk(nin);
    float *want_din = calloc(nin, sizeof(float));
    max_pool_backward(din, dout, cs.arg, s);
    int wp = w + 2 * pad, bad = 0;
    for (int p = 0; p < n * c; p++) {
        float *q = padded_plane(cs.x, s, p, -INFINITY);
        for (int oy = 0; oy < s->hout; oy++)
            for (int ox = 0; ox < s->wout; ox++) {
                float best = -INFINITY;
                int at = -1;
                for (int i = 0; i < k; i++)
                    for (int j = 0; j < k; j++) {
                        int y = oy * stride + i - pad, x = ox * stride + j - pad;
                        float v = q[(y + pad) * wp + x + pad];
                        if (y >= 0 && x >= 0 && y < h && x < w && (at < 0 || v > best)) {
                            best = v;
                            at = y * w + x;
                        }
                    }
                size_t o = ((size_t)p * s->hout + oy) * s->wout + ox;
                bad += cs.out[o] != best || cs.arg[o] != at;
                want_din[(size_t)p * h * w + at] += dout[o];
            }
        free(q);
    }
    CHECK(!bad, "max_pool n%d c%d %dx%d k%d s%d p%d: %d windows with the wrong max or argmax",
          n, c, h, w, k, stride, pad, bad);
    /* each output sends its gradient to its winner; overlapping windows share winners */
    double worst = max_tol_ratio(din, want_din, nin, 1e-6, 1e-6, NULL);
    CHECK(worst <= 1, "max_pool n%d c%d %dx%d k%d s%d p%d: backward does not route dout to the "
          "winners (%g)", n, c, h, w, k, stride, pad, worst);
    char label[64];
    snprintf(label, sizeof label, "max_pool n%d c%d %dx%d k%d s%d p%d", n, c, h, w, k, stride, pad);
    check_gradient(&cs, label);
    free(dout); free(din); free(want_din);
    free_case(&cs);
}

/* Small cases whose answers are known by hand. */
static void check_pool_examples(void)
{
    /* a tie: the first maximum in scan order takes the gradient, as in PyTorch */
    float in[4] = {1, 3, 3, 0}, out[1], din[4], dout[1] = {1};
    int32_t arg[1];
    PoolShape s = {1, 1, 2, 2, 2, 2, 0, 0, 0};
    pool2d_shape(&s);
    max_pool_forward(out, arg, in, &s);
    max_pool_backward(din, dout, arg, &s);
    CHECK(out[0] == 3 && arg[0] == 1 && din[0] == 0 && din[1] == 1 && din[2] == 0 && din[3] == 0,
          "max-pool tie: max %g at %d", out[0], arg[0]);
    /* NaN propagates, as in PyTorch (a NaN is never skipped as "not greater") */
    float nan_in[4] = {1, NAN, 3, 0};
    max_pool_forward(out, arg, nan_in, &s);
    CHECK(isnan(out[0]) && arg[0] == 1, "max-pool of a NaN window: %g at %d", out[0], arg[0]);
    /* all negative with padding: the padding must not win as a zero */
    float neg[4] = {-4, -3, -2, -1};
    PoolShape sp = {1, 1, 2, 2, 2, 1, 1, 0, 0};
    pool2d_shape(&sp); /* 3x3 outputs, corners see one pixel */
    float o9[9];
    int32_t a9[9];
    max_pool_forward(o9, a9, neg, &sp);
    CHECK(o9[0] == -4 && a9[0] == 0 && o9[4] == -1 && a9[4] == 3 && o9[8] == -1,
          "max-pool with padding: %g %g %g", o9[0], o9[4], o9[8]);
    /* avg pool with padding counts the padded zeros (count_include_pad) */
    float four[4] = {4, 4, 4, 4};
    avg_pool_forward(o9, four, &sp);
    CHECK(sp.hout == 3 && o9[0] == 1.0f && o9[1] == 2.0f && o9[4] == 4.0f,
          "avg pool with padding: %g %g %g", o9[0], o9[1], o9[4]);
}

static void check_global_avg_pool(int n, int c, int h, int w)
{
    Case k = make_case(OP_GLOBAL, n, c, h, w, 1, 1, 1, 0);
    case_forward(&k);
    double worst = 0;
    for (int p = 0; p < n * c; p++) {
        double sum = 0;
        for (int i = 0; i < h * w; i++)
            sum += k.x[(size_t)p * h * w + i];
        worst = fmax(worst, fabs(k.out[p] - sum / (h * w)) / 1e-6);
    }
    CHECK(worst <= 1, "global_avg_pool n%d c%d %dx%d differs from the mean (%g)", n, c, h, w,
          worst);
    char label[64];
    snprintf(label, sizeof label, "global_avg_pool n%d c%d %dx%d", n, c, h, w);
    check_gradient(&k, label);
    free_case(&k);
}

/* A million values of 0.1: a float running sum drifts by ~1e-3 relative, the mean must not. */
static void check_global_avg_precision(void)
{
    int hw = 1 << 20;
    float *x = malloc(sizeof(float) * hw), out;
    for (int i = 0; i < hw; i++)
        x[i] = 0.1f;
    global_avg_pool_forward(&out, x, 1, 1, hw);
    CHECK(fabsf(out - 0.1f) <= 1e-7f, "global_avg_pool of 2^20 values 0.1: %.9g", out);
    free(x);
}

/* ---- thread count ---------------------------------------------------------------------- */

/* Every op on 1 and on 3 threads (an uneven split of rows and planes) gives the same bits. */
static void check_threads(void)
{
    const Op ops[] = {OP_UPSAMPLE, OP_SHUFFLE, OP_AVG, OP_MAX, OP_GLOBAL};
    const int keep = get_threads();
    for (size_t t = 0; t < sizeof ops / sizeof *ops; t++) {
        Case k = make_case(ops[t], 2, 3, 37, 41, 3, 3, 2, 1);
        size_t nin = case_in_size(&k), nout = case_out_size(&k);
        float *dout = alloc_uniform(nout, 5), *res[2][2];
        for (int run = 0; run < 2; run++) {
            set_threads(run ? 3 : 1);
            res[run][0] = malloc(sizeof(float) * nout);
            res[run][1] = malloc(sizeof(float) * nin);
            case_forward(&k);
            memcpy(res[run][0], k.out, sizeof(float) * nout);
            case_backward(&k, res[run][1], dout);
        }
        CHECK(!memcmp(res[0][0], res[1][0], sizeof(float) * nout) &&
              !memcmp(res[0][1], res[1][1], sizeof(float) * nin),
              "op %d: results differ between 1 and 3 threads", (int)ops[t]);
        for (int run = 0; run < 2; run++) {
            free(res[run][0]); free(res[run][1]);
        }
        free(dout);
        free_case(&k);
    }
    set_threads(keep);
}

int main(void)
{
    check_upsample(2, 3, 5, 7, 2);
    check_upsample(1, 2, 3, 4, 3);
    check_upsample(2, 1, 1, 1, 4);
    check_upsample(1, 3, 4, 3, 1);
    check_shuffle(2, 3, 2, 3, 2);
    check_shuffle(1, 2, 3, 5, 3);
    check_shuffle(2, 1, 5, 4, 4);
    check_shuffle(1, 1, 1, 1, 2);
    check_shuffle(1, 2, 3, 3, 1);
    check_shuffle_is_upsample(2, 3, 5, 7, 2);
    check_shuffle_is_upsample(1, 2, 3, 4, 3);

    check_pool_shapes();
    check_pool_examples();
    check_avg_pool(2, 3, 7, 6, 3, 2, 1);
    check_avg_pool(1, 2, 5, 5, 2, 2, 0);
    check_avg_pool(1, 1, 4, 4, 3, 1, 1);
    check_avg_pool(2, 2, 9, 7, 4, 3, 2);
    check_avg_pool(1, 1, 1, 1, 1, 1, 0);
    check_max_pool(2, 3, 7, 6, 3, 2, 1);
    check_max_pool(1, 2, 5, 5, 2, 2, 0);
    check_max_pool(1, 1, 4, 4, 3, 1, 1);
    check_max_pool(2, 2, 9, 7, 4, 3, 2);
    check_max_pool(1, 3, 8, 11, 5, 1, 2);
    check_global_avg_pool(3, 2, 4, 5);
    check_global_avg_pool(1, 1, 1, 1);
    check_global_avg_pool(2, 3, 7, 1);
    check_global_avg_precision();

    check_threads();
    return check_done("test-grad-resample");
}
