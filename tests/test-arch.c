/* Architecture builders. Each builder's JSON is read here with cJSON, independently of the
 * engine: the rules of docs/arch-format.md (unique names, inputs naming earlier nodes, known
 * ops, attributes that fit together), shapes propagated through the graph, and parameters
 * counted from the attributes alone, against the published networks' counts and PyTorch's
 * state_dict names. The engine then loads each JSON and must agree on count and shape. */
#include <cjson/cJSON.h>

#include "check.h"
#include "percept/percept.h"

#define MAX_NODES 1024
#define MAX_PARAMS 2048

static const char *const known_ops[] = {
    "conv2d", "conv_transpose2d", "upsample_nearest", "pixel_shuffle", "instance_norm",
    "batch_norm", "relu", "tanh", "sigmoid", "leaky_relu", "scaled_tanh", "add", "concat",
    "avg_pool", "max_pool", "global_avg_pool", "linear", "reshape", "channel_affine",
    "dropout", "binary", "reparam", "cos"};

typedef struct {
    cJSON *root;                  /* parsed JSON (freed by graph_free) */
    int ok;                       /* every rule held */
    int n;                        /* nodes */
    const cJSON *node[MAX_NODES];
    const char *name[MAX_NODES];
    int c[MAX_NODES], h[MAX_NODES], w[MAX_NODES]; /* output shape of each node */
    int out;                      /* index of the output node */
    size_t params, buffers;       /* trainable floats; running statistics */
    int n_pnames;
    char pname[MAX_PARAMS][96];   /* trainable parameter names in node order */
} Graph;

static void graph_free(Graph *g)
{
    cJSON_Delete(g->root);
    free(g);
}

/* while reading deliberately broken graphs: rules only mark the graph, count no failure */
static int quiet = 0;

/* A rule of the format or of shapes failed: one CHECK per failure, naming the net. */
#define RULE(g, cond, ...)                                                                     \
    do {                                                                                       \
        if (!(cond)) {                                                                         \
            (g)->ok = 0;                                                                       \
            if (!quiet)                                                                        \
                CHECK(0, __VA_ARGS__);                                                         \
        }                                                                                      \
    } while (0)

/* integer attribute; def < -1000 means required */
static int iattr(Graph *g, const cJSON *nd, const char *key, int def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(nd, key);
    if (!v) {
        RULE(g, def > -1000, "node %s: missing attribute %s",
             cJSON_GetStringValue(cJSON_GetObjectItem(nd, "name")), key);
        return def > -1000 ? def : 0;
    }
    RULE(g, cJSON_IsNumber(v) && v->valuedouble == floor(v->valuedouble),
         "node %s: attribute %s is not an integer",
         cJSON_GetStringValue(cJSON_GetObjectItem(nd, "name")), key);
    return cJSON_IsNumber(v) ? (int)v->valuedouble : 0;
}
#define REQUIRED (-10000)

static double dattr(const cJSON *nd, const char *key, double def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(nd, key);
    return cJSON_IsNumber(v) ? v->valuedouble : def;
}

static int battr(const cJSON *nd, const char *key, int def)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(nd, key);
    return v ? cJSON_IsTrue(v) : def;
}

static int node_index(const Graph *g, const char *name)
{
    for (int i = 0; i < g->n; i++)
        if (!strcmp(g->name[i], name))
            return i;
    return -1;
}

static void add_param(Graph *g, const char *node, const char *slot, size_t numel, int trainable)
{
    if (!trainable) {
        g->buffers += numel;
        return;
    }
    g->params += numel;
    if (g->n_pnames < MAX_PARAMS)
        snprintf(g->pname[g->n_pnames++], sizeof g->pname[0], "%s.%s", node, slot);
}

/* Reads arch (and frees it), checks the format's rules and propagates an h×w input. NULL if
 * the JSON does not parse at all. */
