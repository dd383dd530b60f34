/* CPU inference benchmark: Johnson's style network and the SR ×4 networks, against the
 * sgemm floor measured in the same run and, when Debian's PyTorch is present, against
 * PyTorch on the same weights, input and thread count.
 *
 *   bench/cpu-forward [--threads N] [--sizes 256,512,1024] [--no-pytorch] [--per-layer]
 *
 * "× floor" is the time divided by FLOPs / (sgemm rate): 1.0 would be every FLOP at the
 * speed of a large, square sgemm. Only conv, transposed conv and linear layers are
 * counted; the rest (norms, activations, copies) is memory traffic, not FLOPs. */
#include <cblas.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "graph.h"
#include "percept/percept.h"

extern char *openblas_get_corename(void);
extern void openblas_set_num_threads(int);

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double sgemm_rate(void)
{
    const int n = 2048;
    float *a = malloc(sizeof(float) * n * n), *b = malloc(sizeof(float) * n * n);
    float *c = malloc(sizeof(float) * n * n);
    for (size_t i = 0; i < (size_t)n * n; i++) {
        a[i] = (float)(i % 7) * 0.1f;
        b[i] = (float)(i % 5) * 0.1f;
    }
    double best = 1e9;
    for (int r = 0; r < 4; r++) {
        double t = now();
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, n, n, 1, a, n, b, n, 0, c, n);
        t = now() - t;
        if (r && t < best) /* the first run warms up the thread pool */
            best = t;
    }
    free(a); free(b); free(c);
    return 2.0 * n * n * n / best / 1e9;
}

static double net_gflops(PerceptNet *net)
{
    double f = 0;
    for (int i = 0; i < net->n_nodes; i++) {
        const Node *nd = &net->nodes[i];
        Shape o = nd->out, in = net_in_shape(net, nd, 0);
        if (nd->op == OP_CONV2D)
            f += 2.0 * o.n * o.c * o.h * o.w * nd->cin * nd->k * nd->k;
        else if (nd->op == OP_CONV_TRANSPOSE2D)
            f += 2.0 * in.n * in.c * in.h * in.w * nd->cout * nd->k * nd->k;
        else if (nd->op == OP_LINEAR)
            f += 2.0 * o.n * nd->cin * nd->cout;
    }
    return f / 1e9;
}

/* The input both percept and PyTorch see: a fixed hash of the index, in [0, 1). */
static void fill_input(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((i * 2654435761u) & 0xffffffffu) / 4294967296.0f;
}

static void per_layer(PerceptNet *net)
{
    printf("\n| node | op | output | ms |\n|---|---|---|---:|\n");
    for (int i = 0; i < net->n_nodes; i++) {
        const Node *nd = &net->nodes[i];
        double t = now();
        net->backend->forward(net, nd);
        t = now() - t;
        printf("| %s | %s | %d×%d×%d | %.2f |\n", nd->name, op_names[nd->op], nd->out.w,
               nd->out.h, nd->out.c, t * 1e3);
    }
    printf("\n");
}

typedef struct {
    const char *label;
    char *arch;
    int in_size;
} Case;

