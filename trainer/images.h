/* Images in and out of the trainer and tools: sRGB-encoded (R'G'B') values, what the
 * networks see. Through GEGL (images-gegl.c) where percept is built with it; without GEGL
 * (the GPU machine has none) images-ppm.c reads and writes binary PPM only, enough for
 * `percept train` on photos converted there. */
#ifndef PERCEPT_TRAINER_IMAGES_H
#define PERCEPT_TRAINER_IMAGES_H

#include <glib.h>
#include <stdint.h>

#include "percept/percept.h"

/* An 8-bit image, interleaved RGB, as the data pipeline keeps it in memory. */
typedef struct {
    int w, h;
    uint8_t *rgb;
} ImageU8;

/* Start and stop the image library around a command that loads or saves images: GEGL
 * where percept is built with it (its baselines in evaluate.c need it too); nothing for
 * PPM. */
void images_init(void);
void images_exit(void);

/* The extension of the images this build writes (previews, plots): ".png" with GEGL,
 * ".ppm" without. */
extern const char image_save_ext[];

/* Loads any format GEGL reads as 0..1 planar RGB (n = 1); alpha is dropped. */
int image_load_rgb(const char *path, PerceptTensor *t);
/* Loads as 8-bit RGB, scaled down by a power of two until at most max_pixels (0: no
 * limit). */
int image_load_u8(const char *path, size_t max_pixels, ImageU8 *img);
/* Saves image i of t (0..1 planar RGB, values clamped) in the format the path's extension
 * names (PNG, JPEG, …), 8 bits per channel. */
int image_save_rgb(const char *path, const PerceptTensor *t, int i);

/* Image i of t (0..1 planar RGB) as interleaved 8-bit RGB, values clamped; NULL when out
 * of memory. */
uint8_t *image_to_u8(const PerceptTensor *t, int i);

/* Sorts a GPtrArray of file names (char *) by strcmp, the same order on every machine. */
void paths_sort(GPtrArray *paths);
/* The images (PNG, JPEG, TIFF, PPM) directly in dir, full paths, sorted by name; NULL with
 * percept_fail if dir cannot be opened. */
GPtrArray *images_in_dir(const char *dir);

#endif