static Graph *graph_read(char *arch, const char *what, int h, int w)
{
    CHECK(arch != NULL, "%s: builder failed: %s", what, percept_error());
    if (!arch)
        return NULL;
    Graph *g = calloc(1, sizeof *g);
    g->ok = 1;
    g->root = cJSON_Parse(arch);
    free(arch);
    CHECK(g->root != NULL, "%s: not JSON", what);
    if (!g->root) {
        free(g);
        return NULL;
    }
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(g->root, "format");
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(g->root, "nodes");
    const cJSON *nm = cJSON_GetObjectItemCaseSensitive(g->root, "name");
    const cJSON *ic = cJSON_GetObjectItemCaseSensitive(g->root, "input_channels");
    RULE(g, cJSON_IsNumber(fmt) && fmt->valuedouble == 1, "%s: format is not 1", what);
    RULE(g, cJSON_IsString(nm) && nm->valuestring[0], "%s: no name", what);
    RULE(g, cJSON_IsNumber(ic) && ic->valuedouble >= 1, "%s: no input_channels", what);
    RULE(g, cJSON_IsArray(nodes) && cJSON_GetArraySize(nodes) > 0, "%s: no nodes", what);
    int pc = cJSON_IsNumber(ic) ? (int)ic->valuedouble : 3, ph = h, pw = w; /* previous */
    const cJSON *nd;
    cJSON_ArrayForEach(nd, nodes) {
        if (g->n == MAX_NODES) {
            RULE(g, 0, "%s: more than %d nodes", what, MAX_NODES);
            break;
        }
        const char *name = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(nd, "name"));
        const char *op = cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(nd, "op"));
        RULE(g, name && name[0] && strcmp(name, "input"), "%s: node %d has no usable name", what,
             g->n);
        if (!name)
            name = "?";
        RULE(g, node_index(g, name) < 0, "%s: node name %s is not unique", what, name);
        int known = 0;
        for (size_t k = 0; op && k < sizeof known_ops / sizeof *known_ops; k++)
            known |= !strcmp(op, known_ops[k]);
        RULE(g, known, "%s: node %s has op %s, not in the documented list", what, name,
             op ? op : "(none)");
        if (!op)
            op = "?";
        /* inputs: named earlier nodes or "input"; omitted = the previous node */
        int in_c[8] = {pc}, in_h[8] = {ph}, in_w[8] = {pw}, n_in = 0;
        const cJSON *ins = cJSON_GetObjectItemCaseSensitive(nd, "in");
        if (ins) {
            const cJSON *s;
            RULE(g, cJSON_IsArray(ins) && cJSON_GetArraySize(ins) > 0, "%s: %s: bad in", what,
                 name);
            cJSON_ArrayForEach(s, ins) {
                const char *src = cJSON_GetStringValue(s);
                int j = src ? node_index(g, src) : -2;
                RULE(g, src && (j >= 0 || !strcmp(src, "input")),
                     "%s: %s reads '%s', which is not an earlier node", what, name,
                     src ? src : "(not a string)");
                if (n_in < 8) {
                    in_c[n_in] = j >= 0 ? g->c[j] : cJSON_IsNumber(ic) ? (int)ic->valuedouble : 3;
                    in_h[n_in] = j >= 0 ? g->h[j] : h;
                    in_w[n_in] = j >= 0 ? g->w[j] : w;
                    n_in++;
                }
            }
        } else {
            in_c[0] = pc, in_h[0] = ph, in_w[0] = pw, n_in = 1;
        }
        int two = !strcmp(op, "add"), many = !strcmp(op, "concat");
        RULE(g, two ? n_in == 2 : many ? n_in >= 2 : n_in == 1,
             "%s: %s (%s) has %d inputs", what, name, op, n_in);
        int c = in_c[0], y = in_h[0], x = in_w[0];
        if (!strcmp(op, "conv2d") || !strcmp(op, "conv_transpose2d")) {
            int t = op[4] == '_';
            int cin = iattr(g, nd, "cin", REQUIRED), cout = iattr(g, nd, "cout", REQUIRED);
            int k = iattr(g, nd, "k", REQUIRED), s = iattr(g, nd, "stride", t ? 2 : 1);
            int p = iattr(g, nd, "pad", 0), op_ = t ? iattr(g, nd, "output_pad", 0) : 0;
            const char *mode = cJSON_GetStringValue(cJSON_GetObjectItem(nd, "pad_mode"));
            RULE(g, cin == c, "%s: %s takes %d channels, gets %d", what, name, cin, c);
            RULE(g, k >= 1 && s >= 1 && p >= 0, "%s: %s: bad k/stride/pad", what, name);
            RULE(g, !mode || !strcmp(mode, "zero") || (!strcmp(mode, "reflect") && !t),
                 "%s: %s: bad pad_mode", what, name);
            if (mode && !strcmp(mode, "reflect"))
                RULE(g, p < y && p < x, "%s: %s: reflect pad %d on %dx%d", what, name, p, x, y);
            if (s >= 1) {
                y = t ? (y - 1) * s - 2 * p + k + op_ : (y + 2 * p - k) / s + 1;
                x = t ? (x - 1) * s - 2 * p + k + op_ : (x + 2 * p - k) / s + 1;
            }
            c = cout;
            add_param(g, name, "weight", (size_t)cin * cout * k * k, 1);
            if (battr(nd, "bias", 1))
                add_param(g, name, "bias", (size_t)cout, 1);
        } else if (!strcmp(op, "upsample_nearest")) {
            int f = iattr(g, nd, "factor", 2);
            y *= f, x *= f;
        } else if (!strcmp(op, "pixel_shuffle")) {
            int r = iattr(g, nd, "r", REQUIRED);
            RULE(g, r >= 1 && c % (r * r) == 0, "%s: %s: %d channels, r %d", what, name, c, r);
            if (r >= 1)
                c /= r * r, y *= r, x *= r;
        } else if (!strcmp(op, "instance_norm") || !strcmp(op, "batch_norm")) {
            int nc = iattr(g, nd, "c", REQUIRED);
            RULE(g, nc == c, "%s: %s normalises %d channels, gets %d", what, name, nc, c);
            if (op[0] == 'b' || battr(nd, "affine", 1)) {
                add_param(g, name, "weight", (size_t)nc, 1);
                add_param(g, name, "bias", (size_t)nc, 1);
            }
            if (op[0] == 'b') {
                add_param(g, name, "running_mean", (size_t)nc, 0);
                add_param(g, name, "running_var", (size_t)nc, 0);
            }
        } else if (!strcmp(op, "add")) {
            RULE(g, n_in == 2 && in_c[1] == c && in_h[1] == y && in_w[1] == x,
                 "%s: %s adds tensors of different shapes", what, name);
        } else if (!strcmp(op, "concat")) {
            for (int i = 1; i < n_in; i++) {
                RULE(g, in_h[i] == y && in_w[i] == x, "%s: %s: concat sizes differ", what, name);
                c += in_c[i];
            }
        } else if (!strcmp(op, "avg_pool") || !strcmp(op, "max_pool")) {
            int k = iattr(g, nd, "k", REQUIRED), s = iattr(g, nd, "stride", k);
            int p = iattr(g, nd, "pad", 0);
            RULE(g, k >= 1 && s >= 1, "%s: %s: bad pool", what, name);
            if (k >= 1 && s >= 1)
                y = (y + 2 * p - k) / s + 1, x = (x + 2 * p - k) / s + 1;
        } else if (!strcmp(op, "global_avg_pool")) {
            y = x = 1;
        } else if (!strcmp(op, "linear")) {
            int fin = iattr(g, nd, "fin", REQUIRED), fout = iattr(g, nd, "fout", REQUIRED);
            RULE(g, fin == c * y * x, "%s: %s takes %d features, gets %d", what, name, fin,
                 c * y * x);
            add_param(g, name, "weight", (size_t)fin * fout, 1);
            if (battr(nd, "bias", 1))
                add_param(g, name, "bias", (size_t)fout, 1);
            c = fout, y = x = 1;
        } else if (!strcmp(op, "reshape")) {
            int rc = iattr(g, nd, "c", REQUIRED), rh = iattr(g, nd, "h", REQUIRED);
            int rw = iattr(g, nd, "w", REQUIRED);
            RULE(g, rc * rh * rw == c * y * x, "%s: %s reshapes %d values to %d", what, name,
                 c * y * x, rc * rh * rw);
            c = rc, y = rh, x = rw;
        } else if (!strcmp(op, "channel_affine")) {
            for (int i = 0; i < 2; i++) {
                const cJSON *v = cJSON_GetObjectItemCaseSensitive(nd, i ? "shift" : "scale");
                int count = cJSON_IsArray(v) ? cJSON_GetArraySize(v) : cJSON_IsNumber(v);
                RULE(g, count == 1 || count == c, "%s: %s: %s has %d values for %d channels",
                     what, name, i ? "shift" : "scale", count, c);
            }
        } else if (!strcmp(op, "reparam")) {
            RULE(g, c % 2 == 0, "%s: %s: reparam of %d channels", what, name, c);
            c /= 2;
        } /* the rest keep the shape */
        RULE(g, c >= 1 && y >= 1 && x >= 1, "%s: %s has an empty output %dx%dx%d for %dx%d",
             what, name, c, y, x, w, h);
        g->node[g->n] = nd;
        g->name[g->n] = name;
        g->c[g->n] = c, g->h[g->n] = y, g->w[g->n] = x;
        g->n++;
        pc = c, ph = y, pw = x;
    }
    g->out = g->n - 1;
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(g->root, "output");
    if (out) {
        g->out = cJSON_IsString(out) ? node_index(g, out->valuestring) : -1;
        RULE(g, g->out >= 0, "%s: output names no node", what);
    }
    if (g->out < 0)
        g->out = g->n - 1;
    return g;
}

/* The engine must load the same JSON and agree on parameter count and output shape. */
static void engine_agrees(const Graph *g, const char *what, int h, int w)
{
    char *json = cJSON_PrintUnformatted(g->root);
    PerceptNet *net = json ? percept_net_from_arch(json, 1) : NULL;
    free(json);
    CHECK(net != NULL, "%s: the engine does not load it: %s", what, percept_error());
    if (!net)
        return;
    int oc = 0, oh = 0, ow = 0;
    CHECK(percept_net_param_count(net) == g->params, "%s: engine counts %zu parameters, JSON %zu",
          what, percept_net_param_count(net), g->params);
    CHECK(percept_net_output_shape(net, 1, h, w, &oc, &oh, &ow) == 0 && oc == g->c[g->out] &&
              oh == g->h[g->out] && ow == g->w[g->out],
          "%s: engine output %dx%dx%d, JSON %dx%dx%d (%s)", what, oc, oh, ow, g->c[g->out],
          g->h[g->out], g->w[g->out], percept_error());
    percept_net_free(net);
}

static const cJSON *node_named(const Graph *g, const char *name)
{
    int i = node_index(g, name);
    return i >= 0 ? g->node[i] : NULL;
}

static const char *op_of(const Graph *g, int i)
{
    return i >= 0 && i < g->n ? cJSON_GetStringValue(cJSON_GetObjectItem(g->node[i], "op")) : "";
}

/* the i-th input of node k by name ("" if none) */
static const char *input_of(const Graph *g, int k, int i)
{
    const cJSON *ins = cJSON_GetObjectItemCaseSensitive(g->node[k], "in");
    if (!ins)
        return i == 0 ? (k ? g->name[k - 1] : "input") : "";
    const char *s = cJSON_GetStringValue(cJSON_GetArrayItem(ins, i));
    return s ? s : "";
}

