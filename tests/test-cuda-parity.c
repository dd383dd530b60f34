/* CPU vs CUDA, the model being ggml's test-backend-ops: every op, and whole networks, run
 * forward and backward on both backends from the same weights and inputs; outputs, input
 * gradients and parameter gradients must agree to a normalised error (‖cuda − cpu‖₂ ÷
 * ‖cpu‖₂; for parameter gradients at least a tenth of the network's, see check) of 1e-5
 * (strict FP32). The CUDA side's activations and gradients are poisoned
 * with NaN before the compared pass, so an element a kernel forgets to write fails. Norm
 * scales, biases and running statistics are randomised (the same on both sides), and the
 * running statistics are compared after the forward passes too.
 * Inference (no gradients: the plan fuses) is checked forward in fp32 and in fp16
 * (PERCEPT_CUDA_PRECISION=fp16), to 1e-2 for fp16 (check_inference).
 * Exits 77 (skipped) when the CUDA backend finds no GPU. Prints one line per case. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "fake-counter.h"
#include "graph.h"
#include "percept/percept.h"
#include "norm-vectors.h"

static const double TOLERANCE = 1e-5, TOLERANCE_FP16 = 1e-2;
static int failures, cases;
/* whether check asks for the input's gradient: without it nothing copies a gradient to the
 * host, so the pass's end must synchronise by itself (as in training) */
static int input_gradient = 1;

/* ‖cuda − cpu‖₂ ÷ max(‖cpu‖₂, floor); a NaN on one side only is infinitely wrong */
static double nerr_floor(const float *cpu, const float *cuda, size_t n, double floor)
{
    double d = 0, r = 0;
    for (size_t i = 0; i < n; i++) {
        double e = (double)cuda[i] - cpu[i];
        d += e * e;
        r += (double)cpu[i] * cpu[i];
        if (isnan(cuda[i]) != isnan(cpu[i]))
            return INFINITY;
    }
    r = sqrt(r) > floor ? sqrt(r) : floor;
    return r > 0 ? sqrt(d) / r : sqrt(d);
}

static double nerr(const float *cpu, const float *cuda, size_t n)
{
    return nerr_floor(cpu, cuda, n, 0);
}

/* ‖g‖₂ of n floats */
static double norm2(const float *g, size_t n)
{
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)g[i] * g[i];
    return sqrt(s);
}

static void poison(float *p, size_t n)
{
    for (size_t i = 0; i < n; i++)
        p[i] = NAN;
}

static float *randoms(size_t n, uint64_t seed, float lo, float hi)
{
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; x && i < n; i++)
        x[i] = lo + (hi - lo) * percept_rng_uniform(seed, i);
    return x;
}

static PerceptNet *make(const char *device, const char *arch, int training)
{
    if (percept_set_device(device))
        return NULL;
    PerceptNet *net = percept_net_from_arch(arch, 7);
    if (net) {
        percept_net_set_grad(net, 1);
        percept_net_set_training(net, training);
    }
    return net;
}

/* Decisions the two backends may take differently without either being wrong: a ReLU whose
 * input lies within rounding of zero (its sign differs), a max pool whose window holds a
 * near-tie (its argmax differs). Either changes the gradients by far more than rounding. */
static int knife_edges(const PerceptNet *a, const PerceptNet *b)
{
    int count = 0;
    for (int i = 0; i < a->n_nodes; i++) {
        const Node *nd = &a->nodes[i];
        if ((nd->op == OP_RELU || nd->op == OP_LEAKY_RELU) && nd->in[0] >= 0) {
            const Node *src = &a->nodes[nd->in[0]];
            const float *xa = a->plan.act + src->out_off, *xb = b->plan.act + src->out_off;
            for (size_t j = 0, n = shape_numel(src->out); j < n; j++)
                count += (xa[j] > 0) != (xb[j] > 0);
        } else if (nd->op == OP_MAX_POOL) {
            const int *ia = (const int *)(a->plan.saved + nd->saved_off);
            const int *ib = (const int *)(b->plan.saved + nd->saved_off);
            for (size_t j = 0, n = shape_numel(nd->out); j < n; j++)
                count += ia[j] != ib[j];
        }
    }
    return count;
}

/* One case: forward, backward from a random output gradient, compare everything. */
static void check(const char *name, const char *arch, int n, int c, int h, int w, int training)
{
    cases++;
    PerceptNet *a = make("cpu", arch, training), *b = make("cuda", arch, training);
    if (!a || !b) {
        printf("FAIL %s: %s\n", name, percept_error());
        failures++;
        percept_net_free(a);
        percept_net_free(b);
        return;
    }
    randomise_norm_vectors(a, b);
    size_t nin = (size_t)n * c * h * w;
    float *x = NULL;
    PerceptTensor in, ya, yb;
    double worst = 0;
    const char *where = "";
    int ok;
    /* an input whose every ReLU and max pool decides clearly: another draw when one is on
     * a knife's edge (rare: one unit in ten thousand networks' worth of activations) */
    for (int draw = 0;; draw++) {
        free(x);
        x = randoms(nin, 11 + 1000 * draw, -1, 1);
        in = (PerceptTensor){n, c, h, w, x};
        ok = !percept_net_forward(a, &in, &ya) && !percept_net_forward(b, &in, &yb);
        /* poison the CUDA side's activations, then the pass that counts (the CPU runs twice
         * too, so that both sides update their running statistics as often) */
        if (ok) {
            poison(b->plan.act + nin, b->plan.act_floats - nin);
            ok = !percept_net_forward(a, &in, &ya) && !percept_net_forward(b, &in, &yb);
        }
        int edges = ok && draw < 3 ? knife_edges(a, b) : 0;
        if (!edges)
            break;
        printf("     %s: %d ReLU or max-pool decision%s within rounding of a tie; another "
               "input\n", name, edges, edges > 1 ? "s" : "");
    }
    size_t nout = ok ? percept_tensor_numel(&ya) : 0;
    float *dout = randoms(nout, 13, -1, 1), *dxa = malloc(sizeof(float) * nin),
          *dxb = malloc(sizeof(float) * nin);
    if (ok) {
        double e = nerr(ya.data, yb.data, nout);
        if (e > worst)
            worst = e, where = "output";
        for (int i = 0; i < a->n_params; i++) {
            const Param *p = &a->params[i];
            if (p->trainable)
                continue;
            e = nerr(net_param_data(a, p), net_param_data(b, &b->params[i]), p->numel);
            if (e > worst)
                worst = e, where = p->name;
        }
        percept_net_zero_grads(a);
        percept_net_zero_grads(b);
        poison(b->plan.grads, b->plan.grads_floats);
        poison(dxb, nin);
        ok = !percept_net_backward(a, dout, input_gradient ? dxa : NULL) &&
             !percept_net_backward(b, dout, input_gradient ? dxb : NULL);
    }
    if (ok && input_gradient) {
        double e = nerr(dxa, dxb, nin);
        if (e > worst)
            worst = e, where = "input gradient";
    }
    if (ok) {
        size_t np;
        const float *ga = percept_net_grads(a, &np), *gb = percept_net_grads(b, &np);
        /* A parameter whose gradient is zero in exact arithmetic — a conv's bias before an
         * instance or batch norm, which subtracts the mean — holds rounding noise on both
         * backends, different noise: measured against itself it would "fail". So each
         * parameter's error is taken relative to its own gradient or a tenth of the whole
         * network's, whichever is larger: a wrong gradient of any size that matters still
         * shows as an error of order one. */
        const double floor = 0.1 * norm2(ga, np);
        for (int i = 0; i < a->n_params; i++) {
            const Param *p = &a->params[i];
            if (!p->trainable)
                continue;
            double e = nerr_floor(ga + p->off, gb + p->off, p->numel, floor);
            if (e > worst)
                worst = e, where = p->name;
        }
    }
    if (!ok) {
        printf("FAIL %s: %s\n", name, percept_error());
        failures++;
    } else if (!(worst <= TOLERANCE)) {
        printf("FAIL %s: normalised error %.3g in %s (tolerance %.0e)\n", name, worst, where,
               TOLERANCE);
        failures++;
    } else {
        printf("ok   %s: worst normalised error %.2g (%s)\n", name, worst, where);
    }
    free(x);
    free(dout);
    free(dxa);
    free(dxb);
    percept_net_free(a);
    percept_net_free(b);
}

