/* Networks: built from the architecture JSON (docs/arch-format.md), parameters in one
 * arena, run node by node through a backend. */
#include <cjson/cJSON.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"

const char *const op_names[OP_COUNT] = {
    "conv2d", "conv_transpose2d", "upsample_nearest", "pixel_shuffle",
    "instance_norm", "batch_norm",
    "relu", "leaky_relu", "tanh", "scaled_tanh", "sigmoid", "cos",
    "add", "concat", "avg_pool", "max_pool", "global_avg_pool",
    "linear", "reshape", "channel_affine", "dropout", "binary", "reparam",
};

/* 2^31 floats (8 GiB): far beyond any image network, small enough to refuse absurd claims */
#define PARAMS_MAX ((size_t)1 << 31)

static const char *const slot_suffix[PARAM_SLOTS] = {"weight", "bias", "running_mean",
                                                     "running_var"};

/* ---- reading attributes --------------------------------------------------------- */

static int attr_int(const cJSON *o, const char *key, int def, int required, int lo, int hi,
                    const Node *node, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) {
        if (required)
            return percept_fail("node '%s' (%s): missing attribute '%s'", node->name,
                                op_names[node->op], key);
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || v->valuedouble != floor(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return percept_fail("node '%s' (%s): attribute '%s' must be an integer in %d..%d",
                            node->name, op_names[node->op], key, lo, hi);
    *out = (int)v->valuedouble;
    return 0;
}

static int attr_float(const cJSON *o, const char *key, float def, double lo, double hi,
                      const Node *node, float *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble) || v->valuedouble < lo ||
        v->valuedouble > hi)
        return percept_fail("node '%s' (%s): attribute '%s' must be a number in [%g, %g]",
                            node->name, op_names[node->op], key, lo, hi);
    *out = (float)v->valuedouble;
    return 0;
}

static int attr_bool(const cJSON *o, const char *key, int def, const Node *node, int *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(v))
        return percept_fail("node '%s': attribute '%s' must be true or false", node->name, key);
    *out = cJSON_IsTrue(v);
    return 0;
}

/* channel_affine's scale/shift: one number, or an array with one per channel */
static int attr_floats(const cJSON *o, const char *key, const Node *node, float **out, int *n)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    int count = !v ? 0 : cJSON_IsArray(v) ? cJSON_GetArraySize(v) : 1;
    if (!v || count < 1 || count > 65536)
        return percept_fail("node '%s' (channel_affine): '%s' must be a number or an array "
                            "of numbers", node->name, key);
    float *a = malloc(sizeof(float) * count);
    if (!a)
        return percept_fail("out of memory");
    for (int i = 0; i < count; i++) {
        const cJSON *e = cJSON_IsArray(v) ? cJSON_GetArrayItem(v, i) : v;
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble)) {
            free(a);
            return percept_fail("node '%s' (channel_affine): '%s' must hold finite numbers",
                                node->name, key);
        }
        a[i] = (float)e->valuedouble;
    }
    *out = a;
    *n = count;
    return 0;
}

/* ---- parameters ------------------------------------------------------------------ */

static int add_param(PerceptNet *net, Node *node, ParamSlot slot, int trainable, int ndim,
                     const int64_t *shape)
{
    Param *p = &net->params[net->n_params];
    size_t len = strlen(node->name) + strlen(slot_suffix[slot]) + 2;
    p->name = malloc(len);
    if (!p->name)
        return percept_fail("out of memory");
    snprintf(p->name, len, "%s.%s", node->name, slot_suffix[slot]);
    for (int i = 0; i < net->n_params; i++)
        if (!strcmp(net->params[i].name, p->name)) {
            percept_fail("parameter name '%s' is used twice", p->name);
            free(p->name);
            return -1;
        }
    p->ndim = ndim;
    p->numel = 1;
    for (int i = 0; i < ndim; i++) {
        p->shape[i] = shape[i];
        p->numel *= (size_t)shape[i];
    }
    if (p->numel > PARAMS_MAX || net->params_floats + net->buffers_floats + p->numel > PARAMS_MAX) {
        percept_fail("parameter '%s': the network declares more than %zu parameters", p->name,
                     (size_t)PARAMS_MAX);
        free(p->name);
        return -1;
    }
    p->trainable = trainable;
    p->init_gain = node->op == OP_CONV2D || node->op == OP_CONV_TRANSPOSE2D || node->op == OP_LINEAR
                       ? node->init_gain
                       : 1.0f;
    if (trainable) {
        p->off = net->params_floats;
        net->params_floats += p->numel;
    } else {
        p->off = net->buffers_floats;
        net->buffers_floats += p->numel;
    }
    node->param[slot] = net->n_params++;
    return 0;
}

