/* Tiled network runs over GEGL buffers (see tiler.h for why the tiles agree with a
 * whole-image pass). */
#include <math.h>
#include <string.h>

#include "say-once.h"
#include "tiler.h"

static int round_up(int v, int a)
{
    return (v + a - 1) / a * a;
}

size_t percept_tiler_default_budget(void)
{
    const char *env = g_getenv("PERCEPT_TILE_MEMORY_MB");
    guint64 mb = env ? g_ascii_strtoull(env, NULL, 10) : 0;
    return (size_t)(mb >= 16 ? mb : 1024) << 20;
}

/* Side a w (or h) pixel image is extended to before it enters the network, as a whole. */
static int padded_side(const PerceptModel *m, int side)
{
    int p = round_up(side, m->align);
    return p > m->min_side ? p : m->min_side;
}

/* Reads rect r of input as planar RGB into dst (3 × ph × pw, ph ≥ r->height, pw ≥ r->width),
 * repeating the last column and row into the extension. Values that are not finite (a
 * float image may hold them) become 0: one NaN would spread over the whole output. */
static void read_planar(GeglBuffer *input, const Babl *format, const GeglRectangle *r,
                        double scale, int pw, int ph, float *dst, float *rgb)
{
    gegl_buffer_get(input, r, scale, format, rgb, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_CLAMP);
    size_t plane = (size_t)pw * ph;
    for (int y = 0; y < ph; y++) {
        const float *row = rgb + (size_t)(y < r->height ? y : r->height - 1) * r->width * 3;
        for (int x = 0; x < pw; x++) {
            const float *px = row + (size_t)(x < r->width ? x : r->width - 1) * 3;
            for (int c = 0; c < 3; c++) {
                float v = px[c];
                dst[c * plane + (size_t)y * pw + x] = isfinite(v) ? v : 0.0f;
            }
        }
    }
}

/* Forward of a planar image; *out points into the network's memory, or into `ensemble`
 * when that is given: the self-ensemble of the 8 orientations. A GPU network's output is
 * downloaded into `host` (one transfer: reading it in place would migrate its pages to the
 * host one fault at a time). *oom says whether a failure was memory running out. */
static gboolean forward(PerceptModel *m, float *planar, int pw, int ph, float *ensemble,
                        float *host, PerceptTensor *out, gboolean *oom, char **error)
{
    PerceptTensor in = {1, 3, ph, pw, planar};
    if ((ensemble ? percept_net_forward_ensemble(m->net, &in, ensemble, out)
                  : percept_net_forward(m->net, &in, out)) == 0 &&
        (ensemble || !host || percept_copy(host, out->data, percept_tensor_numel(out)) == 0)) {
        if (!ensemble && host)
            out->data = host;
        return TRUE;
    }
    *oom = percept_error_is_out_of_memory();
    *error = g_strdup_printf("%s: %s", m->path, percept_error());
    return FALSE;
}

/* Whole-image instance-norm statistics, fixed in the network. The image is scaled down by
 * the smallest integer factor that brings the pass within the budget and the device's
 * memory. */
static gboolean take_statistics(const PerceptTiler *t, GeglBuffer *input,
                                const GeglRectangle *image, size_t budget, gboolean *oom,
                                char **error)
{
    PerceptModel *m = t->model;
    for (int f = 1; f <= 64; f++) {
        int w = (image->width + f - 1) / f, h = (image->height + f - 1) / f;
        int pw = padded_side(m, w), ph = padded_side(m, h);
        size_t need = percept_net_memory_bytes(m->net, ph, pw);
        if (need == 0 || need > budget)
            continue;
        double scale = 1.0 / f;
        GeglRectangle r = {(int)floor(image->x * scale), (int)floor(image->y * scale), w, h};
        float *planar = g_try_malloc(sizeof(float) * 3 * (size_t)pw * ph);
        float *rgb = g_try_malloc(sizeof(float) * 3 * (size_t)w * h);
        gboolean ok = planar && rgb;
        PerceptTensor out;
        if (!ok)
            *error = g_strdup_printf("out of memory for a %dx%d statistics pass", w, h);
        else {
            read_planar(input, t->format, &r, scale, pw, ph, planar, rgb);
            ok = forward(m, planar, pw, ph, NULL, NULL, &out, oom, error) &&
                 percept_net_fix_norm_stats(m->net, percept_net_norm_stats(m->net)) == 0;
        }
        g_free(planar);
        g_free(rgb);
        percept_net_release_memory(m->net);
        if (ok || !*oom)
            return ok;
        g_clear_pointer(error, g_free); /* the device's memory ran out: smaller still */
    }
    *error = g_strdup_printf("%s: the instance-norm statistics pass does not fit %s even at "
                             "1/64 of the image", m->path, *oom ? "the device's memory"
                                                                : "the memory budget");
    return FALSE;
}

