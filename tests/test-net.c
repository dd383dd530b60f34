/* Networks end to end: gradients of whole graphs against finite differences, memory
 * planning (eval reuse gives the same numbers; a second pass allocates nothing), weight
 * files round trip, and a table of bad architectures and bad weight files. */
#include <unistd.h>

#include "check.h"
#include "graph.h"
#include "norm-vectors.h"
#include "percept/percept.h"

/* Every kind of node with a gradient, wired with fan-out, a skip connection and concat. */
static const char *mixed_arch =
    "{\"format\":1,\"name\":\"mixed\",\"input_channels\":2,\"nodes\":["
    "{\"name\":\"norm\",\"op\":\"channel_affine\",\"scale\":[2,0.5],\"shift\":[0.1,-0.2]},"
    "{\"name\":\"c1\",\"op\":\"conv2d\",\"cin\":2,\"cout\":4,\"k\":3,\"pad\":1,\"pad_mode\":\"reflect\"},"
    "{\"name\":\"in1\",\"op\":\"instance_norm\",\"c\":4},"
    "{\"name\":\"a1\",\"op\":\"leaky_relu\",\"alpha\":0.2},"
    "{\"name\":\"c2\",\"op\":\"conv2d\",\"cin\":4,\"cout\":4,\"k\":3,\"stride\":2,\"pad\":1},"
    "{\"name\":\"bn\",\"op\":\"batch_norm\",\"c\":4},"
    "{\"name\":\"t\",\"op\":\"tanh\"},"
    "{\"name\":\"up\",\"op\":\"upsample_nearest\",\"in\":[\"t\"]},"
    "{\"name\":\"skip\",\"op\":\"add\",\"in\":[\"up\",\"a1\"]},"
    "{\"name\":\"ct\",\"op\":\"conv_transpose2d\",\"in\":[\"c2\"],\"cin\":4,\"cout\":4,\"k\":4,\"pad\":1},"
    "{\"name\":\"cat\",\"op\":\"concat\",\"in\":[\"skip\",\"ct\",\"skip\"]},"
    "{\"name\":\"c3\",\"op\":\"conv2d\",\"cin\":12,\"cout\":8,\"k\":1},"
    "{\"name\":\"ps\",\"op\":\"pixel_shuffle\",\"r\":2},"
    "{\"name\":\"pool\",\"op\":\"avg_pool\",\"k\":2},"
    "{\"name\":\"sig\",\"op\":\"sigmoid\"},"
    "{\"name\":\"out\",\"op\":\"scaled_tanh\",\"scale\":2,\"shift\":0.5}"
    "]}";

/* A classifier head: pooling, global pool, linear, reshape, dropout (eval: identity).
 * Max pool is left to the unit and golden tests: perturbing a weight moves every
 * activation, and some window's maximum would change hands inside the step. */
static const char *head_arch =
    "{\"format\":1,\"name\":\"head\",\"input_channels\":3,\"nodes\":["
    "{\"name\":\"c\",\"op\":\"conv2d\",\"cin\":3,\"cout\":5,\"k\":3,\"pad\":1},"
    "{\"name\":\"mp\",\"op\":\"avg_pool\",\"k\":2},"
    "{\"name\":\"g\",\"op\":\"global_avg_pool\"},"
    "{\"name\":\"d\",\"op\":\"dropout\",\"p\":0.5},"
    "{\"name\":\"fc\",\"op\":\"linear\",\"fin\":5,\"fout\":6},"
    "{\"name\":\"r\",\"op\":\"reshape\",\"c\":6,\"h\":1,\"w\":1},"
    "{\"name\":\"s\",\"op\":\"sigmoid\"}"
    "]}";

typedef struct {
    PerceptNet *net;
    PerceptTensor in;
    const float *out;
} Ctx;

static void run_forward(void *p)
{
    Ctx *c = p;
    PerceptTensor out;
    percept_net_forward(c->net, &c->in, &out);
    c->out = out.data;
}

/* Gradient of L = sum(out * r) w.r.t. the input and every parameter, by finite
 * differences through the whole graph (eval statistics, gradients kept). */
static void check_net_gradients(const char *arch, int n, int c, int h, int w, uint64_t seed)
{
    PerceptNet *net = percept_net_from_arch(arch, seed);
    CHECK(net != NULL, "arch: %s", percept_error());
    if (!net)
        return;
    percept_net_set_grad(net, 1);
    size_t np;
    float *params = percept_net_params(net, &np);
    /* nudge biases and norm scales off their defaults so every path carries signal */
    for (size_t i = 0; i < np; i++)
        params[i] += 0.1f * percept_rng_normal(seed + 7, i);
    /* batch-norm running statistics away from (0, 1) */
    float *rm = percept_net_param(net, "bn.running_mean", NULL);
    float *rv = percept_net_param(net, "bn.running_var", NULL);
    if (rm)
        for (int i = 0; i < 4; i++) {
            rm[i] = 0.1f * i;
            rv[i] = 0.5f + 0.25f * i;
        }
    float *x = malloc(sizeof(float) * n * c * h * w);
    fill_uniform(x, (size_t)n * c * h * w, seed, -1, 1);
    Ctx ctx = {net, {n, c, h, w, x}, NULL};
    PerceptTensor out;
    CHECK(percept_net_forward(net, &ctx.in, &out) == 0, "forward: %s", percept_error());
    size_t nout = percept_tensor_numel(&out);
    float *r = malloc(sizeof(float) * nout), *din = malloc(sizeof(float) * n * c * h * w);
    fill_uniform(r, nout, seed + 1, -1, 1);
    ctx.out = out.data;
    percept_net_zero_grads(net);
    CHECK(percept_net_backward(net, r, din) == 0, "backward: %s", percept_error());
    size_t ng;
    float *grads = malloc(sizeof(float) * np);
    memcpy(grads, percept_net_grads(net, &ng), sizeof(float) * np);
    char label[64];
    snprintf(label, sizeof label, "%s input", percept_net_name(net));
    /* a small step: LeakyReLU's kink must rarely fall inside it */
    gradcheck(label, x, din, (size_t)n * c * h * w, run_forward, &ctx, ctx.out, r, nout, 3e-3f,
              2e-2, 2e-3, 300);
    snprintf(label, sizeof label, "%s params", percept_net_name(net));
    gradcheck(label, params, grads, np, run_forward, &ctx, ctx.out, r, nout, 3e-3f, 2e-2, 2e-3,
              400);
    free(grads);
    free(r);
    free(din);
    free(x);
    percept_net_free(net);
}

