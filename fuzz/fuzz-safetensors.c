/* libFuzzer target: the safetensors parser on arbitrary bytes. */
#include <stddef.h>
#include <stdint.h>

#include "percept/percept.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    PerceptSafetensors *st = percept_st_parse(data, size, "fuzz");
    if (st) {
        /* a file that parses must also be safe to use */
        const char *arch = percept_st_meta(st, "percept.arch");
        if (arch) {
            PerceptNet *net = percept_net_from_safetensors(st, arch);
            percept_net_free(net);
        }
        percept_st_free(st);
    }
    return 0;
}
