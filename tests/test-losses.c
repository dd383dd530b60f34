/* Losses: values and gradients against PyTorch (tests/golden/losses.safetensors), gradients
 * against finite differences, and the edge cases (identical inputs, huge logits, NaN). */
#include "check.h"
#include "percept/percept.h"

static const PerceptSafetensors *fx;

static const float *tensor(const char *name, size_t *n)
{
    const PerceptStTensor *t = percept_st_find(fx, name);
    CHECK(t != NULL, "fixture lacks %s", name);
    if (n)
        *n = t ? t->numel : 0;
    return t ? t->data : NULL;
}

static void close_to(const char *what, const float *got, const float *want, size_t n)
{
    double diff = 0, scale = 0;
    for (size_t i = 0; i < n; i++) {
        diff = fmax(diff, fabs((double)got[i] - want[i]));
        scale = fmax(scale, fabs(want[i]));
    }
    CHECK(diff <= 1e-5 * scale + 1e-7, "%s: max error %.3g (scale %.3g)", what, diff, scale);
}

static void value_is(const char *name, double got)
{
    char key[64];
    snprintf(key, sizeof key, "value.%s", name);
    const float *want = tensor(key, NULL);
    CHECK(want && fabs(got - want[0]) <= 1e-5 * fabs(want[0]) + 1e-7,
          "%s value %.8g, PyTorch %.8g", name, got, want ? want[0] : NAN);
}

static void grad_is(const char *name, int input, const float *got, size_t n)
{
    char key[64];
    snprintf(key, sizeof key, "grad.%s.%d", name, input);
    size_t m;
    const float *want = tensor(key, &m);
    CHECK(want && m == n, "%s gradient size", key);
    if (want && m == n)
        close_to(key, got, want, n);
}

static void check_against_pytorch(void)
{
    size_t n, nf, nm;
    const float *x = tensor("x", &n), *y = tensor("y", NULL), *f = tensor("f", &nf);
    const float *mu = tensor("mu", &nm), *logvar = tensor("logvar", NULL);
    const float *real = tensor("real", NULL), *fake = tensor("fake", NULL);
    if (!x || !y || !f || !mu || !logvar || !real || !fake)
        return;
    float *g = malloc(sizeof(float) * (n > nf ? n : nf)), *g2 = malloc(sizeof(float) * nm);
    value_is("mse", percept_loss_mse(x, y, n, g));
    grad_is("mse", 0, g, n);
    value_is("l1", percept_loss_l1(x, y, n, g));
    grad_is("l1", 0, g, n);
    PerceptTensor xt = {2, 3, 9, 11, (float *)x}, ft = {2, 5, 6, 7, (float *)f};
    value_is("tv", percept_loss_tv(&xt, g));
    grad_is("tv", 0, g, n);
    float gram[2 * 25];
    percept_gram(gram, &ft);
    close_to("gram", gram, tensor("gram.f", NULL), 50);
    value_is("style", percept_loss_style(&ft, tensor("style_gram", NULL), 0, g));
    grad_is("style", 0, g, nf);
    value_is("kl", percept_loss_kl(mu, logvar, nm / 2, 2, g, g2));
    grad_is("kl", 0, g, nm);
    grad_is("kl", 1, g2, nm);
    value_is("adv_d", percept_loss_adv_discriminator(real, fake, 8, g, g2));
    grad_is("adv_d", 0, g, 8);
    grad_is("adv_d", 1, g2, 8);
    value_is("adv_g", percept_loss_adv_generator(fake, 8, g));
    grad_is("adv_g", 0, g, 8);
    free(g);
    free(g2);
}

/* ---- finite differences ---------------------------------------------------------------- */

typedef struct {
    int which;
    PerceptTensor x;
    const float *target;
    float value[1];
} LossCase;

static void eval_loss(void *p)
{
    LossCase *c = p;
    size_t n = percept_tensor_numel(&c->x);
    switch (c->which) {
    case 0: c->value[0] = (float)percept_loss_mse(c->x.data, c->target, n, NULL); break;
    case 1: c->value[0] = (float)percept_loss_tv(&c->x, NULL); break;
    case 2: c->value[0] = (float)percept_loss_style(&c->x, c->target, 1, NULL); break;
    case 3: c->value[0] = (float)percept_loss_l1(c->x.data, c->target, n, NULL); break;
    }
}

typedef struct {
    int which; /* 0 kl (mu), 1 kl (logvar), 2 discriminator real, 3 discriminator fake, 4 generator */
    float *u, *v;
    float value[1];
} ProbCase;

static void eval_prob(void *p)
{
    ProbCase *c = p;
    double r = c->which < 2 ? percept_loss_kl(c->u, c->v, 4, 2, NULL, NULL)
               : c->which < 4 ? percept_loss_adv_discriminator(c->u, c->v, 8, NULL, NULL)
                              : percept_loss_adv_generator(c->u, 8, NULL);
    c->value[0] = (float)r;
}

static void check_probabilistic_gradients(void)
{
    static const char *names[] = {"kl d mu", "kl d logvar", "adv_d d real", "adv_d d fake",
                                  "adv_g d fake"};
    for (int which = 0; which < 5; which++) {
        float u[8], v[8], gu[8], gv[8], one[1] = {1};
        fill_uniform(u, 8, 61 + which, -2, 2);
        fill_uniform(v, 8, 71 + which, -2, 2);
        ProbCase c = {which, u, v, {0}};
        if (which < 2)
            percept_loss_kl(u, v, 4, 2, gu, gv);
        else if (which < 4)
            percept_loss_adv_discriminator(u, v, 8, gu, gv);
        else
            percept_loss_adv_generator(u, 8, gu);
        int second = which == 1 || which == 3;
        gradcheck(names[which], second ? v : u, second ? gv : gu, 8, eval_prob, &c, c.value, one,
                  1, 1e-3f, 1e-2, 1e-4, 8);
    }
}

