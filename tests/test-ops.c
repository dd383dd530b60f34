/* The GEGL operations through GEGL's C API, on small networks this test writes itself:
 * tiled equals whole-image (exactly for networks without instance norm, within 1/255 with
 * it), the whole-image pass equals the network run directly, alpha, greyscale, 16-bit,
 * 1×1 and 7×5 images, strength, preserve-colors, style-scale, progress, a missing and a
 * corrupt model, and a model replaced on disk. */
#include <gegl.h>
#include <glib/gstdio.h>
#include <unistd.h>

#include "check.h"
#include "fake-counter.h"
#include "percept/percept.h"

static char dir[4096];

/* A strided network without norms (alignment 2, reflection and zero padding). */
static const char *strided_arch =
    "{\"format\":1,\"name\":\"strided\",\"nodes\":["
    "{\"name\":\"c1\",\"op\":\"conv2d\",\"cin\":3,\"cout\":6,\"k\":5,\"pad\":2,\"pad_mode\":\"reflect\"},"
    "{\"name\":\"r1\",\"op\":\"relu\"},"
    "{\"name\":\"c2\",\"op\":\"conv2d\",\"cin\":6,\"cout\":6,\"k\":3,\"stride\":2,\"pad\":1},"
    "{\"name\":\"r2\",\"op\":\"leaky_relu\",\"alpha\":0.2},"
    "{\"name\":\"up\",\"op\":\"upsample_nearest\"},"
    "{\"name\":\"c3\",\"op\":\"conv2d\",\"cin\":6,\"cout\":3,\"k\":3,\"pad\":1,\"pad_mode\":\"reflect\"},"
    "{\"name\":\"out\",\"op\":\"sigmoid\"}"
    "]}";

static char *write_model(const char *name, char *arch, const char *task, const char *scale)
{
    char *path = g_build_filename(dir, name, NULL);
    PerceptNet *net = percept_net_from_arch(arch, 7);
    CHECK(net != NULL, "%s: %s", name, percept_error());
    PerceptStMeta meta[2] = {{"percept.task", (char *)task}, {"percept.scale", (char *)scale}};
    CHECK(net && percept_net_save(net, path, PERCEPT_DTYPE_F32, meta, 2) == 0, "save %s: %s",
          name, percept_error());
    percept_net_free(net);
    free(arch);
    return path;
}

/* A w×h buffer of smooth colours and a varying alpha. */
static GeglBuffer *test_image(int w, int h, const char *format)
{
    GeglRectangle r = {0, 0, w, h};
    GeglBuffer *b = gegl_buffer_new(&r, babl_format(format));
    float *px = g_new(float, (size_t)w * h * 4);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float *p = px + ((size_t)y * w + x) * 4;
            p[0] = 0.5f + 0.4f * sinf(x * 0.31f + y * 0.07f);
            p[1] = 0.5f + 0.4f * cosf(x * 0.05f - y * 0.23f);
            p[2] = (float)((x * 7 + y * 13) % 17) / 16.0f;
            p[3] = (float)((x + 2 * y) % 5) / 4.0f;
        }
    gegl_buffer_set(b, &r, 0, babl_format("R'G'B'A float"), px, GEGL_AUTO_ROWSTRIDE);
    g_free(px);
    return b;
}

typedef struct {
    double last;
    int calls;
} Progress;

/* GeglNode's "progress" signal carries the fraction only */
static void on_progress(GeglNode *node, gdouble progress, gpointer data)
{
    Progress *p = data;
    p->last = progress;
    p->calls++;
}

/* Runs operation over input with properties (NULL-terminated name/value pairs) and returns
 * the result as R'G'B'A float (caller frees), its extent in *out. */
static float *run_op(GeglBuffer *input, GeglRectangle *out, Progress *progress,
                     const char *operation, const char *first, ...)
{
    GeglNode *graph = gegl_node_new();
    GeglNode *src = gegl_node_new_child(graph, "operation", "gegl:buffer-source", "buffer",
                                        input, NULL);
    GeglNode *op = gegl_node_new_child(graph, "operation", operation, NULL);
    va_list ap;
    va_start(ap, first);
    if (first)
        gegl_node_set_valist(op, first, ap);
    va_end(ap);
    if (progress)
        g_signal_connect(op, "progress", G_CALLBACK(on_progress), progress);
    GeglBuffer *result = NULL;
    GeglNode *sink = gegl_node_new_child(graph, "operation", "gegl:buffer-sink", "buffer",
                                         &result, NULL);
    gegl_node_link_many(src, op, sink, NULL);
    gegl_node_process(sink);
    *out = *gegl_buffer_get_extent(result);
    float *px = g_new(float, (size_t)out->width * out->height * 4);
    gegl_buffer_get(result, out, 1.0, babl_format("R'G'B'A float"), px, GEGL_AUTO_ROWSTRIDE,
                    GEGL_ABYSS_NONE);
    g_object_unref(result);
    g_object_unref(graph);
    return px;
}

