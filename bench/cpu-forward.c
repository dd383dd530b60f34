/* CPU inference benchmark: Johnson's style network and the SR ×4 networks, against the
 * sgemm floor measured in the same run and, when Debian's PyTorch is present, against
 * PyTorch on the same weights, input and thread count.
 *
 *   bench/cpu-forward [--threads N] [--sizes 256,512,1024] [--nets johnson,sr-x4,...] [--quick]
 *                     [--vs-pytorch | --no-pytorch] [--per-layer]
 *
 * "× floor" is the time divided by FLOPs / (sgemm rate): 1.0 would be every FLOP at the
 * speed of a large, square sgemm. Only conv, transposed conv and linear layers are
 * counted; the rest (norms, activations, copies) is memory traffic, not FLOPs.
 *
 * --per-layer runs the planned graph node by node through the backend's forward (what
 * percept_net_forward does) and times every node: where a network loses time against the
 * floor. Output is markdown on stdout; progress and errors go to stderr. */
#include <cblas.h>
#include <math.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "graph.h"
#include "layers.h"
#include "percept/percept.h"
#include "timing.h"
#include "flops.h"

/* OpenBLAS extensions; cblas.h declares them only for OpenBLAS's own header. */
extern char *openblas_get_corename(void);
extern int openblas_get_num_threads(void);
extern void openblas_set_num_threads(int);

#ifndef BENCH_DIR
#define BENCH_DIR "bench"
#endif

#define MAX_RUNS 15

static double median(double *v, int n)
{
    qsort(v, n, sizeof *v, cmp_double);
    return n % 2 ? v[n / 2] : 0.5 * (v[n / 2 - 1] + v[n / 2]);
}

/* GFLOP/s of the best of `reps` row-major products (m×k)·(k×n) with OpenBLAS's own
 * threading at `threads`. The library switches OpenBLAS to one thread once (each OpenMP
 * worker runs its own sgemm), so the setting found is put back afterwards. A first product,
 * not counted, warms the thread pool and the caches up. */
static double gemm_rate(int m, int n, int k, int threads, int reps)
{
    const int saved = openblas_get_num_threads();
    openblas_set_num_threads(threads);
    float *a = malloc(sizeof(float) * m * k), *b = malloc(sizeof(float) * k * n);
    float *c = malloc(sizeof(float) * m * n);
    if (!a || !b || !c) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < (size_t)m * k; i++)
        a[i] = (float)(i % 7) * 0.1f;
    for (size_t i = 0; i < (size_t)k * n; i++)
        b[i] = (float)(i % 5) * 0.1f;
    double best = 1e9;
    for (int r = 0; r <= reps; r++) {
        double t = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a, k, b, n, 0, c, n);
        t = now() - t;
        if (r && t < best)
            best = t;
    }
    free(a);
    free(b);
    free(c);
    openblas_set_num_threads(saved);
    return 2.0 * m * n * k / best / 1e9;
}

/* The floor: best of 4 products 2048³. */
static double sgemm_rate(int threads)
{
    return gemm_rate(2048, 2048, 2048, threads, 4);
}

/* GFLOP/s of `threads` OpenMP workers each running a single-threaded (m×k)·(k×n) product
 * on its own matrices at once (how conv2d runs its chunks); best of `reps` after a warm-up. */
static double gemm_rate_per_thread(int m, int n, int k, int threads, int reps)
{
    const int saved = openblas_get_num_threads();
    openblas_set_num_threads(1);
    float **a = calloc(threads, sizeof *a), **b = calloc(threads, sizeof *b);
    float **c = calloc(threads, sizeof *c);
    for (int t = 0; t < threads; t++) {
        a[t] = malloc(sizeof(float) * m * k), b[t] = malloc(sizeof(float) * k * n);
        c[t] = malloc(sizeof(float) * m * n);
        if (!a[t] || !b[t] || !c[t]) {
            fprintf(stderr, "out of memory\n");
            exit(1);
        }
        for (size_t i = 0; i < (size_t)m * k; i++)
            a[t][i] = (float)(i % 7) * 0.1f;
        for (size_t i = 0; i < (size_t)k * n; i++)
            b[t][i] = (float)(i % 5) * 0.1f;
    }
    double best = 1e9;
    for (int r = 0; r <= reps; r++) {
        double t0 = now();
#pragma omp parallel for num_threads(threads) schedule(static, 1)
        for (int t = 0; t < threads; t++)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, m, n, k, 1, a[t], k, b[t], n, 0,
                        c[t], n);
        double t1 = now() - t0;
        if (r && t1 < best)
            best = t1;
    }
    for (int t = 0; t < threads; t++) {
        free(a[t]);
        free(b[t]);
        free(c[t]);
    }
    free(a);
    free(b);
    free(c);
    openblas_set_num_threads(saved);
    return 2.0 * threads * m * n * k / best / 1e9;
}

