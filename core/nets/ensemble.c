/* Geometric self-ensemble (see percept.h). */
#include <stdlib.h>
#include <string.h>

#include "percept/percept.h"

/* Where pixel (i, j) of an h×w plane in orientation o comes from in the plane as it was
 * (o's bits: 1 flips left-right, 2 top-bottom, 4 transposes; the flips act on the turned
 * plane — the 8 values are the 8 orientations percept train shows its crops in, though
 * dataset_crop numbers them in another order). The same map takes the network's output back: an
 * image-to-image network turned with its input gives, at (i, j), the output at (si, sj). */
static void source_of(int o, int i, int j, int h, int w, int *si, int *sj)
{
    if (o & 1)
        j = w - 1 - j;
    if (o & 2)
        i = h - 1 - i;
    *si = o & 4 ? j : i;
    *sj = o & 4 ? i : j;
}

/* dst (n, c, h', w'), h'×w' = h×w, or w×h when o transposes = src in orientation o */
static void turn(float *dst, const PerceptTensor *src, int o)
{
    int h = o & 4 ? src->w : src->h, w = o & 4 ? src->h : src->w;
    size_t plane = (size_t)src->h * src->w;
    for (size_t p = 0; p < (size_t)src->n * src->c; p++)
        for (int i = 0; i < h; i++)
            for (int j = 0; j < w; j++) {
                int si, sj;
                source_of(o, i, j, h, w, &si, &sj);
                dst[p * plane + (size_t)i * w + j] = src->data[p * plane + (size_t)si * src->w + sj];
            }
}

/* sum += y turned back from orientation o (y: the output for the input in orientation o) */
static void add_turned_back(float *sum, int sw, const PerceptTensor *y, int o)
{
    size_t plane = (size_t)y->h * y->w;
    for (size_t p = 0; p < (size_t)y->n * y->c; p++)
        for (int i = 0; i < y->h; i++)
            for (int j = 0; j < y->w; j++) {
                int si, sj;
                source_of(o, i, j, y->h, y->w, &si, &sj);
                sum[p * plane + (size_t)si * sw + sj] += y->data[p * plane + (size_t)i * y->w + j];
            }
}

int percept_net_forward_ensemble(PerceptNet *net, const PerceptTensor *in, float *dst,
                                 PerceptTensor *out)
{
    int oc, oh, ow, tc, th, tw;
    if (percept_net_output_shape(net, in->n, in->h, in->w, &oc, &oh, &ow) ||
        percept_net_output_shape(net, in->n, in->w, in->h, &tc, &th, &tw))
        return -1;
    if (tc != oc || th != ow || tw != oh)
        return percept_fail("self-ensemble: %s's output does not turn with its input "
                            "(%d×%d gives %d×%d, %d×%d gives %d×%d)",
                            percept_net_name(net), in->w, in->h, ow, oh, in->h, in->w, tw, th);
    /* a GPU network's outputs are downloaded, each in one transfer (percept_copy) */
    const int gpu = strcmp(percept_net_device(net), "cpu") != 0;
    float *turned = malloc(sizeof(float) * percept_tensor_numel(in));
    float *host = gpu ? malloc(sizeof(float) * (size_t)in->n * oc * oh * ow) : NULL;
    if (!turned || (gpu && !host)) {
        free(turned);
        free(host);
        return percept_fail("out of memory");
    }
    *out = (PerceptTensor){in->n, oc, oh, ow, dst};
    memset(dst, 0, sizeof(float) * percept_tensor_numel(out));
    /* the four orientations of each shape in a row: a network plans once per input size */
    int rc = 0;
    for (int o = 0; o < 8 && !rc; o++) {
        PerceptTensor x = {in->n, in->c, o & 4 ? in->w : in->h, o & 4 ? in->h : in->w, turned}, y;
        if (o)
            turn(turned, in, o);
        rc = percept_net_forward(net, o ? &x : in, &y);
        if (!rc && host && !(rc = percept_copy(host, y.data, percept_tensor_numel(&y))))
            y.data = host;
        if (!rc)
            add_turned_back(dst, ow, &y, o);
    }
    free(turned);
    free(host);
    for (size_t k = 0, n = percept_tensor_numel(out); k < n && !rc; k++)
        dst[k] *= 0.125f;
    return rc;
}
