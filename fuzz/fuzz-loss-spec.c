/* libFuzzer target: loss spec strings (percept_loss_new). Specs naming VGG-16 build a loss
 * network, so this target runs slowly on them; the parser is what it exercises. */
#include <stdlib.h>
#include <string.h>

#include "percept/percept.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (size > 256)
        return 0;
    char *spec = malloc(size + 1);
    memcpy(spec, data, size);
    spec[size] = 0;
    percept_loss_free(percept_loss_new(spec));
    free(spec);
    return 0;
}