/* The GEMM a conv node's im2col lowering multiplies (weights cout × cin·k², columns
 * cin·k² × positions) on ready-made matrices, positions split between the threads as
 * conv2d splits them, each thread a single-threaded sgemm: what the layer would run at if
 * lowering, packing and chunking cost nothing. At most 8192 positions per thread (memory). */
static double node_gemm_rate(PerceptNet *net, const Node *nd, int threads)
{
    Shape in = net_in_shape(net, nd, 0);
    int m, k, n;
    if (nd->op == OP_CONV2D) {
        m = nd->cout, k = nd->cin * nd->k * nd->k, n = nd->out.h * nd->out.w;
    } else if (nd->op == OP_CONV_TRANSPOSE2D) {
        m = nd->cout * nd->k * nd->k, k = nd->cin, n = in.h * in.w;
    } else if (nd->op == OP_LINEAR) {
        m = nd->cout, k = nd->cin, n = nd->out.n;
    } else
        return 0;
    n = (n + threads - 1) / threads;
    n = n > 8192 ? 8192 : n;
    return gemm_rate_per_thread(m, n, k, threads, 3);
}


/* ---- per-layer timing ---------------------------------------------------------------- */

static void node_label(char *buf, size_t size, PerceptNet *net, const Node *nd)
{
    Shape in = net_in_shape(net, nd, 0);
    if (nd->op == OP_CONV2D || nd->op == OP_CONV_TRANSPOSE2D)
        snprintf(buf, size, "%s %d→%d %d×%d s%d%s at %d²", op_names[nd->op], nd->cin, nd->cout,
                 nd->k, nd->k, nd->stride, nd->reflect ? " reflect" : "", in.h);
    else
        snprintf(buf, size, "%s %d ch at %d²", op_names[nd->op], nd->out.c, nd->out.h);
}

typedef struct {
    char name[96], label[160];
    int c, h, w;
    double time, gflop;
} Row;

typedef struct {
    char label[160];
    int count;
    double time, gflop, gemm_rate;
} Group;

/* One case's per-layer timings, printed after every case has run (against the final floor). */
typedef struct {
    char title[128];
    int reps, n_rows, n_groups;
    Row *rows;
    Group *groups;
    double total, total_gflop;
} LayerReport;

static int cmp_group(const void *a, const void *b)
{
    double x = ((const Group *)a)->time, y = ((const Group *)b)->time;
    return (x < y) - (x > y); /* descending */
}

/* Times every node `reps` times (median) after a forward has planned the network, and
 * groups nodes of the same op and geometry (measuring each conv group's GEMM-shape rate). */
static void per_layer(LayerReport *rep, PerceptNet *net, const float *x, size_t nin, int reps,
                      int threads)
{
    int n = net->n_nodes;
    double *t = calloc((size_t)n * reps, sizeof *t);
    rep->rows = calloc(n, sizeof *rep->rows);
    rep->groups = calloc(n, sizeof *rep->groups);
    if (!t || !rep->rows || !rep->groups) {
        fprintf(stderr, "out of memory\n");
        exit(1);
    }
    rep->reps = reps;
    rep->n_rows = n;
    for (int r = 0; r < reps; r++) {
        /* as percept_net_forward: the input copy, then the nodes in order */
        memcpy(net->plan.act, x, nin * sizeof(float));
        for (int i = 0; i < n; i++) {
            double t0 = now();
            net->backend->forward(net, &net->nodes[i]);
            t[(size_t)i * reps + r] = now() - t0;
        }
    }
    for (int i = 0; i < n; i++) {
        const Node *nd = &net->nodes[i];
        Row *row = &rep->rows[i];
        snprintf(row->name, sizeof row->name, "%s", nd->name);
        node_label(row->label, sizeof row->label, net, nd);
        row->c = nd->out.c, row->h = nd->out.h, row->w = nd->out.w;
        row->time = median(t + (size_t)i * reps, reps);
        row->gflop = node_flops(net, nd) / 1e9;
        rep->total += row->time;
        rep->total_gflop += row->gflop;
        int g = 0;
        while (g < rep->n_groups && strcmp(rep->groups[g].label, row->label))
            g++;
        Group *q = &rep->groups[g];
        if (g == rep->n_groups) { /* a new kind */
            rep->n_groups++;
            strcpy(q->label, row->label);
            q->gemm_rate = node_gemm_rate(net, nd, threads);
        }
        q->time += row->time;
        q->gflop += row->gflop;
        q->count++;
    }
    qsort(rep->groups, rep->n_groups, sizeof *rep->groups, cmp_group);
    free(t);
}

