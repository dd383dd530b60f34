/* Pointwise activations: forward and backward against double-precision formulas, every
 * gradient against finite differences, in-place use, PyTorch's NaN behaviour for ReLU, and
 * a sigmoid that stays finite and accurate for large |x|. */
#include "check.h"
#include "layers.h"

typedef enum { RELU, LEAKY_RELU, TANH, SCALED_TANH, SIGMOID, COS, KINDS } Kind;

typedef struct {
    Kind kind;
    float alpha, scale, shift; /* leaky slope; scaled tanh's out = scale·tanh + shift; cos's
                                * out = scale·cos */
} Act;

static const char *const kind_names[KINDS] = {"relu", "leaky_relu", "tanh", "scaled_tanh",
                                              "sigmoid", "cos"};

static void act_forward(const Act *a, float *out, const float *in, size_t n)
{
    switch (a->kind) {
    case RELU: relu_forward(out, in, n); break;
    case LEAKY_RELU: leaky_relu_forward(out, in, n, a->alpha); break;
    case TANH: tanh_forward(out, in, n); break;
    case SCALED_TANH: scaled_tanh_forward(out, in, n, a->scale, a->shift); break;
    case COS: cos_forward(out, in, n, a->scale); break;
    default: sigmoid_forward(out, in, n); break;
    }
}

/* The ReLUs and cos read the input, the others their own output (as layers.h says). */
static void act_backward(const Act *a, float *din, const float *dout, const float *in,
                         const float *out, size_t n)
{
    switch (a->kind) {
    case RELU: relu_backward(din, dout, in, n); break;
    case LEAKY_RELU: leaky_relu_backward(din, dout, in, n, a->alpha); break;
    case TANH: tanh_backward(din, dout, out, n); break;
    case SCALED_TANH: scaled_tanh_backward(din, dout, out, n, a->scale, a->shift); break;
    case COS: cos_backward(din, dout, in, n, a->scale); break;
    default: sigmoid_backward(din, dout, out, n); break;
    }
}

/* The function and its derivative, in double, straight from the definitions. */
static double ref_value(const Act *a, double x, double *deriv)
{
    switch (a->kind) {
    case RELU: *deriv = x > 0; return x > 0 ? x : 0;
    case LEAKY_RELU: *deriv = x > 0 ? 1 : a->alpha; return x > 0 ? x : a->alpha * x;
    case TANH: *deriv = 1 - tanh(x) * tanh(x); return tanh(x);
    case SCALED_TANH:
        *deriv = a->scale * (1 - tanh(x) * tanh(x));
        return a->scale * tanh(x) + a->shift;
    case COS: *deriv = -a->scale * sin(x); return a->scale * cos(x);
    default: {
        double s = 1 / (1 + exp(-x));
        *deriv = s * (1 - s);
        return s;
    }
    }
}

/* Inputs for the ReLUs stay at least 0.05 away from the kink, so that central differences
 * with step 0.01 never straddle it. */
static float *make_input(const Act *a, size_t n, uint64_t seed)
{
    float *x = malloc(sizeof(float) * n);
    fill_uniform(x, n, seed, -3, 3);
    if (a->kind == RELU || a->kind == LEAKY_RELU)
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] < 0 ? fminf(x[i], -0.05f) : fmaxf(x[i], 0.05f);
    return x;
}

typedef struct {
    const Act *act;
    float *x, *out;
    size_t n;
} ActCase;

static void act_case_forward(void *p)
{
    ActCase *c = p;
    act_forward(c->act, c->out, c->x, c->n);
}

