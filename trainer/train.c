/* percept train upscale|reconstruct|stylize: trains a super-resolution, restoration or
 * style network on crops of a photo directory, with the losses of a recipe, reproducibly (a seed fixes every batch) and resumably
 * (atomic checkpoints; --resume continues to the result an uninterrupted run gives). */
#include <math.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "cli.h"
#include "dataset.h"
#include "adversary.h"
#include "degrade.h"
#include "evaluate.h"
#include "images.h"
#include "objective.h"
#include "plot.h"
#include "recipe.h"

static const char train_usage[] =
    "Usage: percept train upscale|reconstruct|stylize|autoencoder [--recipe FILE.ini]\n"
    "                     [--resume] [--KEY VALUE ...]\n"
    "\n"
    "Trains a super-resolution (upscale), restoration (reconstruct), style transfer\n"
    "(stylize, Johnson et al.: --style IMAGE) or autoencoder (DeePSiM Table 2, its VAE, or\n"
    "Ridgeway's binary code) network. Inputs are made on the fly from random crops of the\n"
    "data images by the recipe's degradation (upscale: blur, then bicubic downsampling, as\n"
    "Johnson et al. §4.2; reconstruct: noise, JPEG or blur; stylize and autoencoder: the\n"
    "photos themselves); the losses are weighted loss specs, adv adding DeePSiM's\n"
    "discriminator (its checkpoints: OUT.disc.ckpt, OUT.disc.adam). Checkpoints (OUT.ckpt, OUT.adam) are written\n"
    "atomically every checkpoint-every steps and on Ctrl-C; --resume continues from them.\n"
    "Progress goes to stderr, one CSV row per logged step to OUT.csv, the network's output\n"
    "on a validation image to OUT.preview.png at every validation, and the loss curves to\n"
    "OUT.loss.png at the end (.ppm both, in a percept built without GEGL).\n"
    "\n";

static volatile sig_atomic_t interrupted = 0;

static void on_signal(int sig)
{
    interrupted = sig;
}

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

typedef struct {
    Recipe r;
    EvalTask task;
    Dataset data;
    PerceptNet *net;
    PerceptAdam adam;
    Objective obj;
    PerceptTensor *val;      /* validation crops, full resolution */
    int n_val;
    int align;               /* crops are multiples of scale × this (the net's downsampling) */
    char *ckpt, *adam_path, *csv_path;
    FILE *csv;
    float *hr, *lr, *grad;
    int step;                /* steps done */
    /* the loss terms logged: the objective's, then adv and discriminator (D's own loss, not
     * in the total) when the losses have adv, then kl */
    int n_terms;
    const char *term[OBJECTIVE_MAX_TERMS + 3];
    Adversary adv;           /* adv.net is NULL without adv */
    int d_updates;           /* D steps this run (the rest were paused) */
    float *kl_grad;          /* d kl / d the code layer's output (mu, log-variance) */
    size_t kl_floats;
} Trainer;

#define MAX_TERMS (OBJECTIVE_MAX_TERMS + 3)
#define VAE_CODE "enc.code"  /* the variational code layer and the output, as the */
#define VAE_OUTPUT "dec.out" /* DeePSiM autoencoder builder names them */

/* OpenBLAS picks its kernel from the CPU's model; a CPU newer than the OpenBLAS (Debian 12's
 * 0.3.21 on Intel Emerald Rapids) gets the generic Prescott kernel, and training, which is
 * im2col + sgemm throughout, runs several times slower than the CPU can. Say so, and what
 * to set. (Weak: another CBLAS links too.) */
extern char *openblas_get_corename(void) __attribute__((weak));

