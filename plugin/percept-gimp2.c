/* The GIMP 2.10 plug-in (libgimp-2.0): Filters → Percept → Stylize…, Upscale…, Reconstruct…
 * as PDB procedures usable from Script-Fu and Python-Fu. The work itself is GEGL's and
 * percept's (percept-graph.c); this file is GIMP 2.10's entry point, undo, selection,
 * progress and messages. */
#include <libgimp/gimp.h>
#include <string.h>

#include "percept-dialog.h"
#include "percept-graph.h"

static const char *const procedures[] = {"plug-in-percept-stylize", "plug-in-percept-upscale",
                                         "plug-in-percept-reconstruct"};

#define SELF_ENSEMBLE_HELP \
    "1: average the network over the image's 8 orientations (8x slower, a little more accurate)"

static void query(void)
{
    static const GimpParamDef common[] = {
        {GIMP_PDB_INT32, "run-mode", "The run mode { RUN-INTERACTIVE (0), RUN-NONINTERACTIVE (1) }"},
        {GIMP_PDB_IMAGE, "image", "Input image"},
        {GIMP_PDB_DRAWABLE, "drawable", "Input drawable"},
    };
    static const GimpParamDef stylize[] = {
        {GIMP_PDB_STRING, "model", "Style preset name or .safetensors path (\"\": starry-night)"},
        {GIMP_PDB_FLOAT, "strength", "0 keeps the original, 1 is the full style (0..1)"},
        {GIMP_PDB_INT32, "preserve-colors", "1: take only the style's luminance"},
        {GIMP_PDB_FLOAT, "style-scale", "Stroke size: the network runs at 1/style-scale (0.25..4)"},
        {GIMP_PDB_INT32, "device", "0 auto, 1 CPU, 2 CUDA"},
    };
    static const GimpParamDef upscale[] = {
        {GIMP_PDB_INT32, "scale", "Enlargement: 2, 4 or 8 (a model's own factor wins)"},
        {GIMP_PDB_STRING, "model", "Preset name or .safetensors path (\"\": upscale-xSCALE)"},
        {GIMP_PDB_INT32, "device", "0 auto, 1 CPU, 2 CUDA"},
        {GIMP_PDB_INT32, "self-ensemble", SELF_ENSEMBLE_HELP},
    };
    static const GimpParamDef reconstruct[] = {
        {GIMP_PDB_STRING, "model", "Restoration preset or .safetensors path (\"\": denoise)"},
        {GIMP_PDB_FLOAT, "strength", "0 keeps the original, 1 is the network's result (0..1)"},
        {GIMP_PDB_INT32, "device", "0 auto, 1 CPU, 2 CUDA"},
        {GIMP_PDB_INT32, "self-ensemble", SELF_ENSEMBLE_HELP},
    };
    const struct {
        const GimpParamDef *args;
        int n;
        const char *blurb, *help, *label;
    } procs[] = {
        {stylize, G_N_ELEMENTS(stylize), "Paint the image in the style of a painting",
         "Fast neural style transfer (Johnson et al.) with a percept style network; respects "
         "the selection.", "_Stylize…"},
        {upscale, G_N_ELEMENTS(upscale), "Enlarge the whole image with a neural network",
         "Super-resolution ×2, ×4 or ×8 of every layer (like Image → Scale Image, but with a "
         "percept network); one undo step.", "_Upscale…"},
        {reconstruct, G_N_ELEMENTS(reconstruct), "Restore the image with a neural network",
         "Denoising, JPEG artefact removal or autoencoder reconstruction with a percept "
         "network; respects the selection.", "_Reconstruct…"},
    };
    for (int i = 0; i < 3; i++) {
        GimpParamDef args[8];
        memcpy(args, common, sizeof common);
        memcpy(args + 3, procs[i].args, sizeof(GimpParamDef) * procs[i].n);
        gimp_install_procedure(procedures[i], procs[i].blurb, procs[i].help,
                               "percept developers", "GPL-3.0-or-later", "2026",
                               procs[i].label, "RGB*, GRAY*", GIMP_PLUGIN, 3 + procs[i].n, 0,
                               args, NULL);
        gimp_plugin_menu_register(procedures[i], "<Image>/Filters/Percept");
    }
}

