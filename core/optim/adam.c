/* Adam (Kingma & Ba) with PyTorch's semantics: bias-corrected moments, eps added after the
 * square root; weight decay decoupled (AdamW) when set. State saves as safetensors. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "percept/percept.h"

int percept_adam_init(PerceptAdam *a, size_t count, PerceptAdamConfig cfg)
{
    memset(a, 0, sizeof *a);
    if (!(cfg.lr > 0) || !(cfg.beta1 >= 0 && cfg.beta1 < 1) || !(cfg.beta2 >= 0 && cfg.beta2 < 1) ||
        !(cfg.eps > 0) || !(cfg.weight_decay >= 0))
        return percept_fail("Adam: invalid settings (lr %g, betas %g/%g, eps %g, decay %g)",
                            cfg.lr, cfg.beta1, cfg.beta2, cfg.eps, cfg.weight_decay);
    a->m = calloc(count ? count : 1, sizeof(float));
    a->v = calloc(count ? count : 1, sizeof(float));
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
    free(a->m);
    free(a->v);
    a->m = a->v = NULL;
}

void percept_adam_step(PerceptAdam *a, float *params, const float *grads)
{
    const PerceptAdamConfig c = a->cfg;
    a->step++;
    const float bc1 = 1.0f - (float)pow(c.beta1, (double)a->step);
    const float bc2 = 1.0f - (float)pow(c.beta2, (double)a->step);
    const float step_size = c.lr / bc1, decay = c.lr * c.weight_decay;
    const float rbc2 = 1.0f / sqrtf(bc2);
    float *m = a->m, *v = a->v;
#pragma omp parallel for simd schedule(static)
    for (size_t i = 0; i < a->count; i++) {
        float g = grads[i];
        m[i] = c.beta1 * m[i] + (1.0f - c.beta1) * g;
        v[i] = c.beta2 * v[i] + (1.0f - c.beta2) * g * g;
        params[i] -= decay * params[i];
        params[i] -= step_size * m[i] / (sqrtf(v[i]) * rbc2 + c.eps);
    }
}

int percept_adam_save(const PerceptAdam *a, const char *path)
{
    char step[32], cfg[160];
    snprintf(step, sizeof step, "%lld", (long long)a->step);
    snprintf(cfg, sizeof cfg, "lr=%.9g beta1=%.9g beta2=%.9g eps=%.9g weight_decay=%.9g",
             a->cfg.lr, a->cfg.beta1, a->cfg.beta2, a->cfg.eps, a->cfg.weight_decay);
    PerceptStWrite t[2] = {{"adam.m", PERCEPT_DTYPE_F32, 1, {(int64_t)a->count}, a->m},
                           {"adam.v", PERCEPT_DTYPE_F32, 1, {(int64_t)a->count}, a->v}};
    PerceptStMeta meta[2] = {{"adam.step", step}, {"adam.config", cfg}};
    return percept_st_write(path, t, 2, meta, 2);
}

int percept_adam_load(PerceptAdam *a, const char *path)
{
    PerceptSafetensors *st = percept_st_read(path);
    if (!st)
        return -1;
    const PerceptStTensor *m = percept_st_find(st, "adam.m"), *v = percept_st_find(st, "adam.v");
    const char *step = percept_st_meta(st, "adam.step");
    char *end = NULL;
    long long s = step ? strtoll(step, &end, 10) : -1;
    int rc = 0;
    if (!m || !v || !step || *end || s < 0)
        rc = percept_fail("%s: not an Adam state (adam.m, adam.v, adam.step)", path);
    else if (m->numel != a->count || v->numel != a->count)
        rc = percept_fail("%s: Adam state is for %zu parameters, this network has %zu", path,
                          m->numel, a->count);
    else {
        memcpy(a->m, m->data, sizeof(float) * a->count);
        memcpy(a->v, v->data, sizeof(float) * a->count);
        a->step = s;
    }
    percept_st_free(st);
    return rc;
}
