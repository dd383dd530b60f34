/* Architecture builders: parameter counts of the published networks, PyTorch names, and
 * shapes through the graph for the sizes each network is meant for. */
#include "check.h"
#include "percept/percept.h"

static size_t params_of(char *arch)
{
    PerceptNet *net = arch ? percept_net_from_arch(arch, 1) : NULL;
    CHECK(net != NULL, "builder output does not load: %s", percept_error());
    size_t n = net ? percept_net_param_count(net) : 0;
    percept_net_free(net);
    free(arch);
    return n;
}

/* The keys of pytorch/examples' TransformerNet state_dict (without running stats). */
static void check_johnson_names(void)
{
    char *arch = percept_arch_johnson(&(PerceptJohnsonOpts){32, 5, 1});
    PerceptNet *net = percept_net_from_arch(arch, 1);
    free(arch);
    static const char *convs[] = {"conv1.conv2d", "conv2.conv2d", "conv3.conv2d", "deconv1.conv2d",
                                  "deconv2.conv2d", "deconv3.conv2d"};
    static const char *norms[] = {"in1", "in2", "in3", "in4", "in5"};
    int missing = 0;
    char name[64];
    for (int i = 0; i < 6; i++)
        for (int s = 0; s < 2; s++) {
            snprintf(name, sizeof name, "%s.%s", convs[i], s ? "bias" : "weight");
            missing += !percept_net_param(net, name, NULL);
        }
    for (int i = 0; i < 5; i++)
        for (int s = 0; s < 2; s++) {
            snprintf(name, sizeof name, "%s.%s", norms[i], s ? "bias" : "weight");
            missing += !percept_net_param(net, name, NULL);
        }
    for (int b = 1; b <= 5; b++)
        for (int l = 1; l <= 2; l++)
            for (int s = 0; s < 2; s++) {
                snprintf(name, sizeof name, "res%d.conv%d.conv2d.%s", b, l, s ? "bias" : "weight");
                missing += !percept_net_param(net, name, NULL);
                snprintf(name, sizeof name, "res%d.in%d.%s", b, l, s ? "bias" : "weight");
                missing += !percept_net_param(net, name, NULL);
            }
    CHECK(!missing, "%d TransformerNet tensors have no parameter of that name", missing);
    size_t count;
    CHECK(percept_net_param(net, "res3.conv2.conv2d.weight", &count) && count == 128 * 128 * 9,
          "res3.conv2 weight size %zu", count);
    /* 0..255 scaling: the net's output is back in 0..1 */
    int oc, oh, ow;
    CHECK(percept_net_output_shape(net, 1, 64, 48, &oc, &oh, &ow) == 0 && oc == 3 && oh == 64 &&
          ow == 48, "Johnson 48x64 -> %dx%d", ow, oh);
    percept_net_free(net);
}

static void check_shapes(void)
{
    static const struct { PerceptSrKind kind; int scale; } sr[] = {
        {PERCEPT_SR_JOHNSON, 2}, {PERCEPT_SR_JOHNSON, 4}, {PERCEPT_SR_JOHNSON, 8},
        {PERCEPT_SR_SHUFFLE, 2}, {PERCEPT_SR_SHUFFLE, 4}, {PERCEPT_SR_SHUFFLE, 8}};
    for (size_t i = 0; i < sizeof sr / sizeof *sr; i++) {
        char *arch = percept_arch_sr(&(PerceptSrOpts){sr[i].kind, sr[i].scale, 16, 2});
        PerceptNet *net = percept_net_from_arch(arch, 1);
        int oc, oh, ow;
        CHECK(net && percept_net_output_shape(net, 1, 13, 9, &oc, &oh, &ow) == 0 && oc == 3 &&
              oh == 13 * sr[i].scale && ow == 9 * sr[i].scale, "SR kind %d x%d: %dx%d",
              sr[i].kind, sr[i].scale, ow, oh);
        percept_net_free(net);
        free(arch);
    }
    /* the discriminator fits its input size; the autoencoder gives back the image size */
    int sizes[] = {227, 64, 40, 21};
    for (int i = 0; i < 4; i++) {
        char *arch = percept_arch_deepsim_discriminator(&(PerceptDiscriminatorOpts){sizes[i], 32});
        PerceptNet *net = arch ? percept_net_from_arch(arch, 1) : NULL;
        int oc, oh, ow;
        CHECK(net && percept_net_output_shape(net, 2, sizes[i], sizes[i], &oc, &oh, &ow) == 0 &&
              oc == 1 && oh == 1 && ow == 1, "discriminator for %d: %s", sizes[i], percept_error());
        percept_net_free(net);
        free(arch);
    }
    CHECK(!percept_arch_deepsim_discriminator(&(PerceptDiscriminatorOpts){20, 32}) &&
          strstr(percept_error(), "21"), "too small discriminator: %s", percept_error());
    for (int v = 0; v < 3; v++) {
        char *arch = percept_arch_deepsim_autoencoder(&(PerceptAutoencoderOpts){64, 32, 8, v == 1, v == 2});
        PerceptNet *net = arch ? percept_net_from_arch(arch, 1) : NULL;
        int oc, oh, ow;
        CHECK(net && percept_net_output_shape(net, 1, 64, 64, &oc, &oh, &ow) == 0 && oc == 3 &&
              oh == 64 && ow == 64, "autoencoder variant %d: %s", v, percept_error());
        percept_net_free(net);
        free(arch);
    }
}

int main(void)
{
    /* published parameter counts */
    CHECK(params_of(percept_arch_johnson(&(PerceptJohnsonOpts){32, 5, 0})) == 1679235,
          "Johnson style net");
    CHECK(params_of(percept_arch_vgg16("relu5_3")) == 14714688, "VGG-16 features");
    /* to relu2_2: 1792 + 36928 + 73856 + 147584 */
    CHECK(params_of(percept_arch_vgg16("relu2_2")) == 260160, "VGG-16 to relu2_2");
    /* DeePSiM discriminator at 227 (Table 1, one logit): convs + fc 256->512 + fc 512->1 */
    size_t disc = (3 * 49 * 32 + 32) + (32 * 25 * 64 + 64) + (64 * 9 * 128 + 128) +
                  (128 * 9 * 256 + 256) + (256 * 9 * 256 + 256) + (256 * 512 + 512) + (512 + 1);
    CHECK(params_of(percept_arch_deepsim_discriminator(&(PerceptDiscriminatorOpts){227, 32})) == disc,
          "DeePSiM discriminator");
    CHECK(percept_vgg16_layer_index("relu4_3") == 22 && percept_vgg16_layer_index("pool") == -1,
          "VGG layer names");
    CHECK(!percept_arch_sr(&(PerceptSrOpts){PERCEPT_SR_JOHNSON, 3, 64, 4}) &&
          strstr(percept_error(), "2, 4 or 8"), "SR x3: %s", percept_error());
    CHECK(!percept_arch_vgg16("relu9_9") && strstr(percept_error(), "relu9_9"), "bad VGG layer");
    check_johnson_names();
    check_shapes();
    return check_done("test-arch");
}
