/* Norm scales, biases and running statistics start at 1, 0, 0 and 1, which would hide them
 * (an eval batch norm would be the identity): tests that compare two runs of a network
 * give both the same random values instead (scales and variances in [0.5, 2), biases and
 * means in [-0.5, 0.5)). Weights keep their init. Needs graph.h. */
#ifndef PERCEPT_TEST_NORM_VECTORS_H
#define PERCEPT_TEST_NORM_VECTORS_H

#include <string.h>

static float *net_param_data(PerceptNet *net, const Param *p)
{
    return (p->trainable ? net->params_data : net->buffers_data) + p->off;
}

static void randomise_norm_vectors(PerceptNet *a, PerceptNet *b)
{
    for (int i = 0; i < a->n_params; i++) {
        const Param *p = &a->params[i];
        const char *dot = strrchr(p->name, '.'), *suffix = dot ? dot + 1 : p->name;
        float lo = -0.5f, hi = 0.5f;
        if (!strcmp(suffix, "running_var") || (p->ndim == 1 && !strcmp(suffix, "weight")))
            lo = 0.5f, hi = 2.0f;
        else if (strcmp(suffix, "bias") && strcmp(suffix, "running_mean"))
            continue;
        float *va = net_param_data(a, p), *vb = net_param_data(b, &b->params[i]);
        for (size_t j = 0; j < p->numel; j++)
            va[j] = vb[j] = lo + (hi - lo) * percept_rng_uniform(17 + (uint64_t)i, j);
    }
}

#endif