static void check_planning(void)
{
    PerceptJohnsonOpts jo = {8, 2, 0};
    char *arch = percept_arch_johnson(&jo);
    CHECK(arch != NULL, "johnson arch: %s", percept_error());
    if (!arch)
        return;
    PerceptNet *a = percept_net_from_arch(arch, 3), *b = percept_net_from_arch(arch, 3);
    percept_net_set_grad(b, 1);
    float x[3 * 20 * 28];
    fill_uniform(x, sizeof x / sizeof *x, 5, 0, 1);
    PerceptTensor in = {1, 3, 20, 28, x}, oa, ob;
    CHECK(percept_net_forward(a, &in, &oa) == 0, "eval forward: %s", percept_error());
    CHECK(percept_net_forward(b, &in, &ob) == 0, "grad forward: %s", percept_error());
    /* eval mode reuses memory between layers; the result must be the same — to rounding,
     * since its upsamplings run as phased convolutions (conv-up.c) */
    double top = 0;
    for (size_t i = 0; i < percept_tensor_numel(&ob); i++)
        top = fmax(top, fabs(ob.data[i]));
    CHECK(percept_tensor_numel(&oa) == percept_tensor_numel(&ob) &&
              max_tol_ratio(oa.data, ob.data, percept_tensor_numel(&oa), 1e-5 * top, 0, NULL) <= 1,
          "eval-mode memory reuse changed the output");
    CHECK(a->plan.act_floats < b->plan.act_floats / 2,
          "eval plan (%zu floats) should need far less than the kept-activations plan (%zu)",
          a->plan.act_floats, b->plan.act_floats);
    size_t before = cpu_alloc_calls;
    CHECK(percept_net_forward(a, &in, &oa) == 0, "second forward: %s", percept_error());
    CHECK(cpu_alloc_calls == before, "a forward on a size already planned allocated %zu times",
          cpu_alloc_calls - before);
    CHECK(a->grads_data == NULL, "an inference network allocated memory for gradients");
    /* 9x9, two stride-2 3x3, 2 blocks of two 3x3 at jump 4, two 3x3 after upsampling, 9x9 */
    CHECK(percept_net_receptive_field(a) == 61, "Johnson receptive field %d, expected 61",
          percept_net_receptive_field(a));
    int oc, oh, ow;
    CHECK(percept_net_output_shape(a, 1, 37, 41, &oc, &oh, &ow) == 0 && oc == 3 && oh == 40 &&
          ow == 44, "johnson output for 41x37: %dx%dx%d", ow, oh, oc);
    /* the query must not disturb the planned size */
    before = cpu_alloc_calls;
    CHECK(percept_net_forward(a, &in, &oa) == 0 && cpu_alloc_calls == before,
          "output_shape disturbed the plan");
    /* sizes alternating (a GEGL tile, then an edge tile, then a tile): once the largest has
     * been planned, the others re-plan into its memory, and the result is unchanged */
    float *first = malloc(sizeof(float) * percept_tensor_numel(&oa));
    if (first) {
        memcpy(first, oa.data, sizeof(float) * percept_tensor_numel(&oa));
        float xs[3 * 12 * 16];
        fill_uniform(xs, sizeof xs / sizeof *xs, 6, 0, 1);
        PerceptTensor small = {1, 3, 12, 16, xs}, os;
        before = cpu_alloc_calls;
        CHECK(percept_net_forward(a, &small, &os) == 0 && os.h == 12 && os.w == 16,
              "smaller size: %s", percept_error());
        CHECK(percept_net_forward(a, &in, &oa) == 0, "back to the first size: %s",
              percept_error());
        CHECK(cpu_alloc_calls == before, "sizes A, B, A allocated %zu times after A was planned",
              cpu_alloc_calls - before);
        CHECK(!memcmp(first, oa.data, sizeof(float) * percept_tensor_numel(&oa)),
              "re-planning into kept memory changed the output");
        float xl[3 * 24 * 36];
        fill_uniform(xl, sizeof xl / sizeof *xl, 7, 0, 1);
        PerceptTensor large = {1, 3, 24, 36, xl};
        CHECK(percept_net_forward(a, &large, &os) == 0 && cpu_alloc_calls > before,
              "a larger size grows the arenas: %s", percept_error());
        before = cpu_alloc_calls;
        CHECK(percept_net_forward(a, &small, &os) == 0 && percept_net_forward(a, &in, &oa) == 0 &&
                  percept_net_forward(a, &large, &os) == 0 && cpu_alloc_calls == before,
              "every size seen runs without allocating (%zu)", cpu_alloc_calls - before);
        free(first);
    }
    percept_net_free(a);
    percept_net_free(b);
    free(arch);

    /* switching to training mode on a planned size replans: dropout needs room for its mask */
    PerceptNet *h = percept_net_from_arch(head_arch, 2);
    float hx[2 * 3 * 8 * 8];
    fill_uniform(hx, sizeof hx / sizeof *hx, 3, -1, 1);
    PerceptTensor hin = {2, 3, 8, 8, hx}, hout;
    CHECK(percept_net_forward(h, &hin, &hout) == 0, "eval forward: %s", percept_error());
    percept_net_set_training(h, 1);
    CHECK(percept_net_forward(h, &hin, &hout) == 0 && h->plan.training == 1 &&
          h->plan.saved_floats >= 2 * 5, "training forward after eval did not replan");
    percept_net_free(h);
}