static void check_finite_differences(void)
{
    check_probabilistic_gradients();
    static const char *names[] = {"mse", "tv", "style", "l1"};
    for (int which = 0; which < 4; which++) {
        float x[2 * 3 * 5 * 4], t[2 * 3 * 5 * 4], grad[2 * 3 * 5 * 4], one[1] = {1};
        size_t n = sizeof x / sizeof *x;
        fill_uniform(x, n, 1 + which, -1, 1);
        fill_uniform(t, n, 9, -1, 1);
        LossCase c = {which, {2, 3, 5, 4, x}, t, {0}};
        if (which == 2) { /* a per-image target Gram from other features */
            PerceptTensor o = {2, 3, 5, 4, t};
            static float tg[2 * 9];
            percept_gram(tg, &o);
            c.target = tg;
        }
        switch (which) {
        case 0: percept_loss_mse(x, t, n, grad); break;
        case 1: percept_loss_tv(&c.x, grad); break;
        case 2: percept_loss_style(&c.x, c.target, 1, grad); break;
        case 3: percept_loss_l1(x, t, n, grad); break;
        }
        gradcheck(names[which], x, grad, n, eval_loss, &c, c.value, one, 1, 1e-3f, 1e-2, 1e-3,
                  200);
    }
}

static void check_edges(void)
{
    float a[3 * 4 * 4];
    fill_uniform(a, 48, 3, 0, 1);
    PerceptTensor t = {1, 3, 4, 4, a};
    float g[48], gram[9];
    CHECK(percept_loss_mse(a, a, 48, g) == 0 && g[5] == 0, "mse of identical images");
    percept_gram(gram, &t);
    CHECK(percept_loss_style(&t, gram, 0, g) < 1e-12, "style loss of an image with itself");
    float flat[16] = {0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f,
                      0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f, 0.5f};
    PerceptTensor ft = {1, 1, 4, 4, flat};
    CHECK(percept_loss_tv(&ft, g) == 0, "TV of a constant image");
    PerceptTensor px = {1, 1, 1, 1, flat};
    CHECK(percept_loss_tv(&px, g) == 0 && g[0] == 0, "TV of a single pixel");
    /* huge logits: finite values, saturated gradients */
    float big[2] = {1e4f, -1e4f}, d1[2], d2[2];
    double v = percept_loss_adv_discriminator(big, big + 1, 1, d1, d2);
    CHECK(isfinite(v) && v < 1e-6 && isfinite(d1[0]) && isfinite(d2[0]),
          "confident discriminator: %g", v);
    v = percept_loss_adv_generator(big + 1, 1, d1);
    CHECK(fabs(v - 1e4) < 1e-3 && fabs(d1[0] + 1) < 1e-6, "fooled generator: %g grad %g", v,
          d1[0]);
    float nan_img[4] = {0, 1, NAN, 2};
    CHECK(percept_loss_finite(nan_img, 4, "image") == -1 && strstr(percept_error(), "NaN at index 2"),
          "NaN input: %s", percept_error());
    CHECK(percept_loss_finite(a, 48, "image") == 0, "finite image flagged");
}

/* ---- configured losses and loss networks --------------------------------------------- */

static void check_specs(void)
{
    static const struct { const char *spec, *expect; } bad[] = {
        {"warp", "unknown loss 'warp'"},
        {"mse:vgg16", "takes no options"},
        {"feat", "needs a network and layers"},
        {"feat:vgg16", "needs a network and layers"},
        {"feat:resnet:relu2_2", "unknown loss network 'resnet'"},
        {"feat:vgg16:relu9_9", "unknown VGG-16 layer 'relu9_9'"},
        {"feat:vgg16:relu1_2,relu2_2", "too many layers"},
        {"style:vgg16:", "no layer given"},
        {"mmd:q3", "bad MMD option 'q3'"},
        {"mmd:p2.5", "whole number"},
        {"mmd++:sigma-1", "bad MMD option 'sigma-1'"},
        {"mmd:p31", "patch at most 15"},
        {"feat:vgg16#x1:relu1_1", "seed must be a number"},
        {"feat:vgg16@/nonexistent/vgg.safetensors:relu1_1", "/nonexistent/vgg.safetensors"},
        {"feat:vgg16@golden/losses.safetensors:relu1_1", "'features.0.weight' is missing"},
    };
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        percept_error_clear();
        PerceptLoss *l = percept_loss_new(bad[i].spec);
        CHECK(!l && strstr(percept_error(), bad[i].expect), "spec '%s': expected '%s', got '%s'",
              bad[i].spec, bad[i].expect, l ? "(accepted)" : percept_error());
        percept_loss_free(l);
    }
    static const char *good[] = {"mse", "l1", "tv", "ssim", "ms-ssim", "ssim-ridgeway", "mmd", "mmd:p3:w32:s16:sigma0.6",
                                 "mmd++:p5:w16:s8:sigma0.75:f256:norm:seed9", "feat:vgg16:relu2_2", "feat:vgg16#42:relu1_1",
                                 "style:vgg16:relu1_2,relu2_2,relu3_3,relu4_3"};
    for (size_t i = 0; i < sizeof good / sizeof *good; i++) {
        PerceptLoss *l = percept_loss_new(good[i]);
        CHECK(l != NULL, "spec '%s': %s", good[i], percept_error());
        percept_loss_free(l);
    }
    /* a target of another size than the images is refused for pixel losses */
    float a[3 * 4 * 4] = {0}, b[3 * 5 * 4] = {0};
    PerceptTensor ta = {1, 3, 4, 4, a}, tb = {1, 3, 5, 4, b};
    PerceptLoss *l = percept_loss_new("mse");
    double v;
    CHECK(percept_loss_eval(l, &ta, &v, NULL) == -1 && strstr(percept_error(), "no target"),
          "eval without target: %s", percept_error());
    percept_loss_set_target(l, &ta);
    CHECK(percept_loss_eval(l, &tb, &v, NULL) == -1 && strstr(percept_error(), "does not match") &&
          strstr(percept_error(), "loss 'mse'"), "size mismatch: %s", percept_error());
    b[3] = NAN;
    CHECK(percept_loss_set_target(l, &tb) == -1 && strstr(percept_error(), "NaN"),
          "NaN target: %s", percept_error());
    a[7] = NAN;
    CHECK(percept_loss_eval(l, &ta, &v, NULL) == -1 && strstr(percept_error(), "NaN at index 7"),
          "NaN image: %s", percept_error());
    percept_loss_free(l);
}