static float *pixels(GeglBuffer *b, const char *format)
{
    const GeglRectangle *r = gegl_buffer_get_extent(b);
    float *px = g_new(float, (size_t)r->width * r->height * 4);
    gegl_buffer_get(b, r, 1.0, babl_format(format), px, GEGL_AUTO_ROWSTRIDE, GEGL_ABYSS_NONE);
    return px;
}

static double max_diff(const float *a, const float *b, size_t n, int stride, int channels)
{
    double m = 0;
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < channels; c++) {
            double d = fabs((double)a[i * stride + c] - b[i * stride + c]);
            if (!(d <= m))
                m = isnan(d) ? INFINITY : d; /* a NaN anywhere is the largest difference */
        }
    return m;
}

/* A copy of a model file under another name (the operations cache models by path). */
static gboolean copy_model(const char *from, const char *to)
{
    gchar *bytes = NULL;
    gsize n = 0;
    gboolean ok = g_file_get_contents(from, &bytes, &n, NULL) &&
                  g_file_set_contents(to, bytes, (gssize)n, NULL);
    g_free(bytes);
    return ok;
}

/* The network on the whole image, directly (image sides multiples of its alignment), or
 * its self-ensemble. */
static float *direct(const char *model, GeglBuffer *input, gboolean ensemble, int *ow, int *oh)
{
    const GeglRectangle *r = gegl_buffer_get_extent(input);
    size_t n = (size_t)r->width * r->height;
    float *rgba = pixels(input, "R'G'B'A float"), *planar = g_new(float, 3 * n);
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            planar[c * n + i] = rgba[4 * i + c];
    PerceptNet *net = percept_net_load(model);
    PerceptTensor in = {1, 3, r->height, r->width, planar}, out;
    float *mean = g_new(float, 3 * n * 64); /* up to ×8 */
    CHECK(net && (ensemble ? percept_net_forward_ensemble(net, &in, mean, &out)
                           : percept_net_forward(net, &in, &out)) == 0,
          "direct: %s", percept_error());
    size_t on = (size_t)out.h * out.w;
    float *res = g_new(float, 4 * on);
    for (size_t i = 0; i < on; i++)
        for (int c = 0; c < 4; c++)
            res[4 * i + c] = c < 3 ? fminf(fmaxf(out.data[c * on + i], 0), 1) : 0;
    *ow = out.w;
    *oh = out.h;
    percept_net_free(net);
    g_free(mean);
    g_free(rgba);
    g_free(planar);
    return res;
}

/* Tiles of several sizes give what the whole image gives, which is what the network (or its
 * self-ensemble) gives run directly. */