static void check_save_load(void)
{
    char path[512];
    const char *tmp = getenv("PERCEPT_TEST_TMP");
    snprintf(path, sizeof path, "%s/test-net-%d.safetensors", tmp ? tmp : "/tmp", (int)getpid());
    PerceptNet *a = percept_net_from_arch(mixed_arch, 11);
    PerceptStMeta meta[] = {{"percept.task", "reconstruct"}};
    CHECK(percept_net_save(a, path, PERCEPT_DTYPE_F32, meta, 1) == 0, "save: %s",
          percept_error());
    PerceptNet *b = percept_net_load(path);
    CHECK(b != NULL, "load: %s", percept_error());
    if (b) {
        float x[2 * 2 * 12 * 10];
        fill_uniform(x, sizeof x / sizeof *x, 9, -1, 1);
        PerceptTensor in = {2, 2, 12, 10, x}, oa, ob;
        percept_net_forward(a, &in, &oa);
        percept_net_forward(b, &in, &ob);
        CHECK(!memcmp(oa.data, ob.data, percept_tensor_numel(&oa) * sizeof(float)),
              "a reloaded network computes something else");
        CHECK(percept_net_param_count(a) == percept_net_param_count(b), "parameter count");
        percept_net_free(b);
    }
    PerceptSafetensors *st = percept_st_read(path);
    CHECK(st && percept_st_meta(st, "percept.task") &&
          !strcmp(percept_st_meta(st, "percept.task"), "reconstruct") &&
          percept_st_meta(st, "percept.arch"), "metadata written");
    if (st) {
        /* a file whose tensor has another shape than the architecture says */
        PerceptNet *bad = percept_net_from_safetensors(st, head_arch);
        CHECK(!bad && strstr(percept_error(), "missing"), "wrong arch for file: %s",
              percept_error());
        percept_st_free(st);
    }
    unlink(path);
    PerceptNet *missing = percept_net_load("/nonexistent/model.safetensors");
    CHECK(!missing && strstr(percept_error(), "/nonexistent/model.safetensors"),
          "missing file error names the file: %s", percept_error());
    percept_net_free(a);
}

/* init_gain scales a layer's initial weights (the same random stream) and nothing else. */
static void check_init_gain(void)
{
    const char *plain = "{\"nodes\":[{\"name\":\"a\",\"op\":\"conv2d\",\"cin\":3,\"cout\":4,\"k\":3},"
                        "{\"name\":\"b\",\"op\":\"conv2d\",\"cin\":4,\"cout\":3,\"k\":3}]}";
    const char *gained = "{\"nodes\":[{\"name\":\"a\",\"op\":\"conv2d\",\"cin\":3,\"cout\":4,\"k\":3},"
                         "{\"name\":\"b\",\"op\":\"conv2d\",\"cin\":4,\"cout\":3,\"k\":3,"
                         "\"init_gain\":0.25}]}";
    PerceptNet *p = percept_net_from_arch(plain, 5), *g = percept_net_from_arch(gained, 5);
    CHECK(p && g, "init_gain nets: %s", percept_error());
    if (!p || !g)
        return;
    size_t na, nb;
    const float *pa = percept_net_param(p, "a.weight", &na), *ga = percept_net_param(g, "a.weight", &na);
    const float *pb = percept_net_param(p, "b.weight", &nb), *gb = percept_net_param(g, "b.weight", &nb);
    double da = 0, db = 0;
    for (size_t i = 0; i < na; i++)
        da = fmax(da, fabs(pa[i] - ga[i]));
    for (size_t i = 0; i < nb; i++)
        db = fmax(db, fabs(0.25f * pb[i] - gb[i]));
    CHECK(da == 0, "init_gain on b changed a's weights by %g", da);
    CHECK(db < 1e-7, "b's weights are not 0.25 × the plain ones (off by %g)", db);
    percept_net_free(p);
    percept_net_free(g);
    /* the builders' tail gain: the restoration net then starts near identity */
    char *arch = percept_arch_restore(&(PerceptRestoreOpts){8, 1, 0.01f, 0, 0, 0, 0});
    PerceptNet *r = arch ? percept_net_from_arch(arch, 3) : NULL;
    free(arch);
    float x[3 * 16 * 16];
    fill_uniform(x, sizeof x / sizeof *x, 4, 0, 1);
    PerceptTensor t = {1, 3, 16, 16, x}, out;
    CHECK(r && percept_net_forward(r, &t, &out) == 0, "restore with tail gain: %s", percept_error());
    double d = 0;
    for (size_t i = 0; r && i < sizeof x / sizeof *x; i++)
        d = fmax(d, fabs(out.data[i] - x[i]));
    CHECK(r && d < 0.2, "tail gain 0.01: output %g from the input at most", d);
    percept_net_free(r);
}

