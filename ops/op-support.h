/* What the three operations share: model state per node (loaded through the cache, failures
 * warned about once), pixel formats in the source's space, the pass-through used when no
 * model can run, blending, and the device choice. */
#ifndef PERCEPT_OPS_SUPPORT_H
#define PERCEPT_OPS_SUPPORT_H

#include <gegl-plugin.h>

#include "model.h"
#include "tiler.h"

/* Where a network runs: every operation's `device` property. */
typedef enum { PERCEPT_DEVICE_AUTO, PERCEPT_DEVICE_CPU, PERCEPT_DEVICE_CUDA } PerceptDevice;
GType percept_device_get_type(void);

typedef struct {
    PerceptModel *model; /* NULL when the model named cannot be used */
    gboolean pass;       /* hand the input on unchanged (no model, strength 0): prepare sets it */
    char *warned;        /* the last failure warned about, so it is said once */
    char *noted;         /* the last remark made (upscale: a model's own scale wins) */
} PerceptOpState;

/* The operation's state, made on first use and freed with the operation. */
PerceptOpState *percept_op_state(GeglOperation *op);

/* Loads `name` (or `fallback` when name is empty) into state, checking that the model's
 * task and scale fit the operation: want_scale 1 for stylize/reconstruct, 0 for "any
 * above 1" (upscale). `tasks` is a '|'-separated list of accepted percept.task values
 * ("" always passes). A failure is warned about once (naming the model and why) and
 * leaves state->model NULL: the operation then passes its input through. device (a
 * PerceptDevice): auto follows libpercept's default (PERCEPT_DEVICE, else the CPU), cpu
 * the CPU, cuda the GPU — or, when that cannot be had, the CPU after saying why once. */
void percept_op_load(GeglOperation *op, PerceptOpState *state, const char *name,
                     const char *fallback, const char *tasks, int want_scale, int device);

/* Every operation's prepare: R'G'B'A float in the source's space in, the same (or RGB
 * without alpha) out, the model loaded on its device (percept_op_load). Returns the
 * state, whose pass the caller then decides. */
PerceptOpState *percept_op_prepare(GeglOperation *op, const char *name, const char *fallback,
                                   const char *tasks, int want_scale, int device);

/* g_message(text) unless it is the state's last remark; takes text. */
void percept_op_note(PerceptOpState *state, char *text);

/* "R'G'B'A float" / "R'G'B' float" in the space of the input. */
const Babl *percept_op_rgba(GeglOperation *op);
const Babl *percept_op_rgb(GeglOperation *op);
/* The output pad's format: RGBA, or RGB when the input has no alpha to carry. */
const Babl *percept_op_output_format(GeglOperation *op);

/* The input's bounding box; FALSE for an empty or infinite one (nothing to run on). */
gboolean percept_op_input_box(GeglOperation *op, GeglRectangle *box);

/* What every percept operation's class shares: its prepare and filter process, GEGL's
 * process replaced by one that passes the input through when state->pass (or the input is
 * empty or infinite), the whole input required for any output (a network pass needs every
 * tile's halo, instance norm the whole image), the whole output as the cached region (GEGL
 * runs process once and the tiler picks the tiles), not threaded (the tiler and the
 * network use the cores). Upscale overrides the regions after this. */
void percept_op_class_setup(GeglOperationClass *klass, void (*prepare)(GeglOperation *),
                            gboolean (*process)(GeglOperation *, GeglBuffer *, GeglBuffer *,
                                                const GeglRectangle *, gint));

/* The whole input's bounding box (the cached region of the size-keeping ops). */
GeglRectangle percept_op_whole_input(GeglOperation *op, const gchar *pad,
                                     const GeglRectangle *roi);

/* out (RGBA) = the input's pixels moved towards the network's rgb by strength; with
 * preserve_colors only the network's luma (BT.601 Y') is taken and the input's chroma
 * kept. Alpha is the input's. n pixels. */
void percept_op_blend(float *out, const float *in_rgba, const float *net_rgb, size_t n,
                      double strength, gboolean preserve_colors);

/* Runs tiler t over op's input and writes, per tile, percept_op_blend of the input and the
 * network into output (scale-1 models). */
gboolean percept_op_run_blended(GeglOperation *op, const PerceptTiler *t, GeglBuffer *input,
                                GeglBuffer *output, const GeglRectangle *image, double strength,
                                gboolean preserve_colors, char **error);

#endif