static void check_exact_tiling(const char *model, const char *operation, int w, int h,
                               gboolean ensemble, double tol)
{
    GeglBuffer *in = test_image(w, h, "R'G'B'A float");
    GeglRectangle whole_r, tiled_r;
    Progress p = {0, 0};
    /* the property only when set: stylize has none */
    const char *self_ensemble = ensemble ? "self-ensemble" : NULL;
    float *whole = run_op(in, &whole_r, &p, operation, "model", model, self_ensemble, TRUE,
                          NULL);
    CHECK(p.calls >= 1 && p.last == 1.0, "%s: progress reported (%d calls, last %g)",
          operation, p.calls, p.last);
    const int sides[] = {8, 12, 20, 32};
    /* on the emulated GPU: whether the tiles' passes touch GPU memory from the host (each
     * touch would migrate pages on a GPU; tiles go up and come down as copies) */
    unsigned long *touches = fake_cuda_counter("fake_cuda_host_touches");
    const unsigned long before = touches ? *touches : 0;
    for (size_t i = 0; i < G_N_ELEMENTS(sides); i++) {
        float *tiled = run_op(in, &tiled_r, NULL, operation, "model", model, "tile-size",
                              sides[i], self_ensemble, TRUE, NULL);
        CHECK(tiled_r.width == whole_r.width && tiled_r.height == whole_r.height,
              "%s tile %d: same extent", operation, sides[i]);
        double d = max_diff(tiled, whole, (size_t)whole_r.width * whole_r.height, 4, 4);
        CHECK(d <= tol, "%s %dx%d%s, tiles of %d: max difference to whole-image %.3g (limit %g)",
              operation, w, h, ensemble ? " self-ensemble" : "", sides[i], d, tol);
        g_free(tiled);
    }
    CHECK(!touches || *touches == before, "%s on the GPU: its tiles touched GPU memory from the "
          "host %lu times", operation, touches ? *touches - before : 0);
    int dw, dh;
    if (w % 4 == 0 && h % 4 == 0) {
        float *ref = direct(model, in, ensemble, &dw, &dh);
        CHECK(dw == whole_r.width && dh == whole_r.height, "direct size %dx%d", dw, dh);
        double d = max_diff(whole, ref, (size_t)dw * dh, 4, 3);
        CHECK(d <= 1e-5, "%s%s: whole-image op vs the network run directly: %.3g", operation,
              ensemble ? " self-ensemble" : "", d);
        g_free(ref);
        if (ensemble) { /* and it is not the plain network */
            float *plain = direct(model, in, FALSE, &dw, &dh);
            d = max_diff(whole, plain, (size_t)dw * dh, 4, 3);
            CHECK(d > 1e-4, "%s: the self-ensemble differs from one pass (%.3g)", operation, d);
            g_free(plain);
        }
    }
    g_free(whole);
    g_object_unref(in);
}

/* Alpha: kept exactly by the size-keeping ops, enlarged by upscale (a constant alpha stays
 * that constant); greyscale, 16-bit and tiny inputs all give full-size RGB results. */
static void check_formats(const char *sr, const char *rec, const char *sty)
{
    GeglBuffer *in = test_image(23, 17, "R'G'B'A float");
    float *src = pixels(in, "R'G'B'A float");
    GeglRectangle r;
    float *out = run_op(in, &r, NULL, "percept:reconstruct", "model", rec, NULL);
    double da = 0;
    for (int i = 0; i < 23 * 17; i++)
        da = fmax(da, fabs(out[4 * i + 3] - src[4 * i + 3]));
    CHECK(da == 0, "reconstruct keeps alpha exactly (max diff %g)", da);
    CHECK(max_diff(out, src, 23 * 17, 4, 3) > 1e-3, "reconstruct changed the colours");
    g_free(out);
    out = run_op(in, &r, NULL, "percept:stylize", "model", sty, NULL);
    da = 0;
    for (int i = 0; i < 23 * 17; i++)
        da = fmax(da, fabs(out[4 * i + 3] - src[4 * i + 3]));
    CHECK(da == 0, "stylize keeps alpha exactly (max diff %g)", da);
    g_free(out);
    g_free(src);
    g_object_unref(in);

    /* constant alpha 0.5 through upscale */
    GeglRectangle box = {0, 0, 9, 6};
    GeglBuffer *half = gegl_buffer_new(&box, babl_format("R'G'B'A float"));
    float c[4] = {0.2f, 0.6f, 0.9f, 0.5f};
    gegl_buffer_set_color_from_pixel(half, &box, c, babl_format("R'G'B'A float"));
    out = run_op(half, &r, NULL, "percept:upscale", "model", sr, NULL);
    CHECK(r.width == 18 && r.height == 12, "upscale ×2 of 9×6: %dx%d", r.width, r.height);
    da = 0;
    for (int i = 0; i < r.width * r.height; i++)
        da = fmax(da, fabs(out[4 * i + 3] - 0.5f));
    CHECK(da < 1e-6, "upscale: constant alpha stays 0.5 (max diff %g)", da);
    g_free(out);
    g_object_unref(half);

    static const char *formats[] = {"Y' u8", "Y'A float", "R'G'B' u16", "R'G'B'A u16",
                                    "RGBA float", "Y u16"};
    for (size_t i = 0; i < G_N_ELEMENTS(formats); i++) {
        GeglBuffer *b = test_image(13, 11, formats[i]);
        float *o = run_op(b, &r, NULL, "percept:upscale", "model", sr, NULL);
        CHECK(r.width == 26 && r.height == 22, "upscale of %s: %dx%d", formats[i], r.width,
              r.height);
        int finite = 1;
        for (int k = 0; k < r.width * r.height * 4; k++)
            finite &= isfinite(o[k]);
        CHECK(finite, "upscale of %s is finite", formats[i]);
        g_free(o);
        o = run_op(b, &r, NULL, "percept:stylize", "model", sty, NULL);
        CHECK(r.width == 13 && r.height == 11, "stylize of %s: %dx%d", formats[i], r.width,
              r.height);
        g_free(o);
        g_object_unref(b);
    }

    const int tiny[][2] = {{1, 1}, {7, 5}, {1, 9}, {30, 2}};
    for (size_t i = 0; i < G_N_ELEMENTS(tiny); i++) {
        GeglBuffer *b = test_image(tiny[i][0], tiny[i][1], "R'G'B'A float");
        const char *ops[][2] = {{"percept:upscale", sr}, {"percept:stylize", sty},
                                {"percept:reconstruct", rec}};
        for (int k = 0; k < 3; k++) {
            float *o = run_op(b, &r, NULL, ops[k][0], "model", ops[k][1], NULL);
            int s = k == 0 ? 2 : 1;
            CHECK(r.width == tiny[i][0] * s && r.height == tiny[i][1] * s,
                  "%s of %dx%d: %dx%d", ops[k][0], tiny[i][0], tiny[i][1], r.width, r.height);
            int finite = 1;
            for (int j = 0; j < r.width * r.height * 4; j++)
                finite &= isfinite(o[j]) && o[j] >= -1e-3 && o[j] <= 1.001;
            CHECK(finite, "%s of %dx%d: values in range", ops[k][0], tiny[i][0], tiny[i][1]);
            g_free(o);
        }
        g_object_unref(b);
    }
}