static int declare_params(PerceptNet *net, Node *nd)
{
    int64_t s[4];
    int rc = 0;
    switch (nd->op) {
    case OP_CONV2D:
    case OP_CONV_TRANSPOSE2D:
        s[0] = nd->op == OP_CONV2D ? nd->cout : nd->cin;
        s[1] = nd->op == OP_CONV2D ? nd->cin : nd->cout;
        s[2] = s[3] = nd->k;
        rc = add_param(net, nd, PARAM_WEIGHT, 1, 4, s);
        s[0] = nd->cout;
        if (!rc && nd->has_bias)
            rc = add_param(net, nd, PARAM_BIAS, 1, 1, s);
        break;
    case OP_LINEAR:
        s[0] = nd->cout;
        s[1] = nd->cin;
        rc = add_param(net, nd, PARAM_WEIGHT, 1, 2, s);
        if (!rc && nd->has_bias)
            rc = add_param(net, nd, PARAM_BIAS, 1, 1, s);
        break;
    case OP_INSTANCE_NORM:
    case OP_BATCH_NORM:
        s[0] = nd->cout;
        if (nd->affine)
            rc = add_param(net, nd, PARAM_WEIGHT, 1, 1, s);
        if (!rc && nd->affine)
            rc = add_param(net, nd, PARAM_BIAS, 1, 1, s);
        if (!rc && nd->op == OP_BATCH_NORM)
            rc = add_param(net, nd, PARAM_RUNNING_MEAN, 0, 1, s);
        if (!rc && nd->op == OP_BATCH_NORM)
            rc = add_param(net, nd, PARAM_RUNNING_VAR, 0, 1, s);
        break;
    default:
        break;
    }
    return rc;
}

/* He-normal weights (std sqrt(2/fan_in), times the node's init_gain), zero biases, unit
 * norm scales, unit running variance: a deterministic function of the seed. */
static void init_params(PerceptNet *net, uint64_t seed)
{
    for (int i = 0; i < net->n_params; i++) {
        Param *p = &net->params[i];
        float *d = (p->trainable ? net->params_data : net->buffers_data) + p->off;
        const char *suffix = strrchr(p->name, '.') + 1;
        int is_norm_scale = p->ndim == 1 && !strcmp(suffix, "weight");
        if (!strcmp(suffix, "weight") && !is_norm_scale) {
            /* conv (cout,cin,k,k): fan_in cin*k*k; transposed (cin,cout,k,k): cout*k*k */
            size_t fan_in = p->numel / (size_t)p->shape[0];
            float std = p->init_gain * sqrtf(2.0f / (float)fan_in);
            uint64_t stream = seed ^ percept_rng_u64(0x5eed, (uint64_t)i);
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
            /* fuzzing exercises the parsers: drawing VGG-16's 14.7M weights under ASan for
             * every mutated spec would cap a target at ~100 executions a second */
            if (p->numel > 4096)
                continue;
#endif
            for (size_t j = 0; j < p->numel; j++)
                d[j] = std * percept_rng_normal(stream, j);
        } else {
            float v = is_norm_scale || !strcmp(suffix, "running_var") ? 1.0f : 0.0f;
            for (size_t j = 0; j < p->numel; j++)
                d[j] = v;
        }
    }
}

/* ---- parsing ---------------------------------------------------------------------- */

static int find_node(const PerceptNet *net, int before, const char *name)
{
    if (!strcmp(name, "input"))
        return INPUT_NODE;
    for (int i = before - 1; i >= 0; i--)
        if (!strcmp(net->nodes[i].name, name))
            return i;
    return -2;
}

static int parse_inputs(PerceptNet *net, int idx, const cJSON *o)
{
    Node *nd = &net->nodes[idx];
    const cJSON *in = cJSON_GetObjectItemCaseSensitive(o, "in");
    if (!in) {
        nd->n_in = 1;
        nd->in[0] = idx == 0 ? INPUT_NODE : idx - 1;
        return 0;
    }
    if (!cJSON_IsArray(in) || cJSON_GetArraySize(in) < 1 ||
        cJSON_GetArraySize(in) > NODE_MAX_IN)
        return percept_fail("node '%s': 'in' must be a list of 1 to %d node names", nd->name,
                            NODE_MAX_IN);
    nd->n_in = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, in) {
        if (!cJSON_IsString(e))
            return percept_fail("node '%s': 'in' must hold node names", nd->name);
        int j = find_node(net, idx, e->valuestring);
        if (j == -2)
            return percept_fail("node '%s': input '%s' is not an earlier node", nd->name,
                                e->valuestring);
        nd->in[nd->n_in++] = j;
    }
    int want = nd->op == OP_ADD ? 2 : nd->op == OP_CONCAT ? -1 : 1;
    if ((want > 0 && nd->n_in != want) || (want < 0 && nd->n_in < 2))
        return percept_fail("node '%s' (%s) takes %s input%s, got %d", nd->name,
                            op_names[nd->op], want == 2 ? "two" : want == 1 ? "one" : "2 or more",
                            want == 1 ? "" : "s", nd->n_in);
    return 0;
}

