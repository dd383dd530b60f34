/* The CUDA backend (libpercept-cuda.so, loaded by core/nets/backend.c): the same table as
 * the CPU backend. Memory is CUDA managed memory, so the graph's host-side work (copying
 * inputs in, initialising and loading parameters, reading results) is unchanged and any op
 * without a GPU kernel yet runs on its CPU twin, correctly, after a synchronisation.
 * Convolutions go to cuDNN (strict FP32 unless PERCEPT_CUDA_TF32=1); the elementwise ops,
 * channel affine maps, concatenation, instance and batch norm, pooling, upsampling, pixel
 * shuffle and reflection padding are kernels of ours (elementwise.cu, combine.cu, norm.cu,
 * pool.cu, resample.cu), each tested against its CPU twin by tests/test-cuda-parity.c;
 * linear, reshape, dropout, binary and reparam are still the CPU's. The work of a pass runs
 * in order on the default stream, unsynchronised: the device is waited for before an op
 * runs on its CPU twin, at a copy to the host, and when the graph asks (backend.sync: the
 * end of a pass, gradients it adds up on the host). */
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stdlib.h>
#include <string.h>

extern "C" {
#include "graph.h"
}
#include "kernels.h"

static const PerceptCoreApi *core;

#define CUDA_OK(call, what)                                                                    \
    do {                                                                                       \
        cudaError_t e_ = (call);                                                               \
        if (e_ != cudaSuccess)                                                                 \
            return (e_ == cudaErrorMemoryAllocation ? core->fail_oom : core->fail)(           \
                "%s: %s", what, cudaGetErrorString(e_));                                       \
    } while (0)
#define CUDNN_OK(call, what)                                                                   \
    do {                                                                                       \
        cudnnStatus_t s_ = (call);                                                             \
        if (s_ != CUDNN_STATUS_SUCCESS)                                                        \
            return core->fail("%s: %s", what, cudnnGetErrorString(s_));                       \
    } while (0)

/* ---- memory ------------------------------------------------------------------------- */

static float *cuda_alloc(size_t floats)
{
    void *p = NULL;
    size_t bytes = (floats ? floats : 1) * sizeof(float);
    cudaError_t e = cudaMallocManaged(&p, bytes, cudaMemAttachGlobal);
    if (e == cudaSuccess)
        e = cudaMemset(p, 0, bytes);
    if (e == cudaSuccess)
        e = cudaDeviceSynchronize();
    if (e != cudaSuccess) {
        if (p)
            cudaFree(p);
        (e == cudaErrorMemoryAllocation ? core->fail_oom : core->fail)(
            "CUDA: cannot allocate %.1f MiB: %s", bytes / 1048576.0, cudaGetErrorString(e));
        return NULL;
    }
    return (float *)p;
}

static void cuda_release(float *p)
{
    if (p)
        cudaFree(p);
}

/* ---- per-network state: cuDNN descriptors per convolution, constants, shared buffers -- */

typedef struct {
    Shape in;                        /* the input these were made for; n = 0: none yet */
    cudnnTensorDescriptor_t x, y, bias;
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    int padded;                      /* reflection: the input is padded by a kernel first */
} Conv;

typedef struct {
    Conv *conv;                      /* one per node */
    float **consts;                  /* per node: channel_affine's scale, shift; or NULL */
    int n_nodes;
    void *workspace;
    size_t workspace_bytes;
    float *buf;                      /* reflection-padded input, or its gradient */
    size_t buf_floats;
    float *stage;                    /* an input gradient bound for host memory */
    size_t stage_floats;
    float *stats;                    /* the pass's instance-norm statistics (device) */
    size_t stats_floats;
    int stats_pending;               /* to be copied to the host's (net->norm_stats) at sync */
} State;

static const size_t WORKSPACE_MAX = (size_t)512 << 20; /* per network */

static cudnnHandle_t handle(void)
{
    static thread_local cudnnHandle_t h;
    if (!h && cudnnCreate(&h) != CUDNN_STATUS_SUCCESS)
        h = NULL;
    return h;
}