/* A builder that must refuse: NULL and a message that names the problem. */
static void refuses(char *arch, const char *what, const char *needle)
{
    const char *msg = percept_error();
    CHECK(arch == NULL && msg[0] && strstr(msg, needle), "%s: %s (message '%s', wanted '%s')",
          what, arch ? "accepted" : "refused with the wrong message", msg, needle);
    free(arch);
    percept_error_clear();
}

/* ---- Johnson / pytorch/examples TransformerNet ------------------------------------------- */

/* TransformerNet(): state_dict().keys() in order, without the deprecated running stats */
static const char *const transformer_net_keys[] = {
    "conv1.conv2d.weight", "conv1.conv2d.bias", "in1.weight", "in1.bias",
    "conv2.conv2d.weight", "conv2.conv2d.bias", "in2.weight", "in2.bias",
    "conv3.conv2d.weight", "conv3.conv2d.bias", "in3.weight", "in3.bias",
    "res1.conv1.conv2d.weight", "res1.conv1.conv2d.bias", "res1.in1.weight", "res1.in1.bias",
    "res1.conv2.conv2d.weight", "res1.conv2.conv2d.bias", "res1.in2.weight", "res1.in2.bias",
    "res2.conv1.conv2d.weight", "res2.conv1.conv2d.bias", "res2.in1.weight", "res2.in1.bias",
    "res2.conv2.conv2d.weight", "res2.conv2.conv2d.bias", "res2.in2.weight", "res2.in2.bias",
    "res3.conv1.conv2d.weight", "res3.conv1.conv2d.bias", "res3.in1.weight", "res3.in1.bias",
    "res3.conv2.conv2d.weight", "res3.conv2.conv2d.bias", "res3.in2.weight", "res3.in2.bias",
    "res4.conv1.conv2d.weight", "res4.conv1.conv2d.bias", "res4.in1.weight", "res4.in1.bias",
    "res4.conv2.conv2d.weight", "res4.conv2.conv2d.bias", "res4.in2.weight", "res4.in2.bias",
    "res5.conv1.conv2d.weight", "res5.conv1.conv2d.bias", "res5.in1.weight", "res5.in1.bias",
    "res5.conv2.conv2d.weight", "res5.conv2.conv2d.bias", "res5.in2.weight", "res5.in2.bias",
    "deconv1.conv2d.weight", "deconv1.conv2d.bias", "in4.weight", "in4.bias",
    "deconv2.conv2d.weight", "deconv2.conv2d.bias", "in5.weight", "in5.bias",
    "deconv3.conv2d.weight", "deconv3.conv2d.bias"};

static void check_johnson(void)
{
    for (int in255 = 0; in255 <= 1; in255++) {
        const char *what = in255 ? "johnson (input_255)" : "johnson";
        Graph *g = graph_read(percept_arch_johnson(&(PerceptJohnsonOpts){32, 5, in255}), what,
                              64, 48);
        if (!g)
            continue;
        CHECK(g->ok, "%s breaks the format's rules", what);
        /* pytorch/examples' TransformerNet: 1,679,235 parameters */
        CHECK(g->params == 1679235, "%s: %zu parameters, want 1679235", what, g->params);
        CHECK(g->buffers == 0, "%s: %zu buffer values, want none", what, g->buffers);
        int n = (int)(sizeof transformer_net_keys / sizeof *transformer_net_keys), same = 1;
        for (int i = 0; i < n && i < g->n_pnames; i++)
            if (strcmp(g->pname[i], transformer_net_keys[i])) {
                CHECK(0, "%s: parameter %d is %s, TransformerNet has %s", what, i, g->pname[i],
                      transformer_net_keys[i]);
                same = 0;
                break;
            }
        CHECK(same && g->n_pnames == n, "%s: %d parameters, TransformerNet has %d keys", what,
              g->n_pnames, n);
        CHECK(g->c[g->out] == 3 && g->h[g->out] == 64 && g->w[g->out] == 48,
              "%s: 48x64 input gives %dx%dx%d", what, g->c[g->out], g->w[g->out], g->h[g->out]);
        /* every conv is reflection padded by k/2; res3.conv2 is 128 -> 128, 3x3 */
        int convs = 0, reflect = 0;
        for (int i = 0; i < g->n; i++)
            if (!strcmp(op_of(g, i), "conv2d")) {
                const char *mode = cJSON_GetStringValue(cJSON_GetObjectItem(g->node[i], "pad_mode"));
                convs++;
                reflect += mode && !strcmp(mode, "reflect") &&
                           dattr(g->node[i], "pad", 0) == (int)dattr(g->node[i], "k", 0) / 2;
            }
        CHECK(convs == 16 && reflect == 16, "%s: %d of %d convs reflect-padded by k/2", what,
              reflect, convs);
        const cJSON *r3 = node_named(g, "res3.conv2.conv2d");
        CHECK(r3 && dattr(r3, "cin", 0) == 128 && dattr(r3, "cout", 0) == 128 &&
              dattr(r3, "k", 0) == 3, "%s: res3.conv2.conv2d is not 128->128 3x3", what);
        const cJSON *c2 = node_named(g, "conv2.conv2d"), *c3 = node_named(g, "conv3.conv2d");
        CHECK(c2 && c3 && dattr(c2, "stride", 1) == 2 && dattr(c3, "stride", 1) == 2,
              "%s: conv2/conv3 must have stride 2", what);
        /* residual blocks add the second norm to the block input, with no ReLU after */
        for (int b = 1; b <= 5; b++) {
            char add[32], norm[32], prev[32];
            snprintf(add, sizeof add, "res%d.add", b);
            snprintf(norm, sizeof norm, "res%d.in2", b);
            snprintf(prev, sizeof prev, b == 1 ? "relu3" : "res%d.add", b - 1);
            int k = node_index(g, add);
            CHECK(k >= 0 && !strcmp(op_of(g, k), "add") &&
                      ((!strcmp(input_of(g, k, 0), norm) && !strcmp(input_of(g, k, 1), prev)) ||
                       (!strcmp(input_of(g, k, 1), norm) && !strcmp(input_of(g, k, 0), prev))) &&
                      strcmp(op_of(g, k + 1), "relu"),
                  "%s: block %d is not %s + %s", what, b, norm, prev);
        }
        /* nearest x2 upsampling right before deconv1 and deconv2 */
        for (int d = 1; d <= 2; d++) {
            char conv[32];
            snprintf(conv, sizeof conv, "deconv%d.conv2d", d);
            int k = node_index(g, conv);
            CHECK(k > 0 && !strcmp(op_of(g, k - 1), "upsample_nearest") &&
                      dattr(g->node[k - 1], "factor", 2) == 2 && !strcmp(input_of(g, k, 0), g->name[k - 1]),
                  "%s: %s does not read a x2 nearest upsampling", what, conv);
        }
        /* the 0..255 scaling around the net, and the output after it */
        const cJSON *first = g->node[0], *last = g->node[g->n - 1];
        int affine_first = !strcmp(op_of(g, 0), "channel_affine");
        int affine_last = !strcmp(op_of(g, g->n - 1), "channel_affine");
        if (in255) {
            CHECK(affine_first && dattr(first, "scale", 0) == 255 && dattr(first, "shift", 1) == 0,
                  "%s: first node is not x255", what);
            CHECK(affine_last && fabs(dattr(last, "scale", 0) - 1.0 / 255) < 1e-15 &&
                      dattr(last, "shift", 1) == 0 && g->out == g->n - 1 &&
                      !strcmp(input_of(g, g->n - 1, 0), "deconv3.conv2d"),
                  "%s: the output is not deconv3.conv2d / 255", what);
        } else {
            CHECK(!affine_first && !affine_last && !strcmp(g->name[g->out], "deconv3.conv2d"),
                  "%s: scaling nodes without input_255, or output not deconv3.conv2d", what);
        }
        engine_agrees(g, what, 64, 48);
        graph_free(g);
    }
    /* a smaller net: base 8, 2 blocks */
    Graph *g = graph_read(percept_arch_johnson(&(PerceptJohnsonOpts){8, 2, 0}), "johnson b8", 36, 28);
    if (g) {
        /* 3-8 9x9, 8-16, 16-32, 2 blocks of 32-32 twice, 32-16, 16-8, 8-3 9x9 + 5 norms ×2 */
        size_t want = (3 * 8 * 81 + 8) + (8 * 16 * 9 + 16) + (16 * 32 * 9 + 32) +
                      4 * (32 * 32 * 9 + 32) + (32 * 16 * 9 + 16) + (16 * 8 * 9 + 8) +
                      (8 * 3 * 81 + 3) + 2 * (8 + 16 + 32 + 16 + 8) + 4 * 2 * 32;
        CHECK(g->ok && g->params == want, "johnson b8 r2: %zu parameters, want %zu", g->params,
              want);
        CHECK(node_index(g, "res3.add") < 0 && node_index(g, "res2.add") >= 0,
              "johnson b8 r2: wrong number of blocks");
        engine_agrees(g, "johnson b8", 36, 28);
        graph_free(g);
    }
    refuses(percept_arch_johnson(&(PerceptJohnsonOpts){0, 5, 0}), "johnson base 0", "base 0");
    refuses(percept_arch_johnson(&(PerceptJohnsonOpts){32, -1, 0}), "johnson -1 blocks", "-1 blocks");
    refuses(percept_arch_johnson(&(PerceptJohnsonOpts){32, 65, 0}), "johnson 65 blocks", "65 blocks");
    refuses(percept_arch_johnson(NULL), "johnson NULL", "options");
}

