/* Laplacian pyramid levels and their adjoint (see laplacian.h). */
#include <string.h>

#include "laplacian.h"

static const float binomial[5] = {1 / 16.f, 4 / 16.f, 6 / 16.f, 4 / 16.f, 1 / 16.f};

static int mirror(int i, int n)
{
    if (n == 1)
        return 0;
    while (i < 0 || i >= n)
        i = i < 0 ? -i : 2 * (n - 1) - i;
    return i;
}

/* 5×5 binomial blur (mirror borders) of one plane, scaled by gain; out may be in */
static void blur(float *out, const float *in, int h, int w, float gain, float *tmp)
{
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float acc = 0;
            for (int k = 0; k < 5; k++)
                acc += binomial[k] * in[(size_t)y * w + mirror(x + k - 2, w)];
            tmp[(size_t)y * w + x] = acc;
        }
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++) {
            float acc = 0;
            for (int k = 0; k < 5; k++)
                acc += binomial[k] * tmp[(size_t)mirror(y + k - 2, h) * w + x];
            out[(size_t)y * w + x] = gain * acc;
        }
}

/* blur's transpose: the two passes in reverse order, each scattering where blur gathers
 * (mirrored borders make blur unsymmetric at the edges); out may be in */
static void blur_adjoint(float *out, const float *in, int h, int w, float gain, float *tmp)
{
    const size_t hw = (size_t)h * w;
    memset(tmp, 0, sizeof(float) * hw);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < 5; k++)
                tmp[(size_t)mirror(y + k - 2, h) * w + x] += binomial[k] * in[(size_t)y * w + x];
    memset(out, 0, sizeof(float) * hw);
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int k = 0; k < 5; k++)
                out[(size_t)y * w + mirror(x + k - 2, w)] += gain * binomial[k] * tmp[(size_t)y * w + x];
}

/* every other sample of an h×w plane: down is ((h+1)/2)×((w+1)/2) */
static void subsample(float *down, const float *plane, int h, int w)
{
    const int hd = (h + 1) / 2, wd = (w + 1) / 2;
    for (int y = 0; y < hd; y++)
        for (int x = 0; x < wd; x++)
            down[(size_t)y * wd + x] = plane[(size_t)2 * y * w + 2 * x];
}

/* subsample's transpose: the samples back in place, zeros between */
static void zero_insert(float *plane, const float *down, int h, int w)
{
    const int hd = (h + 1) / 2, wd = (w + 1) / 2;
    memset(plane, 0, sizeof(float) * h * w);
    for (int y = 0; y < hd; y++)
        for (int x = 0; x < wd; x++)
            plane[(size_t)2 * y * w + 2 * x] = down[(size_t)y * wd + x];
}

void laplacian_step(float *plane, float *down, int h, int w, float *tmp, float *tmp2)
{
    blur(tmp2, plane, h, w, 1, tmp);
    subsample(down, tmp2, h, w);
    /* up: zeros between samples, blurred with gain 4 */
    zero_insert(tmp2, down, h, w);
    blur(tmp2, tmp2, h, w, 4, tmp);
    for (size_t i = 0; i < (size_t)h * w; i++)
        plane[i] -= tmp2[i];
}

/* band = plane − U(D), D = S(B plane), U = 4·B∘Z (Z: zeros between samples, S: every other
 * sample, Sᵀ = Z): d/d D = gdown − S(4 Bᵀ g), d/d plane = g + Bᵀ Z (d/d D) */
void laplacian_step_adjoint(float *g, float *gdown, int h, int w, float *tmp, float *tmp2)
{
    const size_t nd = (size_t)((h + 1) / 2) * ((w + 1) / 2);
    blur_adjoint(tmp2, g, h, w, 4, tmp);
    subsample(tmp, tmp2, h, w);
    for (size_t i = 0; i < nd; i++)
        gdown[i] -= tmp[i];
    zero_insert(tmp2, gdown, h, w);
    blur_adjoint(tmp2, tmp2, h, w, 1, tmp);
    for (size_t i = 0; i < (size_t)h * w; i++)
        g[i] += tmp2[i];
}