static void conv_destroy(Conv *c)
{
    if (!c->in.n)
        return;
    cudnnDestroyTensorDescriptor(c->x);
    cudnnDestroyTensorDescriptor(c->y);
    cudnnDestroyTensorDescriptor(c->bias);
    cudnnDestroyFilterDescriptor(c->w);
    cudnnDestroyConvolutionDescriptor(c->conv);
    memset(c, 0, sizeof *c);
}

static void cuda_net_free(PerceptNet *net)
{
    State *st = (State *)net->backend_state;
    if (!st)
        return;
    for (int i = 0; i < st->n_nodes; i++) {
        conv_destroy(&st->conv[i]);
        cudaFree(st->consts[i]);
    }
    free(st->conv);
    free(st->consts);
    cudaFree(st->workspace);
    cudaFree(st->buf);
    cudaFree(st->stage);
    cudaFree(st->stats);
    free(st);
    net->backend_state = NULL;
}

static State *state(PerceptNet *net)
{
    if (!net->backend_state) {
        State *st = (State *)calloc(1, sizeof *st);
        if (st && (!(st->conv = (Conv *)calloc(net->n_nodes, sizeof(Conv))) ||
                   !(st->consts = (float **)calloc(net->n_nodes, sizeof(float *))))) {
            free(st->conv);
            free(st);
            st = NULL;
        }
        if (st)
            st->n_nodes = net->n_nodes;
        net->backend_state = st;
    }
    if (!net->backend_state)
        core->fail("out of memory");
    return (State *)net->backend_state;
}

/* A device buffer of at least `floats`, kept and grown. */
static int grow(float **p, size_t *have, size_t floats, const char *what)
{
    if (*have >= floats)
        return 0;
    cudaFree(*p);
    *p = NULL;
    *have = 0;
    CUDA_OK(cudaMalloc((void **)p, floats * sizeof(float)), what);
    *have = floats;
    return 0;
}

static int grow_workspace(State *st, size_t bytes)
{
    if (st->workspace_bytes >= bytes)
        return 0;
    cudaFree(st->workspace);
    st->workspace = NULL;
    st->workspace_bytes = 0;
    CUDA_OK(cudaMalloc(&st->workspace, bytes), "cuDNN workspace");
    st->workspace_bytes = bytes;
    return 0;
}

static int set4d(cudnnTensorDescriptor_t d, int n, int c, int h, int w)
{
    CUDNN_OK(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, CUDNN_DATA_FLOAT, n, c, h, w),
             "tensor descriptor");
    return 0;
}

/* The first (cuDNN sorts them fastest first) of n algorithm results that works within the
 * workspace bound, its workspace folded into *need; -1 when none does. */
template <typename Perf> static int fastest_fitting(const Perf *p, int n, size_t *need)
{
    for (int i = 0; i < n; i++)
        if (p[i].status == CUDNN_STATUS_SUCCESS && p[i].memory <= WORKSPACE_MAX) {
            *need = p[i].memory > *need ? p[i].memory : *need;
            return i;
        }
    return -1;
}

/* Descriptors for a conv2d (transposed: the conv whose backward-data it is) at this input,
 * and the fastest algorithms whose workspace fits. */
