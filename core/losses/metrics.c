/* Image quality metrics for evaluation (no gradients): PSNR, PSNR on Y as SR papers report
 * it, DeePSiM's normalised Euclidean error, and the sliced Wasserstein distance over
 * Laplacian-pyramid patches of Karras et al. (as Amir & Weiss use it). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "laplacian.h"
#include "percept/percept.h"

static int same_shape(const PerceptTensor *a, const PerceptTensor *b, const char *what)
{
    if (a->n != b->n || a->c != b->c || a->h != b->h || a->w != b->w)
        return percept_fail("%s: images of %d×%d and %d×%d (×%d and ×%d channels) differ in size",
                            what, a->w, a->h, b->w, b->h, a->c, b->c);
    return 0;
}

double percept_psnr(const PerceptTensor *a, const PerceptTensor *b)
{
    if (same_shape(a, b, "PSNR"))
        return NAN;
    double mse = percept_loss_mse(a->data, b->data, percept_tensor_numel(a), NULL);
    return mse > 0 ? 10.0 * log10(1.0 / mse) : INFINITY;
}

double percept_psnr_y(const PerceptTensor *a, const PerceptTensor *b, int border)
{
    if (same_shape(a, b, "PSNR(Y)"))
        return NAN;
    if (a->c != 3) {
        percept_fail("PSNR(Y) needs RGB images, got %d channels", a->c);
        return NAN;
    }
    if (border < 0 || 2 * border >= a->h || 2 * border >= a->w) {
        percept_fail("PSNR(Y): a border of %d leaves nothing of a %d×%d image", border, a->w, a->h);
        return NAN;
    }
    /* ITU-R BT.601 luma on the 16..235 scale (MATLAB's rgb2ycbcr), peak 255, as the SR
     * literature reports it */
    const size_t hw = (size_t)a->h * a->w;
    double se = 0;
    size_t count = 0;
    for (int n = 0; n < a->n; n++) {
        const float *pa = a->data + (size_t)n * 3 * hw, *pb = b->data + (size_t)n * 3 * hw;
        for (int y = border; y < a->h - border; y++)
            for (int x = border; x < a->w - border; x++) {
                size_t i = (size_t)y * a->w + x;
                double ya = 65.481 * pa[i] + 128.553 * pa[hw + i] + 24.966 * pa[2 * hw + i];
                double yb = 65.481 * pb[i] + 128.553 * pb[hw + i] + 24.966 * pb[2 * hw + i];
                se += (ya - yb) * (ya - yb);
                count++;
            }
    }
    return se > 0 ? 10.0 * log10(255.0 * 255.0 / (se / count)) : INFINITY;
}

double percept_normalized_euclidean(const PerceptTensor *a, const PerceptTensor *b)
{
    if (same_shape(a, b, "normalised Euclidean error"))
        return NAN;
    if (a->n < 2) {
        percept_fail("normalised Euclidean error needs a set of at least 2 images (its scale is "
                     "the mean distance between different images of the set)");
        return NAN;
    }
    const size_t m = (size_t)a->c * a->h * a->w;
    double err = 0, norm = 0;
    for (int i = 0; i < a->n; i++) {
        double s = 0;
        for (size_t k = 0; k < m; k++)
            s += pow(a->data[i * m + k] - b->data[i * m + k], 2);
        err += sqrt(s);
        for (int j = 0; j < a->n; j++) {
            if (j == i)
                continue;
            double t = 0;
            for (size_t k = 0; k < m; k++)
                t += pow(b->data[i * m + k] - b->data[j * m + k], 2);
            norm += sqrt(t);
        }
    }
    return (err / a->n) / (norm / ((double)a->n * (a->n - 1)));
}

/* ---- sliced Wasserstein distance ------------------------------------------------------ */

#define NHOOD 7
#define NHOODS_PER_IMAGE 128
#define DIRS 512 /* 4 repeats of 128 directions, as Karras et al. */

/* descriptors (count × c·7·7) of random 7×7 neighbourhoods of a level, normalised per
 * channel over all descriptors */
static void descriptors(float *desc, float *const *planes, int n, int c, int h, int w,
                        uint64_t seed)
{
    const int d = c * NHOOD * NHOOD, count = n * NHOODS_PER_IMAGE;
    for (int i = 0; i < count; i++) {
        int img = i / NHOODS_PER_IMAGE;
        int y0 = (int)(percept_rng_uniform(seed, 2 * (uint64_t)i) * (h - NHOOD + 1));
        int x0 = (int)(percept_rng_uniform(seed, 2 * (uint64_t)i + 1) * (w - NHOOD + 1));
        for (int ch = 0; ch < c; ch++)
            for (int y = 0; y < NHOOD; y++)
                for (int x = 0; x < NHOOD; x++)
                    desc[(size_t)i * d + (ch * NHOOD + y) * NHOOD + x] =
                        planes[img * c + ch][(size_t)(y0 + y) * w + x0 + x];
    }
    for (int ch = 0; ch < c; ch++) {
        double s = 0, ss = 0;
        const size_t per = (size_t)NHOOD * NHOOD;
        for (int i = 0; i < count; i++)
            for (size_t k = 0; k < per; k++) {
                double v = desc[(size_t)i * d + ch * per + k];
                s += v;
                ss += v * v;
            }
        double total = (double)count * per, mean = s / total;
        double sd = sqrt(fmax(ss / total - mean * mean, 0)) + 1e-8;
        for (int i = 0; i < count; i++)
            for (size_t k = 0; k < per; k++) {
                float *v = &desc[(size_t)i * d + ch * per + k];
                *v = (float)((*v - mean) / sd);
            }
    }
}

