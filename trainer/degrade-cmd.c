/* percept degrade IN OUT --degrade SPEC [--scale N] [--seed S]: an image degraded exactly as
 * training and evaluation degrade their images (noise, JPEG, blur, blur + bicubic reduction),
 * to look at what a network was trained on or to make inputs to try it on. */
#include <gegl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "evaluate.h"
#include "images.h"

static int degrade_file(const char *in, const char *out, const char *spec, int scale,
                        uint64_t seed)
{
    EvalTask task = scale > 1 ? EVAL_UPSCALE : EVAL_RECONSTRUCT;
    if (eval_check_degrade(task, spec))
        return -1;
    PerceptTensor img, clean = {0};
    if (image_load_rgb(in, &img))
        return -1;
    int rc = eval_crop(&img, scale, &clean);
    if (rc)
        percept_fail_prefix("%s: ", in);
    PerceptTensor t = {1, 3, clean.h / scale, clean.w / scale,
                       rc ? NULL : malloc(sizeof(float) * 3 * (size_t)clean.h * clean.w)};
    if (!rc && !t.data)
        rc = percept_fail("out of memory");
    if (!rc)
        rc = eval_degrade(task, t.data, clean.data, clean.h, clean.w, scale, spec, seed, 0) ||
             image_save_rgb(out, &t, 0);
    free(clean.data);
    free(t.data);
    free(img.data);
    return rc;
}

int cmd_degrade(int argc, char **argv)
{
    const char *in = NULL, *out = NULL, *spec = NULL;
    int scale = 1;
    long long seed = 1;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--degrade") && i + 1 < argc)
            spec = argv[++i];
        else if (!strcmp(argv[i], "--scale") && i + 1 < argc)
            scale = atoi(argv[++i]);
        else if (!strcmp(argv[i], "--seed") && i + 1 < argc)
            seed = atoll(argv[++i]);
        else if (!in && argv[i][0] != '-')
            in = argv[i];
        else if (!out && argv[i][0] != '-')
            out = argv[i];
        else
            in = NULL, i = argc;
    }
    if (!in || !out || !spec || (scale != 1 && scale != 2 && scale != 4 && scale != 8)) {
        fprintf(stderr, "percept: degrade needs IN OUT --degrade SPEC [--scale 1|2|4|8] "
                        "[--seed S]\nTry 'percept --help'.\n");
        return 2;
    }
    gegl_init(NULL, NULL);
    int rc = degrade_file(in, out, spec, scale, (uint64_t)seed);
    if (rc)
        fprintf(stderr, "percept degrade: %s\n", percept_error());
    gegl_exit();
    return rc ? 1 : 0;
}