/* Feature and style losses through VGG-16 (a torchvision-named file with a tensor the loss
 * network must ignore) against PyTorch. */
static void check_vgg_losses(void)
{
    PerceptSafetensors *st = percept_st_read("golden/vgg-loss.safetensors");
    CHECK(st != NULL, "vgg loss fixture: %s", percept_error());
    if (!st)
        return;
    const PerceptStTensor *x = percept_st_find(st, "golden.x"), *c = percept_st_find(st, "golden.content");
    const PerceptStTensor *s = percept_st_find(st, "golden.style");
    static const char *specs[2] = {"feat:vgg16@golden/vgg-loss.safetensors:relu1_2",
                                   "style:vgg16@golden/vgg-loss.safetensors:relu1_1,relu1_2"};
    static const char *keys[2][2] = {{"golden.value.feat", "golden.grad.feat"},
                                     {"golden.value.style", "golden.grad.style"}};
    for (int k = 0; k < 2; k++) {
        PerceptLoss *l = percept_loss_new(specs[k]);
        CHECK(l != NULL, "%s: %s", specs[k], percept_error());
        if (!l)
            continue;
        const PerceptStTensor *t = k ? s : c;
        PerceptTensor target = {(int)t->shape[0], 3, (int)t->shape[2], (int)t->shape[3], t->data};
        PerceptTensor img = {2, 3, 12, 10, x->data};
        float *g = malloc(sizeof(float) * x->numel);
        double v = -1;
        CHECK(percept_loss_set_target(l, &target) == 0 && percept_loss_eval(l, &img, &v, g) == 0,
              "%s: %s", specs[k], percept_error());
        const float *want = percept_st_find(st, keys[k][0])->data;
        CHECK(fabs(v - want[0]) <= 1e-5 * fabs(want[0]), "%s value %.8g, PyTorch %.8g", specs[k],
              v, want[0]);
        close_to(keys[k][1], g, percept_st_find(st, keys[k][1])->data, x->numel);
        /* a second evaluation (memory already planned) gives the same */
        double v2;
        percept_loss_eval(l, &img, &v2, NULL);
        CHECK(v2 == v, "%s: second evaluation %.9g vs %.9g", specs[k], v2, v);
        free(g);
        percept_loss_free(l);
    }
    percept_st_free(st);
}

/* percept_losses_eval: content and style losses on one random VGG-16 share a pass, yet give
 * what each loss alone gives (so a truncated network holds the full one's weights), and
 * losses on another network or none add their own terms. */
static void check_shared_network(void)
{
    enum { N = 5 };
    static const char *specs[N] = {"feat:vgg16:relu2_2", "style:vgg16:relu1_2,relu3_3", "tv",
                                   "mse", "style:vgg16#2:relu1_2"};
    const double weights[N] = {1, 5, 1e-3, 0.5, 2};
    PerceptTensor img = {2, 3, 20, 18, NULL}, style = {1, 3, 24, 16, NULL};
    size_t n = percept_tensor_numel(&img);
    float *x = malloc(sizeof(float) * n), *ref = malloc(sizeof(float) * n);
    float *sty = malloc(sizeof(float) * percept_tensor_numel(&style));
    float *g = malloc(sizeof(float) * n), *one = malloc(sizeof(float) * n);
    double *want = calloc(n, sizeof(double));
    for (size_t i = 0; i < n; i++) {
        x[i] = percept_rng_uniform(41, i);
        ref[i] = percept_rng_uniform(42, i);
    }
    for (size_t i = 0; i < percept_tensor_numel(&style); i++)
        sty[i] = percept_rng_uniform(43, i);
    img.data = x, style.data = sty;
    PerceptTensor reference = img;
    reference.data = ref;
    PerceptLoss *group[N], *alone[N];
    double value[N], values[N];
    for (int k = 0; k < N; k++) {
        group[k] = percept_loss_new(specs[k]);
        alone[k] = percept_loss_new(specs[k]);
        const PerceptTensor *t = k == 2 ? NULL : (k == 1 || k == 4) ? &style : &reference;
        CHECK(group[k] && alone[k] &&
              (!t || (!percept_loss_set_target(group[k], t) && !percept_loss_set_target(alone[k], t))) &&
              !percept_loss_eval(alone[k], &img, &value[k], one),
              "%s: %s", specs[k], percept_error());
        for (size_t i = 0; i < n; i++)
            want[i] += weights[k] * one[i];
    }
    CHECK(percept_losses_eval(group, weights, N, &img, values, g) == 0, "%s", percept_error());
    double err = 0, norm = 0;
    for (size_t i = 0; i < n; i++) {
        err += (g[i] - want[i]) * (g[i] - want[i]);
        norm += want[i] * want[i];
    }
    CHECK(sqrt(err / norm) < 1e-5, "shared-pass gradient: normalised error %.3g", sqrt(err / norm));
    for (int k = 0; k < N; k++)
        CHECK(fabs(values[k] - value[k]) <= 1e-6 * fabs(value[k]), "%s: shared %.9g, alone %.9g",
              specs[k], values[k], value[k]);
    double again[N];
    CHECK(percept_losses_eval(group, weights, N, &img, again, NULL) == 0 &&
          again[0] == values[0] && again[1] == values[1], "values without a gradient differ");
    x[7] = NAN;
    CHECK(percept_losses_eval(group, weights, N, &img, again, g) != 0 &&
          strstr(percept_error(), "NaN"), "a NaN image: %s", percept_error());
    for (int k = 0; k < N; k++) {
        percept_loss_free(group[k]);
        percept_loss_free(alone[k]);
    }
    free(x), free(ref), free(sty), free(g), free(one), free(want);
}

