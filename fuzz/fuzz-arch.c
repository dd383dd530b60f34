/* libFuzzer target: the architecture JSON parser, then shape inference, receptive field
 * and a summary at a small size — everything a weight file's metadata drives before a
 * forward pass. */
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

#include "percept/percept.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *json = malloc(size + 1);
    if (!json)
        return 0;
    memcpy(json, data, size);
    json[size] = '\0';
    PerceptNet *net = percept_net_from_arch(json, 1);
    if (net) {
        int c, h, w;
        percept_net_receptive_field(net);
        percept_net_output_shape(net, 1, 17, 23, &c, &h, &w);
        free(percept_net_summary(net, 9, 11));
        percept_net_free(net);
    }
    free(json);
    return 0;
}
