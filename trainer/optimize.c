/* percept optimize: the baseline of Gatys et al. that Johnson et al. compare with (their
 * Eq. 5): the stylized image found by optimising its pixels directly (Adam, projected to
 * 0..1) against feature, style and TV losses. percept eval-style: Johnson's Fig. 5 check, a
 * style network's objective on photos against N iterations of that optimisation with the
 * same loss networks. */
#include <gegl.h>
#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "cli.h"
#include "degrade.h"
#include "images.h"
#include "objective.h"


typedef struct {
    const char *content, *style, *out, *losses, *model, *images, *init;
    int iterations, size, style_size, every, json;
    char *checkpoints;  /* eval-style: "50,100,300" */
    double lr;
    uint64_t seed;
} Options;

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Optimises x (starting from noise or the content) for `iterations` steps; objective[k] gets
 * the objective after checkpoint iteration marks[k] (marks ascending, n_marks of them).
 * With log non-NULL, prints the objective every `every` iterations. */
static int optimise(Objective *obj, const PerceptTensor *content, const Options *o,
                    const int *marks, int n_marks, double *objective, PerceptTensor *x,
                    FILE *log)
{
    size_t n = percept_tensor_numel(content);
    *x = *content;
    x->data = malloc(sizeof(float) * n);
    float *grad = malloc(sizeof(float) * n);
    PerceptAdam adam;
    PerceptAdamConfig cfg = {(float)o->lr, 0.9f, 0.999f, 1e-8f, 0};
    if (!x->data || !grad || percept_adam_init(&adam, n, cfg)) {
        free(grad);
        return percept_fail("out of memory");
    }
    for (size_t i = 0; i < n; i++)
        x->data[i] = strcmp(o->init, "content") ? percept_rng_uniform(o->seed, i)
                                                : content->data[i];
    double terms[OBJECTIVE_MAX_TERMS], total = 0;
    int rc = 0, k = 0, last = marks ? marks[n_marks - 1] : o->iterations;
    for (int it = 1; it <= last && !rc; it++) {
        rc = objective_eval(obj, x, content, terms, &total, grad);
        if (rc)
            break;
        if ((rc = percept_adam_step(&adam, x->data, grad)))
            break;
        for (size_t i = 0; i < n; i++) /* projection onto the image range */
            x->data[i] = fminf(fmaxf(x->data[i], 0.0f), 1.0f);
        if (log && (it % o->every == 0 || it == last)) {
            fprintf(log, "iteration %d/%d  objective %.6g", it, last, total);
            for (int i = 0; i < obj->n && obj->n > 1; i++)
                fprintf(log, "  %s %.6g", obj->spec[i], terms[i]);
            fputc('\n', log);
        }
        while (marks && k < n_marks && marks[k] == it) {
            /* the objective of the image as it now is (after the step) */
            rc = objective_eval(obj, x, content, terms, &objective[k], NULL);
            k++;
        }
    }
    percept_adam_free(&adam);
    free(grad);
    return rc;
}

/* The objective of the options' losses with the style image as target; the trainer's own
 * terms (adv, kl) need a network and have no meaning for pixels. */
static int style_objective(Objective *obj, const Options *o)
{
    if (objective_init(obj, o->losses ? o->losses : OBJECTIVE_STYLIZE_DEFAULT))
        return -1;
    if (obj->adversarial || obj->kl)
        return percept_fail("losses adv and kl train networks; optimize takes image losses");
    return objective_set_style(obj, o->style, o->style_size);
}

static int load_content(const char *path, int size, PerceptTensor *out)
{
    PerceptTensor img;
    if (image_load_rgb(path, &img))
        return -1;
    /* multiples of 4: the style network downsamples by 4 */
    int rc = degrade_resize(&img, size, 4, out);
    free(img.data);
    return rc;
}

