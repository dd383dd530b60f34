/* Losses configured by a short string ("feat:vgg16:relu2_2", ...), with their loss network
 * and the target they compare with. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "percept/percept.h"
#include "graph.h"

#define MAX_LAYERS 13    /* every ReLU of VGG-16 */
#define LOSS_GROUP_MAX 8 /* losses sharing one network pass */
#define MAX_NODES (2 * MAX_LAYERS) /* distinct layers a group's losses read */
#define MMD_LEVELS_MAX 8  /* style-mmd: pyramid levels (levels1 … levels8) */

/* kinds up to KIND_SWD compare with a target image of the same shape */
typedef enum {
    KIND_MSE, KIND_L1, KIND_SSIM, KIND_MS_SSIM, KIND_SSIM_RIDGEWAY, KIND_MMD, KIND_MMD_PLUS,
    KIND_SWD, KIND_TV, KIND_FEAT, KIND_STYLE, KIND_STYLE_MMD
} Kind;

struct PerceptLoss {
    Kind kind;
    PerceptNet *net;
    int n_layers;
    char layers[MAX_LAYERS][24];    /* node names, "features.8" */
    Buffer target[MAX_LAYERS];      /* image, features or Gram matrices per layer */
    PerceptTensor target_shape[MAX_LAYERS];
    int has_target;
    PerceptMmdConfig mmd;
    PerceptSwdConfig swd;
    int levels;                     /* style-mmd: pyramid levels */
    char spec[1024];                /* as given: errors name it */
    char net_spec[1024];            /* feat, style: losses with equal specs share one pass */
    int depth;                      /* feat, style: index of the deepest layer used */
    /* working memory, kept between evaluations (where the networks are: math.c) */
    Buffer layer_grad[MAX_NODES];   /* a group's owner: the gradient at each layer read */
    Buffer grad, gram;              /* one layer's gradient and Gram matrices */
    Buffer part;                    /* the first of the losses evaluated together: a group's
                                     * gradient with respect to the image */
    /* style-mmd: its networks by the number of levels an image has room for, and the
     * embedding repeated for each image of a batch (for tiled_n images of tiled_levels) */
    PerceptNet *mmd_net[MMD_LEVELS_MAX];
    char mmd_device[8];             /* theirs: the default device when the loss was made */
    Buffer tiled;
    int tiled_n, tiled_levels;
};

void percept_loss_free(PerceptLoss *loss)
{
    if (!loss)
        return;
    for (int i = 0; i < MAX_LAYERS; i++)
        buffer_free(&loss->target[i]);
    for (int i = 0; i < MAX_NODES; i++)
        buffer_free(&loss->layer_grad[i]);
    buffer_free(&loss->grad);
    buffer_free(&loss->gram);
    buffer_free(&loss->part);
    buffer_free(&loss->tiled);
    for (int i = 0; i < MMD_LEVELS_MAX; i++)
        percept_net_free(loss->mmd_net[i]);
    percept_net_free(loss->net);
    free(loss);
}

/* NET: vgg16, vgg16#SEED or vgg16@FILE */
static PerceptNet *make_network(const char *net_spec, const char *deepest)
{
    char *arch = NULL;
    PerceptNet *net = NULL;
    if (strncmp(net_spec, "vgg16", 5) || (net_spec[5] && net_spec[5] != '#' && net_spec[5] != '@')) {
        percept_fail("unknown loss network '%s' (vgg16, vgg16#SEED or vgg16@FILE)", net_spec);
        return NULL;
    }
    if (!(arch = percept_arch_vgg16(deepest)))
        return NULL;
    if (net_spec[5] == '@') {
        PerceptSafetensors *st = percept_st_read(net_spec + 6);
        if (st && !(net = percept_net_from_safetensors_subset(st, arch)))
            percept_fail_prefix("%s: ", net_spec + 6);
        percept_st_free(st);
    } else {
        char *end = NULL;
        unsigned long long seed = net_spec[5] == '#' ? strtoull(net_spec + 6, &end, 10) : 1;
        if (net_spec[5] == '#' && (end == net_spec + 6 || *end))
            percept_fail("loss network '%s': the seed must be a number", net_spec);
        else
            net = percept_net_from_arch(arch, seed);
    }
    free(arch);
    if (net) {
        percept_net_set_grad(net, 1);
        percept_net_set_frozen(net, 1); /* gradients flow to the image only */
    }
    return net;
}

