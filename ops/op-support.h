/* What the three operations share: model state per node (loaded through the cache, failures
 * warned about once), pixel formats in the source's space, the pass-through used when no
 * model can run, blending, and the device choice. */
#ifndef PERCEPT_OPS_SUPPORT_H
#define PERCEPT_OPS_SUPPORT_H

#include <gegl-plugin.h>

#include "model.h"
#include "tiler.h"

/* Devices, in the order of every op's `device` enum. */
enum { PERCEPT_OP_DEVICE_AUTO, PERCEPT_OP_DEVICE_CPU, PERCEPT_OP_DEVICE_CUDA };

typedef struct {
    PerceptModel *model; /* NULL when the model named cannot be used */
    char *warned;        /* the last failure warned about, so it is said once */
    char *noted;         /* the last remark made (upscale: a model's own scale wins) */
} PerceptOpState;

/* The node's state, made on first use (stored in the properties' user_data). */
PerceptOpState *percept_op_state(gpointer *user_data);
void percept_op_state_free(gpointer *user_data);

/* Loads `name` (or `fallback` when name is empty) into state, checking that the model's
 * task and scale fit the operation: want_scale 1 for stylize/reconstruct, 0 for "any
 * above 1" (upscale). `tasks` is a '|'-separated list of accepted percept.task values
 * ("" always passes). A failure is warned about once (naming the model and why) and
 * leaves state->model NULL: the operation then passes its input through. */
void percept_op_load(GeglOperation *op, PerceptOpState *state, const char *name,
                     const char *fallback, const char *tasks, int want_scale);

/* g_message(text) unless it is the state's last remark; takes text. */
void percept_op_note(PerceptOpState *state, char *text);

/* "R'G'B'A float" / "R'G'B' float" in the space of the input. */
const Babl *percept_op_rgba(GeglOperation *op);
const Babl *percept_op_rgb(GeglOperation *op);
/* The output pad's format: RGBA, or RGB when the input has no alpha to carry. */
const Babl *percept_op_output_format(GeglOperation *op);

/* Says once per process that CUDA was asked for but this build runs on the CPU. */
void percept_op_device(int device);

/* The input's bounding box; FALSE for an empty or infinite one (nothing to run on). */
gboolean percept_op_input_box(GeglOperation *op, GeglRectangle *box);

/* get_required_for_output: the whole input (a network pass needs every tile's halo, and
 * instance norm the whole image). get_cached_region for ops that keep the size: the whole
 * output, so GEGL runs process once and the tiler chooses the tiles. */
GeglRectangle percept_op_whole_input(GeglOperation *op, const gchar *pad,
                                     const GeglRectangle *roi);
GeglRectangle percept_op_whole_input_region(GeglOperation *op, const GeglRectangle *roi);

/* operation_class->process for every percept op: hands the input on unchanged when
 * `passthrough` (no model, strength 0, empty or infinite input), else runs the filter's
 * process through the parent class. */
gboolean percept_op_process_or_pass(GeglOperation *op, GeglOperationContext *context,
                                    const gchar *output_pad, const GeglRectangle *roi,
                                    gint level, gboolean passthrough,
                                    GeglOperationClass *parent_class);

/* out (RGBA) = the input's pixels moved towards the network's rgb by strength; with
 * preserve_colors only the network's luma (BT.601 Y') is taken and the input's chroma
 * kept. Alpha is the input's. n pixels. */
void percept_op_blend(float *out, const float *in_rgba, const float *net_rgb, size_t n,
                      double strength, gboolean preserve_colors);

/* Runs the tiler and writes, per tile, percept_op_blend of the input and the network into
 * output (scale-1 models). */
gboolean percept_op_run_blended(GeglOperation *op, PerceptModel *model, GeglBuffer *input,
                                GeglBuffer *output, const GeglRectangle *image, int tile,
                                double strength, gboolean preserve_colors, const char *what,
                                char **error);

#endif