static int parse_options(int argc, char **argv, Options *o, int eval_style)
{
    *o = (Options){.iterations = 300, .size = 256, .style_size = 256, .every = 10, .lr = 0.02,
                   .seed = 1, .init = "noise"};
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        int takes = 1;
        if (!strcmp(a, "--json"))
            o->json = 1, takes = 0;
        else if (!v)
            return percept_fail("option '%s' needs a value", a);
        else if (!strcmp(a, "--content") && !eval_style)
            o->content = v;
        else if (!strcmp(a, "--style"))
            o->style = v;
        else if (!strcmp(a, "--out") && !eval_style)
            o->out = v;
        else if (!strcmp(a, "--losses"))
            o->losses = v;
        else if (!strcmp(a, "--init"))
            o->init = v;
        else if (!strcmp(a, "--images") && eval_style)
            o->images = v;
        else if (!strcmp(a, "--iterations") && eval_style)
            o->checkpoints = g_strdup(v);
        else if (!strcmp(a, "--iterations"))
            o->iterations = atoi(v);
        else if (!strcmp(a, "--size"))
            o->size = atoi(v);
        else if (!strcmp(a, "--style-size"))
            o->style_size = atoi(v);
        else if (!strcmp(a, "--every"))
            o->every = atoi(v);
        else if (!strcmp(a, "--lr"))
            o->lr = g_ascii_strtod(v, NULL);
        else if (!strcmp(a, "--seed"))
            o->seed = g_ascii_strtoull(v, NULL, 10);
        else if (eval_style && a[0] != '-' && !o->model)
            o->model = a, takes = 0;
        else
            return percept_fail("unknown option '%s'", a);
        i += takes;
    }
    if (o->iterations < 1 || o->iterations > 1000000 || o->size < 16 || o->size > 4096 ||
        o->style_size < 16 || o->style_size > 4096 || o->every < 1 || !(o->lr > 0) ||
        (strcmp(o->init, "noise") && strcmp(o->init, "content")))
        return percept_fail("bad value: iterations 1..10⁶, size and style-size 16..4096, "
                            "every ≥ 1, lr > 0, init noise or content");
    return 0;
}

int cmd_optimize(int argc, char **argv)
{
    Options o;
    Objective obj = {0};
    PerceptTensor content = {0}, x = {0};
    gegl_init(NULL, NULL);
    int rc = parse_options(argc, argv, &o, 0);
    if (!rc && (!o.content || !o.style))
        rc = percept_fail("optimize needs --content IMAGE and --style IMAGE");
    if (!rc)
        rc = style_objective(&obj, &o) || load_content(o.content, o.size, &content);
    double start = now();
    if (!rc)
        rc = optimise(&obj, &content, &o, NULL, 0, NULL, &x, stdout);
    if (!rc)
        printf("%d iterations on %d×%d in %.1f s\n", o.iterations, content.w, content.h,
               now() - start);
    if (!rc && o.out && image_save_rgb(o.out, &x, 0))
        rc = -1;
    else if (!rc && o.out)
        printf("wrote %s\n", o.out);
    if (rc)
        fprintf(stderr, "percept optimize: %s\n", percept_error());
    objective_free(&obj);
    free(content.data);
    free(x.data);
    g_free(o.checkpoints);
    gegl_exit();
    return rc ? 1 : 0;
}

/* The recipe a model was trained with: its losses, style and style size unless given. */
static void recipe_defaults(const PerceptSafetensors *st, Options *o, char **losses,
                            char **style)
{
    const char *text = percept_st_meta(st, "percept.recipe");
    GKeyFile *k = g_key_file_new();
    if (text && g_key_file_load_from_data(k, text, -1, 0, NULL)) {
        if (!o->losses)
            o->losses = *losses = g_key_file_get_string(k, "train", "losses", NULL);
        if (!o->style)
            o->style = *style = g_key_file_get_string(k, "train", "style", NULL);
        int side = g_key_file_get_integer(k, "train", "style-size", NULL);
        if (side >= 16)
            o->style_size = side;
    }
    g_key_file_free(k);
}