static int parse_layers(PerceptLoss *loss, const char *list, int max, char *deepest, size_t len)
{
    char buf[256];
    snprintf(buf, sizeof buf, "%s", list);
    int best = -1;
    loss->depth = -1;
    for (char *save = NULL, *tok = strtok_r(buf, ",", &save); tok; tok = strtok_r(NULL, ",", &save)) {
        int index = percept_vgg16_layer_index(tok);
        if (index < 0)
            return percept_fail("unknown VGG-16 layer '%s' (relu1_1 … relu5_3)", tok);
        if (loss->n_layers == max)
            return percept_fail("too many layers in '%s'", list);
        snprintf(loss->layers[loss->n_layers++], sizeof loss->layers[0], "features.%d", index);
        if (index > best) {
            best = loss->depth = index;
            snprintf(deepest, len, "%s", tok);
        }
    }
    return loss->n_layers ? 0 : percept_fail("no layer given");
}

/* mmd options: p3 w32 s16 sigma0.6 f512 norm seed7, separated by ':' (defaults for the rest);
 * with levels non-NULL (style-mmd) also levels3 */
static int parse_mmd(PerceptMmdConfig *cfg, const char *opts, int *levels)
{
    const PerceptMmdConfig def = PERCEPT_MMD_DEFAULT;
    char buf[256];
    *cfg = def;
    snprintf(buf, sizeof buf, "%s", opts);
    for (char *save = NULL, *tok = strtok_r(buf, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
        char *end = NULL;
        double v = 0;
        const char *num = !strncmp(tok, "sigma", 5) ? tok + 5 : !strncmp(tok, "seed", 4) ? tok + 4 :
                          strchr("pwsf", tok[0]) ? tok + 1 : NULL;
        if (!strcmp(tok, "norm")) {
            cfg->channel_norm = 1;
            continue;
        }
        if (levels && !strncmp(tok, "levels", 6)) {
            char *end = NULL;
            long v = strtol(tok + 6, &end, 10);
            if (end == tok + 6 || *end || v < 1 || v > MMD_LEVELS_MAX)
                return percept_fail("bad MMD option '%s' (levels1 … levels%d)", tok,
                                    MMD_LEVELS_MAX);
            *levels = (int)v;
            continue;
        }
        if (num)
            v = strtod(num, &end);
        if (!num || end == num || *end || !(v > 0) || v > 1e9)
            return percept_fail("bad MMD option '%s' (p3 w32 s16 sigma0.6 f512 norm seed1)", tok);
        if (!strncmp(tok, "sigma", 5))
            cfg->sigma = (float)v;
        else if (!strncmp(tok, "seed", 4))
            cfg->seed = (uint64_t)v;
        else if (v != floor(v))
            return percept_fail("MMD option '%s' needs a whole number", tok);
        else if (tok[0] == 'p')
            cfg->patch = (int)v;
        else if (tok[0] == 'w')
            cfg->window = (int)v;
        else if (tok[0] == 's')
            cfg->stride = (int)v;
        else
            cfg->features = (int)v;
    }
    if (cfg->patch > 15 || cfg->features > 65536)
        return percept_fail("MMD: patch at most 15 and at most 65536 features");
    return 0;
}

/* swd options: p7 d32 s2 levels4 phases1 w0 seed1, separated by ':' (defaults for the rest) */
static int parse_swd(PerceptSwdConfig *cfg, const char *opts)
{
    static const char *const names[] = {"levels", "seed", "phases", "p", "d", "s", "w"};
    const int n_names = (int)(sizeof names / sizeof *names);
    const PerceptSwdConfig def = PERCEPT_SWD_DEFAULT;
    char buf[256];
    *cfg = def;
    snprintf(buf, sizeof buf, "%s", opts);
    for (char *save = NULL, *tok = strtok_r(buf, ":", &save); tok; tok = strtok_r(NULL, ":", &save)) {
        int k = 0;
        while (k < n_names && strncmp(tok, names[k], strlen(names[k])))
            k++;
        const char *num = k < n_names ? tok + strlen(names[k]) : tok;
        char *end = NULL;
        unsigned long long v = *num >= '0' && *num <= '9' ? strtoull(num, &end, 10) : 0;
        if (k == n_names || !end || *end || (k != 1 && (v < (k == 6 ? 0 : 1) || v > 4096)))
            return percept_fail("bad SWD option '%s' (p7 d32 s2 levels4 phases1 w0 seed1)", tok);
        int *field[] = {&cfg->levels, NULL, &cfg->phases, &cfg->patch, &cfg->directions,
                        &cfg->stride, &cfg->window};
        if (k == 1)
            cfg->seed = v;
        else
            *field[k] = (int)v;
    }
    return percept_swd_config_check(cfg);
}

PerceptLoss *percept_loss_new(const char *spec)
{
    PerceptLoss *loss = calloc(1, sizeof *loss);
    if (!loss || !spec) {
        percept_fail(loss ? "no loss given" : "out of memory");
        free(loss);
        return NULL;
    }
    const char *first = strchr(spec, ':'), *last = strrchr(spec, ':');
    size_t kind_len = first ? (size_t)(first - spec) : strlen(spec);
    static const char *const kinds[] = {"mse", "l1", "ssim", "ms-ssim", "ssim-ridgeway", "mmd",
                                        "mmd++", "swd", "tv", "feat", "style", "style-mmd"};
    const int n_kinds = (int)(sizeof kinds / sizeof *kinds);
    int k;
    for (k = 0; k < n_kinds; k++)
        if (strlen(kinds[k]) == kind_len && !strncmp(spec, kinds[k], kind_len))
            break;
    if (k == n_kinds) {
        percept_fail("unknown loss '%.*s' in '%s' (mse, l1, ssim, ms-ssim, ssim-ridgeway, mmd, "
                     "mmd++, swd, tv, feat, style, style-mmd)", (int)kind_len, spec, spec);
        goto fail;
    }
    loss->kind = (Kind)k;
    snprintf(loss->spec, sizeof loss->spec, "%s", spec);
    if (loss->kind == KIND_MMD || loss->kind == KIND_MMD_PLUS || loss->kind == KIND_STYLE_MMD) {
        loss->levels = 3;
        if (parse_mmd(&loss->mmd, first ? first + 1 : "",
                      loss->kind == KIND_STYLE_MMD ? &loss->levels : NULL)) {
            percept_fail_prefix("loss '%s': ", spec);
            goto fail;
        }
        if (loss->kind == KIND_STYLE_MMD) { /* its networks run where networks made now do */
            const PerceptBackend *b = backend_for_device(NULL);
            if (!b) {
                percept_fail_prefix("loss '%s': ", spec);
                goto fail;
            }
            snprintf(loss->mmd_device, sizeof loss->mmd_device, "%s", b->name);
        }
        return loss;
    }
    if (loss->kind == KIND_SWD) {
        if (parse_swd(&loss->swd, first ? first + 1 : "")) {
            percept_fail_prefix("loss '%s': ", spec);
            goto fail;
        }
        return loss;
    }
    if (loss->kind <= KIND_TV) {
        if (first) {
            percept_fail("loss '%s' takes no options", spec);
            goto fail;
        }
        return loss;
    }
    if (!first || first == last) {
        percept_fail("loss '%s' needs a network and layers, e.g. %s:vgg16:relu2_2", spec,
                     kinds[k]);
        goto fail;
    }
    char deepest[16];
    snprintf(loss->net_spec, sizeof loss->net_spec, "%.*s", (int)(last - first - 1), first + 1);
    if (parse_layers(loss, last + 1, loss->kind == KIND_FEAT ? 1 : MAX_LAYERS, deepest,
                     sizeof deepest) ||
        !(loss->net = make_network(loss->net_spec, deepest))) {
        percept_fail_prefix("loss '%s': ", spec);
        goto fail;
    }
    return loss;
fail:
    percept_loss_free(loss);
    return NULL;
}

PerceptNet *loss_network(const PerceptLoss *loss)
{
    return loss->net;
}

static int shape_matches(const PerceptTensor *a, const PerceptTensor *b)
{
    return a->n == b->n && a->c == b->c && a->h == b->h && a->w == b->w;
}

static int keep(PerceptLoss *loss, int i, const float *data, PerceptTensor shape, size_t n)
{
    float *dst = buffer_reserve(&loss->target[i], n);
    if (!dst || MATH_FOR(dst)->copy(dst, data, n)) /* data: the host's, or where dst is */
        return percept_fail_prefix("the loss target: ");
    shape.data = dst;
    loss->target_shape[i] = shape;
    return 0;
}

int percept_loss_set_target(PerceptLoss *loss, const PerceptTensor *t)
{
    if (percept_loss_finite(t->data, percept_tensor_numel(t), "loss target"))
        return -1;
    loss->has_target = 0;
    loss->tiled_n = 0;
    if (loss->kind == KIND_TV)
        return percept_fail("the tv loss takes no target");
    if (loss->kind <= KIND_SWD) {
        if (keep(loss, 0, t->data, *t, percept_tensor_numel(t)))
            return -1;
        loss->has_target = 1;
        return 0;
    }
    if (loss->kind == KIND_STYLE_MMD) {
        /* the style image's (its first image's) patch embedding, compared with every image */
        const size_t n = (size_t)loss->levels * loss->mmd.features;
        float *e = malloc(sizeof(float) * n);
        PerceptTensor first = *t;
        first.n = 1;
        int rc = e ? percept_patch_embedding(&first, &loss->mmd, loss->levels, e)
                   : percept_fail("out of memory for the style embedding");
        if (!rc)
            rc = keep(loss, 0, e, (PerceptTensor){1, 1, 1, (int)n, NULL}, n);
        free(e);
        loss->has_target = !rc;
        return rc;
    }
    PerceptTensor out;
    if (percept_net_forward(loss->net, t, &out))
        return -1;
    for (int i = 0; i < loss->n_layers; i++) {
        PerceptTensor f;
        percept_net_node_output(loss->net, loss->layers[i], &f);
        if (loss->kind == KIND_FEAT) {
            if (keep(loss, i, f.data, f, percept_tensor_numel(&f)))
                return -1;
        } else {
            /* the style image's Gram (its first image): compared with every image later */
            float *g = buffer_reserve(&loss->gram, (size_t)f.n * f.c * f.c);
            if (!g || MATH_FOR(g, f.data)->gram(g, &f) ||
                keep(loss, i, g, (PerceptTensor){1, 1, f.c, f.c, NULL}, (size_t)f.c * f.c))
                return percept_fail_prefix("Gram matrices: ");
        }
    }
    loss->has_target = 1;
    return 0;
}

/* The losses members[0..count) (feat and style on one loss network spec) on images x: each
 * member's value into values[m], and the gradient of Σ weights[m]·values[m] into grad (NULL:
 * values only). One forward and one backward pass through the deepest member's network serve
 * them all: a truncated VGG-16 has the same weights as the full one, layer for layer. */
static int network_losses_eval(PerceptLoss *const *members, const double *weights, int count,
                               const PerceptTensor *x, double *values, float *grad)
{
    PerceptLoss *owner = members[0];
    for (int m = 1; m < count; m++)
        if (members[m]->depth > owner->depth)
            owner = members[m];
    PerceptTensor out;
    if (percept_net_forward(owner->net, x, &out))
        return -1;
    const char *names[MAX_NODES];
    float *grads[MAX_NODES] = {0};
    int nodes = 0, rc = 0;
    for (int m = 0; m < count && !rc; m++) {
        PerceptLoss *loss = members[m];
        values[m] = 0;
        for (int i = 0; i < loss->n_layers && !rc; i++) {
            PerceptTensor f;
            percept_net_node_output(owner->net, loss->layers[i], &f);
            size_t nf = percept_tensor_numel(&f);
            int k = 0, first = 0;
            while (k < nodes && strcmp(names[k], loss->layers[i]))
                k++;
            if (grad && k == nodes) {
                names[k] = loss->layers[i];
                if (!(grads[k] = buffer_reserve(&owner->layer_grad[k], nf))) {
                    rc = percept_fail_prefix("feature gradients: ");
                    break;
                }
                nodes++;
                first = 1;
            }
            float *g = grad ? buffer_reserve(&owner->grad, nf) : NULL;
            float *scratch = loss->kind == KIND_STYLE
                                 ? buffer_reserve(&owner->gram, (size_t)f.n * f.c * f.c) : NULL;
            const float *t = loss->target[i].p;
            const BackendMath *math = MATH_FOR(f.data, t, g, scratch);
            double v = 0;
            if ((grad && !g) || (loss->kind == KIND_STYLE && !scratch))
                rc = percept_fail_prefix("feature gradients: ");
            else if (loss->kind == KIND_STYLE)
                rc = math->style(&f, t, 0, g, scratch, &v);
            else if (shape_matches(&f, &loss->target_shape[i]))
                rc = math->mse(f.data, t, nf, g, &v);
            else
                rc = percept_fail("image does not match the content target's size");
            values[m] += v;
            /* the layer's gradient: Σ over the losses reading it of weight × theirs */
            if (!rc && g)
                rc = MATH_FOR(grads[k], g)->axpy(grads[k], (float)weights[m], g, nf, first);
        }
    }
    if (!rc && grad)
        rc = percept_net_backward_from(owner->net, names, (const float *const *)grads, nodes,
                                       grad);
    return rc;
}

/* The checks every evaluation makes before it computes. */
static int check_eval(const PerceptLoss *loss, const PerceptTensor *x)
{
    if (loss->kind != KIND_TV && !loss->has_target)
        return percept_fail("the loss has no target (percept_loss_set_target)");
    if (loss->kind <= KIND_SWD && !shape_matches(x, &loss->target_shape[0]))
        return percept_fail("image of %d×%d×%d×%d does not match the target's %d×%d×%d×%d",
                            x->n, x->c, x->h, x->w, loss->target_shape[0].n,
                            loss->target_shape[0].c, loss->target_shape[0].h,
                            loss->target_shape[0].w);
    return 0;
}

/* style-mmd: the image's patch embedding by its network (mmd.c), against the style
 * image's, repeated for each image; value Σ ‖means − embedding‖² / n over the levels the
 * image has room for, and its gradient through the network */
static int style_mmd_eval(PerceptLoss *loss, const PerceptTensor *x, double *value, float *grad)
{
    const int levels = mmd_style_levels(x, &loss->mmd, loss->levels);
    if (levels < 1)
        return -1;
    PerceptNet **net = &loss->mmd_net[levels - 1];
    if (!*net && !(*net = mmd_style_network(&loss->mmd, levels, x->c, loss->mmd_device)))
        return -1;
    PerceptTensor out;
    if (percept_net_forward(*net, x, &out))
        return -1;
    const size_t per = (size_t)levels * loss->mmd.features, n = per * x->n;
    float *t = buffer_reserve(&loss->tiled, n), *g = grad ? buffer_reserve(&loss->grad, n) : NULL;
    if (!t || (grad && !g))
        return percept_fail_prefix("MMD style: ");
    for (int b = 0; (loss->tiled_n != x->n || loss->tiled_levels != levels) && b < x->n; b++)
        if (MATH_FOR(t)->copy(t + (size_t)b * per, loss->target[0].p, per))
            return percept_fail_prefix("MMD style: ");
    loss->tiled_n = x->n;
    loss->tiled_levels = levels;
    /* the mean squared difference over all n·per values, times per: Σ / n */
    double mse;
    const BackendMath *math = MATH_FOR(out.data, t, g);
    if (math->mse(out.data, t, n, g, &mse) || (g && math->axpy(g, (float)per, g, n, 1)))
        return percept_fail_prefix("MMD style: ");
    *value = mse * (double)per;
    return g ? percept_net_backward(*net, g, grad) : 0;
}

/* A loss without a network: value and, with grad non-NULL, its gradient. */
static int image_loss_eval(PerceptLoss *loss, const PerceptTensor *x, double *value, float *grad)
{
    size_t n = percept_tensor_numel(x);
    const float *t = loss->target[0].p;
    switch (loss->kind) {
    case KIND_MSE: return MATH_FOR(x->data, t, grad)->mse(x->data, t, n, grad, value);
    case KIND_L1: return MATH_FOR(x->data, t, grad)->l1(x->data, t, n, grad, value);
    case KIND_TV: return MATH_FOR(x->data, grad)->tv(x, grad, value);
    case KIND_MMD:
        return percept_mmd(x, &loss->target_shape[0], &loss->mmd, value, grad);
    case KIND_MMD_PLUS:
        return percept_mmd_plus(x, &loss->target_shape[0], &loss->mmd, value, grad);
    case KIND_SWD:
        return percept_swd_loss(x, &loss->target_shape[0], &loss->swd, value, grad);
    case KIND_STYLE_MMD:
        return style_mmd_eval(loss, x, value, grad);
    case KIND_MS_SSIM: {
        double ms;
        if (percept_ms_ssim(x, &loss->target_shape[0], &ms, grad))
            return -1;
        for (size_t i = 0; grad && i < n; i++)
            grad[i] = -grad[i];
        *value = 1.0 - ms;
        return 0;
    }
    default: {
        /* the loss is 1 − SSIM; Ridgeway et al.: uniform 11×11 window and C1 = C2 (the value
         * is not given: K1 = K2 = 0.01 here) */
        const PerceptSsimConfig wang = PERCEPT_SSIM_WANG, ridgeway = {11, 0, 0.01f, 0.01f, 1};
        double ssim;
        if (ssim_where(x, &loss->target_shape[0], loss->kind == KIND_SSIM ? &wang : &ridgeway,
                       &ssim, grad) ||
            (grad && MATH_FOR(grad)->axpy(grad, -1.0f, grad, n, 1)))
            return -1;
        *value = 1.0 - ssim;
        return 0;
    }
    }
}

int percept_loss_eval(PerceptLoss *loss, const PerceptTensor *x, double *value, float *grad)
{
    const double one = 1;
    return percept_losses_eval(&loss, &one, 1, x, value, grad);
}

int percept_losses_eval(PerceptLoss *const *losses, const double *weights, int count,
                        const PerceptTensor *x, double *values, float *grad)
{
    size_t n = percept_tensor_numel(x);
    /* a NaN image would give a NaN loss and poison training: refuse it */
    if (percept_loss_finite(x->data, n, "image"))
        return -1;
    for (int i = 0; i < count; i++)
        if (check_eval(losses[i], x))
            return percept_fail_prefix("loss '%s': ", losses[i]->spec);
    /* each group's gradient goes to part, then, weighted, into grad (the first assigned) */
    float *part = grad && count ? buffer_reserve(&losses[0]->part, n) : NULL;
    char *done = calloc(count ? count : 1, 1);
    int rc = (grad && count && !part) || !done ? percept_fail("out of memory") : 0, first = 1;
    if (grad && !count)
        memset(grad, 0, sizeof(float) * n);
    for (int i = 0; i < count && !rc; i++) {
        if (done[i])
            continue;
        double scale = 1;   /* part holds the gradient of the weighted group: scale 1 */
        const char *spec = losses[i]->spec;
        if (!losses[i]->net) {
            rc = image_loss_eval(losses[i], x, &values[i], part);
            scale = weights[i];
            done[i] = 1;
        } else {
            PerceptLoss *members[LOSS_GROUP_MAX] = {0};
            double w[LOSS_GROUP_MAX], v[LOSS_GROUP_MAX] = {0};
            int index[LOSS_GROUP_MAX], m = 0;
            for (int j = i; j < count && m < LOSS_GROUP_MAX; j++)
                if (!done[j] && losses[j]->net && !strcmp(losses[j]->net_spec, losses[i]->net_spec)) {
                    members[m] = losses[j];
                    w[m] = weights[j];
                    index[m++] = j;
                    done[j] = 1;
                }
            rc = network_losses_eval(members, w, m, x, v, part);
            for (int k = 0; k < m; k++)
                values[index[k]] = v[k];
        }
        if (!rc && grad) {
            rc = MATH_FOR(grad, part)->axpy(grad, (float)scale, part, n, first);
            first = 0;
        }
        if (rc)
            percept_fail_prefix("loss '%s': ", spec);
    }
    free(done);
    return rc;
}
