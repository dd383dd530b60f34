/* percept score CLEAN_DIR RESULT_DIR: another program's results (a peer upscaler's, say)
 * scored exactly as percept eval scores its methods, so that they can share one table: each
 * clean image, cropped to whole multiples of the scale, against the result of the same name
 * in RESULT_DIR (any extension GEGL loads); PSNR and SSIM on Y with `scale` border pixels
 * cropped, SWD on RGB; the mean over the images. */
#include <gegl.h>
#include <glib.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "evaluate.h"
#include "images.h"

/* RESULT_DIR's file with the stem of clean (its name without the extension), or NULL */
static char *result_for(const char *results, const char *clean)
{
    char *base = g_path_get_basename(clean), *dot = strrchr(base, '.');
    if (dot)
        *dot = 0;
    static const char *const exts[] = {".png", ".jpg", ".tif", ".ppm", ".webp"};
    char *found = NULL;
    for (size_t i = 0; i < sizeof exts / sizeof *exts && !found; i++) {
        char *name = g_strconcat(base, exts[i], NULL), *path = g_build_filename(results, name, NULL);
        g_free(name);
        if (g_file_test(path, G_FILE_TEST_EXISTS))
            found = path;
        else
            g_free(path);
    }
    g_free(base);
    return found;
}

static int score_one(const char *clean_path, const char *result_path, int scale, Scores *s)
{
    PerceptTensor img = {0}, clean = {0}, result = {0};
    int rc = image_load_rgb(clean_path, &img) || eval_crop(&img, scale, &clean) ||
             image_load_rgb(result_path, &result);
    if (!rc && (result.h != clean.h || result.w != clean.w))
        rc = percept_fail("%s is %d×%d, but %s cropped to multiples of %d is %d×%d",
                          result_path, result.w, result.h, clean_path, scale, clean.w, clean.h);
    if (!rc)
        rc = eval_score(&result, &clean, scale > 1 ? scale : 0, s);
    free(img.data);
    free(clean.data);
    free(result.data);
    return rc;
}

static int score(const char *clean_dir, const char *results, int scale, const char *name,
                 int json)
{
    GPtrArray *names = images_in_dir(clean_dir);
    if (!names)
        return -1;
    Scores mean = {0};
    int n = 0, rc = 0;
    for (guint i = 0; i < names->len && !rc; i++) {
        const char *clean = g_ptr_array_index(names, i);
        char *result = result_for(results, clean);
        Scores s;
        if (!result)
            rc = percept_fail("no result for %s in '%s'", clean, results);
        else if (!(rc = score_one(clean, result, scale, &s))) {
            mean.psnr_y += s.psnr_y;
            mean.ssim_y += s.ssim_y;
            mean.swd += s.swd;
            n++;
        }
        g_free(result);
    }
    g_ptr_array_free(names, TRUE);
    if (!rc && n == 0)
        rc = percept_fail("no image in '%s' (PNG, JPEG, TIFF or PPM)", clean_dir);
    if (rc)
        return rc;
    mean.psnr_y /= n;
    mean.ssim_y /= n;
    mean.swd /= n;
    if (json) {
        printf("{\"name\": \"%s\", \"images\": %d, \"scale\": %d, \"scores\": ", name, n,
               scale);
        eval_print_scores_json(stdout, &mean);
        printf("}\n");
    } else
        printf("| %s | %.2f | %.4f | %.2f |\n", name, mean.psnr_y, mean.ssim_y, mean.swd);
    return 0;
}

int cmd_score(int argc, char **argv)
{
    const char *clean = NULL, *results = NULL, *name = NULL;
    int scale = 1, json = 0;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--scale") && i + 1 < argc)
            scale = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--name") && i + 1 < argc)
            name = argv[++i];
        else if (!strcmp(argv[i], "--json"))
            json = 1;
        else if (!clean && argv[i][0] != '-')
            clean = argv[i];
        else if (!results && argv[i][0] != '-')
            results = argv[i];
        else
            clean = NULL, i = argc;
    }
    if (!clean || !results || scale < 1 || scale > 8) {
        fprintf(stderr, "percept: score needs CLEAN_DIR RESULT_DIR [--scale 1..8] [--name NAME] "
                        "[--json]\nTry 'percept --help'.\n");
        return 2;
    }
    gegl_init(NULL, NULL);
    int rc = score(clean, results, scale, name ? name : results, json);
    if (rc)
        fprintf(stderr, "percept score: %s\n", percept_error());
    gegl_exit();
    return rc ? 1 : 0;
}