/* ---- style-mmd: patch distributions against a style image's ---------------------------- */

typedef struct {
    PerceptTensor x;
    const float *embedding;
    PerceptMmdConfig cfg;
    float value[1];
} StyleMmdCase;

static void eval_style_mmd(void *p)
{
    StyleMmdCase *c = p;
    double v = 0;
    percept_mmd_to_embedding(&c->x, c->embedding, &c->cfg, 3, &v, NULL);
    c->value[0] = (float)v;
}

static void check_style_mmd(void)
{
    PerceptMmdConfig cfg = PERCEPT_MMD_DEFAULT;
    cfg.features = 64, cfg.sigma = 1.0f;
    enum { N = 2 * 3 * 13 * 14, S = 3 * 17 * 12 };
    float x[N], style[S], grad[N], e[3 * 64], one[1] = {1};
    fill_uniform(x, N, 31, 0, 1);
    fill_uniform(style, S, 32, 0, 1);
    for (int i = 0; i < S; i++)
        style[i] = style[i] * style[i]; /* another distribution: darker */
    PerceptTensor st = {1, 3, 17, 12, style};
    CHECK(percept_patch_embedding(&st, &cfg, 3, e) == 0, "embedding: %s", percept_error());
    StyleMmdCase c = {{2, 3, 13, 14, x}, e, cfg, {0}};
    double v = -1;
    CHECK(percept_mmd_to_embedding(&c.x, e, &cfg, 3, &v, grad) == 0 && v > 1e-3,
          "style-mmd value %g: %s", v, percept_error());
    gradcheck("style-mmd", x, grad, N, eval_style_mmd, &c, c.value, one, 1, 1e-3f, 2e-2, 2e-3,
              200);
    /* an image against its own embedding: 0 */
    PerceptTensor self = {1, 3, 17, 12, style};
    CHECK(percept_mmd_to_embedding(&self, e, &cfg, 3, &v, NULL) == 0 && fabs(v) < 1e-10,
          "style-mmd of the style image itself: %g", v);
    /* the style image must fill every level (3 levels of 3×3: 12 pixels a side); an image
     * compared with it is compared on the levels it fills: 11×30 on the first two, as two
     * levels would compare it */
    PerceptTensor small = {1, 3, 11, 30, x};   /* (x holds enough floats) */
    CHECK(percept_patch_embedding(&small, &cfg, 3, e) != 0 &&
          strstr(percept_error(), "at least 12 pixels"), "small style image: %s", percept_error());
    CHECK(percept_patch_embedding(&st, &cfg, 3, e) == 0, "%s", percept_error());
    double two = -1;
    CHECK(percept_mmd_to_embedding(&small, e, &cfg, 3, &v, NULL) == 0 &&
          percept_mmd_to_embedding(&small, e, &cfg, 2, &two, NULL) == 0 && v == two && v > 0,
          "small image: %g vs two levels %g: %s", v, two, percept_error());
    PerceptTensor tiny = {1, 3, 2, 30, style};
    CHECK(percept_mmd_to_embedding(&tiny, e, &cfg, 3, &v, NULL) != 0, "a 30×2 image has no 3×3 patch");
    /* through a spec: the target is the style image, any size; options parsed */
    PerceptLoss *l = percept_loss_new("style-mmd:f64:sigma1:levels3");
    double w = -1;
    CHECK(l && percept_loss_set_target(l, &st) == 0 && percept_loss_eval(l, &c.x, &w, NULL) == 0 &&
          fabs(w - c.value[0]) <= 1e-5 * fabs(w), "style-mmd spec %g vs %g: %s", w, c.value[0],
          percept_error());
    /* the spec computes with a network (mmd.c, so that it runs where networks run): the
     * function's value and gradient, and a small image on the levels it fills */
    float gs[N];
    double vs = -1, vf = -1;
    size_t worst = 0;
    CHECK(l && percept_loss_eval(l, &c.x, &vs, gs) == 0 &&
              percept_mmd_to_embedding(&c.x, e, &cfg, 3, &vf, grad) == 0 &&
              fabs(vs - vf) <= 1e-5 * vf && max_tol_ratio(gs, grad, N, 1e-8, 1e-3, &worst) <= 1,
          "style-mmd spec's gradient: %g vs %g, element %zu %g vs %g (%s)", vs, vf, worst,
          gs[worst], grad[worst], percept_error());
    PerceptTensor small_x = {1, 3, 11, 30, x};
    CHECK(l && percept_loss_eval(l, &small_x, &vs, NULL) == 0 &&
              percept_mmd_to_embedding(&small_x, e, &cfg, 3, &vf, NULL) == 0 &&
              fabs(vs - vf) <= 1e-5 * vf,
          "style-mmd spec, small image: %g vs %g (%s)", vs, vf, percept_error());
    CHECK(l && percept_loss_eval(l, &tiny, &vs, NULL) != 0 && strstr(percept_error(), "patch"),
          "style-mmd spec, an image without a patch: %s", percept_error());
    percept_loss_free(l);
    CHECK(!percept_loss_new("style-mmd:levels9") && strstr(percept_error(), "levels1"),
          "levels9: %s", percept_error());
    CHECK(!percept_loss_new("mmd:levels3"), "mmd takes no levels");
}

/* ---- SSIM ---------------------------------------------------------------------------- */