static void warn_generic_blas(void)
{
#if defined(__x86_64__) || defined(__i386__)
    const char *core = openblas_get_corename ? openblas_get_corename() : NULL;
    if (!core || strcmp(core, "Prescott"))
        return;
    const char *named = __builtin_cpu_supports("avx512f") ? "SkylakeX"
                        : __builtin_cpu_supports("avx2")  ? "Haswell"
                                                          : NULL;
    if (named)
        fprintf(stderr, "percept train: OpenBLAS runs its generic Prescott kernel here (it does "
                "not know this CPU): OPENBLAS_CORETYPE=%s makes training several times "
                "faster\n", named);
#endif
}

static char *arch_for(const Recipe *r)
{
    if (!strcmp(r->task, "autoencoder"))
        return percept_arch_deepsim_autoencoder(&(PerceptAutoencoderOpts){
            r->crop, r->channels, r->code, !strcmp(r->arch, "vae"), !strcmp(r->arch, "binary")});
    if (!strcmp(r->arch, "johnson"))
        return percept_arch_johnson(&(PerceptJohnsonOpts){r->channels, r->blocks, 0});
    if (!strncmp(r->arch, "restore", 7))
        return percept_arch_restore(&(PerceptRestoreOpts){
            r->channels, r->blocks, (float)r->tail_gain, !strcmp(r->arch, "restore-half"),
            (float)r->block_gain, r->center_input, !strcmp(r->upsample, "resize")});
    PerceptSrOpts o = {strcmp(r->arch, "sr") ? PERCEPT_SR_SHUFFLE : PERCEPT_SR_JOHNSON,
                       r->scale, r->channels, r->blocks, (float)r->tail_gain,
                       (float)r->block_gain, r->center_input};
    return percept_arch_sr(&o);
}

/* Central crops of the validation images, at most 256 px a side (multiples of scale). */
static int make_validation(Trainer *t)
{
    int k = t->data.n_val < t->r.val_images ? t->data.n_val : t->r.val_images;
    t->val = calloc(k + 1, sizeof(PerceptTensor));
    for (int i = 0; i < k; i++) {
        const ImageU8 *img = &t->data.images[t->data.val[i]];
        int side = img->w < img->h ? img->w : img->h, unit = t->r.scale * t->align;
        side = (side < 256 ? side : 256) / unit * unit;
        float *px = malloc(sizeof(float) * 3 * side * side);
        if (!px)
            return percept_fail("out of memory");
        dataset_crop(&t->data, t->data.val[i], (img->w - side) / 2, (img->h - side) / 2, side, 0,
                     px);
        t->val[t->n_val++] = (PerceptTensor){1, 3, side, side, px};
    }
    return 0;
}

static int save_checkpoint(Trainer *t)
{
    char step[32];
    snprintf(step, sizeof step, "%d", t->step);
    /* its task and degradation too, so that percept eval can score a checkpoint as the
     * finished file (not the whole recipe: its out differs between runs that must agree) */
    PerceptStMeta meta[] = {{"percept.task", "checkpoint"}, {"percept.step", step},
                            {"percept.train_task", t->r.task}, {"percept.degrade", t->r.degrade}};
    /* Adam first: a checkpoint whose weights are newer than its Adam state is detected on
     * resume by the step numbers */
    if ((t->adv.net && adversary_save(&t->adv, t->step)) ||
        percept_adam_save(&t->adam, t->adam_path) ||
        percept_net_save(t->net, t->ckpt, PERCEPT_DTYPE_F32, meta, 4))
        return -1;
    return 0;
}

