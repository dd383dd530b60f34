/* Training data: directories of images read recursively (any format GEGL loads), decoded
 * once and kept in memory as 8-bit RGB, split deterministically into training and
 * validation images, served as random crops with flips. */
#ifndef PERCEPT_TRAINER_DATASET_H
#define PERCEPT_TRAINER_DATASET_H

#include <stdint.h>
#include <stdio.h>

#include "images.h"

typedef struct {
    int n;
    ImageU8 *images;
    char **names;      /* paths relative to their directory, in dataset_load's order */
    int n_train, n_val;
    int *train, *val;  /* indices into images */
    int skipped;       /* files that could not be used */
    size_t bytes;
} Dataset;

/* Loads every image under dirs (one directory, or several separated by ':') with both sides
 * ≥ min_side (after scaling down to at most max_pixels); every k-th (k = 1 / val_fraction, by
 * sorted name within each directory, the directories in the order given) is held out for
 * validation. Files GEGL cannot read are reported on log and skipped; no usable image is
 * an error. */
int dataset_load(Dataset *d, const char *dirs, int min_side, size_t max_pixels,
                 double val_fraction, FILE *log);
void dataset_free(Dataset *d);

/* A side×side crop of image idx at (x, y), in one of 8 orientations (bit 0: flip left-right,
 * bit 1: flip top-bottom, bit 2: transpose), as planar 0..1 floats (3 × side × side). */
void dataset_crop(const Dataset *d, int idx, int x, int y, int side, int orientation,
                  float *dst);
/* A random training crop, a function of (seed, counter) only: the same batch for the same
 * step on every run, which is what makes --resume exact. */
void dataset_random_crop(const Dataset *d, uint64_t seed, uint64_t counter, int side,
                         float *dst);

/* One line describing the data (count, split, directory, a hash of the names and sizes)
 * for the weight file's metadata. Caller frees. */
char *dataset_manifest(const Dataset *d, const char *dir);

#endif