/* Parameters from a non-interactive call; FALSE when they do not fit. */
static gboolean params_from_args(PerceptParams *p, int n, const GimpParam *a)
{
    const char *model = NULL;
    switch (p->task) {
    case PERCEPT_TASK_STYLIZE:
        if (n != 8)
            return FALSE;
        model = a[3].data.d_string;
        p->strength = a[4].data.d_float;
        p->preserve_colors = a[5].data.d_int32 != 0;
        p->style_scale = a[6].data.d_float;
        p->device = a[7].data.d_int32;
        break;
    case PERCEPT_TASK_UPSCALE:
        if (n != 7)
            return FALSE;
        p->scale = a[3].data.d_int32;
        model = a[4].data.d_string;
        p->device = a[5].data.d_int32;
        p->self_ensemble = a[6].data.d_int32 != 0;
        break;
    case PERCEPT_TASK_RECONSTRUCT:
        if (n != 7)
            return FALSE;
        model = a[3].data.d_string;
        p->strength = a[4].data.d_float;
        p->device = a[5].data.d_int32;
        p->self_ensemble = a[6].data.d_int32 != 0;
        break;
    }
    g_strlcpy(p->model, model ? model : "", sizeof p->model);
    return p->strength >= 0 && p->strength <= 1 && p->style_scale >= 0.25 &&
           p->style_scale <= 4 && (p->scale == 2 || p->scale == 4 || p->scale == 8) &&
           p->device >= 0 && p->device <= 2;
}

static void on_progress(double fraction, void *user)
{
    gimp_progress_update(fraction);
}

/* Stylize / reconstruct: the selection's bounds through the operation into the shadow
 * buffer, merged through the selection as one undo step. */
static gboolean filter_drawable(const PerceptParams *p, gint32 drawable, char **error)
{
    gint x, y, w, h;
    if (!gimp_drawable_mask_intersect(drawable, &x, &y, &w, &h))
        return TRUE; /* the selection misses this drawable: nothing to do */
    GeglBuffer *src = gimp_drawable_get_buffer(drawable);
    GeglBuffer *shadow = gimp_drawable_get_shadow_buffer(drawable);
    GeglRectangle rect = {x, y, w, h};
    gboolean ok = percept_params_apply(p, src, &rect, shadow, on_progress, NULL, error);
    g_object_unref(src);
    gegl_buffer_flush(shadow);
    g_object_unref(shadow);
    if (ok) {
        gimp_drawable_merge_shadow(drawable, TRUE);
        gimp_drawable_update(drawable, x, y, w, h);
    }
    return ok;
}

/* Every pixel layer under a list of items (into groups). */
static void collect_layers(gint n, const gint32 *items, GArray *out)
{
    for (gint i = 0; i < n; i++) {
        if (gimp_item_is_group(items[i])) {
            gint k;
            gint32 *children = gimp_item_get_children(items[i], &k);
            collect_layers(k, children, out);
            g_free(children);
        } else {
            g_array_append_val(out, items[i]);
        }
    }
}

/* Upscale: Image → Scale Image by the model's factor (canvas, layers, masks, channels and
 * paths, with GIMP's interpolation), then every layer's pixels replaced by the network's
 * enlargement of the original; one undo group. */