static int load_checkpoint(Trainer *t, const char *arch)
{
    PerceptSafetensors *st = percept_st_read(t->ckpt);
    if (!st)
        return percept_fail_prefix("--resume: ");
    const char *a = percept_st_meta(st, "percept.arch"), *s = percept_st_meta(st, "percept.step");
    int rc = 0;
    if (!a || !s || strcmp(a, arch)) {
        rc = percept_fail("--resume: %s is not a checkpoint of this recipe's network (%s)",
                          t->ckpt, a ? "a different architecture" : "no percept.step");
    } else {
        PerceptNet *net = percept_net_from_safetensors(st, arch);
        if (!net)
            rc = -1;
        else {
            percept_net_free(t->net);
            t->net = net;
            t->step = atoi(s);
        }
    }
    percept_st_free(st);
    if (!rc && percept_adam_load(&t->adam, t->adam_path))
        rc = percept_fail_prefix("--resume: ");
    if (!rc && t->adam.step != t->step)
        rc = percept_fail("--resume: %s is at step %lld but %s at step %d (interrupted while "
                          "writing?)", t->adam_path, (long long)t->adam.step, t->ckpt, t->step);
    if (!rc && t->adv.net)
        rc = adversary_load(&t->adv, t->step);
    return rc;
}

/* Stylize's validation: the mean of each loss term and of the objective over the
 * validation images (there is no reference to score against). */
static int validate_objective(Trainer *t, double *terms, double *objective)
{
    percept_net_set_training(t->net, 0);
    memset(terms, 0, sizeof(double) * t->obj.n);
    *objective = 0;
    double v[OBJECTIVE_MAX_TERMS], total;
    for (int k = 0; k < t->n_val; k++) {
        PerceptTensor out;
        if (percept_net_forward(t->net, &t->val[k], &out))
            return -1;
        /* the losses keep their own copy of the reference; out lives in the network */
        PerceptTensor y = out;
        y.data = malloc(sizeof(float) * percept_tensor_numel(&out));
        if (!y.data)
            return percept_fail("out of memory");
        memcpy(y.data, out.data, sizeof(float) * percept_tensor_numel(&out));
        int rc = objective_eval(&t->obj, &y, &t->val[k], v, &total, NULL);
        free(y.data);
        if (rc)
            return -1;
        for (int i = 0; i < t->obj.n; i++)
            terms[i] += v[i] / t->n_val;
        *objective += total / t->n_val;
    }
    percept_net_set_training(t->net, 1);
    percept_net_release_memory(t->net);
    return 0;
}

/* The VAE's KL term on the code layer's output (per image: mu, then log-variance), averaged
 * over the batch; its weighted gradient into t->kl_grad. */
static int kl_term(Trainer *t, double *value, double *total)
{
    PerceptTensor code;
    if (percept_net_node_output(t->net, VAE_CODE, &code))
        return -1;
    size_t n = percept_tensor_numel(&code), half = n / code.n / 2;
    if (t->kl_floats < n) {
        free(t->kl_grad);
        t->kl_grad = malloc(sizeof(float) * n);
        t->kl_floats = t->kl_grad ? n : 0;
        if (!t->kl_grad)
            return percept_fail("out of memory");
    }
    *value = 0;
    for (int b = 0; b < code.n; b++) {
        const float *mu = code.data + 2 * half * b;
        float *g = t->kl_grad + 2 * half * b;
        *value += percept_loss_kl(mu, mu + half, half, 1, g, g + half) / code.n;
    }
    float w = (float)(t->obj.kl / code.n);
    for (size_t i = 0; i < n; i++)
        t->kl_grad[i] *= w;
    *total += t->obj.kl * *value;
    return 0;
}

/* True when every channel of a 3×side×side crop varies by less than 1/255 (standard
 * deviation). */
static int is_flat(const float *crop, int side)
{
    size_t n = (size_t)side * side;
    for (int c = 0; c < 3; c++) {
        double s = 0, s2 = 0;
        for (size_t i = 0; i < n; i++) {
            s += crop[c * n + i];
            s2 += (double)crop[c * n + i] * crop[c * n + i];
        }
        double mean = s / n;
        if (s2 / n - mean * mean > 1.0 / (255.0 * 255.0))
            return 0;
    }
    return 1;
}

/* One batch: crops, degraded inputs, forward, the weighted losses, backward, Adam.
 * terms[i] gets loss i's value. */
