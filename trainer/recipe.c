/* Recipe files and their command-line overrides (see recipe.h). */
#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "percept/percept.h"
#include "evaluate.h"
#include "objective.h"
#include "recipe.h"

#define GROUP "train"

/* Every key, its default (as text), and what it means (for --help). */
static const struct {
    const char *key, *def;
} keys[] = {
    {"name", ""},           {"description", ""},   {"data", ""},
    {"out", ""},            {"arch", ""},          {"scale", ""},
    {"steps", "20000"},
    {"batch", "8"},         {"crop", ""},          {"lr", "0.001"},
    {"lr-final", ""},
    {"seed", "1"},          {"losses", ""},        {"degrade", ""},
    {"validate-every", "500"}, {"checkpoint-every", "500"}, {"val-images", "16"},
    {"val-fraction", "0.1"}, {"max-megapixels", "2"}, {"fp16", "true"},
    {"style", ""},          {"style-size", "256"}, {"channels", ""}, {"blocks", ""},
    {"code", "8"},          {"discriminator-lr", "0.0002"}, {"tail-gain", "1"},
    {"block-gain", "1"},    {"init", ""},          {"center-input", "false"},
    {"upsample", "shuffle"},
};

const char recipe_keys_help[] =
    "Recipe keys (in the recipe's [train] group, or as --KEY VALUE, which wins):\n"
    "  data DIR            images, read recursively (any format GEGL loads)\n"
    "  out FILE            the trained .safetensors (checkpoints: FILE.ckpt, FILE.adam)\n"
    "  name, description   stored in the weight file\n"
    "  arch                upscale: sr-shuffle (low resolution + pixel shuffle, the default)\n"
    "                      or sr (Johnson's); reconstruct: restore or restore-half (its\n"
    "                      blocks at half resolution: twice the reach); stylize: johnson,\n"
    "                      restore or restore-half;\n"
    "                      autoencoder: autoencoder (DeePSiM Table 2), vae (its variational\n"
    "                      form: add kl=WEIGHT to the losses) or binary (Ridgeway's code)\n"
    "  scale 2|4|8 (upscale, default 4)  channels 64 (johnson, autoencoder: 32; the\n"
    "                      autoencoder's width)  blocks 4 (johnson: 5)  code 8 (autoencoder:\n"
    "                      channels of the code, ⅛ of the image's size)\n"
    "  tail-gain 1         sr-shuffle, restore: the last conv's initial weights × this (0.1:\n"
    "                      the residual starts near the skip path, training starts closer)\n"
    "  block-gain 1        sr-shuffle, restore: each residual block's second conv's initial\n"
    "                      weights × this (0.1: deep unnormalised bodies start near identity)\n"
    "  upsample shuffle    restore-half: back to full resolution by a pixel shuffle, or\n"
    "                      resize (nearest ×2 and a conv: no 2-pixel grid in style transfer)\n"
    "  init FILE           start from this weight file's parameters (fine-tuning; it must\n"
    "                      hold exactly the tensors of the recipe's network)\n"
    "  style IMAGE  style-size 256   stylize: the painting, its longer side in training\n"
    "  steps 20000  batch 8  crop 96 (stylize: 256, autoencoder: 64; high-resolution side, a\n"
    "                      multiple of scale)\n"
    "  lr 0.001 (Adam)  lr-final (default: lr) cosine decay to it over the steps  seed 1\n"
    "  losses \"l1=1;ssim=0.1\"  weighted sum of loss specs (docs/losses.md); default l1, for\n"
    "                      stylize feat:vgg16:relu2_2=1;style-mmd:sigma2:levels4=20;tv=1e-5;\n"
    "                      autoencoder mse. adv=W adds DeePSiM's adversarial loss (any task),\n"
    "                      kl=W the VAE's KL term\n"
    "  discriminator-lr 0.0002 (DeePSiM's; D pauses while Ldiscr/Ladv < 0.1)\n"
    "  degrade             upscale: blur:SIGMA (default blur:1.0, before bicubic downsampling,\n"
    "                      Johnson §4.2) or bicubic; reconstruct: noise:SIGMA, noise:LOW-HIGH\n"
    "                      (Gaussian, 0..255 units, σ drawn per crop; default noise:0-50),\n"
    "                      jpeg:QUALITY, jpeg:LOW-HIGH (libjpeg 4:2:0, quality 1..100 drawn\n"
    "                      per crop) or blur:SIGMA; stylize, autoencoder: none\n"
    "  validate-every 500  checkpoint-every 500  val-images 16  val-fraction 0.1\n"
    "  max-megapixels 2 (larger photos are halved until they fit)  fp16 true\n";

static int known(const char *key)
{
    for (size_t i = 0; i < G_N_ELEMENTS(keys); i++)
        if (!strcmp(keys[i].key, key))
            return 1;
    return 0;
}

/* The key's value, or "" when it has none GLib can read (bad escapes, invalid UTF-8: the
 * checks that follow then reject it). */
static char *get_string(const Recipe *r, const char *key)
{
    char *v = g_key_file_get_string(r->keys, GROUP, key, NULL);
    return v ? v : g_strdup("");
}

