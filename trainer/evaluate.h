/* Super-resolution evaluation: a network against the baselines a user compares with
 * (bicubic and GEGL's cubic, nohalo and lohalo samplers) on the same low-resolution
 * inputs, scored as SR papers score: PSNR and SSIM on Y (BT.601, `scale` border pixels
 * cropped), plus SWD on RGB. */
#ifndef PERCEPT_TRAINER_EVALUATE_H
#define PERCEPT_TRAINER_EVALUATE_H

#include <stdio.h>

#include "percept/percept.h"

typedef struct {
    double psnr_y, ssim_y, swd;
} SrScores;

#define SR_METHODS 5
extern const char *const sr_method_names[SR_METHODS]; /* "percept", "bicubic", "gegl-cubic", … */

/* The low-resolution input the recipe's degradation makes from hr (3 × h × w planar, sides
 * multiples of scale): "blur:SIGMA" blurs, then bicubic downsampling. lr holds
 * 3 × (h/scale) × (w/scale). */
int sr_degrade(float *lr, const float *hr, int h, int w, int scale, const char *degrade);

/* Scores of sr against hr (both 1 × 3 × h × w). */
int sr_score(const PerceptTensor *sr, const PerceptTensor *hr, int scale, SrScores *s);

/* Upscales lr with method m (0: the network, in eval mode; 1: bicubic; 2–4: GEGL's
 * samplers) into out (allocated, 1 × 3 × h·scale × w·scale). */
int sr_upscale(int m, PerceptNet *net, const PerceptTensor *lr, int scale, PerceptTensor *out);

/* Means over images (each 1 × 3 × h × w, cropped here to multiples of scale) of every
 * method's scores, into mean[SR_METHODS]; gegl == 0 skips GEGL's samplers (NaN). */
int sr_evaluate(PerceptNet *net, PerceptTensor *images, int n, int scale, const char *degrade,
                int gegl, SrScores *mean);
/* The table of sr_evaluate's means. */
void sr_print_table(FILE *f, const SrScores *mean, int n, int scale);

#endif