/* ---- super-resolution ------------------------------------------------------------------ */

static void check_sr(void)
{
    static const int scales[] = {2, 4, 8};
    for (int kind = 0; kind <= 1; kind++)
        for (int si = 0; si < 3; si++) {
            const int s = scales[si], C = 64, B = 4, ups = si + 1;
            char what[64];
            snprintf(what, sizeof what, "sr %s x%d", kind ? "shuffle" : "johnson", s);
            Graph *g = graph_read(percept_arch_sr(&(PerceptSrOpts){kind, s, C, B, 0, 0, 0}), what, 13, 9);
            if (!g)
                continue;
            CHECK(g->ok, "%s breaks the format's rules", what);
            CHECK(g->c[g->out] == 3 && g->h[g->out] == 13 * s && g->w[g->out] == 9 * s,
                  "%s: 9x13 gives %dx%dx%d", what, g->c[g->out], g->w[g->out], g->h[g->out]);
            size_t conv3 = 9 * C * C + C, want, bufs;
            if (!kind) {
                /* 9x9 3->C + BN, B blocks of 2 (conv + BN), log2 s (conv + BN), 9x9 C->3 */
                want = (81 * 3 * C + C) + 2 * C + B * 2 * (conv3 + 2 * C) + ups * (conv3 + 2 * C) +
                       (81 * C * 3 + 3);
                bufs = 2 * C * (1 + 2 * B + ups);
            } else {
                /* 5x5 3->C, B blocks of 2 convs, 3x3 C->3 s^2 */
                want = (25 * 3 * C + C) + B * 2 * conv3 + (9 * C * 3 * s * s + 3 * s * s);
                bufs = 0;
            }
            CHECK(g->params == want && g->buffers == bufs,
                  "%s: %zu parameters and %zu buffers, want %zu and %zu", what, g->params,
                  g->buffers, want, bufs);
            if (!kind && s == 4)
                CHECK(g->params == 401859, "Johnson SR x4 default: %zu parameters", g->params);
            int upsamples = 0, shuffles = 0, relus = 0, convs = 0, reflect = 0;
            for (int i = 0; i < g->n; i++) {
                const char *op = op_of(g, i);
                upsamples += !strcmp(op, "upsample_nearest");
                shuffles += !strcmp(op, "pixel_shuffle") && dattr(g->node[i], "r", 0) == s;
                relus += !strcmp(op, "relu");
                if (!strcmp(op, "conv2d")) {
                    const char *m = cJSON_GetStringValue(cJSON_GetObjectItem(g->node[i], "pad_mode"));
                    convs++;
                    reflect += m && !strcmp(m, "reflect");
                }
            }
            CHECK(convs == reflect, "%s: %d of %d convs reflect-padded", what, reflect, convs);
            const cJSON *last = g->node[g->out];
            if (!kind) {
                CHECK(upsamples == ups && shuffles == 0 && relus == 1 + B + ups,
                      "%s: %d upsamplings (want %d), %d relus", what, upsamples, ups, relus);
                CHECK(!strcmp(op_of(g, g->out), "scaled_tanh") && dattr(last, "scale", 0.5) == 0.5 &&
                          dattr(last, "shift", 0.5) == 0.5,
                      "%s: output is not 0.5 tanh + 0.5", what);
                CHECK(node_named(g, "head.conv") && node_named(g, "body.0.conv1") &&
                          node_named(g, "body.3.bn2") && node_named(g, "up.0.conv") &&
                          node_named(g, "tail.conv"), "%s: PyTorch-like names missing", what);
            } else {
                CHECK(shuffles == 1 && relus == 1 + B, "%s: %d shuffles by %d, %d relus", what,
                      shuffles, s, relus);
                const cJSON *head = node_named(g, "head.conv");
                CHECK(head && dattr(head, "k", 0) == 5 && g->h[node_index(g, "tail.conv")] == 13,
                      "%s: not a 5x5 head working at low resolution", what);
            }
            engine_agrees(g, what, 13, 9);
            graph_free(g);
        }
    refuses(percept_arch_sr(&(PerceptSrOpts){PERCEPT_SR_JOHNSON, 3, 64, 4, 0, 0, 0}), "sr x3", "2, 4 or 8");
    refuses(percept_arch_sr(&(PerceptSrOpts){PERCEPT_SR_SHUFFLE, 1, 64, 4, 0, 0, 0}), "sr x1", "2, 4 or 8");
    refuses(percept_arch_sr(&(PerceptSrOpts){PERCEPT_SR_JOHNSON, 16, 64, 4, 0, 0, 0}), "sr x16", "2, 4 or 8");
    refuses(percept_arch_sr(&(PerceptSrOpts){PERCEPT_SR_JOHNSON, 4, 0, 4, 0, 0, 0}), "sr 0 channels", "0 channels");
    refuses(percept_arch_sr(&(PerceptSrOpts){PERCEPT_SR_JOHNSON, 4, 64, -1, 0, 0, 0}), "sr -1 blocks", "-1 blocks");
    refuses(percept_arch_sr(&(PerceptSrOpts){(PerceptSrKind)2, 4, 64, 4, 0, 0, 0}), "sr kind 2", "kind 2");
    refuses(percept_arch_sr(NULL), "sr NULL", "options");
}

