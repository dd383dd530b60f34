/* CPU training-step benchmark (issue 6): one optimisation step — the network forward, the
 * losses and their gradients through the loss network, backward, Adam — for
 *   johnson-128  Johnson et al.'s style network, batch 4 of 128², content relu2_2 +
 *                style relu1_2,2_2,3_3,4_3 (weight 5) + TV 1e-6 on the random VGG-16;
 *   sr-x4-288    Johnson et al.'s ×4 super-resolution network, batch 4 of 72² → 288²,
 *                feature loss relu2_2 (their §4.2 recipe);
 * and the same step in PyTorch (bench/pytorch-train-step.py: same architecture, initial
 * weights, loss-network weights, data, Adam and threads), whose first-step loss must match
 * ours (it checks that the two compute the same thing). Median of the timed steps.
 * --device cuda (issue 5's benchmark): on the GPU, johnson-128 becomes johnson-256 (batch 4
 * of 256², the case), the batches, the losses' gradient and Adam's moments stay in
 * GPU memory (percept_buffer_new), and PyTorch runs there in TF32; run it with
 * PERCEPT_CUDA_PRECISION=tf32 for the same arithmetic.
 *
 *   train-step [--threads N] [--steps K] [--device cpu|cuda] [--no-pytorch] [--quick]
 *   (Markdown to stdout) */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "graph.h"
#include "percept/percept.h"
#include "flops.h"
#include "timing.h"

#ifdef _OPENMP
#include <omp.h>
#endif

typedef struct {
    const char *name, *losses; /* ';'-separated spec=weight */
    int batch, in_side, out_side;
} Case;

/* deterministic images in 0..1 */
static void fill(float *x, size_t n, uint64_t seed)
{
    for (size_t i = 0; i < n; i++)
        x[i] = percept_rng_uniform(seed, i);
}

static int write_f32(const char *path, const float *x, size_t n)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(x, sizeof(float), n, f) == n;
    if (f)
        ok &= fclose(f) == 0;
    return ok ? 0 : percept_fail("cannot write %s", path);
}

typedef struct {
    int n;
    PerceptLoss *loss[4];
    double weight[4];
    int target[4]; /* compares with the batch's target (style: with the style image, set
                    * once; tv: with nothing) */
    char spec[4][128];
} Losses;

static int losses_init(Losses *l, const char *text, const PerceptTensor *style)
{
    memset(l, 0, sizeof *l);
    char *copy = strdup(text), *save = NULL;
    for (char *item = strtok_r(copy, ";", &save); item && l->n < 4; item = strtok_r(NULL, ";", &save)) {
        char *eq = strrchr(item, '=');
        *eq = 0;
        l->weight[l->n] = atof(eq + 1);
        int is_style = !strncmp(item, "style:", 6);
        l->target[l->n] = !is_style && strcmp(item, "tv");
        snprintf(l->spec[l->n], sizeof l->spec[0], "%s", item);
        if (!(l->loss[l->n] = percept_loss_new(item))) {
            free(copy);
            return -1;
        }
        if (is_style && percept_loss_set_target(l->loss[l->n], style)) {
            free(copy);
            return -1;
        }
        l->n++;
    }
    free(copy);
    return 0;
}

/* One step; the total loss into *value. */
static int step(PerceptNet *net, PerceptAdam *adam, Losses *l, const PerceptTensor *in,
                const PerceptTensor *target, float *grad, double *value)
{
    PerceptTensor out;
    if (percept_net_forward(net, in, &out))
        return -1;
    /* as the trainer does: the content and style losses share one pass through VGG-16 */
    for (int i = 0; i < l->n; i++)
        if (l->target[i] && percept_loss_set_target(l->loss[i], target))
            return -1;
    double values[4];
    if (percept_losses_eval(l->loss, l->weight, l->n, &out, values, grad))
        return -1;
    *value = 0;
    for (int i = 0; i < l->n; i++)
        *value += l->weight[i] * values[i];
    if (percept_net_backward(net, grad, NULL))
        return -1;
    size_t count;
    if (percept_adam_step(adam, percept_net_params(net, &count), percept_net_grads(net, &count)))
        return -1;
    percept_net_zero_grads(net);
    return 0;
}

