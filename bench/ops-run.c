/* One operation over a synthetic image, for bench/run-ops.sh: builds checkerboard → crop →
 * OPERATION (properties from the command line) and renders the whole output through a
 * GeglProcessor, as the gegl command does before saving. Prints one line:
 *   OPERATION WxH -> WxH: S s, peak RSS M MiB
 * File decoding and encoding are left out: they are GEGL's, not percept's.
 *
 *   ops-run OPERATION WIDTH HEIGHT [property=value ...] */
#include <gegl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <time.h>

static double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

/* Sets property NAME from text, by the property's type. */
static int set_property(GeglNode *node, const char *assignment)
{
    char *name = g_strdup(assignment), *value = strchr(name, '=');
    if (!value) {
        fprintf(stderr, "ops-run: '%s' is not property=value\n", assignment);
        g_free(name);
        return -1;
    }
    *value++ = 0;
    const char *op = gegl_node_get_operation(node);
    GParamSpec *spec = gegl_operation_find_property(op, name);
    if (!spec) {
        fprintf(stderr, "ops-run: %s has no property '%s'\n", op, name);
        g_free(name);
        return -1;
    }
    GValue v = G_VALUE_INIT;
    g_value_init(&v, spec->value_type);
    if (G_VALUE_HOLDS_STRING(&v))
        g_value_set_string(&v, value);
    else if (G_VALUE_HOLDS_INT(&v))
        g_value_set_int(&v, atoi(value));
    else if (G_VALUE_HOLDS_DOUBLE(&v))
        g_value_set_double(&v, atof(value));
    else if (G_VALUE_HOLDS_ENUM(&v)) {
        GEnumValue *e = g_enum_get_value_by_nick(g_type_class_peek(spec->value_type), value);
        if (!e) {
            fprintf(stderr, "ops-run: '%s' is not a value of '%s'\n", value, name);
            g_free(name);
            return -1;
        }
        g_value_set_enum(&v, e->value);
    } else if (G_VALUE_HOLDS_BOOLEAN(&v))
        g_value_set_boolean(&v, !strcmp(value, "true") || !strcmp(value, "1"));
    else {
        fprintf(stderr, "ops-run: property '%s' has a type this bench does not set\n", name);
        g_free(name);
        return -1;
    }
    gegl_node_set_property(node, name, &v);
    g_value_unset(&v);
    g_free(name);
    return 0;
}

int main(int argc, char **argv)
{
    if (argc < 4) {
        fprintf(stderr, "usage: ops-run OPERATION WIDTH HEIGHT [property=value ...]\n");
        return 2;
    }
    gegl_init(&argc, &argv);
    const char *operation = argv[1];
    int w = atoi(argv[2]), h = atoi(argv[3]);
    if (!gegl_has_operation(operation)) {
        fprintf(stderr, "ops-run: no operation %s (GEGL_PATH=%s)\n", operation,
                g_getenv("GEGL_PATH") ? g_getenv("GEGL_PATH") : "");
        return 1;
    }
    GeglNode *graph = gegl_node_new();
    GeglNode *src = gegl_node_new_child(graph, "operation", "gegl:checkerboard", "x", 37, "y",
                                        23, NULL);
    GeglNode *crop = gegl_node_new_child(graph, "operation", "gegl:crop", "width", (double)w,
                                         "height", (double)h, NULL);
    GeglNode *op = gegl_node_new_child(graph, "operation", operation, NULL);
    for (int i = 4; i < argc; i++)
        if (set_property(op, argv[i]))
            return 2;
    gegl_node_link_many(src, crop, op, NULL);
    GeglRectangle out = gegl_node_get_bounding_box(op);
    double t0 = now();
    GeglProcessor *p = gegl_node_new_processor(op, &out);
    while (gegl_processor_work(p, NULL))
        ;
    double t = now() - t0;
    g_object_unref(p);
    struct rusage ru;
    getrusage(RUSAGE_SELF, &ru);
    printf("%s %dx%d -> %dx%d: %.2f s, peak RSS %.0f MiB\n", operation, w, h, out.width,
           out.height, t, ru.ru_maxrss / 1024.0);
    g_object_unref(graph);
    gegl_exit();
    return 0;
}