static void check_ssim(void)
{
    PerceptSafetensors *st = percept_st_read("golden/ssim.safetensors");
    CHECK(st != NULL, "ssim fixture: %s", percept_error());
    if (!st)
        return;
    const PerceptStTensor *x = percept_st_find(st, "x"), *y = percept_st_find(st, "y");
    size_t n = x->numel;
    PerceptTensor tx = {1, 3, 48, 64, x->data}, ty = {1, 3, 48, 64, y->data};
    float *neg = malloc(sizeof(float) * n), *flat = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) {
        neg[i] = 1 - x->data[i];
        flat[i] = 0.5f;
    }
    PerceptTensor tn = {1, 3, 48, 64, neg}, tf = {1, 3, 48, 64, flat};
    const struct { const char *key; PerceptTensor *a, *b; } rows[] = {
        {"ssim.noisy", &tx, &ty}, {"ssim.negative", &tx, &tn}, {"ssim.constant", &tf, &tf}};
    for (int i = 0; i < 3; i++) {
        double v = NAN;
        CHECK(percept_ssim(rows[i].a, rows[i].b, NULL, &v, NULL) == 0, "%s: %s", rows[i].key,
              percept_error());
        double want = percept_st_find(st, rows[i].key)->data[0];
        CHECK(fabs(v - want) <= 1e-4, "%s: %.6f, scikit-image %.6f", rows[i].key, v, want);
    }
    /* as a configured loss: 1 − SSIM, and its gradient is minus SSIM's */
    PerceptLoss *l = percept_loss_new("ssim");
    double lv, sv;
    float *g1 = malloc(sizeof(float) * n), *g2 = malloc(sizeof(float) * n);
    CHECK(l && percept_loss_set_target(l, &ty) == 0 && percept_loss_eval(l, &tx, &lv, g1) == 0 &&
          percept_ssim(&tx, &ty, NULL, &sv, g2) == 0 && fabs(lv - (1 - sv)) < 1e-12 &&
          g1[7] == -g2[7], "ssim loss %g vs 1 - %g", lv, sv);
    percept_loss_free(l);
    free(g1);
    free(g2);
    PerceptTensor small = {1, 3, 10, 64, x->data};
    double v;
    CHECK(percept_ssim(&small, &small, NULL, &v, NULL) == -1 && strstr(percept_error(), "smaller"),
          "image smaller than the window: %s", percept_error());
    CHECK(percept_ssim(&tx, &small, NULL, &v, NULL) == -1 && strstr(percept_error(), "differ"),
          "sizes differ: %s", percept_error());
    free(neg);
    free(flat);
    percept_st_free(st);
}

typedef struct {
    PerceptTensor x, y;
    PerceptSsimConfig cfg;
    float value[1];
} SsimCase;

static void eval_ssim(void *p)
{
    SsimCase *c = p;
    double v;
    percept_ssim(&c->x, &c->y, &c->cfg, &v, NULL);
    c->value[0] = (float)v;
}

static void check_ssim_gradient(void)
{
    static float a[2 * 2 * 15 * 13], b[2 * 2 * 15 * 13], g[2 * 2 * 15 * 13];
    size_t n = sizeof a / sizeof *a;
    fill_uniform(a, n, 21, 0, 1);
    fill_uniform(b, n, 22, 0, 1);
    for (size_t i = 0; i < n; i++)
        b[i] = 0.6f * a[i] + 0.4f * b[i]; /* related images: SSIM well away from 0 */
    const PerceptSsimConfig cfgs[2] = {PERCEPT_SSIM_WANG, {7, 0, 0.02f, 0.02f, 1}};
    for (int k = 0; k < 2; k++) {
        SsimCase c = {{2, 2, 15, 13, a}, {2, 2, 15, 13, b}, cfgs[k], {0}};
        double v;
        percept_ssim(&c.x, &c.y, &c.cfg, &v, g);
        float one[1] = {1};
        gradcheck(k ? "ssim uniform window" : "ssim gaussian", a, g, n, eval_ssim, &c, c.value,
                  one, 1, 1e-3f, 2e-2, 2e-3, 200);
    }
}

static void check_ms_ssim(void)
{
    PerceptSafetensors *st = percept_st_read("golden/ms-ssim.safetensors");
    CHECK(st != NULL, "ms-ssim fixture: %s", percept_error());
    if (!st)
        return;
    const PerceptStTensor *x = percept_st_find(st, "x");
    size_t n = x->numel;
    float *y = malloc(sizeof(float) * n), *g = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) /* the fixture's formula, exact in float */
        y[i] = 0.75f * x->data[i] + 0.125f + 0.015625f * (float)((7 * i) % 5);
    PerceptTensor tx = {1, 2, 168, 172, x->data}, ty = {1, 2, 168, 172, y};
    double v = NAN, want = percept_st_find(st, "ms_ssim")->data[0];
    CHECK(percept_ms_ssim(&tx, &ty, &v, g) == 0, "ms-ssim: %s", percept_error());
    CHECK(fabs(v - want) <= 1e-4, "MS-SSIM %.6f, pytorch-msssim's definition %.6f", v, want);
    double sum = 0, want_sum = percept_st_find(st, "grad_sum_abs")->data[0];
    for (size_t i = 0; i < n; i++)
        sum += fabs(g[i]);
    CHECK(fabs(sum - want_sum) <= 1e-3 * want_sum, "MS-SSIM gradient: sum |g| %.6g, PyTorch %.6g",
          sum, want_sum);
    /* element by element against autograd: finite differences of a float MS-SSIM near 1 are
     * noisier than the gradient itself (the value's last digit is 6e-8) */
    const float *sample = percept_st_find(st, "grad_sample")->data;
    float got[64];
    for (int j = 0; j < 64; j++)
        got[j] = g[(size_t)j * 907 % n];
    close_to("MS-SSIM gradient sample", got, sample, 64);
    PerceptTensor small = {1, 2, 160, 172, x->data};
    CHECK(percept_ms_ssim(&small, &small, &v, NULL) == -1 && strstr(percept_error(), "161"),
          "too small for MS-SSIM: %s", percept_error());
    free(y);
    free(g);
    percept_st_free(st);
}

/* ---- MMD patch loss -------------------------------------------------------------------- */

typedef struct {
    PerceptTensor x, y;
    PerceptMmdConfig cfg;
    int plus;
    double base;
    float value[1];
} MmdCase;

static void eval_mmd(void *p)
{
    MmdCase *c = p;
    double v;
    (c->plus ? percept_mmd_plus : percept_mmd)(&c->x, &c->y, &c->cfg, &v, NULL);
    c->value[0] = (float)(v - c->base);
}

