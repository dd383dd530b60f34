#include <stdio.h>
#include <string.h>

#include "arch-build.h"
#include "percept/percept.h"

int ab_init(ArchBuilder *ab, const char *name, int input_channels)
{
    memset(ab, 0, sizeof *ab);
    ab->root = cJSON_CreateObject();
    if (!ab->root || !cJSON_AddNumberToObject(ab->root, "format", 1) ||
        !cJSON_AddStringToObject(ab->root, "name", name) ||
        !cJSON_AddNumberToObject(ab->root, "input_channels", input_channels) ||
        !(ab->nodes = cJSON_AddArrayToObject(ab->root, "nodes"))) {
        cJSON_Delete(ab->root);
        ab->root = NULL;
        return percept_fail("out of memory");
    }
    snprintf(ab->last, sizeof ab->last, "input");
    return 0;
}

static cJSON *add_node(ArchBuilder *ab, const char *name, const char *op)
{
    cJSON *n = cJSON_CreateObject();
    if (!n || !cJSON_AddStringToObject(n, "name", name) || !cJSON_AddStringToObject(n, "op", op) ||
        !cJSON_AddItemToArray(ab->nodes, n)) {
        ab->failed = 1;
        return NULL;
    }
    return n;
}

cJSON *ab_node(ArchBuilder *ab, const char *name, const char *op, const char *in)
{
    cJSON *n = add_node(ab, name, op);
    if (n && in && strcmp(in, ab->last)) {
        cJSON *list = cJSON_AddArrayToObject(n, "in");
        if (!list || !cJSON_AddItemToArray(list, cJSON_CreateString(in)))
            ab->failed = 1;
    }
    snprintf(ab->last, sizeof ab->last, "%s", name);
    return n;
}

cJSON *ab_node2(ArchBuilder *ab, const char *name, const char *op, const char *a, const char *b)
{
    cJSON *n = add_node(ab, name, op), *list = n ? cJSON_AddArrayToObject(n, "in") : NULL;
    if (!list || !cJSON_AddItemToArray(list, cJSON_CreateString(a)) ||
        !cJSON_AddItemToArray(list, cJSON_CreateString(b)))
        ab->failed = 1;
    snprintf(ab->last, sizeof ab->last, "%s", name);
    return n;
}

void ab_int(ArchBuilder *ab, cJSON *node, const char *key, int v)
{
    if (!node || !cJSON_AddNumberToObject(node, key, v))
        ab->failed = 1;
}

void ab_num(ArchBuilder *ab, cJSON *node, const char *key, double v)
{
    if (!node || !cJSON_AddNumberToObject(node, key, v))
        ab->failed = 1;
}

void ab_conv(ArchBuilder *ab, const char *name, const char *in, int cin, int cout, int k,
             int stride, int pad, int reflect)
{
    cJSON *n = ab_node(ab, name, "conv2d", in);
    ab_int(ab, n, "cin", cin);
    ab_int(ab, n, "cout", cout);
    ab_int(ab, n, "k", k);
    if (stride != 1)
        ab_int(ab, n, "stride", stride);
    if (pad)
        ab_int(ab, n, "pad", pad);
    if (reflect && (!n || !cJSON_AddStringToObject(n, "pad_mode", "reflect")))
        ab->failed = 1;
}

char *ab_finish(ArchBuilder *ab, const char *output)
{
    char *json = NULL;
    if (output && !cJSON_AddStringToObject(ab->root, "output", output))
        ab->failed = 1;
    if (!ab->failed)
        json = cJSON_PrintUnformatted(ab->root);
    if (!json)
        percept_fail("out of memory building an architecture");
    cJSON_Delete(ab->root);
    ab->root = NULL;
    return json;
}

cJSON *ab_last(ArchBuilder *ab)
{
    int n = ab->nodes ? cJSON_GetArraySize(ab->nodes) : 0;
    return n ? cJSON_GetArrayItem(ab->nodes, n - 1) : NULL;
}
