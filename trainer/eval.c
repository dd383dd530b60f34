/* percept eval MODEL DIR: an upscale or reconstruct model against the classic methods
 * (bicubic and GEGL's samplers; GEGL's denoisers) on a directory of images never trained
 * on, each degraded as the model's training images were (its recipe's `degrade`, or
 * --degrade). */
#include <glib.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "evaluate.h"
#include "images.h"

/* A key of the recipe in percept.recipe, or NULL. */
static char *recipe_key(const PerceptSafetensors *st, const char *key)
{
    const char *text = percept_st_meta(st, "percept.recipe");
    GKeyFile *k = g_key_file_new();
    char *d = NULL;
    if (text && g_key_file_load_from_data(k, text, -1, 0, NULL))
        d = g_key_file_get_string(k, "train", key, NULL);
    g_key_file_free(k);
    return d;
}

static int evaluate(const char *model, const char *dir, const char *degrade_flag, int ensemble,
                    int json)
{
    PerceptSafetensors *st = percept_st_read(model);
    if (!st)
        return -1;
    /* owned (st's metadata goes with st); a training checkpoint is scored as the task it
     * trains, with the degradation it stores (it has no recipe) */
    char *task = g_strdup(percept_st_task(st));
    const char *stored_task = percept_st_meta(st, "percept.task");
    const int checkpoint = stored_task && !strcmp(stored_task, "checkpoint");
    const char *arch = percept_st_meta(st, "percept.arch");
    PerceptNet *net = arch ? percept_net_from_safetensors(st, arch) : NULL;
    char *degrade = degrade_flag ? g_strdup(degrade_flag)
                    : checkpoint ? g_strdup(percept_st_meta(st, "percept.degrade"))
                                 : recipe_key(st, "degrade");
    int scale = 0, oc, oh, ow, rc = -1;
    EvalTask kind = !task                          ? EVAL_UPSCALE
                    : !strcmp(task, "reconstruct") ? EVAL_RECONSTRUCT
                    : !strcmp(task, "autoencoder") ? EVAL_AUTOENCODER
                                                   : EVAL_UPSCALE;
    if (!arch)
        percept_fail("%s: not a percept weight file", model);
    else if (task && strcmp(task, "upscale") && strcmp(task, "reconstruct") &&
             strcmp(task, "autoencoder"))
        percept_fail("%s is a %s model; eval measures upscale, reconstruct and autoencoder "
                     "models", model, task);
    else if (net && percept_net_output_shape(net, 1, 32, 32, &oc, &oh, &ow) == 0)
        scale = oh / 32;
    percept_st_free(st);
    if (!degrade)
        degrade = g_strdup(kind == EVAL_UPSCALE       ? "bicubic"
                           : kind == EVAL_AUTOENCODER ? "none"
                                                      : "noise:25");
    if (net && scale >= 1 && eval_check_degrade(kind, degrade))
        scale = 0;
    if (!net || scale < 1 || (kind == EVAL_UPSCALE) != (scale > 1)) {
        if (net && scale >= 1)
            percept_fail("%s: its size factor %d does not fit its task %s", model, scale,
                         task ? task : "(none)");
        percept_net_free(net);
        g_free(degrade);
        g_free(task);
        return -1;
    }
    g_free(task);
    GPtrArray *names = images_in_dir(dir);
    if (!names) {
        percept_net_free(net);
        g_free(degrade);
        return -1;
    }
    PerceptTensor *images = calloc(names->len + 1, sizeof(PerceptTensor));
    int n = 0;
    for (guint i = 0; i < names->len; i++)
        if (image_load_rgb(g_ptr_array_index(names, i), &images[n]) == 0)
            n++;
        else
            fprintf(stderr, "percept eval: skipped %s\n", percept_error());
    Scores mean[EVAL_METHODS];
    if (n == 0)
        percept_fail("no image in '%s' (PNG, JPEG, TIFF or PPM)", dir);
    else if (eval_mean(kind, net, images, n, scale, degrade, EVAL_HAVE_GEGL, ensemble, mean) == 0) {
        rc = 0;
        if (json) {
            printf("{\"model\": \"%s\", \"images\": %d, \"scale\": %d, \"degrade\": \"%s\"", model,
                   n, scale, degrade);
            for (int m = 0; m < EVAL_METHODS; m++)
                if (*eval_method_name(kind, m)) {
                    printf(", \"%s\": ", eval_method_name(kind, m));
                    eval_print_scores_json(stdout, &mean[m]);
                }
            printf("}\n");
        } else {
            printf("%s on %s (degradation %s, then the methods below)\n\n", model, dir,
                   degrade);
            eval_print_table(stdout, kind, mean, n, scale);
        }
    }
    for (int i = 0; i < n; i++)
        free(images[i].data);
    free(images);
    g_ptr_array_free(names, TRUE);
    g_free(degrade);
    percept_net_free(net);
    return rc;
}

int cmd_eval(int argc, char **argv)
{
    const char *model = NULL, *dir = NULL, *degrade = NULL;
    int json = 0, ensemble = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--degrade") && i + 1 < argc)
            degrade = argv[++i];
        else if (!strcmp(argv[i], "--self-ensemble"))
            ensemble = 1;
        else if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!model)
            model = argv[i];
        else if (!dir)
            dir = argv[i];
        else
            model = NULL, i = argc;
    }
    if (!model || !dir) {
        fprintf(stderr, "percept: eval needs a model and an image directory\n"
                        "Try 'percept --help'.\n");
        return 2;
    }
    images_init();
    int rc = evaluate(model, dir, degrade, ensemble, json);
    if (rc)
        fprintf(stderr, "percept eval: %s\n", percept_error());
    images_exit();
    return rc ? 1 : 0;
}
