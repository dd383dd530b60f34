/* Every layer other than convolution: gradients of input and parameters against finite
 * differences (each op as a one-node network, so the backend dispatch is covered too),
 * and forward results against independent computations. */
#include "check.h"
#include "graph.h"
#include "layers.h"
#include "percept/percept.h"

typedef enum { INPUT_UNIFORM, INPUT_AWAY_FROM_ZERO, INPUT_DISTINCT } InputKind;

typedef struct {
    PerceptNet *net;
    PerceptTensor in;
    const float *out;
    uint64_t seed;
} Ctx;

static void run_forward(void *p)
{
    Ctx *c = p;
    PerceptTensor out;
    percept_net_set_noise_seed(c->net, c->seed); /* same dropout mask / noise every pass */
    percept_net_forward(c->net, &c->in, &out);
    c->out = out.data;
}

static void make_input(float *x, size_t n, InputKind kind, uint64_t seed)
{
    fill_uniform(x, n, seed, -1, 1);
    if (kind == INPUT_AWAY_FROM_ZERO) /* kinks at 0 must stay outside the step */
        for (size_t i = 0; i < n; i++)
            x[i] = x[i] < 0 ? x[i] - 0.1f : x[i] + 0.1f;
    if (kind == INPUT_DISTINCT) /* values at least 0.05 apart: no max-pool near-ties */
        for (size_t i = 0; i < n; i++)
            x[i] = 0.05f * (float)((i * 7919) % n) - 0.025f * n;
}

/* One op as a network: gradients of L = sum(out * r) by finite differences. */
static void check_op(const char *label, const char *nodes, int c_in, int n, int h, int w,
                     int training, InputKind kind)
{
    char arch[2048];
    snprintf(arch, sizeof arch, "{\"format\":1,\"name\":\"%s\",\"input_channels\":%d,\"nodes\":[%s]}",
             label, c_in, nodes);
    PerceptNet *net = percept_net_from_arch(arch, 3);
    CHECK(net != NULL, "%s: %s", label, percept_error());
    if (!net)
        return;
    percept_net_set_training(net, training);
    percept_net_set_grad(net, 1);
    size_t np, nin = (size_t)n * c_in * h * w;
    float *params = percept_net_params(net, &np);
    for (size_t i = 0; i < np; i++) /* off the default 1/0 so scale and shift both matter */
        params[i] += 0.3f * percept_rng_normal(99, i);
    float *x = malloc(sizeof(float) * nin), *din = malloc(sizeof(float) * nin);
    make_input(x, nin, kind, 7);
    Ctx ctx = {net, {n, c_in, h, w, x}, NULL, 1234};
    run_forward(&ctx);
    int oc, oh, ow;
    percept_net_output_shape(net, n, h, w, &oc, &oh, &ow);
    size_t nout = (size_t)n * oc * oh * ow;
    float *r = malloc(sizeof(float) * nout);
    fill_uniform(r, nout, 8, -1, 1);
    percept_net_zero_grads(net);
    CHECK(percept_net_backward(net, r, din) == 0, "%s backward: %s", label, percept_error());
    float *g = malloc(sizeof(float) * (np ? np : 1));
    memcpy(g, percept_net_grads(net, NULL), sizeof(float) * np);
    char l2[96];
    snprintf(l2, sizeof l2, "%s din", label);
    gradcheck(l2, x, din, nin, run_forward, &ctx, ctx.out, r, nout, 1e-2f, 1e-2, 1e-3, 300);
    if (np) {
        snprintf(l2, sizeof l2, "%s dparams", label);
        gradcheck(l2, params, g, np, run_forward, &ctx, ctx.out, r, nout, 1e-2f, 1e-2, 1e-3, 300);
    }
    free(g); free(r); free(x); free(din);
    percept_net_free(net);
}