static int conv_prepare(PerceptNet *net, const Node *nd, State *st, Conv **out)
{
    Conv *c = &st->conv[nd - net->nodes];
    Shape in = core->in_shape(net, nd, 0);
    *out = c;
    if (c->in.n && !memcmp(&c->in, &in, sizeof in))
        return 0;
    conv_destroy(c);
    cudnnHandle_t h = handle();
    if (!h)
        return core->fail("cuDNN: cannot create a handle");
    CUDNN_OK(cudnnCreateTensorDescriptor(&c->x), "descriptor");
    CUDNN_OK(cudnnCreateTensorDescriptor(&c->y), "descriptor");
    CUDNN_OK(cudnnCreateTensorDescriptor(&c->bias), "descriptor");
    CUDNN_OK(cudnnCreateFilterDescriptor(&c->w), "descriptor");
    CUDNN_OK(cudnnCreateConvolutionDescriptor(&c->conv), "descriptor");
    c->in = in;
    const int transposed = nd->op == OP_CONV_TRANSPOSE2D;
    c->padded = !transposed && nd->reflect && nd->pad > 0;
    int pad = c->padded ? 0 : nd->pad;
    /* cuDNN's x is the conv's input: for a transposed conv, its output */
    const Shape big = transposed ? nd->out : in, small = transposed ? in : nd->out;
    int xh = big.h + (c->padded ? 2 * nd->pad : 0), xw = big.w + (c->padded ? 2 * nd->pad : 0);
    if (set4d(c->x, big.n, big.c, xh, xw) || set4d(c->y, small.n, small.c, small.h, small.w) ||
        set4d(c->bias, 1, nd->cout, 1, 1))
        return -1;
    CUDNN_OK(cudnnSetFilter4dDescriptor(c->w, CUDNN_DATA_FLOAT, CUDNN_TENSOR_NCHW, small.c, big.c,
                                        nd->k, nd->k), "filter descriptor");
    CUDNN_OK(cudnnSetConvolution2dDescriptor(c->conv, pad, pad, nd->stride, nd->stride, 1, 1,
                                             CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
             "convolution descriptor");
    const char *tf32 = getenv("PERCEPT_CUDA_TF32");
    CUDNN_OK(cudnnSetConvolutionMathType(c->conv, tf32 && !strcmp(tf32, "1") ? CUDNN_DEFAULT_MATH
                                                                            : CUDNN_FMA_MATH),
             "math type");
    int n = 0, fi, di, wi;
    size_t need = 0;
    cudnnConvolutionFwdAlgoPerf_t fp[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    cudnnConvolutionBwdDataAlgoPerf_t dp[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    cudnnConvolutionBwdFilterAlgoPerf_t wp[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    CUDNN_OK(cudnnGetConvolutionForwardAlgorithm_v7(h, c->x, c->w, c->conv, c->y,
                                                    CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &n, fp),
             "forward algorithm");
    if ((fi = fastest_fitting(fp, n, &need)) < 0)
        return core->fail("cuDNN: no forward algorithm for this convolution");
    CUDNN_OK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, c->w, c->y, c->conv, c->x,
                                                         CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                                                         &n, dp),
             "backward-data algorithm");
    if ((di = fastest_fitting(dp, n, &need)) < 0)
        return core->fail("cuDNN: no backward-data algorithm for this convolution");
    CUDNN_OK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                 h, c->x, c->y, c->conv, c->w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &n, wp),
             "backward-filter algorithm");
    if ((wi = fastest_fitting(wp, n, &need)) < 0)
        return core->fail("cuDNN: no backward-filter algorithm for this convolution");
    c->fwd = fp[fi].algo;
    c->bwd_data = dp[di].algo;
    c->bwd_filter = wp[wi].algo;
    return grow_workspace(st, need ? need : 1);
}

static int conv_forward(PerceptNet *net, const Node *nd)
{
    State *st = state(net);
    Conv *c;
    if (!st || conv_prepare(net, nd, st, &c))
        return -1;
    const float one = 1, zero = 0;
    cudnnHandle_t h = handle();
    const float *x = core->act(net, nd->in[0]), *w = core->param(net, nd, PARAM_WEIGHT);
    const float *b = core->param(net, nd, PARAM_BIAS);
    float *out = net->plan.act + nd->out_off;
    if (nd->op == OP_CONV_TRANSPOSE2D) {
        CUDNN_OK(cudnnConvolutionBackwardData(h, &one, c->w, w, c->y, x, c->conv, c->bwd_data,
                                              st->workspace, st->workspace_bytes, &zero, c->x, out),
                 "transposed convolution");
    } else {
        if (c->padded) {
            Shape in = c->in;
            size_t floats = (size_t)in.n * in.c * (in.h + 2 * nd->pad) * (in.w + 2 * nd->pad);
            if (grow(&st->buf, &st->buf_floats, floats, "padding buffer"))
                return -1;
            gpu_reflect_pad(st->buf, x, in.n * in.c, in.h, in.w, nd->pad);
            x = st->buf;
        }
        CUDNN_OK(cudnnConvolutionForward(h, &one, c->x, x, c->w, w, c->conv, c->fwd, st->workspace,
                                         st->workspace_bytes, &zero, c->y, out),
                 "convolution");
    }
    if (b)
        CUDNN_OK(cudnnAddTensor(h, &one, c->bias, b, &one, nd->op == OP_CONV_TRANSPOSE2D ? c->x : c->y,
                                out),
                 "bias");
    return 0;
}