/* The restoration net: the shuffle body at scale 1, added to the input. */
static void check_restore(void)
{
    const int C = 32, B = 3;
    Graph *g = graph_read(percept_arch_restore(&(PerceptRestoreOpts){C, B, 0, 0, 0, 0, 0}), "restore", 13, 9);
    if (!g)
        return;
    CHECK(g->ok, "restore breaks the format's rules");
    CHECK(g->c[g->out] == 3 && g->h[g->out] == 13 && g->w[g->out] == 9,
          "restore: 9x13 gives %dx%dx%d", g->c[g->out], g->w[g->out], g->h[g->out]);
    size_t want = (25 * 3 * C + C) + B * 2 * (9 * C * C + C) + (9 * C * 3 + 3);
    CHECK(g->params == want && g->buffers == 0, "restore: %zu parameters, want %zu", g->params,
          want);
    const cJSON *in = cJSON_GetObjectItem(g->node[g->out], "in");
    CHECK(!strcmp(op_of(g, g->out), "add") && cJSON_GetArraySize(in) == 2 &&
              !strcmp(cJSON_GetStringValue(cJSON_GetArrayItem(in, 1)), "input"),
          "restore: the output is not the correction added to the input");
    engine_agrees(g, "restore", 13, 9);
    graph_free(g);
    refuses(percept_arch_restore(&(PerceptRestoreOpts){0, 4, 0, 0, 0, 0, 0}), "restore 0 channels", "0 channels");
    refuses(percept_arch_restore(&(PerceptRestoreOpts){8, 65, 0, 0, 0, 0, 0}), "restore 65 blocks", "65 blocks");
    refuses(percept_arch_restore(NULL), "restore NULL", "channels");
}

/* Its half-resolution form: the blocks at half the size, the fine features of the first conv
 * added back after the pixel shuffle, alignment 2. */
static void check_restore_half(void)
{
    const int C = 16, B = 2, F = C / 2;
    Graph *g = graph_read(percept_arch_restore(&(PerceptRestoreOpts){C, B, 0, 1, 0, 0, 0}), "restore-half",
                          14, 10);
    if (!g)
        return;
    CHECK(g->ok, "restore-half breaks the format's rules");
    CHECK(g->c[g->out] == 3 && g->h[g->out] == 14 && g->w[g->out] == 10,
          "restore-half: 10x14 gives %dx%dx%d", g->c[g->out], g->w[g->out], g->h[g->out]);
    int body = node_index(g, "body.0.conv1");
    CHECK(body >= 0 && g->h[body] == 7 && g->w[body] == 5 && g->c[body] == C,
          "restore-half: the blocks do not work at half resolution with %d channels", C);
    size_t want = (9 * 3 * F + F) + (16 * F * C + C) + B * 2 * (9 * C * C + C) +
                  (9 * C * 4 * F + 4 * F) + (9 * F * 3 + 3);
    CHECK(g->params == want, "restore-half: %zu parameters, want %zu", g->params, want);
    CHECK(!strcmp(op_of(g, node_index(g, "up.add")), "add") &&
              !strcmp(input_of(g, node_index(g, "up.add"), 1), "head.relu"),
          "restore-half: the full-resolution features do not skip the blocks");
    engine_agrees(g, "restore-half", 14, 10);
    char *json = cJSON_PrintUnformatted(g->root);
    PerceptNet *net = percept_net_from_arch(json, 1);
    free(json);
    CHECK(net && percept_net_alignment(net) == 2, "restore-half: alignment %d, want 2",
          net ? percept_net_alignment(net) : -1);
    percept_net_free(net);
    graph_free(g);
    refuses(percept_arch_restore(&(PerceptRestoreOpts){1, 4, 0, 1, 0, 0, 0}), "restore-half 1 channel",
            "2..1024");

    /* resize_up: nearest ×2 and a 3×3 conv to F channels where the conv to 4F and the pixel
     * shuffle were */
    g = graph_read(percept_arch_restore(&(PerceptRestoreOpts){C, B, 0, 1, 0, 0, 1}),
                   "restore-half resize", 14, 10);
    if (!g)
        return;
    CHECK(g->ok && g->c[g->out] == 3 && g->h[g->out] == 14 && g->w[g->out] == 10,
          "restore-half resize: 10x14 gives %dx%dx%d", g->c[g->out], g->w[g->out], g->h[g->out]);
    want += (9 * C * F + F) - (9 * C * 4 * F + 4 * F);
    CHECK(g->params == want, "restore-half resize: %zu parameters, want %zu", g->params, want);
    CHECK(!strcmp(op_of(g, node_index(g, "up.upsample")), "upsample_nearest") &&
              node_index(g, "up.shuffle") < 0 &&
              !strcmp(input_of(g, node_index(g, "up.add"), 0), "up.conv"),
          "restore-half resize: not upsample, conv, add");
    engine_agrees(g, "restore-half resize", 14, 10);
    graph_free(g);
}

/* Standard deviation of a parameter tensor of net ÷ He's sqrt(2 / fan_in). */
static double std_over_he(PerceptNet *net, const char *name, int fan_in)
{
    size_t n = 0;
    const float *w = percept_net_param(net, name, &n);
    if (!w || !n)
        return -1;
    double s = 0;
    for (size_t i = 0; i < n; i++)
        s += (double)w[i] * w[i];
    return sqrt(s / (double)n) / sqrt(2.0 / fan_in);
}

/* block_gain scales each residual block's second conv at initialisation, and only that
 * conv; 0 (the default) writes no attribute, so older arch strings stay as they were. */
static void check_block_gain(void)
{
    const int C = 32, B = 3;
    for (int half = 0; half <= 1; half++) {
        const char *what = half ? "restore-half block gain" : "restore block gain";
        Graph *g = graph_read(percept_arch_restore(&(PerceptRestoreOpts){C, B, 0, half, 0.1f, 0, 0}),
                              what, 16, 16);
        if (!g)
            continue;
        CHECK(g->ok, "%s breaks the format's rules", what);
        for (int i = 0; i < B; i++) {
            char name[32];
            snprintf(name, sizeof name, "body.%d.conv2", i);
            CHECK(fabs(dattr(node_named(g, name), "init_gain", 1) - 0.1) < 1e-6,
                  "%s: %s has init_gain %g, want 0.1", what, name,
                  dattr(node_named(g, name), "init_gain", 1));
            snprintf(name, sizeof name, "body.%d.conv1", i);
            CHECK(dattr(node_named(g, name), "init_gain", 1) == 1, "%s: %s is scaled too", what,
                  name);
        }
        char *json = cJSON_PrintUnformatted(g->root);
        PerceptNet *net = percept_net_from_arch(json, 7);
        free(json);
        double conv2 = std_over_he(net, "body.1.conv2.weight", 9 * C);
        double conv1 = std_over_he(net, "body.1.conv1.weight", 9 * C);
        CHECK(fabs(conv2 - 0.1) < 0.01 && fabs(conv1 - 1) < 0.1,
              "%s: initial weights %.3f (conv2) and %.3f (conv1) of He's, want 0.1 and 1", what,
              conv2, conv1);
        percept_net_free(net);
        graph_free(g);
    }
    Graph *g = graph_read(percept_arch_sr(&(PerceptSrOpts){PERCEPT_SR_SHUFFLE, 2, 8, 2, 0, 0.5f, 0}),
                          "sr-shuffle block gain", 8, 8);
    if (g) {
        CHECK(dattr(node_named(g, "body.1.conv2"), "init_gain", 1) == 0.5,
              "sr-shuffle: block gain 0.5 not on body.1.conv2");
        graph_free(g);
    }
    g = graph_read(percept_arch_restore(&(PerceptRestoreOpts){8, 2, 0, 0, 0, 0, 0}), "restore", 8, 8);
    if (g) {
        CHECK(!cJSON_GetObjectItem(node_named(g, "body.0.conv2"), "init_gain"),
              "restore: the default block gain writes an init_gain");
        graph_free(g);
    }
    refuses(percept_arch_restore(&(PerceptRestoreOpts){8, 2, 0, 0, -1, 0, 0}), "restore gain -1",
            "block gains");
}