static void check_gradients(void)
{
    check_op("upsample", "{\"name\":\"u\",\"op\":\"upsample_nearest\",\"factor\":3}", 2, 2, 3, 4, 0, INPUT_UNIFORM);
    check_op("shuffle", "{\"name\":\"p\",\"op\":\"pixel_shuffle\",\"r\":2}", 8, 2, 3, 5, 0, INPUT_UNIFORM);
    check_op("inorm", "{\"name\":\"i\",\"op\":\"instance_norm\",\"c\":3}", 3, 2, 5, 7, 0, INPUT_UNIFORM);
    check_op("inorm-plain", "{\"name\":\"i\",\"op\":\"instance_norm\",\"c\":2,\"affine\":false}", 2, 3, 4, 3, 0, INPUT_UNIFORM);
    check_op("bnorm-train", "{\"name\":\"b\",\"op\":\"batch_norm\",\"c\":3}", 3, 3, 4, 5, 1, INPUT_UNIFORM);
    check_op("bnorm-eval", "{\"name\":\"b\",\"op\":\"batch_norm\",\"c\":3}", 3, 2, 4, 5, 0, INPUT_UNIFORM);
    /* eval batch norm at other shapes: one image, 1×1 planes, odd sizes, after a conv */
    check_op("bnorm-eval-n1", "{\"name\":\"b\",\"op\":\"batch_norm\",\"c\":5}", 5, 1, 3, 7, 0, INPUT_UNIFORM);
    check_op("bnorm-eval-1x1", "{\"name\":\"b\",\"op\":\"batch_norm\",\"c\":4}", 4, 3, 1, 1, 0, INPUT_UNIFORM);
    check_op("bnorm-eval-conv", "{\"name\":\"c\",\"op\":\"conv2d\",\"cin\":2,\"cout\":3,\"k\":3,\"pad\":1},{\"name\":\"b\",\"op\":\"batch_norm\",\"c\":3}", 2, 2, 5, 4, 0, INPUT_UNIFORM);
    check_op("relu", "{\"name\":\"a\",\"op\":\"relu\"}", 2, 2, 4, 5, 0, INPUT_AWAY_FROM_ZERO);
    check_op("lrelu", "{\"name\":\"a\",\"op\":\"leaky_relu\",\"alpha\":0.3}", 2, 2, 4, 5, 0, INPUT_AWAY_FROM_ZERO);
    check_op("tanh", "{\"name\":\"a\",\"op\":\"tanh\"}", 2, 2, 4, 5, 0, INPUT_UNIFORM);
    check_op("stanh", "{\"name\":\"a\",\"op\":\"scaled_tanh\",\"scale\":1.5,\"shift\":-0.25}", 2, 2, 4, 5, 0, INPUT_UNIFORM);
    check_op("cos", "{\"name\":\"a\",\"op\":\"cos\",\"scale\":-0.75}", 2, 2, 4, 5, 0, INPUT_UNIFORM);
    check_op("sigmoid", "{\"name\":\"a\",\"op\":\"sigmoid\"}", 2, 2, 4, 5, 0, INPUT_UNIFORM);
    check_op("add", "{\"name\":\"t\",\"op\":\"tanh\"},{\"name\":\"a\",\"op\":\"add\",\"in\":[\"t\",\"input\"]}", 2, 2, 3, 4, 0, INPUT_UNIFORM);
    /* residual add: one source read twice, two computed branches, a skip over a conv block */
    check_op("add-same", "{\"name\":\"a\",\"op\":\"add\",\"in\":[\"input\",\"input\"]}", 3, 1, 5, 3, 0, INPUT_UNIFORM);
    check_op("add-branches", "{\"name\":\"t\",\"op\":\"tanh\",\"in\":[\"input\"]},{\"name\":\"s\",\"op\":\"sigmoid\",\"in\":[\"input\"]},{\"name\":\"a\",\"op\":\"add\",\"in\":[\"t\",\"s\"]}", 2, 3, 2, 5, 0, INPUT_UNIFORM);
    check_op("add-block", "{\"name\":\"c1\",\"op\":\"conv2d\",\"cin\":3,\"cout\":3,\"k\":3,\"pad\":1,\"pad_mode\":\"reflect\"},{\"name\":\"r\",\"op\":\"tanh\"},{\"name\":\"c2\",\"op\":\"conv2d\",\"cin\":3,\"cout\":3,\"k\":3,\"pad\":1},{\"name\":\"a\",\"op\":\"add\",\"in\":[\"c2\",\"input\"]},{\"name\":\"o\",\"op\":\"add\",\"in\":[\"a\",\"r\"]}", 3, 2, 4, 6, 0, INPUT_UNIFORM);
    check_op("concat", "{\"name\":\"t\",\"op\":\"sigmoid\"},{\"name\":\"c\",\"op\":\"concat\",\"in\":[\"input\",\"t\",\"input\"]}", 2, 2, 3, 4, 0, INPUT_UNIFORM);
    check_op("avgpool", "{\"name\":\"p\",\"op\":\"avg_pool\",\"k\":3,\"stride\":2,\"pad\":1}", 2, 2, 7, 6, 0, INPUT_UNIFORM);
    check_op("maxpool", "{\"name\":\"p\",\"op\":\"max_pool\",\"k\":3,\"stride\":2,\"pad\":1}", 2, 2, 7, 6, 0, INPUT_DISTINCT);
    check_op("gpool", "{\"name\":\"p\",\"op\":\"global_avg_pool\"}", 3, 2, 4, 5, 0, INPUT_UNIFORM);
    check_op("linear", "{\"name\":\"l\",\"op\":\"linear\",\"fin\":24,\"fout\":5}", 2, 3, 3, 4, 0, INPUT_UNIFORM);
    check_op("reshape", "{\"name\":\"l\",\"op\":\"linear\",\"fin\":12,\"fout\":8},{\"name\":\"r\",\"op\":\"reshape\",\"c\":2,\"h\":2,\"w\":2},{\"name\":\"t\",\"op\":\"tanh\"}", 3, 2, 2, 2, 0, INPUT_UNIFORM);
    check_op("affine", "{\"name\":\"a\",\"op\":\"channel_affine\",\"scale\":[2,-0.5,3],\"shift\":[1,0,-1]}", 3, 2, 3, 4, 0, INPUT_UNIFORM);
    check_op("affine1", "{\"name\":\"a\",\"op\":\"channel_affine\",\"scale\":0.5,\"shift\":2}", 3, 2, 3, 4, 0, INPUT_UNIFORM);
    check_op("dropout", "{\"name\":\"d\",\"op\":\"dropout\",\"p\":0.3}", 2, 2, 4, 5, 1, INPUT_UNIFORM);
    check_op("reparam", "{\"name\":\"z\",\"op\":\"reparam\"}", 4, 2, 3, 3, 1, INPUT_UNIFORM);
    check_op("reparam-eval", "{\"name\":\"z\",\"op\":\"reparam\"}", 4, 2, 3, 3, 0, INPUT_UNIFORM);
}