/* dx (assigned), dW and db (accumulated, as every backend's parameter gradients are). */
static int conv_backward(PerceptNet *net, const Node *nd, float *dx)
{
    State *st = state(net);
    Conv *c;
    if (!st || conv_prepare(net, nd, st, &c))
        return -1;
    const float one = 1, zero = 0;
    cudnnHandle_t h = handle();
    const float *x = core->act(net, nd->in[0]), *w = core->param(net, nd, PARAM_WEIGHT);
    float *dw = core->param_grad(net, nd, PARAM_WEIGHT), *db = core->param_grad(net, nd, PARAM_BIAS);
    const float *dout = net->plan.grads + nd->grad_off;
    if (nd->op == OP_CONV_TRANSPOSE2D) {
        /* y = convT(x): cuDNN's "x" is our output, its "y" our input */
        if (db)
            CUDNN_OK(cudnnConvolutionBackwardBias(h, &one, c->x, dout, &one, c->bias, db), "bias gradient");
        if (dw)
            CUDNN_OK(cudnnConvolutionBackwardFilter(h, &one, c->x, dout, c->y, x, c->conv,
                                                    c->bwd_filter, st->workspace,
                                                    st->workspace_bytes, &one, c->w, dw),
                     "transposed convolution weight gradient");
        if (dx)
            CUDNN_OK(cudnnConvolutionForward(h, &one, c->x, dout, c->w, w, c->conv, c->fwd,
                                             st->workspace, st->workspace_bytes, &zero, c->y, dx),
                     "transposed convolution input gradient");
        return 0;
    }
    Shape in = c->in;
    const size_t padded = (size_t)in.n * in.c * (in.h + 2 * nd->pad) * (in.w + 2 * nd->pad);
    if (c->padded) {
        /* the forward's padded input, again (the buffer is shared by every node) */
        if (grow(&st->buf, &st->buf_floats, 2 * padded, "padding buffer"))
            return -1;
        gpu_reflect_pad(st->buf, x, in.n * in.c, in.h, in.w, nd->pad);
        x = st->buf;
    }
    if (db)
        CUDNN_OK(cudnnConvolutionBackwardBias(h, &one, c->y, dout, &one, c->bias, db), "bias gradient");
    if (dw)
        CUDNN_OK(cudnnConvolutionBackwardFilter(h, &one, c->x, x, c->y, dout, c->conv, c->bwd_filter,
                                                st->workspace, st->workspace_bytes, &one, c->w, dw),
                 "weight gradient");
    if (dx) {
        float *target = c->padded ? st->buf + padded : dx;
        CUDNN_OK(cudnnConvolutionBackwardData(h, &one, c->w, w, c->y, dout, c->conv, c->bwd_data,
                                              st->workspace, st->workspace_bytes, &zero, c->x, target),
                 "input gradient");
        if (c->padded)
            gpu_reflect_pad_backward(dx, target, in.n * in.c, in.h, in.w, nd->pad);
    }
    return 0;
}

/* ---- the other ops' operands ---------------------------------------------------------- */

/* channel_affine's constants, scale then shift, copied to the device on first use: the
 * node's own are host memory, which a kernel cannot read */
