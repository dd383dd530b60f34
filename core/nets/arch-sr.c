/* Super-resolution networks.
 * PERCEPT_SR_JOHNSON follows Johnson et al. (section 3 and the supplementary material):
 * "all non-residual convolutional layers are followed by spatial batch normalization and
 * ReLU, with the exception of the output layer", so: 9×9 conv (3→C) + BN + ReLU; residual
 * blocks of Gross & Wilber's design, conv 3×3 + BN + ReLU + conv 3×3 + BN, added to the
 * block input; one ×2 stage per factor of two; 9×9 conv (C→3) and a scaled tanh
 * 0.5·tanh + 0.5 to 0..1 (the paper's scaled tanh targets 0..255). Each ×2 stage is
 * nearest upsampling + 3×3 conv + BN + ReLU instead of the paper's fractional-stride
 * conv: the same receptive field and cost class, without checkerboard artefacts. Batch
 * norm in eval mode is a per-channel affine map, so tiles of an image agree exactly.
 * Every conv uses reflection padding (no dark borders; the style net does the same).
 * PERCEPT_SR_SHUFFLE is the cheap variant that works at the input resolution: 5×5 conv +
 * ReLU, residual blocks without normalisation (conv + ReLU + conv, as EDSR found better
 * for SR, and nothing batch-dependent), 3×3 conv to 3·scale² channels and one pixel
 * shuffle; the network predicts a residual over nearest upsampling of its input (one
 * extra add: training starts from a sensible image and learns only the detail).
 * percept_arch_restore is the same body at scale 1 for restoration (denoising, JPEG
 * artefacts): 3 channels out, added to the input, so it predicts the correction. Its
 * half-resolution form spends the blocks where they are cheap: a 3×3 conv at full
 * resolution (C/2 channels), a 4×4 stride-2 conv down to C channels (4×4 so that each
 * half-resolution sample sits at the centre of its 2×2 block, where the pixel shuffle
 * puts it back), the residual blocks, a 3×3 conv to 2C channels and a pixel shuffle back
 * to C/2 at full resolution, added to the first conv's features (the fine detail the
 * blocks never saw), and the 3×3 tail. Each block then widens the receptive field by 8
 * pixels instead of 4, at a quarter of the cost per channel². With resize_up the way back
 * is nearest ×2 upsampling and a 3×3 conv to C/2 (Odena et al.'s resize-convolution): a
 * pixel shuffle gives each of a 2×2 block's pixels its own filters, and where no loss
 * forbids it (a style loss) they drift apart into a 2-pixel grid. */
#include <stdio.h>

#include "arch-build.h"
#include "percept/percept.h"

static void bn(ArchBuilder *ab, const char *name, int c)
{
    ab_int(ab, ab_node(ab, name, "batch_norm", NULL), "c", c);
}

/* init_gain on the conv just added, unless it is the default (0 or 1) */
static void init_gain(ArchBuilder *ab, float gain)
{
    if (gain > 0 && gain != 1)
        ab_num(ab, ab_last(ab), "init_gain", gain);
}

/* conv + (BN) + ReLU + conv + (BN), added to the block input. block_gain scales the second
 * conv's initial weights: without normalisation each block at He initialisation roughly
 * doubles its input's variance, so a deep body starts far from the identity; a small gain
 * starts each block near it (EDSR's residual scaling, Fixup's zero-ish branch init). */
static void residual_block(ArchBuilder *ab, int i, int ch, int norm, float block_gain,
                           char *block_in)
{
    char name[64], last[64];
    snprintf(name, sizeof name, "body.%d.conv1", i);
    ab_conv(ab, name, NULL, ch, ch, 3, 1, 1, 1);
    if (norm) {
        snprintf(name, sizeof name, "body.%d.bn1", i);
        bn(ab, name, ch);
    }
    snprintf(name, sizeof name, "body.%d.relu", i);
    ab_node(ab, name, "relu", NULL);
    snprintf(name, sizeof name, "body.%d.conv2", i);
    ab_conv(ab, name, NULL, ch, ch, 3, 1, 1, 1);
    init_gain(ab, block_gain);
    snprintf(last, sizeof last, "%s", name);
    if (norm) {
        snprintf(last, sizeof last, "body.%d.bn2", i);
        bn(ab, last, ch);
    }
    snprintf(name, sizeof name, "body.%d.add", i);
    ab_node2(ab, name, "add", last, block_in);
    snprintf(block_in, 64, "%s", name);
}