static void check_bad_archs(void)
{
    static const struct {
        const char *arch, *expect;
    } rows[] = {
        {"{not json", "invalid"},
        {"[]", "object"},
        {"{\"nodes\":[]}", "non-empty"},
        {"{\"format\":2,\"nodes\":[{\"name\":\"a\",\"op\":\"relu\"}]}", "format"},
        {"{\"nodes\":[{\"name\":\"a\",\"op\":\"warp_drive\"}]}", "unknown layer type 'warp_drive'"},
        {"{\"nodes\":[{\"op\":\"relu\"}]}", "no name"},
        {"{\"nodes\":[{\"name\":\"a\",\"op\":\"conv2d\",\"cin\":3,\"k\":3}]}", "missing attribute 'cout'"},
        {"{\"nodes\":[{\"name\":\"a\",\"op\":\"conv2d\",\"cin\":3,\"cout\":-1,\"k\":3}]}", "'cout'"},
        {"{\"nodes\":[{\"name\":\"a\",\"op\":\"conv2d\",\"cin\":3,\"cout\":2,\"k\":3,\"pad_mode\":\"wrap\"}]}", "pad_mode"},
        {"{\"nodes\":[{\"name\":\"a\",\"op\":\"relu\",\"in\":[\"b\"]},{\"name\":\"b\",\"op\":\"relu\"}]}", "not an earlier node"},
        {"{\"nodes\":[{\"name\":\"a\",\"op\":\"relu\"},{\"name\":\"a\",\"op\":\"tanh\"}]}", "used twice"},
        {"{\"nodes\":[{\"name\":\"a\",\"op\":\"add\",\"in\":[\"input\"]}]}", "two inputs"},
        {"{\"output\":\"zz\",\"nodes\":[{\"name\":\"a\",\"op\":\"relu\"}]}", "'output'"},
        {"{\"nodes\":[{\"name\":\"a\",\"op\":\"dropout\",\"p\":1.5}]}", "'p'"},
        {"{\"nodes\":[{\"name\":\"a\",\"op\":\"leaky_relu\",\"alpha\":\"x\"}]}", "'alpha'"},
        {"{\"nodes\":[{\"name\":\"a\",\"op\":\"conv2d\",\"cin\":3,\"cout\":2,\"k\":3,\"init_gain\":-1}]}", "'init_gain'"},
        {"{\"nodes\":[{\"name\":\"a\",\"op\":\"linear\",\"fin\":3,\"fout\":2,\"init_gain\":1e9}]}", "'init_gain'"},
        {"{\"nodes\":[{\"name\":\"a\",\"op\":\"channel_affine\",\"scale\":[1,2],\"shift\":[1]}]}", "lengths"},
        {"{\"nodes\":[{\"name\":\"c\",\"op\":\"conv2d\",\"cin\":1048576,\"cout\":1048576,\"k\":64}]}", "more than 2147483648 parameters"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        percept_error_clear();
        PerceptNet *net = percept_net_from_arch(rows[i].arch, 1);
        CHECK(!net && strstr(percept_error(), rows[i].expect),
              "bad arch %zu: expected an error with '%s', got '%s'", i, rows[i].expect,
              net ? "(accepted)" : percept_error());
        percept_net_free(net);
    }
    /* errors found only once a size is known */
    PerceptNet *net = percept_net_from_arch(head_arch, 1);
    float x[4 * 3 * 9 * 9] = {0};
    PerceptTensor t = {1, 4, 9, 9, x}, out;
    CHECK(percept_net_forward(net, &t, &out) == -1 && strstr(percept_error(), "3 input channels"),
          "wrong channel count: %s", percept_error());
    t = (PerceptTensor){1, 3, 1, 1, x};
    CHECK(percept_net_forward(net, &t, &out) == -1 && strstr(percept_error(), "too small"),
          "too small: %s", percept_error());
    t = (PerceptTensor){1, 3, 0, 5, x};
    CHECK(percept_net_forward(net, &t, &out) == -1 && strstr(percept_error(), "empty"),
          "empty: %s", percept_error());
    CHECK(percept_net_backward(net, x, NULL) == -1, "backward without a grad-mode forward");
    /* an image whose activations exceed the machine's memory is refused, not attempted */
    t = (PerceptTensor){1, 3, 60000, 60000, x};
    CHECK(percept_net_forward(net, &t, &out) == -1 && strstr(percept_error(), "memory"),
          "huge image: %s", percept_error());
    CHECK(percept_error_is_out_of_memory(), "huge image: not flagged as out of memory");
    t = (PerceptTensor){1, 3, 9, 9, x};
    CHECK(percept_net_forward(net, &t, &out) == 0, "a failed plan leaves the network usable: %s",
          percept_error());
    /* a memory limit: a pass over it fails as out of memory, nothing allocated; under it runs */
    size_t need = percept_net_memory_bytes(net, 9, 9);
    percept_net_set_memory_limit(net, need - 1);
    percept_net_release_memory(net);
    size_t allocs = cpu_alloc_calls;
    CHECK(percept_net_forward(net, &t, &out) == -1 && percept_error_is_out_of_memory() &&
              strstr(percept_error(), "over its limit") && cpu_alloc_calls == allocs,
          "limit %zu bytes below the %zu needed: %s", need - 1, need, percept_error());
    percept_fail("another error");
    CHECK(!percept_error_is_out_of_memory(), "a new error still reads as out of memory");
    percept_net_set_memory_limit(net, need);
    CHECK(percept_net_forward(net, &t, &out) == 0, "at its limit: %s", percept_error());
    percept_net_free(net);
}

/* Weight files that parse as safetensors but do not fit their architecture: each must
 * fail with a message naming the file and the reason. */
static void check_bad_weight_files(void)
{
    static const char *conv_arch =
        "{\"format\":1,\"name\":\"one\",\"nodes\":[{\"name\":\"c\",\"op\":\"conv2d\","
        "\"cin\":3,\"cout\":2,\"k\":1}]}";
    static const char *big_arch =
        "{\"format\":1,\"nodes\":[{\"name\":\"big\",\"op\":\"conv2d\",\"cin\":4000,"
        "\"cout\":4000,\"k\":9}]}"; /* 1.3e9 parameters (5 GB) claimed */
    static const char *unknown_arch =
        "{\"format\":1,\"nodes\":[{\"name\":\"c\",\"op\":\"hyperconv\"}]}";
    float w[6] = {1, 2, 3, 4, 5, 6}, b[2] = {0, 0};
    PerceptStWrite weight = {"c.weight", PERCEPT_DTYPE_F32, 4, {2, 3, 1, 1}, w};
    PerceptStWrite bias = {"c.bias", PERCEPT_DTYPE_F32, 1, {2}, b};
    PerceptStWrite wrong = {"c.weight", PERCEPT_DTYPE_F32, 4, {3, 2, 1, 1}, w};
    PerceptStWrite extra = {"c.gain", PERCEPT_DTYPE_F32, 1, {2}, b};
    PerceptStWrite empty = {"c.weight", PERCEPT_DTYPE_F32, 4, {0, 3, 1, 1}, w};
    PerceptStWrite bn_steps = {"c.num_batches_tracked", PERCEPT_DTYPE_F32, 1, {1}, b};
    static const struct {
        const char *arch;
        int n;
        const char *expect;
    } rows[] = {
        {NULL, 2, "no percept.arch"},
        {"{broken", 2, "invalid"},
        {NULL, 1, "'c.bias' is missing"},          /* weight only */
        {NULL, -1, "has shape [3, 2, 1, 1], the architecture needs [2, 3, 1, 1]"},
        {NULL, 3, "'c.gain' is not used"},
        {NULL, -2, "has shape [0, 3, 1, 1]"},      /* zero-size tensor */
        {NULL, 4, NULL},                           /* num_batches_tracked is ignored: loads */
        {NULL, 0, "unknown layer type 'hyperconv'"},
        {NULL, 5, "'big.weight' is missing"},      /* a huge architecture in a tiny file */
    };
    char path[512];
    const char *tmp = getenv("PERCEPT_TEST_TMP");
    snprintf(path, sizeof path, "%s/bad-weights-%d.safetensors", tmp ? tmp : "/tmp",
             (int)getpid());
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        PerceptStWrite t[3];
        int n = 0;
        switch (rows[i].n) {
        case -1: t[n++] = wrong; t[n++] = bias; break;
        case -2: t[n++] = empty; t[n++] = bias; break;
        case 3: t[n++] = weight; t[n++] = bias; t[n++] = extra; break;
        case 4: t[n++] = weight; t[n++] = bias; t[n++] = bn_steps; break;
        case 5: t[n++] = bias; break;
        default: for (int k = 0; k < rows[i].n; k++) t[n++] = k ? bias : weight;
        }
        const char *arch = i == 0 ? NULL : rows[i].arch ? rows[i].arch :
                           rows[i].n == 0 ? unknown_arch : rows[i].n == 5 ? big_arch : conv_arch;
        PerceptStMeta meta = {"percept.arch", (char *)arch};
        if (percept_st_write(path, t, n, &meta, arch ? 1 : 0)) {
            CHECK(0, "writing bad file %zu: %s", i, percept_error());
            continue;
        }
        percept_error_clear();
        PerceptNet *net = percept_net_load(path);
        if (!rows[i].expect)
            CHECK(net != NULL, "row %zu should load: %s", i, percept_error());
        else
            CHECK(!net && strstr(percept_error(), rows[i].expect) && strstr(percept_error(), path),
                  "bad weight file %zu: expected '%s' and the path, got '%s'", i, rows[i].expect,
                  net ? "(loaded)" : percept_error());
        percept_net_free(net);
    }
    unlink(path);
}