static void losses_free(Losses *l)
{
    for (int i = 0; i < l->n; i++)
        percept_loss_free(l->loss[i]);
}

/* The VGG-16 weights the losses use (seed 1), for PyTorch. */
static int save_vgg(const char *dir, const char *layer)
{
    char *arch = percept_arch_vgg16(layer), path[512];
    PerceptNet *net = arch ? percept_net_from_arch(arch, 1) : NULL;
    free(arch);
    snprintf(path, sizeof path, "%s/vgg16-%s.safetensors", dir, layer);
    int rc = net ? percept_net_save(net, path, PERCEPT_DTYPE_F32, NULL, 0) : -1;
    percept_net_free(net);
    return rc;
}

typedef struct {
    double ms, first_loss, gflop;
} Result;

/* A step's FLOPs, approximately (after a step, with every network planned): the network's
 * convolutions forward and twice backward (input and weight gradients); the loss network
 * that serves the losses (the deepest: the most FLOPs) forward and once backward (input
 * gradients only); each loss network with a new target every step forward once more; the
 * Gram matrices of the style layers and their gradients, 2·n·c²·hw each. */
static double step_gflops(PerceptNet *net, Losses *l)
{
    PerceptNet *owner = NULL;
    for (int i = 0; i < l->n; i++) {
        PerceptNet *ln = loss_network(l->loss[i]);
        if (ln && (!owner || net_gflops(ln) > net_gflops(owner)))
            owner = ln;
    }
    double g = 3 * net_gflops(net) + (owner ? 2 * net_gflops(owner) : 0);
    for (int i = 0; i < l->n; i++) {
        PerceptNet *ln = loss_network(l->loss[i]);
        if (!ln)
            continue;
        if (l->target[i])
            g += net_gflops(ln);
        const char *layers = strncmp(l->spec[i], "style:", 6) ? NULL : strrchr(l->spec[i], ':');
        char buf[128], name[32];
        snprintf(buf, sizeof buf, "%s", layers ? layers + 1 : "");
        for (char *save = NULL, *t = strtok_r(buf, ",", &save); layers && t;
             t = strtok_r(NULL, ",", &save)) {
            PerceptTensor f;
            snprintf(name, sizeof name, "features.%d", percept_vgg16_layer_index(t));
            if (!percept_net_node_output(owner, name, &f))
                g += 4.0 * f.n * f.c * f.c * f.h * f.w / 1e9;
        }
    }
    return g;
}