static void print_layers(const LayerReport *rep, double floor_rate)
{
    printf("\n### %s\n\nPer node (median of %d; sum %.1f ms):\n\n", rep->title, rep->reps,
           rep->total * 1e3);
    printf("| node | layer | output c×h×w | ms | %% | GFLOP | GFLOP/s | × floor |\n");
    printf("|---|---|---|---:|---:|---:|---:|---:|\n");
    for (int i = 0; i < rep->n_rows; i++) {
        const Row *r = &rep->rows[i];
        printf("| %s | %s | %d×%d×%d | %.2f | %.1f |", r->name, r->label, r->c, r->h, r->w,
               r->time * 1e3, 100 * r->time / rep->total);
        if (r->gflop > 0)
            printf(" %.2f | %.0f | %.2f |\n", r->gflop, r->gflop / r->time,
                   r->time / (r->gflop / floor_rate));
        else
            printf(" | | |\n");
    }
    printf("\nBy layer kind, slowest first (\"lost\" = time − GFLOP ÷ floor; \"GEMM shape\": the "
           "layer's im2col GEMM, M = cout, K = cin·k², N = positions ÷ threads (at most 8192), "
           "as one single-threaded sgemm per thread on ready-made matrices; × GEMM = time ÷ "
           "GFLOP at that rate):\n\n");
    printf("| layer | count | ms | %% | GFLOP | GFLOP/s | × floor | lost ms | GEMM shape GFLOP/s "
           "| × GEMM |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    double counted = 0, other = 0;
    for (int g = 0; g < rep->n_groups; g++) {
        const Group *q = &rep->groups[g];
        printf("| %s | %d | %.1f | %.1f |", q->label, q->count, q->time * 1e3,
               100 * q->time / rep->total);
        double at_floor = q->gflop / floor_rate;
        if (q->gflop > 0) {
            printf(" %.2f | %.0f | %.2f | %.1f | %.0f | %.2f |\n", q->gflop, q->gflop / q->time,
                   q->time / at_floor, (q->time - at_floor) * 1e3, q->gemm_rate,
                   q->time / (q->gflop / q->gemm_rate));
            counted += q->time;
        } else {
            printf(" | | | %.1f | | |\n", q->time * 1e3);
            other += q->time;
        }
    }
    printf("\nCounted layers %.1f ms (× floor %.2f), uncounted layers %.1f ms (%.1f%% of the "
           "total)\n",
           counted * 1e3, rep->total_gflop > 0 ? counted / (rep->total_gflop / floor_rate) : 0.0,
           other * 1e3, 100 * other / rep->total);
}

/* ---- PyTorch side -------------------------------------------------------------------- */

typedef struct {
    double ms, diff, out_max;
    int ok;
} TorchResult;

static TorchResult run_pytorch(const char *python, const char *dir, const char *label,
                               PerceptNet *net, const PerceptTensor *out, int size, int threads,
                               int runs)
{
    TorchResult r = {0, -1, 0, 0};
    char weights[512], output[512], cmd[2048];
    snprintf(weights, sizeof weights, "%s/%s-%d.safetensors", dir, label, size);
    snprintf(output, sizeof output, "%s/%s-%d.f32", dir, label, size);
    FILE *f = fopen(output, "wb");
    size_t n = percept_tensor_numel(out);
    if (!f || fwrite(out->data, sizeof(float), n, f) != n) {
        fprintf(stderr, "%s: cannot write %s\n", label, output);
        if (f)
            fclose(f);
        return r;
    }
    fclose(f);
    if (percept_net_save(net, weights, PERCEPT_DTYPE_F32, NULL, 0)) {
        fprintf(stderr, "%s: %s\n", label, percept_error());
        unlink(output);
        return r;
    }
    snprintf(cmd, sizeof cmd, "'%s' '%s/pytorch-forward.py' '%s' %d %d '%s' %d", python,
             BENCH_DIR, weights, size, threads, output, runs);
    FILE *p = popen(cmd, "r");
    if (p && fscanf(p, "%lf %lf %lf", &r.ms, &r.diff, &r.out_max) == 3)
        r.ok = 1;
    if (p && pclose(p) != 0)
        r.ok = 0;
    unlink(weights);
    unlink(output);
    return r;
}

/* ---- main ---------------------------------------------------------------------------- */

typedef struct {
    const char *label;
    char *arch;
    int in_size;
} Case;

typedef struct {
    int runs, out_size;
    double gflop, ms, best_ms, tol;
    TorchResult torch;
} Result;

/* whether list (",a,b,") names net */
static int want(const char *list, const char *net)
{
    if (list[0] != ',')
        return 1; /* the default: all */
    char key[64];
    snprintf(key, sizeof key, ",%s,", net);
    return strstr(list, key) != NULL;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: cpu-forward [--threads N] [--sizes 256,512,1024] [--nets LIST] [--quick]\n"
            "                   [--vs-pytorch | --no-pytorch] [--per-layer]\n"
            "  --threads N     OpenMP and OpenBLAS threads (2)\n"
            "  --sizes LIST    Johnson style net input sides (256,512,1024)\n"
            "  --nets LIST     which networks: johnson,sr-x4,sr-shuffle-x4,vgg16 (all; vgg16 is\n"
            "                  the training losses' feature network, to relu4_3)\n"
            "  --quick         smoke run: Johnson at 256² (unless --sizes), SR nets from 128²,\n"
            "                  about 0.5 s of runs per case\n"
            "  --vs-pytorch    compare with PyTorch (error if it cannot be imported); the default\n"
            "                  when it can be imported\n"
            "  --no-pytorch    do not compare with PyTorch\n"
            "  --per-layer     time every node; tables after the main one\n"
            "PERCEPT_PYTHON picks the Python that has torch (/usr/bin/python3).\n");
}