/* strength 0 is the input exactly; 0.5 is half way; preserve-colors keeps Cb and Cr;
 * style-scale changes the result but not the size. */
static void check_blending(const char *sty, const char *rec)
{
    GeglBuffer *in = test_image(40, 28, "R'G'B'A float");
    size_t n = 40 * 28;
    float *src = pixels(in, "R'G'B'A float");
    GeglRectangle r;
    float *zero = run_op(in, &r, NULL, "percept:stylize", "model", sty, "strength", 0.0, NULL);
    CHECK(memcmp(zero, src, n * 16) == 0, "stylize strength=0 returns the input exactly");
    g_free(zero);
    zero = run_op(in, &r, NULL, "percept:reconstruct", "model", rec, "strength", 0.0, NULL);
    CHECK(memcmp(zero, src, n * 16) == 0, "reconstruct strength=0 returns the input exactly");
    g_free(zero);

    float *full = run_op(in, &r, NULL, "percept:stylize", "model", sty, NULL);
    float *half = run_op(in, &r, NULL, "percept:stylize", "model", sty, "strength", 0.5, NULL);
    double worst = 0;
    for (size_t i = 0; i < n * 4; i++)
        worst = fmax(worst, fabs(half[i] - 0.5 * (src[i] + full[i])));
    CHECK(worst < 1e-6, "strength 0.5 is half way (max diff %g)", worst);

    float *keep = run_op(in, &r, NULL, "percept:stylize", "model", sty, "preserve-colors", TRUE,
                         NULL);
    double chroma = 0, luma = 0;
    for (size_t i = 0; i < n; i++) {
        const float *a = src + 4 * i, *k = keep + 4 * i, *f = full + 4 * i;
        double ya = 0.299 * a[0] + 0.587 * a[1] + 0.114 * a[2];
        double yk = 0.299 * k[0] + 0.587 * k[1] + 0.114 * k[2];
        double yf = 0.299 * f[0] + 0.587 * f[1] + 0.114 * f[2];
        chroma = fmax(chroma, fmax(fabs((a[2] - ya) - (k[2] - yk)), fabs((a[0] - ya) - (k[0] - yk))));
        luma = fmax(luma, fabs(yk - yf));
    }
    CHECK(chroma < 1e-5 && luma < 1e-5, "preserve-colors: chroma kept (%g), luma the style's "
          "(%g)", chroma, luma);

    float *big = run_op(in, &r, NULL, "percept:stylize", "model", sty, "style-scale", 2.0, NULL);
    CHECK(r.width == 40 && r.height == 28, "style-scale 2 keeps the size (%dx%d)", r.width,
          r.height);
    CHECK(max_diff(big, full, n, 4, 3) > 1e-3, "style-scale 2 differs from 1");
    double da = 0;
    for (size_t i = 0; i < n; i++)
        da = fmax(da, fabs(big[4 * i + 3] - src[4 * i + 3]));
    CHECK(da == 0, "style-scale keeps alpha exactly");
    g_free(big);
    big = run_op(in, &r, NULL, "percept:stylize", "model", sty, "style-scale", 0.5, NULL);
    CHECK(r.width == 40 && r.height == 28, "style-scale 0.5 keeps the size");
    g_free(big);
    g_free(full);
    g_free(half);
    g_free(keep);
    g_free(src);
    g_object_unref(in);
}