/* x − 0.5 before the head conv when asked. Inputs are 0..1, so at He initialisation a head
 * unit's pre-activation is dominated by 0.5 · (the sum of its weights): the units whose sum
 * is negative start nearly always off, and training kills more (a trained ×4 net without it:
 * 32 of 48 head ReLUs and 47 of 48 in its last block never fired on the evaluation photos).
 * Centring the input removes that term, as EDSR subtracts the data's mean colour. */
static void center_input(ArchBuilder *ab, int center)
{
    if (!center)
        return;
    cJSON *n = ab_node(ab, "center", "channel_affine", NULL);
    ab_num(ab, n, "scale", 1.0);
    ab_num(ab, n, "shift", -0.5);
}

/* Head conv (9×9 with batch norm for Johnson's net, 5×5 otherwise) + ReLU and the residual
 * blocks. */
static void body(ArchBuilder *ab, int ch, int blocks, int johnson, float block_gain, int center)
{
    char block_in[64];
    center_input(ab, center);
    ab_conv(ab, "head.conv", NULL, 3, ch, johnson ? 9 : 5, 1, johnson ? 4 : 2, 1);
    if (johnson)
        bn(ab, "head.bn", ch);
    ab_node(ab, "head.relu", "relu", NULL);
    snprintf(block_in, sizeof block_in, "head.relu");
    for (int i = 0; i < blocks; i++)
        residual_block(ab, i, ch, johnson, block_gain, block_in);
}

char *percept_arch_sr(const PerceptSrOpts *o)
{
    if (!o) {
        percept_fail("super-resolution net: no options");
        return NULL;
    }
    const int ch = o->channels;
    if (o->scale != 2 && o->scale != 4 && o->scale != 8) {
        percept_fail("super-resolution scale must be 2, 4 or 8 (got %d)", o->scale);
        return NULL;
    }
    if (ch < 1 || ch > 1024 || o->res_blocks < 0 || o->res_blocks > 64 ||
        (o->kind != PERCEPT_SR_JOHNSON && o->kind != PERCEPT_SR_SHUFFLE) ||
        !(o->tail_gain >= 0 && o->tail_gain <= 100) ||
        !(o->block_gain >= 0 && o->block_gain <= 100)) {
        percept_fail("super-resolution net: kind must be johnson or shuffle, channels "
                     "1..1024, blocks 0..64, tail and block gains 0..100 (got kind %d, %d "
                     "channels, %d blocks)",
                     (int)o->kind, ch, o->res_blocks);
        return NULL;
    }
    const int johnson = o->kind == PERCEPT_SR_JOHNSON;
    ArchBuilder ab;
    char name[64];
    snprintf(name, sizeof name, "sr%s-x%d-c%d-r%d", johnson ? "" : "-shuffle", o->scale, ch,
             o->res_blocks);
    if (ab_init(&ab, name, 3))
        return NULL;
    body(&ab, ch, o->res_blocks, johnson, johnson ? 0 : o->block_gain, o->center_input);
    if (johnson) {
        for (int s = 0, f = o->scale; f > 1; f /= 2, s++) {
            snprintf(name, sizeof name, "up.%d.upsample", s);
            ab_node(&ab, name, "upsample_nearest", NULL);
            snprintf(name, sizeof name, "up.%d.conv", s);
            ab_conv(&ab, name, NULL, ch, ch, 3, 1, 1, 1);
            snprintf(name, sizeof name, "up.%d.bn", s);
            bn(&ab, name, ch);
            snprintf(name, sizeof name, "up.%d.relu", s);
            ab_node(&ab, name, "relu", NULL);
        }
        ab_conv(&ab, "tail.conv", NULL, ch, 3, 9, 1, 4, 1);
        ab_node(&ab, "out", "scaled_tanh", NULL); /* 0.5 tanh + 0.5: output in 0..1 */
    } else {
        ab_conv(&ab, "tail.conv", NULL, ch, 3 * o->scale * o->scale, 3, 1, 1, 1);
        init_gain(&ab, o->tail_gain);
        ab_int(&ab, ab_node(&ab, "tail.shuffle", "pixel_shuffle", NULL), "r", o->scale);
        ab_int(&ab, ab_node(&ab, "skip.upsample", "upsample_nearest", "input"), "factor",
               o->scale);
        ab_node2(&ab, "out", "add", "tail.shuffle", "skip.upsample");
    }
    return ab_finish(&ab, NULL);
}