static int parse_attrs(Node *nd, const cJSON *o)
{
    const int BIG = 1 << 20;
    int rc = 0;
    const cJSON *pm;
    switch (nd->op) {
    case OP_CONV2D:
    case OP_CONV_TRANSPOSE2D: {
        int tr = nd->op == OP_CONV_TRANSPOSE2D;
        rc = attr_int(o, "cin", 0, 1, 1, BIG, nd, &nd->cin) ||
             attr_int(o, "cout", 0, 1, 1, BIG, nd, &nd->cout) ||
             attr_int(o, "k", 0, 1, 1, 64, nd, &nd->k) ||
             attr_int(o, "stride", tr ? 2 : 1, 0, 1, 64, nd, &nd->stride) ||
             attr_int(o, "pad", 0, 0, 0, 64, nd, &nd->pad) ||
             attr_int(o, "output_pad", 0, 0, 0, 63, nd, &nd->output_pad) ||
             attr_bool(o, "bias", 1, nd, &nd->has_bias) ||
             attr_float(o, "init_gain", 1.0f, 0, 100, nd, &nd->init_gain);
        if (rc)
            return -1;
        pm = cJSON_GetObjectItemCaseSensitive(o, "pad_mode");
        if (pm && !(cJSON_IsString(pm) && (!strcmp(pm->valuestring, "zero") ||
                                            !strcmp(pm->valuestring, "reflect"))))
            return percept_fail("node '%s': pad_mode must be \"zero\" or \"reflect\"", nd->name);
        nd->reflect = pm && !strcmp(pm->valuestring, "reflect");
        if (tr && nd->reflect)
            return percept_fail("node '%s': conv_transpose2d supports zero padding only",
                                nd->name);
        if (tr && nd->output_pad >= nd->stride)
            return percept_fail("node '%s': output_pad must be smaller than stride", nd->name);
        return 0;
    }
    case OP_UPSAMPLE_NEAREST:
        return attr_int(o, "factor", 2, 0, 1, 16, nd, &nd->factor);
    case OP_PIXEL_SHUFFLE:
        return attr_int(o, "r", 0, 1, 1, 16, nd, &nd->factor);
    case OP_INSTANCE_NORM:
    case OP_BATCH_NORM:
        return attr_int(o, "c", 0, 1, 1, BIG, nd, &nd->cout) ||
               attr_bool(o, "affine", 1, nd, &nd->affine) ||
               attr_float(o, "eps", 1e-5f, 1e-12, 1, nd, &nd->eps) ||
               attr_float(o, "momentum", 0.1f, 0, 1, nd, &nd->momentum);
    case OP_LEAKY_RELU:
        return attr_float(o, "alpha", 0.01f, -1e3, 1e3, nd, &nd->alpha);
    case OP_SCALED_TANH:
        return attr_float(o, "scale", 0.5f, -1e6, 1e6, nd, &nd->scale) ||
               attr_float(o, "shift", 0.5f, -1e6, 1e6, nd, &nd->shift);
    case OP_COS:
        return attr_float(o, "scale", 1.0f, -1e6, 1e6, nd, &nd->scale);
    case OP_AVG_POOL:
    case OP_MAX_POOL:
        return attr_int(o, "k", 0, 1, 1, 1024, nd, &nd->k) ||
               attr_int(o, "stride", nd->k, 0, 1, 1024, nd, &nd->stride) ||
               attr_int(o, "pad", 0, 0, 0, nd->k / 2, nd, &nd->pad);
    case OP_LINEAR:
        return attr_int(o, "fin", 0, 1, 1, 1 << 28, nd, &nd->cin) ||
               attr_int(o, "fout", 0, 1, 1, BIG, nd, &nd->cout) ||
               attr_bool(o, "bias", 1, nd, &nd->has_bias) ||
               attr_float(o, "init_gain", 1.0f, 0, 100, nd, &nd->init_gain);
    case OP_RESHAPE:
        return attr_int(o, "c", 0, 1, 1, 1 << 28, nd, &nd->rc) ||
               attr_int(o, "h", 0, 1, 1, BIG, nd, &nd->rh) ||
               attr_int(o, "w", 0, 1, 1, BIG, nd, &nd->rw);
    case OP_CHANNEL_AFFINE: {
        int ns, nsh;
        if (attr_floats(o, "scale", nd, &nd->aff_scale, &ns) ||
            attr_floats(o, "shift", nd, &nd->aff_shift, &nsh))
            return -1;
        if (ns != nsh)
            return percept_fail("node '%s': scale and shift have different lengths", nd->name);
        nd->aff_n = ns;
        return 0;
    }
    case OP_DROPOUT:
        rc = attr_float(o, "p", 0.5f, 0, 0.999, nd, &nd->p);
        return rc;
    case OP_BINARY:
        return attr_float(o, "threshold", 0, -1e6, 1e6, nd, &nd->threshold) ||
               attr_float(o, "low", -1, -1e6, 1e6, nd, &nd->low) ||
               attr_float(o, "high", 1, -1e6, 1e6, nd, &nd->high);
    default:
        return 0;
    }
}

