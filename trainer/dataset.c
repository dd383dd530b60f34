/* The image directory as training and validation crops (see dataset.h). */
#include <glib.h>
#include <stdlib.h>
#include <string.h>

#include "dataset.h"

static void list_files(const char *root, const char *rel, GPtrArray *out)
{
    char *path = rel ? g_build_filename(root, rel, NULL) : g_strdup(root);
    GDir *dir = g_dir_open(path, 0, NULL);
    if (dir) {
        const char *name;
        while ((name = g_dir_read_name(dir))) {
            if (name[0] == '.')
                continue;
            char *child = rel ? g_build_filename(rel, name, NULL) : g_strdup(name);
            char *full = g_build_filename(root, child, NULL);
            if (g_file_test(full, G_FILE_TEST_IS_DIR))
                list_files(root, child, out);
            else
                g_ptr_array_add(out, g_strdup(child));
            g_free(full);
            g_free(child);
        }
        g_dir_close(dir);
    }
    g_free(path);
}

/* Text files that sit next to images (manifests, licences) are not worth a warning. */
static int is_text(const char *name)
{
    static const char *const ext[] = {".txt", ".tsv", ".csv", ".md", ".json", ".ini", NULL};
    for (int i = 0; ext[i]; i++)
        if (g_str_has_suffix(name, ext[i]))
            return 1;
    return 0;
}

/* The files under each of the ':'-separated roots, each root's sorted by name, one root after
 * the other: with one root the order (and so the validation split) is the sorted names. */
static int list_roots(const char *dirs, GPtrArray *full, GPtrArray *rel)
{
    char **roots = g_strsplit(dirs, G_SEARCHPATH_SEPARATOR_S, -1);
    int rc = 0;
    for (int k = 0; roots[k]; k++) {
        if (!g_file_test(roots[k], G_FILE_TEST_IS_DIR)) {
            rc = percept_fail("data directory '%s' does not exist", roots[k]);
            break;
        }
        GPtrArray *names = g_ptr_array_new_with_free_func(g_free);
        list_files(roots[k], NULL, names);
        paths_sort(names);
        for (guint i = 0; i < names->len; i++) {
            const char *name = g_ptr_array_index(names, i);
            if (is_text(name))
                continue;
            g_ptr_array_add(full, g_build_filename(roots[k], name, NULL));
            g_ptr_array_add(rel, g_strdup(name));
        }
        g_ptr_array_free(names, TRUE);
    }
    g_strfreev(roots);
    return rc;
}

int dataset_load(Dataset *d, const char *dirs, int min_side, size_t max_pixels,
                 double val_fraction, FILE *log)
{
    memset(d, 0, sizeof *d);
    GPtrArray *full = g_ptr_array_new_with_free_func(g_free);
    GPtrArray *rel = g_ptr_array_new_with_free_func(g_free);
    if (list_roots(dirs, full, rel)) {
        g_ptr_array_free(full, TRUE);
        g_ptr_array_free(rel, TRUE);
        return -1;
    }
    d->images = calloc(full->len + 1, sizeof(ImageU8));
    d->names = calloc(full->len + 1, sizeof(char *));
    for (guint i = 0; i < full->len; i++) {
        const char *path = g_ptr_array_index(full, i);
        ImageU8 img;
        if (image_load_u8(path, max_pixels, &img)) {
            fprintf(log, "percept train: skipped %s\n", percept_error());
            d->skipped++;
        } else if (img.w < min_side || img.h < min_side) {
            fprintf(log, "percept train: skipped %s: %d×%d is smaller than the %d px crops\n",
                    path, img.w, img.h, min_side);
            free(img.rgb);
            d->skipped++;
        } else {
            d->images[d->n] = img;
            d->names[d->n++] = g_strdup(g_ptr_array_index(rel, i));
            d->bytes += (size_t)img.w * img.h * 3;
        }
    }
    g_ptr_array_free(full, TRUE);
    g_ptr_array_free(rel, TRUE);
    percept_error_clear();
    if (d->n == 0) {
        dataset_free(d);
        return percept_fail("no usable image in '%s' (any format GEGL loads, at least %d px on "
                            "each side)", dirs, min_side);
    }
    int k = val_fraction > 0 ? (int)(1.0 / val_fraction + 0.5) : 0;
    d->train = malloc(sizeof(int) * d->n);
    d->val = malloc(sizeof(int) * d->n);
    for (int i = 0; i < d->n; i++) {
        if (k >= 2 && d->n >= 2 && i % k == k - 1)
            d->val[d->n_val++] = i;
        else
            d->train[d->n_train++] = i;
    }
    return 0;
}

void dataset_free(Dataset *d)
{
    for (int i = 0; i < d->n; i++) {
        free(d->images[i].rgb);
        g_free(d->names[i]);
    }
    free(d->images);
    free(d->names);
    free(d->train);
    free(d->val);
    memset(d, 0, sizeof *d);
}

void dataset_crop(const Dataset *d, int idx, int x, int y, int side, int orientation,
                  float *dst)
{
    const ImageU8 *img = &d->images[idx];
    size_t plane = (size_t)side * side;
    for (int v = 0; v < side; v++)
        for (int u = 0; u < side; u++) {
            int a = orientation & 4 ? v : u, b = orientation & 4 ? u : v;
            if (orientation & 1)
                a = side - 1 - a;
            if (orientation & 2)
                b = side - 1 - b;
            const uint8_t *px = img->rgb + ((size_t)(y + b) * img->w + (x + a)) * 3;
            for (int c = 0; c < 3; c++)
                dst[c * plane + (size_t)v * side + u] = px[c] * (1.0f / 255.0f);
        }
}

void dataset_random_crop(const Dataset *d, uint64_t seed, uint64_t counter, int side,
                         float *dst)
{
    uint64_t base = counter * 4;
    int idx = d->train[percept_rng_u64(seed, base) % (uint64_t)d->n_train];
    const ImageU8 *img = &d->images[idx];
    int x = (int)(percept_rng_u64(seed, base + 1) % (uint64_t)(img->w - side + 1));
    int y = (int)(percept_rng_u64(seed, base + 2) % (uint64_t)(img->h - side + 1));
    dataset_crop(d, idx, x, y, side, (int)(percept_rng_u64(seed, base + 3) & 7), dst);
}

char *dataset_manifest(const Dataset *d, const char *dir)
{
    GChecksum *sum = g_checksum_new(G_CHECKSUM_SHA256);
    for (int i = 0; i < d->n; i++) {
        char size[32];
        snprintf(size, sizeof size, " %dx%d\n", d->images[i].w, d->images[i].h);
        g_checksum_update(sum, (const guchar *)d->names[i], strlen(d->names[i]));
        g_checksum_update(sum, (const guchar *)size, strlen(size));
    }
    char *line = g_strdup_printf("%d images from %s (%d training, %d validation; names and "
                                 "sizes sha256 %.16s)", d->n, dir, d->n_train, d->n_val,
                                 g_checksum_get_string(sum));
    g_checksum_free(sum);
    return line;
}