/* What the tiler relies on: fixed instance-norm statistics reproduce the pass they were
 * taken from and change what other inputs give; the memory estimate allocates nothing and
 * leaves a planned size intact; alignments of the shipped builders. */
static void check_tiling_support(void)
{
    PerceptJohnsonOpts jo = {8, 1, 0};
    char *arch = percept_arch_johnson(&jo);
    PerceptNet *net = percept_net_from_arch(arch, 3);
    CHECK(net != NULL, "johnson: %s", percept_error());
    if (!net)
        return;
    CHECK(percept_net_alignment(net) == 4, "johnson alignment %d", percept_net_alignment(net));
    size_t ns = percept_net_norm_stats_floats(net);
    CHECK(ns == 2 * (8 + 16 + 32 + 32 + 32 + 16 + 8), "johnson norm stats %zu", ns);
    int h = 20, w = 24;
    size_t n = (size_t)3 * h * w, on = n;
    float *a = malloc(sizeof(float) * n), *b = malloc(sizeof(float) * n);
    float *ya = malloc(sizeof(float) * on), *yb = malloc(sizeof(float) * on);
    float *stats = malloc(sizeof(float) * ns);
    fill_uniform(a, n, 1, 0, 1);
    fill_uniform(b, n, 2, 0, 1);
    PerceptTensor ta = {1, 3, h, w, a}, tb = {1, 3, h, w, b}, out;
    percept_net_forward(net, &ta, &out);
    memcpy(ya, out.data, sizeof(float) * on);
    memcpy(stats, percept_net_norm_stats(net), sizeof(float) * ns);
    percept_net_forward(net, &tb, &out);
    memcpy(yb, out.data, sizeof(float) * on);
    CHECK(memcmp(stats, percept_net_norm_stats(net), sizeof(float) * ns) != 0,
          "statistics of a different image are different");

    size_t before = cpu_alloc_calls;
    size_t small = percept_net_memory_bytes(net, h, w), big = percept_net_memory_bytes(net, 64, 64);
    CHECK(small > n * 4 && big > small * 4, "memory estimate %zu (20x24) %zu (64x64)", small, big);
    CHECK(cpu_alloc_calls == before, "the memory estimate allocated");
    CHECK(percept_net_memory_bytes(net, 0, 5) == 0, "an empty size has no estimate");

    CHECK(percept_net_fix_norm_stats(net, stats) == 0, "fix: %s", percept_error());
    percept_net_forward(net, &ta, &out);
    CHECK(cpu_alloc_calls == before, "the planned size was kept across the estimate");
    CHECK(max_tol_ratio(out.data, ya, on, 1e-6, 1e-6, NULL) <= 1,
          "fixed statistics reproduce the pass they came from");
    percept_net_forward(net, &tb, &out);
    CHECK(max_tol_ratio(out.data, yb, on, 1e-4, 1e-4, NULL) > 1,
          "image b with image a's statistics differs from image b with its own");
    CHECK(percept_net_backward(net, yb, NULL) != 0 && strstr(percept_error(), "fixed"),
          "backward with fixed statistics is refused: %s", percept_error());
    stats[3] = NAN;
    CHECK(percept_net_fix_norm_stats(net, stats) != 0, "NaN statistics are refused");
    percept_net_fix_norm_stats(net, NULL);
    percept_net_forward(net, &tb, &out);
    CHECK(max_tol_ratio(out.data, yb, on, 1e-6, 1e-6, NULL) <= 1, "own statistics again");
    percept_net_free(net);
    free(arch); free(a); free(b); free(ya); free(yb); free(stats);

    PerceptSrOpts so = {PERCEPT_SR_JOHNSON, 4, 8, 1, 0, 0, 0};
    arch = percept_arch_sr(&so);
    net = percept_net_from_arch(arch, 1);
    CHECK(net && percept_net_alignment(net) == 1 && percept_net_norm_stats_floats(net) == 0,
          "sr alignment and statistics");
    percept_net_free(net);
    free(arch);
    PerceptAutoencoderOpts ao = {64, 8, 8, 0, 0};
    arch = percept_arch_deepsim_autoencoder(&ao);
    net = percept_net_from_arch(arch, 1);
    CHECK(net && percept_net_alignment(net) == 8, "autoencoder alignment %d",
          net ? percept_net_alignment(net) : -1);
    percept_net_free(net);
    free(arch);
}