/* Inference: the forward pass without gradients, where the plan fuses (plan.c: adds and
 * ReLUs into the conv or norm before them, eval batch norms into conv weights, upsamplings
 * into a conv's input) — in strict FP32 to 1e-5, or in fp16 (PERCEPT_CUDA_PRECISION) to 1e-2
 * and above zero (a pass that quietly stayed in float would hide a broken fp16 path).
 * Both of the CUDA side's passes count: the first writes fresh device memory (NaN under the
 * fake runtime), the second a float arena poisoned beyond the input. fusions: how many
 * nodes the CUDA plan must have folded into others (a check that fusion ran). */
/* The CPU network and the CUDA one, without gradients, the CUDA one at a precision: it reads
 * PERCEPT_CUDA_PRECISION at its first pass, so the caller unsets it after that. */
static int inference_pair(const char *arch, const char *precision, PerceptNet **a,
                          PerceptNet **b)
{
    setenv("PERCEPT_CUDA_PRECISION", precision, 1);
    *a = make("cpu", arch, 0);
    *b = make("cuda", arch, 0);
    if (!*a || !*b)
        return 0;
    percept_net_set_grad(*a, 0);
    percept_net_set_grad(*b, 0);
    randomise_norm_vectors(*a, *b);
    return 1;
}

static void check_inference(const char *name, const char *arch, int n, int c, int h, int w,
                            const char *precision, int fusions)
{
    cases++;
    const int half = !strcmp(precision, "fp16");
    const double tolerance = half ? TOLERANCE_FP16 : TOLERANCE;
    PerceptNet *a, *b;
    int ok = inference_pair(arch, precision, &a, &b), fused = 0;
    size_t nin = (size_t)n * c * h * w;
    float *x = randoms(nin, 17, -1, 1);
    PerceptTensor in = {n, c, h, w, x}, ya, yb;
    double worst = 0;
    ok = ok && !percept_net_forward(a, &in, &ya) && !percept_net_forward(b, &in, &yb);
    unsetenv("PERCEPT_CUDA_PRECISION");
    for (int pass = 0; ok && pass < 2; pass++) {
        if (pass) {
            poison(b->plan.act + nin, b->plan.act_floats - nin);
            ok = !percept_net_forward(b, &in, &yb);
        }
        double e = ok ? nerr(ya.data, yb.data, percept_tensor_numel(&ya)) : 0;
        worst = e > worst || isnan(e) ? e : worst;
    }
    for (int i = 0; ok && i < b->n_nodes; i++)
        fused += b->nodes[i].fused_into >= 0;
    if (!ok) {
        printf("FAIL %s: %s\n", name, percept_error());
        failures++;
    } else if (!(worst <= tolerance && (worst > 0 || !half))) {
        printf("FAIL %s: normalised error %.3g (tolerance %.0e%s)\n", name, worst, tolerance,
               worst == 0 ? ", and none at all: not run in half precision" : "");
        failures++;
    } else if (fused < fusions) {
        printf("FAIL %s: %d node%s fused, expected %d\n", name, fused, fused == 1 ? "" : "s",
               fusions);
        failures++;
    } else {
        printf("ok   %s: normalised error %.2g, %d node%s fused\n", name, worst, fused,
               fused == 1 ? "" : "s");
    }
    free(x);
    percept_net_free(a);
    percept_net_free(b);
}

/* check_inference in both precisions, the case's name prefixed with the precision */
static void check_inference_both(const char *name, const char *arch, int n, int c, int h, int w,
                                 int fusions)
{
    static const char *const precisions[] = {"fp32", "fp16"};
    for (int i = 0; i < 2; i++) {
        char full[200];
        snprintf(full, sizeof full, "%s inference, %s", precisions[i], name);
        check_inference(full, arch, n, c, h, w, precisions[i], fusions);
    }
}

/* CUDA graphs: inference passes of one size, the second captured and the later ones
 * replayed, each against the CPU on its own input; the weights changed before the last (a
 * replay must read them anew, and fp16 convert them anew). Under the fake runtime the
 * graph launches are counted (its fake_cuda_graph_launches): capture and two replays, then
 * none once PERCEPT_CUDA_GRAPHS=0. */