static int affine_consts(PerceptNet *net, const Node *nd, const float **out)
{
    State *st = state(net);
    if (!st)
        return -1;
    float **k = &st->consts[nd - net->nodes];
    if (!*k) {
        float *d = NULL;
        const size_t bytes = (size_t)nd->aff_n * sizeof(float);
        cudaError_t e = cudaMalloc((void **)&d, 2 * bytes);
        if (e == cudaSuccess)
            e = cudaMemcpy(d, nd->aff_scale, bytes, cudaMemcpyHostToDevice);
        if (e == cudaSuccess)
            e = cudaMemcpy(d + nd->aff_n, nd->aff_shift, bytes, cudaMemcpyHostToDevice);
        if (e != cudaSuccess)
            cudaFree(d);
        CUDA_OK(e, "channel_affine constants");
        *k = d;
    }
    *out = *k;
    return 0;
}

static GpuPool pool_of(const PerceptNet *net, const Node *nd)
{
    Shape in = core->in_shape(net, nd, 0);
    GpuPool p = {in.n * in.c, in.h, in.w, nd->k, nd->stride, nd->pad, nd->out.h, nd->out.w};
    return p;
}

static int *argmax_of(PerceptNet *net, const Node *nd)
{
    return (int *)(net->plan.saved + nd->saved_off); /* int32 in float-sized slots */
}

/* the channel counts of a concatenation's parts */
static void concat_parts(const PerceptNet *net, const Node *nd, int *cs)
{
    for (int j = 0; j < nd->n_in; j++)
        cs[j] = core->in_shape(net, nd, j).c;
}

/* ---- the table ------------------------------------------------------------------------- */

/* The GPU ops keep their CPU twins' saved memory (max-pool argmax, batch-norm mean and
 * rstd, instance-norm statistics) and need no scratch, so the CPU's sizes are right for
 * both them and the ops left to the CPU. */
static size_t cuda_scratch_floats(const PerceptNet *net, const Node *nd)
{
    return core->cpu->scratch_floats(net, nd);
}

static size_t cuda_saved_floats(const PerceptNet *net, const Node *nd, int grad)
{
    return core->cpu->saved_floats(net, nd, grad);
}

static int on_gpu(const Node *nd)
{
    switch (nd->op) {
    case OP_CONV2D: case OP_CONV_TRANSPOSE2D: case OP_UPSAMPLE_NEAREST: case OP_PIXEL_SHUFFLE:
    case OP_INSTANCE_NORM: case OP_BATCH_NORM: case OP_RELU: case OP_LEAKY_RELU: case OP_TANH:
    case OP_SCALED_TANH: case OP_SIGMOID: case OP_ADD: case OP_CONCAT: case OP_AVG_POOL:
    case OP_MAX_POOL: case OP_GLOBAL_AVG_POOL: case OP_CHANNEL_AFFINE:
        return 1;
    default:
        return 0;
    }
}

/* A node's launches were accepted (their work runs on; the graph syncs when it needs the
 * results) */
static int finish(const char *what)
{
    CUDA_OK(cudaGetLastError(), what);
    return 0;
}

/* Waits for the device; the first image's instance-norm statistics of the pass go to
 * their host copy (percept_net_norm_stats). */
static int cuda_sync(PerceptNet *net)
{
    CUDA_OK(cudaDeviceSynchronize(), "CUDA");
    State *st = (State *)net->backend_state;
    if (st && st->stats_pending) {
        CUDA_OK(cudaMemcpy(net->norm_stats, st->stats, sizeof(float) * net->norm_stats_floats,
                           cudaMemcpyDeviceToHost),
                "instance-norm statistics");
        st->stats_pending = 0;
    }
    return 0;
}

