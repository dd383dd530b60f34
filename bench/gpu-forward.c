/* GPU inference benchmark (issue 5): Johnson's style network (pytorch/examples'
 * TransformerNet: base 32, 5 residual blocks), batch 1, at 512², 1024² and 2048² on the
 * CUDA backend, against PyTorch on the same GPU, weights and input in its best mode
 * (bench/pytorch-gpu-forward.py: fp32, tf32, fp16 channels-last, and that as a CUDA graph).
 * Each size runs in each of the backend's precisions (PERCEPT_CUDA_PRECISION: fp32, tf32,
 * fp16), and again without CUDA graphs (PERCEPT_CUDA_GRAPHS=0), with the narrow 9×9
 * convolutions unphased (PERCEPT_CUDA_PHASES=0) or in 4 phases instead of 2, and with cuDNN's
 * guessed algorithms instead of timed ones (PERCEPT_CUDA_ALGOS=heuristic), for what each saves;
 * every output checked against the CPU backend's at the first size. The input is in GPU
 * memory, as PyTorch's is (the ops upload each tile: a copy, not counted here). With
 * --ceilings (bench/gpu-ceilings.py's line) each time is set against the least time its
 * FLOPs and its memory traffic (flops.h: each node's inputs and output once) take at the
 * GPU's measured matmul and copy rates.
 *
 *   bench/gpu-forward [--sizes 512,1024,2048] [--runs N] [--no-pytorch] [--ceilings SPEC]
 *   (Markdown to stdout)
 *
 * Exits 77 when the CUDA backend finds no GPU. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "graph.h"
#include "percept/percept.h"
#include "flops.h"
#include "timing.h"

#ifndef BENCH_DIR
#define BENCH_DIR "bench"
#endif

/* issue 5's goals, ms, by size (0: none) */
static double goal_ms(int size)
{
    return size == 1024 ? 2.5 : size == 2048 ? 9.0 : 0;
}

static int write_f32(const char *path, const float *x, size_t n)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(x, sizeof(float), n, f) == n;
    if (f)
        ok = !fclose(f) && ok;
    return ok ? 0 : -1;
}

/* Largest |a - b| over the largest |a|. */
static double rel_diff(const float *a, const float *b, size_t n)
{
    double d = 0, m = 0;
    for (size_t i = 0; i < n; i++) {
        d = fmax(d, fabs((double)a[i] - b[i]));
        m = fmax(m, fabs((double)a[i]));
    }
    return m > 0 ? d / m : d;
}