static int parse_node(PerceptNet *net, int idx, const cJSON *o)
{
    Node *nd = &net->nodes[idx];
    for (int s = 0; s < PARAM_SLOTS; s++)
        nd->param[s] = -1;
    nd->fused_into = -1;
    nd->ep_add = NO_NODE;
    if (!cJSON_IsObject(o))
        return percept_fail("node %d is not an object", idx);
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(o, "name");
    const cJSON *op = cJSON_GetObjectItemCaseSensitive(o, "op");
    if (!cJSON_IsString(name) || !name->valuestring[0] || strlen(name->valuestring) > 200)
        return percept_fail("node %d has no name (a non-empty string)", idx);
    nd->name = strdup(name->valuestring);
    if (!nd->name)
        return percept_fail("out of memory");
    if (!strcmp(nd->name, "input") || find_node(net, idx, nd->name) >= 0)
        return percept_fail("node name '%s' is used twice (or is reserved)", nd->name);
    if (!cJSON_IsString(op))
        return percept_fail("node '%s' has no op", nd->name);
    int k;
    for (k = 0; k < OP_COUNT; k++)
        if (!strcmp(op->valuestring, op_names[k]))
            break;
    if (k == OP_COUNT)
        return percept_fail("node '%s': unknown layer type '%s'", nd->name, op->valuestring);
    nd->op = (OpKind)k;
    if (parse_inputs(net, idx, o) || parse_attrs(nd, o) || declare_params(net, nd))
        return -1;
    return 0;
}

/* at most PARAM_SLOTS parameters per node */
static int count_params(const cJSON *nodes)
{
    return PARAM_SLOTS * cJSON_GetArraySize(nodes);
}

static PerceptNet *net_parse(const char *arch_json, const char *device)
{
    if (!arch_json) {
        percept_fail("no architecture given");
        return NULL;
    }
    cJSON *root = cJSON_Parse(arch_json);
    if (!root) {
        percept_fail("architecture JSON is invalid near: %.40s", cJSON_GetErrorPtr() ?
                     cJSON_GetErrorPtr() : "(start)");
        return NULL;
    }
    PerceptNet *net = calloc(1, sizeof *net);
    const cJSON *nodes = cJSON_GetObjectItemCaseSensitive(root, "nodes");
    const cJSON *fmt = cJSON_GetObjectItemCaseSensitive(root, "format");
    const cJSON *name = cJSON_GetObjectItemCaseSensitive(root, "name");
    const cJSON *inc = cJSON_GetObjectItemCaseSensitive(root, "input_channels");
    const cJSON *out = cJSON_GetObjectItemCaseSensitive(root, "output");
    if (!net) {
        percept_fail("out of memory");
        goto fail;
    }
    if (!(net->backend = backend_for_device(device)))
        goto fail;
    if (!cJSON_IsObject(root) || !cJSON_IsArray(nodes) || cJSON_GetArraySize(nodes) < 1) {
        percept_fail("architecture JSON must be an object with a non-empty 'nodes' list");
        goto fail;
    }
    if (fmt && !(cJSON_IsNumber(fmt) && fmt->valuedouble == 1)) {
        percept_fail("architecture format %g is not supported (this percept reads format 1)",
                     cJSON_IsNumber(fmt) ? fmt->valuedouble : -1.0);
        goto fail;
    }
    if (cJSON_GetArraySize(nodes) > 100000) {
        percept_fail("architecture has too many nodes");
        goto fail;
    }
    net->arch_json = strdup(arch_json);
    net->name = strdup(cJSON_IsString(name) ? name->valuestring : "unnamed");
    net->input_channels = 3;
    if (inc) {
        if (!cJSON_IsNumber(inc) || inc->valuedouble < 1 || inc->valuedouble > 65536 ||
            inc->valuedouble != floor(inc->valuedouble)) {
            percept_fail("input_channels must be a positive integer");
            goto fail;
        }
        net->input_channels = (int)inc->valuedouble;
    }
    net->n_nodes = cJSON_GetArraySize(nodes);
    net->nodes = calloc(net->n_nodes, sizeof(Node));
    net->params = calloc(count_params(nodes), sizeof(Param));
    if (!net->arch_json || !net->name || !net->nodes || !net->params) {
        percept_fail("out of memory");
        goto fail;
    }
    for (int i = 0; i < net->n_nodes; i++)
        if (parse_node(net, i, cJSON_GetArrayItem(nodes, i)))
            goto fail;
    net->output = net->n_nodes - 1;
    if (out) {
        net->output = cJSON_IsString(out) ? find_node(net, net->n_nodes, out->valuestring) : -2;
        if (net->output < 0) {
            percept_fail("'output' does not name a node");
            goto fail;
        }
    }
    cJSON_Delete(root);
    return net;
fail:
    cJSON_Delete(root);
    percept_net_free(net);
    return NULL;
}

