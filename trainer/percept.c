/* percept: the command-line tool. Subcommands live in their own files as they grow
 * (train, compare, ...); this file dispatches and holds the small ones. */
#include <errno.h>
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "percept/percept.h"

const char percept_usage[] =
    "Usage: percept COMMAND [OPTIONS]\n"
    "\n"
    "Perceptual-loss networks for GEGL and GIMP.\n"
    "\n"
    "Commands:\n"
    "  info FILE.safetensors [--size WxH] [--full]\n"
    "        Print a weight file's task, architecture, parameter count, receptive field\n"
    "        and metadata. --size picks the input size of the layer table (256x256);\n"
    "        --full prints long metadata (the recipe, the data manifest) whole.\n"
    "  init KIND OUT.safetensors [--seed N] [--fp16] [kind options]\n"
    "        Write a network with freshly initialised (untrained) weights.\n"
    "        KIND: johnson     Johnson et al. style network (--base 32 --blocks 5\n"
    "                          [--input-255]: 0..255 inside, as pytorch/examples nets)\n"
    "              sr          Johnson super-resolution net (--scale 4 --channels 64 --blocks 4)\n"
    "              sr-shuffle  low-resolution SR net ending in pixel shuffle (same options)\n"
    "              restore     restoration net: the sr-shuffle body at scale 1, added to its\n"
    "                          input (--channels 64 --blocks 4)\n"
    "              restore-half  the same with its blocks at half resolution\n"
    "              discriminator  DeePSiM discriminator (--size 64 --base 32)\n"
    "              autoencoder    DeePSiM autoencoder (--size 64 --base 32 --code 8\n"
    "                             [--vae] [--binary])\n"
    "              vgg16       VGG-16 features (--layer relu5_3), torchvision names\n"
    "  arch KIND [kind options]\n"
    "        Print the architecture JSON that init would write.\n"
    "  train upscale [--recipe FILE.ini] [--resume] [--KEY VALUE ...]\n"
    "        Train a super-resolution network on a directory of images; see\n"
    "        'percept train --help' and presets/recipes/.\n"
    "  eval MODEL.safetensors DIR [--degrade SPEC] [--self-ensemble] [--json]\n"
    "        An upscale model against bicubic and GEGL's cubic, nohalo and lohalo, or a\n"
    "        reconstruct model against the degraded input and GEGL's denoisers, on the\n"
    "        images of DIR degraded as the model's recipe degraded its training images\n"
    "        (or by SPEC: blur:SIGMA, bicubic, noise:SIGMA, jpeg:QUALITY): PSNR and SSIM\n"
    "        on Y, SWD. --self-ensemble adds the model's mean over the image's 8\n"
    "        orientations (the operations' self-ensemble property).\n"
    "  score CLEAN_DIR RESULT_DIR [--scale N] [--name NAME] [--json]\n"
    "        Another program's results scored as eval scores its methods: each image of\n"
    "        CLEAN_DIR (cropped to multiples of N) against RESULT_DIR's file of the same\n"
    "        name; the mean PSNR and SSIM on Y (N border pixels cropped) and SWD, as a row\n"
    "        of eval's table. Make the inputs with degrade.\n"
    "  degrade IN OUT --degrade SPEC [--scale 1|2|4|8] [--seed S]\n"
    "        IN degraded as training degrades its images (noise:SIGMA, jpeg:QUALITY,\n"
    "        blur:SIGMA; with --scale, blurred and reduced by bicubic): to see what a\n"
    "        network learnt from, or to make inputs to try it on.\n"
    "  optimize --content IMG --style IMG [--out OUT.png] [--iterations 300] [--size 256]\n"
    "           [--losses SPEC] [--lr 0.02] [--init noise|content] [--every 10]\n"
    "        Gatys et al.'s baseline: the pixels optimised directly (Adam, kept in 0..1) for\n"
    "        the style objective, reported every N iterations.\n"
    "  eval-style MODEL --images DIR [--style IMG] [--iterations 50,100,300] [--size 256]\n"
    "        Johnson et al.'s Fig. 5: a style network's objective on the images against\n"
    "        that many iterations of optimize (losses and style from the model's recipe).\n"
    "  compare A B [--json] [--border N]\n"
    "        Image quality metrics between two images of the same size, any format GEGL\n"
    "        loads: PSNR (RGB and on Y, N border pixels cropped), SSIM, MS-SSIM, SWD, MMD.\n"
    "\n"
    "Options:\n"
    "  -h, --help     show this help and exit\n"
    "  -V, --version  show the version and exit\n"
    "\n"
    "Documentation: docs/ in the source tree; the weight format is docs/arch-format.md.\n";

