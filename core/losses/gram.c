/* Gram matrices and Johnson's style reconstruction loss (Eq. 3–4). */
#include <cblas.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "percept/percept.h"

void percept_gram(float *g, const PerceptTensor *f)
{
    // f (n, c, hw) -> g (n, c, c) = ψ ψᵀ / (c h w)
    const int c = f->c, hw = f->h * f->w;
    const float norm = 1.0f / ((float)c * hw);
    for (int b = 0; b < f->n; b++)
        cblas_ssyrk(CblasRowMajor, CblasUpper, CblasNoTrans, c, hw, norm,
                    f->data + (size_t)b * c * hw, hw, 0.0f, g + (size_t)b * c * c, c);
    /* ssyrk fills the upper triangle; mirror it */
    for (int b = 0; b < f->n; b++) {
        float *m = g + (size_t)b * c * c;
        for (int i = 0; i < c; i++)
            for (int j = 0; j < i; j++)
                m[(size_t)i * c + j] = m[(size_t)j * c + i];
    }
}

double percept_loss_style(const PerceptTensor *f, const float *target_gram, int per_image,
                          float *grad)
{
    // L = (1/n) Σ_b ||G_b − T||²_F;  dL/dψ_b = (4 / (n c h w)) (G_b − T) ψ_b (G symmetric)
    const int c = f->c, hw = f->h * f->w;
    float *g = malloc(sizeof(float) * (size_t)f->n * c * c);
    if (!g) {
        percept_fail("style loss: out of memory for %d Gram matrices of %d×%d", f->n, c, c);
        return NAN;
    }
    percept_gram(g, f);
    double sum = 0;
    for (int b = 0; b < f->n; b++) {
        float *d = g + (size_t)b * c * c;
        const float *t = target_gram + (per_image ? (size_t)b * c * c : 0);
        for (size_t i = 0; i < (size_t)c * c; i++) {
            d[i] -= t[i];
            sum += (double)d[i] * d[i];
        }
        if (grad)
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, c, hw, c,
                        4.0f / ((float)f->n * c * hw), d, c, f->data + (size_t)b * c * hw, hw,
                        0.0f, grad + (size_t)b * c * hw, hw);
    }
    free(g);
    return sum / f->n;
}
