/* What the image loaders share (see images.h): file lists and 8-bit conversion. */
#include <glib.h>
#include <stdlib.h>
#include <string.h>

#include "images.h"

uint8_t *image_to_u8(const PerceptTensor *t, int i)
{
    size_t n = (size_t)t->h * t->w;
    const float *src = t->data + (size_t)i * 3 * n;
    uint8_t *px = malloc(3 * n);
    if (!px)
        return NULL;
    for (size_t k = 0; k < n; k++)
        for (int c = 0; c < 3; c++) {
            float v = src[c * n + k];
            v = v < 0 ? 0 : v > 1 ? 1 : v;
            px[3 * k + c] = (uint8_t)(v * 255.0f + 0.5f);
        }
    return px;
}

static int by_name(gconstpointer a, gconstpointer b)
{
    /* GLib hands the sort pointers to the elements, not the elements. */
    return strcmp(*(char *const *)a, *(char *const *)b);
}

void paths_sort(GPtrArray *paths)
{
    g_ptr_array_sort(paths, by_name);
}

GPtrArray *images_in_dir(const char *dir)
{
    GDir *d = g_dir_open(dir, 0, NULL);
    if (!d) {
        percept_fail("cannot open the directory '%s'", dir);
        return NULL;
    }
    static const char *const ext[] = {".png", ".jpg", ".tif", ".ppm", NULL};
    GPtrArray *paths = g_ptr_array_new_with_free_func(g_free);
    const char *name;
    while ((name = g_dir_read_name(d)))
        for (int i = 0; ext[i]; i++)
            if (g_str_has_suffix(name, ext[i])) {
                g_ptr_array_add(paths, g_build_filename(dir, name, NULL));
                break;
            }
    g_dir_close(d);
    paths_sort(paths);
    return paths;
}