/* exact (biased) MMD² of the 3×3 patches of two one-window images, Gaussian kernel */
static double exact_mmd2(const float *a, const float *b, int h, int w, float sigma)
{
    int ho = h - 2, wo = w - 2, m = ho * wo;
    double kxx = 0, kyy = 0, kxy = 0;
    for (int i = 0; i < m; i++)
        for (int j = 0; j < m; j++) {
            double dxx = 0, dyy = 0, dxy = 0;
            for (int u = 0; u < 3; u++)
                for (int v = 0; v < 3; v++) {
                    int pi = (i / wo + u) * w + i % wo + v, pj = (j / wo + u) * w + j % wo + v;
                    dxx += pow(a[pi] - a[pj], 2);
                    dyy += pow(b[pi] - b[pj], 2);
                    dxy += pow(a[pi] - b[pj], 2);
                }
            kxx += exp(-dxx / (2 * sigma * sigma));
            kyy += exp(-dyy / (2 * sigma * sigma));
            kxy += exp(-dxy / (2 * sigma * sigma));
        }
    return (kxx + kyy - 2 * kxy) / ((double)m * m);
}

static void check_mmd(void)
{
    /* random features approximate the exact kernel MMD */
    float a[12 * 12], b[12 * 12];
    fill_uniform(a, 144, 31, 0, 1);
    for (int i = 0; i < 144; i++)
        b[i] = 0.5f * a[i] * a[i] + 0.3f; /* another patch distribution */
    PerceptTensor ta = {1, 1, 12, 12, a}, tb = {1, 1, 12, 12, b};
    PerceptMmdConfig wide = {3, 32, 16, 16384, 0.6f, 0, 5};
    double v, exact = exact_mmd2(a, b, 12, 12, 0.6f);
    CHECK(percept_mmd(&ta, &tb, &wide, &v, NULL) == 0 && fabs(v - exact) <= 0.05 * exact,
          "MMD with 16384 random features %.5f, exact kernel MMD² %.5f", v, exact);
    CHECK(percept_mmd(&ta, &ta, NULL, &v, NULL) == 0 && v == 0, "MMD of an image with itself %g", v);
    double v1, v2, v3;
    PerceptMmdConfig s1 = PERCEPT_MMD_DEFAULT, s2 = PERCEPT_MMD_DEFAULT;
    s2.seed = 2;
    percept_mmd(&ta, &tb, &s1, &v1, NULL);
    percept_mmd(&ta, &tb, &s1, &v2, NULL);
    percept_mmd(&ta, &tb, &s2, &v3, NULL);
    CHECK(v1 == v2 && v1 != v3, "a seed fixes the features: %g %g %g", v1, v2, v3);
    /* channel normalisation ignores a constant added to a channel */
    float c[12 * 12];
    for (int i = 0; i < 144; i++)
        c[i] = a[i] + 0.25f;
    PerceptTensor tc = {1, 1, 12, 12, c};
    PerceptMmdConfig norm = PERCEPT_MMD_DEFAULT;
    norm.channel_norm = 1;
    CHECK(percept_mmd(&ta, &tc, &norm, &v, NULL) == 0 && v < 1e-10,
          "channel-normalised MMD of a shifted image: %g", v);
    CHECK(percept_mmd(&ta, &tc, NULL, &v, NULL) == 0 && v > 1e-4, "plain MMD sees the shift: %g", v);
    PerceptTensor tiny = {1, 1, 2, 2, a};
    CHECK(percept_mmd(&tiny, &tiny, NULL, &v, NULL) == -1 && strstr(percept_error(), "smaller"),
          "image smaller than a patch: %s", percept_error());
    CHECK(percept_mmd(&ta, &tiny, NULL, &v, NULL) == -1 && strstr(percept_error(), "differ"),
          "sizes differ: %s", percept_error());

    /* the configured loss is the same computation with the options it names */
    PerceptLoss *l = percept_loss_new("mmd++:p5:w16:s8:sigma0.75:f256:norm:seed9");
    PerceptMmdConfig named = {5, 16, 8, 256, 0.75f, 1, 9};
    double lv = -1;
    CHECK(l && percept_loss_set_target(l, &tb) == 0 && percept_loss_eval(l, &ta, &lv, NULL) == 0 &&
          percept_mmd_plus(&ta, &tb, &named, &v, NULL) == 0 && lv == v,
          "configured mmd++ %g vs %g", lv, v);
    percept_loss_free(l);

    /* gradients of MMD and MMD++ by finite differences, several windows */
    static float x[2 * 3 * 20 * 18], y[2 * 3 * 20 * 18], g[2 * 3 * 20 * 18];
    size_t n = sizeof x / sizeof *x;
    fill_uniform(x, n, 41, 0, 1);
    fill_uniform(y, n, 42, 0, 1);
    for (int plus = 0; plus < 2; plus++) {
        MmdCase mc = {{2, 3, 20, 18, x}, {2, 3, 20, 18, y}, {3, 8, 4, 64, 0.6f, plus, 3}, plus, 0, {0}};
        CHECK((plus ? percept_mmd_plus : percept_mmd)(&mc.x, &mc.y, &mc.cfg, &mc.base, g) == 0,
              "mmd: %s", percept_error());
        float one[1] = {1};
        gradcheck(plus ? "mmd++ (channel norm)" : "mmd", x, g, n, eval_mmd, &mc, mc.value, one, 1,
                  1e-2f, 1e-2, 1e-3, 150);
    }
}

/* ---- the sliced Wasserstein patch loss ------------------------------------------------- */

typedef struct {
    PerceptTensor x, y;
    PerceptSwdConfig cfg;
    float value[1];
} SwdCase;

static void eval_swd(void *p)
{
    SwdCase *c = p;
    double v = 0;
    percept_swd_loss(&c->x, &c->y, &c->cfg, &v, NULL);
    c->value[0] = (float)v;
}