int main(int argc, char **argv)
{
    int threads = 2, pytorch = -1, layers = 0, quick = 0, sizes_given = 0;
    char sizes_arg[128] = "256,512,1024", nets_arg[128] = "johnson,sr-x4,sr-shuffle-x4,vgg16";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
            snprintf(sizes_arg, sizeof sizes_arg, "%s", argv[++i]);
            sizes_given = 1;
        } else if (!strcmp(argv[i], "--nets") && i + 1 < argc)
            snprintf(nets_arg, sizeof nets_arg, ",%s,", argv[++i]);
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else if (!strcmp(argv[i], "--vs-pytorch"))
            pytorch = 1;
        else if (!strcmp(argv[i], "--no-pytorch"))
            pytorch = 0;
        else if (!strcmp(argv[i], "--per-layer"))
            layers = 1;
        else {
            usage();
            return 2;
        }
    }
    if (threads < 1) {
        usage();
        return 2;
    }
    if (quick && !sizes_given)
        strcpy(sizes_arg, "256");
    omp_set_num_threads(threads);

    /* Debian's PyTorch by default; PERCEPT_PYTHON picks another (the GPU machine's venv) */
    const char *python = getenv("PERCEPT_PYTHON") ? getenv("PERCEPT_PYTHON") : "/usr/bin/python3";
    if (pytorch != 0) {
        char probe[600];
        snprintf(probe, sizeof probe, "'%s' -c 'import torch' >/dev/null 2>&1", python);
        int have = system(probe) == 0;
        if (pytorch == 1 && !have) {
            fprintf(stderr, "--vs-pytorch: %s cannot import torch\n", python);
            return 1;
        }
        pytorch = have;
    } else
        pytorch = 0;

    openblas_set_num_threads(threads);
    const char *corename = openblas_get_corename();
    int blas_threads = openblas_get_num_threads();
    double floor_rate = sgemm_rate(threads), floor_start = floor_rate, floor_low = floor_rate;
    /* one thread's rate: on a quiet machine the floor is about `threads` times it */
    double rate1 = threads > 1 ? gemm_rate(2048, 2048, 2048, 1, 2) : floor_rate;

    Case cases[16];
    int n_cases = 0;
    char *sizes = strdup(sizes_arg);
    for (char *tok = strtok(sizes, ","); tok && n_cases < 12 && want(nets_arg, "johnson");
         tok = strtok(NULL, ",")) {
        int s = atoi(tok);
        if (s < 16) {
            fprintf(stderr, "bad size '%s'\n", tok);
            return 2;
        }
        cases[n_cases++] =
            (Case){"johnson", percept_arch_johnson(&(PerceptJohnsonOpts){32, 5, 0}), s};
    }
    free(sizes);
    int sr_in = quick ? 128 : 256;
    if (want(nets_arg, "sr-x4"))
        cases[n_cases++] = (Case){
            "sr-x4", percept_arch_sr(&(PerceptSrOpts){PERCEPT_SR_JOHNSON, 4, 64, 4, 0, 0, 0}), sr_in};
    if (want(nets_arg, "sr-shuffle-x4"))
        cases[n_cases++] =
            (Case){"sr-shuffle-x4",
                   percept_arch_sr(&(PerceptSrOpts){PERCEPT_SR_SHUFFLE, 4, 64, 4, 0, 0, 0}), sr_in};
    if (want(nets_arg, "vgg16"))
        cases[n_cases++] = (Case){"vgg16-relu4_3", percept_arch_vgg16("relu4_3"), sr_in};
    if (!n_cases) {
        usage();
        return 2;
    }

    char dir[] = "/tmp/percept-bench-XXXXXX";
    if (pytorch && !mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    const double budget = quick ? 0.5 : 3.0; /* seconds of timed runs per case */
    const int min_runs = quick ? 2 : 3;
    int failures = 0;
    Result res[16];
    LayerReport reports[16]; /* --per-layer: printed after the main table */
    memset(reports, 0, sizeof reports);
    for (int c = 0; c < n_cases; c++) {
        Result *r = &res[c];
        memset(r, 0, sizeof *r);
        if (c) { /* the floor again: a busy machine shows here, and the best one counts */
            double f = sgemm_rate(threads);
            floor_rate = f > floor_rate ? f : floor_rate;
            floor_low = f < floor_low ? f : floor_low;
        }
        PerceptNet *net = cases[c].arch ? percept_net_from_arch(cases[c].arch, 1) : NULL;
        int s = cases[c].in_size;
        size_t nin = (size_t)3 * s * s;
        float *x = malloc(sizeof(float) * nin);
        PerceptTensor in = {1, 3, s, s, x}, out;
        if (x)
            fill_input(x, nin);
        fprintf(stderr, "%s %d²: warm-up\n", cases[c].label, s);
        double t0 = now();
        if (!x || !net || percept_net_forward(net, &in, &out)) { /* warm-up: plans memory */
            fprintf(stderr, "%s %d²: %s\n", cases[c].label, s, percept_error());
            return 1;
        }
        double warm = now() - t0;
        double times[MAX_RUNS];
        /* enough runs to fill the budget, at least min_runs; a warm-up that already took
         * the whole budget (1024² and above) gets min_runs */
        int target = warm > 0 ? (int)(budget / warm) : MAX_RUNS;
        target = target < min_runs ? min_runs : target > MAX_RUNS ? MAX_RUNS : target;
        for (r->runs = 0; r->runs < target; r->runs++) {
            double t = now();
            percept_net_forward(net, &in, &out);
            times[r->runs] = now() - t;
        }
        r->gflop = net_gflops(net);
        r->ms = median(times, r->runs) * 1e3;
        r->best_ms = times[0] * 1e3;
        r->out_size = out.h;
        fprintf(stderr, "%s %d²: %d runs, median %.0f ms\n", cases[c].label, s, r->runs, r->ms);
        if (pytorch) {
            fprintf(stderr, "%s %d²: PyTorch\n", cases[c].label, s);
            r->torch = run_pytorch(python, dir, cases[c].label, net, &out, s, threads, r->runs);
            /* float32 sums in different orders: agreement to 1e-4 of the output's range */
            r->tol = 1e-4 * (r->torch.out_max > 1 ? r->torch.out_max : 1);
            if (!r->torch.ok || !(r->torch.diff <= r->tol))
                failures++;
        }
        if (layers) {
            fprintf(stderr, "%s %d²: per layer\n", cases[c].label, s);
            snprintf(reports[c].title, sizeof reports[c].title, "%s %d² → %d²", cases[c].label, s,
                     out.h);
            per_layer(&reports[c], net, x, nin, r->runs < 3 ? 3 : r->runs > 5 ? 5 : r->runs,
                      threads);
        }
        free(x);
        percept_net_free(net);
        free(cases[c].arch);
    }
    if (pytorch)
        rmdir(dir);
    double floor_end = sgemm_rate(threads);
    floor_rate = floor_end > floor_rate ? floor_end : floor_rate;
    floor_low = floor_end < floor_low ? floor_end : floor_low;
    if (threads > 1) {
        double r1 = gemm_rate(2048, 2048, 2048, 1, 2);
        rate1 = r1 > rate1 ? r1 : rate1;
    }
    /* busy: how far the floor moved during the run, or how far it is from `threads` times
     * one thread's rate (another process on a core), whichever is worse */
    double spread = 100 * (1 - floor_low / floor_rate);
    double scaling = floor_rate / rate1, shortfall = 100 * (1 - scaling / threads);
    double busy = spread > shortfall ? spread : shortfall;

    printf("OpenBLAS core: %s, OpenBLAS threads: %d, OpenMP threads: %d; percept's direct "
           "convolution tiles: %s\n", corename, blas_threads, threads, conv_direct_isa());
    printf("sgemm 2048³ floor: %.1f GFLOP/s (best of %d measurements: before, between and after "
           "the cases; first %.1f, last %.1f, lowest %.1f)\n",
           floor_rate, n_cases + 1, floor_start, floor_end, floor_low);
    printf("1-thread sgemm: %.1f GFLOP/s, so %d threads scale %.2f×\n", rate1, threads, scaling);
    /* the quietness check bench/run-cpu-forward.sh reads */
    printf("busy: %.0f%% (floor spread %.0f%%, thread scaling short by %.0f%%)%s\n\n",
           busy > 0 ? busy : 0.0, spread, shortfall > 0 ? shortfall : 0.0,
           busy > 10 ? ": over 10%, another process was running, timings are noisy" : "");
    printf("| network | input | output | GFLOP | runs | percept ms (median) | best ms | GFLOP/s "
           "| × floor |%s\n",
           pytorch ? " PyTorch ms | percept / PyTorch | max abs diff |" : "");
    printf("|---|---|---|---:|---:|---:|---:|---:|---:|%s\n", pytorch ? "---:|---:|---:|" : "");
    for (int c = 0; c < n_cases; c++) {
        const Result *r = &res[c];
        printf("| %s | %d² | %d² | %.1f | %d | %.0f | %.0f | %.0f | %.2f |", cases[c].label,
               cases[c].in_size, r->out_size, r->gflop, r->runs, r->ms, r->best_ms,
               r->gflop / (r->ms / 1e3), (r->ms / 1e3) / (r->gflop / floor_rate));
        if (pytorch && !r->torch.ok)
            printf(" (failed) | | |");
        else if (pytorch && !(r->torch.diff <= r->tol))
            printf(" %.0f | MISMATCH | %.1e (tolerance %.1e) |", r->torch.ms, r->torch.diff,
                   r->tol);
        else if (pytorch)
            printf(" %.0f | %.2f | %.1e |", r->torch.ms, r->ms / r->torch.ms, r->torch.diff);
        printf("\n");
    }
    printf("\nGFLOP counts conv2d, conv_transpose2d and linear nodes (2 × multiply-adds at the "
           "planned shapes); norms, activations, upsampling, pixel shuffle and adds are memory "
           "traffic of a few flops per element and are not counted (their time is in the ms).\n"
           "× floor = median time ÷ (GFLOP ÷ the floor rate); goal ≤ 1.3.%s\n",
           pytorch ? " PyTorch: same weights (percept_net_save), input and threads, eval mode, "
                     "no_grad; percept / PyTorch below 1 means percept is faster." : "");
    if (layers) {
        printf("\n## Per layer\n\nEach node timed on its own (the planned graph run node by node "
               "through the backend's forward, as percept_net_forward runs it); × floor against "
               "the floor above, %.1f GFLOP/s.\n",
               floor_rate);
        for (int c = 0; c < n_cases; c++) {
            print_layers(&reports[c], floor_rate);
            free(reports[c].rows);
            free(reports[c].groups);
        }
    }
    return failures ? 1 : 0;
}