/* Missing, corrupt and wrong-task models pass the input through; a model rewritten in
 * place is reloaded. */
static void check_bad_models(const char *sr, const char *sty)
{
    GeglBuffer *in = test_image(12, 10, "R'G'B'A float");
    float *src = pixels(in, "R'G'B'A float");
    char *corrupt = g_build_filename(dir, "corrupt.safetensors", NULL);
    char *truncated = g_build_filename(dir, "truncated.safetensors", NULL);
    gchar *bytes;
    gsize len;
    g_file_get_contents(sr, &bytes, &len, NULL);
    g_file_set_contents(truncated, bytes, len / 2, NULL);
    memset(bytes + 8, 'x', 16);
    g_file_set_contents(corrupt, bytes, len, NULL);
    g_free(bytes);
    const char *cases[][2] = {
        {"percept:upscale", "/nonexistent/model.safetensors"},
        {"percept:upscale", "no-such-preset"},
        {"percept:upscale", corrupt},
        {"percept:upscale", truncated},
        {"percept:upscale", sty},          /* a stylize model */
        {"percept:stylize", sr},           /* an upscale model */
        {"percept:reconstruct", sty},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(cases); i++) {
        GeglRectangle r;
        float *o = run_op(in, &r, NULL, cases[i][0], "model", cases[i][1], NULL);
        CHECK(r.width == 12 && r.height == 10 && memcmp(o, src, 12 * 10 * 16) == 0,
              "%s model=%s passes the image through (%dx%d)", cases[i][0], cases[i][1],
              r.width, r.height);
        g_free(o);
    }

    /* replace a model file: the cache notices (size / mtime) */
    char *swap = g_build_filename(dir, "swap.safetensors", NULL);
    CHECK(copy_model(sty, swap), "copy %s", sty);
    GeglRectangle r;
    float *first = run_op(in, &r, NULL, "percept:stylize", "model", swap, NULL);
    PerceptJohnsonOpts jo = {4, 0, 0};
    char *arch = percept_arch_johnson(&jo);
    PerceptNet *net = percept_net_from_arch(arch, 99);
    PerceptStMeta meta[1] = {{"percept.task", "stylize"}};
    percept_net_save(net, swap, PERCEPT_DTYPE_F32, meta, 1);
    percept_net_free(net);
    free(arch);
    float *second = run_op(in, &r, NULL, "percept:stylize", "model", swap, NULL);
    CHECK(max_diff(first, second, 120, 4, 3) > 1e-4, "a model rewritten on disk is reloaded");
    g_free(first);
    g_free(second);
    g_unlink(corrupt);
    g_unlink(truncated);
    g_unlink(swap);
    g_free(corrupt);
    g_free(truncated);
    g_free(swap);
    g_free(src);
    g_object_unref(in);
}

/* A model found by preset name through PERCEPT_PRESET_PATH, and upscale's default preset
 * chosen by scale. */