static int cuda_forward(PerceptNet *net, const Node *nd)
{
    if (!on_gpu(nd) || (nd->op == OP_INSTANCE_NORM && net->norm_fixed)) {
        CUDA_OK(cudaDeviceSynchronize(), "before a CPU op");
        return core->cpu->forward(net, nd);
    }
    Shape in = core->in_shape(net, nd, 0);
    float *out = net->plan.act + nd->out_off;
    const float *x = core->act(net, nd->in[0]);
    size_t n = shape_numel(nd->out);
    int hw = in.h * in.w;
    switch (nd->op) {
    case OP_CONV2D:
    case OP_CONV_TRANSPOSE2D:
        if (conv_forward(net, nd))
            return -1;
        break;
    case OP_UPSAMPLE_NEAREST:
        gpu_upsample_nearest(out, x, in.n * in.c, in.h, in.w, nd->factor);
        break;
    case OP_PIXEL_SHUFFLE:
        gpu_pixel_shuffle(out, x, in.n, nd->out.c, in.h, in.w, nd->factor);
        break;
    case OP_INSTANCE_NORM: {
        float *saved = net->plan.saved + nd->saved_off;
        gpu_instance_norm(out, saved, saved + in.n * in.c, x, core->param(net, nd, PARAM_WEIGHT),
                      core->param(net, nd, PARAM_BIAS), in.n, in.c, hw, nd->eps);
        /* the first image's statistics, kept for percept_net_norm_stats (the saved memory
         * is shared by every node without gradients): copied on the device now, to the host
         * at sync */
        State *st = state(net);
        if (!st || grow(&st->stats, &st->stats_floats, net->norm_stats_floats + 1,
                        "instance-norm statistics"))
            return -1;
        float *keep = st->stats + nd->stats_off;
        const size_t bytes = sizeof(float) * in.c;
        CUDA_OK(cudaMemcpyAsync(keep, saved, bytes, cudaMemcpyDeviceToDevice, 0), "statistics");
        CUDA_OK(cudaMemcpyAsync(keep + in.c, saved + (size_t)in.n * in.c, bytes,
                                cudaMemcpyDeviceToDevice, 0), "statistics");
        st->stats_pending = 1;
        break;
    }
    case OP_BATCH_NORM: {
        /* eval writes the running statistics' mean and rstd there too: the saved memory is
         * the node's (or, without gradients, shared scratch), and the CPU's eval ignores it */
        float *saved = net->plan.saved + nd->saved_off;
        float *rmean = core->param(net, nd, PARAM_RUNNING_MEAN);
        float *rvar = core->param(net, nd, PARAM_RUNNING_VAR);
        const float *g = core->param(net, nd, PARAM_WEIGHT), *b = core->param(net, nd, PARAM_BIAS);
        if (net->plan.training)
            gpu_batch_norm_train(out, saved, saved + in.c, rmean, rvar, x, g, b, in.n, in.c, hw,
                                 nd->eps, nd->momentum);
        else
            gpu_batch_norm_eval(out, saved, saved + in.c, x, rmean, rvar, g, b, in.n, in.c, hw,
                                nd->eps);
        break;
    }
    case OP_ADD:
        gpu_elementwise(EW_ADD, out, x, core->act(net, nd->in[1]), n, 0, 0);
        break;
    case OP_CONCAT: {
        const float *ins[NODE_MAX_IN];
        int cs[NODE_MAX_IN];
        for (int j = 0; j < nd->n_in; j++)
            ins[j] = core->act(net, nd->in[j]);
        concat_parts(net, nd, cs);
        gpu_concat(out, ins, cs, nd->n_in, in.n, hw);
        break;
    }
    case OP_AVG_POOL: {
        GpuPool p = pool_of(net, nd);
        gpu_avg_pool(out, x, &p);
        break;
    }
    case OP_MAX_POOL: {
        GpuPool p = pool_of(net, nd);
        gpu_max_pool(out, argmax_of(net, nd), x, &p);
        break;
    }
    case OP_GLOBAL_AVG_POOL:
        gpu_global_avg_pool(out, x, in.n * in.c, hw);
        break;
    case OP_CHANNEL_AFFINE: {
        /* one constant for all channels: c = 1 maps every element to it */
        const float *k;
        if (affine_consts(net, nd, &k))
            return -1;
        gpu_channel_affine(out, x, k, k + nd->aff_n, n, nd->aff_n, hw);
        break;
    }
    default:
        gpu_elementwise(nd->op == OP_RELU ? EW_RELU : nd->op == OP_LEAKY_RELU ? EW_LEAKY_RELU
                    : nd->op == OP_TANH ? EW_TANH : nd->op == OP_SIGMOID ? EW_SIGMOID
                                                           : EW_SCALED_TANH,
                    out, x, NULL, n, nd->op == OP_LEAKY_RELU ? nd->alpha : nd->scale, nd->shift);
        break;
    }
    return finish(nd->name);
}