static int fail_usage(const char *msg)
{
    fprintf(stderr, "percept: %s\nTry 'percept --help'.\n", msg);
    return 2;
}

/* ---- info ----------------------------------------------------------------------------- */

static int parse_size(const char *s, int *w, int *h)
{
    char *end;
    long a = strtol(s, &end, 10), b;
    if (*end == 'x' || *end == 'X')
        b = strtol(end + 1, &end, 10);
    else
        b = a;
    if (*end || a < 1 || b < 1 || a > 65536 || b > 65536)
        return -1;
    *w = (int)a;
    *h = (int)b;
    return 0;
}

static void print_metadata(const PerceptSafetensors *st, int full)
{
    int shown = 0;
    for (int i = 0; i < st->n_meta; i++) {
        const char *k = st->meta[i].key, *v = st->meta[i].value;
        if (!strcmp(k, "percept.arch"))
            continue;
        if (!shown++)
            printf("Metadata:\n");
        int len = (int)strcspn(v, "\n");
        if (full) {
            /* whole: a value of several lines (a recipe) starts on the next, indented */
            if (v[len]) {
                printf("  %s\n", k);
                for (const char *line = v; *line; line += len + !!line[len]) {
                    len = (int)strcspn(line, "\n");
                    printf("%s%.*s\n", len ? "    " : "", len, line);
                }
            } else {
                printf("  %-22s %s\n", k, v);
            }
            continue;
        }
        /* long values (recipes) are shown on one line, cut, so the table stays readable */
        printf("  %-22s %.*s%s\n", k, len > 100 ? 100 : len, v,
               len > 100 || v[len] ? " …" : "");
    }
}

static int cmd_info(int argc, char **argv)
{
    int w = 256, h = 256, full = 0;
    static const struct option opts[] = {{"size", required_argument, 0, 's'},
                                         {"full", no_argument, 0, 'f'},
                                         {"help", no_argument, 0, 'h'},
                                         {0, 0, 0, 0}};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "s:fh", opts, NULL)) != -1) {
        full |= c == 'f';
        if (c == 's' && parse_size(optarg, &w, &h))
            return fail_usage("--size expects WxH, e.g. 512x512");
        if (c == 'h') {
            fputs(percept_usage, stdout);
            return 0;
        }
        if (c == '?')
            return 2;
    }
    if (optind != argc - 1)
        return fail_usage("info needs exactly one weight file");
    const char *path = argv[optind];
    PerceptSafetensors *st = percept_st_read(path);
    if (!st) {
        fprintf(stderr, "percept: %s\n", percept_error());
        return 1;
    }
    const char *arch = percept_st_meta(st, "percept.arch");
    if (!arch) {
        fprintf(stderr, "percept: %s: no percept.arch in the metadata (not a percept weight "
                        "file?)\n", path);
        percept_st_free(st);
        return 1;
    }
    PerceptNet *net = percept_net_from_safetensors(st, arch);
    if (!net) {
        fprintf(stderr, "percept: %s: %s\n", path, percept_error());
        percept_st_free(st);
        return 1;
    }
    const char *task = percept_st_meta(st, "percept.task");
    const char *scale = percept_st_meta(st, "percept.scale");
    int half = 0;
    for (int i = 0; i < st->n_tensors; i++)
        half += st->tensors[i].dtype == PERCEPT_DTYPE_F16;
    int rf = percept_net_receptive_field(net);
    int oc, oh, ow;
    printf("File:             %s\n", path);
    printf("Network:          %s\n", percept_net_name(net));
    printf("Task:             %s%s%s\n", task ? task : "(not given)", scale ? ", scale ×" : "",
           scale ? scale : "");
    printf("Parameters:       %zu (%d tensors, %s)\n", percept_net_param_count(net),
           st->n_tensors, half == st->n_tensors && half ? "F16" : half ? "F32+F16" : "F32");
    if (rf > 0)
        printf("Receptive field:  %d px\n", rf);
    else
        printf("Receptive field:  whole image (global pooling or fully connected layers)\n");
    printf("Input channels:   %d\n", percept_net_input_channels(net));
    printf("Device:           %s (PERCEPT_DEVICE: cpu, cuda or auto)\n", percept_net_device(net));
    if (percept_net_output_shape(net, 1, h, w, &oc, &oh, &ow) == 0)
        printf("Output for %dx%d: %dx%d, %d channels\n", w, h, ow, oh, oc);
    print_metadata(st, full);
    char *summary = percept_net_summary(net, h, w);
    if (summary) {
        printf("Layers (output W×H×C and parameters for a %dx%d input):\n%s", w, h, summary);
        free(summary);
    } else {
        printf("Layers: not shown for a %dx%d input: %s\n", w, h, percept_error());
    }
    percept_net_free(net);
    percept_st_free(st);
    return 0;
}