static void check_presets(const char *sr)
{
    char *presets = g_build_filename(dir, "presets", NULL);
    g_mkdir_with_parents(presets, 0755);
    char *x2 = g_build_filename(presets, "upscale-x2.safetensors", NULL);
    CHECK(copy_model(sr, x2), "copy %s", sr);
    g_setenv("PERCEPT_PRESET_PATH", presets, TRUE);
    GeglBuffer *in = test_image(10, 8, "R'G'B'A float");
    GeglRectangle r;
    float *byname = run_op(in, &r, NULL, "percept:upscale", NULL);
    CHECK(r.width == 20 && r.height == 16, "default preset upscale-x2 found (%dx%d)", r.width,
          r.height);
    float *bypath = run_op(in, &r, NULL, "percept:upscale", "model", sr, NULL);
    CHECK(memcmp(byname, bypath, 20 * 16 * 16) == 0, "preset and path give the same result");
    g_free(byname);
    g_free(bypath);
    /* scale=8 takes the file named upscale-x8 (here a ×2 network: the name picked it, the
     * path is searched before any installed presets); a preset that is nowhere passes the
     * image through */
    char *x8 = g_build_filename(presets, "upscale-x8.safetensors", NULL);
    g_rename(x2, x8);
    float *by_scale = run_op(in, &r, NULL, "percept:upscale", "scale", 8, NULL);
    CHECK(r.width == 20 && r.height == 16, "scale=8 picks upscale-x8 from the path (%dx%d)",
          r.width, r.height);
    g_free(by_scale);
    float *missing = run_op(in, &r, NULL, "percept:upscale", "model", "no-such-preset", NULL);
    CHECK(r.width == 10 && r.height == 8, "a missing preset: passed through (%dx%d)", r.width,
          r.height);
    g_free(missing);
    g_object_unref(in);
    g_unlink(x8);
    g_free(x8);
    g_rmdir(presets);
    g_free(x2);
    g_free(presets);
}

/* NaN and infinite pixels in a float image enter the networks as 0: the result is finite,
 * in range, and equals the result for the same image with those values set to 0. */
static void check_nonfinite(const char *sr, const char *rec, const char *sty)
{
    const int w = 24, h = 20;
    GeglBuffer *bad = test_image(w, h, "R'G'B'A float"), *zeroed = test_image(w, h, "R'G'B'A float");
    const struct { int x, y, c; float v; } spots[] = {
        {5, 5, 0, NAN}, {10, 3, 1, INFINITY}, {15, 12, 2, -INFINITY}, {0, 19, 0, NAN}};
    for (size_t i = 0; i < G_N_ELEMENTS(spots); i++) {
        GeglRectangle px = {spots[i].x, spots[i].y, 1, 1};
        float v[4];
        gegl_buffer_get(bad, &px, 1.0, babl_format("R'G'B'A float"), v, GEGL_AUTO_ROWSTRIDE,
                        GEGL_ABYSS_NONE);
        v[spots[i].c] = spots[i].v;
        gegl_buffer_set(bad, &px, 0, babl_format("R'G'B'A float"), v, GEGL_AUTO_ROWSTRIDE);
        v[spots[i].c] = 0;
        gegl_buffer_set(zeroed, &px, 0, babl_format("R'G'B'A float"), v, GEGL_AUTO_ROWSTRIDE);
    }
    const char *ops[] = {"percept:upscale", "percept:reconstruct", "percept:stylize"};
    const char *models[] = {sr, rec, sty};
    for (int k = 0; k < 3; k++) {
        GeglRectangle ra, rb;
        float *a = run_op(bad, &ra, NULL, ops[k], "model", models[k], NULL);
        float *b = run_op(zeroed, &rb, NULL, ops[k], "model", models[k], NULL);
        int bad_at = -1;
        for (int i = 0; i < ra.width * ra.height * 4 && bad_at < 0; i++)
            if (!(isfinite(a[i]) && a[i] >= 0 && a[i] <= 1))
                bad_at = i;
        CHECK(bad_at < 0, "%s: NaN/inf input gave %g at pixel %d channel %d", ops[k],
              bad_at < 0 ? 0.0 : a[bad_at], bad_at / 4, bad_at % 4);
        double d = max_diff(a, b, (size_t)ra.width * ra.height, 4, 3);
        CHECK(d <= 1e-6, "%s: NaN/inf input differs from zeros by %g", ops[k], d);
        g_free(a);
        g_free(b);
    }
    g_object_unref(bad);
    g_object_unref(zeroed);
}

/* Messages the operations log, for the checks that look for one. */
static GString *messages;
static void keep_message(const gchar *domain, GLogLevelFlags level, const gchar *text,
                         gpointer data)
{
    g_string_append_printf(messages, "%s\n", text);
    g_log_default_handler(domain, level, text, data);
}