/* center_input puts x − 0.5 before the head conv and nowhere else: the net equals the
 * uncentred one whose head biases absorb −0.5 · (each unit's weight sum), skip paths
 * included (they must still see the raw input). Off by default: no node is written. */
static void check_center_input(void)
{
    char *pairs[3][2] = {
        {percept_arch_sr(&(PerceptSrOpts){PERCEPT_SR_SHUFFLE, 4, 8, 2, 0, 0, 1}),
         percept_arch_sr(&(PerceptSrOpts){PERCEPT_SR_SHUFFLE, 4, 8, 2, 0, 0, 0})},
        {percept_arch_restore(&(PerceptRestoreOpts){8, 2, 0, 0, 0, 1, 0}),
         percept_arch_restore(&(PerceptRestoreOpts){8, 2, 0, 0, 0, 0, 0})},
        {percept_arch_restore(&(PerceptRestoreOpts){8, 2, 0, 1, 0, 1, 0}),
         percept_arch_restore(&(PerceptRestoreOpts){8, 2, 0, 1, 0, 0, 0})}};
    const char *what[3] = {"sr-shuffle centred", "restore centred", "restore-half centred"};
    const int h = 10, w = 12, n = 3 * h * w;
    float x[3 * 10 * 12];
    for (int i = 0; i < n; i++)
        x[i] = (float)((i * 37) % 101) / 100.0f;
    for (int k = 0; k < 3; k++) {
        Graph *g = graph_read(strdup(pairs[k][0]), what[k], h, w);
        if (g) {
            const cJSON *c = node_named(g, "center");
            const cJSON *op = c ? cJSON_GetObjectItem(c, "op") : NULL;
            CHECK(cJSON_IsString(op) && !strcmp(op->valuestring, "channel_affine") &&
                      dattr(c, "shift", 0) == -0.5 && dattr(c, "scale", 0) == 1,
                  "%s: no channel_affine x − 0.5 node named center", what[k]);
            graph_free(g);
        }
        g = graph_read(strdup(pairs[k][1]), what[k], h, w);
        if (g) {
            CHECK(!node_named(g, "center"), "%s: the default writes a center node", what[k]);
            graph_free(g);
        }
        PerceptNet *a = percept_net_from_arch(pairs[k][0], 5);
        PerceptNet *b = percept_net_from_arch(pairs[k][1], 5);
        size_t nw = 0, nb = 0;
        float *wt = b ? percept_net_param(b, "head.conv.weight", &nw) : NULL;
        float *bias = b ? percept_net_param(b, "head.conv.bias", &nb) : NULL;
        CHECK(a && wt && bias && nb && nw % nb == 0, "%s: nets not built", what[k]);
        if (a && wt && bias && nb) {
            for (size_t o = 0; o < nb; o++) {
                double sum = 0;
                for (size_t j = 0; j < nw / nb; j++)
                    sum += wt[o * (nw / nb) + j];
                bias[o] -= (float)(0.5 * sum);
            }
            PerceptTensor in = {1, 3, h, w, x}, ya, yb;
            CHECK(!percept_net_forward(a, &in, &ya), "%s: forward failed", what[k]);
            size_t m = percept_tensor_numel(&ya);
            float *keep = malloc(sizeof(float) * m);
            memcpy(keep, ya.data, sizeof(float) * m);
            CHECK(!percept_net_forward(b, &in, &yb) && percept_tensor_numel(&yb) == m,
                  "%s: forward failed", what[k]);
            double err = 0;
            for (size_t i = 0; i < m; i++)
                err = fmax(err, fabs(keep[i] - yb.data[i]));
            CHECK(err < 1e-5, "%s: differs from the bias-shifted uncentred net by %g", what[k],
                  err);
            free(keep);
        }
        percept_net_free(a);
        percept_net_free(b);
        free(pairs[k][0]);
        free(pairs[k][1]);
    }
}

/* ---- DeePSiM --------------------------------------------------------------------------- */

static void check_discriminator(void)
{
    /* size, first stride, side of conv5's map: the paper's 64 (Table 1) and 227 (supplement
     * Table 1); the 4x4 floor moves the stride at 111; small inputs fall back to stride 1 */
    static const struct { int size, stride, last; } cases[] = {
        {227, 4, 11}, {64, 2, 4}, {96, 2, 8}, {111, 4, 4}, {110, 2, 10}, {128, 4, 5},
        {59, 2, 4}, {58, 1, 10}, {40, 1, 5}, {21, 1, 1}};
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        char what[64];
        int sz = cases[i].size;
        snprintf(what, sizeof what, "discriminator %d", sz);
        Graph *g = graph_read(percept_arch_deepsim_discriminator(&(PerceptDiscriminatorOpts){sz, 32}),
                              what, sz, sz);
        if (!g)
            continue;
        int c5 = node_index(g, "conv5");
        const cJSON *c1 = node_named(g, "conv1");
        CHECK(g->ok && c1 && dattr(c1, "stride", 1) == cases[i].stride && c5 >= 0 &&
                  g->h[c5] == cases[i].last && g->w[c5] == cases[i].last,
              "%s: stride %g and last map %d, want %d and %d", what, c1 ? dattr(c1, "stride", 1) : 0,
              c5 >= 0 ? g->h[c5] : -1, cases[i].stride, cases[i].last);
        CHECK(g->c[g->out] == 1 && g->h[g->out] == 1 && g->w[g->out] == 1,
              "%s: output %dx%dx%d, want one logit", what, g->c[g->out], g->h[g->out],
              g->w[g->out]);
        /* Table 1 at width 32 (paper: fc 2 + softmax; here one logit) */
        size_t want = (3 * 49 * 32 + 32) + (32 * 25 * 64 + 64) + (64 * 9 * 128 + 128) +
                      (128 * 9 * 256 + 256) + (256 * 9 * 256 + 256) + (256 * 512 + 512) +
                      (512 + 1);
        CHECK(g->params == want, "%s: %zu parameters, want %zu", what, g->params, want);
        /* pool -> dropout 0.5 -> fc1 -> relu -> dropout 0.5 -> fc2 */
        static const char *const tail[] = {"global_avg_pool", "dropout", "linear", "relu",
                                           "dropout", "linear"};
        int k = node_index(g, "pool"), tail_ok = k >= 0 && k + 6 == g->n;
        for (int t = 0; tail_ok && t < 6; t++)
            tail_ok = !strcmp(op_of(g, k + t), tail[t]) &&
                      (strcmp(tail[t], "dropout") || dattr(g->node[k + t], "p", 0.5) == 0.5);
        CHECK(tail_ok, "%s: head is not pool, dropout, fc, relu, dropout, fc", what);
        int relus = 0, leaky = 0;
        for (int j = 0; j < g->n; j++) {
            relus += !strcmp(op_of(g, j), "relu");
            leaky += !strcmp(op_of(g, j), "leaky_relu");
        }
        CHECK(relus == 6 && leaky == 0, "%s: %d ReLUs and %d leaky ones, want 6 and 0 (the "
              "paper's ReLU)", what, relus, leaky);
        engine_agrees(g, what, sz, sz);
        graph_free(g);
    }
    Graph *g = graph_read(percept_arch_deepsim_discriminator(&(PerceptDiscriminatorOpts){64, 8}),
                          "discriminator w8", 64, 64);
    if (g) {
        const cJSON *c5 = node_named(g, "conv5"), *fc1 = node_named(g, "fc1");
        CHECK(g->ok && c5 && dattr(c5, "cout", 0) == 64 && fc1 && dattr(fc1, "fout", 0) == 128,
              "discriminator width 8: channels are not scaled by 8/32");
        graph_free(g);
    }
    refuses(percept_arch_deepsim_discriminator(&(PerceptDiscriminatorOpts){20, 32}),
            "discriminator 20", "21");
    refuses(percept_arch_deepsim_discriminator(&(PerceptDiscriminatorOpts){64, 0}),
            "discriminator width 0", "width");
    refuses(percept_arch_deepsim_discriminator(NULL), "discriminator NULL", "options");
}

