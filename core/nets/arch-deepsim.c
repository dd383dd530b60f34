/* DeePSiM networks (Dosovitskiy & Brox 2016).
 *
 * Discriminator (paper Table 1 for 64×64 inputs, supplement Table 1 for 227×227): valid
 * (unpadded) convs 7×7, 5×5, 3×3/2, 3×3, 3×3/2 with 32, 64, 128, 256, 256 channels (scaled
 * by width/32), ReLU, global average pooling (the paper's pool over the whole last map),
 * dropout 0.5, fc 512, ReLU, dropout 0.5, and ONE logit where the paper has fc 2 + 2-way
 * softmax: a sigmoid on one logit is the same model (softmax over two logits depends only
 * on their difference) and the loss on a logit is computed as a numerically stable softplus.
 * Sized to the input by the first conv's stride: the paper uses 2 at 64×64 (last map 4×4)
 * and 4 for 227×227 ImageNet crops (last map 11×11). Rule: the largest of 4, 2, 1 that
 * leaves a last feature map of at least 4×4, else (inputs under 31 pixels) the largest that
 * leaves at least 1×1. So: stride 1 for 21..58 pixels, 2 for 59..110, 4 from 111 on;
 * 20 pixels and less are refused.
 *
 * Autoencoder (paper Table 2, 64×64 STL-10 crops): all layers convolutional or
 * up-convolutional, LeakyReLU α = 0.3. Encoder 5×5/2 32, 3×3 32, 5×5/2 64, 3×3 64,
 * 3×3/2 128, 3×3 128, 3×3 64, 3×3 8 (the code: an 8-channel map 8× smaller than the
 * image); decoder 3×3 64, 3×3 128, up 4×4/2 64, 3×3 64, up 4×4/2 32, 3×3 32, up 4×4/2 16,
 * 3×3 3. Channels scale with width/32 (the code's with `code`); any size that is a multiple
 * of 8 works (the net is fully convolutional). An up-convolution is the paper's 'bed of
 * nails' ×2 upsampling followed by a 4×4 conv, i.e. a transposed 4×4 conv with stride 2
 * and padding 1. Departure: the paper's generators have linear outputs; ours ends in
 * scaled_tanh (0.5 tanh + 0.5) so reconstructions are valid 0..1 images for the losses
 * and for saving. The code conv ("enc.code") has no activation; variational: it outputs
 * 2·code channels (mu, then log-variance) and "enc.sample" (reparam) draws the code;
 * binary (Ridgeway et al. 2015, after Krizhevsky & Hinton): tanh, then a threshold to
 * ±1 with the straight-through gradient. */
#include <stdio.h>

#include "arch-build.h"
#include "percept/percept.h"

/* side of the last map for an input side and first stride (valid convolutions); 0 when a
 * layer would get an empty map */
static int discriminator_last_side(int size, int stride)
{
    if (size < 7)
        return 0;
    int a = (size - 7) / stride + 1, b = a - 4, c = (b - 3) / 2 + 1, d = c - 2;
    return b < 3 || d < 3 ? 0 : (d - 3) / 2 + 1;
}

char *percept_arch_deepsim_discriminator(const PerceptDiscriminatorOpts *o)
{
    if (!o) {
        percept_fail("DeePSiM discriminator: no options");
        return NULL;
    }
    const int w = o->width;
    if (w < 1 || w > 1024) {
        percept_fail("DeePSiM discriminator: width must be 1..1024 (got %d)", w);
        return NULL;
    }
    int stride = 0;
    for (int s = 4; s >= 1 && !stride; s /= 2)
        if (o->size <= 65536 && discriminator_last_side(o->size, s) >= 4)
            stride = s;
    for (int s = 4; s >= 1 && !stride; s /= 2)
        if (o->size <= 65536 && discriminator_last_side(o->size, s) >= 1)
            stride = s;
    if (!stride) {
        percept_fail("DeePSiM discriminator: the input must be 21..65536 pixels (got %d)",
                     o->size);
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
    ab_num(&ab, ab_node(&ab, "drop1", "dropout", NULL), "p", 0.5);
    cJSON *fc = ab_node(&ab, "fc1", "linear", NULL);
    ab_int(&ab, fc, "fin", cin);
    ab_int(&ab, fc, "fout", 16 * w);
    ab_node(&ab, "relu6", "relu", NULL);
    ab_num(&ab, ab_node(&ab, "drop2", "dropout", NULL), "p", 0.5);
    fc = ab_node(&ab, "fc2", "linear", NULL);
    ab_int(&ab, fc, "fin", 16 * w);
    ab_int(&ab, fc, "fout", 1);
    return ab_finish(&ab, NULL);
}

typedef struct { int up, cout, k, stride; } Layer; /* cout at width 32 */

static void lrelu(ArchBuilder *ab, const char *prefix, int i)
{
    char name[64];
    snprintf(name, sizeof name, "%s.%d.act", prefix, i);
    ab_num(ab, ab_node(ab, name, "leaky_relu", NULL), "alpha", 0.3);
}

char *percept_arch_deepsim_autoencoder(const PerceptAutoencoderOpts *o)
{
    if (!o) {
        percept_fail("DeePSiM autoencoder: no options");
        return NULL;
    }
    const int w = o->width;
    if (w < 1 || w > 1024) {
        percept_fail("DeePSiM autoencoder: width must be 1..1024 (got %d)", w);
        return NULL;
    }
    if (o->code < 1 || o->code > 4096) {
        percept_fail("DeePSiM autoencoder: code must be 1..4096 channels (got %d)", o->code);
        return NULL;
    }
    if (o->size < 8 || o->size > 65536 || o->size % 8) {
        percept_fail("DeePSiM autoencoder: size must be a multiple of 8 in 8..65536 (got %d)",
                     o->size);
        return NULL;
    }
    if (o->variational && o->binary) {
        percept_fail("DeePSiM autoencoder: variational and binary codes exclude each other");
        return NULL;
    }
    /* Table 2, channels at width 32 */
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
        ab_node(&ab, "enc.sample", "reparam", NULL);
    } else if (o->binary) {
        ab_node(&ab, "enc.tanh", "tanh", NULL);
        ab_node(&ab, "enc.binary", "binary", NULL);
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
            ab_int(&ab, n, "stride", 2);
            ab_int(&ab, n, "pad", 1);
        } else {
            ab_conv(&ab, name, NULL, cin, cout, dec[i].k, 1, dec[i].k / 2, 0);
        }
        lrelu(&ab, "dec", i);
        cin = cout;
    }
    ab_conv(&ab, "dec.7", NULL, cin, 3, 3, 1, 1, 0);
    ab_node(&ab, "dec.out", "scaled_tanh", NULL); /* 0.5 tanh + 0.5: a 0..1 image */
    return ab_finish(&ab, NULL);
}
