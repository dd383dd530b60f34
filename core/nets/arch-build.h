/* Private helpers for the architecture builders: append nodes to the JSON graph of
 * docs/arch-format.md. */
#ifndef PERCEPT_ARCH_BUILD_H
#define PERCEPT_ARCH_BUILD_H

#include <cjson/cJSON.h>

typedef struct {
    cJSON *root, *nodes;
    char last[128]; /* name of the previous node: the default input */
    int failed;
} ArchBuilder;

int ab_init(ArchBuilder *ab, const char *name, int input_channels);
/* A node reading `in` (NULL: the previous node; "input": the network input). */
cJSON *ab_node(ArchBuilder *ab, const char *name, const char *op, const char *in);
cJSON *ab_node2(ArchBuilder *ab, const char *name, const char *op, const char *a, const char *b);
void ab_int(ArchBuilder *ab, cJSON *node, const char *key, int v);
void ab_num(ArchBuilder *ab, cJSON *node, const char *key, double v);
/* The node appended last (NULL when none). */
cJSON *ab_last(ArchBuilder *ab);
void ab_conv(ArchBuilder *ab, const char *name, const char *in, int cin, int cout, int k,
             int stride, int pad, int reflect);
/* Returns the malloc'd JSON (NULL with a message on failure) and frees the builder. */
char *ab_finish(ArchBuilder *ab, const char *output);

#endif