/* Core tile side: the one asked for, or the largest whose pass fits the budget. */
static int tile_side(const PerceptTiler *t, const GeglRectangle *image, size_t budget)
{
    PerceptModel *m = t->model;
    int longest = round_up(MAX(image->width, image->height), m->align);
    if (t->tile > 0)
        return MIN(round_up(t->tile, m->align), longest);
    static const int sides[] = {2048, 1536, 1024, 768, 512, 384, 256, 192, 128, 96, 64, 48, 32};
    int side = m->align;
    for (size_t i = 0; i < G_N_ELEMENTS(sides); i++) {
        int s = round_up(sides[i], m->align), in = s + 2 * m->halo;
        size_t need = percept_net_memory_bytes(m->net, in, in);
        if (need && need <= budget) {
            side = s;
            break;
        }
    }
    percept_error_clear();
    return MIN(side, longest);
}

/* Input span [*a, *b) (image coordinates from 0) that tile [c0, c1) of an n pixel side
 * reads, and the side *p it is extended to. */
static void tile_span(const PerceptModel *m, int c0, int c1, int n, int *a, int *p)
{
    int end = c1 + m->halo >= n ? padded_side(m, n) : c1 + m->halo;
    int start = MAX(0, c0 - m->halo);
    if (end - start < m->min_side) /* a short last tile: reach further back, aligned */
        start = MAX(0, (end - m->min_side) / m->align * m->align);
    *a = start;
    *p = end - start;
}

static void report(const PerceptTiler *t, double fraction)
{
    if (!t->progress)
        return;
    char *msg = g_strdup_printf("%s…", t->what ? t->what : "Processing");
    gegl_operation_progress(t->progress, fraction, msg);
    g_free(msg);
}

static gboolean run_tiles(const PerceptTiler *t, GeglBuffer *input, const GeglRectangle *image,
                          int side, PerceptTileSink sink, void *user, gboolean *oom,
                          char **error)
{
    PerceptModel *m = t->model;
    const int s = m->scale;
    int cols = (image->width + side - 1) / side, rows = (image->height + side - 1) / side;
    /* the widest span tile_span gives: a tile, its halos and the extension to alignment */
    int most = MAX(side + 2 * m->halo + m->align, m->min_side);
    float *planar = g_try_malloc(sizeof(float) * 3 * (size_t)most * most);
    float *rgb = g_try_malloc(sizeof(float) * 3 * (size_t)most * most);
    float *core = g_try_malloc(sizeof(float) * 3 * (size_t)side * side * s * s);
    const size_t out_floats = 3 * (size_t)most * most * s * s;
    const gboolean gpu = strcmp(percept_net_device(m->net), "cpu") != 0;
    float *ensemble = t->self_ensemble ? g_try_malloc(sizeof(float) * out_floats) : NULL;
    float *host = gpu && !t->self_ensemble ? g_try_malloc(sizeof(float) * out_floats) : NULL;
    gboolean ok = planar && rgb && core && (ensemble || !t->self_ensemble) &&
                  (host || !gpu || t->self_ensemble);
    if (!ok)
        *error = g_strdup_printf("out of memory for %dx%d tiles", side, side);
    for (int ty = 0; ok && ty < rows; ty++)
        for (int tx = 0; ok && tx < cols; tx++) {
            int cx0 = tx * side, cx1 = MIN(cx0 + side, image->width);
            int cy0 = ty * side, cy1 = MIN(cy0 + side, image->height);
            int ax, pw, ay, ph;
            tile_span(m, cx0, cx1, image->width, &ax, &pw);
            tile_span(m, cy0, cy1, image->height, &ay, &ph);
            GeglRectangle r = {image->x + ax, image->y + ay,
                               MIN(pw, image->width - ax), MIN(ph, image->height - ay)};
            read_planar(input, t->format, &r, 1.0, pw, ph, planar, rgb);
            PerceptTensor out;
            if (!(ok = forward(m, planar, pw, ph, ensemble, host, &out, oom, error)))
                break;
            /* keep this tile's own pixels, interleaved as GEGL stores them, in 0..1 */
            int ow = (cx1 - cx0) * s, oh = (cy1 - cy0) * s;
            size_t plane = (size_t)out.h * out.w;
            for (int y = 0; y < oh; y++) {
                const float *src = out.data + (size_t)((cy0 - ay) * s + y) * out.w +
                                   (size_t)(cx0 - ax) * s;
                float *dst = core + (size_t)y * ow * 3;
                for (int x = 0; x < ow; x++)
                    for (int c = 0; c < 3; c++) /* the range images have (NaN → 0) */
                        dst[x * 3 + c] = fminf(fmaxf(src[c * plane + x], 0.0f), 1.0f);
            }
            GeglRectangle o = {(image->x + cx0) * s, (image->y + cy0) * s, ow, oh};
            ok = sink(user, &o, core, error);
            report(t, (double)(ty * cols + tx + 1) / (rows * cols));
        }
    g_free(planar);
    g_free(rgb);
    g_free(core);
    g_free(ensemble);
    g_free(host);
    return ok;
}