/* a blurred copy of a (one plane, h×w): 3×3 box, edges clamped */
static void box_blur(float *out, const float *a, int h, int w)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float s = 0;
            for (int u = -1; u <= 1; u++)
                for (int v = -1; v <= 1; v++) {
                    int yy = y + u < 0 ? 0 : y + u >= h ? h - 1 : y + u;
                    int xx = x + v < 0 ? 0 : x + v >= w ? w - 1 : x + v;
                    s += a[yy * w + xx];
                }
            out[y * w + x] = s / 9;
        }
}

static void check_swd(void)
{
    /* gradient by finite differences, through three pyramid levels (20×18, 10×9, 5×5) */
    enum { N = 2 * 3 * 20 * 18 };
    static float x[N], y[N], g[N];
    fill_uniform(x, N, 61, 0, 1);
    fill_uniform(y, N, 62, 0, 1);
    for (int i = 0; i < N; i++)
        y[i] = y[i] * y[i]; /* another distribution */
    SwdCase c = {{2, 3, 20, 18, x}, {2, 3, 20, 18, y}, {3, 8, 1, 3, 1, 0, 5}, {0}};
    double v = -1;
    CHECK(percept_swd_loss(&c.x, &c.y, &c.cfg, &v, g) == 0 && v > 1e-3, "swd value %g: %s", v,
          percept_error());
    float one[1] = {1};
    gradcheck("swd", x, g, N, eval_swd, &c, c.value, one, 1, 1e-3f, 2e-2, 2e-3, 200);
    c.cfg.stride = 2, c.cfg.patch = 4;   /* strided patches leave some pixels out */
    CHECK(percept_swd_loss(&c.x, &c.y, &c.cfg, &v, g) == 0, "%s", percept_error());
    gradcheck("swd (stride 2, 4×4)", x, g, N, eval_swd, &c, c.value, one, 1, 1e-3f, 2e-2, 2e-3, 200);
    c.cfg.stride = 1, c.cfg.phases = 4;  /* four phase groups a side, then two */
    CHECK(percept_swd_loss(&c.x, &c.y, &c.cfg, &v, g) == 0, "%s", percept_error());
    gradcheck("swd (phases 4)", x, g, N, eval_swd, &c, c.value, one, 1, 1e-3f, 2e-2, 2e-3, 200);
    c.cfg.window = 8;                    /* 8×8 windows (3×3 at 20×18), then the whole level */
    CHECK(percept_swd_loss(&c.x, &c.y, &c.cfg, &v, g) == 0, "%s", percept_error());
    gradcheck("swd (windows)", x, g, N, eval_swd, &c, c.value, one, 1, 1e-3f, 2e-2, 2e-3, 200);

    CHECK(percept_swd_loss(&c.y, &c.y, NULL, &v, NULL) == 0 && v == 0, "SWD of y with itself %g", v);
    double again = -1;
    percept_swd_loss(&c.x, &c.y, NULL, &v, NULL);
    percept_swd_loss(&c.x, &c.y, NULL, &again, NULL);
    CHECK(v == again && v > 0, "the same target draws the same directions: %g %g", v, again);

    /* what it is for: another sample of a texture is near, its blur (which L1 prefers) far */
    enum { H = 64, W = 64 };
    static float tex[H * W], other[H * W], blurred[H * W];
    fill_uniform(tex, H * W, 63, 0, 1);
    fill_uniform(other, H * W, 64, 0, 1);
    box_blur(blurred, tex, H, W);
    PerceptTensor tt = {1, 1, H, W, tex}, to = {1, 1, H, W, other}, tb = {1, 1, H, W, blurred};
    double d_other, d_blur;
    const PerceptSwdConfig dense = {7, 32, 1, 2, 1, 0, 1}; /* enough patches for two samples to agree */
    CHECK(percept_swd_loss(&to, &tt, &dense, &d_other, NULL) == 0 &&
          percept_swd_loss(&tb, &tt, &dense, &d_blur, NULL) == 0 && d_other * 10 < d_blur,
          "SWD: another sample of the texture %g, its blur %g", d_other, d_blur);
    CHECK(percept_loss_l1(other, tex, H * W, NULL) > percept_loss_l1(blurred, tex, H * W, NULL),
          "L1 prefers the blur");
    /* the blur with a period-4 grid added (a ×4 pixel shuffle's fault): without phases the
     * grid's spread passes for the texture's, and the loss prefers it to the blur; with
     * phases a patch is compared with the texture's at the same place in the grid's period,
     * and the grid is worse than the blur */
    static float grid[H * W];
    for (int i = 0; i < H * W; i++)
        grid[i] = blurred[i] + ((i / W) % 4 < 2 ? 0.18f : -0.18f) * ((i % W) % 4 < 2 ? 1 : -1);
    PerceptTensor tg = {1, 1, H, W, grid};
    const PerceptSwdConfig phased = {7, 32, 1, 2, 4, 0, 1};
    double g1, g4, b4;
    CHECK(percept_swd_loss(&tg, &tt, &dense, &g1, NULL) == 0 && g1 < d_blur,
          "SWD without phases: the grid %g below the blur %g", g1, d_blur);
    CHECK(percept_swd_loss(&tg, &tt, &phased, &g4, NULL) == 0 &&
          percept_swd_loss(&tb, &tt, &phased, &b4, NULL) == 0 && g4 > b4,
          "SWD with phases: the grid %g above the blur %g", g4, b4);

    /* the configured loss is the same computation; bad options and images are errors */
    PerceptLoss *l = percept_loss_new("swd:p3:d8:s1:levels3:phases2:w8:seed5");
    double lv = -1;
    CHECK(l && percept_loss_set_target(l, &c.y) == 0 && percept_loss_eval(l, &c.x, &lv, NULL) == 0 &&
          percept_swd_loss(&c.x, &c.y, &(PerceptSwdConfig){3, 8, 1, 3, 2, 8, 5}, &v, NULL) == 0 && lv == v,
          "configured swd %g vs %g: %s", lv, v, percept_error());
    percept_loss_free(l);
    static const struct { const char *spec, *expect; } bad[] = {
        {"swd:q3", "bad SWD option 'q3'"}, {"swd:p0", "bad SWD option 'p0'"},
        {"swd:p16", "patch 1..15"}, {"swd:levels9", "levels 1..8"}, {"swd:d5000", "bad SWD option"},
        {"swd:sigma2", "bad SWD option"}, {"swd:p", "bad SWD option 'p'"},
        {"swd:phases17", "phases 1..16"}};
    for (size_t i = 0; i < sizeof bad / sizeof *bad; i++) {
        PerceptLoss *b = percept_loss_new(bad[i].spec);
        CHECK(!b && strstr(percept_error(), bad[i].expect), "%s: %s", bad[i].spec, percept_error());
        percept_loss_free(b);
    }
    PerceptTensor tiny = {1, 1, 5, 64, tex};
    CHECK(percept_swd_loss(&tiny, &tiny, NULL, &v, NULL) != 0 && strstr(percept_error(), "smaller"),
          "a 64×5 image has no 7×7 patch: %s", percept_error());
    CHECK(percept_swd_loss(&tt, &tiny, NULL, &v, NULL) != 0 && strstr(percept_error(), "differ"),
          "sizes differ: %s", percept_error());
}

