/* percept:stylize — Johnson et al. fast style transfer: runs a style network over the image,
 * optionally at another resolution (bigger or smaller brush strokes) and on luminance only. */
#ifdef GEGL_PROPERTIES

property_string(model, "Model", "starry-night")
  description("Style preset name (starry-night, the-scream, …) or path of a .safetensors "
              "style network")

property_double(strength, "Strength", 1.0)
  description("0 keeps the original, 1 is the fully stylized image")
  value_range(0.0, 1.0)

property_boolean(preserve_colors, "Preserve colors", FALSE)
  description("Take only the style's luminance and keep the original's colours")

property_double(style_scale, "Style scale", 1.0)
  description("Size of the style's strokes: the network runs on the image scaled by "
              "1/style-scale and the result is scaled back (2: strokes twice as large)")
  value_range(0.25, 4.0)

#include "op-properties.h"

#else

#define GEGL_OP_FILTER
#define GEGL_OP_NAME percept_stylize
#define GEGL_OP_C_SOURCE percept-stylize.c
#define GEGL_OP_BUNDLE

#include <math.h>

#include <glib/gi18n-lib.h>

#include "op-support.h" /* before gegl-op.h: the properties use its types */
#include "gegl-op.h"

static void prepare(GeglOperation *operation)
{
    GeglProperties *o = GEGL_PROPERTIES(operation);
    PerceptOpState *state = percept_op_prepare(operation, o->model, "starry-night", "stylize", 1,
                                               o->device);
    state->pass = !state->model || o->strength == 0.0;
}

static gboolean store_tile(void *user, const GeglRectangle *r, const float *rgb, char **error)
{
    gegl_buffer_set(user, r, 0, gegl_buffer_get_format(user), rgb, GEGL_AUTO_ROWSTRIDE);
    return TRUE;
}

static GeglBuffer *scaled(GeglBuffer *buffer, double ratio)
{
    return gegl_filter_op(buffer, "gegl:scale-ratio", "x", ratio, "y", ratio, "sampler",
                          GEGL_SAMPLER_CUBIC, "abyss-policy", GEGL_ABYSS_CLAMP, NULL);
}

/* The network at 1/style-scale of the image: scale down (or up), stylize in tiles into a
 * buffer of that size, scale the result back and blend it with the input in strips. */
static gboolean run_rescaled(GeglOperation *operation, GeglProperties *o, const PerceptTiler *t,
                             GeglBuffer *input, GeglBuffer *output, const GeglRectangle *box,
                             char **error)
{
    const Babl *rgb = t->format, *rgba = percept_op_rgba(operation);
    GeglBuffer *small = scaled(input, 1.0 / o->style_scale);
    const GeglRectangle *sbox = gegl_buffer_get_extent(small);
    GeglBuffer *styled = gegl_buffer_new(sbox, rgb);
    gboolean ok = percept_tiler_run(t, small, sbox, store_tile, styled, error);
    if (ok) {
        GeglBuffer *back = scaled(styled, o->style_scale);
        const int strip = 256;
        /* g_try: an allocation failure is an error for the host, never an abort */
        float *in = g_try_new(float, (size_t)box->width * strip * 4);
        float *net = g_try_new(float, (size_t)box->width * strip * 3);
        if (!in || !net) {
            *error = g_strdup("out of memory for the blending strips");
            ok = FALSE;
        }
        for (int y = box->y; ok && y < box->y + box->height; y += strip) {
            GeglRectangle r = {box->x, y, box->width, MIN(strip, box->y + box->height - y)};
            gegl_buffer_get(input, &r, 1.0, rgba, in, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
            gegl_buffer_get(back, &r, 1.0, rgb, net, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_CLAMP);
            percept_op_blend(in, in, net, (size_t)r.width * r.height, o->strength,
                             o->preserve_colors);
            gegl_buffer_set(output, &r, 0, rgba, in, GEGL_AUTO_ROWSTRIDE);
        }
        g_free(in);
        g_free(net);
        g_object_unref(back);
    }
    g_object_unref(styled);
    g_object_unref(small);
    return ok;
}

static gboolean process(GeglOperation *operation, GeglBuffer *input, GeglBuffer *output,
                        const GeglRectangle *result, gint level)
{
    GeglProperties *o = GEGL_PROPERTIES(operation);
    GeglRectangle box;
    char *error = NULL;
    percept_op_input_box(operation, &box);
    PerceptTiler t = {percept_op_state(operation)->model, percept_op_rgb(operation),
                      o->tile_size, 0, operation, "Stylizing"};
    gboolean ok = fabs(o->style_scale - 1.0) < 1e-6
        ? percept_op_run_blended(operation, &t, input, output, &box, o->strength,
                                 o->preserve_colors, &error)
        : run_rescaled(operation, o, &t, input, output, &box, &error);
    if (!ok) {
        g_warning("percept:stylize: %s; the image passes through unchanged", error);
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
        "name", "percept:stylize",
        "title", "Percept Stylize",
        "categories", "artistic",
        "description", "Paints the image in the style of a painting with a fast style "
                       "transfer network (Johnson et al.): percept presets or any percept "
                       ".safetensors style model",
        "gimp:menu-path", "<Image>/Filters/Percept",
        "gimp:menu-label", "Stylize…",
        NULL);
}

#endif