static void check_graphs(const char *name, const char *arch, int n, int c, int h, int w,
                         const char *precision)
{
    cases++;
    unsigned long *launches = fake_cuda_counter("fake_cuda_graph_launches");
    const unsigned long before = launches ? *launches : 0;
    const double tolerance = strcmp(precision, "fp16") ? TOLERANCE : TOLERANCE_FP16;
    PerceptNet *a, *b;
    int ok = inference_pair(arch, precision, &a, &b);
    const size_t nin = (size_t)n * c * h * w;
    double worst = 0;
    for (int pass = 0; ok && pass < 6; pass++) {
        if (pass == 3) { /* new weights, the same on both sides */
            size_t np;
            float *pa = percept_net_params(a, &np), *pb = percept_net_params(b, &np);
            for (size_t i = 0; i < np; i++)
                pa[i] = pb[i] = pa[i] * -0.75f;
        }
        if (pass == 4 && launches && *launches - before != 3) {
            printf("FAIL %s: %lu graph launches in 4 passes, expected 3\n", name,
                   *launches - before);
            ok = -1;
            break;
        }
        if (pass == 4)
            setenv("PERCEPT_CUDA_GRAPHS", "0", 1);
        float *x = randoms(nin, 100 + pass, -1, 1);
        PerceptTensor in = {n, c, h, w, x}, ya, yb;
        ok = !percept_net_forward(a, &in, &ya) && !percept_net_forward(b, &in, &yb);
        double e = ok ? nerr(ya.data, yb.data, percept_tensor_numel(&ya)) : 0;
        worst = e > worst || isnan(e) ? e : worst;
        free(x);
    }
    unsetenv("PERCEPT_CUDA_PRECISION");
    unsetenv("PERCEPT_CUDA_GRAPHS");
    if (ok == 1 && launches && *launches - before != 3) {
        printf("FAIL %s: graph launches with PERCEPT_CUDA_GRAPHS=0\n", name);
        ok = -1;
    }
    if (ok == 0)
        printf("FAIL %s: %s\n", name, percept_error());
    else if (ok == 1 && !(worst <= tolerance))
        printf("FAIL %s: normalised error %.3g (tolerance %.0e)\n", name, worst, tolerance);
    else if (ok == 1)
        printf("ok   %s: worst normalised error %.2g over 6 passes%s\n", name, worst,
               launches ? ", 3 of them graph launches" : "");
    failures += ok != 1 || !(worst <= tolerance);
    percept_net_free(a);
    percept_net_free(b);
}

/* A network of one op after a conv (so the op's input gradient reaches parameters), for an
 * h × w input: FIN in the op's JSON stands for the conv's features per sample, cout·h·w. */
static void op_arch(char *arch, size_t size, const char *name, const char *node_json, int cout,
                    int h, int w)
{
    char node[1024], fin[16];
    const char *at = strstr(node_json, "FIN");
    snprintf(fin, sizeof fin, "%d", cout * h * w);
    if (at)
        snprintf(node, sizeof node, "%.*s%s%s", (int)(at - node_json), node_json, fin, at + 3);
    else
        snprintf(node, sizeof node, "%s", node_json);
    snprintf(arch, size,
             "{\"format\":1,\"name\":\"%s\",\"nodes\":["
             "{\"name\":\"c\",\"op\":\"conv2d\",\"in\":[\"input\"],\"cin\":3,\"cout\":%d,\"k\":3,\"pad\":1},"
             "%s]}",
             name, cout, node);
}

static void check_op(const char *name, const char *node_json, int cout, int n, int h, int w,
                     int training)
{
    char arch[2048];
    op_arch(arch, sizeof arch, name, node_json, cout, h, w);
    check(name, arch, n, 3, h, w, training);
}

/* check_op at three sizes: odd, wide, and small for the windows and the batch */
static void check_op_shapes(const char *name, const char *node_json, int cout, int training)
{
    char more[200];
    check_op(name, node_json, cout, 2, 17, 23, training);
    snprintf(more, sizeof more, "%s at 1×67×131", name);
    check_op(more, node_json, cout, 1, 67, 131, training);
    snprintf(more, sizeof more, "%s at 3×5×7", name);
    check_op(more, node_json, cout, 3, 5, 7, training);
}

/* Instance norm with fixed statistics (the ops' tiles of a style network, with the whole
 * image's): six passes on new inputs against the CPU's — the second captured as a CUDA
 * graph, the others replayed — the statistics fixed anew before the fourth (a replay must
 * read them anew); after the first pass the host touches GPU memory not once (the fake
 * runtime's count: the statistics go up by a copy, the output comes down by one). */
static void check_fixed_stats(const char *name, const char *arch, int n, int h, int w,
                              const char *precision)
{
    cases++;
    const double tolerance = strcmp(precision, "fp16") ? TOLERANCE : TOLERANCE_FP16;
    unsigned long *touches = fake_cuda_counter("fake_cuda_host_touches"), before = 0;
    unsigned long *launches = fake_cuda_counter("fake_cuda_graph_launches");
    const unsigned long launched = launches ? *launches : 0;
    PerceptNet *a, *b;
    int ok = inference_pair(arch, precision, &a, &b);
    const size_t nin = (size_t)n * 3 * h * w;
    size_t ns = ok ? percept_net_norm_stats_floats(a) : 0;
    float *stats = malloc(sizeof(float) * (ns ? ns : 1));
    double worst = 0;
    for (int pass = 0; ok && pass < 6; pass++) {
        if (pass == 0 || pass == 3) { /* statistics of another image, from the CPU */
            float *s = randoms(nin, 300 + pass, 0, 2);
            PerceptTensor t = {n, 3, h, w, s}, y;
            percept_net_fix_norm_stats(a, NULL);
            ok = !percept_net_forward(a, &t, &y);
            memcpy(stats, percept_net_norm_stats(a), sizeof(float) * ns);
            if (pass == 0) { /* the GPU's own, as the ops take them from a whole image */
                percept_net_fix_norm_stats(b, NULL);
                ok = ok && !percept_net_forward(b, &t, &y);
                double e = ok ? nerr(stats, percept_net_norm_stats(b), ns) : 0;
                worst = e > worst || isnan(e) ? e : worst;
            }
            ok = ok && !percept_net_fix_norm_stats(a, stats) && !percept_net_fix_norm_stats(b, stats);
            free(s);
        }
        float *x = randoms(nin, 200 + pass, -1, 1), *got = NULL;
        PerceptTensor in = {n, 3, h, w, x}, ya, yb;
        if (pass == 1 && touches)
            before = *touches;
        /* the GPU's output read as the ops read it: downloaded */
        ok = ok && !percept_net_forward(a, &in, &ya) && !percept_net_forward(b, &in, &yb) &&
             (got = malloc(sizeof(float) * percept_tensor_numel(&yb))) &&
             !percept_copy(got, yb.data, percept_tensor_numel(&yb));
        double e = ok ? nerr(ya.data, got, percept_tensor_numel(&ya)) : 0;
        worst = e > worst || isnan(e) ? e : worst;
        free(x);
        free(got);
    }
    unsetenv("PERCEPT_CUDA_PRECISION");
    const unsigned long touched = touches ? *touches - before : 0;
    const unsigned long graphs = launches ? *launches - launched : 0;
    if (!ok) {
        printf("FAIL %s: %s\n", name, percept_error());
        failures++;
    } else if (!(worst <= tolerance) || touched || (launches && graphs != 5)) {
        printf("FAIL %s: normalised error %.3g (tolerance %.0e), %lu host touches, %lu graph "
               "launches (5 expected)\n", name, worst, tolerance, touched, graphs);
        failures++;
    } else {
        printf("ok   %s: normalised error %.2g%s\n", name, worst,
               touches ? ", the last 5 passes as a CUDA graph, no host touches after the first"
                       : "");
    }
    free(stats);
    percept_net_free(a);
    percept_net_free(b);
}