static int train_step(Trainer *t, double *terms, double *total)
{
    const Recipe *r = &t->r;
    int s = r->scale, H = r->crop, L = r->crop / s;
    size_t hr_n = 3 * (size_t)H * H, lr_n = 3 * (size_t)L * L;
    for (int b = 0; b < r->batch; b++) {
        uint64_t index = (uint64_t)t->step * r->batch + b;
        dataset_random_crop(&t->data, r->seed, index, H, t->hr + b * hr_n);
        /* A flat crop (sky, a black border) makes every plane of the style network constant:
         * each instance norm then multiplies the gradient by 1/√ε ≈ 316 and fifteen of them
         * overflow. Such a crop teaches a style nothing: draw another (a function of the
         * step, so resuming stays exact). */
        for (int again = 1; t->task == EVAL_STYLIZE && again <= 16 && is_flat(t->hr + b * hr_n, H);
             again++)
            dataset_random_crop(&t->data, r->seed, index | (uint64_t)again << 48, H,
                                t->hr + b * hr_n);
        if (eval_degrade(t->task, t->lr + b * lr_n, t->hr + b * hr_n, H, H, s, r->degrade,
                         r->seed, (uint64_t)t->step * r->batch + b))
            return -1;
    }
    PerceptTensor in = {r->batch, 3, L, L, t->lr}, out, target = {r->batch, 3, H, H, t->hr};
    /* dropout and sampling noise: a function of the step, so resuming is exact */
    uint64_t noise = percept_rng_u64(r->seed ^ 0x6e6f697365ull, (uint64_t)t->step);
    percept_net_set_noise_seed(t->net, noise);
    if (percept_net_forward(t->net, &in, &out))
        return -1;
    /* weights grown (or loaded) too large overflow here first: say so, and where */
    if (percept_loss_finite(out.data, percept_tensor_numel(&out), "the network's output"))
        return percept_fail_prefix("step %d: ", t->step + 1);
    if (objective_eval(&t->obj, &out, &target, terms, total, t->grad))
        return -1;
    int k = t->obj.n, updated;
    if (t->adv.net) {
        if (adversary_step(&t->adv, &out, &target, t->obj.adversarial, noise, t->grad,
                           &terms[k], &terms[k + 1], &updated))
            return -1;
        *total += t->obj.adversarial * terms[k];
        t->d_updates += updated;
        k += 2;
    }
    if (t->obj.kl && kl_term(t, &terms[k], total))
        return -1;
    if (!isfinite(*total))
        return percept_fail("the loss is not finite at step %d (learning rate too high?)",
                            t->step + 1);
    /* a finite loss can still have a NaN gradient; one step of it ruins every weight */
    if (percept_loss_finite(t->grad, percept_tensor_numel(&out), "the losses' gradient"))
        return percept_fail_prefix("step %d: ", t->step + 1);
    const char *from[] = {VAE_OUTPUT, VAE_CODE};
    const float *grads[] = {t->grad, t->kl_grad};
    if (t->obj.kl ? percept_net_backward_from(t->net, from, grads, 2, NULL)
                  : percept_net_backward(t->net, t->grad, NULL))
        return -1;
    /* cosine from lr to lr-final: a function of the step alone, so resuming is exact */
    double progress = r->steps > 1 ? (double)t->step / (r->steps - 1) : 1.0;
    t->adam.cfg.lr = (float)(r->lr_final + 0.5 * (r->lr - r->lr_final) *
                                               (1.0 + cos(M_PI * progress)));
    size_t count;
    float *params = percept_net_params(t->net, &count);
    if (percept_loss_finite(percept_net_grads(t->net, &count), count, "a weight's gradient"))
        return percept_fail_prefix("step %d: ", t->step + 1);
    if (percept_adam_step(&t->adam, params, percept_net_grads(t->net, &count)))
        return percept_fail_prefix("step %d: ", t->step + 1);
    percept_net_zero_grads(t->net);
    return 0;
}

