/* Runs a model over an image of any size in tiles, in bounded memory, without seams.
 *
 * The image is cut into tiles whose corners sit at multiples of the network's alignment
 * from the image's origin; each tile is run with a halo of input around it (the network's
 * reach, model->halo), cut to the image, and only its own output pixels are kept. At the
 * image's own edges the network's padding applies as it would to the whole image, and the
 * right and bottom edges are extended by repeating the last pixel to the next multiple of
 * the alignment (and to the network's smallest input) exactly as a whole-image pass would
 * extend them. So a tile computes what the whole image computes there.
 *
 * Instance-norm networks first run the whole image (or, when that does not fit the memory
 * budget, the image scaled down until it does) to take its normalisation statistics, then
 * every tile with those statistics fixed.
 *
 * With self_ensemble each tile is run in its 8 orientations (percept_net_forward_ensemble).
 * A turned tile still starts and ends at multiples of the alignment (its span does, the
 * extension included) and sees its whole halo, so the tiles still agree with the whole
 * image's self-ensemble; the statistics (per channel) are the same in every orientation. */
#ifndef PERCEPT_OPS_TILER_H
#define PERCEPT_OPS_TILER_H

#include <gegl-plugin.h>

#include "model.h"

/* One finished tile: rect in output coordinates, rgb its pixels interleaved (R'G'B' float,
 * rows rect->width apart, as the network gave them, clamped to 0..1). Returns FALSE to
 * stop, with *error. */
typedef gboolean (*PerceptTileSink)(void *user, const GeglRectangle *rect, const float *rgb,
                                    char **error);

typedef struct {
    PerceptModel *model;
    const Babl *format;      /* "R'G'B' float" in the source's space: what the net sees */
    int tile;                /* core tile side in input pixels; 0: the largest that fits */
    size_t memory_budget;    /* bytes of network memory per tile; 0: the default */
    GeglOperation *progress; /* gegl_operation_progress target, or NULL */
    const char *what;        /* progress message prefix ("Upscaling") */
    gboolean self_ensemble;  /* each tile the mean of its 8 orientations (8× the work) */
} PerceptTiler;

/* Default network memory per tile: PERCEPT_TILE_MEMORY_MB, else 1024 MiB. */
size_t percept_tiler_default_budget(void);

/* Runs t->model over `image` (a rectangle of input) and hands each tile to sink. Takes the
 * model's run_lock for the duration. When the network's device runs out of memory, runs
 * again with tiles half the size, down to 64 px, and then, unless the model was asked for
 * on the CPU, the same model on the CPU (said once per process); tiles agree with the
 * whole image, so the result is the same. FALSE with *error on failure. */
gboolean percept_tiler_run(const PerceptTiler *t, GeglBuffer *input, const GeglRectangle *image,
                           PerceptTileSink sink, void *user, char **error);

#endif
