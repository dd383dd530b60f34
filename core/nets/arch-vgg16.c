/* VGG-16 features with torchvision's names (features.N), so a user's torchvision
 * state_dict converts by renaming nothing. The input is 0..1 sRGB; ImageNet mean/std
 * normalisation is the first node. */
#include <stdio.h>
#include <string.h>

#include "arch-build.h"
#include "percept/percept.h"

static const char *const relu_names[] = {"relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1",
                                         "relu3_2", "relu3_3", "relu4_1", "relu4_2", "relu4_3",
                                         "relu5_1", "relu5_2", "relu5_3"};
static const int relu_index[] = {1, 3, 6, 8, 11, 13, 15, 18, 20, 22, 25, 27, 29};
/* channels per conv, 0 marks a 2×2 max pool: torchvision's configuration "D" */
static const int cfg[] = {64, 64, 0, 128, 128, 0, 256, 256, 256, 0, 512, 512, 512, 0,
                          512, 512, 512};

int percept_vgg16_layer_index(const char *name)
{
    for (size_t i = 0; i < sizeof relu_index / sizeof *relu_index; i++)
        if (name && !strcmp(name, relu_names[i]))
            return relu_index[i];
    return -1;
}

char *percept_arch_vgg16(const char *last_layer)
{
    int last = percept_vgg16_layer_index(last_layer);
    if (last < 0) {
        percept_fail("unknown VGG-16 layer '%s' (relu1_1 … relu5_3)",
                     last_layer ? last_layer : "(null)");
        return NULL;
    }
    ArchBuilder ab;
    char name[64];
    snprintf(name, sizeof name, "vgg16-%s", last_layer);
    if (ab_init(&ab, name, 3))
        return NULL;
    cJSON *norm = ab_node(&ab, "normalize", "channel_affine", NULL);
    const double mean[3] = {0.485, 0.456, 0.406}, std[3] = {0.229, 0.224, 0.225};
    cJSON *scale = cJSON_AddArrayToObject(norm, "scale"), *shift = cJSON_AddArrayToObject(norm, "shift");
    for (int c = 0; c < 3 && scale && shift; c++) {
        cJSON_AddItemToArray(scale, cJSON_CreateNumber(1.0 / std[c]));
        cJSON_AddItemToArray(shift, cJSON_CreateNumber(-mean[c] / std[c]));
    }
    int index = 0, cin = 3;
    for (size_t i = 0; i < sizeof cfg / sizeof *cfg && index <= last; i++) {
        if (!cfg[i]) {
            snprintf(name, sizeof name, "features.%d", index++);
            ab_int(&ab, ab_node(&ab, name, "max_pool", NULL), "k", 2);
            continue;
        }
        snprintf(name, sizeof name, "features.%d", index++);
        ab_conv(&ab, name, NULL, cin, cfg[i], 3, 1, 1, 0);
        snprintf(name, sizeof name, "features.%d", index++);
        ab_node(&ab, name, "relu", NULL);
        cin = cfg[i];
    }
    return ab_finish(&ab, NULL);
}