/* OUT.preview.png (.ppm without GEGL): the network on the first validation image (degraded as in training). */
static int save_preview(Trainer *t)
{
    if (!t->n_val)
        return 0;
    const PerceptTensor *clean = &t->val[0];
    int s = t->r.scale;
    PerceptTensor in = {1, 3, clean->h / s, clean->w / s,
                        malloc(sizeof(float) * percept_tensor_numel(clean))};
    char *path = g_strconcat(t->r.out, ".preview", image_save_ext, NULL);
    int rc = in.data ? eval_degrade(t->task, in.data, clean->data, clean->h, clean->w, s,
                                    t->r.degrade, 1, 0)
                     : percept_fail("out of memory");
    PerceptTensor out;
    percept_net_set_training(t->net, 0);
    if (!rc)
        rc = percept_net_forward(t->net, &in, &out) || image_save_rgb(path, &out, 0);
    percept_net_set_training(t->net, 1);
    free(in.data);
    g_free(path);
    return rc;
}

/* A validation: upscale and reconstruct score PSNR-Y and more against the baselines (GEGL's
 * only when gegl), stylize the loss terms and objective (lower is better). */
typedef struct {
    Scores scores[EVAL_METHODS];
    double terms[OBJECTIVE_MAX_TERMS], objective;
} Validation;

static int validate(Trainer *t, int gegl, Validation *v)
{
    if (t->task == EVAL_STYLIZE)
        return validate_objective(t, v->terms, &v->objective);
    percept_net_set_training(t->net, 0);
    int rc = eval_mean(t->task, t->net, t->val, t->n_val, t->r.scale, t->r.degrade, gegl, 0,
                       v->scores);
    percept_net_set_training(t->net, 1);
    percept_net_release_memory(t->net);
    return rc;
}

/* The final validation's table: stylize's loss terms, or the scores against the baselines. */
static void print_validation(const Trainer *t, const Validation *val)
{
    if (t->task != EVAL_STYLIZE) {
        eval_print_table(stdout, t->task, val->scores, t->n_val, t->r.scale);
        return;
    }
    printf("| loss (%d validation images) | mean |\n|---|---:|\n", t->n_val);
    for (int i = 0; i < t->obj.n; i++)
        printf("| %s (weight %g) | %.6g |\n", t->obj.spec[i], t->obj.weight[i], val->terms[i]);
    printf("| objective | %.6g |\n", val->objective);
}

static void print_progress(const Trainer *t, const double *terms, double total, double rate,
                           const Validation *val)
{
    const Recipe *r = &t->r;
    double eta = rate > 0 ? (r->steps - t->step) / rate : 0;
    fprintf(stderr, "\rstep %d/%d  %.2f steps/s  ETA %dh%02dm  loss %.5f", t->step, r->steps,
            rate, (int)(eta / 3600), (int)fmod(eta / 60, 60), total);
    for (int i = 0; i < t->n_terms && t->n_terms > 1; i++)
        fprintf(stderr, "  %s %.5f", t->term[i], terms[i]);
    if (val && t->task == EVAL_STYLIZE)
        fprintf(stderr, "  val objective %.5f", val->objective);
    else if (val)
        fprintf(stderr, "  val PSNR-Y %.2f dB (%s %.2f)", val->scores[0].psnr_y,
                eval_method_name(t->task, 1), val->scores[1].psnr_y);
    fputs(isatty(2) ? "\033[K" : "\n", stderr);
}

static void log_row(Trainer *t, double seconds, const double *terms, double total,
                    const Validation *val)
{
    if (!t->csv)
        return;
    fprintf(t->csv, "%d,%.1f,%.6g", t->step, seconds, total);
    for (int i = 0; i < t->n_terms; i++)
        fprintf(t->csv, ",%.6g", terms[i]);
    if (val && t->task == EVAL_STYLIZE)
        fprintf(t->csv, ",%.6g\n", val->objective);
    else if (val)
        fprintf(t->csv, ",%.4f,%.5f,%.4f\n", val->scores[0].psnr_y, val->scores[0].ssim_y,
                val->scores[1].psnr_y);
    else
        fprintf(t->csv, t->task == EVAL_STYLIZE ? ",\n" : ",,,\n");
    fflush(t->csv);
}

