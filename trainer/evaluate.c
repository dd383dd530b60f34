/* Evaluation against classic methods (see evaluate.h). */
#ifdef PERCEPT_HAVE_GEGL
#include <gegl.h>
#endif
#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "degrade.h"
#include "evaluate.h"

static const char *const names[4][EVAL_METHODS] = {
    {"percept", "bicubic", "gegl-cubic", "gegl-nohalo", "gegl-lohalo", "percept self-ensemble"},
    {"percept", "degraded input", "gegl-denoise-dct", "gegl-noise-reduction",
     "gegl-bilateral-filter", "percept self-ensemble"},
    {"percept", "", "", "", "", ""},
    {"percept", "bicubic from 1/8", "", "", "", ""},
};

const char *eval_method_name(EvalTask task, int method)
{
    return names[task][method];
}

/* The range of PREFIX:V or PREFIX:LOW-HIGH (noise σ in 0..255 units, JPEG quality 1..100) */
static int spec_range(const char *spec, const char *prefix, double min, double max,
                      double *lo, double *hi)
{
    size_t n = strlen(prefix);
    if (strncmp(spec, prefix, n))
        return 0;
    char *end;
    *lo = g_ascii_strtod(spec + n, &end);
    if (end == spec + n)
        return 0;
    *hi = *end == '-' ? g_ascii_strtod(end + 1, &end) : *lo;
    return !*end && *lo >= min && *hi >= *lo && *hi <= max;
}

static int noise_range(const char *spec, double *lo, double *hi)
{
    return spec_range(spec, "noise:", 0, 255, lo, hi);
}

static int jpeg_range(const char *spec, double *lo, double *hi)
{
    return spec_range(spec, "jpeg:", 1, 100, lo, hi) && *lo == (int)*lo && *hi == (int)*hi;
}

int eval_check_degrade(EvalTask task, const char *d)
{
    char *end;
    if (task == EVAL_STYLIZE || task == EVAL_AUTOENCODER)
        return strcmp(d, "none") ? percept_fail("degrade for %s must be none, not '%s'",
                                                task == EVAL_STYLIZE ? "stylize" : "autoencoder",
                                                d)
                                 : 0;
    if (!strncmp(d, "blur:", 5) && g_ascii_strtod(d + 5, &end) >= 0 && !*end && end > d + 5)
        return 0;
    double lo, hi;
    if (task == EVAL_UPSCALE && !strcmp(d, "bicubic"))
        return 0;
    if (task == EVAL_RECONSTRUCT && (noise_range(d, &lo, &hi) || jpeg_range(d, &lo, &hi)))
        return 0;
    return percept_fail("degrade '%s' is not one of %s", d,
                        task == EVAL_UPSCALE ? "blur:SIGMA, bicubic"
                                             : "noise:SIGMA, noise:LOW-HIGH (0..255), "
                                               "jpeg:QUALITY, jpeg:LOW-HIGH (1..100), "
                                               "blur:SIGMA");
}

int eval_degrade(EvalTask task, float *out, const float *hr, int h, int w, int scale,
                 const char *degrade, uint64_t seed, uint64_t counter)
{
    size_t n = 3 * (size_t)h * w;
    if (task == EVAL_STYLIZE || task == EVAL_AUTOENCODER) { /* the photo itself */
        memcpy(out, hr, sizeof(float) * n);
        return 0;
    }
    if (!strncmp(degrade, "noise:", 6)) {
        double lo, hi;
        noise_range(degrade, &lo, &hi);
        double sigma = lo + (hi - lo) * percept_rng_uniform(seed, counter * 2);
        memcpy(out, hr, sizeof(float) * n);
        degrade_noise(out, n, (float)(sigma / 255.0), seed ^ 0x6e6f697365ull,
                      percept_rng_u64(seed, counter * 2 + 1));
        return 0;
    }
    if (!strncmp(degrade, "jpeg:", 5)) {
        double lo, hi;
        jpeg_range(degrade, &lo, &hi);
        int quality = (int)lo + (int)((hi - lo + 1) * percept_rng_uniform(seed, counter * 2));
        return degrade_jpeg(out, hr, h, w, quality > hi ? (int)hi : quality);
    }
    float sigma = !strncmp(degrade, "blur:", 5) ? (float)g_ascii_strtod(degrade + 5, NULL) : 0;
    if (task == EVAL_RECONSTRUCT)
        return degrade_blur(out, hr, 3, h, w, sigma);
    float *blurred = NULL;
    const float *src = hr;
    if (sigma > 0) {
        blurred = malloc(sizeof(float) * n);
        if (!blurred || degrade_blur(blurred, hr, 3, h, w, sigma)) {
            free(blurred);
            return percept_fail("out of memory");
        }
        src = blurred;
    }
    int rc = degrade_bicubic(out, h / scale, w / scale, src, 3, h, w);
    free(blurred);
    return rc;
}