/* The tiles on t->model; when memory runs out (*oom), again with tiles half the size, down
 * to SMALLEST_TILE (the statistics pass is already sized to the budget). */
#define SMALLEST_TILE 64
static gboolean run_on_model(const PerceptTiler *t, GeglBuffer *input, const GeglRectangle *image,
                             PerceptTileSink sink, void *user, gboolean *oom, char **error)
{
    PerceptModel *m = t->model;
    size_t budget = t->memory_budget ? t->memory_budget : percept_tiler_default_budget();
    g_mutex_lock(&m->run_lock);
    report(t, 0.0);
    gboolean ok = !m->has_norm || take_statistics(t, input, image, 2 * budget, oom, error);
    for (int side = tile_side(t, image, budget); ok;) {
        *oom = FALSE;
        if ((ok = run_tiles(t, input, image, side, sink, user, oom, error)) || !*oom ||
            side <= SMALLEST_TILE)
            break;
        percept_net_release_memory(m->net);
        g_clear_pointer(error, g_free);
        side = MAX(round_up(side / 2, m->align), round_up(SMALLEST_TILE, m->align));
        ok = TRUE;
    }
    percept_net_fix_norm_stats(m->net, NULL);
    percept_net_release_memory(m->net);
    g_mutex_unlock(&m->run_lock);
    return ok;
}

gboolean percept_tiler_run(const PerceptTiler *t, GeglBuffer *input, const GeglRectangle *image,
                           PerceptTileSink sink, void *user, char **error)
{
    PerceptModel *m = t->model;
    gboolean oom = FALSE;
    *error = NULL;
    if (image->width < 1 || image->height < 1)
        return TRUE;
    gboolean ok = run_on_model(t, input, image, sink, user, &oom, error);
    if (ok || !oom || !strcmp(m->device, "cpu"))
        return ok;
    /* out of memory on the device even in the smallest tiles: the same model on the CPU */
    char *cpu_error = NULL;
    PerceptModel *cpu = percept_model_acquire_on(m->path, "cpu", &cpu_error);
    if (!cpu) {
        g_free(cpu_error);
        return FALSE;
    }
    static gsize said = 0;
    percept_say_once(&said, "percept: %s; running on the CPU", *error);
    g_clear_pointer(error, g_free);
    PerceptTiler on_cpu = *t;
    on_cpu.model = cpu;
    ok = run_on_model(&on_cpu, input, image, sink, user, &oom, error);
    percept_model_release(cpu);
    return ok;
}