/* ---- the losses' and Adam's arithmetic (core/nets/math.c) on both sides ----------------- */

/* Whether p is GPU memory, which the losses' arithmetic then uses */
static int on_gpu(const void *p)
{
    const PerceptBackend *b = backend_cuda_loaded();
    return b && b->owns(p);
}

/* n floats of x in memory of the backend new networks get */
static float *copy_to_device(const float *x, size_t n)
{
    float *p = percept_buffer_new(n);
    if (p)
        memcpy(p, x, sizeof(float) * n);
    return p;
}

/* The losses of specs ("spec=weight;…") made on the current device: the style losses
 * compare with style, the others (but tv) with target. */
static int make_losses(const char *specs, const PerceptTensor *target, const PerceptTensor *style,
                       PerceptLoss **l, double *w)
{
    char buf[512], *save = NULL;
    int count = 0;
    snprintf(buf, sizeof buf, "%s", specs);
    for (char *it = strtok_r(buf, ";", &save); it; it = strtok_r(NULL, ";", &save)) {
        char *eq = strchr(it, '=');
        *eq = 0;
        w[count] = atof(eq + 1);
        if (!(l[count] = percept_loss_new(it)))
            return -1;
        const int is_style = !strncmp(it, "style", 5), is_tv = !strcmp(it, "tv");
        if (!is_tv && percept_loss_set_target(l[count], is_style ? style : target))
            return -1;
        count++;
    }
    return count;
}

static void free_losses(PerceptLoss **l, int count)
{
    for (int i = 0; i < count; i++)
        percept_loss_free(l[i]);
}

/* knife_edges summed over the loss networks of both sides */
static int loss_knife_edges(PerceptLoss **la, PerceptLoss **lb, int count)
{
    int edges = 0;
    for (int i = 0; i < count; i++) {
        PerceptNet *a = loss_network(la[i]), *b = loss_network(lb[i]);
        edges += a && b && a->plan.valid && b->plan.valid ? knife_edges(a, b) : 0;
    }
    return edges;
}

/* values[i] of both sides, relative to the CPU's */
static double value_error(const double *a, const double *b, int count)
{
    double worst = 0;
    for (int i = 0; i < count; i++) {
        const double e = fabs(b[i] - a[i]) / (fabs(a[i]) > 1e-30 ? fabs(a[i]) : 1e-30);
        worst = e > worst || isnan(e) ? e : worst;
    }
    return worst;
}

/* Losses on an image in GPU memory: values and the gradient with respect to the image (into
 * a GPU buffer poisoned first) against the CPU's, and the arithmetic must have run there. */
static void check_losses(const char *name, const char *specs, int n, int h, int w)
{
    cases++;
    const size_t nx = (size_t)n * 3 * h * w;
    float *x = NULL, *t = randoms(nx, 22, 0, 1);
    /* a style image unlike x (darker, less contrast): two noise images alike would have
     * nearly equal Gram matrices, whose difference is then mostly the sides' rounding */
    float *s = randoms((size_t)3 * 18 * 22, 23, 0.1f, 0.4f), *ga = malloc(sizeof(float) * nx);
    PerceptTensor target = {n, 3, h, w, t}, style = {1, 3, 18, 22, s};
    PerceptLoss *la[8] = {0}, *lb[8] = {0};
    double wa[8], wb[8], va[8] = {0}, vb[8] = {0}, vc[8] = {0};
    int ca = -1, cb = -1, rc = -1;
    float *xb = NULL, *gb = NULL;
    if (!percept_set_device("cpu"))
        ca = make_losses(specs, &target, &style, la, wa);
    if (ca > 0 && !percept_set_device("cuda"))
        cb = make_losses(specs, &target, &style, lb, wb);
    /* an image on which the loss networks' ReLUs and max pools decide clearly (check) */
    for (int draw = 0; cb == ca && draw < 4; draw++) {
        free(x);
        percept_buffer_free(xb);
        percept_buffer_free(gb);
        x = randoms(nx, 21 + 1000 * draw, 0, 1);
        if (!(xb = copy_to_device(x, nx)) || !(gb = percept_buffer_new(nx)))
            break;
        poison(gb, nx);
        PerceptTensor in_a = {n, 3, h, w, x}, in_b = {n, 3, h, w, xb};
        rc = percept_losses_eval(la, wa, ca, &in_a, va, ga) ||
             percept_losses_eval(lb, wb, cb, &in_b, vb, gb) ||
             percept_losses_eval(lb, wb, cb, &in_b, vc, NULL); /* values only */
        if (rc || !loss_knife_edges(la, lb, ca))
            break;
    }
    /* once more, the host's touches of GPU memory counted (the fake runtime's): none when
     * everything, the losses' networks included, runs on the GPU */
    unsigned long *touches = fake_cuda_counter("fake_cuda_host_touches"), touched = 0;
    double ve = 0, vd[8];
    if (!rc) {
        const unsigned long before = touches ? *touches : 0;
        PerceptTensor in_b = {n, 3, h, w, xb};
        rc = percept_losses_eval(lb, wb, cb, &in_b, vd, gb);
        touched = touches ? *touches - before : 0;
        ve = value_error(vb, vd, cb);
    }
    if (rc) {
        printf("FAIL %s: %s\n", name, percept_error());
        failures++;
    } else {
        const double ev = value_error(va, vb, ca), eg = nerr(ga, gb, nx);
        const double ev2 = value_error(va, vc, ca);
        const int gpu = on_gpu(xb) && on_gpu(gb) && MATH_FOR(xb, gb) == backend_cuda_loaded()->math;
        const int ok = ev <= TOLERANCE && ev2 <= TOLERANCE && eg <= TOLERANCE && gpu &&
                       !touched && ve == 0;
        printf("%s %s: values %.2g (without gradient %.2g), image gradient %.2g%s%s\n",
               ok ? "ok  " : "FAIL", name, ev, ev2, eg, gpu ? "" : ", not on the GPU",
               touched ? ", the host touched GPU memory" : ve ? ", another value again" : "");
        failures += !ok;
    }
    free_losses(la, ca);
    free_losses(lb, cb);
    percept_buffer_free(xb);
    percept_buffer_free(gb);
    free(x);
    free(t);
    free(s);
    free(ga);
    percept_set_device("cuda");
}

/* Three Adam steps with weight decay on parameters and moments in GPU memory, against the
 * host's: the same formula with the same roundings (no fused multiply-adds). */