int main(int argc, char **argv)
{
    int threads = 2, pytorch = 1, layers = 0;
    char sizes_arg[128] = "256,512,1024";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--sizes") && i + 1 < argc)
            snprintf(sizes_arg, sizeof sizes_arg, "%s", argv[++i]);
        else if (!strcmp(argv[i], "--no-pytorch"))
            pytorch = 0;
        else if (!strcmp(argv[i], "--per-layer"))
            layers = 1;
        else {
            fprintf(stderr, "usage: cpu-forward [--threads N] [--sizes 256,512] [--no-pytorch] "
                            "[--per-layer]\n");
            return 2;
        }
    }
    openblas_set_num_threads(threads);
    omp_set_num_threads(threads);
    /* Debian's PyTorch by default; PERCEPT_PYTHON picks another (the GPU machine's venv) */
    const char *python = getenv("PERCEPT_PYTHON") ? getenv("PERCEPT_PYTHON") : "/usr/bin/python3";
    char probe[600];
    snprintf(probe, sizeof probe, "%s -c 'import torch' 2>/dev/null", python);
    if (pytorch && system(probe) != 0)
        pytorch = 0;
    double floor_rate = sgemm_rate();
    printf("OpenBLAS core: %s, threads: %d\n", openblas_get_corename(), threads);
    printf("sgemm 2048³ floor: %.1f GFLOP/s\n\n", floor_rate);

    Case cases[16];
    int n_cases = 0;
    char *sizes = strdup(sizes_arg);
    for (char *tok = strtok(sizes, ","); tok && n_cases < 12; tok = strtok(NULL, ","))
        cases[n_cases++] = (Case){"johnson", percept_arch_johnson(&(PerceptJohnsonOpts){32, 5, 0}),
                                  atoi(tok)};
    free(sizes);
    cases[n_cases++] = (Case){"sr-x4", percept_arch_sr(&(PerceptSrOpts){PERCEPT_SR_JOHNSON, 4, 64, 4}), 256};
    cases[n_cases++] = (Case){"sr-shuffle-x4", percept_arch_sr(&(PerceptSrOpts){PERCEPT_SR_SHUFFLE, 4, 64, 4}), 256};

    char dir[] = "/tmp/percept-bench-XXXXXX";
    if (!mkdtemp(dir)) {
        perror("mkdtemp");
        return 1;
    }
    printf("| network | input | output | GFLOP | percept ms | GFLOP/s | × floor |%s\n",
           pytorch ? " PyTorch ms | percept / PyTorch | max abs diff |" : "");
    printf("|---|---|---|---:|---:|---:|---:|%s\n", pytorch ? "---:|---:|---:|" : "");
    for (int c = 0; c < n_cases; c++) {
        PerceptNet *net = percept_net_from_arch(cases[c].arch, 1);
        int s = cases[c].in_size;
        size_t nin = (size_t)3 * s * s;
        float *x = malloc(sizeof(float) * nin);
        fill_input(x, nin);
        PerceptTensor in = {1, 3, s, s, x}, out;
        if (!net || percept_net_forward(net, &in, &out)) { /* plans memory; not timed */
            fprintf(stderr, "%s: %s\n", cases[c].label, percept_error());
            return 1;
        }
        double times[10], total = 0, gf = net_gflops(net);
        int runs = 0;
        while (runs < 10 && (runs < 3 || total < 2.0)) {
            double t = now();
            percept_net_forward(net, &in, &out);
            times[runs] = now() - t;
            total += times[runs++];
        }
        qsort(times, runs, sizeof *times, cmp_double);
        double ms = times[runs / 2] * 1e3;
        printf("| %s | %d² | %d² | %.1f | %.0f | %.0f | %.2f |", cases[c].label, s, out.h, gf, ms,
               gf / (ms / 1e3), (ms / 1e3) / (gf / floor_rate));
        if (pytorch) {
            char weights[512], output[512], cmd[2048];
            snprintf(weights, sizeof weights, "%s/%s-%d.safetensors", dir, cases[c].label, s);
            snprintf(output, sizeof output, "%s/%s-%d.f32", dir, cases[c].label, s);
            FILE *f = fopen(output, "wb");
            fwrite(out.data, sizeof(float), percept_tensor_numel(&out), f);
            fclose(f);
            percept_net_save(net, weights, PERCEPT_DTYPE_F32, NULL, 0);
            snprintf(cmd, sizeof cmd, "%s %s/pytorch-forward.py %s %d %d %s %d", python,
                     BENCH_DIR, weights, s, threads, output, runs);
            FILE *p = popen(cmd, "r");
            double pt_ms = 0, diff = -1;
            if (p && fscanf(p, "%lf %lf", &pt_ms, &diff) == 2)
                printf(" %.0f | %.2f | %.1e |", pt_ms, ms / pt_ms, diff);
            else
                printf(" (failed) | | |");
            if (p)
                pclose(p);
            unlink(weights);
            unlink(output);
        }
        printf("\n");
        fflush(stdout);
        if (layers)
            per_layer(net);
        free(x);
        percept_net_free(net);
        free(cases[c].arch);
    }
    rmdir(dir);
    return 0;
}
