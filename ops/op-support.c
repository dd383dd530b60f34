/* Shared parts of percept's GEGL operations (see op-support.h). */
#include <math.h>
#include <string.h>

#include "op-support.h"
#include "say-once.h"

static void state_free(gpointer data)
{
    PerceptOpState *s = data;
    percept_model_release(s->model);
    g_free(s->warned);
    g_free(s->noted);
    g_free(s);
}

PerceptOpState *percept_op_state(GeglOperation *op)
{
    PerceptOpState *s = g_object_get_data(G_OBJECT(op), "percept-state");
    if (!s) {
        s = g_new0(PerceptOpState, 1);
        g_object_set_data_full(G_OBJECT(op), "percept-state", s, state_free);
    }
    return s;
}

static void warn_once(GeglOperation *op, PerceptOpState *state, char *why)
{
    if (g_strcmp0(state->warned, why)) {
        g_warning("%s: %s; the image passes through unchanged",
                  gegl_operation_get_name(op), why);
        g_free(state->warned);
        state->warned = why;
    } else {
        g_free(why);
    }
}

/* The model on the device asked for; device=cuda that cannot be had says why, once, and
 * the CPU runs the model (a file error is the same on every device: it is reported). A
 * model on the GPU says so, once. */
static PerceptModel *acquire_on_device(const char *name, int device, char **error)
{
    PerceptModel *m;
    if (device != PERCEPT_DEVICE_CUDA) {
        m = percept_model_acquire_on(name, device == PERCEPT_DEVICE_CPU ? "cpu" : NULL, error);
    } else {
        m = percept_model_acquire_on(name, "cuda", error);
        const char *why = m ? NULL : strstr(*error, "device cuda: ");
        if (why) {
            static gsize said = 0;
            percept_say_once(&said, "percept: device=cuda: %s; running on the CPU",
                             why + strlen("device cuda: "));
            g_clear_pointer(error, g_free);
            m = percept_model_acquire_on(name, "cpu", error);
        }
    }
    static gsize on_gpu = 0;
    if (m && m->net && !strcmp(percept_net_device(m->net), "cuda"))
        percept_say_once(&on_gpu, "percept: running on the GPU (CUDA)");
    return m;
}

void percept_op_load(GeglOperation *op, PerceptOpState *state, const char *name,
                     const char *fallback, const char *tasks, int want_scale, int device)
{
    const char *use = name && *name ? name : fallback;
    char *error = NULL;
    PerceptModel *m = acquire_on_device(use, device, &error);
    if (m) {
        error = percept_model_unfit(m, use, gegl_operation_get_name(op), tasks, want_scale);
    } else {
        char *why = error;
        error = g_strdup_printf("model '%s': %s", use, why);
        g_free(why);
    }
    if (error) {
        percept_model_release(m);
        m = NULL;
        warn_once(op, state, error);
    } else {
        g_clear_pointer(&state->warned, g_free);
    }
    percept_model_release(state->model);
    state->model = m;
}

PerceptOpState *percept_op_prepare(GeglOperation *op, const char *name, const char *fallback,
                                   const char *tasks, int want_scale, int device)
{
    PerceptOpState *state = percept_op_state(op);
    gegl_operation_set_format(op, "input", percept_op_rgba(op));
    gegl_operation_set_format(op, "output", percept_op_output_format(op));
    percept_op_load(op, state, name, fallback, tasks, want_scale, device);
    return state;
}

void percept_op_note(PerceptOpState *state, char *text)
{
    if (g_strcmp0(state->noted, text))
        g_message("%s", text);
    g_free(state->noted);
    state->noted = text;
}

const Babl *percept_op_rgba(GeglOperation *op)
{
    return babl_format_with_space("R'G'B'A float", gegl_operation_get_source_space(op, "input"));
}

const Babl *percept_op_output_format(GeglOperation *op)
{
    const Babl *source = gegl_operation_get_source_format(op, "input");
    return source && !babl_format_has_alpha(source) ? percept_op_rgb(op) : percept_op_rgba(op);
}

const Babl *percept_op_rgb(GeglOperation *op)
{
    return babl_format_with_space("R'G'B' float", gegl_operation_get_source_space(op, "input"));
}

GType percept_device_get_type(void)
{
    static gsize type = 0;
    static const GEnumValue values[] = {
        {PERCEPT_DEVICE_AUTO, "Auto", "auto"},
        {PERCEPT_DEVICE_CPU, "CPU", "cpu"},
        {PERCEPT_DEVICE_CUDA, "CUDA", "cuda"},
        {0, NULL, NULL},
    };
    if (g_once_init_enter(&type))
        g_once_init_leave(&type, g_enum_register_static("PerceptDevice", values));
    return type;
}