static int cmp_float(const void *a, const void *b)
{
    float x = *(const float *)a, y = *(const float *)b;
    return (x > y) - (x < y);
}

/* mean over random unit directions of the 1-D Wasserstein-1 distance of the projections */
static double sliced_wasserstein(const float *a, const float *b, int count, int d, uint64_t seed,
                                 float *pa, float *pb, float *dir)
{
    double total = 0;
    for (int k = 0; k < DIRS; k++) {
        double norm = 0;
        for (int j = 0; j < d; j++) {
            dir[j] = percept_rng_normal(seed, (uint64_t)k * d + j);
            norm += (double)dir[j] * dir[j];
        }
        for (int i = 0; i < count; i++) {
            double sa = 0, sb = 0;
            for (int j = 0; j < d; j++) {
                sa += (double)a[(size_t)i * d + j] * dir[j];
                sb += (double)b[(size_t)i * d + j] * dir[j];
            }
            pa[i] = (float)(sa / sqrt(norm));
            pb[i] = (float)(sb / sqrt(norm));
        }
        qsort(pa, count, sizeof *pa, cmp_float);
        qsort(pb, count, sizeof *pb, cmp_float);
        double s = 0;
        for (int i = 0; i < count; i++)
            s += fabs(pa[i] - pb[i]);
        total += s / count;
    }
    return total / DIRS;
}

int percept_swd(const PerceptTensor *a, const PerceptTensor *b, double *levels, int max_levels,
                int *n_levels, double *mean)
{
    if (same_shape(a, b, "SWD"))
        return -1;
    if (a->h < 16 || a->w < 16)
        return percept_fail("SWD: a %d×%d image is smaller than the 16×16 coarsest level", a->w,
                            a->h);
    const int n = a->n, c = a->c, planes = n * c;
    const size_t hw = (size_t)a->h * a->w;
    if (planes > 512)
        return percept_fail("SWD: at most 512 image planes at once (got %d)", planes);
    const int count = n * NHOODS_PER_IMAGE, d = c * NHOOD * NHOOD;
    float *work = malloc(sizeof(float) * (4 * planes * hw + 4 * hw + 2 * (size_t)count * d +
                                          2 * (size_t)count + d));
    if (!work)
        return percept_fail("SWD: out of memory");
    float *cur[2] = {work, work + planes * hw}, *next[2] = {cur[1] + planes * hw,
                                                            cur[1] + 2 * planes * hw};
    float *tmp = next[1] + planes * hw, *tmp2 = tmp + 2 * hw, *da = tmp2 + 2 * hw;
    float *db = da + (size_t)count * d, *pa = db + (size_t)count * d, *pb = pa + count,
          *dir = pb + count;
    memcpy(cur[0], a->data, sizeof(float) * planes * hw);
    memcpy(cur[1], b->data, sizeof(float) * planes * hw);
    int h = a->h, w = a->w, level = 0;
    double sum = 0;
    for (;;) {
        int last = (h + 1) / 2 < 16 || (w + 1) / 2 < 16 || level + 1 == max_levels;
        float *pl[2][512];
        for (int s = 0; s < 2; s++)
            for (int p = 0; p < planes && p < 512; p++) {
                pl[s][p] = cur[s] + p * (size_t)h * w;
                if (!last)
                    laplacian_step(pl[s][p], next[s] + p * (size_t)((h + 1) / 2) * ((w + 1) / 2),
                                   h, w, tmp, tmp2);
            }
        descriptors(da, pl[0], n, c, h, w, 0x5d0 + level);
        descriptors(db, pl[1], n, c, h, w, 0x5d0 + level);
        double v = 1e3 * sliced_wasserstein(da, db, count, d, 0xd1 + level, pa, pb, dir);
        if (levels && level < max_levels)
            levels[level] = v;
        sum += v;
        level++;
        if (last)
            break;
        float *t0 = cur[0], *t1 = cur[1];
        cur[0] = next[0];
        cur[1] = next[1];
        next[0] = t0;
        next[1] = t1;
        h = (h + 1) / 2;
        w = (w + 1) / 2;
    }
    free(work);
    if (n_levels)
        *n_levels = level;
    if (mean)
        *mean = sum / level;
    return 0;
}