static int open_log(Trainer *t, int resume)
{
    int fresh = !resume || access(t->csv_path, F_OK) != 0;
    t->csv = fopen(t->csv_path, fresh ? "w" : "a");
    if (!t->csv)
        return percept_fail("%s: cannot write the log", t->csv_path);
    if (fresh) {
        fprintf(t->csv, "step,seconds,loss");
        for (int i = 0; i < t->n_terms; i++)
            fprintf(t->csv, ",\"%s\"", t->term[i]);
        fprintf(t->csv, t->task == EVAL_STYLIZE ? ",val_objective\n"
                                                 : ",val_psnr_y,val_ssim_y,val_baseline_psnr_y\n");
    }
    return 0;
}

/* The trained network with what a user needs to know about it. */
static int save_result(Trainer *t, const Validation *v)
{
    char scale[16], steps[32], metrics[320];
    const Scores *final = v->scores;
    snprintf(scale, sizeof scale, "%d", t->r.scale);
    snprintf(steps, sizeof steps, "%d", t->step);
    if (t->task == EVAL_STYLIZE)
        snprintf(metrics, sizeof metrics, "{\"val_objective\": %.6g, \"val_images\": %d}",
                 v->objective, t->n_val);
    else
        snprintf(metrics, sizeof metrics,
                 "{\"val_psnr_y\": %.3f, \"val_ssim_y\": %.4f, \"val_swd\": %.3f, "
                 "\"baseline\": \"%s\", \"baseline_psnr_y\": %.3f, \"val_images\": %d}",
                 final[0].psnr_y, final[0].ssim_y, final[0].swd, eval_method_name(t->task, 1),
                 final[1].psnr_y, t->n_val);
    char *recipe = recipe_text(&t->r), *manifest = dataset_manifest(&t->data, t->r.data);
    PerceptStMeta meta[] = {
        {"percept.task", t->r.task},
        {"percept.scale", scale},
        {"percept.name", t->r.name},
        {"percept.description", t->r.description},
        {"percept.recipe", recipe},
        {"percept.data", manifest},
        {"percept.steps", steps},
        {"percept.metrics", metrics},
    };
    int n_meta = sizeof meta / sizeof *meta;
    if (t->task != EVAL_UPSCALE) /* no scale: it keeps the size */
        meta[1] = meta[--n_meta];
    int rc = percept_net_save(t->net, t->r.out, t->r.fp16 ? PERCEPT_DTYPE_F16 : PERCEPT_DTYPE_F32,
                              meta, n_meta);
    g_free(recipe);
    g_free(manifest);
    return rc;
}

/* The logged terms, and what the trainer's own terms need: D for adv, a VAE for kl. */
static int setup_terms(Trainer *t)
{
    for (int i = 0; i < t->obj.n; i++)
        t->term[t->n_terms++] = t->obj.spec[i];
    if (t->obj.adversarial) {
        if (adversary_init(&t->adv, t->r.crop, 32, t->r.discriminator_lr, t->r.seed, t->r.out))
            return -1;
        t->term[t->n_terms++] = "adv";
        t->term[t->n_terms++] = "discriminator";
    }
    if (t->obj.kl) {
        if (strcmp(t->r.arch, "vae"))
            return percept_fail("loss kl needs the variational autoencoder (arch vae), not %s",
                                t->r.arch);
        t->term[t->n_terms++] = "kl";
    }
    return 0;
}

/* Fine-tuning: the recipe's network with the parameters of r->init (every tensor by name
 * and shape, none missing or extra, so a file of another network is refused). */