/* x in orientation o, made of elementary turns (transpose, then flip top-bottom, then
 * left-right) rather than the library's index map: any consistent set of the 8 will do. */
static PerceptTensor turned(const PerceptTensor *x, int o)
{
    int h = o & 4 ? x->w : x->h, w = o & 4 ? x->h : x->w;
    PerceptTensor t = {x->n, x->c, h, w, malloc(sizeof(float) * percept_tensor_numel(x))};
    for (int p = 0; p < x->n * x->c; p++)
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) {
                int a = o & 2 ? h - 1 - i : i, b = o & 1 ? w - 1 - j : j; /* the flips */
                int si = o & 4 ? b : a, sj = o & 4 ? a : b;                /* the transpose */
                t.data[((size_t)p * h + i) * w + j] = x->data[((size_t)p * x->h + si) * x->w + sj];
            }
    return t;
}

/* The self-ensemble of any network turns exactly with its input; for a network that itself
 * does (1×1 convs and nearest upsampling) it is the plain output. */
static void check_self_ensemble(void)
{
    static const char *pointwise =
        "{\"format\":1,\"name\":\"pointwise\",\"input_channels\":3,\"nodes\":["
        "{\"name\":\"a\",\"op\":\"conv2d\",\"cin\":3,\"cout\":4,\"k\":1},"
        "{\"name\":\"r\",\"op\":\"relu\"},"
        "{\"name\":\"u\",\"op\":\"upsample_nearest\",\"factor\":2},"
        "{\"name\":\"b\",\"op\":\"conv2d\",\"cin\":4,\"cout\":3,\"k\":1}"
        "]}";
    char *archs[3] = {
        strdup(pointwise),
        percept_arch_sr(&(PerceptSrOpts){PERCEPT_SR_SHUFFLE, 2, 8, 2, 0, 0, 1}),
        percept_arch_restore(&(PerceptRestoreOpts){8, 1, 0, 1, 0, 1, 0}),
    };
    for (int k = 0; k < 3; k++) {
        PerceptNet *net = archs[k] ? percept_net_from_arch(archs[k], 7) : NULL;
        CHECK(net != NULL, "ensemble net %d: %s", k, percept_error());
        if (!net)
            continue;
        int s = k == 2 ? 1 : 2, h = 6, w = 10;
        PerceptTensor x = {2, 3, h, w, malloc(sizeof(float) * 2 * 3 * h * w)}, y, e, plain;
        fill_uniform(x.data, percept_tensor_numel(&x), 40 + k, 0, 1);
        size_t on = (size_t)2 * 3 * h * s * w * s;
        float *ens = malloc(sizeof(float) * on), *other = malloc(sizeof(float) * on);
        CHECK(percept_net_forward_ensemble(net, &x, ens, &e) == 0, "%s", percept_error());
        CHECK(e.n == 2 && e.c == 3 && e.h == h * s && e.w == w * s && e.data == ens,
              "ensemble shape %dx%dx%dx%d", e.n, e.c, e.h, e.w);
        percept_net_forward(net, &x, &plain);
        double differs = max_tol_ratio(plain.data, ens, on, 1e-6, 1e-6, NULL);
        CHECK(k == 0 ? differs <= 1 : differs > 1,
              "net %d: the ensemble %s the plain output (ratio %g)", k,
              k == 0 ? "of a network that turns with its input is" : "differs from", differs);
        for (int o = 1; o < 8; o++) {
            PerceptTensor tx = turned(&x, o), want = turned(&e, o);
            CHECK(percept_net_forward_ensemble(net, &tx, other, &y) == 0 && y.h == want.h &&
                      y.w == want.w &&
                      max_tol_ratio(other, want.data, on, 1e-5, 1e-5, NULL) <= 1,
                  "net %d, orientation %d: the ensemble of the turned input is the turned "
                  "ensemble", k, o);
            free(tx.data);
            free(want.data);
        }
        percept_net_free(net);
        free(x.data);
        free(ens);
        free(other);
    }
    for (int k = 0; k < 3; k++)
        free(archs[k]);
}

