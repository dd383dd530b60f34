/* percept compare A B: image quality metrics between two images GEGL can load. */
#include <gegl.h>
#include <getopt.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "images.h"
#include "percept/percept.h"

static void print_value(int json, const char *key, const char *label, double v, const char *unit,
                        int last)
{
    if (json && isfinite(v))
        printf("  \"%s\": %.6f%s\n", key, v, last ? "" : ",");
    else if (json) /* JSON has no infinity: identical images give null, with the reason */
        printf("  \"%s\": null%s\n", key, last ? "" : ",");
    else if (isfinite(v))
        printf("%-28s %12.6f %s\n", label, v, unit);
    else
        printf("%-28s %12s %s\n", label, isinf(v) ? "inf" : "n/a", unit);
    /* n/a: the image is too small for that metric (MS-SSIM needs 161 px, SWD 16 px) */
}

int cmd_compare(int argc, char **argv)
{
    int json = 0, border = 0;
    static const struct option opts[] = {{"json", no_argument, 0, 'j'},
                                         {"border", required_argument, 0, 'b'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "jb:h", opts, NULL)) != -1) {
        if (c == 'j')
            json = 1;
        else if (c == 'b')
            border = atoi(optarg);
        else if (c == 'h') {
            fputs(percept_usage, stdout);
            return 0;
        } else
            return 2;
    }
    if (optind != argc - 2) {
        fprintf(stderr, "percept: compare needs two images\nTry 'percept --help'.\n");
        return 2;
    }
    gegl_init(NULL, NULL);
    PerceptTensor a = {0}, b = {0};
    int rc = 1;
    if (image_load_rgb(argv[optind], &a) || image_load_rgb(argv[optind + 1], &b)) {
        fprintf(stderr, "percept: %s\n", percept_error());
        goto out;
    }
    if (a.h != b.h || a.w != b.w) {
        fprintf(stderr, "percept: the images differ in size (%d×%d and %d×%d): metrics compare "
                        "pixel by pixel\n", a.w, a.h, b.w, b.h);
        goto out;
    }
    double ssim = NAN, ms = NAN, swd = NAN, mmd = NAN;
    percept_ssim(&a, &b, NULL, &ssim, NULL);
    percept_ms_ssim(&a, &b, &ms, NULL); /* NaN when too small: reported as n/a */
    percept_swd(&a, &b, NULL, 0, NULL, &swd);
    percept_mmd(&a, &b, NULL, &mmd, NULL);
    if (json)
        printf("{\n  \"a\": \"%s\",\n  \"b\": \"%s\",\n  \"width\": %d,\n  \"height\": %d,\n",
               argv[optind], argv[optind + 1], a.w, a.h);
    else
        printf("%s vs %s (%d×%d)\n", argv[optind], argv[optind + 1], a.w, a.h);
    print_value(json, "psnr", "PSNR (RGB)", percept_psnr(&a, &b), "dB", 0);
    print_value(json, "psnr_y", "PSNR (Y, BT.601)", percept_psnr_y(&a, &b, border), "dB", 0);
    print_value(json, "ssim", "SSIM (gaussian, sigma 1.5)", ssim, "", 0);
    print_value(json, "ms_ssim", "MS-SSIM (5 scales)", ms, "", 0);
    print_value(json, "swd", "SWD x1000 (laplacian 7x7)", swd, "", 0);
    print_value(json, "mmd", "MMD (3x3 patches, sigma 0.6)", mmd, "", 1);
    if (json)
        printf("}\n");
    rc = 0;
out:
    free(a.data);
    free(b.data);
    gegl_exit();
    return rc;
}