/* BT.601 luma on the 16..235 scale, divided by 255, with `border` pixels cropped. */
static float *luma(const PerceptTensor *t, int border, int *h, int *w)
{
    *h = t->h - 2 * border;
    *w = t->w - 2 * border;
    size_t plane = (size_t)t->h * t->w;
    float *y = malloc(sizeof(float) * (size_t)*h * *w);
    if (!y)
        return NULL;
    for (int i = 0; i < *h; i++)
        for (int j = 0; j < *w; j++) {
            size_t k = (size_t)(i + border) * t->w + j + border;
            y[(size_t)i * *w + j] = (float)((65.481 * t->data[k] + 128.553 * t->data[plane + k] +
                                             24.966 * t->data[2 * plane + k] + 16.0) / 255.0);
        }
    return y;
}

int eval_crop(const PerceptTensor *img, int scale, PerceptTensor *out)
{
    const int h = img->h / scale * scale, w = img->w / scale * scale;
    if (h < 1 || w < 1)
        return percept_fail("a %d×%d image is smaller than the scale %d", img->w, img->h,
                            scale);
    *out = (PerceptTensor){1, 3, h, w, malloc(sizeof(float) * 3 * (size_t)h * w)};
    if (!out->data)
        return percept_fail("out of memory");
    const size_t plane = (size_t)img->h * img->w;
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < h; y++)
            memcpy(out->data + ((size_t)c * h + y) * w, img->data + c * plane + (size_t)y * img->w,
                   sizeof(float) * w);
    return 0;
}

static void json_number(FILE *f, const char *key, const char *fmt, double v, const char *sep)
{
    fprintf(f, "\"%s\": ", key);
    if (isfinite(v))
        fprintf(f, fmt, v);
    else
        fputs("null", f);
    fputs(sep, f);
}

void eval_print_scores_json(FILE *f, const Scores *s)
{
    fputc('{', f);
    json_number(f, "psnr_y", "%.4f", s->psnr_y, ", ");
    json_number(f, "ssim_y", "%.5f", s->ssim_y, ", ");
    json_number(f, "swd", "%.4f", s->swd, "}");
}

int eval_score(const PerceptTensor *x, const PerceptTensor *clean, int border, Scores *s)
{
    s->psnr_y = percept_psnr_y(x, clean, border);
    int h, w;
    float *ya = luma(x, border, &h, &w), *yb = luma(clean, border, &h, &w);
    PerceptTensor ta = {1, 1, h, w, ya}, tb = {1, 1, h, w, yb};
    PerceptSsimConfig cfg = PERCEPT_SSIM_WANG;
    int rc = ya && yb ? percept_ssim(&ta, &tb, &cfg, &s->ssim_y, NULL) : -1;
    free(ya);
    free(yb);
    double levels[8];
    int n_levels;
    if (percept_swd(x, clean, levels, 8, &n_levels, &s->swd))
        s->swd = NAN;
    percept_error_clear();
    return rc;
}

/* The network (or its self-ensemble) on the whole image: its right and bottom edges extended
 * by repeating the last pixel to a multiple of the network's alignment, as the operations
 * extend them, and the output cut back to the image's (scaled) size and clamped as the
 * operations clamp. */
static int run_net(PerceptNet *net, int ensemble, const PerceptTensor *in, PerceptTensor *out)
{
    int a = percept_net_alignment(net);
    if (a < 1)
        return -1;
    int ph = (in->h + a - 1) / a * a, pw = (in->w + a - 1) / a * a;
    PerceptTensor x = *in, y;
    if (ph != in->h || pw != in->w) {
        x = (PerceptTensor){1, 3, ph, pw, malloc(sizeof(float) * 3 * ph * pw)};
        if (!x.data)
            return percept_fail("out of memory");
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < ph; i++)
                for (int j = 0; j < pw; j++)
                    x.data[((size_t)c * ph + i) * pw + j] =
                        in->data[((size_t)c * in->h + MIN(i, in->h - 1)) * in->w +
                                 MIN(j, in->w - 1)];
    }
    int oc, oh, ow;
    float *mean = NULL;
    int rc = percept_net_output_shape(net, 1, ph, pw, &oc, &oh, &ow);
    if (!rc && ensemble) {
        mean = malloc(sizeof(float) * oc * oh * ow);
        rc = mean ? percept_net_forward_ensemble(net, &x, mean, &y) : percept_fail("out of memory");
    } else if (!rc)
        rc = percept_net_forward(net, &x, &y);
    if (x.data != in->data)
        free(x.data);
    if (rc) {
        free(mean);
        return -1;
    }
    const int s = y.h / ph;
    oh = in->h * s;
    ow = in->w * s;
    *out = (PerceptTensor){1, 3, oh, ow, malloc(sizeof(float) * 3 * oh * ow)};
    if (out->data)
        for (int c = 0; c < 3; c++)
            for (int i = 0; i < oh; i++)
                for (int j = 0; j < ow; j++)
                    out->data[((size_t)c * oh + i) * ow + j] =
                        fminf(fmaxf(y.data[((size_t)c * y.h + i) * y.w + j], 0.0f), 1.0f);
    free(mean);
    return out->data ? 0 : percept_fail("out of memory");
}