/* Fan-in and fan-out around the convs: c2 + c1 then a ReLU fold into c2 (c1 has two
 * readers, so nothing folds into it); add(c4, c5) folds into neither, since c5 has two
 * readers and c4 runs before its other operand c5. */
static const char *fusion_arch =
    "{\"format\":1,\"name\":\"fusion\",\"input_channels\":3,\"nodes\":["
    "{\"name\":\"c1\",\"op\":\"conv2d\",\"cin\":3,\"cout\":4,\"k\":3,\"pad\":1},"
    "{\"name\":\"c2\",\"op\":\"conv2d\",\"cin\":4,\"cout\":4,\"k\":3,\"pad\":1},"
    "{\"name\":\"a\",\"op\":\"add\",\"in\":[\"c2\",\"c1\"]},"
    "{\"name\":\"r\",\"op\":\"relu\"},"
    "{\"name\":\"c4\",\"op\":\"conv2d\",\"in\":[\"r\"],\"cin\":4,\"cout\":4,\"k\":1},"
    "{\"name\":\"c5\",\"op\":\"conv2d\",\"in\":[\"r\"],\"cin\":4,\"cout\":4,\"k\":3,\"pad\":1},"
    "{\"name\":\"l\",\"op\":\"add\",\"in\":[\"c4\",\"c5\"]},"
    "{\"name\":\"out\",\"op\":\"add\",\"in\":[\"l\",\"c5\"]}"
    "]}";

/* Upsamplings: u1 (of the network input) folds into conv a; u2 has two readers and stays,
 * and the add folds into c, the later of its operands. */
static const char *upsample_fusion_arch =
    "{\"format\":1,\"name\":\"upsample-fusion\",\"input_channels\":3,\"nodes\":["
    "{\"name\":\"u1\",\"op\":\"upsample_nearest\",\"factor\":2},"
    "{\"name\":\"a\",\"op\":\"conv2d\",\"cin\":3,\"cout\":4,\"k\":3,\"pad\":1,\"reflect\":true},"
    "{\"name\":\"u2\",\"op\":\"upsample_nearest\",\"factor\":2},"
    "{\"name\":\"b\",\"op\":\"conv2d\",\"in\":[\"u2\"],\"cin\":4,\"cout\":2,\"k\":3,\"pad\":1},"
    "{\"name\":\"c\",\"op\":\"conv2d\",\"in\":[\"u2\"],\"cin\":4,\"cout\":2,\"k\":1},"
    "{\"name\":\"out\",\"op\":\"add\",\"in\":[\"b\",\"c\"]}"
    "]}";

static int fused_nodes(const PerceptNet *net)
{
    int count = 0;
    for (int i = 0; i < net->n_nodes; i++)
        count += net->nodes[i].fused_into >= 0;
    return count;
}

/* Inference folds adds and ReLUs into the conv or norm before them, and eval batch norms
 * into the conv's weights (plan.c); the output must be the unfused one (a forward with
 * gradients fuses nothing) bit for bit, or within `tol` relative to its largest value when
 * batch norms fold (the folded weights round differently), on batches of two (the norms'
 * epilogues are per image), with random norm vectors and fixed instance-norm statistics. */
static void check_fused(const char *what, char *arch, int channels, int expect_fused,
                        double tol)
{
    CHECK(arch != NULL, "%s arch: %s", what, percept_error());
    if (!arch)
        return;
    PerceptNet *fused = percept_net_from_arch(arch, 4), *plain = percept_net_from_arch(arch, 4);
    randomise_norm_vectors(fused, plain);
    percept_net_set_grad(plain, 1);
    float x[2 * 3 * 24 * 20];
    fill_uniform(x, sizeof x / sizeof *x, 9, 0, 1);
    PerceptTensor in = {2, channels, 24, 20, x}, of, op;
    for (int fixed = 0; fixed < 2; fixed++) {
        int ok = percept_net_forward(fused, &in, &of) == 0 &&
                 percept_net_forward(plain, &in, &op) == 0;
        CHECK(ok, "%s forward: %s", what, percept_error());
        if (!ok)
            break;
        CHECK(fused_nodes(fused) == expect_fused && fused_nodes(plain) == 0,
              "%s: %d nodes fused (expected %d), %d with gradients (expected 0)", what,
              fused_nodes(fused), expect_fused, fused_nodes(plain));
        size_t n = percept_tensor_numel(&of);
        double top = 0;
        for (size_t i = 0; i < n; i++)
            top = fmax(top, fabs(op.data[i]));
        int same = n == percept_tensor_numel(&op) &&
                   (tol ? max_tol_ratio(of.data, op.data, n, tol * top, 0, NULL) <= 1
                        : !memcmp(of.data, op.data, n * sizeof(float)));
        CHECK(same, "%s%s: the fused forward differs from the unfused one", what,
              fixed ? " (fixed norm statistics)" : "");
        if (percept_net_norm_stats_floats(fused) == 0)
            break;
        const float *stats = percept_net_norm_stats(plain);
        CHECK(percept_net_fix_norm_stats(fused, stats) == 0 &&
              percept_net_fix_norm_stats(plain, stats) == 0, "%s: fix stats: %s", what,
              percept_error());
    }
    percept_net_free(fused);
    percept_net_free(plain);
    free(arch);
}