static void check_act(const Act *a, int n, int c, int h, int w)
{
    size_t total = (size_t)n * c * h * w;
    char label[96];
    snprintf(label, sizeof label, "%s n%d c%d %dx%d", kind_names[a->kind], n, c, h, w);
    float *x = make_input(a, total, 1 + total), *out = malloc(sizeof(float) * total);
    float *dout = malloc(sizeof(float) * total), *din = malloc(sizeof(float) * total);
    float *y2 = malloc(sizeof(float) * total), *d2 = malloc(sizeof(float) * total);
    fill_uniform(dout, total, 2 + total, -1, 1);
    act_forward(a, out, x, total);
    act_backward(a, din, dout, x, out, total);
    /* against the definitions; scale·tanh + shift cancels in float where it nears 0, so
     * its tolerance follows the size of the terms, not of the result */
    double unit = a->kind == SCALED_TANH ? fabs(a->scale) + fabs(a->shift) : 1;
    double worst_f = 0, worst_b = 0;
    for (size_t i = 0; i < total; i++) {
        double deriv, want = ref_value(a, x[i], &deriv), want_d = deriv * dout[i];
        worst_f = fmax(worst_f, fabs(out[i] - want) / (1e-6 * unit + 1e-6 * fabs(want)));
        worst_b = fmax(worst_b, fabs(din[i] - want_d) / (1e-6 * unit + 1e-5 * fabs(want_d)));
    }
    CHECK(worst_f <= 1, "%s: forward differs from its definition (%g)", label, worst_f);
    CHECK(worst_b <= 1, "%s: backward differs from the derivative (%g)", label, worst_b);
    /* the gradient is elementwise, so small shapes cover it; on the large one (the threaded
     * path) 400 forward passes would only spend time */
    if (total < 4096) {
        ActCase ac = {a, x, out, total};
        char l2[128];
        snprintf(l2, sizeof l2, "%s din", label);
        gradcheck(l2, x, din, total, act_case_forward, &ac, out, dout, total, 1e-2f, 1e-2,
                  1e-3, 200);
    }
    /* in place: out == in and din == dout give the same bits as separate buffers */
    memcpy(y2, x, sizeof(float) * total);
    act_forward(a, y2, y2, total);
    CHECK(!memcmp(y2, out, sizeof(float) * total), "%s: in-place forward differs", label);
    memcpy(d2, dout, sizeof(float) * total);
    act_backward(a, d2, d2, x, out, total);
    CHECK(!memcmp(d2, din, sizeof(float) * total), "%s: in-place backward differs", label);
    free(x); free(out); free(dout); free(din); free(y2); free(d2);
}

/* tanh and sigmoid are percept's own vectorised code, not libm's: within 4 float ulp of
 * the double-precision functions over a dense grid (every 1/4096 of [-12, 12], values
 * down to 1e-30), odd about 0, and NaN in, NaN out. */
static void check_exp_based_accuracy(void)
{
    enum { N = 2 * 12 * 4096 + 1 + 2 * 30 };
    float *x = malloc(sizeof(float) * N), *t = malloc(sizeof(float) * N);
    float *sg = malloc(sizeof(float) * N);
    for (int i = 0; i <= 2 * 12 * 4096; i++)
        x[i] = -12.0f + i / 4096.0f;
    for (int i = 0; i < 30; i++) {
        x[2 * 12 * 4096 + 1 + 2 * i] = powf(10.0f, -(float)i - 1);
        x[2 * 12 * 4096 + 2 + 2 * i] = -powf(10.0f, -(float)i - 1);
    }
    tanh_forward(t, x, N);
    sigmoid_forward(sg, x, N);
    double worst_t = 0, worst_s = 0;
    int odd = 1;
    for (int i = 0; i < N; i++) {
        double want = tanh((double)x[i]), ulp = fmax(fabs(want), 1e-38) * 0x1p-23;
        worst_t = fmax(worst_t, fabs(t[i] - want) / ulp);
        double want_s = 1 / (1 + exp(-(double)x[i]));
        worst_s = fmax(worst_s, fabs(sg[i] - want_s) / (want_s * 0x1p-23));
    }
    for (int i = 0; i < 2 * 12 * 4096; i++)
        odd &= t[i] == -t[2 * 12 * 4096 - i];
    CHECK(worst_t <= 4, "tanh: %.2f ulp from libm's double tanh", worst_t);
    CHECK(worst_s <= 4, "sigmoid: %.2f ulp from 1 / (1 + exp(-x)) in double", worst_s);
    CHECK(odd, "tanh(-x) != -tanh(x)");
    float nan_in[2] = {NAN, -NAN}, nan_out[2];
    tanh_forward(nan_out, nan_in, 2);
    CHECK(isnan(nan_out[0]) && isnan(nan_out[1]), "tanh(NaN) = %g", nan_out[0]);
    sigmoid_forward(nan_out, nan_in, 2);
    CHECK(isnan(nan_out[0]) && isnan(nan_out[1]), "sigmoid(NaN) = %g", nan_out[0]);
    printf("tanh within %.2f ulp, sigmoid within %.2f ulp\n", worst_t, worst_s);
    free(x); free(t); free(sg);
}