/* ---- init / arch -------------------------------------------------------------------- */

typedef struct {
    int base, blocks, scale, channels, size, code, vae, binary, fp16, input_255;
    uint64_t seed;
    const char *layer;
} InitOptions;

static char *build_arch(const char *kind, const InitOptions *o, const char **task)
{
    *task = "";
    if (!strcmp(kind, "johnson")) {
        *task = "stylize";
        return percept_arch_johnson(&(PerceptJohnsonOpts){o->base ? o->base : 32,
                                                          o->blocks >= 0 ? o->blocks : 5,
                                                          o->input_255});
    }
    if (!strcmp(kind, "sr") || !strcmp(kind, "sr-shuffle")) {
        *task = "upscale";
        return percept_arch_sr(&(PerceptSrOpts){
            strcmp(kind, "sr") ? PERCEPT_SR_SHUFFLE : PERCEPT_SR_JOHNSON, o->scale,
            o->channels ? o->channels : 64, o->blocks >= 0 ? o->blocks : 4, 0, 0, 0});
    }
    if (!strcmp(kind, "restore") || !strcmp(kind, "restore-half")) {
        *task = "reconstruct";
        return percept_arch_restore(&(PerceptRestoreOpts){o->channels ? o->channels : 64,
                                                          o->blocks >= 0 ? o->blocks : 4, 0,
                                                          !strcmp(kind, "restore-half"), 0, 0, 0});
    }
    if (!strcmp(kind, "discriminator")) {
        *task = "discriminator";
        return percept_arch_deepsim_discriminator(
            &(PerceptDiscriminatorOpts){o->size ? o->size : 64, o->base ? o->base : 32});
    }
    if (!strcmp(kind, "autoencoder")) {
        *task = "autoencoder";
        return percept_arch_deepsim_autoencoder(&(PerceptAutoencoderOpts){
            o->size ? o->size : 64, o->base ? o->base : 32, o->code ? o->code : 8, o->vae,
            o->binary});
    }
    if (!strcmp(kind, "vgg16")) {
        *task = "loss";
        return percept_arch_vgg16(o->layer ? o->layer : "relu5_3");
    }
    percept_fail("unknown network kind '%s' (johnson, sr, sr-shuffle, restore, restore-half, discriminator, "
                 "autoencoder, vgg16)", kind);
    return NULL;
}

static int parse_int_arg(const char *s, int lo, int hi, int *out)
{
    char *end;
    errno = 0;
    long v = strtol(s, &end, 10);
    if (errno || *end || v < lo || v > hi)
        return -1;
    *out = (int)v;
    return 0;
}