static gboolean upscale_image(const PerceptParams *p, gint32 image, int factor, char **error)
{
    gint n;
    gint32 *top = gimp_image_get_layers(image, &n);
    GArray *layers = g_array_new(FALSE, FALSE, sizeof(gint32));
    collect_layers(n, top, layers);
    g_free(top);
    GeglBuffer **originals = g_new0(GeglBuffer *, layers->len);
    for (guint i = 0; i < layers->len; i++) {
        GeglBuffer *b = gimp_drawable_get_buffer(g_array_index(layers, gint32, i));
        originals[i] = gegl_buffer_dup(b);
        g_object_unref(b);
    }
    gboolean ok = TRUE;
    gimp_image_undo_group_start(image);
    gimp_image_scale(image, gimp_image_width(image) * factor, gimp_image_height(image) * factor);
    for (guint i = 0; i < layers->len && ok; i++) {
        gint32 layer = g_array_index(layers, gint32, i);
        GeglBuffer *shadow = gimp_drawable_get_shadow_buffer(layer);
        GeglRectangle rect = *gegl_buffer_get_extent(originals[i]);
        ok = percept_params_apply(p, originals[i], &rect, shadow, on_progress, NULL, error);
        gegl_buffer_flush(shadow);
        g_object_unref(shadow);
        if (ok) {
            gimp_drawable_merge_shadow(layer, TRUE);
            gimp_drawable_update(layer, 0, 0, gimp_drawable_width(layer),
                                 gimp_drawable_height(layer));
        }
    }
    gimp_image_undo_group_end(image);
    for (guint i = 0; i < layers->len; i++)
        g_object_unref(originals[i]);
    g_free(originals);
    g_array_free(layers, TRUE);
    return ok;
}

static void run(const gchar *name, gint nparams, const GimpParam *param, gint *nreturn,
                GimpParam **return_vals)
{
    static GimpParam values[2];
    *nreturn = 1;
    *return_vals = values;
    values[0].type = GIMP_PDB_STATUS;
    values[0].data.d_status = GIMP_PDB_SUCCESS;
    int task = 0;
    while (task < 2 && strcmp(name, procedures[task]))
        task++;
    gegl_init(NULL, NULL);
    GimpRunMode mode = param[0].data.d_int32;
    gint32 image = param[1].data.d_image, drawable = param[2].data.d_drawable;
    PerceptParams p;
    percept_params_default(&p, task);
    gimp_get_data(name, &p);       /* last used values */
    p.task = task;
    if (mode == GIMP_RUN_NONINTERACTIVE && !params_from_args(&p, nparams, param)) {
        values[0].data.d_status = GIMP_PDB_CALLING_ERROR;
        return;
    }
    if (mode == GIMP_RUN_INTERACTIVE) {
        if (!percept_dialog_run(&p, drawable)) {
            values[0].data.d_status = GIMP_PDB_CANCEL;
            return;
        }
    }
    char *error = NULL;
    int factor = percept_params_check(&p, &error);
    gboolean ok = factor > 0;
    if (ok) {
        gimp_progress_init(task == PERCEPT_TASK_STYLIZE   ? "Percept: stylizing"
                           : task == PERCEPT_TASK_UPSCALE ? "Percept: upscaling"
                                                          : "Percept: reconstructing");
        ok = task == PERCEPT_TASK_UPSCALE ? upscale_image(&p, image, factor, &error)
                                          : filter_drawable(&p, drawable, &error);
        gimp_progress_end();
    }
    if (!ok) {
        /* the image is untouched: the model is checked before anything changes */
        values[0].data.d_status = GIMP_PDB_EXECUTION_ERROR;
        values[1].type = GIMP_PDB_STRING;
        values[1].data.d_string = error;
        *nreturn = 2;
        if (mode == GIMP_RUN_INTERACTIVE)
            g_message("%s", error);
        return;
    }
    if (mode != GIMP_RUN_NONINTERACTIVE)
        gimp_displays_flush();
    if (mode == GIMP_RUN_INTERACTIVE)
        gimp_set_data(name, &p, sizeof p);
}

const GimpPlugInInfo PLUG_IN_INFO = {NULL, NULL, query, run};

MAIN()
