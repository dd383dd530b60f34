/* Probabilistic losses: the VAE's KL term and DeePSiM's adversarial losses on logits. */
#include <math.h>

#include "percept/percept.h"

double percept_loss_kl(const float *mu, const float *logvar, size_t n, int batch, float *dmu,
                       float *dlogvar)
{
    // KL(N(mu, σ²) || N(0, 1)) = −½ Σ (1 + log σ² − mu² − σ²), averaged over the batch
    double sum = 0;
    const float scale = 1.0f / (float)batch;
    for (size_t i = 0; i < n * (size_t)batch; i++) {
        double e = exp((double)logvar[i]);
        sum += -0.5 * (1.0 + logvar[i] - (double)mu[i] * mu[i] - e);
        if (dmu)
            dmu[i] = scale * mu[i];
        if (dlogvar)
            dlogvar[i] = scale * 0.5f * (float)(e - 1.0);
    }
    return sum * scale;
}

/* softplus(x) = log(1 + e^x) without overflow; its derivative is the sigmoid */
static double softplus(double x)
{
    return x > 0 ? x + log1p(exp(-x)) : log1p(exp(x));
}

static double sigmoid(double x)
{
    return x >= 0 ? 1.0 / (1.0 + exp(-x)) : exp(x) / (1.0 + exp(x));
}

double percept_loss_adv_discriminator(const float *real, const float *fake, int n, float *dreal,
                                      float *dfake)
{
    // −log σ(r) = softplus(−r);  −log(1 − σ(f)) = softplus(f)
    double sum = 0;
    for (int i = 0; i < n; i++) {
        sum += softplus(-real[i]) + softplus(fake[i]);
        if (dreal)
            dreal[i] = (float)(-sigmoid(-real[i]) / n);
        if (dfake)
            dfake[i] = (float)(sigmoid(fake[i]) / n);
    }
    return sum / n;
}

double percept_loss_adv_generator(const float *fake, int n, float *dfake)
{
    double sum = 0;
    for (int i = 0; i < n; i++) {
        sum += softplus(-fake[i]);
        if (dfake)
            dfake[i] = (float)(-sigmoid(-fake[i]) / n);
    }
    return sum / n;
}
