/* Private: the network graph, its memory plan, and the backend interface that runs it. */
#ifndef PERCEPT_GRAPH_H
#define PERCEPT_GRAPH_H

#include <stddef.h>
#include <stdint.h>

#include "percept/percept.h"

typedef enum {
    OP_CONV2D, OP_CONV_TRANSPOSE2D, OP_UPSAMPLE_NEAREST, OP_PIXEL_SHUFFLE,
    OP_INSTANCE_NORM, OP_BATCH_NORM,
    OP_RELU, OP_LEAKY_RELU, OP_TANH, OP_SCALED_TANH, OP_SIGMOID, OP_COS,
    OP_ADD, OP_CONCAT, OP_AVG_POOL, OP_MAX_POOL, OP_GLOBAL_AVG_POOL,
    OP_LINEAR, OP_RESHAPE, OP_CHANNEL_AFFINE, OP_DROPOUT, OP_BINARY, OP_REPARAM,
    OP_COUNT
} OpKind;

extern const char *const op_names[OP_COUNT];

typedef struct { int n, c, h, w; } Shape;

static inline size_t shape_numel(Shape s) { return (size_t)s.n * s.c * s.h * s.w; }

#define NODE_MAX_IN 16
#define INPUT_NODE (-1) /* an input index naming the network input */

typedef enum { PARAM_WEIGHT, PARAM_BIAS, PARAM_RUNNING_MEAN, PARAM_RUNNING_VAR, PARAM_SLOTS } ParamSlot;

typedef struct {
    char *name;
    OpKind op;
    int n_in;
    int in[NODE_MAX_IN];

    /* attributes (meaning per op: docs/arch-format.md) */
    int cin, cout, k, stride, pad, output_pad, reflect, factor, has_bias, affine;
    int rc, rh, rw;                  /* reshape target */
    float eps, momentum, alpha, scale, shift, p, threshold, low, high;
    float init_gain;                 /* conv, conv_transpose2d, linear: weight init × this */
    float *aff_scale, *aff_shift;    /* channel_affine constants, one per channel */
    int aff_n;

    int param[PARAM_SLOTS];          /* index into the net's parameter table, or -1 */

    /* filled by planning */
    Shape out;
    size_t out_off;                  /* activation arena offset (floats) */
    size_t saved_off, saved_floats;  /* per-node state kept for backward */
    size_t grad_off;                 /* gradient arena offset (grad mode) */
    int last_use;                    /* index of the last node reading this output */
    size_t stats_off;                /* instance_norm: its mean and rstd in net->norm_stats */
    /* inference on a backend that fuses (plan.c): an add or ReLU folded into the conv or
     * norm before it has fused_into = that node's index (its output is that node's buffer
     * and it does nothing itself), and that node has ep_add (the add's other operand, a
     * node index or INPUT_NODE; NO_NODE if none) and ep_relu set; otherwise -1, NO_NODE, 0.
     * An eval batch norm that is a conv's only reader is folded into its weights the same
     * way: the conv's ep_bn is its index (else -1), and its add and ReLU become the conv's.
     * A nearest upsampling whose only reader is a conv is folded into the conv's input
     * gather: the conv's in_up is the factor (else 0) and it reads the upsampling's input;
     * the upsampling's fused_into is the conv (a later node) and it has no buffer. */
    int fused_into, ep_add, ep_relu, ep_bn, in_up;
} Node;

#define NO_NODE (-2)

typedef struct {
    char *name;
    int ndim;
    int64_t shape[4];
    size_t numel;
    int trainable;                   /* 0: buffers such as running statistics */
    float init_gain;                 /* its node's init_gain (1 for norms) */
    size_t off;                      /* offset in params (trainable) or buffers arena */
} Param;

typedef struct {
    int valid;
    Shape in;
    int grad;                        /* activations kept for backward */
    int training;                    /* dropout masks and VAE noise need saved memory */
    float *act;  size_t act_floats;  /* input copy at offset 0, then node outputs */
    float *saved; size_t saved_floats;
    float *work; size_t work_floats; /* shared scratch (conv im2col) */
    float *grads; size_t grads_floats;
    float *tmp;  size_t tmp_floats;  /* one activation, for gradient accumulation */
    /* what each arena above holds as allocated: arenas only grow, so a size no larger than
     * the largest seen (GEGL's edge tiles, sizes alternating) re-plans without allocating */
    size_t act_cap, saved_cap, work_cap, grads_cap, tmp_cap;
} Plan;

/* An Adam step's constants (adam.c), the same for the host's step and a backend's */
typedef struct {
    float b1, b2, eps, step_size, bc2_sqrt, keep;
    int decay;                       /* weight decay: params *= keep first */
} AdamScalars;
/* adam.c: those of a's next step */
AdamScalars adam_scalars(const PerceptAdam *a);

