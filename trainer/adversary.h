/* DeePSiM's adversarial term (Dosovitskiy & Brox 2016, §3): a discriminator D, trained
 * alongside the generator G, tells its output from real images; G is pushed towards outputs
 * D takes for real, Ladv = −log D(G(x)), and D minimises Ldiscr = −log D(y) − log(1 − D(G(x))).
 * As in the paper, D's updates pause while Ldiscr / Ladv < 0.1 (it is winning too easily and
 * would overfit). D is the DeePSiM discriminator for the crop size (one logit, images
 * only: the paper feeds features to it only when inverting AlexNet), with its own Adam
 * state and checkpoint files (OUT.disc.ckpt, OUT.disc.adam) so resuming stays exact. */
#ifndef PERCEPT_TRAINER_ADVERSARY_H
#define PERCEPT_TRAINER_ADVERSARY_H

#include <stdint.h>

#include "percept/percept.h"

#define ADVERSARY_PAUSE_RATIO 0.1

typedef struct {
    PerceptNet *net;
    PerceptAdam adam;
    float *both, *dlogits, *dfake; /* [real; fake] batch, gradients */
    size_t batch_floats;
    char *ckpt, *adam_path;
    int64_t updates;               /* D steps taken (the pauses excluded) */
} Adversary;

/* D for crops of side `size`, initialised from seed; checkpoints next to out. */
int adversary_init(Adversary *a, int size, int width, double lr, uint64_t seed,
                   const char *out);
void adversary_free(Adversary *a);

/* One step on G's outputs `fake` and the real images of the batch: adds
 * weight · d Ladv / d fake to grad, then updates D unless Ldiscr / Ladv is under the
 * pause ratio. Dropout noise comes from noise_seed. */
int adversary_step(Adversary *a, const PerceptTensor *fake, const PerceptTensor *real,
                   double weight, uint64_t noise_seed, float *grad, double *l_adv,
                   double *l_discr, int *updated);

int adversary_save(Adversary *a, int step);
/* Loads the checkpoint of trainer step `step` (an error if it is of another step). */
int adversary_load(Adversary *a, int step);

#endif