gboolean percept_op_input_box(GeglOperation *op, GeglRectangle *box)
{
    const GeglRectangle *in = gegl_operation_source_get_bounding_box(op, "input");
    if (!in || gegl_rectangle_is_infinite_plane(in) || in->width < 1 || in->height < 1)
        return FALSE;
    *box = *in;
    return TRUE;
}

GeglRectangle percept_op_whole_input(GeglOperation *op, const gchar *pad,
                                     const GeglRectangle *roi)
{
    GeglRectangle box;
    return percept_op_input_box(op, &box) ? box : *roi;
}

static GeglRectangle whole_input_region(GeglOperation *op, const GeglRectangle *roi)
{
    return percept_op_whole_input(op, "input", roi);
}

static gboolean process_or_pass(GeglOperation *op, GeglOperationContext *context,
                                const gchar *output_pad, const GeglRectangle *roi, gint level)
{
    GeglRectangle box;
    if (percept_op_state(op)->pass || !percept_op_input_box(op, &box)) {
        gpointer in = gegl_operation_context_get_object(context, "input");
        if (in)
            gegl_operation_context_take_object(context, "output", g_object_ref(G_OBJECT(in)));
        return TRUE;
    }
    GeglOperationClass *filter = g_type_class_peek(GEGL_TYPE_OPERATION_FILTER);
    return filter->process(op, context, output_pad, roi, level);
}

void percept_op_class_setup(GeglOperationClass *klass, void (*prepare)(GeglOperation *),
                            gboolean (*process)(GeglOperation *, GeglBuffer *, GeglBuffer *,
                                                const GeglRectangle *, gint))
{
    klass->prepare = prepare;
    klass->process = process_or_pass;
    klass->get_required_for_output = percept_op_whole_input;
    klass->get_cached_region = whole_input_region;
    klass->threaded = FALSE;
    GEGL_OPERATION_FILTER_CLASS(klass)->process = process;
}

void percept_op_blend(float *out, const float *in_rgba, const float *net_rgb, size_t n,
                      double strength, gboolean preserve_colors)
{
    const float k = (float)strength;
    for (size_t i = 0; i < n; i++) {
        const float *b = net_rgb + 3 * i, *in = in_rgba + 4 * i;
        /* the input as the network saw it: NaN and infinities are 0 (ops/tiler.c), or one
         * bad value would stay NaN through the blend however strength is set */
        float a[3];
        for (int c = 0; c < 3; c++)
            a[c] = isfinite(in[c]) ? in[c] : 0.0f;
        float *o = out + 4 * i;
        if (preserve_colors) {
            /* replacing Y' while keeping Cb and Cr adds the same ΔY' to R', G' and B' */
            float dy = 0.299f * (b[0] - a[0]) + 0.587f * (b[1] - a[1]) + 0.114f * (b[2] - a[2]);
            for (int c = 0; c < 3; c++)
                o[c] = a[c] + k * dy;
        } else {
            for (int c = 0; c < 3; c++)
                o[c] = a[c] + k * (b[c] - a[c]);
        }
        o[3] = in[3];
    }
}

typedef struct {
    GeglBuffer *input, *output;
    const Babl *rgba;
    double strength;
    gboolean preserve_colors;
} BlendSink;

static gboolean blend_tile(void *user, const GeglRectangle *r, const float *rgb, char **error)
{
    BlendSink *s = user;
    size_t n = (size_t)r->width * r->height;
    float *px = g_try_malloc(sizeof(float) * 4 * n);
    if (!px) {
        *error = g_strdup("out of memory");
        return FALSE;
    }
    gegl_buffer_get(s->input, r, 1.0, s->rgba, px, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
    percept_op_blend(px, px, rgb, n, s->strength, s->preserve_colors);
    gegl_buffer_set(s->output, r, 0, s->rgba, px, GEGL_AUTO_ROWSTRIDE);
    g_free(px);
    return TRUE;
}

gboolean percept_op_run_blended(GeglOperation *op, const PerceptTiler *t, GeglBuffer *input,
                                GeglBuffer *output, const GeglRectangle *image, double strength,
                                gboolean preserve_colors, char **error)
{
    BlendSink sink = {input, output, percept_op_rgba(op), strength, preserve_colors};
    return percept_tiler_run(t, input, image, blend_tile, &sink, error);
}