static PerceptNet *net_from_init(const Recipe *r, const char *arch)
{
    PerceptSafetensors *st = percept_st_read(r->init);
    if (!st) {
        percept_fail_prefix("init: ");
        return NULL;
    }
    PerceptNet *net = percept_net_from_safetensors(st, arch);
    percept_st_free(st);
    if (!net)
        percept_fail_prefix("init %s is not a start for this recipe's network: ", r->init);
    return net;
}

static int run(Trainer *t, int resume)
{
    Recipe *r = &t->r;
    char *arch = arch_for(r);
    t->net = *r->init && !resume ? net_from_init(r, arch) : percept_net_from_arch(arch, r->seed);
    if (!t->net) {
        free(arch);
        return -1;
    }
    t->align = percept_net_alignment(t->net);
    if (r->crop % (r->scale * t->align)) {
        free(arch);
        return percept_fail("crop %d: this network needs a multiple of %d", r->crop,
                            r->scale * t->align);
    }
    PerceptAdamConfig cfg = {(float)r->lr, 0.9f, 0.999f, 1e-8f, 0};
    size_t count;
    percept_net_params(t->net, &count);
    if (percept_adam_init(&t->adam, count, cfg)) {
        free(arch);
        return -1;
    }
    int rc = objective_init(&t->obj, r->losses) || setup_terms(t) ||
             (resume && load_checkpoint(t, arch));
    free(arch);
    if (rc)
        return -1;
    if (t->task == EVAL_STYLIZE && objective_set_style(&t->obj, r->style, r->style_size))
        return -1;
    warn_generic_blas();
    fprintf(stderr, "percept train: loading %s\n", r->data);
    if (dataset_load(&t->data, r->data, r->crop, (size_t)(r->max_megapixels * 1e6),
                     r->val_fraction, stderr) || make_validation(t) || open_log(t, resume))
        return -1;
    fprintf(stderr, "percept train: %d images (%d training, %d validation, %.0f MiB), "
            "%s x%d, %zu parameters on the %s, %s%d steps of %d × %d² crops\n", t->data.n,
            t->data.n_train, t->data.n_val, t->data.bytes / 1048576.0, r->arch, r->scale,
            count, strcmp(percept_net_device(t->net), "cpu") ? "GPU (CUDA)" : "CPU",
            resume ? "resuming at step " : "", resume ? t->step : r->steps, r->batch, r->crop);
    size_t hr_n = 3 * (size_t)r->crop * r->crop * r->batch;
    t->hr = malloc(sizeof(float) * hr_n);
    t->lr = malloc(sizeof(float) * hr_n);
    t->grad = percept_buffer_new(hr_n); /* where the network runs: the losses write it there */
    if (!t->hr || !t->lr || !t->grad)
        return percept_fail("out of memory for batches");
    percept_net_set_training(t->net, 1);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    double terms[MAX_TERMS] = {0}, total = 0, start = now(), last_print = 0;
    int start_step = t->step;
    Validation val = {0}; /* stays zero when there are no validation images */
    while (t->step < r->steps && !interrupted) {
        if (train_step(t, terms, &total))
            return -1;
        t->step++;
        double elapsed = now() - start, rate = (t->step - start_step) / elapsed;
        int validating = r->validate_every && t->step % r->validate_every == 0 && t->n_val;
        if (validating && (validate(t, 0, &val) || save_preview(t)))
            return -1;
        if (validating || now() - last_print > (isatty(2) ? 0.5 : 30) || t->step == r->steps) {
            print_progress(t, terms, total, rate, validating ? &val : NULL);
            last_print = now();
        }
        if (validating || t->step % 10 == 0)
            log_row(t, elapsed, terms, total, validating ? &val : NULL);
        if (r->checkpoint_every && t->step % r->checkpoint_every == 0 && save_checkpoint(t))
            return -1;
    }
    if (interrupted) {
        if (save_checkpoint(t))
            return -1;
        fprintf(stderr, "\npercept train: interrupted at step %d; checkpoint %s written, "
                "continue with --resume\n", t->step, t->ckpt);
        return 1;
    }
    if (save_checkpoint(t))
        return -1;
    if (t->n_val) {
        fprintf(stderr, "\npercept train: evaluating on %d validation images\n", t->n_val);
        if (validate(t, EVAL_HAVE_GEGL, &val))
            return -1;
    }
    if (save_result(t, &val))
        return -1;
    if (t->n_val)
        print_validation(t, &val);
    char *plot = g_strconcat(r->out, ".loss", image_save_ext, NULL);
    fflush(t->csv);
    if (plot_training_log(t->csv_path, plot))
        fprintf(stderr, "percept train: no loss plot: %s\n", percept_error());
    g_free(plot);
    if (t->adv.net)
        printf("discriminator: updated in %d of %d steps of this run (paused while Ldiscr/Ladv "
               "< %g)\n", t->d_updates, t->step - start_step, ADVERSARY_PAUSE_RATIO);
    printf("wrote %s (%d steps)\n", r->out, t->step);
    return 0;
}

