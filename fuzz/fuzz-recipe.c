/* libFuzzer target: training recipes (ini through GKeyFile, then percept's checks of every
 * key and value) for each task. Errors are fine; crashes, leaks and hangs are not. */
#include <stddef.h>
#include <stdint.h>

#include "recipe.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static char *tasks[] = {"upscale", "reconstruct", "stylize"};
    char *argv[1] = {tasks[size % 3]};
    Recipe r;
    recipe_load_data(&r, (const char *)data, size, "fuzz.ini", 1, argv);
    recipe_free(&r);
    return 0;
}
