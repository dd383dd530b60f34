/* Degradations that make training inputs from clean images, and the bicubic baseline.
 * All work on planar float channels (c × h × w). */
#ifndef PERCEPT_TRAINER_DEGRADE_H
#define PERCEPT_TRAINER_DEGRADE_H

#include <stdint.h>

#include "percept/percept.h"

/* Separable Gaussian blur with standard deviation sigma (radius ⌈3σ⌉, edges reflected);
 * dst may not alias src. */
int degrade_blur(float *dst, const float *src, int c, int h, int w, float sigma);

/* Bicubic resampling (Keys' kernel, a = −0.5, as Matlab's and PIL's bicubic) of c planes
 * from h×w to oh×ow with pixel centres aligned: input x = (output x + 0.5)·w/ow − 0.5;
 * edges clamped; no antialiasing filter (blur first to shrink). */
int degrade_bicubic(float *dst, int oh, int ow, const float *src, int c, int h, int w);

/* img (1 × 3 × h × w) resized so its longer side is `side` and both sides are multiples of
 * `multiple` (at least one multiple): blurred first when shrinking by more than 2, so the
 * bicubic does not alias. Returns a new tensor in out. */
int degrade_resize(const PerceptTensor *img, int side, int multiple, PerceptTensor *out);

/* Adds Gaussian noise of standard deviation sigma (in 0..1 units) from (seed, counter). */
void degrade_noise(float *x, size_t n, float sigma, uint64_t seed, uint64_t counter);

/* JPEG compression at quality 1..100 and decompression (libjpeg, 4:2:0 chroma), the 3 planes
 * quantised to 8 bits on the way; dst may alias src. */
int degrade_jpeg(float *dst, const float *src, int h, int w, int quality);

#endif
