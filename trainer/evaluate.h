/* Evaluation of a network against the baselines a user compares it with, on the same
 * degraded inputs:
 *  - upscale: bicubic and GEGL's cubic, nohalo and lohalo samplers; scored as SR papers
 *    score, PSNR and SSIM on Y (BT.601, `scale` border pixels cropped), plus SWD on RGB;
 *  - reconstruct: the degraded input itself and GEGL's denoisers (denoise-dct told the
 *    noise level, noise-reduction, bilateral-filter at their defaults); same scores;
 *  - autoencoder: bicubic from ⅛ of the size, which keeps 3/64 of the numbers, about as
 *    many as the DeePSiM code's 8 channels at ⅛ (1/24).
 * (stylize has no baselines here: its inputs are the images themselves, degrade "none") */
#ifndef PERCEPT_TRAINER_EVALUATE_H
#define PERCEPT_TRAINER_EVALUATE_H

#include <stdint.h>
#include <stdio.h>

#include "percept/percept.h"

typedef enum { EVAL_UPSCALE, EVAL_RECONSTRUCT, EVAL_STYLIZE, EVAL_AUTOENCODER } EvalTask;

typedef struct {
    double psnr_y, ssim_y, swd;
} Scores;

/* Whether GEGL's methods can run: percept built with GEGL (the GPU machine has none). */
#ifdef PERCEPT_HAVE_GEGL
#define EVAL_HAVE_GEGL 1
#else
#define EVAL_HAVE_GEGL 0
#endif

/* The network first, then four baselines, then the network's self-ensemble (the mean of
 * its 8 orientations, percept_net_forward_ensemble) when asked for. */
#define EVAL_METHODS 6
#define EVAL_ENSEMBLE 5
const char *eval_method_name(EvalTask task, int method);

/* Checks a degradation spec for a task: upscale takes blur:SIGMA (then bicubic
 * downsampling) or bicubic; reconstruct takes noise:SIGMA or noise:LOW-HIGH (Gaussian, in
 * 0..255 units; a range draws σ per image) and blur:SIGMA; stylize only none. */
int eval_check_degrade(EvalTask task, const char *degrade);

/* The network's input made from clean hr (3 × h × w planar; sides multiples of scale):
 * 3 × (h/scale) × (w/scale) into out. Noise is drawn from (seed, counter). */
int eval_degrade(EvalTask task, float *out, const float *hr, int h, int w, int scale,
                 const char *degrade, uint64_t seed, uint64_t counter);

/* The top-left part of img (1 × 3 × h × w) whose sides are whole multiples of scale, as
 * evaluation crops its images, in a new tensor (*out; the caller frees out->data). */
int eval_crop(const PerceptTensor *img, int scale, PerceptTensor *out);

/* s as the JSON object {"psnr_y": …, "ssim_y": …, "swd": …}; a value that is not finite
 * (identical images' PSNR) is null, JSON having no infinity. */
void eval_print_scores_json(FILE *f, const Scores *s);

/* Scores of x against the clean image (both 1 × 3 × h × w); border pixels cropped. */
int eval_score(const PerceptTensor *x, const PerceptTensor *clean, int border, Scores *s);

/* Means over the images (each 1 × 3 × h × w, cropped here to multiples of scale) of every
 * method's scores; gegl == 0 leaves GEGL's methods out, ensemble == 0 the self-ensemble
 * (NaN). Noise is seeded by the image index, so every run and every method sees the same
 * inputs. */
int eval_mean(EvalTask task, PerceptNet *net, PerceptTensor *images, int n, int scale,
              const char *degrade, int gegl, int ensemble, Scores *mean);
void eval_print_table(FILE *f, EvalTask task, const Scores *mean, int n, int scale);

#endif
