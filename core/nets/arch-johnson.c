/* Johnson et al.'s style network with the module names of pytorch/examples'
 * fast_neural_style TransformerNet, so its state_dict converts by copying tensors:
 * reflection-padded convolutions (pad k/2), affine instance norm (eps 1e-5, the format's
 * defaults), residual blocks without a ReLU after the sum, and nearest upsampling ×2 +
 * convolution instead of fractional-stride convolution (no checkerboard artefacts).
 * Non-parameter nodes get names of their own (relu1, res1.relu, res1.add,
 * deconv1.upsample, ...). With input_255 the network works on 0..255 as those checkpoints
 * expect: scale_in multiplies the 0..1 input by 255, scale_out divides the result by 255
 * and is the output. tools/convert-fast-neural-style.py builds the same JSON in Python
 * (and with --percept checks it against `percept arch johnson --input-255`). */
#include <stdio.h>

#include "arch-build.h"
#include "percept/percept.h"

static void conv_in_relu(ArchBuilder *ab, const char *conv, const char *norm, const char *relu,
                         int cin, int cout, int k, int stride)
{
    char name[64];
    snprintf(name, sizeof name, "%.48s.conv2d", conv);
    ab_conv(ab, name, NULL, cin, cout, k, stride, k / 2, 1);
    ab_int(ab, ab_node(ab, norm, "instance_norm", NULL), "c", cout);
    if (relu)
        ab_node(ab, relu, "relu", NULL);
}

char *percept_arch_johnson(const PerceptJohnsonOpts *o)
{
    if (!o) {
        percept_fail("Johnson net: no options");
        return NULL;
    }
    const int b = o->base;
    if (b < 1 || b > 1024 || o->res_blocks < 0 || o->res_blocks > 64) {
        percept_fail("Johnson net: base width must be 1..1024 and residual blocks 0..64 "
                     "(got base %d, %d blocks)", b, o->res_blocks);
        return NULL;
    }
    ArchBuilder ab;
    char name[64], block_in[64], a[64], c[64];
    snprintf(name, sizeof name, "johnson-b%d-r%d", b, o->res_blocks);
    if (ab_init(&ab, name, 3))
        return NULL;
    if (o->input_255) {
        /* pytorch/examples networks work on 0..255 images */
        cJSON *n = ab_node(&ab, "scale_in", "channel_affine", NULL);
        ab_num(&ab, n, "scale", 255.0);
        ab_num(&ab, n, "shift", 0.0);
    }
    conv_in_relu(&ab, "conv1", "in1", "relu1", 3, b, 9, 1);
    conv_in_relu(&ab, "conv2", "in2", "relu2", b, 2 * b, 3, 2);
    conv_in_relu(&ab, "conv3", "in3", "relu3", 2 * b, 4 * b, 3, 2);
    snprintf(block_in, sizeof block_in, "relu3");
    for (int i = 1; i <= o->res_blocks; i++) {
        snprintf(a, sizeof a, "res%d.conv1", i);
        snprintf(c, sizeof c, "res%d.in1", i);
        snprintf(name, sizeof name, "res%d.relu", i);
        conv_in_relu(&ab, a, c, name, 4 * b, 4 * b, 3, 1);
        snprintf(a, sizeof a, "res%d.conv2", i);
        snprintf(c, sizeof c, "res%d.in2", i);
        conv_in_relu(&ab, a, c, NULL, 4 * b, 4 * b, 3, 1);
        snprintf(name, sizeof name, "res%d.add", i);
        ab_node2(&ab, name, "add", c, block_in);
        snprintf(block_in, sizeof block_in, "%s", name);
    }
    ab_node(&ab, "deconv1.upsample", "upsample_nearest", NULL);
    conv_in_relu(&ab, "deconv1", "in4", "relu4", 4 * b, 2 * b, 3, 1);
    ab_node(&ab, "deconv2.upsample", "upsample_nearest", NULL);
    conv_in_relu(&ab, "deconv2", "in5", "relu5", 2 * b, b, 3, 1);
    ab_conv(&ab, "deconv3.conv2d", NULL, b, 3, 9, 1, 4, 1);
    if (o->input_255) {
        cJSON *n = ab_node(&ab, "scale_out", "channel_affine", NULL);
        ab_num(&ab, n, "scale", 1.0 / 255.0);
        ab_num(&ab, n, "shift", 0.0);
    }
    return ab_finish(&ab, NULL);
}