/* Memory running out on the network's device (PERCEPT_DEVICE_MEMORY_MB stands in for a
 * full GPU; it applies to models not asked for on the CPU): first smaller tiles, then the
 * CPU, and the result is the same bytes (a failed run would pass the input through). Each
 * run takes a fresh copy of the model (the cache holds a model with the limit of its
 * loading). The first limit fits a 128-pixel tile and its halos but not the whole image:
 * the result can then only come from smaller tiles (not for stylize: its statistics pass
 * would shrink too, and whole-image statistics of a smaller image are close, not equal);
 * 1 kB fits nothing. The CPU fallback is said once per process, so the limit that must not
 * reach the CPU runs first. */
static void check_out_of_memory(const char *rec, const char *sty)
{
    const int w = 300, h = 260;
    GeglBuffer *in = test_image(w, h, "R'G'B'A float");
    const char *operation[] = {"percept:reconstruct", "percept:stylize"}, *model[] = {rec, sty};
    for (int cpu = 0; cpu < 2; cpu++)
        for (int k = 0; k < 2 - !cpu; k++) {
            PerceptNet *net = percept_net_load(model[k]);
            int side = 128 + 2 * (net ? percept_net_receptive_field(net) / 2 + 8 : 0);
            double mb = cpu ? 0.001 : percept_net_memory_bytes(net, side, side) / 1048576.0;
            percept_net_free(net);
            char *copy = g_build_filename(dir, cpu ? "oom-cpu.safetensors" : "oom.safetensors",
                                          NULL), limit[32];
            CHECK(copy_model(model[k], copy), "copy %s", model[k]);
            GeglRectangle r0, r;
            float *ref = run_op(in, &r0, NULL, operation[k], "model", model[k], NULL);
            setenv("PERCEPT_DEVICE_MEMORY_MB", g_ascii_dtostr(limit, sizeof limit, mb), 1);
            g_string_truncate(messages, 0);
            float *out = run_op(in, &r, NULL, operation[k], "model", copy, NULL);
            setenv("PERCEPT_DEVICE_MEMORY_MB", "", 1); /* GLib's g_setenv warns in threads */
            double d = r.width == r0.width && r.height == r0.height
                           ? max_diff(out, ref, (size_t)w * h, 4, 4) : INFINITY;
            CHECK(d == 0, "%s, device memory %s MiB: max difference %g to the run without a "
                  "limit", operation[k], limit, d);
            const char *said = strstr(messages->str, "running on the CPU");
            CHECK(!cpu ? !said : k > 0 || (said && strstr(messages->str, "out of memory")),
                  "%s, device memory %s MiB: %s (messages: '%s')", operation[k], limit,
                  cpu ? "no word of the CPU fallback" : "fell back to the CPU", messages->str);
            g_free(ref);
            g_free(out);
            g_unlink(copy);
            g_free(copy);
        }
    g_object_unref(in);
}

/* On a GPU (the host-emulated one of tests/fake-cuda in CI) whose memory runs out
 * (FAKE_CUDA_LARGEST_MB): the operation finishes on the CPU, says so, and gives what it gives
 * with memory to spare, to float rounding (two backends). Each way is said once per
 * process, so each is taken once here. */
static void check_gpu_out_of_memory(const char *rec)
{
    GeglBuffer *in = test_image(120, 100, "R'G'B'A float");
    GeglRectangle r0, r;
    float *ref = run_op(in, &r0, NULL, "percept:reconstruct", "model", rec, NULL);
    /* allocations of 2 KiB at most: not even the weights fit (the model is loaded on the
     * CPU); 50 KiB: the weights fit, no 64-px tile does (the tiler goes to the CPU) */
    static const char *const limits[] = {"0.002", "0.05"};
    for (int k = 0; k < 2; k++) {
        /* a file of its own each time: the operations cache the models they load */
        char *copy = g_strdup_printf("%s/gpu-oom-%d.safetensors", dir, k);
        CHECK(copy_model(rec, copy), "copy %s", rec);
        setenv("FAKE_CUDA_LARGEST_MB", limits[k], 1);
        g_string_truncate(messages, 0);
        float *out = run_op(in, &r, NULL, "percept:reconstruct", "model", copy, NULL);
        setenv("FAKE_CUDA_LARGEST_MB", "", 1);
        double d = r.width == r0.width && r.height == r0.height
                       ? max_diff(out, ref, (size_t)r.width * r.height, 4, 4) : INFINITY;
        CHECK(d <= 1e-5, "GPU allocations up to %s MiB: max difference %g to the run with memory to spare",
              limits[k], d);
        CHECK(strstr(messages->str, "running on the CPU") && strstr(messages->str, "out of memory"),
              "GPU allocations up to %s MiB: said it ran on the CPU (messages: '%s')", limits[k],
              messages->str);
        g_free(out);
        g_unlink(copy);
        g_free(copy);
    }
    g_free(ref);
    g_object_unref(in);
}