/* ---- metrics ------------------------------------------------------------------------ */

static void check_metrics(void)
{
    enum { H = 40, W = 36, N = 3 * H * W };
    static float a[2 * N], b[2 * N];
    fill_uniform(a, 2 * N, 51, 0, 1);
    for (int i = 0; i < 2 * N; i++)
        b[i] = a[i] + (i % 2 ? 0.1f : -0.1f); /* MSE 0.01: 20 dB */
    PerceptTensor ta = {1, 3, H, W, a}, tb = {1, 3, H, W, b};
    CHECK(fabs(percept_psnr(&ta, &tb) - 20.0) < 1e-4, "PSNR %g, expected 20 dB", percept_psnr(&ta, &tb));
    CHECK(isinf(percept_psnr(&ta, &ta)), "PSNR of identical images should be infinite");
    /* Y of a grey shift of 0.1 in every channel: 0.1 · (65.481 + 128.553 + 24.966) = 21.9 */
    for (int i = 0; i < N; i++)
        b[i] = a[i] + 0.1f;
    double want = 10 * log10(255.0 * 255.0 / (21.9 * 21.9));
    CHECK(fabs(percept_psnr_y(&ta, &tb, 4) - want) < 1e-3, "PSNR(Y) %g, expected %g",
          percept_psnr_y(&ta, &tb, 4), want);
    CHECK(isnan(percept_psnr_y(&ta, &tb, 20)) && strstr(percept_error(), "border"),
          "border too large: %s", percept_error());
    PerceptTensor grey = {1, 1, H, W, a};
    CHECK(isnan(percept_psnr(&ta, &grey)) && strstr(percept_error(), "differ"), "sizes differ");
    /* normalised Euclidean error: the other image of a set of two is exactly 100% away */
    fill_uniform(b, 2 * N, 52, 0, 1);
    PerceptTensor set = {2, 3, H, W, b}, swapped = {2, 3, H, W, a};
    memcpy(a, b + N, sizeof(float) * N);
    memcpy(a + N, b, sizeof(float) * N);
    CHECK(fabs(percept_normalized_euclidean(&swapped, &set) - 1.0) < 1e-6,
          "normalised error of swapped images %g", percept_normalized_euclidean(&swapped, &set));
    CHECK(percept_normalized_euclidean(&set, &set) == 0, "normalised error of identical sets");
    /* SWD: zero for identical images, growing with the amount of noise added */
    static float img[3 * 64 * 64], blurred[3 * 64 * 64], noisy[3 * 64 * 64];
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < 64; y++)
            for (int x = 0; x < 64; x++) {
                float v = 0.5f + 0.4f * sinf(0.7f * x + c) * cosf(0.45f * y);
                img[(c * 64 + y) * 64 + x] = v;
            }
    for (int i = 0; i < 3 * 64 * 64; i++) {
        int x = i % 64;
        (void)x;
        blurred[i] = img[i] + 0.02f * (float)((i * 7919) % 11 - 5);  /* strong noise */
        noisy[i] = img[i] + 0.002f * (float)((i * 7919) % 11 - 5);   /* weak noise */
    }
    PerceptTensor ti = {1, 3, 64, 64, img}, tbl = {1, 3, 64, 64, blurred}, tn = {1, 3, 64, 64, noisy};
    double levels[8], mean0, mean_blur, mean_noise;
    int nl;
    CHECK(percept_swd(&ti, &ti, levels, 8, &nl, &mean0) == 0 && nl == 3 && mean0 == 0,
          "SWD of an image with itself: %g over %d levels", mean0, nl);
    percept_swd(&ti, &tbl, levels, 8, &nl, &mean_blur);
    percept_swd(&ti, &tn, levels, 8, &nl, &mean_noise);
    CHECK(mean_blur > mean_noise && mean_noise > 0, "SWD strong noise %g, weak noise %g", mean_blur,
          mean_noise);
    PerceptTensor small = {1, 3, 12, 64, img};
    CHECK(percept_swd(&small, &small, NULL, 0, NULL, &mean0) == -1 && strstr(percept_error(), "16"),
          "SWD too small: %s", percept_error());
}

int main(void)
{
    PerceptSafetensors *st = percept_st_read("golden/losses.safetensors");
    CHECK(st != NULL, "loss fixture: %s", percept_error());
    fx = st;
    if (st)
        check_against_pytorch();
    check_finite_differences();
    check_edges();
    check_specs();
    check_vgg_losses();
    check_shared_network();
    check_ssim();
    check_ssim_gradient();
    check_ms_ssim();
    check_mmd();
    check_style_mmd();
    check_swd();
    check_metrics();
    percept_st_free(st);
    return check_done("test-losses");
}