int main(int argc, char **argv)
{
    int sizes[8] = {512, 1024, 2048}, n_sizes = 3, runs = 20, pytorch = 1;
    const char *ceilings = "";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--sizes") && i + 1 < argc) {
            n_sizes = 0;
            for (char *t = strtok(argv[++i], ","); t && n_sizes < 8; t = strtok(NULL, ","))
                sizes[n_sizes++] = atoi(t);
        } else if (!strcmp(argv[i], "--runs") && i + 1 < argc) {
            runs = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--no-pytorch")) {
            pytorch = 0;
        } else if (!strcmp(argv[i], "--ceilings") && i + 1 < argc) {
            ceilings = argv[++i];
        } else {
            fprintf(stderr, "usage: gpu-forward [--sizes 512,1024,2048] [--runs N] [--no-pytorch] "
                            "[--ceilings SPEC]\n");
            return 2;
        }
    }
    if (runs < 3)
        runs = 3;
    if (percept_set_device("cuda")) {
        fprintf(stderr, "gpu-forward: %s\n", percept_error());
        return 77;
    }
    char *arch = percept_arch_johnson(&(PerceptJohnsonOpts){32, 5, 1});
    PerceptNet *net = arch ? percept_net_from_arch(arch, 1) : NULL;
    char dir[] = "/tmp/percept-gpu-forward.XXXXXX", weights[64], outp[64];
    if (!net || !mkdtemp(dir)) {
        fprintf(stderr, "gpu-forward: %s\n", net ? "cannot make a temporary directory" : percept_error());
        return 1;
    }
    snprintf(weights, sizeof weights, "%s/johnson.safetensors", dir);
    snprintf(outp, sizeof outp, "%s/out.f32", dir);
    if (percept_net_save(net, weights, PERCEPT_DTYPE_F32, NULL, 0)) {
        fprintf(stderr, "gpu-forward: %s\n", percept_error());
        return 1;
    }
    const char *python = getenv("PERCEPT_PYTHON") ? getenv("PERCEPT_PYTHON") : "python3";
    /* the backend's settings, each read when a network first runs (graphs: at every pass) */
    static const struct { const char *precision, *graphs, *phases, *algos, *label; } modes[] = {
        {"fp32", "1", "2", "measured", "fp32"},
        {"tf32", "1", "2", "measured", "tf32"},
        {"tf32", "1", "0", "measured", "tf32, unphased"},
        {"fp16", "1", "2", "measured", "fp16"},
        {"fp16", "0", "2", "measured", "fp16, no graphs"},
        {"fp16", "1", "0", "measured", "fp16, unphased"},
        {"fp16", "1", "4", "measured", "fp16, 4 phases"},
        {"fp16", "1", "2", "heuristic", "fp16, cuDNN's guesses"},
    };
    const int n_modes = (int)(sizeof modes / sizeof modes[0]);
    PerceptSafetensors *st = percept_st_read(weights);
    if (!st) {
        fprintf(stderr, "gpu-forward: %s\n", percept_error());
        return 1;
    }
    if (*ceilings)
        printf("Ceilings (bench/gpu-ceilings.py): %s — TFLOP/s of matrix products, GB/s of "
               "copies. **floor ms**: the FLOPs at the precision's rate or the traffic at the "
               "copy rate, whichever is longer; **of floor**: floor ÷ percept's time.\n\n",
               ceilings);
    printf("| network | input | precision | GFLOP | percept ms (median of %d) | TFLOP/s "
           "| floor ms | of floor | PyTorch best ms (mode) | percept / PyTorch | goal ms | "
           "check |\n"
           "|---|---|---|---:|---:|---:|---:|---:|---:|---:|---:|---|\n",
           runs);
    for (int s = 0; s < n_sizes; s++) {
        const int side = sizes[s];
        size_t n = (size_t)3 * side * side;
        float *x = malloc(sizeof(float) * n), *cpu_out = NULL;
        if (!x)
            return 1;
        fill_input(x, n);
        float *xg = percept_buffer_new(n); /* on the GPU, as PyTorch's input */
        if (!xg)
            return 1;
        memcpy(xg, x, sizeof(float) * n);
        PerceptTensor in = {1, 3, side, side, x}, in_gpu = {1, 3, side, side, xg}, out;
        if (s == 0) { /* the CPU backend's answer, once */
            percept_set_device("cpu");
            PerceptNet *cpu = percept_net_from_safetensors(st, arch);
            PerceptTensor co;
            if (cpu && !percept_net_forward(cpu, &in, &co) &&
                (cpu_out = malloc(sizeof(float) * percept_tensor_numel(&co))))
                memcpy(cpu_out, co.data, sizeof(float) * percept_tensor_numel(&co));
            percept_net_free(cpu);
            percept_set_device("cuda");
        }
        /* PyTorch's best mode, once per size, checked against percept's fp32 output */
        char peer[64] = "—", mode_best[32] = "";
        double best = 0;
        for (int m = 0; m < n_modes; m++) {
            setenv("PERCEPT_CUDA_PRECISION", modes[m].precision, 1);
            setenv("PERCEPT_CUDA_GRAPHS", modes[m].graphs, 1);
            setenv("PERCEPT_CUDA_PHASES", modes[m].phases, 1);
            setenv("PERCEPT_CUDA_ALGOS", modes[m].algos, 1);
            PerceptNet *gpu = percept_net_from_safetensors(st, arch);
            if (!gpu || percept_net_forward(gpu, &in_gpu, &out)) { /* plans, picks algorithms */
                fprintf(stderr, "gpu-forward: %d² %s: %s\n", side, modes[m].label, percept_error());
                return 1;
            }
            unsetenv("PERCEPT_CUDA_PRECISION");
            unsetenv("PERCEPT_CUDA_PHASES");
            unsetenv("PERCEPT_CUDA_ALGOS");
            double *t = malloc(sizeof(double) * runs);
            for (int r = 0; r < runs; r++) {
                double t0 = now();
                percept_net_forward(gpu, &in_gpu, &out);
                t[r] = (now() - t0) * 1e3;
            }
            qsort(t, runs, sizeof *t, cmp_double);
            double ms = t[runs / 2], gflop = net_gflops(gpu);
            size_t nout = percept_tensor_numel(&out);
            char check[96] = "";
            if (cpu_out)
                snprintf(check, sizeof check, "vs CPU: %.2g relative",
                         rel_diff(cpu_out, out.data, nout));
            if (m == 0 && pytorch && !write_f32(outp, out.data, nout)) {
                char cmd[512];
                snprintf(cmd, sizeof cmd, "'%s' '%s/pytorch-gpu-forward.py' '%s' %d %d '%s'",
                         python, BENCH_DIR, weights, side, runs, outp);
                FILE *p = popen(cmd, "r");
                char line[256], mode[32];
                double pms, diff;
                while (p && fgets(line, sizeof line, p)) {
                    fprintf(stderr, "pytorch %d²: %s", side, line);
                    if (sscanf(line, "%31s %lf %lf", mode, &pms, &diff) == 3 &&
                        (!best || pms < best)) {
                        best = pms;
                        snprintf(mode_best, sizeof mode_best, "%s", mode);
                    }
                }
                if (p)
                    pclose(p);
                if (best > 0)
                    snprintf(peer, sizeof peer, "%.2f (%s)", best, mode_best);
            }
            char ratio[32] = "—", goal[16] = "—";
            if (best > 0)
                snprintf(ratio, sizeof ratio, "%.2f", ms / best);
            if (goal_ms(side) > 0)
                snprintf(goal, sizeof goal, "%.1f", goal_ms(side));
            const int half = !strcmp(modes[m].precision, "fp16");
            const double fl = floor_ms(gflop, net_traffic_bytes(gpu, half ? 2 : 4),
                                       ceiling(ceilings, modes[m].precision),
                                       ceiling(ceilings, "copy"));
            char floor_s[16] = "—", of[16] = "—";
            if (fl > 0) {
                snprintf(floor_s, sizeof floor_s, "%.3f", fl);
                snprintf(of, sizeof of, "%.0f%%", 100 * fl / ms);
            }
            printf("| johnson | %d² | %s | %.1f | %.2f | %.1f | %s | %s | %s | %s | %s | %s |\n",
                   side, modes[m].label, gflop, ms, gflop / ms, floor_s, of, peer, ratio, goal, check);
            fflush(stdout);
            free(t);
            percept_net_free(gpu);
        }
        unsetenv("PERCEPT_CUDA_GRAPHS");
        free(cpu_out);
        free(x);
        percept_buffer_free(xg);
    }
    percept_st_free(st);
    percept_net_free(net);
    free(arch);
    unlink(weights);
    unlink(outp);
    rmdir(dir);
    return 0;
}