static void trainer_free(Trainer *t)
{
    objective_free(&t->obj);
    adversary_free(&t->adv);
    free(t->kl_grad);
    for (int i = 0; i < t->n_val; i++)
        free(t->val[i].data);
    free(t->val);
    percept_net_free(t->net);
    percept_adam_free(&t->adam);
    dataset_free(&t->data);
    if (t->csv)
        fclose(t->csv);
    free(t->hr);
    free(t->lr);
    percept_buffer_free(t->grad);
    g_free(t->ckpt);
    g_free(t->adam_path);
    g_free(t->csv_path);
    recipe_free(&t->r);
}

int cmd_train(int argc, char **argv)
{
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs(train_usage, argc < 2 ? stderr : stdout);
        fputs(recipe_keys_help, argc < 2 ? stderr : stdout);
        return argc < 2 ? 2 : 0;
    }
    if (strcmp(argv[1], "upscale") && strcmp(argv[1], "reconstruct") &&
        strcmp(argv[1], "stylize") && strcmp(argv[1], "autoencoder")) {
        fprintf(stderr, "percept train: unknown task '%s' (upscale, reconstruct, stylize, "
                "autoencoder)\n", argv[1]);
        return 2;
    }
    /* --recipe and --resume are the trainer's; the rest are recipe keys */
    const char *recipe = NULL;
    int resume = 0, n = 0;
    char **rest = calloc(argc + 1, sizeof(char *));
    rest[n++] = argv[1];
    for (int i = 2; i < argc; i++) {
        if (!strcmp(argv[i], "--recipe") && i + 1 < argc)
            recipe = argv[++i];
        else if (!strcmp(argv[i], "--resume"))
            resume = 1;
        else
            rest[n++] = argv[i];
    }
    Trainer t = {0};
    images_init();
    t.task = !strcmp(argv[1], "upscale") ? EVAL_UPSCALE
             : !strcmp(argv[1], "stylize")     ? EVAL_STYLIZE
             : !strcmp(argv[1], "autoencoder") ? EVAL_AUTOENCODER
                                               : EVAL_RECONSTRUCT;
    int rc = recipe_load(&t.r, recipe, n, rest);
    free(rest);
    if (!rc) {
        t.ckpt = g_strconcat(t.r.out, ".ckpt", NULL);
        t.adam_path = g_strconcat(t.r.out, ".adam", NULL);
        t.csv_path = g_strconcat(t.r.out, ".csv", NULL);
        rc = run(&t, resume);
    }
    if (rc < 0)
        fprintf(stderr, "\npercept train: %s\n", percept_error());
    trainer_free(&t);
    images_exit();
    return rc < 0 ? 1 : rc ? 130 : 0;
}
