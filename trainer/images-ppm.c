/* Image loading and saving without GEGL (see images.h): binary PPM (P6) with 8-bit samples,
 * the format any tool writes and a page of C reads. Builds without GEGL are the GPU
 * machine's, where Python's imaging libraries convert the photos first. */
#include <ctype.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "images.h"

const char image_save_ext[] = ".ppm";

void images_init(void)
{
}

void images_exit(void)
{
}

/* The next header number, skipping whitespace and # comments; -1 if there is none. */
static long header_number(FILE *f)
{
    int ch;
    for (;;) {
        ch = fgetc(f);
        if (ch == '#')
            while (ch != '\n' && ch != EOF)
                ch = fgetc(f);
        else if (!isspace(ch))
            break;
    }
    long v = 0;
    int digits = 0;
    for (; isdigit(ch) && v < 1000000000; ch = fgetc(f), digits++)
        v = v * 10 + (ch - '0');
    return digits && (ch == EOF || isspace(ch)) ? v : -1;
}

/* Reads a P6 file's header and samples into img (interleaved RGB). */
static int read_ppm(const char *path, ImageU8 *img)
{
    FILE *f = fopen(path, "rb");
    if (!f)
        return percept_fail("%s: cannot read the file", path);
    char magic[2] = {0};
    long w = -1, h = -1, maxval = -1;
    if (fread(magic, 1, 2, f) == 2 && magic[0] == 'P' && magic[1] == '6') {
        w = header_number(f);
        h = header_number(f);
        maxval = header_number(f);
    }
    int rc = 0;
    img->rgb = NULL;
    if (w < 0 || h < 0 || maxval < 0)
        rc = percept_fail("%s: not a binary PPM (P6) file; this percept was built without "
                          "GEGL and reads no other format", path);
    else if (maxval != 255)
        rc = percept_fail("%s: %ld-level samples; only 8-bit PPM (maximum 255) is read", path,
                          maxval);
    else if (w < 1 || h < 1 || (double)w * h > 1e9)
        rc = percept_fail("%s: a %ld×%ld image", path, w, h);
    else if (!(img->rgb = malloc((size_t)w * h * 3)))
        rc = percept_fail("%s: out of memory", path);
    else if (fread(img->rgb, 3, (size_t)w * h, f) != (size_t)w * h)
        rc = percept_fail("%s: truncated (%ld×%ld samples expected)", path, w, h);
    fclose(f);
    if (rc) {
        free(img->rgb);
        img->rgb = NULL;
        return rc;
    }
    img->w = (int)w;
    img->h = (int)h;
    return 0;
}

/* Halves img in place by 2×2 box averages (an odd last row or column is dropped), as GEGL
 * box-filters a load scaled by ½. */
static void halve(ImageU8 *img)
{
    int w = img->w / 2, h = img->h / 2;
    for (int y = 0; y < h; y++)
        for (int x = 0; x < w; x++)
            for (int c = 0; c < 3; c++) {
                const uint8_t *p = img->rgb + ((size_t)2 * y * img->w + 2 * x) * 3 + c;
                int sum = p[0] + p[3] + p[(size_t)img->w * 3] + p[(size_t)img->w * 3 + 3];
                img->rgb[((size_t)y * w + x) * 3 + c] = (uint8_t)((sum + 2) / 4);
            }
    img->w = w;
    img->h = h;
}

int image_load_u8(const char *path, size_t max_pixels, ImageU8 *img)
{
    if (read_ppm(path, img))
        return -1;
    while (max_pixels && (double)img->w * img->h > (double)max_pixels && img->w >= 2 &&
           img->h >= 2)
        halve(img);
    return 0;
}

int image_load_rgb(const char *path, PerceptTensor *t)
{
    ImageU8 img;
    if (read_ppm(path, &img))
        return -1;
    size_t n = (size_t)img.w * img.h;
    *t = (PerceptTensor){1, 3, img.h, img.w, malloc(sizeof(float) * 3 * n)};
    if (!t->data) {
        free(img.rgb);
        return percept_fail("%s: out of memory", path);
    }
    for (size_t i = 0; i < n; i++)
        for (int c = 0; c < 3; c++)
            t->data[c * n + i] = img.rgb[3 * i + c] / 255.0f;
    free(img.rgb);
    return 0;
}

int image_save_rgb(const char *path, const PerceptTensor *t, int i)
{
    size_t len = strlen(path);
    if (len < 4 || strcmp(path + len - 4, ".ppm"))
        return percept_fail("%s: this percept was built without GEGL and writes PPM only "
                            "(name the file .ppm)", path);
    uint8_t *px = image_to_u8(t, i);
    if (!px)
        return percept_fail("%s: out of memory", path);
    FILE *f = fopen(path, "wb");
    int ok = f && fprintf(f, "P6\n%d %d\n255\n", t->w, t->h) > 0 &&
             fwrite(px, 3, (size_t)t->w * t->h, f) == (size_t)t->w * t->h;
    ok = f && !fclose(f) && ok;
    free(px);
    if (!ok) {
        remove(path);
        return percept_fail("%s: could not write it", path);
    }
    return 0;
}
