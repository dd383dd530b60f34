/* The plug-in's work, independent of libgimp: checking a model before touching the image,
 * listing presets, and running a percept operation over a GEGL buffer. The libgimp-2.0
 * entry point (percept-gimp2.c) calls it; a libgimp-3.0 one can call it unchanged. */
#ifndef PERCEPT_PLUGIN_GRAPH_H
#define PERCEPT_PLUGIN_GRAPH_H

#include <gegl.h>

typedef enum { PERCEPT_TASK_STYLIZE, PERCEPT_TASK_UPSCALE, PERCEPT_TASK_RECONSTRUCT } PerceptTask;

typedef struct {
    PerceptTask task;
    char model[1024];       /* preset name or path; "" for the task's default */
    double strength;        /* stylize, reconstruct */
    gboolean preserve_colors;
    double style_scale;     /* stylize */
    int scale;              /* upscale: 2, 4, 8 */
    int device;             /* 0 auto, 1 cpu, 2 cuda */
    gboolean self_ensemble; /* upscale, reconstruct: the mean of the 8 orientations */
} PerceptParams;

/* Defaults as the operations have them. */
void percept_params_default(PerceptParams *p, PerceptTask task);
/* The model the operation will run: p->model, or when that is empty the preset the
 * operation picks (starry-night, upscale-xSCALE, denoise). Caller frees. */
char *percept_params_model(const PerceptParams *p);
/* "percept:stylize", … */
const char *percept_task_operation(PerceptTask task);

/* The model the parameters name, checked as the operation will check it (found, readable,
 * valid, the right task and scale). Returns its enlargement (1 for stylize/reconstruct),
 * or 0 with *error. */
int percept_params_check(const PerceptParams *p, char **error);

typedef struct {
    char *name, *description;
} PerceptPresetInfo;
/* Installed presets for a task, sorted by name; free with g_ptr_array_unref. */
GPtrArray *percept_presets_list(PerceptTask task);

/* Runs the operation on rect of src and writes its result (rect × scale) into dst, calling
 * progress (fraction, user) as tiles finish. FALSE with *error when GEGL fails. */
gboolean percept_params_apply(const PerceptParams *p, GeglBuffer *src, const GeglRectangle *rect,
                              GeglBuffer *dst, void (*progress)(double, void *), void *user,
                              char **error);

#endif
