/* DeePSiM networks (Dosovitskiy & Brox 2016).
 * Discriminator (supplement, Table 1): convs 7×7/4, 5×5, 3×3/2, 3×3, 3×3/2 with 32, 64, 128,
 * 256, 256 channels (scaled by width/32), ReLU, global average pooling, dropout 0.5, fc 512,
 * dropout 0.5, and one logit instead of the paper's 2-way softmax (a sigmoid on one logit
 * is the same model and gives a numerically stable loss). Sized to the input: the first
 * stride is the largest of 4, 2, 1 that keeps the last feature map at least 1×1.
 * Autoencoder (Table 2): all-convolutional, LeakyReLU α = 0.3, up-convolutions as
 * transposed 4×4 convs with stride 2 (bed-of-nails upsampling + conv), linear output; the
 * code is a `code`-channel map 8× smaller than the image. Optional VAE (mean and
 * log-variance channels + reparameterisation) and Ridgeway's binary code (tanh, then sign). */
#include <stdio.h>

#include "arch-build.h"
#include "percept/percept.h"

/* side of the last map for an input side and first stride (valid convolutions) */
static int discriminator_last_side(int size, int stride)
{
    int a = (size - 7) / stride + 1, b = a - 4, c = (b - 3) / 2 + 1, d = c - 2;
    return size < 7 || b < 3 || d < 3 ? 0 : (d - 3) / 2 + 1;
}

char *percept_arch_deepsim_discriminator(const PerceptDiscriminatorOpts *o)
{
    int w = o->width, stride = 0;
    for (int s = 4; s >= 1 && !stride; s /= 2)
        if (discriminator_last_side(o->size, s) >= 1)
            stride = s;
    if (w < 1 || w > 1024 || o->size > 65536 || !stride) {
        percept_fail("DeePSiM discriminator: width must be 1..1024 and the input at least 21 "
                     "pixels (got width %d, size %d)", w, o->size);
        return NULL;
    }
    static const int mult[5] = {1, 2, 4, 8, 8}, k[5] = {7, 5, 3, 3, 3}, st[5] = {0, 1, 2, 1, 2};
    ArchBuilder ab;
    char name[64];
    snprintf(name, sizeof name, "deepsim-discriminator-%d-w%d", o->size, w);
    if (ab_init(&ab, name, 3))
        return NULL;
    int cin = 3;
    for (int i = 0; i < 5; i++) {
        snprintf(name, sizeof name, "conv%d", i + 1);
        ab_conv(&ab, name, NULL, cin, w * mult[i], k[i], i ? st[i] : stride, 0, 0);
        snprintf(name, sizeof name, "relu%d", i + 1);
        ab_node(&ab, name, "relu", NULL);
        cin = w * mult[i];
    }
    ab_node(&ab, "pool", "global_avg_pool", NULL);
    ab_node(&ab, "drop1", "dropout", NULL);
    cJSON *fc = ab_node(&ab, "fc1", "linear", NULL);
    ab_int(&ab, fc, "fin", cin);
    ab_int(&ab, fc, "fout", 16 * w);
    ab_node(&ab, "relu6", "relu", NULL);
    ab_node(&ab, "drop2", "dropout", NULL);
    fc = ab_node(&ab, "fc2", "linear", NULL);
    ab_int(&ab, fc, "fin", 16 * w);
    ab_int(&ab, fc, "fout", 1);
    return ab_finish(&ab, NULL);
}

typedef struct { int up, cout, k, stride; } Layer; /* cout in units of width/32 ×8 */

static void lrelu(ArchBuilder *ab, const char *prefix, int i)
{
    char name[64];
    snprintf(name, sizeof name, "%s.%d.act", prefix, i);
    ab_num(ab, ab_node(ab, name, "leaky_relu", NULL), "alpha", 0.3);
}

char *percept_arch_deepsim_autoencoder(const PerceptAutoencoderOpts *o)
{
    const int w = o->width;
    if (w < 1 || w > 1024 || o->code < 1 || o->code > 4096 || o->size < 8 || o->size % 8 ||
        (o->variational && o->binary)) {
        percept_fail("DeePSiM autoencoder: width 1..1024, code 1..4096 channels, size a "
                     "multiple of 8, and not both VAE and binary");
        return NULL;
    }
    /* Table 2 with channels in units of width/32 (so width 32 gives the paper's numbers) */
    static const Layer enc[] = {{0, 32, 5, 2}, {0, 32, 3, 1}, {0, 64, 5, 2}, {0, 64, 3, 1},
                                {0, 128, 3, 2}, {0, 128, 3, 1}, {0, 64, 3, 1}};
    static const Layer dec[] = {{0, 64, 3, 1}, {0, 128, 3, 1}, {1, 64, 4, 2}, {0, 64, 3, 1},
                                {1, 32, 4, 2}, {0, 32, 3, 1}, {1, 16, 4, 2}};
    ArchBuilder ab;
    char name[64];
    snprintf(name, sizeof name, "deepsim-autoencoder-w%d-c%d%s", w, o->code,
             o->variational ? "-vae" : o->binary ? "-binary" : "");
    if (ab_init(&ab, name, 3))
        return NULL;
    int cin = 3;
    for (int i = 0; i < 7; i++) {
        int cout = enc[i].cout * w / 32 > 0 ? enc[i].cout * w / 32 : 1;
        snprintf(name, sizeof name, "enc.%d", i);
        ab_conv(&ab, name, NULL, cin, cout, enc[i].k, enc[i].stride, enc[i].k / 2, 0);
        lrelu(&ab, "enc", i);
        cin = cout;
    }
    ab_conv(&ab, "enc.code", NULL, cin, o->variational ? 2 * o->code : o->code, 3, 1, 1, 0);
    if (o->variational) {
        ab_node(&ab, "sample", "reparam", NULL);
    } else if (o->binary) {
        ab_node(&ab, "code.tanh", "tanh", NULL);
        ab_node(&ab, "code.binary", "binary", NULL);
    }
    cin = o->code;
    for (int i = 0; i < 7; i++) {
        int cout = dec[i].cout * w / 32 > 0 ? dec[i].cout * w / 32 : 1;
        snprintf(name, sizeof name, "dec.%d", i);
        if (dec[i].up) {
            cJSON *n = ab_node(&ab, name, "conv_transpose2d", NULL);
            ab_int(&ab, n, "cin", cin);
            ab_int(&ab, n, "cout", cout);
            ab_int(&ab, n, "k", 4);
            ab_int(&ab, n, "pad", 1);
        } else {
            ab_conv(&ab, name, NULL, cin, cout, dec[i].k, 1, dec[i].k / 2, 0);
        }
        lrelu(&ab, "dec", i);
        cin = cout;
    }
    ab_conv(&ab, "dec.out", NULL, cin, 3, 3, 1, 1, 0); /* linear output, as in the paper */
    return ab_finish(&ab, NULL);
}