static int get_int(const Recipe *r, const char *key, int lo, int hi, int *out)
{
    char *v = g_key_file_get_string(r->keys, GROUP, key, NULL), *end;
    errno = 0;
    long x = strtol(v ? v : "", &end, 10);
    int bad = !v || !*v || *end || errno || x < lo || x > hi;
    if (bad)
        percept_fail("recipe: %s must be an integer from %d to %d, not '%s'", key, lo, hi,
                     v ? v : "");
    else
        *out = (int)x;
    g_free(v);
    return bad ? -1 : 0;
}

static int get_double(const Recipe *r, const char *key, double lo, double hi, double *out)
{
    char *v = g_key_file_get_string(r->keys, GROUP, key, NULL), *end;
    double x = g_ascii_strtod(v ? v : "", &end);
    int bad = !v || !*v || *end || !(x >= lo && x <= hi);
    if (bad)
        percept_fail("recipe: %s must be a number from %g to %g, not '%s'", key, lo, hi,
                     v ? v : "");
    else
        *out = x;
    g_free(v);
    return bad ? -1 : 0;
}


static int get_bool(Recipe *r, const char *key, int *out)
{
    char *v = get_string(r, key);
    int ok = !strcmp(v, "true") || !strcmp(v, "false");
    *out = !strcmp(v, "true");
    g_free(v);
    return ok ? 0 : percept_fail("recipe: %s must be true or false", key);
}

/* lr-final: empty means no decay (the learning rate stays lr). */
static int get_lr_final(Recipe *r)
{
    char *v = get_string(r, "lr-final");
    int empty = !v || !*v;
    g_free(v);
    if (empty) {
        r->lr_final = r->lr;
        return 0;
    }
    return get_double(r, "lr-final", 0.0, 1.0, &r->lr_final);
}

/* Everything after reading the file: unknown keys, defaults, flags, values. */
static int recipe_apply(Recipe *r, const char *path, int argc, char **argv);

int recipe_load(Recipe *r, const char *path, int argc, char **argv)
{
    memset(r, 0, sizeof *r);
    r->keys = g_key_file_new();
    GError *err = NULL;
    if (path && !g_key_file_load_from_file(r->keys, path, G_KEY_FILE_KEEP_COMMENTS, &err)) {
        percept_fail("recipe %s: %s", path, err->message);
        g_error_free(err);
        return -1;
    }
    return recipe_apply(r, path, argc, argv);
}

int recipe_load_data(Recipe *r, const char *data, size_t len, const char *name, int argc,
                     char **argv)
{
    memset(r, 0, sizeof *r);
    r->keys = g_key_file_new();
    GError *err = NULL;
    if (!g_key_file_load_from_data(r->keys, data, len, G_KEY_FILE_KEEP_COMMENTS, &err)) {
        percept_fail("recipe %s: %s", name, err->message);
        g_error_free(err);
        return -1;
    }
    return recipe_apply(r, name, argc, argv);
}

