/* The plug-in's GEGL side (see percept-graph.h). */
#include <string.h>

#include "model.h"
#include "percept-graph.h"

static const char *const operations[] = {"percept:stylize", "percept:upscale",
                                         "percept:reconstruct"};
static const char *const tasks[] = {"stylize", "upscale", "reconstruct|autoencoder"};

void percept_params_default(PerceptParams *p, PerceptTask task)
{
    memset(p, 0, sizeof *p);
    p->task = task;
    p->strength = 1.0;
    p->style_scale = 1.0;
    p->scale = 2;
}

const char *percept_task_operation(PerceptTask task)
{
    return operations[task];
}

char *percept_params_model(const PerceptParams *p)
{
    if (*p->model)
        return g_strdup(p->model);
    if (p->task == PERCEPT_TASK_UPSCALE)
        return g_strdup_printf("upscale-x%d", p->scale);
    return g_strdup(p->task == PERCEPT_TASK_STYLIZE ? "starry-night" : "denoise");
}

int percept_params_check(const PerceptParams *p, char **error)
{
    char *name = percept_params_model(p), *why = NULL;
    PerceptModel *m = percept_model_acquire(name, &why);
    int scale = 0;
    if (!m) {
        *error = g_strdup_printf("model '%s': %s", name, why);
        g_free(why);
    } else if ((*error = percept_model_unfit(m, name, operations[p->task], tasks[p->task],
                                             p->task == PERCEPT_TASK_UPSCALE ? 0 : 1)) == NULL) {
        scale = m->scale;
    }
    percept_model_release(m);
    g_free(name);
    return scale;
}

static void preset_free(gpointer data)
{
    PerceptPresetInfo *info = data;
    g_free(info->name);
    g_free(info->description);
    g_free(info);
}

static int by_name(gconstpointer a, gconstpointer b)
{
    return strcmp((*(PerceptPresetInfo *const *)a)->name, (*(PerceptPresetInfo *const *)b)->name);
}

GPtrArray *percept_presets_list(PerceptTask task)
{
    GPtrArray *list = g_ptr_array_new_with_free_func(preset_free);
    GHashTable *seen = g_hash_table_new_full(g_str_hash, g_str_equal, g_free, NULL);
    char **dirs = percept_model_preset_dirs();
    for (char **d = dirs; *d; d++) {
        GDir *dir = g_dir_open(*d, 0, NULL);
        const char *file;
        while (dir && (file = g_dir_read_name(dir))) {
            if (!g_str_has_suffix(file, ".safetensors"))
                continue;
            char *name = g_strndup(file, strlen(file) - strlen(".safetensors"));
            char *path = g_build_filename(*d, file, NULL), *why = NULL;
            PerceptModel *m = g_hash_table_contains(seen, name) ? NULL
                                                                : percept_model_acquire(path, &why);
            char *unfit = m ? percept_model_unfit(m, name, operations[task], tasks[task],
                                                  task == PERCEPT_TASK_UPSCALE ? 0 : 1)
                            : NULL;
            if (m && !unfit) {
                PerceptPresetInfo *info = g_new0(PerceptPresetInfo, 1);
                info->name = g_strdup(name);
                info->description = g_strdup(m->description ? m->description : "");
                g_ptr_array_add(list, info);
                g_hash_table_add(seen, name); /* an earlier directory wins */
                name = NULL;
            }
            percept_model_release(m);
            g_free(unfit);
            g_free(why);
            g_free(path);
            g_free(name);
        }
        if (dir)
            g_dir_close(dir);
    }
    g_strfreev(dirs);
    g_hash_table_unref(seen);
    g_ptr_array_sort(list, by_name);
    return list;
}

typedef struct {
    void (*progress)(double, void *);
    void *user;
} Progress;

static void on_progress(GeglNode *node, gdouble fraction, gpointer data)
{
    Progress *p = data;
    if (p->progress)
        p->progress(fraction, p->user);
}

gboolean percept_params_apply(const PerceptParams *p, GeglBuffer *src, const GeglRectangle *rect,
                              GeglBuffer *dst, void (*progress)(double, void *), void *user,
                              char **error)
{
    GeglNode *graph = gegl_node_new();
    GeglNode *source = gegl_node_new_child(graph, "operation", "gegl:buffer-source", "buffer",
                                           src, NULL);
    GeglNode *crop = gegl_node_new_child(graph, "operation", "gegl:crop", "x", (double)rect->x,
                                         "y", (double)rect->y, "width", (double)rect->width,
                                         "height", (double)rect->height, NULL);
    GeglNode *op = gegl_node_new_child(graph, "operation", operations[p->task], "model",
                                       p->model, "device", p->device, NULL);
    if (p->task == PERCEPT_TASK_UPSCALE)
        gegl_node_set(op, "scale", p->scale, NULL);
    else
        gegl_node_set(op, "strength", p->strength, NULL);
    if (p->task == PERCEPT_TASK_STYLIZE)
        gegl_node_set(op, "preserve-colors", p->preserve_colors, "style-scale", p->style_scale,
                      NULL);
    else
        gegl_node_set(op, "self-ensemble", p->self_ensemble, NULL);
    GeglNode *sink = gegl_node_new_child(graph, "operation", "gegl:write-buffer", "buffer", dst,
                                         NULL);
    gegl_node_link_many(source, crop, op, sink, NULL);
    Progress prog = {progress, user};
    g_signal_connect(op, "progress", G_CALLBACK(on_progress), &prog);
    gegl_node_process(sink);
    g_object_unref(graph);
    *error = NULL;
    return TRUE;
}