static int net_alloc_params(PerceptNet *net)
{
    const PerceptBackend *be = net->backend;
#ifdef FUZZING_BUILD_MODE_UNSAFE_FOR_PRODUCTION
    /* a fresh network's size is what its JSON asks for (bounded by physical memory, a user's
     * choice); fuzzing looks for parser bugs, not for the 2 GB limit of its process */
    if (net->params_floats + net->buffers_floats > ((size_t)1 << 26))
        return percept_fail("fuzzing: more than 2^26 parameters");
#endif
    net->params_data = be->alloc(net->params_floats ? net->params_floats : 1);
    /* grads_data waits for the first backward (grads_ready): inference never needs it */
    net->buffers_data = be->alloc(net->buffers_floats ? net->buffers_floats : 1);
    net->has_grad = calloc(net->n_nodes + 1, sizeof(int));
    net->norm_stats_floats = 0;
    for (int i = 0; i < net->n_nodes; i++)
        if (net->nodes[i].op == OP_INSTANCE_NORM) {
            net->nodes[i].stats_off = net->norm_stats_floats;
            net->norm_stats_floats += 2 * (size_t)net->nodes[i].cout;
        }
    net->norm_stats = calloc(net->norm_stats_floats + 1, sizeof(float));
    if (!net->params_data || !net->buffers_data || !net->has_grad ||
        !net->norm_stats)
        return percept_fail_oom("out of memory for %zu parameters", net->params_floats);
    return 0;
}

/* ---- public API ------------------------------------------------------------------- */

PerceptNet *percept_net_from_arch(const char *arch_json, uint64_t seed)
{
    return net_from_arch_on(arch_json, seed, NULL);
}

PerceptNet *net_from_arch_on(const char *arch_json, uint64_t seed, const char *device)
{
    PerceptNet *net = net_parse(arch_json, device);
    if (!net)
        return NULL;
    if (net_alloc_params(net)) {
        percept_net_free(net);
        return NULL;
    }
    init_params(net, seed);
    return net;
}

static void shape_string(char *buf, size_t len, int ndim, const int64_t *shape)
{
    size_t o = (size_t)snprintf(buf, len, "[");
    for (int i = 0; i < ndim && o < len; i++)
        o += (size_t)snprintf(buf + o, len - o, "%s%lld", i ? ", " : "", (long long)shape[i]);
    if (o < len)
        snprintf(buf + o, len - o, "]");
}

/* Names PyTorch keeps that carry nothing we need. */
static int ignorable_tensor(const char *name)
{
    const char *dot = strrchr(name, '.');
    return dot && !strcmp(dot + 1, "num_batches_tracked");
}

static PerceptNet *from_safetensors(const PerceptSafetensors *st, const char *arch_json,
                                   int allow_unused, const char *device)
{
    /* Everything is checked against the file before parameter memory is allocated, so an
     * architecture cannot make percept allocate more than the file's tensors hold. */
    PerceptNet *net = net_parse(arch_json, device);
    if (!net)
        return NULL;
    for (int i = 0; i < net->n_params; i++) {
        Param *p = &net->params[i];
        const PerceptStTensor *t = percept_st_find(st, p->name);
        char want[128], got[128];
        if (!t) {
            percept_fail("tensor '%s' is missing", p->name);
            goto fail;
        }
        int same = t->ndim == p->ndim;
        for (int d = 0; same && d < p->ndim; d++)
            same = t->shape[d] == p->shape[d];
        if (!same) {
            shape_string(want, sizeof want, p->ndim, p->shape);
            shape_string(got, sizeof got, t->ndim, t->shape);
            percept_fail("tensor '%s' has shape %s, the architecture needs %s", p->name, got,
                         want);
            goto fail;
        }
    }
    for (int i = 0; !allow_unused && i < st->n_tensors; i++) {
        const char *name = st->tensors[i].name;
        int used = ignorable_tensor(name);
        for (int j = 0; !used && j < net->n_params; j++)
            used = !strcmp(net->params[j].name, name);
        if (!used) {
            percept_fail("tensor '%s' is not used by the architecture", name);
            goto fail;
        }
    }
    if (net_alloc_params(net))
        goto fail;
    for (int i = 0; i < net->n_params; i++) {
        const Param *p = &net->params[i];
        float *dst = (p->trainable ? net->params_data : net->buffers_data) + p->off;
        memcpy(dst, percept_st_find(st, p->name)->data, p->numel * sizeof(float));
    }
    return net;
fail:
    percept_net_free(net);
    return NULL;
}

PerceptNet *percept_net_from_safetensors(const PerceptSafetensors *st, const char *arch_json)
{
    return from_safetensors(st, arch_json, 0, NULL);
}

PerceptNet *percept_net_from_safetensors_on(const PerceptSafetensors *st, const char *arch_json,
                                            const char *device)
{
    return from_safetensors(st, arch_json, 0, device);
}

PerceptNet *percept_net_from_safetensors_subset(const PerceptSafetensors *st,
                                                const char *arch_json)
{
    return from_safetensors(st, arch_json, 1, NULL);
}

