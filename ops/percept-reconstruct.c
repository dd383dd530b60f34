/* percept:reconstruct — restoration networks (denoising, JPEG artefact removal,
 * autoencoder reconstruction in the DeePSiM line) that keep the image size. */
#ifdef GEGL_PROPERTIES

property_string(model, "Model", "")
  description("Preset name (denoise, jpeg, …) or path of a .safetensors file; empty: the "
              "denoise preset")

property_double(strength, "Strength", 1.0)
  description("0 keeps the original, 1 is the network's result")
  value_range(0.0, 1.0)

#include "op-ensemble-property.h"
#include "op-properties.h"

#else

#define GEGL_OP_FILTER
#define GEGL_OP_NAME percept_reconstruct
#define GEGL_OP_C_SOURCE percept-reconstruct.c
#define GEGL_OP_BUNDLE

#include <glib/gi18n-lib.h>

#include "op-support.h" /* before gegl-op.h: the properties use its types */
#include "gegl-op.h"

static void prepare(GeglOperation *operation)
{
    GeglProperties *o = GEGL_PROPERTIES(operation);
    PerceptOpState *state = percept_op_prepare(operation, o->model, "denoise", "reconstruct|autoencoder", 1,
                                               o->device);
    state->pass = !state->model || o->strength == 0.0;
}

static gboolean process(GeglOperation *operation, GeglBuffer *input, GeglBuffer *output,
                        const GeglRectangle *result, gint level)
{
    GeglProperties *o = GEGL_PROPERTIES(operation);
    PerceptOpState *state = percept_op_state(operation);
    GeglRectangle box;
    char *error = NULL;
    percept_op_input_box(operation, &box);
    PerceptTiler t = {state->model, percept_op_rgb(operation), o->tile_size, 0, operation,
                      "Reconstructing", o->self_ensemble};
    if (!percept_op_run_blended(operation, &t, input, output, &box, o->strength, FALSE,
                                &error)) {
        g_warning("percept:reconstruct: %s", error);
        gegl_buffer_copy(input, &box, GEGL_ABYSS_NONE, output, &box);
        g_free(error);
    }
    return TRUE;
}

static void gegl_op_class_init(GeglOpClass *klass)
{
    GeglOperationClass *operation_class = GEGL_OPERATION_CLASS(klass);
    percept_op_class_setup(operation_class, prepare, process);
    gegl_operation_class_set_keys(operation_class,
        "name", "percept:reconstruct",
        "title", "Percept Reconstruct",
        "categories", "enhance:noise-reduction",
        "description", "Restores an image with a neural network: denoising, JPEG artefact "
                       "removal or autoencoder reconstruction (percept presets or any "
                       "percept .safetensors model)",
        "gimp:menu-path", "<Image>/Filters/Percept",
        "gimp:menu-label", "Reconstruct…",
        NULL);
}

#endif