/* May the device write there? (An input's gradient can be the caller's host buffer.) */
static int device_writable(const void *p)
{
    cudaPointerAttributes a;
    if (cudaPointerGetAttributes(&a, p) != cudaSuccess) {
        cudaGetLastError(); /* clear it */
        return 0;
    }
    return a.type == cudaMemoryTypeManaged || a.type == cudaMemoryTypeDevice;
}

static int gpu_backward(PerceptNet *net, const Node *nd, float *const *din)
{
    Shape in = core->in_shape(net, nd, 0);
    const float *dout = net->plan.grads + nd->grad_off;
    const float *x = core->act(net, nd->in[0]), *out = net->plan.act + nd->out_off;
    size_t n = shape_numel(nd->out);
    int hw = in.h * in.w;
    float *dx = din[0];
    switch (nd->op) {
    case OP_CONV2D:
    case OP_CONV_TRANSPOSE2D:
        return conv_backward(net, nd, dx);
    case OP_INSTANCE_NORM: {
        const float *saved = net->plan.saved + nd->saved_off;
        gpu_instance_norm_backward(dx, core->param_grad(net, nd, PARAM_WEIGHT),
                                   core->param_grad(net, nd, PARAM_BIAS), dout, x, saved,
                                   saved + in.n * in.c, core->param(net, nd, PARAM_WEIGHT), in.n,
                                   in.c, hw);
        return 0;
    }
    case OP_BATCH_NORM: {
        float *dg = core->param_grad(net, nd, PARAM_WEIGHT);
        float *db = core->param_grad(net, nd, PARAM_BIAS);
        const float *g = core->param(net, nd, PARAM_WEIGHT);
        const float *saved = net->plan.saved + nd->saved_off;
        if (net->plan.training)
            gpu_batch_norm_backward(dx, dg, db, dout, x, saved, saved + in.c, g, in.n, in.c, hw);
        else
            gpu_batch_norm_backward_eval(dx, dg, db, dout, x,
                                         core->param(net, nd, PARAM_RUNNING_MEAN),
                                         core->param(net, nd, PARAM_RUNNING_VAR), g, in.n, in.c,
                                         hw, nd->eps);
        return 0;
    }
    case OP_ADD:
        for (int j = 0; j < 2; j++)
            if (din[j])
                CUDA_OK(cudaMemcpy(din[j], dout, n * sizeof(float), cudaMemcpyDefault), "add");
        return 0;
    case OP_CONCAT: {
        int cs[NODE_MAX_IN];
        concat_parts(net, nd, cs);
        gpu_concat_backward(din, dout, cs, nd->n_in, in.n, hw);
        return 0;
    }
    default:
        break;
    }
    if (!dx)
        return 0;
    switch (nd->op) {
    case OP_UPSAMPLE_NEAREST:
        gpu_upsample_nearest_backward(dx, dout, in.n * in.c, in.h, in.w, nd->factor);
        break;
    case OP_PIXEL_SHUFFLE:
        gpu_pixel_shuffle_backward(dx, dout, in.n, nd->out.c, in.h, in.w, nd->factor);
        break;
    case OP_RELU:
        gpu_elementwise_backward(EW_RELU, dx, dout, x, n, 0, 0);
        break;
    case OP_LEAKY_RELU:
        gpu_elementwise_backward(EW_LEAKY_RELU, dx, dout, x, n, nd->alpha, 0);
        break;
    case OP_TANH:
        gpu_elementwise_backward(EW_TANH, dx, dout, out, n, 0, 0);
        break;
    case OP_SCALED_TANH:
        gpu_elementwise_backward(EW_SCALED_TANH, dx, dout, out, n, nd->scale, nd->shift);
        break;
    case OP_SIGMOID:
        gpu_elementwise_backward(EW_SIGMOID, dx, dout, out, n, 0, 0);
        break;
    case OP_AVG_POOL: {
        GpuPool p = pool_of(net, nd);
        gpu_avg_pool_backward(dx, dout, &p);
        break;
    }
    case OP_MAX_POOL: {
        GpuPool p = pool_of(net, nd);
        gpu_max_pool_backward(dx, dout, argmax_of(net, nd), &p);
        break;
    }
    case OP_GLOBAL_AVG_POOL:
        gpu_global_avg_pool_backward(dx, dout, in.n * in.c, hw);
        break;
    case OP_CHANNEL_AFFINE: {
        const float *k;
        if (affine_consts(net, nd, &k))
            return -1;
        gpu_channel_affine_backward(dx, dout, k, n, nd->aff_n, hw);
        break;
    }
    default:
        break;
    }
    return 0;
}

