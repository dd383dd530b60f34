/* Blur, bicubic resampling and noise (see degrade.h). */
#include <math.h>
#include <stdlib.h>

#include "degrade.h"
#include "percept/percept.h"

static int reflect(int i, int n)
{
    if (n == 1)
        return 0;
    while (i < 0 || i >= n)
        i = i < 0 ? -i : 2 * n - 2 - i;
    return i;
}

/* One line (a row, or a column copied out) of the separable Gaussian: d[x] = Σ_i k[i]·s[x+i],
 * the taps summed in order i = -r..r. The interior runs tap by tap over whole spans, which the
 * compiler vectorises (the same additions in the same order: the same bits); only the
 * border positions pay for the reflection. */
static void blur_line(float *d, const float *s, int n, const float *k, int r)
{
    int lo = r < n ? r : n, hi = n - r > lo ? n - r : lo;
    for (int x = 0; x < n; x++)
        if (x < lo || x >= hi) {
            float a = 0;
            for (int i = -r; i <= r; i++)
                a += k[i + r] * s[reflect(x + i, n)];
            d[x] = a;
        }
    for (int x = lo; x < hi; x++)
        d[x] = 0;
    for (int i = -r; i <= r; i++)
        for (int x = lo; x < hi; x++)
            d[x] += k[i + r] * s[x + i];
}

int degrade_blur(float *dst, const float *src, int c, int h, int w, float sigma)
{
    int r = (int)ceilf(3 * sigma);
    float *k = malloc(sizeof(float) * (2 * r + 1)), *tmp = malloc(sizeof(float) * h * w);
    float *col = malloc(sizeof(float) * 2 * h);
    if (!k || !tmp || !col) {
        free(k);
        free(tmp);
        free(col);
        return percept_fail("out of memory");
    }
    double sum = 0;
    for (int i = -r; i <= r; i++)
        sum += k[i + r] = expf(-0.5f * i * i / (sigma * sigma));
    for (int i = 0; i <= 2 * r; i++)
        k[i] = (float)(k[i] / sum);
    for (int p = 0; p < c; p++) {
        const float *s = src + (size_t)p * h * w;
        float *d = dst + (size_t)p * h * w;
        for (int y = 0; y < h; y++)
            blur_line(tmp + (size_t)y * w, s + (size_t)y * w, w, k, r);
        /* columns through a contiguous copy: strided access would miss the cache each tap */
        for (int x = 0; x < w; x++) {
            for (int y = 0; y < h; y++)
                col[y] = tmp[(size_t)y * w + x];
            blur_line(col + h, col, h, k, r);
            for (int y = 0; y < h; y++)
                d[(size_t)y * w + x] = col[h + y];
        }
    }
    free(k);
    free(tmp);
    free(col);
    return 0;
}

static float cubic(float t)
{
    const float a = -0.5f;
    t = fabsf(t);
    if (t <= 1)
        return ((a + 2) * t - (a + 3)) * t * t + 1;
    if (t < 2)
        return ((a * t - 5 * a) * t + 8 * a) * t - 4 * a;
    return 0;
}

/* The 4 taps and weights of each output position along one axis. */
static void taps(int n_out, int n_in, int *idx, float *wt)
{
    double step = (double)n_in / n_out;
    for (int o = 0; o < n_out; o++) {
        double x = (o + 0.5) * step - 0.5;
        int x0 = (int)floor(x);
        float sum = 0;
        for (int j = 0; j < 4; j++) {
            int xi = x0 - 1 + j;
            wt[4 * o + j] = cubic((float)(x - xi));
            sum += wt[4 * o + j];
            idx[4 * o + j] = xi < 0 ? 0 : xi >= n_in ? n_in - 1 : xi;
        }
        for (int j = 0; j < 4; j++)
            wt[4 * o + j] /= sum;
    }
}

int degrade_bicubic(float *dst, int oh, int ow, const float *src, int c, int h, int w)
{
    int *ix = malloc(sizeof(int) * 4 * ow), *iy = malloc(sizeof(int) * 4 * oh);
    float *wx = malloc(sizeof(float) * 4 * ow), *wy = malloc(sizeof(float) * 4 * oh);
    float *tmp = malloc(sizeof(float) * (size_t)h * ow);
    int rc = 0;
    if (!ix || !iy || !wx || !wy || !tmp) {
        rc = percept_fail("out of memory");
        goto out;
    }
    taps(ow, w, ix, wx);
    taps(oh, h, iy, wy);
    for (int p = 0; p < c; p++) {
        const float *s = src + (size_t)p * h * w;
        for (int y = 0; y < h; y++)
            for (int x = 0; x < ow; x++) {
                const float *row = s + (size_t)y * w;
                tmp[(size_t)y * ow + x] = wx[4 * x] * row[ix[4 * x]] +
                                          wx[4 * x + 1] * row[ix[4 * x + 1]] +
                                          wx[4 * x + 2] * row[ix[4 * x + 2]] +
                                          wx[4 * x + 3] * row[ix[4 * x + 3]];
            }
        float *d = dst + (size_t)p * oh * ow;
        for (int y = 0; y < oh; y++)
            for (int x = 0; x < ow; x++) {
                float a = 0;
                for (int j = 0; j < 4; j++)
                    a += wy[4 * y + j] * tmp[(size_t)iy[4 * y + j] * ow + x];
                d[(size_t)y * ow + x] = a;
            }
    }
out:
    free(ix);
    free(iy);
    free(wx);
    free(wy);
    free(tmp);
    return rc;
}

void degrade_noise(float *x, size_t n, float sigma, uint64_t seed, uint64_t counter)
{
    for (size_t i = 0; i < n; i++)
        x[i] += sigma * percept_rng_normal(seed, counter + i);
}

int degrade_resize(const PerceptTensor *img, int side, int multiple, PerceptTensor *out)
{
    double f = (double)side / (img->w > img->h ? img->w : img->h);
    int w = (int)(img->w * f + 0.5) / multiple * multiple;
    int h = (int)(img->h * f + 0.5) / multiple * multiple;
    w = w < multiple ? multiple : w;
    h = h < multiple ? multiple : h;
    *out = (PerceptTensor){1, 3, h, w, malloc(sizeof(float) * 3 * (size_t)h * w)};
    const float *src = img->data;
    float *blurred = NULL;
    int rc = out->data ? 0 : percept_fail("out of memory");
    if (!rc && f < 0.5) {
        blurred = malloc(sizeof(float) * percept_tensor_numel(img));
        rc = blurred ? degrade_blur(blurred, img->data, 3, img->h, img->w, (float)(0.5 / f))
                     : percept_fail("out of memory");
        src = blurred;
    }
    if (!rc)
        rc = degrade_bicubic(out->data, h, w, src, 3, img->h, img->w);
    free(blurred);
    if (rc) {
        free(out->data);
        out->data = NULL;
    }
    return rc;
}
