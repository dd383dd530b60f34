/* Super-resolution evaluation against classic samplers (see evaluate.h). */
#include <gegl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "degrade.h"
#include "evaluate.h"

const char *const sr_method_names[SR_METHODS] = {"percept", "bicubic", "gegl-cubic",
                                                 "gegl-nohalo", "gegl-lohalo"};

int sr_degrade(float *lr, const float *hr, int h, int w, int scale, const char *degrade)
{
    const float *src = hr;
    float *blurred = NULL;
    if (!strncmp(degrade, "blur:", 5)) {
        float sigma = (float)g_ascii_strtod(degrade + 5, NULL);
        if (sigma > 0) {
            blurred = malloc(sizeof(float) * 3 * (size_t)h * w);
            if (!blurred || degrade_blur(blurred, hr, 3, h, w, sigma)) {
                free(blurred);
                return percept_fail("out of memory");
            }
            src = blurred;
        }
    }
    int rc = degrade_bicubic(lr, h / scale, w / scale, src, 3, h, w);
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

int sr_score(const PerceptTensor *sr, const PerceptTensor *hr, int scale, SrScores *s)
{
    s->psnr_y = percept_psnr_y(sr, hr, scale);
    int h, w;
    float *ya = luma(sr, scale, &h, &w), *yb = luma(hr, scale, &h, &w);
    PerceptTensor ta = {1, 1, h, w, ya}, tb = {1, 1, h, w, yb};
    PerceptSsimConfig cfg = PERCEPT_SSIM_WANG;
    int rc = ya && yb ? percept_ssim(&ta, &tb, &cfg, &s->ssim_y, NULL) : -1;
    free(ya);
    free(yb);
    double levels[8];
    int n_levels;
    if (percept_swd(sr, hr, levels, 8, &n_levels, &s->swd))
        s->swd = NAN;
    percept_error_clear();
    return rc;
}

static const GeglSamplerType gegl_samplers[] = {GEGL_SAMPLER_CUBIC, GEGL_SAMPLER_NOHALO,
                                                GEGL_SAMPLER_LOHALO};

static int upscale_gegl(GeglSamplerType sampler, const PerceptTensor *lr, int scale,
                        PerceptTensor *out)
{
    size_t n = (size_t)lr->h * lr->w, on = n * scale * scale;
    GeglRectangle r = {0, 0, lr->w, lr->h}, o = {0, 0, lr->w * scale, lr->h * scale};
    float *px = malloc(sizeof(float) * 3 * on);
    if (!px)
        return percept_fail("out of memory");
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            px[3 * i + c] = lr->data[c * n + i];
    GeglBuffer *in = gegl_buffer_new(&r, babl_format("R'G'B' float"));
    gegl_buffer_set(in, &r, 0, babl_format("R'G'B' float"), px, GEGL_AUTO_ROWSTRIDE);
    GeglNode *graph = gegl_node_new();
    GeglNode *src = gegl_node_new_child(graph, "operation", "gegl:buffer-source", "buffer", in,
                                        NULL);
    GeglNode *scaler = gegl_node_new_child(graph, "operation", "gegl:scale-ratio", "x",
                                           (double)scale, "y", (double)scale, "abyss-policy",
                                           GEGL_ABYSS_CLAMP, "sampler", sampler, NULL);
    gegl_node_link(src, scaler);
    gegl_node_blit(scaler, 1.0, &o, babl_format("R'G'B' float"), px, GEGL_AUTO_ROWSTRIDE,
                   GEGL_BLIT_DEFAULT);
    g_object_unref(graph);
    g_object_unref(in);
    *out = (PerceptTensor){1, 3, o.height, o.width, malloc(sizeof(float) * 3 * on)};
    if (!out->data) {
        free(px);
        return percept_fail("out of memory");
    }
    for (size_t i = 0; i < on; i++)
        for (int c = 0; c < 3; c++)
            out->data[c * on + i] = px[3 * i + c];
    free(px);
    return 0;
}

int sr_upscale(int m, PerceptNet *net, const PerceptTensor *lr, int scale, PerceptTensor *out)
{
    size_t on = (size_t)lr->h * lr->w * scale * scale * 3;
    if (m >= 2)
        return upscale_gegl(gegl_samplers[m - 2], lr, scale, out);
    *out = (PerceptTensor){1, 3, lr->h * scale, lr->w * scale, malloc(sizeof(float) * on)};
    if (!out->data)
        return percept_fail("out of memory");
    if (m == 1)
        return degrade_bicubic(out->data, out->h, out->w, lr->data, 3, lr->h, lr->w);
    PerceptTensor y;
    if (percept_net_forward(net, lr, &y))
        return -1;
    if (y.h != out->h || y.w != out->w || y.c != 3)
        return percept_fail("the network gives %d×%d×%d for a %d×%d input", y.c, y.h, y.w,
                            lr->h, lr->w);
    for (size_t i = 0; i < on; i++) /* as the operations clamp */
        out->data[i] = fminf(fmaxf(y.data[i], 0.0f), 1.0f);
    return 0;
}

int sr_evaluate(PerceptNet *net, PerceptTensor *images, int n, int scale, const char *degrade,
                int gegl, SrScores *mean)
{
    int counted[SR_METHODS] = {0};
    memset(mean, 0, sizeof(SrScores) * SR_METHODS);
    for (int i = 0; i < n; i++) {
        int h = images[i].h / scale * scale, w = images[i].w / scale * scale;
        size_t plane = (size_t)images[i].h * images[i].w;
        PerceptTensor hr = {1, 3, h, w, malloc(sizeof(float) * 3 * (size_t)h * w)};
        PerceptTensor lr = {1, 3, h / scale, w / scale,
                            malloc(sizeof(float) * 3 * (size_t)(h / scale) * (w / scale))};
        if (!hr.data || !lr.data) {
            free(hr.data);
            free(lr.data);
            return percept_fail("out of memory");
        }
        for (int c = 0; c < 3; c++)
            for (int y = 0; y < h; y++)
                memcpy(hr.data + ((size_t)c * h + y) * w,
                       images[i].data + c * plane + (size_t)y * images[i].w, sizeof(float) * w);
        int rc = sr_degrade(lr.data, hr.data, h, w, scale, degrade);
        for (int m = 0; m < SR_METHODS && !rc; m++) {
            if (m >= 2 && !gegl)
                continue;
            PerceptTensor up;
            SrScores s;
            rc = sr_upscale(m, net, &lr, scale, &up) || sr_score(&up, &hr, scale, &s);
            free(up.data);
            if (!rc) {
                mean[m].psnr_y += s.psnr_y;
                mean[m].ssim_y += s.ssim_y;
                mean[m].swd += s.swd;
                counted[m]++;
            }
        }
        free(hr.data);
        free(lr.data);
        if (rc)
            return -1;
    }
    for (int m = 0; m < SR_METHODS; m++) {
        double k = counted[m] ? 1.0 / counted[m] : NAN;
        mean[m].psnr_y *= k;
        mean[m].ssim_y *= k;
        mean[m].swd *= k;
    }
    return 0;
}

void sr_print_table(FILE *f, const SrScores *mean, int n, int scale)
{
    fprintf(f, "| method (×%d, %d images) | PSNR-Y dB | SSIM-Y | SWD ×10³ |\n", scale, n);
    fprintf(f, "|---|---:|---:|---:|\n");
    for (int m = 0; m < SR_METHODS; m++)
        if (isfinite(mean[m].psnr_y))
            fprintf(f, "| %s | %.2f | %.4f | %.2f |\n", sr_method_names[m], mean[m].psnr_y,
                    mean[m].ssim_y, mean[m].swd);
}