static void check_fusion(void)
{
    check_fused("fan-in/out", strdup(fusion_arch), 3, 2, 0);
    /* an upsampling folded into a 3×3 conv runs it phased (conv-up.c): rounded otherwise */
    check_fused("upsampling", strdup(upsample_fusion_arch), 3, 2, 1e-5);
    /* per residual block: norm+ReLU, norm+add; head and two downs, two ups: norm+ReLU; the
     * two upsamplings into their convs */
    check_fused("johnson", percept_arch_johnson(&(PerceptJohnsonOpts){8, 2, 0}), 3,
                2 * 2 + 5 + 2, 1e-5);
    /* per block: conv+ReLU, conv+add; the head's ReLU */
    check_fused("sr-shuffle", percept_arch_sr(&(PerceptSrOpts){PERCEPT_SR_SHUFFLE, 2, 8, 2,
                                                                0.1f, 0.1f, 1}), 3, 2 * 2 + 1, 0);
    /* every batch norm (after the head, two per block, after the upsampling conv) into its
     * conv, and with it a ReLU after the head, in each block and after the upsampling, an
     * add in each block; the upsampling into its conv */
    check_fused("sr (batch norm)", percept_arch_sr(&(PerceptSrOpts){PERCEPT_SR_JOHNSON, 2, 8,
                                                                     2, 0, 0, 0}), 3, 13, 1e-5);
    /* conv + ReLU at the head and the down conv, the blocks' two, and the tail conv + the
     * network input */
    check_fused("restore-half", percept_arch_restore(&(PerceptRestoreOpts){8, 2, 0.1f, 1, 0.1f,
                                                                           1, 0}), 3, 7, 0);
    check_fused("vgg16", percept_arch_vgg16("relu2_2"), 3, 4, 0);

    /* a fused conv's own output is gone in inference: asking for it is an error */
    PerceptNet *net = percept_net_from_arch(fusion_arch, 1);
    float x[3 * 8 * 8];
    fill_uniform(x, sizeof x / sizeof *x, 2, 0, 1);
    PerceptTensor in = {1, 3, 8, 8, x}, o;
    CHECK(percept_net_forward(net, &in, &o) == 0 && percept_net_node_output(net, "c2", &o) != 0,
          "the output of conv c2, which an add and a ReLU were fused into, was offered");
    percept_net_set_grad(net, 1);
    CHECK(percept_net_forward(net, &in, &o) == 0 && percept_net_node_output(net, "c2", &o) == 0,
          "with gradients c2's output must be there: %s", percept_error());
    percept_net_free(net);
}

/* percept_buffer_new gives zeroed memory of the default backend (the CPU here) and
 * percept_copy copies between it and plain memory; a network's input from such a buffer
 * gives the same output as from plain memory */
static void check_buffers(void)
{
    const size_t n = 2 * 8 * 6; /* mixed_arch takes 2 channels */
    float *b = percept_buffer_new(n), *host = malloc(sizeof(float) * n);
    int zero = b != NULL;
    for (size_t i = 0; b && i < n; i++)
        zero &= b[i] == 0.0f;
    CHECK(b && host && zero, "percept_buffer_new: zeroed memory (%s)", b ? "" : percept_error());
    fill_uniform(host, n, 5, -1, 1);
    CHECK(b && percept_copy(b, host, n) == 0 && !memcmp(b, host, sizeof(float) * n) &&
              percept_copy(host, host, n) == 0 && percept_copy(b, host, 0) == 0,
          "percept_copy between plain memory and a buffer");
    PerceptNet *net = percept_net_from_arch(mixed_arch, 3);
    PerceptTensor xb = {1, 2, 8, 6, b}, xh = {1, 2, 8, 6, host}, y;
    float *first = NULL;
    if (net && b && !percept_net_forward(net, &xh, &y) &&
        (first = malloc(sizeof(float) * percept_tensor_numel(&y)))) {
        memcpy(first, y.data, sizeof(float) * percept_tensor_numel(&y));
        CHECK(!percept_net_forward(net, &xb, &y) &&
                  !memcmp(first, y.data, sizeof(float) * percept_tensor_numel(&y)),
              "a network's input from a buffer: the same output");
    } else {
        CHECK(0, "forward from plain memory: %s", percept_error());
    }
    free(first);
    percept_net_free(net);
    percept_buffer_free(b);
    percept_buffer_free(NULL);
    free(host);
}

int main(void)
{
    check_buffers();
    check_init_gain();
    check_tiling_support();
    check_net_gradients(mixed_arch, 2, 2, 8, 6, 1);
    check_net_gradients(head_arch, 3, 3, 6, 7, 2);
    check_planning();
    check_self_ensemble();
    check_fusion();
    check_save_load();
    check_bad_archs();
    check_bad_weight_files();
    return check_done("test-net");
}