int cmd_eval_style(int argc, char **argv)
{
    Options o;
    Objective obj = {0};
    PerceptNet *net = NULL;
    char *losses = NULL, *style = NULL;
    int marks[16], n_marks = 0;
    gegl_init(NULL, NULL);
    int rc = parse_options(argc, argv, &o, 1);
    if (!rc && (!o.model || !o.images))
        rc = percept_fail("eval-style needs a model and --images DIR");
    char **list = g_strsplit(o.checkpoints ? o.checkpoints : "50,100,300", ",", -1);
    for (char **m = list; !rc && *m && n_marks < 16; m++) {
        marks[n_marks] = atoi(*m);
        if (marks[n_marks] < 1 || (n_marks && marks[n_marks] <= marks[n_marks - 1]))
            rc = percept_fail("--iterations takes ascending counts, like 50,100,300");
        n_marks++;
    }
    g_strfreev(list);
    PerceptSafetensors *st = rc ? NULL : percept_st_read(o.model);
    if (!rc && !st)
        rc = -1;
    if (st) {
        const char *arch = percept_st_meta(st, "percept.arch");
        recipe_defaults(st, &o, &losses, &style);
        net = arch ? percept_net_from_safetensors(st, arch) : NULL;
        rc = net ? 0 : arch ? -1 : percept_fail("%s: not a percept weight file", o.model);
        percept_st_free(st);
    }
    if (!rc && !o.style)
        rc = percept_fail("no style image: give --style (the model's recipe names none)");
    if (!rc)
        rc = style_objective(&obj, &o);
    GDir *dir = rc ? NULL : g_dir_open(o.images, 0, NULL);
    if (!rc && !dir)
        rc = percept_fail("cannot read the directory '%s'", o.images);
    double net_sum = 0, net_time = 0, opt_sum[16] = {0}, opt_time = 0;
    int n = 0;
    const char *name;
    while (!rc && dir && (name = g_dir_read_name(dir))) {
        if (!g_str_has_suffix(name, ".png") && !g_str_has_suffix(name, ".jpg"))
            continue;
        char *path = g_build_filename(o.images, name, NULL);
        PerceptTensor content = {0}, x = {0}, out;
        double terms[OBJECTIVE_MAX_TERMS], v, t0 = now();
        rc = load_content(path, o.size, &content);
        if (!rc)
            rc = percept_net_forward(net, &content, &out);
        net_time += now() - t0;
        if (!rc) {
            PerceptTensor y = out;
            y.data = malloc(sizeof(float) * percept_tensor_numel(&out));
            for (size_t i = 0; y.data && i < percept_tensor_numel(&out); i++)
                y.data[i] = fminf(fmaxf(out.data[i], 0.0f), 1.0f); /* as the operation clamps */
            rc = y.data ? objective_eval(&obj, &y, &content, terms, &v, NULL)
                        : percept_fail("out of memory");
            free(y.data);
            net_sum += v;
        }
        double objective[16];
        t0 = now();
        if (!rc)
            rc = optimise(&obj, &content, &o, marks, n_marks, objective, &x, NULL);
        opt_time += now() - t0;
        for (int k = 0; !rc && k < n_marks; k++)
            opt_sum[k] += objective[k];
        n += !rc;
        free(content.data);
        free(x.data);
        g_free(path);
    }
    if (dir)
        g_dir_close(dir);
    if (!rc && n == 0)
        rc = percept_fail("no PNG or JPEG image in '%s'", o.images);
    if (!rc) {
        printf("| method (%d images, %d px, init %s) | objective | seconds per image |\n",
               n, o.size, o.init);
        printf("|---|---:|---:|\n");
        printf("| %s (one pass) | %.6g | %.3f |\n", o.model, net_sum / n, net_time / n);
        for (int k = 0; k < n_marks; k++)
            printf("| optimisation, %d iterations | %.6g | %.1f |\n", marks[k], opt_sum[k] / n,
                   opt_time / n * marks[k] / marks[n_marks - 1]);
    } else {
        fprintf(stderr, "percept eval-style: %s\n", percept_error());
    }
    objective_free(&obj);
    percept_net_free(net);
    g_free(losses);
    g_free(style);
    g_free(o.checkpoints);
    gegl_exit();
    return rc ? 1 : 0;
}