PerceptNet *percept_net_load(const char *path)
{
    PerceptSafetensors *st = percept_st_read(path);
    if (!st)
        return NULL; /* the reader's message names the file */
    const char *arch = percept_st_meta(st, "percept.arch");
    PerceptNet *net = NULL;
    if (!arch)
        percept_fail("%s: no percept.arch in the metadata (not a percept weight file?)", path);
    else if (!(net = percept_net_from_safetensors(st, arch)))
        percept_fail_prefix("%s: ", path);
    percept_st_free(st);
    return net;
}

void percept_net_free(PerceptNet *net)
{
    if (!net)
        return;
    plan_free(net);
    for (int i = 0; i < net->n_nodes; i++) {
        free(net->nodes[i].name);
        free(net->nodes[i].aff_scale);
        free(net->nodes[i].aff_shift);
    }
    for (int i = 0; i < net->n_params; i++)
        free(net->params[i].name);
    if (net->backend) {
        if (net->backend->net_free)
            net->backend->net_free(net);
        net->backend->release(net->params_data);
        net->backend->release(net->grads_data);
        net->backend->release(net->buffers_data);
    }
    free(net->has_grad);
    free(net->norm_stats);
    free(net->nodes);
    free(net->params);
    free(net->arch_json);
    free(net->name);
    free(net);
}

int percept_net_save(PerceptNet *net, const char *path, PerceptDtype dtype,
                     const PerceptStMeta *meta, int n_meta)
{
    PerceptStWrite *w = calloc(net->n_params ? net->n_params : 1, sizeof *w);
    PerceptStMeta *m = calloc(n_meta + 2, sizeof *m);
    if (!w || !m) {
        free(w);
        free(m);
        return percept_fail("out of memory");
    }
    for (int i = 0; i < net->n_params; i++) {
        Param *p = &net->params[i];
        w[i].name = p->name;
        /* running statistics stay F32: they can be far outside half's comfortable range */
        w[i].dtype = p->trainable ? dtype : PERCEPT_DTYPE_F32;
        w[i].ndim = p->ndim;
        memcpy(w[i].shape, p->shape, sizeof p->shape);
        w[i].data = (p->trainable ? net->params_data : net->buffers_data) + p->off;
    }
    int k = 0;
    m[k++] = (PerceptStMeta){"percept.arch", net->arch_json};
    m[k++] = (PerceptStMeta){"percept.version", PERCEPT_VERSION};
    for (int i = 0; i < n_meta; i++)
        if (strcmp(meta[i].key, "percept.arch") && strcmp(meta[i].key, "percept.version"))
            m[k++] = meta[i];
    int rc = percept_st_write(path, w, net->n_params, m, k);
    free(w);
    free(m);
    return rc;
}

const char *percept_net_name(const PerceptNet *net) { return net->name; }
const char *percept_net_device(const PerceptNet *net) { return net->backend->name; }
const char *percept_net_arch(const PerceptNet *net) { return net->arch_json; }
int percept_net_input_channels(const PerceptNet *net) { return net->input_channels; }

size_t percept_net_param_count(const PerceptNet *net)
{
    return net->params_floats;
}

void percept_net_set_training(PerceptNet *net, int training)
{
    net->training = training != 0;
}

void percept_net_set_grad(PerceptNet *net, int grad)
{
    net->grad = grad != 0;
}

void percept_net_set_frozen(PerceptNet *net, int frozen)
{
    net->frozen = frozen != 0;
}

void percept_net_set_noise_seed(PerceptNet *net, uint64_t seed)
{
    net->noise_seed = seed;
}

float *percept_net_params(PerceptNet *net, size_t *count)
{
    if (count)
        *count = net->params_floats;
    return net->params_data;
}

/* The parameter gradients' memory, allocated (zeroed) on first use; -1 with a message. */
static int grads_ready(PerceptNet *net)
{
    if (!net->grads_data &&
        !(net->grads_data = net->backend->alloc(net->params_floats ? net->params_floats : 1)))
        return percept_fail_oom("out of memory for the gradients of %zu parameters",
                                net->params_floats);
    return 0;
}

float *percept_net_grads(PerceptNet *net, size_t *count)
{
    if (count)
        *count = net->params_floats;
    return grads_ready(net) ? NULL : net->grads_data;
}

void percept_net_zero_grads(PerceptNet *net)
{
    float *g = net->grads_data;
    /* where they are (on a GPU: no trip to the host); a device that fails here fails the
     * next pass too, with its message, so the host's memset is only a fallback */
    if (g && MATH_FOR(g)->zero(g, net->params_floats))
        memset(g, 0, net->params_floats * sizeof(float));
}

static Param *param_by_name(PerceptNet *net, const char *name)
{
    for (int i = 0; i < net->n_params; i++)
        if (!strcmp(net->params[i].name, name))
            return &net->params[i];
    return NULL;
}