static int cmd_init(int argc, char **argv, int print_only)
{
    InitOptions o = {.blocks = -1, .scale = 4, .seed = 1};
    static const struct option opts[] = {
        {"base", required_argument, 0, 'b'},   {"blocks", required_argument, 0, 'B'},
        {"scale", required_argument, 0, 'x'},  {"channels", required_argument, 0, 'c'},
        {"size", required_argument, 0, 's'},   {"code", required_argument, 0, 'C'},
        {"vae", no_argument, 0, 'v'},          {"binary", no_argument, 0, 'y'},
        {"layer", required_argument, 0, 'l'},  {"seed", required_argument, 0, 'S'},
        {"fp16", no_argument, 0, 'f'},         {"input-255", no_argument, 0, 'I'},
        {"help", no_argument, 0, 'h'},
        {0, 0, 0, 0}};
    int c, bad = 0;
    optind = 1;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'b': bad |= parse_int_arg(optarg, 1, 4096, &o.base); break;
        case 'B': bad |= parse_int_arg(optarg, 0, 256, &o.blocks); break;
        case 'x': bad |= parse_int_arg(optarg, 1, 16, &o.scale); break;
        case 'c': bad |= parse_int_arg(optarg, 1, 4096, &o.channels); break;
        case 's': bad |= parse_int_arg(optarg, 1, 65536, &o.size); break;
        case 'C': bad |= parse_int_arg(optarg, 1, 1 << 20, &o.code); break;
        case 'v': o.vae = 1; break;
        case 'y': o.binary = 1; break;
        case 'l': o.layer = optarg; break;
        case 'S': o.seed = strtoull(optarg, NULL, 10); break;
        case 'f': o.fp16 = 1; break;
        case 'I': o.input_255 = 1; break;
        case 'h': fputs(percept_usage, stdout); return 0;
        default: return 2;
        }
        if (bad)
            return fail_usage("a numeric option is out of range or not a number");
    }
    if (optind != argc - (print_only ? 1 : 2))
        return fail_usage(print_only ? "arch needs a network kind"
                                     : "init needs a network kind and an output file");
    const char *task;
    char *arch = build_arch(argv[optind], &o, &task);
    if (!arch) {
        fprintf(stderr, "percept: %s\n", percept_error());
        return 1;
    }
    if (print_only) {
        printf("%s\n", arch);
        free(arch);
        return 0;
    }
    PerceptNet *net = percept_net_from_arch(arch, o.seed);
    free(arch);
    if (!net) {
        fprintf(stderr, "percept: %s\n", percept_error());
        return 1;
    }
    char scale[16];
    snprintf(scale, sizeof scale, "%d", o.scale);
    PerceptStMeta meta[3] = {{"percept.task", (char *)task},
                             {"percept.description", "untrained: freshly initialised weights"},
                             {"percept.scale", scale}};
    int n_meta = !strcmp(task, "upscale") ? 3 : 2;
    const char *out = argv[optind + 1];
    int rc = percept_net_save(net, out, o.fp16 ? PERCEPT_DTYPE_F16 : PERCEPT_DTYPE_F32, meta,
                              n_meta);
    if (rc)
        fprintf(stderr, "percept: %s\n", percept_error());
    else
        printf("wrote %s: %s, %zu parameters (seed %llu)\n", out, percept_net_name(net),
               percept_net_param_count(net), (unsigned long long)o.seed);
    percept_net_free(net);
    return rc ? 1 : 0;
}

int main(int argc, char **argv)
{
    if (argc < 2)
        return fail_usage("no command given");
    const char *cmd = argv[1];
    if (!strcmp(cmd, "-h") || !strcmp(cmd, "--help") || !strcmp(cmd, "help")) {
        fputs(percept_usage, stdout);
        return 0;
    }
    if (!strcmp(cmd, "-V") || !strcmp(cmd, "--version")) {
        printf("percept %s\n", PERCEPT_VERSION);
        return 0;
    }
    if (!strcmp(cmd, "info"))
        return cmd_info(argc - 1, argv + 1);
    if (!strcmp(cmd, "init"))
        return cmd_init(argc - 1, argv + 1, 0);
    if (!strcmp(cmd, "arch"))
        return cmd_init(argc - 1, argv + 1, 1);
    /* train and eval read PPM images where there is no GEGL (the GPU machine); the rest
     * need GEGL's loaders, savers or operations */
    static const struct {
        const char *name;
        int (*run)(int, char **);
    } image_commands[] = {
#ifdef PERCEPT_HAVE_GEGL
        {"compare", cmd_compare},   {"optimize", cmd_optimize}, {"eval-style", cmd_eval_style},
        {"degrade", cmd_degrade},   {"score", cmd_score},
#else
        {"compare", NULL}, {"optimize", NULL}, {"eval-style", NULL}, {"degrade", NULL},
        {"score", NULL},
#endif
#ifdef PERCEPT_HAVE_TRAINER
        {"train", cmd_train}, {"eval", cmd_eval},
#else
        {"train", NULL}, {"eval", NULL},
#endif
    };
    for (size_t i = 0; i < sizeof image_commands / sizeof *image_commands; i++) {
        if (strcmp(cmd, image_commands[i].name))
            continue;
        if (image_commands[i].run)
            return image_commands[i].run(argc - 1, argv + 1);
#ifdef PERCEPT_HAVE_TRAINER
        fprintf(stderr, "percept: this percept was built without GEGL, which %s needs "
                        "(install libgegl-dev and rebuild)\n", cmd);
#else
        fprintf(stderr, "percept: this percept was built without GLib, which %s needs "
                        "(install libglib2.0-dev and rebuild)\n", cmd);
#endif
        return 1;
    }
    char msg[256];
    snprintf(msg, sizeof msg, "unknown command '%.100s'", cmd);
    return fail_usage(msg);
}