static int cuda_backward(PerceptNet *net, const Node *nd, float *const *din)
{
    if (!on_gpu(nd)) {
        CUDA_OK(cudaDeviceSynchronize(), "before a CPU op");
        return core->cpu->backward(net, nd, din);
    }
    /* gradients bound for host memory are computed into a staging buffer, then copied */
    State *st = state(net);
    if (!st)
        return -1;
    float *targets[NODE_MAX_IN];
    int staged = -1;
    for (int j = 0; j < nd->n_in; j++) {
        targets[j] = din[j];
        if (din[j] && !device_writable(din[j])) {
            if (staged >= 0)
                return core->fail("two input gradients outside device memory");
            size_t floats = shape_numel(core->in_shape(net, nd, j));
            if (grow(&st->stage, &st->stage_floats, floats, "staging buffer"))
                return -1;
            targets[j] = st->stage;
            staged = j;
        }
    }
    if (gpu_backward(net, nd, targets) || finish(nd->name))
        return -1;
    if (staged >= 0)
        CUDA_OK(cudaMemcpy(din[staged], st->stage,
                           shape_numel(core->in_shape(net, nd, staged)) * sizeof(float),
                           cudaMemcpyDeviceToHost),
                "copying a gradient to the host");
    return 0;
}

static PerceptBackend backend;

extern "C" __attribute__((visibility("default"))) const PerceptBackend *
percept_plugin_backend(const PerceptCoreApi *api)
{
    if (!api || api->abi != PERCEPT_PLUGIN_ABI) {
        if (api)
            api->fail("libpercept-cuda.so was built from other sources than this libpercept");
        return NULL;
    }
    core = api;
    int devices = 0;
    cudaError_t e = cudaGetDeviceCount(&devices);
    if (e != cudaSuccess) {
        core->fail("no usable GPU (%s)", cudaGetErrorString(e));
        return NULL;
    }
    if (devices < 1) {
        core->fail("no GPU found");
        return NULL;
    }
    int managed = 0;
    cudaDeviceGetAttribute(&managed, cudaDevAttrManagedMemory, 0);
    if (!managed) {
        core->fail("GPU 0 has no managed memory");
        return NULL;
    }
    backend.name = "cuda";
    backend.alloc = cuda_alloc;
    backend.release = cuda_release;
    backend.scratch_floats = cuda_scratch_floats;
    backend.saved_floats = cuda_saved_floats;
    backend.forward = cuda_forward;
    backend.backward = cuda_backward;
    backend.net_free = cuda_net_free;
    backend.sync = cuda_sync;
    return &backend;
}
