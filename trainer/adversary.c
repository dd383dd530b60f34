/* The adversarial term and its discriminator (see adversary.h). */
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "adversary.h"

int adversary_init(Adversary *a, int size, int width, double lr, uint64_t seed,
                   const char *out)
{
    memset(a, 0, sizeof *a);
    char *arch = percept_arch_deepsim_discriminator(&(PerceptDiscriminatorOpts){size, width});
    if (!arch)
        return percept_fail_prefix("adversarial loss: ");
    /* a seed of its own, so adding D does not change how G is initialised */
    a->net = percept_net_from_arch(arch, seed ^ 0x64697363ull);
    free(arch);
    if (!a->net)
        return -1;
    size_t count;
    percept_net_params(a->net, &count);
    PerceptAdamConfig cfg = {(float)lr, 0.9f, 0.999f, 1e-8f, 0};
    if (percept_adam_init(&a->adam, count, cfg))
        return -1;
    a->ckpt = g_strconcat(out, ".disc.ckpt", NULL);
    a->adam_path = g_strconcat(out, ".disc.adam", NULL);
    percept_net_set_training(a->net, 1);
    return 0;
}

void adversary_free(Adversary *a)
{
    percept_net_free(a->net);
    percept_adam_free(&a->adam);
    free(a->both);
    free(a->dlogits);
    free(a->dfake);
    g_free(a->ckpt);
    g_free(a->adam_path);
    memset(a, 0, sizeof *a);
}

static int ensure_buffers(Adversary *a, size_t per_batch, int n)
{
    if (a->batch_floats >= per_batch)
        return 0;
    free(a->both);
    free(a->dlogits);
    free(a->dfake);
    a->both = malloc(sizeof(float) * 2 * per_batch);
    a->dlogits = malloc(sizeof(float) * 2 * (size_t)n);
    a->dfake = malloc(sizeof(float) * per_batch);
    a->batch_floats = a->both && a->dlogits && a->dfake ? per_batch : 0;
    return a->batch_floats ? 0 : percept_fail("out of memory for the discriminator");
}

int adversary_step(Adversary *a, const PerceptTensor *fake, const PerceptTensor *real,
                   double weight, uint64_t noise_seed, float *grad, double *l_adv,
                   double *l_discr, int *updated)
{
    const int n = fake->n;
    size_t per_batch = percept_tensor_numel(fake);
    if (ensure_buffers(a, per_batch, n))
        return -1;
    PerceptTensor logits;

    /* G's term through the current D: gradients with respect to the image only */
    percept_net_set_frozen(a->net, 1);
    percept_net_set_noise_seed(a->net, noise_seed);
    if (percept_net_forward(a->net, fake, &logits))
        return -1;
    *l_adv = percept_loss_adv_generator(logits.data, n, a->dlogits);
    if (percept_net_backward(a->net, a->dlogits, a->dfake))
        return -1;
    for (size_t i = 0; i < per_batch; i++)
        grad[i] += (float)weight * a->dfake[i];

    /* D's loss on real and (the same) fake images, one batch */
    percept_net_set_frozen(a->net, 0);
    memcpy(a->both, real->data, sizeof(float) * per_batch);
    memcpy(a->both + per_batch, fake->data, sizeof(float) * per_batch);
    PerceptTensor both = {2 * n, fake->c, fake->h, fake->w, a->both};
    percept_net_set_noise_seed(a->net, noise_seed ^ 0x7265616cull);
    if (percept_net_forward(a->net, &both, &logits))
        return -1;
    *l_discr = percept_loss_adv_discriminator(logits.data, logits.data + n, n, a->dlogits,
                                              a->dlogits + n);
    *updated = !(*l_discr < ADVERSARY_PAUSE_RATIO * *l_adv);
    if (*updated) {
        if (percept_net_backward(a->net, a->dlogits, NULL))
            return -1;
        size_t count;
        if (percept_adam_step(&a->adam, percept_net_params(a->net, &count),
                              percept_net_grads(a->net, &count)))
            return -1;
        percept_net_zero_grads(a->net);
        a->updates++;
    }
    return 0;
}

int adversary_save(Adversary *a, int step)
{
    char s[32], u[32];
    snprintf(s, sizeof s, "%d", step);
    snprintf(u, sizeof u, "%lld", (long long)a->updates);
    PerceptStMeta meta[] = {{"percept.task", "checkpoint"}, {"percept.step", s},
                            {"percept.updates", u}};
    return percept_adam_save(&a->adam, a->adam_path) ||
                   percept_net_save(a->net, a->ckpt, PERCEPT_DTYPE_F32, meta, 3)
               ? -1
               : 0;
}

int adversary_load(Adversary *a, int step)
{
    PerceptSafetensors *st = percept_st_read(a->ckpt);
    if (!st)
        return percept_fail_prefix("--resume (discriminator): ");
    const char *s = percept_st_meta(st, "percept.step"), *u = percept_st_meta(st, "percept.updates");
    int rc = 0;
    if (!s || !u || atoi(s) != step) {
        rc = percept_fail("--resume: %s is not the discriminator of step %d", a->ckpt, step);
    } else {
        PerceptNet *net = percept_net_from_safetensors(st, percept_net_arch(a->net));
        if (!net) {
            rc = percept_fail_prefix("--resume (discriminator): ");
        } else {
            percept_net_free(a->net);
            a->net = net;
            percept_net_set_training(a->net, 1);
            a->updates = atoll(u);
        }
    }
    percept_st_free(st);
    if (!rc && percept_adam_load(&a->adam, a->adam_path))
        rc = percept_fail_prefix("--resume (discriminator): ");
    if (!rc && a->adam.step != a->updates)
        rc = percept_fail("--resume: %s is at update %lld but %s at %lld (interrupted while "
                          "writing?)", a->adam_path, (long long)a->adam.step, a->ckpt,
                          (long long)a->updates);
    return rc;
}