static void check_autoencoder(void)
{
    /* Table 2: encoder then decoder, channels at width 32; up = transposed 4x4 stride 2 */
    static const struct { const char *name; int up, cout, k, stride; } table2[] = {
        {"enc.0", 0, 32, 5, 2},  {"enc.1", 0, 32, 3, 1},   {"enc.2", 0, 64, 5, 2},
        {"enc.3", 0, 64, 3, 1},  {"enc.4", 0, 128, 3, 2},  {"enc.5", 0, 128, 3, 1},
        {"enc.6", 0, 64, 3, 1},  {"enc.code", 0, 8, 3, 1}, {"dec.0", 0, 64, 3, 1},
        {"dec.1", 0, 128, 3, 1}, {"dec.2", 1, 64, 4, 2},   {"dec.3", 0, 64, 3, 1},
        {"dec.4", 1, 32, 4, 2},  {"dec.5", 0, 32, 3, 1},   {"dec.6", 1, 16, 4, 2},
        {"dec.7", 0, 3, 3, 1}};
    const int nt = (int)(sizeof table2 / sizeof *table2);
    for (int v = 0; v < 3; v++) {
        static const char *const names[] = {"autoencoder", "autoencoder vae", "autoencoder binary"};
        const char *what = names[v];
        Graph *g = graph_read(percept_arch_deepsim_autoencoder(
                                  &(PerceptAutoencoderOpts){64, 32, 8, v == 1, v == 2}),
                              what, 64, 64);
        if (!g)
            continue;
        CHECK(g->ok, "%s breaks the format's rules", what);
        size_t want = 0;
        int cin = 3, table_ok = 1;
        for (int t = 0; t < nt; t++) {
            int cout = table2[t].cout * (v == 1 && t == 7 ? 2 : 1);
            const cJSON *nd = node_named(g, table2[t].name);
            int layer_ok = nd && !strcmp(cJSON_GetStringValue(cJSON_GetObjectItem(nd, "op")),
                                         table2[t].up ? "conv_transpose2d" : "conv2d") &&
                           dattr(nd, "cout", 0) == cout && dattr(nd, "k", 0) == table2[t].k &&
                           dattr(nd, "stride", table2[t].up ? 2 : 1) == table2[t].stride &&
                           dattr(nd, "pad", 0) == (table2[t].up ? 1 : table2[t].k / 2);
            if (!layer_ok) {
                CHECK(0, "%s: %s is not Table 2's layer", what, table2[t].name);
                table_ok = 0;
            }
            want += (size_t)cin * cout * table2[t].k * table2[t].k + cout;
            cin = t == 7 ? 8 : cout; /* the decoder reads the 8-channel code */
        }
        CHECK(table_ok && g->params == want, "%s: %zu parameters, want %zu", what, g->params, want);
        /* the code: an 8-channel map 8x smaller than the image */
        int code = node_index(g, v == 1 ? "enc.sample" : v == 2 ? "enc.binary" : "enc.code");
        CHECK(code >= 0 && g->c[code] == 8 && g->h[code] == 8 && g->w[code] == 8 &&
                  !strcmp(input_of(g, node_index(g, "dec.0"), 0), g->name[code]),
              "%s: the decoder does not read an 8x8x8 code", what);
        if (v == 1)
            CHECK(!strcmp(op_of(g, code), "reparam") && g->c[code - 1] == 16,
                  "%s: no reparameterisation of 16 channels", what);
        if (v == 2)
            CHECK(!strcmp(op_of(g, code), "binary") && !strcmp(op_of(g, code - 1), "tanh"),
                  "%s: the code is not tanh then binary", what);
        if (v == 0)
            CHECK(node_index(g, "enc.sample") < 0 && node_index(g, "enc.binary") < 0,
                  "%s: plain autoencoder with a stochastic or binary code", what);
        int lrelu = 0, acts = 0;
        for (int i = 0; i < g->n; i++)
            if (strstr(g->name[i], ".act")) {
                acts++;
                lrelu += !strcmp(op_of(g, i), "leaky_relu") && dattr(g->node[i], "alpha", 0) == 0.3;
            }
        CHECK(acts == 14 && lrelu == 14, "%s: %d of %d activations are LeakyReLU 0.3", what,
              lrelu, acts);
        CHECK(!strcmp(op_of(g, g->out), "scaled_tanh") && dattr(g->node[g->out], "scale", 0.5) == 0.5 &&
                  dattr(g->node[g->out], "shift", 0.5) == 0.5 && g->c[g->out] == 3 &&
                  g->h[g->out] == 64 && g->w[g->out] == 64,
              "%s: output is not a 0..1 3x64x64 image", what);
        engine_agrees(g, what, 64, 64);
        graph_free(g);
    }
    /* other sizes and widths: fully convolutional, channels scale */
    Graph *g = graph_read(percept_arch_deepsim_autoencoder(&(PerceptAutoencoderOpts){96, 16, 4, 0, 0}),
                          "autoencoder 96 w16", 96, 96);
    if (g) {
        int code = node_index(g, "enc.code");
        const cJSON *e4 = node_named(g, "enc.4");
        CHECK(g->ok && code >= 0 && g->c[code] == 4 && g->h[code] == 12 && e4 &&
                  dattr(e4, "cout", 0) == 64 && g->h[g->out] == 96,
              "autoencoder 96 w16 c4: code %dx%dx%d", code >= 0 ? g->c[code] : 0,
              code >= 0 ? g->h[code] : 0, code >= 0 ? g->w[code] : 0);
        engine_agrees(g, "autoencoder 96 w16", 96, 96);
        graph_free(g);
    }
    refuses(percept_arch_deepsim_autoencoder(&(PerceptAutoencoderOpts){60, 32, 8, 0, 0}),
            "autoencoder 60", "multiple of 8");
    refuses(percept_arch_deepsim_autoencoder(&(PerceptAutoencoderOpts){0, 32, 8, 0, 0}),
            "autoencoder 0", "multiple of 8");
    refuses(percept_arch_deepsim_autoencoder(&(PerceptAutoencoderOpts){64, 0, 8, 0, 0}),
            "autoencoder width 0", "width");
    refuses(percept_arch_deepsim_autoencoder(&(PerceptAutoencoderOpts){64, 32, 0, 0, 0}),
            "autoencoder code 0", "code");
    refuses(percept_arch_deepsim_autoencoder(&(PerceptAutoencoderOpts){64, 32, 8, 1, 1}),
            "autoencoder vae+binary", "exclude");
    refuses(percept_arch_deepsim_autoencoder(NULL), "autoencoder NULL", "options");
}

/* ---- VGG-16 ---------------------------------------------------------------------------- */