static int recipe_apply(Recipe *r, const char *path, int argc, char **argv)
{
    if (path) { /* every key it sets must be one we know */
        char **present = g_key_file_get_keys(r->keys, GROUP, NULL, NULL);
        for (char **k = present; k && *k; k++)
            if (!known(*k)) {
                percept_fail("recipe %s: unknown key '%s' (see percept train --help)", path, *k);
                g_strfreev(present);
                return -1;
            }
        g_strfreev(present);
    }
    for (size_t i = 0; i < G_N_ELEMENTS(keys); i++)
        if (!g_key_file_has_key(r->keys, GROUP, keys[i].key, NULL))
            g_key_file_set_string(r->keys, GROUP, keys[i].key, keys[i].def);
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        if (strncmp(a, "--", 2) || !known(a + 2))
            return percept_fail("unknown option '%s' (see percept train --help)", a);
        if (i + 1 >= argc)
            return percept_fail("option '%s' needs a value", a);
        g_key_file_set_string(r->keys, GROUP, a + 2, argv[++i]);
    }
    r->task = g_strdup(argv[0]);
    g_key_file_set_string(r->keys, GROUP, "task", r->task);
    const int upscale = !strcmp(r->task, "upscale");
    /* the defaults that depend on the task */
    const int stylize = !strcmp(r->task, "stylize"), autoencoder = !strcmp(r->task, "autoencoder");
    const int column = upscale ? 1 : stylize ? 3 : autoencoder ? 4 : 2;
    static const char *const by_task[][5] = {
        /* key        upscale       reconstruct    stylize (Johnson et al.'s recipe), autoencoder
         * (DeePSiM's 64² crops) */
        {"arch",     "sr-shuffle", "restore",     "johnson", "autoencoder"},
        {"scale",    "4",          "1",           "1",       "1"},
        {"channels", "64",         "64",          "32",      "32"},
        {"blocks",   "4",          "4",           "5",       "0"},
        {"crop",     "96",         "96",          "256",     "64"},
        {"degrade",  "blur:1.0",   "noise:0-50",  "none",    "none"},
        {"losses",   "l1",         "l1",
         OBJECTIVE_STYLIZE_DEFAULT, "mse"},
    };
    for (size_t i = 0; i < G_N_ELEMENTS(by_task); i++) {
        char *v = get_string(r, by_task[i][0]);
        if (!v || !*v)
            g_key_file_set_string(r->keys, GROUP, by_task[i][0], by_task[i][column]);
        g_free(v);
    }
    int seed;
    if (get_int(r, "scale", upscale ? 2 : 1, upscale ? 8 : 1, &r->scale) || get_int(r, "channels", 1, 1024, &r->channels) ||
        get_int(r, "blocks", 0, 64, &r->blocks) || get_int(r, "steps", 1, 100000000, &r->steps) ||
        get_int(r, "batch", 1, 1024, &r->batch) || get_int(r, "crop", 8, 4096, &r->crop) ||
        get_double(r, "lr", 1e-8, 1.0, &r->lr) || get_int(r, "seed", 0, 2147483647, &seed) ||
        get_lr_final(r) ||
        get_int(r, "validate-every", 0, 100000000, &r->validate_every) ||
        get_int(r, "checkpoint-every", 0, 100000000, &r->checkpoint_every) ||
        get_int(r, "val-images", 0, 10000, &r->val_images) ||
        get_double(r, "val-fraction", 0.0, 0.5, &r->val_fraction) ||
        get_double(r, "max-megapixels", 0.0, 1000.0, &r->max_megapixels) ||
        get_int(r, "style-size", 16, 4096, &r->style_size) ||
        get_int(r, "code", 1, 4096, &r->code) ||
        get_double(r, "discriminator-lr", 1e-8, 1.0, &r->discriminator_lr) ||
        get_double(r, "tail-gain", 1e-6, 100.0, &r->tail_gain) ||
        get_double(r, "block-gain", 1e-6, 100.0, &r->block_gain))
        return -1;
    r->seed = (uint64_t)seed;
    if (upscale && r->scale != 2 && r->scale != 4 && r->scale != 8)
        return percept_fail("recipe: scale must be 2, 4 or 8, not %d", r->scale);
    if (r->crop % r->scale)
        return percept_fail("recipe: crop %d is not a multiple of scale %d", r->crop, r->scale);
    r->arch = get_string(r, "arch");
    /* the architectures each task can train, by column as by_task */
    static const char *const archs[] = {NULL, "sr sr-shuffle", "restore restore-half",
                                        "johnson restore restore-half", "autoencoder vae binary"};
    char **allowed = g_strsplit(archs[column], " ", -1);
    const int known_arch = g_strv_contains((const char *const *)allowed, r->arch);
    g_strfreev(allowed);
    if (!known_arch)
        return percept_fail("recipe: arch for %s must be one of: %s (not '%s')", r->task,
                            archs[column], r->arch);
    r->upsample = get_string(r, "upsample");
    if (strcmp(r->upsample, "shuffle") && strcmp(r->upsample, "resize"))
        return percept_fail("recipe: upsample must be shuffle or resize, not '%s'", r->upsample);
    if (!strcmp(r->upsample, "resize") && strcmp(r->arch, "restore-half"))
        return percept_fail("recipe: upsample resize is for arch restore-half (not %s)", r->arch);
    if (!strcmp(r->arch, "restore-half") && (r->channels < 2 || r->crop % 2))
        return percept_fail("recipe: restore-half needs at least 2 channels and an even crop");
    if (autoencoder && r->crop % 8)
        return percept_fail("recipe: crop %d is not a multiple of 8 (the autoencoder's code is "
                            "⅛ of the image)", r->crop);
    r->degrade = get_string(r, "degrade");
    if (eval_check_degrade(upscale ? EVAL_UPSCALE : stylize ? EVAL_STYLIZE
                                       : autoencoder ? EVAL_AUTOENCODER : EVAL_RECONSTRUCT,
                           r->degrade))
        return percept_fail_prefix("recipe: ");
    r->losses = get_string(r, "losses");
    r->style = get_string(r, "style");
    r->init = get_string(r, "init");
    if (stylize && !*r->style)
        return percept_fail("no style image: give --style IMAGE (or style in the recipe)");
    if (get_bool(r, "fp16", &r->fp16) || get_bool(r, "center-input", &r->center_input))
        return -1;
    r->name = get_string(r, "name");
    r->description = get_string(r, "description");
    r->data = get_string(r, "data");
    r->out = get_string(r, "out");
    if (!*r->data)
        return percept_fail("no training data: give --data DIR (or data in the recipe)");
    if (!*r->out)
        return percept_fail("no output file: give --out FILE.safetensors (or out in the recipe)");
    return 0;
}

void recipe_free(Recipe *r)
{
    g_free(r->losses);
    g_free(r->task);
    g_free(r->name);
    g_free(r->description);
    g_free(r->data);
    g_free(r->out);
    g_free(r->arch);
    g_free(r->degrade);
    g_free(r->style);
    g_free(r->init);
    g_free(r->upsample);
    if (r->keys)
        g_key_file_free(r->keys);
    memset(r, 0, sizeof *r);
}

char *recipe_text(const Recipe *r)
{
    return g_key_file_to_data(r->keys, NULL, NULL);
}