static void check_adam(void)
{
    cases++;
    const size_t n = 4099;
    const PerceptAdamConfig cfg = {1e-2f, 0.9f, 0.999f, 1e-8f, 0.01f};
    PerceptAdam a = {0}, b = {0};
    float *pa = randoms(n, 31, -1, 1), *pb = copy_to_device(pa, n), *gb = percept_buffer_new(n);
    int rc = !pb || !gb || percept_set_device("cpu") || percept_adam_init(&a, n, cfg) ||
             percept_set_device("cuda") || percept_adam_init(&b, n, cfg);
    for (int step = 0; step < 3 && !rc; step++) {
        float *g = randoms(n, 32 + step, -1, 1);
        memcpy(gb, g, sizeof(float) * n);
        rc = percept_adam_step(&a, pa, g) || percept_adam_step(&b, pb, gb);
        free(g);
    }
    if (rc) {
        printf("FAIL Adam: %s\n", percept_error());
        failures++;
    } else {
        const double e = nerr(pa, pb, n), em = nerr(a.m, b.m, n), ev = nerr(a.v, b.v, n);
        const int gpu = on_gpu(b.m) && on_gpu(pb);
        const int ok = e <= TOLERANCE && em <= TOLERANCE && ev <= TOLERANCE && gpu &&
                       a.step == 3 && b.step == 3;
        printf("%s Adam, 3 steps with weight decay: parameters %.2g, m %.2g, v %.2g%s\n",
               ok ? "ok  " : "FAIL", e, em, ev, gpu ? "" : ", not on the GPU");
        failures += !ok;
    }
    percept_adam_free(&a);
    percept_adam_free(&b);
    free(pa);
    percept_buffer_free(pb);
    percept_buffer_free(gb);
}

/* One training step of Johnson's style network, as the trainer takes it: the network's
 * output goes to the loss network without leaving the GPU, the losses' gradient comes back
 * into a GPU buffer, backward, Adam. The loss values, the image gradient and the parameter
 * gradients against the CPU's. Then another step, from a batch in host memory (as the
 * trainer's) and from one in GPU memory, during which, under the fake runtime, the host must
 * not touch GPU memory at all (on a GPU each touch would migrate pages:
 * fake_cuda_host_touches; the batch goes up as a copy). */
static void check_training_step(const char *arch, int n, int h, int w)
{
    cases++;
    const char *specs = "feat:vgg16:relu2_2=1;style:vgg16:relu1_2,relu2_2=5;tv=0.001";
    const size_t nx = (size_t)n * 3 * h * w;
    float *x = randoms(nx, 41, 0, 1), *s = randoms((size_t)3 * 20 * 18, 42, 0.1f, 0.4f);
    PerceptTensor in = {n, 3, h, w, x}, style = {1, 3, 20, 18, s}, ya = {0}, yb = {0};
    PerceptNet *na = make("cpu", arch, 1), *nb = make("cuda", arch, 1);
    PerceptLoss *la[4] = {0}, *lb[4] = {0};
    double wa[4], wb[4], va[4] = {0}, vb[4] = {0};
    float *ga = malloc(sizeof(float) * nx), *gb = percept_buffer_new(nx);
    PerceptAdam adam = {0};
    int ca = -1, cb = -1, rc = !na || !nb || !ga || !gb;
    rc = rc || percept_set_device("cpu") || (ca = make_losses(specs, &in, &style, la, wa)) < 0 ||
         percept_set_device("cuda") || (cb = make_losses(specs, &in, &style, lb, wb)) < 0;
    /* an input on which every ReLU and max pool, the generator's and the loss network's,
     * decides clearly (check; the loss network's see the two generators' outputs, which
     * differ by rounding, so edges are likelier there and a small image keeps its units
     * few); the content target is the input, as in stylisation */
    for (int draw = 0; !rc && draw < 12; draw++) {
        for (size_t i = 0; i < nx; i++)
            x[i] = percept_rng_uniform(41 + 1000 * draw, i);
        poison(gb, nx);
        rc = percept_loss_set_target(la[0], &in) || percept_loss_set_target(lb[0], &in) ||
             percept_net_forward(na, &in, &ya) || percept_net_forward(nb, &in, &yb) ||
             percept_losses_eval(la, wa, ca, &ya, va, ga) ||
             percept_losses_eval(lb, wb, cb, &yb, vb, gb);
        if (rc || (!knife_edges(na, nb) && !loss_knife_edges(la, lb, ca)))
            break;
    }
    size_t count = 0;
    rc = rc || percept_net_backward(na, ga, NULL) || percept_net_backward(nb, gb, NULL) ||
         (percept_net_params(nb, &count),
          percept_adam_init(&adam, count, (PerceptAdamConfig){1e-3f, 0.9f, 0.999f, 1e-8f, 0})) ||
         percept_adam_step(&adam, percept_net_params(nb, &count), percept_net_grads(nb, &count));
    size_t pc;
    double ev = 0, eg = 0, ep = 0, v2[4];
    int gpu = 0;
    float *xg = rc ? NULL : copy_to_device(x, nx);
    unsigned long *touches = fake_cuda_counter("fake_cuda_host_touches"), touched = 0;
    if (xg) {
        ev = value_error(va, vb, ca);
        eg = nerr(ga, gb, nx);
        const float *pga = percept_net_grads(na, &pc), *pgb = percept_net_grads(nb, &pc);
        ep = nerr(pga, pgb, pc);
        gpu = on_gpu(yb.data) && on_gpu(gb) && on_gpu(adam.m) &&
              MATH_FOR(yb.data, gb) == backend_cuda_loaded()->math;
        const unsigned long before = touches ? *touches : 0;
        for (int k = 0; k < 2 && !rc; k++) {
            PerceptTensor batch = {n, 3, h, w, k ? xg : x};
            percept_net_zero_grads(nb);
            rc = percept_loss_set_target(lb[0], &batch) || percept_net_forward(nb, &batch, &yb) ||
                 percept_losses_eval(lb, wb, cb, &yb, v2, gb) ||
                 percept_net_backward(nb, gb, NULL) ||
                 percept_adam_step(&adam, percept_net_params(nb, &count),
                                   percept_net_grads(nb, &count));
        }
        touched = touches ? *touches - before : 0;
    }
    if (rc || !xg) {
        printf("FAIL training step: %s\n", percept_error());
        failures++;
    } else {
        const int ok = ev <= TOLERANCE && eg <= TOLERANCE && ep <= TOLERANCE && gpu && !touched;
        char counted[80] = "";
        if (touches)
            snprintf(counted, sizeof counted, "; the next two touched GPU memory from the host "
                     "%lu times", touched);
        printf("%s training step (johnson, feat + style + tv, Adam): values %.2g, image gradient "
               "%.2g, parameter gradients %.2g%s%s\n", ok ? "ok  " : "FAIL", ev, eg, ep,
               gpu ? "" : ", not on the GPU", counted);
        failures += !ok;
    }
    percept_buffer_free(xg);
    percept_adam_free(&adam);
    free_losses(la, ca);
    free_losses(lb, cb);
    percept_net_free(na);
    percept_net_free(nb);
    percept_buffer_free(gb);
    free(ga);
    free(x);
    free(s);
    percept_set_device("cuda");
}