/* The half-resolution restoration body (see the top of this file); returns the channels
 * of its full-resolution output. */
static int half_res_body(ArchBuilder *ab, int ch, int blocks, float block_gain, int center,
                         int resize_up)
{
    const int fine = ch / 2;
    char block_in[64];
    center_input(ab, center);
    ab_conv(ab, "head.conv", NULL, 3, fine, 3, 1, 1, 1);
    ab_node(ab, "head.relu", "relu", NULL);
    ab_conv(ab, "down.conv", NULL, fine, ch, 4, 2, 1, 1);
    ab_node(ab, "down.relu", "relu", NULL);
    snprintf(block_in, sizeof block_in, "down.relu");
    for (int i = 0; i < blocks; i++)
        residual_block(ab, i, ch, 0, block_gain, block_in);
    if (resize_up) {
        ab_int(ab, ab_node(ab, "up.upsample", "upsample_nearest", NULL), "factor", 2);
        ab_conv(ab, "up.conv", NULL, ch, fine, 3, 1, 1, 1);
    } else {
        ab_conv(ab, "up.conv", NULL, ch, 4 * fine, 3, 1, 1, 1);
        ab_int(ab, ab_node(ab, "up.shuffle", "pixel_shuffle", NULL), "r", 2);
    }
    ab_node2(ab, "up.add", "add", resize_up ? "up.conv" : "up.shuffle", "head.relu");
    ab_node(ab, "up.relu", "relu", NULL);
    return fine;
}

char *percept_arch_restore(const PerceptRestoreOpts *o)
{
    if (!o || o->channels < (o->half_res ? 2 : 1) || o->channels > 1024 || o->res_blocks < 0 ||
        o->res_blocks > 64 || !(o->tail_gain >= 0 && o->tail_gain <= 100) ||
        !(o->block_gain >= 0 && o->block_gain <= 100)) {
        percept_fail("restoration net: channels %s..1024, blocks 0..64, tail and block gains "
                     "0..100 (got %d channels, %d blocks)", o && o->half_res ? "2" : "1",
                     o ? o->channels : 0, o ? o->res_blocks : 0);
        return NULL;
    }
    ArchBuilder ab;
    char name[64];
    snprintf(name, sizeof name, "restore%s%s-c%d-r%d", o->half_res ? "-half" : "",
             o->half_res && o->resize_up ? "-resize" : "", o->channels, o->res_blocks);
    if (ab_init(&ab, name, 3))
        return NULL;
    int tail_in = o->channels;
    if (o->half_res)
        tail_in = half_res_body(&ab, o->channels, o->res_blocks, o->block_gain, o->center_input,
                                o->resize_up);
    else
        body(&ab, o->channels, o->res_blocks, 0, o->block_gain, o->center_input);
    ab_conv(&ab, "tail.conv", NULL, tail_in, 3, 3, 1, 1, 1);
    init_gain(&ab, o->tail_gain);
    ab_node2(&ab, "out", "add", "tail.conv", "input");
    return ab_finish(&ab, NULL);
}