/* ---- forward against independent computations ------------------------------------------ */

static void check_pixel_shuffle(void)
{
    int n = 2, c = 3, h = 2, w = 3, r = 2;
    float in[2 * 12 * 6], out[2 * 12 * 6], back[2 * 12 * 6];
    for (int i = 0; i < 2 * 12 * 6; i++)
        in[i] = (float)i;
    pixel_shuffle_forward(out, in, n, c, h, w, r);
    int bad = 0;
    for (int b = 0; b < n; b++)
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < h * r; y++)
                for (int x = 0; x < w * r; x++) {
                    int src = (ch * r + y % r) * r + x % r; /* torch: C*r*r + i*r + j */
                    float want = in[((b * c * r * r + src) * h + y / r) * w + x / r];
                    bad += out[((b * c + ch) * h * r + y) * w * r + x] != want;
                }
    CHECK(!bad, "pixel_shuffle puts %d values in the wrong place", bad);
    pixel_shuffle_backward(back, out, n, c, h, w, r);
    CHECK(!memcmp(back, in, sizeof in), "pixel_shuffle backward is not its inverse");
}

static void check_pools(void)
{
    /* a tie: the first maximum in scan order takes the gradient, as in PyTorch */
    float in[4] = {1, 3, 3, 0}, out[1], din[4], dout[1] = {1};
    int32_t arg[1];
    PoolShape s = {1, 1, 2, 2, 2, 2, 0, 0, 0};
    pool2d_shape(&s);
    max_pool_forward(out, arg, in, &s);
    max_pool_backward(din, dout, arg, &s);
    CHECK(out[0] == 3 && arg[0] == 1 && din[1] == 1 && din[2] == 0, "max-pool tie: arg %d", arg[0]);
    /* avg pool with padding counts the padded zeros (count_include_pad) */
    float in2[4] = {4, 4, 4, 4}, o2[9];
    PoolShape p = {1, 1, 2, 2, 2, 1, 1, 0, 0};
    pool2d_shape(&p);
    avg_pool_forward(o2, in2, &p);
    CHECK(p.hout == 3 && fabsf(o2[0] - 1.0f) < 1e-6f && fabsf(o2[4] - 4.0f) < 1e-6f,
          "avg pool with padding: %g %g", o2[0], o2[4]);
}