static int copy_of(const PerceptTensor *in, PerceptTensor *out)
{
    size_t n = percept_tensor_numel(in);
    *out = (PerceptTensor){1, 3, in->h, in->w, malloc(sizeof(float) * n)};
    if (!out->data)
        return percept_fail("out of memory");
    memcpy(out->data, in->data, sizeof(float) * n);
    return 0;
}

/* The autoencoder's baseline: blurred, reduced to ⅛ by bicubic, enlarged back by bicubic. */
static int eighth_and_back(const PerceptTensor *in, PerceptTensor *out)
{
    PerceptTensor small;
    int side = in->w > in->h ? in->w : in->h;
    if (degrade_resize(in, (side + 4) / 8, 1, &small))
        return -1;
    size_t n = percept_tensor_numel(in);
    *out = (PerceptTensor){1, 3, in->h, in->w, malloc(sizeof(float) * n)};
    int rc = out->data ? degrade_bicubic(out->data, in->h, in->w, small.data, 3, small.h, small.w)
                       : percept_fail("out of memory");
    free(small.data);
    return rc;
}

#ifdef PERCEPT_HAVE_GEGL
/* A GEGL operation on a planar image; the output is `scale` times the input. */
static int run_gegl(const PerceptTensor *in, int scale, PerceptTensor *out, const char *op,
                    const char *first, ...)
{
    size_t n = (size_t)in->h * in->w, on = n * scale * scale;
    GeglRectangle r = {0, 0, in->w, in->h}, o = {0, 0, in->w * scale, in->h * scale};
    float *px = malloc(sizeof(float) * 3 * on);
    *out = (PerceptTensor){1, 3, o.height, o.width, malloc(sizeof(float) * 3 * on)};
    if (!px || !out->data) {
        free(px);
        return percept_fail("out of memory");
    }
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            px[3 * i + c] = in->data[c * n + i];
    GeglBuffer *b = gegl_buffer_new(&r, babl_format("R'G'B' float"));
    gegl_buffer_set(b, &r, 0, babl_format("R'G'B' float"), px, GEGL_AUTO_ROWSTRIDE);
    GeglNode *graph = gegl_node_new();
    GeglNode *src = gegl_node_new_child(graph, "operation", "gegl:buffer-source", "buffer", b,
                                        NULL);
    GeglNode *node = gegl_node_new_child(graph, "operation", op, NULL);
    va_list ap;
    va_start(ap, first);
    gegl_node_set_valist(node, first, ap);
    va_end(ap);
    gegl_node_link(src, node);
    gegl_node_blit(node, 1.0, &o, babl_format("R'G'B' float"), px, GEGL_AUTO_ROWSTRIDE,
                   GEGL_BLIT_DEFAULT);
    g_object_unref(graph);
    g_object_unref(b);
    for (size_t i = 0; i < on; i++)
        for (int c = 0; c < 3; c++)
            out->data[c * on + i] = px[3 * i + c];
    free(px);
    return 0;
}
#endif

/* GEGL's methods, m ≥ 2: its samplers (upscale) or denoisers (reconstruct). */
static int run_gegl_method(EvalTask task, int m, const PerceptTensor *in, int scale,
                           double sigma, PerceptTensor *out)
{
#ifdef PERCEPT_HAVE_GEGL
    static const GeglSamplerType samplers[] = {GEGL_SAMPLER_CUBIC, GEGL_SAMPLER_NOHALO,
                                               GEGL_SAMPLER_LOHALO};
    if (task == EVAL_UPSCALE)
        return run_gegl(in, scale, out, "gegl:scale-ratio", "x", (double)scale, "y",
                        (double)scale, "abyss-policy", GEGL_ABYSS_CLAMP, "sampler",
                        samplers[m - 2], NULL);
    switch (m) {
    case 2:
        return run_gegl(in, 1, out, "gegl:denoise-dct", "sigma", sigma > 1 ? sigma : 1.0, NULL);
    case 3:
        return run_gegl(in, 1, out, "gegl:noise-reduction", NULL, NULL);
    default:
        return run_gegl(in, 1, out, "gegl:bilateral-filter", NULL, NULL);
    }
#else
    return percept_fail("%s: this percept was built without GEGL", eval_method_name(task, m));
#endif
}