/* The losses' and the optimiser's arithmetic on whole buffers (core/losses/spec.c,
 * core/optim/adam.c), as the public functions named beside each compute it on the host. Each
 * is done when it returns (a value, or memory the host or any network may use next); every
 * pointer given is the table's backend's memory (math_for chooses the table). 0, or -1 with
 * a message. */
typedef struct {
    int (*copy)(float *dst, const float *src, size_t n); /* either may be host memory */
    int (*zero)(float *p, size_t n);
    /* y = a·x (assign) or y += a·x */
    int (*axpy)(float *y, float a, const float *x, size_t n, int assign);
    /* how many of x's n values are NaN or infinite */
    int (*count_nonfinite)(const float *x, size_t n, size_t *count);
    /* percept_loss_mse, percept_loss_l1, percept_loss_tv: grad assigned (or NULL) */
    int (*mse)(const float *x, const float *t, size_t n, float *grad, double *value);
    int (*l1)(const float *x, const float *t, size_t n, float *grad, double *value);
    int (*tv)(const PerceptTensor *x, float *grad, double *value);
    /* percept_gram; percept_loss_style with scratch for f's n Gram matrices (n·c·c floats) */
    int (*gram)(float *g, const PerceptTensor *f);
    int (*style)(const PerceptTensor *f, const float *target_gram, int per_image, float *grad,
                 float *scratch, double *value);
    /* percept_ssim (cfg checked; window: its cfg->window 1-D weights, ssim_window) */
    int (*ssim)(const PerceptTensor *x, const PerceptTensor *y, const PerceptSsimConfig *cfg,
                const float *window, double *value, float *grad);
    /* one Adam step over n parameters with moments m and v (percept_adam_step) */
    int (*adam)(const AdamScalars *s, float *params, const float *grads, float *m, float *v,
                size_t n);
} BackendMath;

/* The operations a backend provides. The CPU backend (backend-cpu.c) is the reference;
 * the CUDA backend implements the same table. Memory returned by alloc belongs to the
 * backend; the graph only does pointer arithmetic on it. */
struct PerceptBackend {
    const char *name;
    /* zeroed, and readable and writable by the host too (the graph copies inputs in and
     * results out, initialises and loads parameters there); NULL on failure (message) */
    float *(*alloc)(size_t floats);
    void (*release)(float *p);
    size_t (*scratch_floats)(const PerceptNet *net, const Node *node);
    size_t (*saved_floats)(const PerceptNet *net, const Node *node, int grad);
    /* 0, or -1 with a message (a device error). The node's work may still be running on
     * return: the host reads its results only after sync */
    int (*forward)(PerceptNet *net, const Node *node);
    /* din[i] receives the gradient of input i (assigned), or is NULL when unwanted; din
     * may point outside backend memory (the caller's buffer for the input's gradient) */
    int (*backward)(PerceptNet *net, const Node *node, float *const *din);
    /* NULL, or frees what the backend keeps per network (net->backend_state) */
    void (*net_free)(PerceptNet *net);
    /* NULL (the work is done when forward and backward return), or waits until it is: the
     * graph calls it before the host touches the backend's memory again (the end of a pass,
     * gradients it adds up itself); 0, or -1 with a message */
    int (*sync)(PerceptNet *net);
    /* whether forward honours the nodes' fused_into, ep_add, ep_relu, ep_bn and in_up */
    int fuses_epilogues;
    /* NULL in the CPU backend (the host computes on plain memory); else: whether p is this
     * backend's memory, which its own arithmetic can reach */
    int (*owns)(const void *p);
    /* dst = src and dst += src (n floats, dst owned; src owned, or for copy host memory,
     * which the caller may reuse at once) as part of the network's work, like a node's
     * forward: done by sync */
    int (*copy)(PerceptNet *net, float *dst, const float *src, size_t n);
    int (*accumulate)(PerceptNet *net, float *dst, const float *src, size_t n);
    const BackendMath *math;
};

extern const PerceptBackend percept_backend_cpu;

/* backend.c: the backend of a device name ("cpu", "cuda", "auto"), or for NULL the one new
 * networks get by default (percept_set_device, PERCEPT_DEVICE). NULL with a message when
 * the device asked for cannot be used. */
const PerceptBackend *backend_for_device(const char *device);

/* What the core lends a backend loaded at run time (kernels/, libpercept-cuda.so): the
 * core's symbols are hidden, so the plugin calls them through this table. abi guards
 * against a plugin built from other sources (struct layouts must agree). */
#define PERCEPT_PLUGIN_ABI (20261207u ^ (unsigned)(sizeof(PerceptNet) * 131u + sizeof(Node) * 7u + \
                                                  sizeof(Plan) + sizeof(PerceptBackend) * 11u))
