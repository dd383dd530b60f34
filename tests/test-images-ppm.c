/* The trainer's images without GEGL (trainer/images-ppm.c): a saved PPM loads back exactly
 * (as 0..1 floats and as 8-bit), comments in the header are read, large images are halved
 * by 2×2 box averages until they fit, and what is not an 8-bit P6 file (another format,
 * 16-bit samples, a truncated file, a missing file, a non-PPM name to save) is an error. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "check.h"
#include "images.h"

static char dir[512];

static const char *path_of(const char *name)
{
    static char p[600];
    snprintf(p, sizeof p, "%s/%s", dir, name);
    return p;
}

static void write_file(const char *name, const void *bytes, size_t n)
{
    FILE *f = fopen(path_of(name), "wb");
    CHECK(f && fwrite(bytes, 1, n, f) == n && !fclose(f), "cannot write %s", name);
}

static void test_round_trip(void)
{
    enum { H = 5, W = 7 };
    float px[3 * H * W];
    for (int i = 0; i < 3 * H * W; i++)
        px[i] = (float)((i * 37) % 256) / 255.0f;
    px[0] = -0.5f; /* clamped to 0 */
    px[1] = 2.0f;  /* clamped to 1 */
    PerceptTensor t = {1, 3, H, W, px}, back;
    CHECK(image_save_rgb(path_of("a.ppm"), &t, 0) == 0, "save: %s", percept_error());
    CHECK(image_load_rgb(path_of("a.ppm"), &back) == 0, "load: %s", percept_error());
    CHECK(back.h == H && back.w == W, "loaded %d×%d", back.w, back.h);
    float worst = 0;
    for (int i = 2; i < 3 * H * W; i++)
        worst = fmaxf(worst, fabsf(back.data[i] - px[i]));
    CHECK(worst < 1e-6f, "values changed by %g", worst);
    CHECK(back.data[0] == 0 && back.data[1] == 1, "clamping: %g %g", back.data[0], back.data[1]);
    free(back.data);
    CHECK(image_save_rgb(path_of("a.png"), &t, 0) == -1 && strstr(percept_error(), "PPM"),
          "a .png name was accepted: %s", percept_error());
}

static void test_halving(void)
{
    /* 4×2 with a comment in the header; halved once to 2×1 */
    const char head[] = "P6\n# made by hand\n4 2\n255\n";
    unsigned char file[sizeof head - 1 + 24];
    memcpy(file, head, sizeof head - 1);
    unsigned char *s = file + sizeof head - 1;
    for (int i = 0; i < 24; i++)
        s[i] = (unsigned char)(i * 10);
    write_file("b.ppm", file, sizeof file);
    ImageU8 img;
    CHECK(image_load_u8(path_of("b.ppm"), 0, &img) == 0 && img.w == 4 && img.h == 2 &&
              !memcmp(img.rgb, s, 24),
          "unscaled load: %s", percept_error());
    free(img.rgb);
    CHECK(image_load_u8(path_of("b.ppm"), 4, &img) == 0 && img.w == 2 && img.h == 1,
          "halved load: %s", percept_error());
    /* pixel (0,0) channel c averages samples c, c+3 (row 0) and c+12, c+15 (row 1) */
    for (int c = 0; c < 3; c++) {
        int want = ((s[c] + s[c + 3] + s[c + 12] + s[c + 15]) + 2) / 4;
        CHECK(img.rgb[c] == want, "channel %d: %d, not %d", c, img.rgb[c], want);
    }
    free(img.rgb);
}

static void expect_error(const char *name, const char *bytes, size_t n, const char *words)
{
    write_file(name, bytes, n);
    PerceptTensor t;
    CHECK(image_load_rgb(path_of(name), &t) == -1 && strstr(percept_error(), words),
          "%s: '%s' without '%s'", name, percept_error(), words);
}

static void test_errors(void)
{
    expect_error("png.ppm", "\x89PNG\r\n\x1a\n", 8, "not a binary PPM");
    expect_error("ascii.ppm", "P3\n1 1\n255\n0 0 0\n", 16, "not a binary PPM");
    expect_error("deep.ppm", "P6\n1 1\n65535\n\0\0\0\0\0\0", 19, "8-bit");
    expect_error("short.ppm", "P6\n2 2\n255\n\1\2\3", 14, "truncated");
    expect_error("empty.ppm", "P6\n0 3\n255\n", 11, "0×3");
    expect_error("noheader.ppm", "P6\n", 3, "not a binary PPM");
    PerceptTensor t;
    CHECK(image_load_rgb(path_of("missing.ppm"), &t) == -1 &&
              strstr(percept_error(), "cannot read"),
          "a missing file: %s", percept_error());
}

int main(void)
{
    const char *tmp = getenv("PERCEPT_TEST_TMP");
    snprintf(dir, sizeof dir, "%s", tmp ? tmp : "/tmp");
    test_round_trip();
    test_halving();
    test_errors();
    return check_done("test-images-ppm");
}