static void check_vgg16(void)
{
    static const char *const layers[] = {"relu1_1", "relu1_2", "relu2_1", "relu2_2", "relu3_1",
                                         "relu3_2", "relu3_3", "relu4_1", "relu4_2", "relu4_3",
                                         "relu5_1", "relu5_2", "relu5_3"};
    static const int index[] = {1, 3, 6, 8, 11, 13, 15, 18, 20, 22, 25, 27, 29};
    /* torchvision vgg16().features, parameters up to each ReLU */
    static const size_t params[] = {1792,    38720,   112576,  260160,   555328,
                                    1145408, 1735488, 2915648, 5275456,  7635264,
                                    9995072, 12354880, 14714688};
    static const int side[] = {224, 224, 112, 112, 56, 56, 56, 28, 28, 28, 14, 14, 14};
    static const int chans[] = {64, 64, 128, 128, 256, 256, 256, 512, 512, 512, 512, 512, 512};
    for (int l = 0; l < 13; l++) {
        char what[32];
        snprintf(what, sizeof what, "vgg16 %s", layers[l]);
        CHECK(percept_vgg16_layer_index(layers[l]) == index[l], "%s: index %d, want %d", what,
              percept_vgg16_layer_index(layers[l]), index[l]);
        Graph *g = graph_read(percept_arch_vgg16(layers[l]), what, 224, 224);
        if (!g)
            continue;
        CHECK(g->ok && g->params == params[l], "%s: %zu parameters, want %zu", what, g->params,
              params[l]);
        char last[32];
        snprintf(last, sizeof last, "features.%d", index[l]);
        CHECK(!strcmp(g->name[g->out], last) && !strcmp(op_of(g, g->out), "relu") &&
                  g->n == index[l] + 2,
              "%s: ends at %s (%d nodes), want %s", what, g->name[g->out], g->n, last);
        CHECK(g->c[g->out] == chans[l] && g->h[g->out] == side[l] && g->w[g->out] == side[l],
              "%s: %dx%dx%d at 224", what, g->c[g->out], g->h[g->out], g->w[g->out]);
        /* features.N is node N + 1 (after normalize): convs, relus, pools where torchvision has them */
        int layout_ok = 1;
        for (int i = 1; i < g->n; i++) {
            int N = i - 1, pool = N == 4 || N == 9 || N == 16 || N == 23 || N == 30;
            int relu = !pool && (N == 1 || N == 3 || N == 6 || N == 8 || N == 11 || N == 13 ||
                                 N == 15 || N == 18 || N == 20 || N == 22 || N == 25 ||
                                 N == 27 || N == 29);
            char want[32];
            snprintf(want, sizeof want, "features.%d", N);
            const char *op = op_of(g, i);
            const char *mode = cJSON_GetStringValue(cJSON_GetObjectItem(g->node[i], "pad_mode"));
            int ok = !strcmp(g->name[i], want) &&
                     (pool ? !strcmp(op, "max_pool") && dattr(g->node[i], "k", 0) == 2 &&
                                 dattr(g->node[i], "stride", 2) == 2
                      : relu ? !strcmp(op, "relu")
                             : !strcmp(op, "conv2d") && dattr(g->node[i], "k", 0) == 3 &&
                                   dattr(g->node[i], "pad", 0) == 1 &&
                                   (!mode || !strcmp(mode, "zero")));
            if (!ok && layout_ok) {
                CHECK(0, "%s: node %d is %s (%s), not torchvision's %s", what, i, g->name[i], op,
                      want);
                layout_ok = 0;
            }
        }
        /* ImageNet normalisation first, on a 0..1 input */
        const cJSON *nd = g->node[0];
        const cJSON *sc = cJSON_GetObjectItem(nd, "scale"), *sh = cJSON_GetObjectItem(nd, "shift");
        const double mean[3] = {0.485, 0.456, 0.406}, sd[3] = {0.229, 0.224, 0.225};
        int norm_ok = !strcmp(g->name[0], "normalize") && !strcmp(op_of(g, 0), "channel_affine") &&
                      cJSON_GetArraySize(sc) == 3 && cJSON_GetArraySize(sh) == 3;
        for (int c = 0; norm_ok && c < 3; c++)
            norm_ok = fabs(cJSON_GetArrayItem(sc, c)->valuedouble - 1 / sd[c]) < 1e-12 &&
                      fabs(cJSON_GetArrayItem(sh, c)->valuedouble + mean[c] / sd[c]) < 1e-12;
        CHECK(norm_ok, "%s: first node is not the ImageNet normalisation", what);
        if (l == 3 || l == 12)
            engine_agrees(g, what, 224, 224);
        graph_free(g);
    }
    CHECK(percept_vgg16_layer_index("pool") == -1 && percept_vgg16_layer_index("conv1_1") == -1 &&
              percept_vgg16_layer_index("relu5_4") == -1 && percept_vgg16_layer_index(NULL) == -1,
          "VGG-16 layer index accepts unknown names");
    refuses(percept_arch_vgg16("relu9_9"), "vgg16 relu9_9", "relu9_9");
    refuses(percept_arch_vgg16("conv1_1"), "vgg16 conv1_1", "conv1_1");
    refuses(percept_arch_vgg16(NULL), "vgg16 NULL", "VGG-16");
}

/* ---- the checker itself must catch broken graphs -------------------------------------- */

static char *dup(const char *s)
{
    char *d = malloc(strlen(s) + 1);
    return d ? strcpy(d, s) : NULL;
}

static void check_checker(void)
{
    static const char *const broken[] = {
        /* duplicate name */
        "{\"format\":1,\"name\":\"x\",\"input_channels\":3,\"nodes\":[{\"name\":\"a\",\"op\":\"relu\"},"
        "{\"name\":\"a\",\"op\":\"relu\"}]}",
        /* input from a later node */
        "{\"format\":1,\"name\":\"x\",\"input_channels\":3,\"nodes\":[{\"name\":\"a\",\"op\":\"relu\","
        "\"in\":[\"b\"]},{\"name\":\"b\",\"op\":\"relu\"}]}",
        /* unknown op */
        "{\"format\":1,\"name\":\"x\",\"input_channels\":3,\"nodes\":[{\"name\":\"a\",\"op\":\"gelu\"}]}",
        /* channels that do not chain */
        "{\"format\":1,\"name\":\"x\",\"input_channels\":3,\"nodes\":[{\"name\":\"a\",\"op\":\"conv2d\","
        "\"cin\":4,\"cout\":8,\"k\":3}]}",
        /* output naming nothing */
        "{\"format\":1,\"name\":\"x\",\"input_channels\":3,\"output\":\"z\",\"nodes\":[{\"name\":\"a\","
        "\"op\":\"relu\"}]}"};
    int caught = 0;
    quiet = 1;
    for (size_t i = 0; i < sizeof broken / sizeof *broken; i++) {
        Graph *g = graph_read(dup(broken[i]), "deliberately broken", 8, 8);
        caught += g && !g->ok;
        if (g)
            graph_free(g);
    }
    quiet = 0;
    CHECK(caught == (int)(sizeof broken / sizeof *broken), "the checker caught %d of %zu broken "
          "graphs", caught, sizeof broken / sizeof *broken);
    Graph *g = graph_read(dup("{\"format\":1,\"name\":\"x\",\"input_channels\":3,\"nodes\":["
                                 "{\"name\":\"a\",\"op\":\"conv2d\",\"cin\":3,\"cout\":8,\"k\":3,"
                                 "\"bias\":false},{\"name\":\"n\",\"op\":\"batch_norm\",\"c\":8}]}"),
                          "small graph", 8, 8);
    CHECK(g && g->ok && g->params == 3 * 8 * 9 + 16 && g->buffers == 16 && g->h[1] == 6,
          "the checker miscounts a small graph");
    if (g)
        graph_free(g);
}

int main(void)
{
    check_checker();
    check_johnson();
    check_sr();
    check_restore();
    check_restore_half();
    check_block_gain();
    check_center_input();
    check_discriminator();
    check_autoencoder();
    check_vgg16();
    return check_done("test-arch");
}