float *percept_net_param(PerceptNet *net, const char *name, size_t *count)
{
    Param *p = param_by_name(net, name);
    if (!p)
        return NULL;
    if (count)
        *count = p->numel;
    return (p->trainable ? net->params_data : net->buffers_data) + p->off;
}

float *percept_net_param_grad(PerceptNet *net, const char *name, size_t *count)
{
    Param *p = param_by_name(net, name);
    if (!p || !p->trainable || grads_ready(net))
        return NULL;
    if (count)
        *count = p->numel;
    return net->grads_data + p->off;
}

/* ---- helpers for backends ----------------------------------------------------------- */

float *net_act(PerceptNet *net, int i)
{
    return net->plan.act + (i == INPUT_NODE ? 0 : net->nodes[i].out_off);
}

Shape net_in_shape(const PerceptNet *net, const Node *node, int i)
{
    int j = node->in[i];
    return j == INPUT_NODE ? net->plan.in : net->nodes[j].out;
}

float *net_param(PerceptNet *net, const Node *node, ParamSlot slot)
{
    if (node->param[slot] < 0)
        return NULL;
    const Param *p = &net->params[node->param[slot]];
    return (p->trainable ? net->params_data : net->buffers_data) + p->off;
}

float *net_param_grad(PerceptNet *net, const Node *node, ParamSlot slot)
{
    if (net->frozen || node->param[slot] < 0 || !net->params[node->param[slot]].trainable)
        return NULL;
    return net->grads_data + net->params[node->param[slot]].off;
}

size_t percept_net_norm_stats_floats(const PerceptNet *net)
{
    return net->norm_stats_floats;
}

const float *percept_net_norm_stats(const PerceptNet *net)
{
    return net->norm_stats;
}

int percept_net_fix_norm_stats(PerceptNet *net, const float *stats)
{
    if (!stats) {
        net->norm_fixed = 0;
        return 0;
    }
    for (size_t i = 0; i < net->norm_stats_floats; i++)
        if (!isfinite(stats[i]))
            return percept_fail("instance-norm statistics are not finite (value %zu)", i);
    if (stats != net->norm_stats)
        memcpy(net->norm_stats, stats, net->norm_stats_floats * sizeof(float));
    net->norm_fixed = 1;
    return 0;
}

/* ---- running ---------------------------------------------------------------------- */

static int prepare(PerceptNet *net, const PerceptTensor *in)
{
    if (!in || !in->data || in->n < 1 || in->h < 1 || in->w < 1)
        return percept_fail("empty input");
    if (in->c != net->input_channels)
        return percept_fail("network '%s' takes %d input channels, got %d", net->name,
                            net->input_channels, in->c);
    Shape s = {in->n, in->c, in->h, in->w};
    int grad = net->grad || net->training;
    Plan *pl = &net->plan;
    /* the plan depends on the size, on keeping activations, and on training mode (dropout
     * and reparameterisation save their noise only when training) */
    if (!pl->valid || memcmp(&pl->in, &s, sizeof s) || pl->grad != grad ||
        pl->training != net->training)
        if (plan_build(net, s, grad))
            return -1;
    return 0;
}

/* The backend's queued work finished, before the host touches its memory. */
static int backend_sync(PerceptNet *net)
{
    if (net->backend->sync && net->backend->sync(net))
        return percept_fail_prefix("%s: ", net->backend->name);
    return 0;
}

static void accumulate(float *dst, const float *src, size_t n)
{
    for (size_t i = 0; i < n; i++)
        dst[i] += src[i];
}

/* dst = src (add: dst += src), n floats, as part of the network's work: by its device when
 * dst is its memory and src is too or is copied from the host (a batch uploaded, a loss
 * network's input from a generator's output, a gradient that fans out), else by the host —
 * after the device's work when a pass is under way (wait; between passes nothing is queued,
 * and a sync there would end a pass not begun). */
static int move(PerceptNet *net, float *dst, const float *src, size_t n, int add, int wait)
{
    const PerceptBackend *b = net->backend;
    if (b->owns && b->owns(dst) && (!add || b->owns(src))) {
        if ((add ? b->accumulate : b->copy)(net, dst, src, n))
            return percept_fail_prefix("%s: ", b->name);
        return 0;
    }
    if (wait && backend_sync(net))
        return -1;
    if (add)
        accumulate(dst, src, n);
    else
        memcpy(dst, src, n * sizeof(float));
    return 0;
}

int percept_net_forward(PerceptNet *net, const PerceptTensor *in, PerceptTensor *out)
{
    if (prepare(net, in))
        return -1;
    if (move(net, net->plan.act, in->data, percept_tensor_numel(in), 0, 0))
        return -1;
    for (int i = 0; i < net->n_nodes; i++)
        if (net->backend->forward(net, &net->nodes[i]))
            return percept_fail_prefix("%s: node '%s': ", net->backend->name, net->nodes[i].name);
    if (backend_sync(net))
        return -1;
    if (out) {
        const Node *o = &net->nodes[net->output];
        *out = (PerceptTensor){o->out.n, o->out.c, o->out.h, o->out.w, net_act(net, net->output)};
    }
    return 0;
}

