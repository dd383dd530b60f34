/* percept:upscale — super-resolution ×2, ×4 or ×8 with a trained network (Johnson et al.'s
 * perceptual-loss SR and percept's own presets); alpha is enlarged with a cubic sampler. */
#ifdef GEGL_PROPERTIES

property_int(scale, "Scale", 2)
  description("Enlargement factor: 2, 4 or 8 (picks the preset upscale-xN when no model "
              "is given; a model's own factor wins over it)")
  value_range(2, 8)

property_string(model, "Model", "")
  description("Preset name or path of a .safetensors super-resolution network; empty: the "
              "preset for the scale (upscale-x2, upscale-x4, upscale-x8)")

#include "op-ensemble-property.h"
#include "op-properties.h"

#else

#define GEGL_OP_FILTER
#define GEGL_OP_NAME percept_upscale
#define GEGL_OP_C_SOURCE percept-upscale.c
#define GEGL_OP_BUNDLE

#include <glib/gi18n-lib.h>

#include "op-support.h" /* before gegl-op.h: the properties use its types */
#include "gegl-op.h"

static void prepare(GeglOperation *operation)
{
    GeglProperties *o = GEGL_PROPERTIES(operation);
    char *preset = g_strdup_printf("upscale-x%d", o->scale);
    PerceptOpState *state = percept_op_prepare(operation, o->model, preset, "upscale", 0,
                                               o->device);
    state->pass = !state->model;
    if (state->model && state->model->scale != o->scale && o->model && *o->model)
        percept_op_note(state, g_strdup_printf("percept:upscale: model '%s' enlarges %d "
                                               "times (scale=%d is ignored)", o->model,
                                               state->model->scale, o->scale));
    g_free(preset);
}

static int model_scale(GeglOperation *operation)
{
    PerceptOpState *state = percept_op_state(operation);
    return state->model ? state->model->scale : 1;
}

static GeglRectangle scaled_box(const GeglRectangle *r, int s)
{
    return (GeglRectangle){r->x * s, r->y * s, r->width * s, r->height * s};
}

static GeglRectangle get_bounding_box(GeglOperation *operation)
{
    GeglRectangle box = {0, 0, 0, 0};
    const GeglRectangle *in = gegl_operation_source_get_bounding_box(operation, "input");
    if (!in)
        return box;
    if (gegl_rectangle_is_infinite_plane(in))
        return *in;
    return scaled_box(in, model_scale(operation));
}

static GeglRectangle get_cached_region(GeglOperation *operation, const GeglRectangle *roi)
{
    GeglRectangle box;
    return percept_op_input_box(operation, &box) ? scaled_box(&box, model_scale(operation))
                                                 : *roi;
}

static GeglRectangle get_invalidated_by_change(GeglOperation *operation, const gchar *pad,
                                               const GeglRectangle *roi)
{
    return get_cached_region(operation, roi);
}

typedef struct {
    GeglBuffer *output;
    GeglSampler *alpha; /* NULL when the input has no alpha */
    int scale;
    const Babl *rgba;
} UpscaleSink;

static gboolean write_tile(void *user, const GeglRectangle *r, const float *rgb, char **error)
{
    UpscaleSink *s = user;
    size_t n = (size_t)r->width * r->height;
    float *px = g_try_malloc(sizeof(float) * 4 * n);
    if (!px) {
        *error = g_strdup("out of memory");
        return FALSE;
    }
    for (int y = 0; y < r->height; y++)
        for (int x = 0; x < r->width; x++) {
            size_t i = (size_t)y * r->width + x;
            float ya[2] = {0.0f, 1.0f}; /* the sampler gives Y' and A */
            if (s->alpha) {
                /* the output pixel's centre, in input coordinates */
                double u = (r->x + x + 0.5) / s->scale, v = (r->y + y + 0.5) / s->scale;
                gegl_sampler_get(s->alpha, u, v, NULL, ya, GEGL_ABYSS_CLAMP);
            }
            float a = CLAMP(ya[1], 0.0f, 1.0f);
            px[4 * i] = rgb[3 * i];
            px[4 * i + 1] = rgb[3 * i + 1];
            px[4 * i + 2] = rgb[3 * i + 2];
            px[4 * i + 3] = a;
        }
    gegl_buffer_set(s->output, r, 0, s->rgba, px, GEGL_AUTO_ROWSTRIDE);
    g_free(px);
    return TRUE;
}

static gboolean process(GeglOperation *operation, GeglBuffer *input, GeglBuffer *output,
                        const GeglRectangle *result, gint level)
{
    GeglProperties *o = GEGL_PROPERTIES(operation);
    PerceptModel *model = percept_op_state(operation)->model;
    const Babl *source = gegl_operation_get_source_format(operation, "input");
    GeglRectangle box;
    char *error = NULL;
    percept_op_input_box(operation, &box);
    UpscaleSink sink = {output, NULL, model->scale, percept_op_rgba(operation)};
    if (source && babl_format_has_alpha(source))
        sink.alpha = gegl_buffer_sampler_new_at_level(input, babl_format("Y'A float"),
                                                      GEGL_SAMPLER_CUBIC, 0);
    PerceptTiler t = {model, percept_op_rgb(operation), o->tile_size, 0, operation,
                      "Upscaling", o->self_ensemble};
    if (!percept_tiler_run(&t, input, &box, write_tile, &sink, &error)) {
        /* nothing sensible fits the enlarged box: a plain cubic enlargement, and say why */
        g_warning("percept:upscale: %s; enlarged with the cubic sampler instead", error);
        GeglBuffer *cubic = gegl_filter_op(input, "gegl:scale-ratio", "x", (double)model->scale,
                                           "y", (double)model->scale, "sampler",
                                           GEGL_SAMPLER_CUBIC, "abyss-policy", GEGL_ABYSS_CLAMP,
                                           NULL);
        GeglRectangle out = scaled_box(&box, model->scale);
        gegl_buffer_copy(cubic, &out, GEGL_ABYSS_CLAMP, output, &out);
        g_object_unref(cubic);
        g_free(error);
    }
    g_clear_object(&sink.alpha);
    return TRUE;
}

static void gegl_op_class_init(GeglOpClass *klass)
{
    GeglOperationClass *operation_class = GEGL_OPERATION_CLASS(klass);
    percept_op_class_setup(operation_class, prepare, process);
    operation_class->get_bounding_box = get_bounding_box;
    operation_class->get_cached_region = get_cached_region;
    operation_class->get_invalidated_by_change = get_invalidated_by_change;
    gegl_operation_class_set_keys(operation_class,
        "name", "percept:upscale",
        "title", "Percept Upscale",
        "categories", "enhance",
        "description", "Enlarges the image ×2, ×4 or ×8 with a super-resolution network "
                       "(percept presets or any percept .safetensors upscale model)",
        "gimp:menu-path", "<Image>/Filters/Percept",
        "gimp:menu-label", "Upscale…",
        NULL);
}

#endif