static void check_norm_statistics(void)
{
    enum { N = 2, C = 3, HW = 1024 * 64 };
    float *x = malloc(sizeof(float) * N * C * HW), *y = malloc(sizeof(float) * N * C * HW);
    float mean[N * C], rstd[N * C];
    fill_uniform(x, (size_t)N * C * HW, 3, 99, 101); /* large offset: precision matters */
    instance_norm_forward(y, mean, rstd, x, NULL, NULL, N, C, HW, 1e-5f, NULL);
    double worst = 0;
    for (int p = 0; p < N * C; p++) {
        double s = 0, ss = 0;
        for (int i = 0; i < HW; i++)
            s += y[(size_t)p * HW + i];
        for (int i = 0; i < HW; i++)
            ss += pow(y[(size_t)p * HW + i] - s / HW, 2);
        worst = fmax(worst, fmax(fabs(s / HW), fabs(ss / HW - 1)));
    }
    CHECK(worst < 2e-4, "instance norm output mean/variance off by %g", worst);
    /* batch norm: PyTorch's running statistics use the unbiased variance */
    float rm[C] = {0.5f, 0, 0}, rv[C] = {2, 1, 1}, bm[C], br[C];
    float xs[2 * C * 2] = {1, 2, 0, 0, 5, 5, 3, 6, 0, 4, 5, 5};
    float ys[2 * C * 2];
    batch_norm_forward_train(ys, bm, br, rm, rv, xs, NULL, NULL, 2, C, 2, 1e-5f, 0.1f);
    /* channel 0 holds 1, 2, 3, 6: mean 3, biased var 3.5, unbiased 14/3 */
    CHECK(fabsf(bm[0] - 3) < 1e-6f && fabsf(rm[0] - (0.9f * 0.5f + 0.3f)) < 1e-6f &&
          fabsf(rv[0] - (0.9f * 2 + 0.1f * 14.0f / 3)) < 1e-5f,
          "batch-norm running stats: mean %g running %g %g", bm[0], rm[0], rv[0]);
    CHECK(fabsf(ys[0] - (1 - 3) / sqrtf(3.5f + 1e-5f)) < 1e-5f, "batch-norm output %g", ys[0]);
    /* constant channel 2 (5, 5, 5, 5): normalises to 0 without NaN */
    CHECK(ys[4] == 0 && isfinite(br[2]), "constant channel: %g", ys[4]);
    free(x);
    free(y);
}

static void check_activations(void)
{
    float big[4] = {-100, 100, -1e30f, 0}, s[4];
    sigmoid_forward(s, big, 4);
    CHECK(s[0] >= 0 && s[0] < 1e-30f && s[1] == 1 && s[2] == 0 && s[3] == 0.5f,
          "sigmoid at extremes: %g %g %g %g", s[0], s[1], s[2], s[3]);
    float a[64], b[64];
    fill_uniform(a, 64, 5, -2, 2);
    memcpy(b, a, sizeof a);
    leaky_relu_forward(b, b, 64, 0.2f); /* in place */
    float c[64];
    leaky_relu_forward(c, a, 64, 0.2f);
    CHECK(!memcmp(b, c, sizeof b), "in-place leaky ReLU differs");
    float bin[4] = {-0.5f, 0.5f, 0, 2}, bo[4], bd[4], g[4] = {1, 2, 3, 4};
    binary_forward(bo, bin, 4, 0, -1, 1);
    binary_backward(bd, g, 4);
    CHECK(bo[0] == -1 && bo[1] == 1 && bo[2] == -1 && bo[3] == 1 && !memcmp(bd, g, sizeof g),
          "binary code layer: %g %g %g %g", bo[0], bo[1], bo[2], bo[3]);
}

static void check_noise(void)
{
    enum { N = 100000 };
    float *x = malloc(sizeof(float) * N), *y = malloc(sizeof(float) * N);
    float *m1 = malloc(sizeof(float) * N), *m2 = malloc(sizeof(float) * N);
    for (int i = 0; i < N; i++)
        x[i] = 1;
    dropout_forward(y, m1, x, N, 0.3f, 42);
    size_t kept = 0;
    for (int i = 0; i < N; i++)
        kept += y[i] != 0;
    CHECK(fabs(kept / (double)N - 0.7) < 0.01 && fabsf(y[0] == 0 ? 0 : y[0] - 1 / 0.7f) < 1e-6f,
          "dropout keeps %.3f", kept / (double)N);
    dropout_forward(y, m2, x, N, 0.3f, 42);
    CHECK(!memcmp(m1, m2, sizeof(float) * N), "dropout is not determined by its seed");
    dropout_forward(y, m2, x, N, 0.3f, 43);
    CHECK(memcmp(m1, m2, sizeof(float) * N), "dropout ignores its seed");
    /* reparameterisation noise is standard normal */
    float *in = calloc(2 * N, sizeof(float));
    reparam_forward(y, m1, in, 1, N, 1, 7);
    double s = 0, ss = 0;
    for (int i = 0; i < N; i++) {
        s += y[i];
        ss += (double)y[i] * y[i];
    }
    CHECK(fabs(s / N) < 0.02 && fabs(ss / N - 1) < 0.03, "reparam noise mean %g var %g", s / N,
          ss / N);
    free(in); free(x); free(y); free(m1); free(m2);
}

int main(void)
{
    check_gradients();
    check_pixel_shuffle();
    check_pools();
    check_norm_statistics();
    check_activations();
    check_noise();
    return check_done("test-grad-layers");
}