typedef struct {
    unsigned abi;
    int (*fail)(const char *fmt, ...);
    int (*fail_oom)(const char *fmt, ...); /* memory ran out (percept_error_is_out_of_memory) */
    float *(*act)(PerceptNet *net, int node_index);
    float *(*param)(PerceptNet *net, const Node *node, ParamSlot slot);
    float *(*param_grad)(PerceptNet *net, const Node *node, ParamSlot slot);
    Shape (*in_shape)(const PerceptNet *net, const Node *node, int i);
    const PerceptBackend *cpu;       /* for the ops a plugin leaves to the CPU */
} PerceptCoreApi;
/* The plugin's one exported symbol: its backend, or NULL with a message written through
 * api->fail (no usable device, ABI mismatch). */
typedef const PerceptBackend *(*PerceptPluginEntry)(const PerceptCoreApi *api);
#define PERCEPT_PLUGIN_ENTRY "percept_plugin_backend"
extern size_t cpu_alloc_calls; /* for the test that planning allocates once per size */

struct PerceptNet {
    char *arch_json;
    char *name;
    int input_channels;
    int n_nodes;
    Node *nodes;
    int output;                      /* node index */
    int n_params;
    Param *params;
    float *params_data; size_t params_floats;
    float *grads_data;
    float *buffers_data; size_t buffers_floats;
    int training, grad, frozen;
    uint64_t noise_seed;
    /* instance-norm statistics of the last forward's first image, or, when norm_fixed, the
     * statistics every forward normalises with (percept_net_fix_norm_stats) */
    float *norm_stats; size_t norm_stats_floats;
    int norm_fixed;
    const PerceptBackend *backend;
    void *backend_state;             /* the backend's own, per network (cuDNN descriptors) */
    Plan plan;
    size_t memory_limit;             /* bytes a plan may take; 0: no limit */
    int *has_grad;                   /* per node, during backward */
};

/* math.c: the arithmetic for buffers ptrs[0..n) (NULL entries ignored): the loaded CUDA
 * backend's when it owns them all, else the host's (which reads managed memory too). */
const BackendMath *math_for(const void *const *ptrs, int n);
#define MATH_FOR(...)                                                                          \
    math_for((const void *const[]){__VA_ARGS__},                                               \
             (int)(sizeof((const void *[]){__VA_ARGS__}) / sizeof(void *)))
/* A buffer kept and grown (never shrunk) in the memory of the backend new networks get, so
 * that the losses' arithmetic can run where the networks do. */
typedef struct {
    float *p;
    size_t floats;
} Buffer;
/* p with room for floats (contents not kept when it grows); NULL with a message */
float *buffer_reserve(Buffer *b, size_t floats);
void buffer_free(Buffer *b);
/* ssim.c: the 1-D weights of cfg's window (cfg->window of them, at most SSIM_MAX_TAPS;
 * the 2-D window is their outer product) */
#define SSIM_MAX_TAPS 64
void ssim_window(const PerceptSsimConfig *cfg, float *w);
/* percept_ssim where x, y and grad are (math_for) */
int ssim_where(const PerceptTensor *x, const PerceptTensor *y, const PerceptSsimConfig *cfg,
               double *value, float *grad);
/* mmd.c: how many of a style-mmd loss's levels x has room for (-1 with a message when not
 * even one), and the network that gives an image's patch embedding over that many levels
 * (percept_patch_embedding's, (n, levels·features, 1, 1)), on the named device */
int mmd_style_levels(const PerceptTensor *x, const PerceptMmdConfig *cfg, int levels);
PerceptNet *mmd_style_network(const PerceptMmdConfig *cfg, int levels, int channels,
                              const char *device);
/* spec.c: a feat or style loss's network (its features of the last image it saw), else NULL */
PerceptNet *loss_network(const PerceptLoss *loss);
/* backend.c: the CUDA backend if it has been loaded, else NULL (nothing is loaded) */
const PerceptBackend *backend_cuda_loaded(void);

/* Pointers into the plan for a node's inputs/outputs and its parameters. */
float *net_act(PerceptNet *net, int node_index); /* INPUT_NODE: the input copy */
float *net_param(PerceptNet *net, const Node *node, ParamSlot slot);      /* NULL if none */
float *net_param_grad(PerceptNet *net, const Node *node, ParamSlot slot); /* NULL if none */
Shape net_in_shape(const PerceptNet *net, const Node *node, int i);

/* percept_net_from_arch on a named device (percept_net_from_safetensors_on's names) */
PerceptNet *net_from_arch_on(const char *arch_json, uint64_t seed, const char *device);

/* plan.c */
int plan_build(PerceptNet *net, Shape in, int grad);
void plan_free(PerceptNet *net);
int infer_shapes(PerceptNet *net, Shape in);

#endif
