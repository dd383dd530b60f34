/* Adam (Kingma & Ba) with PyTorch's semantics: bias-corrected moments, eps added after the
 * square root of v̂; weight decay decoupled (AdamW: p *= 1 − lr·wd) when set. The step's
 * arithmetic is where the parameters are (core/nets/math.c: the host's, or the GPU's twin in
 * kernels/loss.cu). The state is an ordinary safetensors file: tensors adam.m and adam.v,
 * the step and settings as metadata. */
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "percept/percept.h"
#include "graph.h"

int percept_adam_init(PerceptAdam *a, size_t count, PerceptAdamConfig cfg)
{
    memset(a, 0, sizeof *a);
    /* written as !(ok) so NaN settings are refused too */
    if (!(cfg.lr > 0 && isfinite(cfg.lr)) || !(cfg.beta1 >= 0 && cfg.beta1 < 1) ||
        !(cfg.beta2 >= 0 && cfg.beta2 < 1) || !(cfg.eps > 0 && isfinite(cfg.eps)) ||
        !(cfg.weight_decay >= 0 && isfinite(cfg.weight_decay)))
        return percept_fail("Adam: invalid settings (lr %g, betas %g/%g, eps %g, decay %g)",
                            cfg.lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay);
    a->m = percept_buffer_new(count ? count : 1);
    a->v = percept_buffer_new(count ? count : 1);
    if (!a->m || !a->v) {
        percept_adam_free(a);
        return percept_fail("Adam: out of memory for %zu parameters", count);
    }
    a->cfg = cfg;
    a->count = count;
    return 0;
}

void percept_adam_free(PerceptAdam *a)
{
    percept_buffer_free(a->m);
    percept_buffer_free(a->v);
    a->m = a->v = NULL;
}

AdamScalars adam_scalars(const PerceptAdam *a)
{
    const PerceptAdamConfig c = a->cfg;
    /* in double, then rounded once, as PyTorch computes them in Python */
    const double t = (double)(a->step + 1);
    return (AdamScalars){
        .b1 = c.beta1,
        .b2 = c.beta2,
        .eps = c.eps,
        .step_size = (float)(c.lr / (1.0 - pow(c.beta1, t))),
        .bc2_sqrt = (float)sqrt(1.0 - pow(c.beta2, t)),
        .keep = (float)(1.0 - (double)c.lr * c.weight_decay),
        .decay = c.weight_decay > 0,
    };
}

int percept_adam_step(PerceptAdam *a, float *params, const float *grads)
{
    const AdamScalars s = adam_scalars(a);
    /* where the parameters are: on the GPU for a network there (math.c) */
    if (MATH_FOR(params, grads, a->m, a->v)->adam(&s, params, grads, a->m, a->v, a->count))
        return percept_fail_prefix("Adam: ");
    a->step++;
    return 0;
}

/* ---- checkpoints ------------------------------------------------------------------- */

int percept_adam_save(const PerceptAdam *a, const char *path)
{
    if (a->count > (size_t)INT64_MAX)
        return percept_fail("%s: Adam state too large", path);
    /* %.9g prints a float exactly; the settings are recorded so a checkpoint documents
     * itself, the step is what load restores */
    char val[7][40];
    snprintf(val[0], sizeof val[0], "%" PRId64, a->step);
    snprintf(val[1], sizeof val[1], "%zu", a->count);
    snprintf(val[2], sizeof val[2], "%.9g", a->cfg.lr);
    snprintf(val[3], sizeof val[3], "%.9g", a->cfg.beta1);
    snprintf(val[4], sizeof val[4], "%.9g", a->cfg.beta2);
    snprintf(val[5], sizeof val[5], "%.9g", a->cfg.eps);
    snprintf(val[6], sizeof val[6], "%.9g", a->cfg.weight_decay);
    PerceptStMeta meta[7] = {{"adam.step", val[0]},  {"adam.count", val[1]},
                             {"adam.lr", val[2]},    {"adam.beta1", val[3]},
                             {"adam.beta2", val[4]}, {"adam.eps", val[5]},
                             {"adam.weight_decay", val[6]}};
    PerceptStWrite t[2] = {{"adam.m", PERCEPT_DTYPE_F32, 1, {(int64_t)a->count}, a->m},
                           {"adam.v", PERCEPT_DTYPE_F32, 1, {(int64_t)a->count}, a->v}};
    return percept_st_write(path, t, 2, meta, 7);
}

/* A non-negative decimal integer, the whole string; -1 otherwise. */
static int64_t parse_step(const char *s)
{
    if (!s || *s < '0' || *s > '9')
        return -1;
    char *end;
    errno = 0;
    long long v = strtoll(s, &end, 10);
    return *end || errno ? -1 : (int64_t)v;
}

static int check_moments(const PerceptStTensor *m, const PerceptStTensor *v, size_t count,
                         const char *path)
{
    if (!m || !v)
        return percept_fail("%s: not an Adam state (no tensors adam.m and adam.v)", path);
    if (m->numel != count || v->numel != count)
        return percept_fail("%s: Adam state is for %zu parameters, this network has %zu", path,
                            m->numel != count ? m->numel : v->numel, count);
    /* v is a running mean of squares: a negative entry would make sqrt() NaN */
    for (size_t i = 0; i < count; i++)
        if (v->data[i] < 0)
            return percept_fail("%s: adam.v[%zu] is negative (%g)", path, i, v->data[i]);
    return 0;
}

/* Restores m, v and the step. The settings stay the caller's (a resumed run may lower the
 * learning rate); a is untouched when loading fails. */
int percept_adam_load(PerceptAdam *a, const char *path)
{
    PerceptSafetensors *st = percept_st_read(path);
    if (!st)
        return -1; /* the reader's message names the file */
    const PerceptStTensor *m = percept_st_find(st, "adam.m"), *v = percept_st_find(st, "adam.v");
    int64_t step = parse_step(percept_st_meta(st, "adam.step"));
    int rc = check_moments(m, v, a->count, path);
    if (!rc && step < 0)
        rc = percept_fail("%s: adam.step is missing or not a non-negative integer", path);
    if (!rc) {
        memcpy(a->m, m->data, sizeof(float) * a->count);
        memcpy(a->v, v->data, sizeof(float) * a->count);
        a->step = step;
    }
    percept_st_free(st);
    return rc;
}
