/* A weighted sum of configured losses (loss specs, docs/losses.md) and its gradient, as the
 * trainer and percept optimize use it: style losses compare with a style image set once,
 * tv with nothing, every other loss with the reference image of each call. */
#ifndef PERCEPT_TRAINER_OBJECTIVE_H
#define PERCEPT_TRAINER_OBJECTIVE_H

#include "percept/percept.h"

#define OBJECTIVE_MAX_TERMS 8
/* The stylize default (train and optimize): content from a seeded random VGG-16 as Johnson et
 * al. take it from a trained one, style as patch distributions (style-mmd), because Gram
 * matrices of a random VGG-16 pull the colours off the painting's palette (docs/losses.md). */
#define OBJECTIVE_STYLIZE_DEFAULT "feat:vgg16:relu2_2=1;style-mmd:sigma2:levels4=20;tv=1e-5"

typedef struct {
    int n;
    char *spec[OBJECTIVE_MAX_TERMS];
    double weight[OBJECTIVE_MAX_TERMS];
    PerceptLoss *loss[OBJECTIVE_MAX_TERMS];
    /* the trainer's own terms, weights only (0: absent): "adv" (DeePSiM's adversarial loss,
     * trainer/adversary.h) and "kl" (the VAE's KL divergence of its code) */
    double adversarial, kl;
} Objective;

/* Parses "spec=weight;spec;…" (weight 1 when omitted) and builds every loss but adv and kl,
 * whose weights it records. */
int objective_init(Objective *o, const char *text);
void objective_free(Objective *o);
int objective_has_style(const Objective *o);
/* Sets the style losses' target: the image at path, resized so its longer side is `side`. */
int objective_set_style(Objective *o, const char *path, int side);
/* Value of every term (terms[i], unweighted) and the weighted total for images x, with
 * reference the clean images of the same shape (NULL when no term needs one); with grad
 * non-NULL, d total / d x into it. */
int objective_eval(Objective *o, const PerceptTensor *x, const PerceptTensor *reference,
                   double *terms, double *total, float *grad);

#endif
