/* Image loading and saving through GEGL (see images.h), in builds with GEGL. */
#include <gegl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "images.h"

const char image_save_ext[] = ".png";

void images_init(void)
{
    gegl_init(NULL, NULL);
}

void images_exit(void)
{
    gegl_exit();
}

/* The image's extent through gegl:load, or -1 with a message. */
static int open_image(const char *path, GeglNode **graph, GeglNode **load, GeglRectangle *r)
{
    if (access(path, R_OK) != 0)
        return percept_fail("%s: cannot read the file", path);
    *graph = gegl_node_new();
    *load = gegl_node_new_child(*graph, "operation", "gegl:load", "path", path, NULL);
    *r = gegl_node_get_bounding_box(*load);
    if (r->width <= 0 || r->height <= 0) {
        g_object_unref(*graph);
        return percept_fail("%s: GEGL could not load an image from it", path);
    }
    if ((double)r->width * r->height > 1e9) {
        g_object_unref(*graph);
        return percept_fail("%s: %d×%d is too large", path, r->width, r->height);
    }
    return 0;
}

int image_load_rgb(const char *path, PerceptTensor *t)
{
    GeglNode *graph, *load;
    GeglRectangle r;
    if (open_image(path, &graph, &load, &r))
        return -1;
    size_t n = (size_t)r.width * r.height;
    float *rgb = malloc(sizeof(float) * 3 * n);
    *t = (PerceptTensor){1, 3, r.height, r.width, malloc(sizeof(float) * 3 * n)};
    int rc = 0;
    if (!rgb || !t->data) {
        rc = percept_fail("%s: out of memory", path);
        free(t->data);
        t->data = NULL;
    } else {
        gegl_node_blit(load, 1.0, &r, babl_format("R'G'B' float"), rgb, GEGL_AUTO_ROWSTRIDE,
                       GEGL_BLIT_DEFAULT);
        for (size_t i = 0; i < n; i++)
            for (int c = 0; c < 3; c++)
                t->data[c * n + i] = rgb[3 * i + c];
    }
    free(rgb);
    g_object_unref(graph);
    return rc;
}

int image_load_u8(const char *path, size_t max_pixels, ImageU8 *img)
{
    GeglNode *graph, *load;
    GeglRectangle r;
    if (open_image(path, &graph, &load, &r))
        return -1;
    /* big photos come scaled down (GEGL box-filters for scales below 1): fewer bytes kept,
     * and camera noise and JPEG blocks averaged away */
    double scale = 1.0;
    while (max_pixels && (double)r.width * r.height * scale * scale > (double)max_pixels)
        scale *= 0.5;
    GeglRectangle s = {0, 0, (int)(r.width * scale), (int)(r.height * scale)};
    s.x = (int)(r.x * scale);
    s.y = (int)(r.y * scale);
    img->w = s.width;
    img->h = s.height;
    img->rgb = malloc((size_t)s.width * s.height * 3);
    int rc = 0;
    if (!img->rgb)
        rc = percept_fail("%s: out of memory", path);
    else
        gegl_node_blit(load, scale, &s, babl_format("R'G'B' u8"), img->rgb,
                       GEGL_AUTO_ROWSTRIDE, GEGL_BLIT_DEFAULT);
    g_object_unref(graph);
    return rc;
}

int image_save_rgb(const char *path, const PerceptTensor *t, int i)
{
    uint8_t *px = image_to_u8(t, i);
    if (!px)
        return percept_fail("%s: out of memory", path);
    GeglRectangle r = {0, 0, t->w, t->h};
    GeglBuffer *b = gegl_buffer_new(&r, babl_format("R'G'B' u8"));
    gegl_buffer_set(b, &r, 0, babl_format("R'G'B' u8"), px, GEGL_AUTO_ROWSTRIDE);
    free(px);
    GeglNode *graph = gegl_node_new();
    GeglNode *src_node = gegl_node_new_child(graph, "operation", "gegl:buffer-source", "buffer",
                                             b, NULL);
    /* 8-bit values: a PNG says so (gegl:save writes 16 bits, which some readers mangle) */
    GeglNode *save = g_str_has_suffix(path, ".png")
                         ? gegl_node_new_child(graph, "operation", "gegl:png-save", "path", path,
                                               "bitdepth", 8, NULL)
                         : gegl_node_new_child(graph, "operation", "gegl:save", "path", path, NULL);
    gegl_node_link(src_node, save);
    gegl_node_process(save);
    g_object_unref(graph);
    g_object_unref(b);
    if (access(path, F_OK) != 0)
        return percept_fail("%s: GEGL could not write it", path);
    return 0;
}