/* Method m on the degraded input. */
static int run_method(EvalTask task, int m, PerceptNet *net, const PerceptTensor *in, int scale,
                      double sigma, PerceptTensor *out)
{
    if (m == 0 || m == EVAL_ENSEMBLE)
        return run_net(net, m == EVAL_ENSEMBLE, in, out);
    if (task == EVAL_AUTOENCODER)
        return eighth_and_back(in, out);
    if (task == EVAL_UPSCALE && m == 1) {
        size_t on = percept_tensor_numel(in) * scale * scale;
        *out = (PerceptTensor){1, 3, in->h * scale, in->w * scale, malloc(sizeof(float) * on)};
        if (!out->data)
            return percept_fail("out of memory");
        return degrade_bicubic(out->data, out->h, out->w, in->data, 3, in->h, in->w);
    }
    if (m == 1)
        return copy_of(in, out);
    return run_gegl_method(task, m, in, scale, sigma, out);
}

int eval_mean(EvalTask task, PerceptNet *net, PerceptTensor *images, int n, int scale,
              const char *degrade, int gegl, int ensemble, Scores *mean)
{
    int counted[EVAL_METHODS] = {0};
    memset(mean, 0, sizeof(Scores) * EVAL_METHODS);
    double lo = 0, hi = 0;
    if (!strncmp(degrade, "noise:", 6))
        noise_range(degrade, &lo, &hi);
    for (int i = 0; i < n; i++) {
        PerceptTensor clean;
        if (eval_crop(&images[i], scale, &clean))
            return -1;
        const int h = clean.h, w = clean.w, ih = h / scale, iw = w / scale;
        PerceptTensor in = {1, 3, ih, iw, malloc(sizeof(float) * 3 * (size_t)ih * iw)};
        if (!in.data) {
            free(clean.data);
            return percept_fail("out of memory");
        }
        int rc = eval_degrade(task, in.data, clean.data, h, w, scale, degrade, 1, (uint64_t)i);
        /* denoise-dct is told the noise level; for JPEG, the artefacts' own RMS (an oracle
         * the baseline is given, a generous comparison) */
        double sigma = (lo + hi) / 2;
        if (!strncmp(degrade, "jpeg:", 5))
            sigma = 255.0 * pow(10.0, -percept_psnr(&in, &clean) / 20); /* the RMS error */
        for (int m = 0; m < EVAL_METHODS && !rc; m++) {
            if ((m >= 2 && m < EVAL_ENSEMBLE && !gegl) || (m == EVAL_ENSEMBLE && !ensemble) ||
                !*names[task][m])
                continue;
            PerceptTensor out = {0};
            Scores s;
            rc = run_method(task, m, net, &in, scale, sigma, &out) ||
                 eval_score(&out, &clean, task == EVAL_UPSCALE ? scale : 0, &s);
            free(out.data);
            if (!rc) {
                mean[m].psnr_y += s.psnr_y;
                mean[m].ssim_y += s.ssim_y;
                mean[m].swd += s.swd;
                counted[m]++;
            }
        }
        free(clean.data);
        free(in.data);
        if (rc)
            return -1;
    }
    for (int m = 0; m < EVAL_METHODS; m++) {
        double k = counted[m] ? 1.0 / counted[m] : NAN;
        mean[m].psnr_y *= k;
        mean[m].ssim_y *= k;
        mean[m].swd *= k;
    }
    return 0;
}

void eval_print_table(FILE *f, EvalTask task, const Scores *mean, int n, int scale)
{
    if (task == EVAL_UPSCALE)
        fprintf(f, "| method (×%d, %d images) | PSNR-Y dB | SSIM-Y | SWD ×10³ |\n", scale, n);
    else
        fprintf(f, "| method (%d images) | PSNR-Y dB | SSIM-Y | SWD ×10³ |\n", n);
    fprintf(f, "|---|---:|---:|---:|\n");
    static const int order[EVAL_METHODS] = {0, EVAL_ENSEMBLE, 1, 2, 3, 4}; /* ours first */
    for (int k = 0; k < EVAL_METHODS; k++) {
        int m = order[k];
        if (isfinite(mean[m].psnr_y))
            fprintf(f, "| %s | %.2f | %.4f | %.2f |\n", names[task][m], mean[m].psnr_y,
                    mean[m].ssim_y, mean[m].swd);
    }
}