static int run_percept(const Case *c, const char *dir, int steps, Result *r)
{
    char *arch = !strncmp(c->name, "johnson", 7)
                     ? percept_arch_johnson(&(PerceptJohnsonOpts){32, 5, 0})
                     : percept_arch_sr(&(PerceptSrOpts){PERCEPT_SR_JOHNSON, 4, 64, 4, 0, 0, 0});
    PerceptNet *net = arch ? percept_net_from_arch(arch, 7) : NULL;
    free(arch);
    if (!net)
        return -1;
    char path[512];
    snprintf(path, sizeof path, "%s/%s.safetensors", dir, c->name);
    size_t in_n = (size_t)c->batch * 3 * c->in_side * c->in_side;
    size_t out_n = (size_t)c->batch * 3 * c->out_side * c->out_side;
    /* where the network runs (the GPU's memory with --device cuda), as a trainer keeps them */
    float *in = percept_buffer_new(in_n), *target = percept_buffer_new(out_n);
    float *style = malloc(sizeof(float) * 3 * 128 * 128);
    float *grad = percept_buffer_new(out_n);
    PerceptAdam adam = {0};
    Losses l = {0};
    size_t count;
    percept_net_params(net, &count);
    int rc = in && target && style && grad ? 0 : percept_fail("out of memory");
    if (!rc) {
        fill(in, in_n, 11);
        fill(style, 3 * 128 * 128, 13);
        if (c->in_side == c->out_side)
            memcpy(target, in, sizeof(float) * in_n); /* stylize: content = input */
        else
            fill(target, out_n, 12);
        snprintf(path, sizeof path, "%s/%s.safetensors", dir, c->name);
        char p_in[512], p_target[512], p_style[512];
        snprintf(p_in, sizeof p_in, "%s/%s.in.f32", dir, c->name);
        snprintf(p_target, sizeof p_target, "%s/%s.target.f32", dir, c->name);
        snprintf(p_style, sizeof p_style, "%s/style.f32", dir);
        rc = percept_net_save(net, path, PERCEPT_DTYPE_F32, NULL, 0) ||
             write_f32(p_in, in, in_n) || write_f32(p_target, target, out_n) ||
             write_f32(p_style, style, 3 * 128 * 128);
    }
    PerceptTensor style_t = {1, 3, 128, 128, style};
    rc = rc || percept_adam_init(&adam, count, (PerceptAdamConfig){1e-3f, 0.9f, 0.999f, 1e-8f, 0}) ||
         losses_init(&l, c->losses, &style_t);
    PerceptTensor in_t = {c->batch, 3, c->in_side, c->in_side, in};
    PerceptTensor target_t = {c->batch, 3, c->out_side, c->out_side, target};
    percept_net_set_training(net, 1);
    double *times = calloc(steps + 1, sizeof(double)), value;
    for (int s = 0; s <= steps && !rc; s++) { /* step 0: first loss, warm-up */
        double t = now();
        rc = step(net, &adam, &l, &in_t, &target_t, grad, &value);
        if (s == 0)
            r->first_loss = value;
        else
            times[s - 1] = now() - t;
    }
    if (!rc) {
        qsort(times, steps, sizeof(double), cmp_double);
        r->ms = times[steps / 2] * 1e3;
        r->gflop = step_gflops(net, &l);
    }
    free(times);
    losses_free(&l);
    percept_adam_free(&adam);
    percept_net_free(net);
    percept_buffer_free(in);
    percept_buffer_free(target);
    free(style);
    percept_buffer_free(grad);
    return rc;
}

static int run_pytorch(const char *python, const Case *c, const char *dir, int threads,
                       int steps, const char *device, Result *r)
{
    char cmd[2048];
    snprintf(cmd, sizeof cmd, "'%s' '%s/pytorch-train-step.py' '%s' %s '%s' %d %d %d %d %d %s",
             python, BENCH_DIR, dir, c->name, c->losses, c->batch, c->in_side, c->out_side,
             threads, steps, device);
    FILE *p = popen(cmd, "r");
    if (!p)
        return percept_fail("cannot run %s", python);
    int got = fscanf(p, "%lf %lf", &r->ms, &r->first_loss);
    int status = pclose(p);
    return got == 2 && status == 0 ? 0 : percept_fail("PyTorch side failed (%s)", cmd);
}

int main(int argc, char **argv)
{
    int threads = 2, steps = 5, pytorch = 1, quick = 0;
    const char *device = "cpu", *ceilings = "";
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--threads") && i + 1 < argc)
            threads = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--device") && i + 1 < argc)
            device = argv[++i];
        else if (!strcmp(argv[i], "--steps") && i + 1 < argc)
            steps = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--no-pytorch"))
            pytorch = 0;
        else if (!strcmp(argv[i], "--ceilings") && i + 1 < argc)
            ceilings = argv[++i];
        else if (!strcmp(argv[i], "--quick"))
            quick = 1;
        else {
            fprintf(stderr, "usage: train-step [--threads N] [--steps K] [--device cpu|cuda] "
                            "[--no-pytorch] [--quick] [--ceilings SPEC]\n");
            return 2;
        }
    }
    if (steps < 1 || threads < 1) {
        fprintf(stderr, "train-step: --steps and --threads must be at least 1\n");
        return 2;
    }