int main(int argc, char **argv)
{
    const char *tmp = getenv("PERCEPT_TEST_TMP");
    snprintf(dir, sizeof dir, "%s/ops-test-%d", tmp ? tmp : "/tmp", (int)getpid());
    g_mkdir_with_parents(dir, 0755);
    gegl_init(&argc, &argv);
    if (!gegl_has_operation("percept:upscale")) {
        fprintf(stderr, "percept:upscale is not registered (GEGL_PATH=%s)\n",
                g_getenv("GEGL_PATH"));
        return 1;
    }
    PerceptSrOpts so = {PERCEPT_SR_JOHNSON, 2, 8, 1, 0, 0, 0};
    char *sr = write_model("sr2.safetensors", percept_arch_sr(&so), "upscale", "2");
    PerceptSrOpts ps = {PERCEPT_SR_SHUFFLE, 4, 8, 1, 0, 0, 0};
    char *shuffle = write_model("shuffle4.safetensors", percept_arch_sr(&ps), "upscale", "4");
    char *rec = write_model("strided.safetensors", strdup(strided_arch), "reconstruct", "1");
    PerceptJohnsonOpts jo = {8, 1, 0};
    char *sty = write_model("johnson.safetensors", percept_arch_johnson(&jo), "stylize", "1");

    if (getenv("PERCEPT_TEST_OPS_GPU")) {
        /* the operations on the CUDA backend (PERCEPT_DEVICE=cuda; in CI the host-emulated
         * one, slow, so a few cases): tiles, statistics, self-ensemble, running out; the
         * GPU is named once */
        messages = g_string_new(NULL);
        g_log_set_default_handler(keep_message, NULL);
        check_exact_tiling(rec, "percept:reconstruct", 48, 40, FALSE, 1e-5);
        check_exact_tiling(sty, "percept:stylize", 64, 48, FALSE, 1.0 / 255);
        check_exact_tiling(shuffle, "percept:upscale", 33, 20, TRUE, 1e-5);
        const char *gpu = strstr(messages->str, "running on the GPU (CUDA)");
        CHECK(gpu && !strstr(gpu + 1, "running on the GPU"),
              "the operations said once that they ran on the GPU (messages: '%s')", messages->str);
        check_gpu_out_of_memory(rec);
        goto done;
    }
    /* networks without instance norm: tiles equal the whole image to float rounding */
    check_exact_tiling(sr, "percept:upscale", 52, 36, FALSE, 1e-5);
    check_exact_tiling(sr, "percept:upscale", 37, 29, FALSE, 1e-5);
    check_exact_tiling(shuffle, "percept:upscale", 33, 20, FALSE, 1e-5);
    check_exact_tiling(rec, "percept:reconstruct", 48, 40, FALSE, 1e-5);
    check_exact_tiling(rec, "percept:reconstruct", 45, 31, FALSE, 1e-5);
    /* the self-ensemble: turned tiles still start at multiples of the alignment */
    check_exact_tiling(shuffle, "percept:upscale", 33, 20, TRUE, 1e-5);
    check_exact_tiling(rec, "percept:reconstruct", 48, 40, TRUE, 1e-5);
    check_exact_tiling(rec, "percept:reconstruct", 45, 31, TRUE, 1e-5);
    /* instance norm: whole-image statistics shared by the tiles */
    check_exact_tiling(sty, "percept:stylize", 64, 48, FALSE, 1.0 / 255);
    check_exact_tiling(sty, "percept:stylize", 61, 47, FALSE, 1.0 / 255);
    check_formats(sr, rec, sty);
    check_blending(sty, rec);
    check_bad_models(sr, sty);
    check_presets(sr);
    check_nonfinite(sr, rec, sty);
    messages = g_string_new(NULL);
    g_log_set_default_handler(keep_message, NULL);
    check_out_of_memory(rec, sty);

done:;
    const char *paths[] = {sr, shuffle, rec, sty};
    for (size_t i = 0; i < G_N_ELEMENTS(paths); i++) {
        g_unlink(paths[i]);
        g_free((char *)paths[i]);
    }
    g_rmdir(dir);
    gegl_exit();
    return check_done("test-ops");
}