/* exp(-x) overflows float for x < -88: a naive sigmoid gives 0/0 or inf/inf there. */
static void check_sigmoid_range(void)
{
    float x[6] = {-100, 100, -1e30f, 1e30f, -INFINITY, INFINITY}, s[6], d[6];
    float ones[6] = {1, 1, 1, 1, 1, 1};
    sigmoid_forward(s, x, 6);
    sigmoid_backward(d, ones, s, 6);
    int ok = 1;
    for (int i = 0; i < 6; i++)
        ok &= isfinite(s[i]) && isfinite(d[i]) && s[i] >= 0 && s[i] <= 1 && d[i] >= 0;
    CHECK(ok && s[0] < 1e-30f && s[1] == 1 && s[2] == 0 && s[3] == 1 && s[4] == 0 && s[5] == 1,
          "sigmoid at extremes: %g %g %g %g %g %g", s[0], s[1], s[2], s[3], s[4], s[5]);
    /* relative accuracy down to sigmoid(-80) ~ 2e-35, still a normal float */
    enum { N = 433 };
    float xs[N], ys[N];
    for (int i = 0; i < N; i++)
        xs[i] = -80 + 160.0f * i / (N - 1);
    sigmoid_forward(ys, xs, N);
    double worst = 0;
    for (int i = 0; i < N; i++) {
        double want = 1 / (1 + exp(-(double)xs[i]));
        worst = fmax(worst, fabs(ys[i] - want) / want);
    }
    CHECK(worst < 1e-6, "sigmoid relative error %g over [-80, 80]", worst);
}

/* PyTorch: relu(NaN) is NaN (a diverging net is not silently masked), and the gradient at
 * a NaN input passes through (threshold_backward zeroes only where x <= 0). */
static void check_relu_nan(void)
{
    float x[3] = {NAN, -1, 0}, y[3], g[3] = {2, 2, 2}, d[3];
    relu_forward(y, x, 3);
    relu_backward(d, g, x, 3);
    CHECK(isnan(y[0]) && y[1] == 0 && y[2] == 0, "relu of NaN, -1, 0: %g %g %g", y[0], y[1],
          y[2]);
    CHECK(d[0] == 2 && d[1] == 0 && d[2] == 0, "relu gradient at NaN, -1, 0: %g %g %g", d[0],
          d[1], d[2]);
}

int main(void)
{
    static const Act acts[] = {
        {RELU, 0, 0, 0},         {LEAKY_RELU, 0.2f, 0, 0},   {LEAKY_RELU, 0.01f, 0, 0},
        {TANH, 0, 0, 0},         {SCALED_TANH, 0, 1.5f, -0.25f},
        {SCALED_TANH, 0, 150, 127.5f}, /* Johnson's 0..255 output layer */
        {SIGMOID, 0, 0, 0},
        {COS, 0, 0.0625f, 0}, /* √(2/512): the MMD style loss's random features */
        {COS, 0, -2, 0},
    };
    /* the last shape is large enough for the kernels to use threads */
    static const int shapes[][4] = {{1, 1, 5, 7}, {2, 3, 5, 7}, {3, 4, 3, 5}, {2, 4, 67, 71}};
    for (size_t a = 0; a < sizeof acts / sizeof *acts; a++)
        for (size_t s = 0; s < sizeof shapes / sizeof *shapes; s++)
            check_act(&acts[a], shapes[s][0], shapes[s][1], shapes[s][2], shapes[s][3]);
    check_sigmoid_range();
    check_exp_based_accuracy();
    check_relu_nan();
    return check_done("test-grad-activation");
}
