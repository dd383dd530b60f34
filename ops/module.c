/* The percept GEGL module: registers percept:stylize, percept:upscale and
 * percept:reconstruct (each op file is built with GEGL_OP_BUNDLE). */
#include <gegl-plugin.h>

void gegl_op_percept_stylize_register_type(GTypeModule *module);
void gegl_op_percept_upscale_register_type(GTypeModule *module);
void gegl_op_percept_reconstruct_register_type(GTypeModule *module);

static const GeglModuleInfo module_info = {GEGL_MODULE_ABI_VERSION};

G_MODULE_EXPORT const GeglModuleInfo *gegl_module_query(GTypeModule *module)
{
    return &module_info;
}

G_MODULE_EXPORT gboolean gegl_module_register(GTypeModule *module)
{
    gegl_op_percept_stylize_register_type(module);
    gegl_op_percept_upscale_register_type(module);
    gegl_op_percept_reconstruct_register_type(module);
    return TRUE;
}