/* --losses: only the losses, Adam and the training step */
int main(int argc, char **argv)
{
    const int all = !(argc > 1 && !strcmp(argv[1], "--losses"));
    if (percept_set_device("cuda")) {
        const char *e = percept_error();
        if (strstr(e, "no usable GPU") || strstr(e, "no GPU found")) {
            printf("test-cuda-parity: %s: skipped\n", e);
            return 77;
        }
        printf("FAIL: the CUDA backend does not load: %s\n", e);
        return 1;
    }
    /* each op family, odd sizes */
    static const struct { const char *name, *node; int cout; } ops[] = {
        {"relu", "{\"name\":\"o\",\"op\":\"relu\"}", 5},
        {"leaky_relu", "{\"name\":\"o\",\"op\":\"leaky_relu\",\"alpha\":0.2}", 5},
        {"tanh", "{\"name\":\"o\",\"op\":\"tanh\"}", 5},
        {"scaled_tanh", "{\"name\":\"o\",\"op\":\"scaled_tanh\",\"scale\":150,\"shift\":127.5}", 5},
        {"sigmoid", "{\"name\":\"o\",\"op\":\"sigmoid\"}", 5},
        {"cos", "{\"name\":\"o\",\"op\":\"cos\",\"scale\":0.0625}", 5},
        {"add", "{\"name\":\"r\",\"op\":\"relu\"},{\"name\":\"o\",\"op\":\"add\",\"in\":[\"c\",\"r\"]}", 5},
        {"upsample_nearest", "{\"name\":\"o\",\"op\":\"upsample_nearest\",\"factor\":2}", 5},
        {"pixel_shuffle", "{\"name\":\"o\",\"op\":\"pixel_shuffle\",\"r\":2}", 12},
        {"instance_norm", "{\"name\":\"o\",\"op\":\"instance_norm\",\"c\":6}", 6},
        {"conv2d 5x5 zero pad, stride 2", "{\"name\":\"o\",\"op\":\"conv2d\",\"cin\":4,\"cout\":7,\"k\":5,\"stride\":2,\"pad\":2}", 4},
        {"conv2d 9x9 reflect pad", "{\"name\":\"o\",\"op\":\"conv2d\",\"cin\":4,\"cout\":3,\"k\":9,\"pad\":4,\"pad_mode\":\"reflect\"}", 4},
        /* phased (kernels/phases.cu: k ≥ 5, stride 1, ≤ 4 channels on a side): from RGB */
        {"conv2d 9x9 reflect pad, 3 → 8", "{\"name\":\"o\",\"op\":\"conv2d\",\"cin\":3,\"cout\":8,\"k\":9,\"pad\":4,\"pad_mode\":\"reflect\"}", 3},
        {"conv2d 7x7 zero pad, 4 → 2", "{\"name\":\"o\",\"op\":\"conv2d\",\"cin\":4,\"cout\":2,\"k\":7,\"pad\":3}", 4},
        {"conv2d 3x3 reflect, no bias", "{\"name\":\"o\",\"op\":\"conv2d\",\"cin\":4,\"cout\":6,\"k\":3,\"pad\":1,\"pad_mode\":\"reflect\",\"bias\":false}", 4},
        /* no padding, stride 2: the last row or column of some inputs is never read */
        {"conv2d 5x5 stride 2, no padding", "{\"name\":\"o\",\"op\":\"conv2d\",\"cin\":4,\"cout\":5,\"k\":5,\"stride\":2}", 4},
        {"conv2d 1x1", "{\"name\":\"o\",\"op\":\"conv2d\",\"cin\":4,\"cout\":9,\"k\":1}", 4},
        {"conv_transpose2d", "{\"name\":\"o\",\"op\":\"conv_transpose2d\",\"cin\":4,\"cout\":3,\"k\":3,\"stride\":2,\"pad\":1,\"output_pad\":1}", 4},
        {"conv_transpose2d 4x4 (bed of nails)", "{\"name\":\"o\",\"op\":\"conv_transpose2d\",\"cin\":4,\"cout\":5,\"k\":4,\"stride\":2,\"pad\":1}", 4},
        {"channel_affine", "{\"name\":\"o\",\"op\":\"channel_affine\",\"scale\":[0.5,-2,3.25,0.001,255],\"shift\":[-0.485,0.456,10,0,-1]}", 5},
        {"channel_affine, one constant", "{\"name\":\"o\",\"op\":\"channel_affine\",\"scale\":255,\"shift\":-0.5}", 5},
        {"max_pool 2x2", "{\"name\":\"o\",\"op\":\"max_pool\",\"k\":2}", 4},
        {"max_pool 3x3 stride 2 pad 1", "{\"name\":\"o\",\"op\":\"max_pool\",\"k\":3,\"stride\":2,\"pad\":1}", 4},
        {"max_pool 5x5 stride 3 pad 2", "{\"name\":\"o\",\"op\":\"max_pool\",\"k\":5,\"stride\":3,\"pad\":2}", 4},
        /* after a ReLU many windows are all zeros: the first in scan order must win */
        {"max_pool 2x2 stride 1 pad 1 after relu (ties)", "{\"name\":\"r\",\"op\":\"relu\"},{\"name\":\"o\",\"op\":\"max_pool\",\"k\":2,\"stride\":1,\"pad\":1}", 4},
        {"avg_pool 2x2", "{\"name\":\"o\",\"op\":\"avg_pool\",\"k\":2}", 4},
        {"avg_pool 3x3 stride 2 pad 1", "{\"name\":\"o\",\"op\":\"avg_pool\",\"k\":3,\"stride\":2,\"pad\":1}", 4},
        {"avg_pool 3x3 stride 1 pad 1", "{\"name\":\"o\",\"op\":\"avg_pool\",\"k\":3,\"stride\":1,\"pad\":1}", 4},
        {"avg_pool 5x5 stride 3 pad 2", "{\"name\":\"o\",\"op\":\"avg_pool\",\"k\":5,\"stride\":3,\"pad\":2}", 4},
        {"global_avg_pool", "{\"name\":\"o\",\"op\":\"global_avg_pool\"}", 4},
        {"concat of 2", "{\"name\":\"r\",\"op\":\"relu\"},{\"name\":\"o\",\"op\":\"concat\",\"in\":[\"c\",\"r\"]}", 4},
        {"concat of 3", "{\"name\":\"r\",\"op\":\"relu\"},{\"name\":\"t\",\"op\":\"tanh\",\"in\":[\"c\"]},{\"name\":\"o\",\"op\":\"concat\",\"in\":[\"c\",\"r\",\"t\"]}", 4},
        /* a source read three times (its gradient direct, through tmp, then by a rerun) and
         * the network input (its gradient staged for host memory) */
        {"concat of 5 with repeats and the input", "{\"name\":\"r\",\"op\":\"relu\"},{\"name\":\"o\",\"op\":\"concat\",\"in\":[\"r\",\"c\",\"r\",\"input\",\"r\"]}", 4},
        {"batch_norm, eval", "{\"name\":\"o\",\"op\":\"batch_norm\",\"c\":6}", 6},
        {"batch_norm, eval, no affine", "{\"name\":\"o\",\"op\":\"batch_norm\",\"c\":6,\"affine\":false}", 6},
        /* an op the CUDA backend leaves to the CPU for now: the fallback must agree too */
        {"binary (on the CPU)", "{\"name\":\"o\",\"op\":\"binary\"}", 4},
        /* the conv's 4 channels flattened per sample (4·h·w features, set by check_op) */
        {"linear", "{\"name\":\"o\",\"op\":\"linear\",\"fin\":FIN,\"fout\":7}", 4},
        {"linear, no bias", "{\"name\":\"o\",\"op\":\"linear\",\"fin\":FIN,\"fout\":3,\"bias\":false}", 4},
        {"reshape", "{\"name\":\"o\",\"op\":\"reshape\",\"c\":FIN,\"h\":1,\"w\":1}", 4},
        {"dropout (the identity in eval)", "{\"name\":\"o\",\"op\":\"dropout\"}", 4},
    };
    /* and in training mode (batch norm: batch statistics, running statistics updated) */
    static const struct { const char *name, *node; int cout; } training_ops[] = {
        {"batch_norm, training", "{\"name\":\"o\",\"op\":\"batch_norm\",\"c\":6}", 6},
        {"batch_norm, training, no affine, momentum 0.3", "{\"name\":\"o\",\"op\":\"batch_norm\",\"c\":6,\"affine\":false,\"momentum\":0.3}", 6},
    };
    for (size_t i = 0; i < sizeof ops / sizeof ops[0] && all; i++)
        check_op_shapes(ops[i].name, ops[i].node, ops[i].cout, 0);
    for (size_t i = 0; i < sizeof training_ops / sizeof training_ops[0] && all; i++)
        check_op_shapes(training_ops[i].name, training_ops[i].node, training_ops[i].cout, 1);
    /* inference, fp32 and fp16: every op but binary (a threshold: half's rounding flips
     * some of its outputs by 1); reparam, a copy of the means without training, for the CPU
     * fallback. A ReLU straight after the conv is fused into it. */
    char arch1[2048], name1[160];
    for (size_t i = 0; i < sizeof ops / sizeof ops[0] && all; i++) {
        const int cpu_op = strstr(ops[i].node, "\"binary\"") != NULL;
        const char *node = cpu_op ? "{\"name\":\"o\",\"op\":\"reparam\"}" : ops[i].node;
        const int fusions = !strcmp(ops[i].name, "relu");
        op_arch(arch1, sizeof arch1, ops[i].name, node, ops[i].cout, 17, 23);
        snprintf(name1, sizeof name1, "%s", cpu_op ? "reparam (on the CPU)" : ops[i].name);
        check_inference_both(name1, arch1, 2, 3, 17, 23, fusions);
        /* planes wider than a block, for the kernels that reduce over them */
        if (strstr(name1, "norm") || strstr(name1, "global")) {
            char wide[200];
            snprintf(wide, sizeof wide, "fp16 inference, %s at 1×67×131", name1);
            op_arch(arch1, sizeof arch1, ops[i].name, node, ops[i].cout, 67, 131);
            check_inference(wide, arch1, 1, 3, 67, 131, "fp16", fusions);
        }
    }
    /* each fusion of the inference plan (plan.c) */
    static const struct { const char *name, *node; int cout, fusions; } fused[] = {
        {"conv, batch norm, relu: the norm folded into the conv's weights, the relu its epilogue",
         "{\"name\":\"b\",\"op\":\"batch_norm\",\"c\":6},{\"name\":\"o\",\"op\":\"relu\"}", 6, 2},
        {"upsampling into a reflect-padded conv: folded into its input",
         "{\"name\":\"u\",\"op\":\"upsample_nearest\",\"factor\":2},{\"name\":\"o\",\"op\":\"conv2d\",\"cin\":4,\"cout\":5,\"k\":3,\"pad\":1,\"pad_mode\":\"reflect\"}", 4, 1},
        {"conv + the network input: an epilogue operand that is the input",
         "{\"name\":\"o\",\"op\":\"add\",\"in\":[\"c\",\"input\"]}", 3, 1},
        {"instance norm, + conv, relu: both its epilogue",
         "{\"name\":\"n\",\"op\":\"instance_norm\",\"c\":5},{\"name\":\"a\",\"op\":\"add\",\"in\":[\"n\",\"c\"]},{\"name\":\"o\",\"op\":\"relu\"}", 5, 2},
        {"upsampling into a zero-padded conv",
         "{\"name\":\"u\",\"op\":\"upsample_nearest\",\"factor\":2},{\"name\":\"o\",\"op\":\"conv2d\",\"cin\":4,\"cout\":5,\"k\":3,\"pad\":1}", 4, 1},
        {"phased conv 9x9, + the network input, relu: its epilogue",
         "{\"name\":\"p\",\"op\":\"conv2d\",\"cin\":3,\"cout\":3,\"k\":9,\"pad\":4,\"pad_mode\":\"reflect\"},{\"name\":\"a\",\"op\":\"add\",\"in\":[\"p\",\"input\"]},{\"name\":\"o\",\"op\":\"relu\"}", 3, 2},
        {"upsampling into a phased conv 9x9",
         "{\"name\":\"u\",\"op\":\"upsample_nearest\",\"factor\":2},{\"name\":\"o\",\"op\":\"conv2d\",\"cin\":4,\"cout\":3,\"k\":9,\"pad\":4,\"pad_mode\":\"reflect\"}", 4, 1},
        {"relu, batch norm, + conv: a batch norm's epilogue",
         "{\"name\":\"r\",\"op\":\"relu\"},{\"name\":\"b\",\"op\":\"batch_norm\",\"c\":6},{\"name\":\"o\",\"op\":\"add\",\"in\":[\"b\",\"c\"]}", 6, 1},
    };
    for (size_t i = 0; i < sizeof fused / sizeof fused[0] && all; i++) {
        op_arch(arch1, sizeof arch1, fused[i].name, fused[i].node, fused[i].cout, 17, 23);
        check_inference_both(fused[i].name, arch1, 2, 3, 17, 23, fused[i].fusions);
    }
    /* phased convolutions at the other settings: off, 3 and 4 phases per axis (2, the
     * default, above) */
    static const char *const phase_settings[] = {"0", "3", "4"};
    static const char *const phased = "{\"name\":\"o\",\"op\":\"conv2d\",\"cin\":4,\"cout\":3,\"k\":9,\"pad\":4,\"pad_mode\":\"reflect\"}";
    for (size_t i = 0; i < sizeof phase_settings / sizeof phase_settings[0] && all; i++) {
        setenv("PERCEPT_CUDA_PHASES", phase_settings[i], 1);
        snprintf(name1, sizeof name1, "PERCEPT_CUDA_PHASES=%s: conv2d 9x9 reflect pad, 4 → 3",
                 phase_settings[i]);
        check_op_shapes(name1, phased, 4, 0);
        op_arch(arch1, sizeof arch1, name1, phased, 4, 17, 23);
        check_inference_both(name1, arch1, 2, 3, 17, 23, 0);
        unsetenv("PERCEPT_CUDA_PHASES");
    }
    /* convolution algorithms: timed by cuDNN once per shape (the default; the fake runtime
     * counts the timings), or its guesses */
    unsigned long *finds = fake_cuda_counter("fake_cudnn_finds");
    if (all) {
        const unsigned long before = finds ? *finds : 0;
        setenv("PERCEPT_CUDA_ALGOS", "heuristic", 1);
        check_op("PERCEPT_CUDA_ALGOS=heuristic: conv2d 3x3", "{\"name\":\"o\",\"op\":\"conv2d\",\"cin\":4,\"cout\":6,\"k\":3,\"pad\":1}", 4, 2, 17, 23, 0);
        unsetenv("PERCEPT_CUDA_ALGOS");
        if (finds) {
            cases++;
            if (!before || *finds != before) {
                printf("FAIL algorithms timed %lu times before, %lu more with heuristic ones\n",
                       before, *finds - before);
                failures++;
            } else {
                printf("ok   convolution algorithms timed by cuDNN %lu times, none with heuristic ones\n", before);
            }
        }
    }
    /* whole networks */
    char *arch;
    if (!all)
        goto losses;
    arch = percept_arch_johnson(&(PerceptJohnsonOpts){16, 2, 1});
    check("johnson (base 16, 2 blocks), 2×3×64×48", arch, 2, 3, 64, 48, 0);
    check_inference_both("johnson (base 16, 2 blocks), 2×3×64×48", arch, 2, 3, 64, 48, 1);
    check_graphs("CUDA graphs, fp32: johnson", arch, 1, 3, 16, 20, "fp32");
    check_graphs("CUDA graphs, fp16: johnson", arch, 1, 3, 16, 20, "fp16");
    check_fixed_stats("fixed instance-norm statistics, fp32: johnson", arch, 1, 24, 20, "fp32");
    check_fixed_stats("fixed instance-norm statistics, fp16: johnson", arch, 1, 24, 20, "fp16");
    free(arch);
    arch = percept_arch_sr(&(PerceptSrOpts){PERCEPT_SR_JOHNSON, 4, 16, 2, 0, 0, 0});
    check("sr x4 (16 channels), training mode", arch, 2, 3, 24, 20, 1);
    check("sr x4 (16 channels), eval (batch norm's running statistics)", arch, 2, 3, 24, 20, 0);
    check_inference_both("sr x4 (16 channels)", arch, 2, 3, 24, 20, 1);
    free(arch);
    arch = percept_arch_sr(&(PerceptSrOpts){PERCEPT_SR_SHUFFLE, 4, 24, 2, 0, 0, 0});
    check("sr-shuffle x4", arch, 2, 3, 24, 20, 0);
    check_inference_both("sr-shuffle x4", arch, 2, 3, 24, 20, 1);
    input_gradient = 0;
    check("sr-shuffle x4, no input gradient", arch, 2, 3, 24, 20, 1);
    input_gradient = 1;
    free(arch);
    arch = percept_arch_restore(&(PerceptRestoreOpts){16, 2, 0, 0, 0, 0, 0});
    check("restore", arch, 1, 3, 40, 36, 0);
    check_inference_both("restore", arch, 1, 3, 40, 36, 1);
    free(arch);
    arch = percept_arch_vgg16("relu3_3");
    check("vgg16 to relu3_3", arch, 1, 3, 48, 40, 0);
    check_inference_both("vgg16 to relu3_3", arch, 1, 3, 48, 40, 1);
    free(arch);
    arch = percept_arch_deepsim_discriminator(&(PerceptDiscriminatorOpts){64, 8});
    check("deepsim discriminator (width 8), eval", arch, 2, 3, 64, 64, 0);
    check_inference_both("deepsim discriminator (width 8)", arch, 2, 3, 64, 64, 0);
    free(arch);
losses: /* the losses and Adam where the networks are */
    check_losses("mse", "mse=1", 2, 17, 23);
    check_losses("l1", "l1=1", 2, 17, 23);
    check_losses("tv", "tv=1", 2, 17, 23);
    check_losses("mse + l1 + tv, weighted", "mse=0.5;l1=2;tv=0.01", 2, 9, 11);
    check_losses("ssim", "ssim=1", 2, 17, 23);
    check_losses("l1 + ssim-ridgeway (uniform window)", "l1=1;ssim-ridgeway=0.2", 1, 30, 41);
    check_losses("feat relu2_2", "feat:vgg16:relu2_2=1", 2, 24, 20);
    check_losses("style relu1_2,relu2_2,relu3_3 (a style image of another size)",
                 "style:vgg16:relu1_2,relu2_2,relu3_3=1", 2, 24, 20);
    check_losses("feat + style sharing one pass, + tv", "feat:vgg16:relu2_2=1;style:vgg16:relu1_2,relu2_2=3;tv=0.001", 1, 20, 28);
    check_losses("style-mmd (its network: random features, cos, means)",
                 "style-mmd:f64:sigma1:levels3=1", 2, 24, 20);
    check_losses("feat + style-mmd + tv, as the style presets",
                 "feat:vgg16:relu2_2=1;style-mmd:f64:sigma2:levels2=20;tv=0.00001", 1, 26, 22);
    check_adam();
    arch = percept_arch_johnson(&(PerceptJohnsonOpts){16, 2, 1});
    check_training_step(arch, 1, 20, 16);
    free(arch);
    printf("test-cuda-parity: %d of %d cases agree\n", cases - failures, cases);
    return failures ? 1 : 0;
}