void percept_net_release_memory(PerceptNet *net)
{
    plan_free(net);
}

void percept_net_set_memory_limit(PerceptNet *net, size_t bytes)
{
    net->memory_limit = bytes;
}

int percept_net_node_output(PerceptNet *net, const char *name, PerceptTensor *out)
{
    int i = find_node(net, net->n_nodes, name);
    if (i < 0 || !net->plan.valid)
        return percept_fail("no output for node '%s' (unknown node or no forward yet)", name);
    /* without gradients a node's buffer is reused after its last reader, and a conv or
     * norm with an add or ReLU fused into it holds their result, not its own */
    const Node *q = &net->nodes[i];
    if (!net->plan.grad && ((q->last_use < net->n_nodes && i != net->output) ||
                            q->ep_relu || q->ep_add != NO_NODE))
        return percept_fail("node '%s' was overwritten: enable gradients (percept_net_set_grad) "
                            "to keep every node's output", name);
    const Node *o = &net->nodes[i];
    *out = (PerceptTensor){o->out.n, o->out.c, o->out.h, o->out.w, net_act(net, i)};
    return 0;
}

int percept_net_backward_from(PerceptNet *net, const char *const *names,
                              const float *const *grads, int count, float *din)
{
    Plan *pl = &net->plan;
    if (net->norm_fixed)
        return percept_fail("backward: instance-norm statistics are fixed (inference only)");
    if (!pl->valid || !pl->grad)
        return percept_fail("backward needs a forward pass with gradients enabled "
                            "(training mode or percept_net_set_grad)");
    if (!net->frozen && grads_ready(net))
        return -1;
    memset(net->has_grad, 0, sizeof(int) * (net->n_nodes + 1));
    int *input_has_grad = &net->has_grad[net->n_nodes];
    for (int k = 0; k < count; k++) {
        int i = find_node(net, net->n_nodes, names[k]);
        if (i < 0)
            return percept_fail("backward: unknown node '%s'", names[k]);
        float *g = pl->grads + net->nodes[i].grad_off;
        size_t n = shape_numel(net->nodes[i].out);
        if (move(net, g, grads[k], n, net->has_grad[i], net->has_grad[i]))
            return -1;
        net->has_grad[i] = 1;
    }
    for (int i = net->n_nodes - 1; i >= 0; i--) {
        Node *nd = &net->nodes[i];
        if (!net->has_grad[i])
            continue;
        /* The first gradient reaching a source is written in place; later ones (fan-out,
         * or one node reading the same source twice) go through tmp and are added. */
        enum { DIRECT, VIA_TMP, RERUN, UNWANTED } how[NODE_MAX_IN];
        float *targets[NODE_MAX_IN];
        int tmp_used = 0;
        for (int j = 0; j < nd->n_in; j++) {
            int src = nd->in[j];
            int *flag = src == INPUT_NODE ? input_has_grad : &net->has_grad[src];
            float *dst = src == INPUT_NODE ? din : pl->grads + net->nodes[src].grad_off;
            targets[j] = NULL;
            if (!dst) {
                how[j] = UNWANTED;
            } else if (!*flag) {
                how[j] = DIRECT;
                targets[j] = dst;
                *flag = 1;
            } else if (!tmp_used) {
                how[j] = VIA_TMP;
                targets[j] = pl->tmp;
                tmp_used = 1;
            } else {
                how[j] = RERUN;
            }
        }
        if (net->backend->backward(net, nd, targets))
            return percept_fail_prefix("%s: backward of node '%s': ", net->backend->name, nd->name);
        for (int j = 0; j < nd->n_in; j++) {
            int src = nd->in[j];
            float *dst = src == INPUT_NODE ? din : pl->grads + net->nodes[src].grad_off;
            size_t n = shape_numel(net_in_shape(net, nd, j));
            if (how[j] == VIA_TMP) {
                if (move(net, dst, pl->tmp, n, 1, 1))
                    return -1;
            } else if (how[j] == RERUN) {
                /* Only add and concat read several inputs and they have no parameters, so
                 * running one again for a single input accumulates nothing twice. */
                float *only[NODE_MAX_IN] = {0};
                only[j] = pl->tmp;
                if (net->backend->backward(net, nd, only))
                    return percept_fail_prefix("%s: backward of node '%s': ", net->backend->name,
                                               nd->name);
                if (move(net, dst, pl->tmp, n, 1, 1))
                    return -1;
            }
        }
    }
    if (backend_sync(net))
        return -1;
    if (din && !*input_has_grad)
        memset(din, 0, shape_numel(pl->in) * sizeof(float));
    return 0;
}

int percept_net_backward(PerceptNet *net, const float *dout, float *din)
{
    const char *name = net->nodes[net->output].name;
    return percept_net_backward_from(net, &name, &dout, 1, din);
}
