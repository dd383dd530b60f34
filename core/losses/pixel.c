/* Pixel-space losses: mean squared and mean absolute error, total variation. */
#include <math.h>
#include <stdio.h>

#include "percept/percept.h"
#include "graph.h"

double percept_loss_mse(const float *x, const float *target, size_t n, float *grad)
{
    double sum = 0;
    const float scale = 2.0f / (float)n;
#pragma omp parallel for reduction(+ : sum) schedule(static)
    for (size_t i = 0; i < n; i++) {
        float d = x[i] - target[i];
        sum += (double)d * d;
        if (grad)
            grad[i] = scale * d;
    }
    return sum / (double)n;
}

double percept_loss_l1(const float *x, const float *target, size_t n, float *grad)
{
    double sum = 0;
    const float scale = 1.0f / (float)n;
#pragma omp parallel for reduction(+ : sum) schedule(static)
    for (size_t i = 0; i < n; i++) {
        float d = x[i] - target[i];
        sum += fabs((double)d);
        if (grad)
            grad[i] = d > 0 ? scale : d < 0 ? -scale : 0.0f;
    }
    return sum / (double)n;
}

double percept_loss_tv(const PerceptTensor *x, float *grad)
{
    const int h = x->h, w = x->w;
    const float scale = 1.0f / (float)x->n;
    double sum = 0;
#pragma omp parallel for reduction(+ : sum) schedule(static)
    for (int p = 0; p < x->n * x->c; p++) {
        const float *v = x->data + (size_t)p * h * w;
        float *g = grad ? grad + (size_t)p * h * w : NULL;
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) {
                float c = v[i * w + j], acc = 0;
                if (j + 1 < w) { /* pair (j, j+1) */
                    float d = v[i * w + j + 1] - c;
                    sum += (double)d * d;
                    acc -= 2 * d;
                }
                if (j > 0)
                    acc += 2 * (c - v[i * w + j - 1]);
                if (i + 1 < h) {
                    float d = v[(i + 1) * w + j] - c;
                    sum += (double)d * d;
                    acc -= 2 * d;
                }
                if (i > 0)
                    acc += 2 * (c - v[(i - 1) * w + j]);
                if (g)
                    g[i * w + j] = acc * scale;
            }
    }
    return sum * scale;
}

int percept_loss_finite(const float *x, size_t n, const char *what)
{
    /* counted where x is (a GPU network's output or gradients stay there), then, only if
     * something is wrong, found on the host to name it */
    size_t bad = 0;
    if (MATH_FOR(x)->count_nonfinite(x, n, &bad))
        return percept_fail_prefix("checking the %s: ", what);
    for (size_t i = 0; bad && i < n; i++)
        if (!isfinite(x[i]))
            return percept_fail("%s contains %s at index %zu", what, isnan(x[i]) ? "NaN" : "Inf",
                                i);
    return 0;
}