#ifdef _OPENMP
    omp_set_num_threads(threads);
#endif
    const int gpu = !strcmp(device, "cuda");
    if (percept_set_device(device)) { /* 77: no GPU here, as gpu-forward and the GPU tests */
        fprintf(stderr, "train-step: %s\n", percept_error());
        return gpu ? 77 : 1;
    }
    const char *python = getenv("PERCEPT_PYTHON") ? getenv("PERCEPT_PYTHON") : "/usr/bin/python3";
    Case cases[] = {
        {"johnson-128", "feat:vgg16:relu2_2=1;style:vgg16:relu1_2,relu2_2,relu3_3,relu4_3=5;tv=1e-6",
         4, 128, 128},
        {"sr-x4-288", "feat:vgg16:relu2_2=1", 4, 72, 288},
    };
    if (gpu) { /* issue 5's case */
        cases[0].name = "johnson-256";
        cases[0].in_side = cases[0].out_side = 256;
    }
    if (quick) { /* a smoke test of the tool itself */
        cases[0].batch = cases[1].batch = 1;
        cases[0].in_side = cases[0].out_side = 32;
        cases[1].in_side = 16;
        cases[1].out_side = 64;
    }
    char dir[] = "/tmp/percept-train-step-XXXXXX";
    if (!mkdtemp(dir) || save_vgg(dir, "relu2_2") || save_vgg(dir, "relu4_3")) {
        fprintf(stderr, "train-step: %s\n", percept_error());
        return 1;
    }
    /* the rate a step's FLOPs could at most run at (--ceilings, bench/gpu-ceilings.py): TF32
     * on the GPU, as both sides run there */
    const double rate = ceiling(ceilings, "tf32");
    if (rate > 0)
        printf("Ceilings (bench/gpu-ceilings.py): %s. **floor ms**: the step's FLOPs at the "
               "TF32 matrix-product rate.\n\n", ceilings);
    printf("| case | ≈ GFLOP/step | percept ms/step | TFLOP/s | floor ms | PyTorch ms/step | "
           "percept / PyTorch | first-step loss, percept | PyTorch |\n");
    printf("|---|---:|---:|---:|---:|---:|---:|---:|---:|\n");
    int rc = 0;
    for (size_t k = 0; k < sizeof cases / sizeof *cases && !rc; k++) {
        Result ours, theirs = {0};
        rc = run_percept(&cases[k], dir, steps, &ours) ||
             (pytorch && run_pytorch(python, &cases[k], dir, threads, steps, device, &theirs));
        if (rc)
            break;
        char fl[16] = "—", peer[64] = "| | |", peer_loss[32] = "";
        if (rate > 0)
            snprintf(fl, sizeof fl, "%.2f", ours.gflop / rate);
        if (pytorch) {
            snprintf(peer, sizeof peer, "| %.1f | %.2f |", theirs.ms, ours.ms / theirs.ms);
            snprintf(peer_loss, sizeof peer_loss, "%.6g", theirs.first_loss);
        }
        printf("| %s (batch %d, %d² → %d²) | %.0f | %.1f | %.2f | %s %s %.6g | %s |\n",
               cases[k].name, cases[k].batch, cases[k].in_side, cases[k].out_side, ours.gflop,
               ours.ms, ours.gflop / ours.ms, fl, peer, ours.first_loss, peer_loss);
        fflush(stdout);
    }
    char rm[600];
    snprintf(rm, sizeof rm, "rm -rf '%s'", dir);
    if (system(rm) != 0)
        fprintf(stderr, "train-step: could not remove %s\n", dir);
    if (rc)
        fprintf(stderr, "train-step: %s\n", percept_error());
    return rc ? 1 : 0;
}
