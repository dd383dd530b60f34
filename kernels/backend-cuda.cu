/* The CUDA backend (libpercept-cuda.so, loaded by core/nets/backend.c): the same table as
 * the CPU backend. Memory is CUDA managed memory, so the graph's host-side work
 * (initialising and loading parameters) is unchanged and any op without a GPU kernel runs
 * on its CPU twin, correctly, after a synchronisation; inputs go up and gradients move by
 * copies on the network's stream (cuda_copy, cuda_accumulate), and the losses and Adam have
 * their own arithmetic here (math.cu), so a training step or a tile need not touch GPU
 * memory from the host.
 *
 * Convolutions go to cuDNN; the elementwise ops, channel affine maps, concatenation,
 * instance and batch norm, pooling, upsampling, pixel shuffle, reflection padding and
 * linear layers are kernels of ours (elementwise.cu, combine.cu, norm.cu, pool.cu,
 * resample.cu, linear.cu), each tested against its CPU twin by tests/test-cuda-parity.c;
 * reshape and eval-mode dropout are copies; binary, reparam and training dropout stay the
 * CPU's (their masks and noise come from its counter-based generator). Inference fuses as
 * the CPU does (plan.c): a residual add and a ReLU after a conv or norm are applied as that
 * node writes its output (the conv's in one pass with its bias, gpu_conv_epilogue), an eval
 * batch norm after a conv is folded into its weights, and an upsampling before a conv is
 * done into a buffer of the conv's own.
 *
 * Each network's work runs in order on a stream of its own (non-blocking), unsynchronised: the device is
 * waited for before an op runs on its CPU twin, at a copy to the host, and when the graph
 * asks (backend.sync: the end of a pass, gradients it adds up on the host). Same-size
 * inference passes are replayed as CUDA graphs (below).
 *
 * PERCEPT_CUDA_PRECISION, read when a network first runs here: fp32 (the default: strict
 * FP32 convolutions, FMA math), tf32 (convolutions on TF32 tensor cores), or fp16: inference
 * (a pass without gradients) in half precision — activations and weights stored as __half,
 * convolutions on fp16 tensor cores with float accumulation, our kernels computing in float
 * (kernels-half.h) — and training as tf32. An fp16 pass keeps its activations in a half
 * twin of the plan's float arena, at the same offsets (so the plan's buffer reuse holds);
 * the network input is converted as it is read, and the output, the one activation the host
 * reads after such a pass, converted back to float. */
#include <cuda_runtime.h>
#include <cudnn.h>
#include <stdlib.h>
#include <string.h>

#include <type_traits>

#include "kernels-half.h"
#include "kernels.h"
#include "plugin.h"

const PerceptCoreApi *core;

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
    cudnnTensorDescriptor_t x, y, bias, out; /* cuDNN's x and y; out: the node's output */
    cudnnFilterDescriptor_t w;
    cudnnConvolutionDescriptor_t conv;
    cudnnConvolutionFwdAlgo_t fwd;
    cudnnConvolutionBwdDataAlgo_t bwd_data;
    cudnnConvolutionBwdFilterAlgo_t bwd_filter;
    int padded;                      /* reflection: the input is padded by a kernel first */
    int half;                        /* descriptors for fp16 tensors (inference) */
    GpuPhased ph;                    /* ph.r > 0: run phased (phases.cu); x, y, w are its */
    size_t counts[3];                /* elements described by x, y and w */
    size_t workspace;                /* bytes its algorithms need */
} Conv;

/* What a captured pass depends on beyond the values its kernels read — the memory it was
 * captured with (the plan's arenas, the parameters, the backend's own buffers, which a pass
 * of another kind may have grown since), the input's shape, its kind: if any of it changes,
 * its graph is stale. */
typedef struct {
    const void *act, *saved, *params, *buffers, *workspace, *buf, *up, *half, *stats, *fixed,
        *phased;
    Shape in;
    int half_pass, norm_fixed;
} PassKey;

/* how this pass runs: each node's work issued (direct), issued into a graph being captured,
 * or nothing issued per node because the graph of an earlier pass is replayed at sync */
enum { PASS_DIRECT, PASS_CAPTURE, PASS_REPLAY };

typedef struct {
    Conv *conv;                      /* one per node */
    float **consts;                  /* per node: channel_affine's scale, shift; or NULL */
    __half **weights16;              /* per node: a convolution's weights in half, or NULL */
    float **folded;                  /* per node: weights and bias with a batch norm folded in */
    void **phased_w;                 /* per node: a phased convolution's weights (float or half) */
    int n_nodes;
    Precision precision;
    int phases;                      /* PERCEPT_CUDA_PHASES: r of phased convolutions, 0: none */
    int measured;                    /* PERCEPT_CUDA_ALGOS: convolution algorithms timed */
    __half *half;                    /* fp16 inference: the activations, at the plan's offsets */
    size_t half_count;
    char *workspace;
    size_t workspace_bytes;
    float *buf;                      /* reflection-padded input, or its gradient */
    size_t buf_floats;
    float *up;                       /* a convolution's input upsampled (in_up) */
    size_t up_floats;
    float *phased;                   /* a phased convolution's output, or its gradient */
    size_t phased_floats;
    float *phased_dw;                /* a phased convolution's weight gradient */
    size_t phased_dw_floats;
    float *stage;                    /* an input gradient bound for host memory */
    size_t stage_floats;
    float *stats;                    /* the pass's instance-norm statistics (device) */
    size_t stats_floats;
    float *fixed;                    /* the fixed ones (percept_net_fix_norm_stats), uploaded */
    size_t fixed_floats;
    int stats_pending;               /* to be copied to the host's (net->norm_stats) at sync */
    cudaStream_t stream;             /* the network's work, in order */
    /* CUDA graphs: the key as the last pass ended, the graph of a pass and its key, whether
     * it copies statistics, this pass's way of running; graphs off after a failed capture */
    PassKey last, graph_key;
    cudaGraphExec_t graph;
    int graph_stats, pass, graphs_failed;
} State;

static const size_t WORKSPACE_MAX = (size_t)512 << 20; /* per network */

/* The calling thread's cuDNN handle, its work going to the network's stream. */
static cudnnHandle_t handle(const State *st)
{
    static thread_local cudnnHandle_t h;
    if (!h && cudnnCreate(&h) != CUDNN_STATUS_SUCCESS)
        h = NULL;
    if (h && cudnnSetStream(h, st->stream) != CUDNN_STATUS_SUCCESS)
        return NULL;
    return h;
}

static void conv_destroy(Conv *c)
{
    if (!c->in.n)
        return;
    cudnnDestroyTensorDescriptor(c->x);
    cudnnDestroyTensorDescriptor(c->y);
    cudnnDestroyTensorDescriptor(c->bias);
    cudnnDestroyTensorDescriptor(c->out);
    cudnnDestroyFilterDescriptor(c->w);
    cudnnDestroyConvolutionDescriptor(c->conv);
    memset(c, 0, sizeof *c);
}

static void abandon_capture(State *st); /* CUDA graphs, below */

static void cuda_net_free(PerceptNet *net)
{
    State *st = (State *)net->backend_state;
    if (!st)
        return;
    for (int i = 0; i < st->n_nodes; i++) {
        conv_destroy(&st->conv[i]);
        cudaFree(st->consts[i]);
        cudaFree(st->weights16[i]);
        cudaFree(st->folded[i]);
        cudaFree(st->phased_w[i]);
    }
    free(st->conv);
    free(st->consts);
    free(st->weights16);
    free(st->folded);
    free(st->phased_w);
    abandon_capture(st);
    if (st->graph)
        cudaGraphExecDestroy(st->graph);
    if (st->stream)
        cudaStreamDestroy(st->stream);
    cudaFree(st->half);
    cudaFree(st->up);
    cudaFree(st->phased);
    cudaFree(st->phased_dw);
    cudaFree(st->workspace);
    cudaFree(st->buf);
    cudaFree(st->stage);
    cudaFree(st->stats);
    cudaFree(st->fixed);
    free(st);
    net->backend_state = NULL;
}

int precision_setting(Precision *p)
{
    const char *e = getenv("PERCEPT_CUDA_PRECISION");
    if (!e || !*e || !strcmp(e, "fp32"))
        *p = PRECISION_FP32;
    else if (!strcmp(e, "tf32"))
        *p = PRECISION_TF32;
    else if (!strcmp(e, "fp16"))
        *p = PRECISION_FP16;
    else
        return core->fail("PERCEPT_CUDA_PRECISION is '%s', not fp32, tf32 or fp16", e);
    return 0;
}

/* PERCEPT_CUDA_PHASES: 0 (no phased convolutions), 2 (the default), 3 or 4 */
static int phases_setting(int *r)
{
    const char *e = getenv("PERCEPT_CUDA_PHASES");
    *r = e && *e ? atoi(e) : 2;
    if (!e || !*e || (!e[1] && (*r == 0 || (*r >= 2 && *r <= 4))))
        return 0;
    return core->fail("PERCEPT_CUDA_PHASES is '%s', not 0, 2, 3 or 4", e);
}

/* PERCEPT_CUDA_ALGOS: measured (the default: cuDNN times each convolution algorithm once per
 * shape, as PyTorch's cudnn.benchmark does) or heuristic (cuDNN's guess, nothing timed) */
static int algos_setting(int *measured)
{
    const char *e = getenv("PERCEPT_CUDA_ALGOS");
    *measured = !e || !*e || !strcmp(e, "measured");
    if (*measured || !strcmp(e, "heuristic"))
        return 0;
    return core->fail("PERCEPT_CUDA_ALGOS is '%s', not measured or heuristic", e);
}

static State *state(PerceptNet *net)
{
    if (!net->backend_state) {
        Precision precision = PRECISION_FP32;
        int phases = 0, measured = 1;
        if (precision_setting(&precision) || phases_setting(&phases) || algos_setting(&measured))
            return NULL;
        State *st = (State *)calloc(1, sizeof *st);
        const int n = net->n_nodes;
        int ok = st && (st->conv = (Conv *)calloc(n, sizeof(Conv))) &&
                 (st->consts = (float **)calloc(n, sizeof(float *))) &&
                 (st->weights16 = (__half **)calloc(n, sizeof(__half *))) &&
                 (st->folded = (float **)calloc(n, sizeof(float *))) &&
                 (st->phased_w = (void **)calloc(n, sizeof(void *)));
        /* non-blocking: the legacy stream's work (another thread's allocations) neither waits
         * for it nor meets its graph captures; this file orders its own copies with it */
        const int streamed =
            ok && cudaStreamCreateWithFlags(&st->stream, cudaStreamNonBlocking) == cudaSuccess;
        if (!streamed) {
            cudaGetLastError();
            if (st) {
                free(st->conv);
                free(st->consts);
                free(st->weights16);
                free(st->folded);
                free(st->phased_w);
                free(st);
            }
            core->fail(ok ? "CUDA: cannot create a stream" : "out of memory");
            return NULL;
        }
        st->n_nodes = n;
        st->precision = precision;
        st->phases = phases;
        st->measured = measured;
        net->backend_state = st;
    }
    return (State *)net->backend_state;
}

/* Whether this pass runs in half precision: fp16 asked for, and no gradients to keep. */
static int half_pass(const PerceptNet *net, const State *st)
{
    return st->precision == PRECISION_FP16 && !net->plan.grad;
}

/* A device buffer of at least count elements, kept and grown (have: its elements). */
template <typename T> static int grow(T **p, size_t *have, size_t count, const char *what)
{
    if (*have >= count)
        return 0;
    cudaFree(*p);
    *p = NULL;
    *have = 0;
    CUDA_OK(cudaMalloc((void **)p, count * sizeof(T)), what);
    *have = count;
    return 0;
}

static int set4d(cudnnTensorDescriptor_t d, cudnnDataType_t type, int n, int c, int h, int w)
{
    CUDNN_OK(cudnnSetTensor4dDescriptor(d, CUDNN_TENSOR_NCHW, type, n, c, h, w),
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

/* A convolution's algorithms, fastest first, with the workspace each needs: cuDNN's guesses,
 * or its timings */
typedef struct {
    cudnnConvolutionFwdAlgoPerf_t fp[CUDNN_CONVOLUTION_FWD_ALGO_COUNT];
    cudnnConvolutionBwdDataAlgoPerf_t dp[CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT];
    cudnnConvolutionBwdFilterAlgoPerf_t wp[CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT];
    int nf, nd, nw;
} Algorithms;

/* the most workspace any of n algorithms within the bound asks for */
template <typename Perf> static size_t most_workspace(const Perf *p, int n, size_t most)
{
    for (int i = 0; i < n; i++)
        if (p[i].status == CUDNN_STATUS_SUCCESS && p[i].memory <= WORKSPACE_MAX &&
            p[i].memory > most)
            most = p[i].memory;
    return most;
}

/* cuDNN's timings of every algorithm run on scratch buffers of the convolution's sizes, in
 * place of the guesses: measured once per shape, when the descriptors are made, for the
 * kinds the pass runs (a transposed convolution's forward is a backward-data; backward needs
 * all three). Scratch memory that cannot be had leaves the guesses. */
static void measure_algorithms(cudnnHandle_t h, const Conv *c, int half, int transposed,
                               int grad, Algorithms *a)
{
    const size_t es = half ? sizeof(__half) : sizeof(float);
    size_t ws = most_workspace(a->fp, a->nf, 0);
    ws = most_workspace(a->wp, a->nw, most_workspace(a->dp, a->nd, ws));
    void *x = NULL, *y = NULL, *w = NULL, *work = NULL;
    const int ok = cudaMalloc(&x, c->counts[0] * es) == cudaSuccess &&
                   cudaMalloc(&y, c->counts[1] * es) == cudaSuccess &&
                   cudaMalloc(&w, c->counts[2] * es) == cudaSuccess &&
                   cudaMalloc(&work, ws ? ws : 1) == cudaSuccess &&
                   cudaMemset(x, 0, c->counts[0] * es) == cudaSuccess &&
                   cudaMemset(w, 0, c->counts[2] * es) == cudaSuccess &&
                   cudaMemset(y, 0, c->counts[1] * es) == cudaSuccess;
    Algorithms m = *a;
    const int fwd = grad || !transposed, data = grad || transposed; /* the kinds to time */
    if (ok && fwd &&
        cudnnFindConvolutionForwardAlgorithmEx(h, c->x, x, c->w, w, c->conv, c->y, y,
                                               CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &m.nf, m.fp,
                                               work, ws) == CUDNN_STATUS_SUCCESS)
        memcpy(a->fp, m.fp, sizeof m.fp), a->nf = m.nf;
    if (ok && data &&
        cudnnFindConvolutionBackwardDataAlgorithmEx(h, c->w, w, c->y, y, c->conv, c->x, x,
                                                    CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT, &m.nd,
                                                    m.dp, work, ws) == CUDNN_STATUS_SUCCESS)
        memcpy(a->dp, m.dp, sizeof m.dp), a->nd = m.nd;
    if (ok && grad && a->nw &&
        cudnnFindConvolutionBackwardFilterAlgorithmEx(h, c->x, x, c->y, y, c->conv, c->w, w,
                                                      CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT,
                                                      &m.nw, m.wp, work, ws) ==
            CUDNN_STATUS_SUCCESS)
        memcpy(a->wp, m.wp, sizeof m.wp), a->nw = m.nw;
    cudaFree(x);
    cudaFree(y);
    cudaFree(w);
    cudaFree(work);
    cudaGetLastError(); /* an allocation that failed is not an error of the pass */
}

/* The phases per axis a convolution runs with here (phases.cu), or 0: the stride-1 ones with
 * a kernel of 5 or more and at most 4 channels on a side — cuDNN has no good kernel for those
 * (on an H100, Johnson's 9×9 convolutions from and to RGB at 1024² took 0.4 and 0.8 ms in
 * fp16, 20–40 TFLOP/s, more than its ten residual convolutions together: ../PERF.md), while
 * phased they have 16 or 128 channels on that side, for ≈ (kp·r / k)² more arithmetic. */
static int phases_for(const State *st, const Node *nd)
{
    const int narrow = nd->cin <= 4 || nd->cout <= 4;
    return nd->op == OP_CONV2D && nd->stride == 1 && nd->k >= 5 && narrow ? st->phases : 0;
}

/* Descriptors for a conv2d (transposed: the conv whose backward-data it is) at this input,
 * in float or (half) fp16, and the fastest algorithms whose workspace fits: for fp16, only
 * the ones inference uses. */
static int conv_prepare(PerceptNet *net, const Node *nd, State *st, int half, Conv **out)
{
    Conv *c = &st->conv[nd - net->nodes];
    Shape in = core->in_shape(net, nd, 0);
    *out = c;
    /* made before: the workspace is grown again, as a growth that failed is not remembered */
    if (c->in.n && !memcmp(&c->in, &in, sizeof in) && c->half == half)
        return grow(&st->workspace, &st->workspace_bytes, c->workspace, "cuDNN workspace");
    conv_destroy(c);
    cudnnHandle_t h = handle(st);
    if (!h)
        return core->fail("cuDNN: cannot create a handle");
    CUDNN_OK(cudnnCreateTensorDescriptor(&c->x), "descriptor");
    CUDNN_OK(cudnnCreateTensorDescriptor(&c->y), "descriptor");
    CUDNN_OK(cudnnCreateTensorDescriptor(&c->bias), "descriptor");
    CUDNN_OK(cudnnCreateTensorDescriptor(&c->out), "descriptor");
    CUDNN_OK(cudnnCreateFilterDescriptor(&c->w), "descriptor");
    CUDNN_OK(cudnnCreateConvolutionDescriptor(&c->conv), "descriptor");
    c->in = in;
    c->half = half;
    const cudnnDataType_t type = half ? CUDNN_DATA_HALF : CUDNN_DATA_FLOAT;
    const int transposed = nd->op == OP_CONV_TRANSPOSE2D, r = phases_for(st, nd);
    c->padded = !transposed && !r && nd->reflect && nd->pad > 0;
    int pad = c->padded || r ? 0 : nd->pad; /* a phased input holds its padding */
    if (set4d(c->out, type, nd->out.n, nd->out.c, nd->out.h, nd->out.w) ||
        set4d(c->bias, CUDNN_DATA_FLOAT, 1, nd->cout, 1, 1))
        return -1;
    if (r) {
        GpuPhased *d = &c->ph;
        memset(d, 0, sizeof *d);
        d->n = in.n, d->cin = in.c, d->cout = nd->cout, d->h = in.h, d->w = in.w;
        d->k = nd->k, d->pad = nd->pad, d->reflect = nd->reflect, d->r = r;
        gpu_phased_shape(d);
        if (set4d(c->x, type, d->n, d->cinp, d->hi, d->wi) ||
            set4d(c->y, type, d->n, d->coutp, d->ho, d->wo))
            return -1;
        c->counts[0] = (size_t)d->n * d->cinp * d->hi * d->wi;
        c->counts[1] = (size_t)d->n * d->coutp * d->ho * d->wo;
        c->counts[2] = (size_t)d->coutp * d->cinp * d->kp * d->kp;
        CUDNN_OK(cudnnSetFilter4dDescriptor(c->w, type, CUDNN_TENSOR_NCHW, d->coutp, d->cinp,
                                            d->kp, d->kp), "filter descriptor");
    } else {
        /* cuDNN's x is the conv's input: for a transposed conv, its output */
        const Shape big = transposed ? nd->out : in, small = transposed ? in : nd->out;
        int xh = big.h + (c->padded ? 2 * nd->pad : 0), xw = big.w + (c->padded ? 2 * nd->pad : 0);
        if (set4d(c->x, type, big.n, big.c, xh, xw) ||
            set4d(c->y, type, small.n, small.c, small.h, small.w))
            return -1;
        c->counts[0] = (size_t)big.n * big.c * xh * xw;
        c->counts[1] = shape_numel(small);
        c->counts[2] = (size_t)small.c * big.c * nd->k * nd->k;
        CUDNN_OK(cudnnSetFilter4dDescriptor(c->w, type, CUDNN_TENSOR_NCHW, small.c, big.c, nd->k,
                                            nd->k), "filter descriptor");
    }
    /* float accumulation in every mode */
    CUDNN_OK(cudnnSetConvolution2dDescriptor(c->conv, pad, pad, nd->stride, nd->stride, 1, 1,
                                             CUDNN_CROSS_CORRELATION, CUDNN_DATA_FLOAT),
             "convolution descriptor");
    /* FMA math keeps float convolutions off the TF32 tensor cores; the default allows them */
    CUDNN_OK(cudnnSetConvolutionMathType(c->conv, half ? CUDNN_TENSOR_OP_MATH
                                                  : st->precision == PRECISION_FP32
                                                      ? CUDNN_FMA_MATH
                                                      : CUDNN_DEFAULT_MATH),
             "math type");
    Algorithms a;
    a.nw = 0;
    CUDNN_OK(cudnnGetConvolutionForwardAlgorithm_v7(h, c->x, c->w, c->conv, c->y,
                                                    CUDNN_CONVOLUTION_FWD_ALGO_COUNT, &a.nf, a.fp),
             "forward algorithm");
    CUDNN_OK(cudnnGetConvolutionBackwardDataAlgorithm_v7(h, c->w, c->y, c->conv, c->x,
                                                         CUDNN_CONVOLUTION_BWD_DATA_ALGO_COUNT,
                                                         &a.nd, a.dp),
             "backward-data algorithm");
    if (!half) /* fp16 passes have no gradients */
        CUDNN_OK(cudnnGetConvolutionBackwardFilterAlgorithm_v7(
                     h, c->x, c->y, c->conv, c->w, CUDNN_CONVOLUTION_BWD_FILTER_ALGO_COUNT, &a.nw,
                     a.wp),
                 "backward-filter algorithm");
    if (st->measured)
        measure_algorithms(h, c, half, transposed, net->plan.grad, &a);
    int fi, di, wi = 0;
    size_t need = 0;
    if ((fi = fastest_fitting(a.fp, a.nf, &need)) < 0)
        return core->fail("cuDNN: no forward algorithm for this convolution");
    if ((di = fastest_fitting(a.dp, a.nd, &need)) < 0)
        return core->fail("cuDNN: no backward-data algorithm for this convolution");
    if (!half) {
        if ((wi = fastest_fitting(a.wp, a.nw, &need)) < 0)
            return core->fail("cuDNN: no backward-filter algorithm for this convolution");
        c->bwd_filter = a.wp[wi].algo;
    }
    const cudnnConvolutionFwdAlgoPerf_t *fp = a.fp;
    const cudnnConvolutionBwdDataAlgoPerf_t *dp = a.dp;
    c->fwd = fp[fi].algo;
    c->bwd_data = dp[di].algo;
    c->workspace = need ? need : 1;
    return grow(&st->workspace, &st->workspace_bytes, c->workspace, "cuDNN workspace");
}

/* Where node i's output (INPUT_NODE: the network input) is in a pass on T: the plan's float
 * arena, or in fp16 inference its half twin at the same offset. */
template <typename T> static T *at(PerceptNet *net, State *st, int i);
template <> float *at<float>(PerceptNet *net, State *, int i)
{
    return core->act(net, i);
}
template <> __half *at<__half>(PerceptNet *net, State *st, int i)
{
    return st->half + (core->act(net, i) - net->plan.act);
}

/* The weights cuDNN reads: the given ones, or for fp16 a half copy made at every pass (they
 * may have changed since the last; a copy costs a fraction of the convolution) */
static int weights_as(PerceptNet *, State *, const Node *, const float *w, size_t,
                      const float **out)
{
    *out = w;
    return 0;
}

static int weights_as(PerceptNet *net, State *st, const Node *nd, const float *w, size_t n,
                      const __half **out)
{
    __half **w16 = &st->weights16[nd - net->nodes];
    if (!*w16)
        CUDA_OK(cudaMalloc((void **)w16, n * sizeof(__half)), "fp16 weights");
    gpu_to_half(*w16, w, n);
    *out = *w16;
    return 0;
}

/* A phased convolution's weights (phases.cu) in T, made at every pass from the float ones */
template <typename T>
static int phased_weights(PerceptNet *net, State *st, const Node *nd, const GpuPhased *d,
                          const float *w, const T **out)
{
    void **p = &st->phased_w[nd - net->nodes]; /* its size is the node's, whatever the input */
    if (!*p)
        CUDA_OK(cudaMalloc(p, sizeof(float) * d->coutp * d->cinp * d->kp * d->kp),
                "phased weights");
    gpu_phase_weights((T *)*p, w, d);
    *out = (const T *)*p;
    return 0;
}

/* A convolution's weights and bias: its parameters, or, with an eval batch norm folded in
 * (ep_bn), the folded ones, made at every pass as the weights in half or phased are. */
template <typename T>
static int conv_operands(PerceptNet *net, State *st, const Node *nd, const Conv *c, const T **w,
                         const float **b)
{
    const float *wf = core->param(net, nd, PARAM_WEIGHT);
    const size_t n = (size_t)nd->cin * nd->cout * nd->k * nd->k;
    *b = core->param(net, nd, PARAM_BIAS);
    if (nd->ep_bn >= 0) {
        const Node *bn = &net->nodes[nd->ep_bn];
        float **f = &st->folded[nd - net->nodes];
        if (!*f)
            CUDA_OK(cudaMalloc((void **)f, (n + nd->cout) * sizeof(float)), "folded batch norm");
        gpu_fold_batch_norm(*f, *f + n, wf, *b, core->param(net, bn, PARAM_RUNNING_MEAN),
                            core->param(net, bn, PARAM_RUNNING_VAR),
                            core->param(net, bn, PARAM_WEIGHT), core->param(net, bn, PARAM_BIAS),
                            nd->cout, n / nd->cout, bn->eps);
        wf = *f;
        *b = *f + n;
    }
    return c->ph.r ? phased_weights(net, st, nd, &c->ph, wf, w)
                   : weights_as(net, st, nd, wf, n, w);
}

/* floats holding count elements of T */
template <typename T> static size_t floats_for(size_t count)
{
    return (count * sizeof(T) + sizeof(float) - 1) / sizeof(float);
}

/* The inference epilogue's operand (plan.c: ep_add), or NULL */
template <typename T> static const T *epilogue_add(PerceptNet *net, State *st, const Node *nd)
{
    return nd->ep_add == NO_NODE ? NULL : at<T>(net, st, nd->ep_add);
}

/* Whether a convolution's bias may be left out of this pass: its one reader is an instance
 * norm that computes its own statistics, which subtracts the bias with the mean (a pass over
 * the output saved; the rounding moves by ~1e-7). Not with gradients, nor with fixed
 * statistics (the whole image's, taken with the bias); the statistics kept for
 * percept_net_norm_stats get it added back (forward_on_gpu). */
static int bias_cancels(const PerceptNet *net, const Node *nd)
{
    const int self = (int)(nd - net->nodes);
    if (nd->op != OP_CONV2D || !nd->has_bias || net->plan.grad || net->norm_fixed ||
        nd->ep_add != NO_NODE || nd->ep_relu || nd->ep_bn >= 0 || self == net->output ||
        nd->last_use >= net->n_nodes) /* read by the host after the pass */
        return 0;
    const Node *reader = NULL;
    for (const Node *q = nd + 1; q < net->nodes + net->n_nodes; q++) {
        for (int j = 0; j < q->n_in; j++)
            if (q->in[j] == self) {
                if (reader || q->n_in != 1)
                    return 0;
                reader = q;
            }
        if (q->ep_add == self)
            return 0;
    }
    return reader && reader->op == OP_INSTANCE_NORM && reader->fused_into < 0;
}

template <typename T> static int conv_forward(PerceptNet *net, const Node *nd, State *st)
{
    Conv *c;
    if (conv_prepare(net, nd, st, sizeof(T) == sizeof(__half), &c))
        return -1;
    const float one = 1, zero = 0;
    cudnnHandle_t h = handle(st);
    const T *x = at<T>(net, st, nd->in[0]), *w = NULL;
    const float *b = NULL;
    T *out = at<T>(net, st, (int)(nd - net->nodes));
    if (conv_operands(net, st, nd, c, &w, &b))
        return -1;
    if (bias_cancels(net, nd))
        b = NULL;
    if (nd->op == OP_CONV_TRANSPOSE2D) {
        CUDNN_OK(cudnnConvolutionBackwardData(h, &one, c->w, w, c->y, x, c->conv, c->bwd_data,
                                              st->workspace, st->workspace_bytes, &zero, c->x, out),
                 "transposed convolution");
    } else {
        Shape in = c->in;
        /* an upsampling folded into this conv (plan.c) is read through by the padding or
         * phasing gather, or else done into a buffer of ours */
        const int up = nd->in_up;
        if (up)
            x = at<T>(net, st, net->nodes[nd->in[0]].in[0]);
        if (c->ph.r) { /* phased in, convolved, phased out with the epilogue */
            GpuPhased phased = c->ph, *d = &phased;
            d->up = up;
            const size_t xs = (size_t)d->n * d->cinp * d->hi * d->wi;
            if (grow(&st->buf, &st->buf_floats, floats_for<T>(xs), "phased input") ||
                grow(&st->phased, &st->phased_floats,
                     floats_for<T>((size_t)d->n * d->coutp * d->ho * d->wo), "phased output"))
                return -1;
            gpu_phase_input((T *)st->buf, x, d);
            CUDNN_OK(cudnnConvolutionForward(h, &one, c->x, st->buf, c->w, w, c->conv, c->fwd,
                                             st->workspace, st->workspace_bytes, &zero, c->y,
                                             st->phased),
                     "phased convolution");
            gpu_unphase_output(out, (const T *)st->phased, b, epilogue_add<T>(net, st, nd),
                               nd->ep_relu, d);
            return 0;
        }
        if (c->padded) {
            size_t count = (size_t)in.n * in.c * (in.h + 2 * nd->pad) * (in.w + 2 * nd->pad);
            if (grow(&st->buf, &st->buf_floats, floats_for<T>(count), "padding buffer"))
                return -1;
            gpu_reflect_pad((T *)st->buf, x, in.n * in.c, in.h, in.w, nd->pad, up);
            x = (const T *)st->buf;
        } else if (up) {
            if (grow(&st->up, &st->up_floats, floats_for<T>(shape_numel(in)), "upsampling buffer"))
                return -1;
            gpu_upsample_nearest((T *)st->up, x, in.n * in.c, in.h / up, in.w / up, up);
            x = (const T *)st->up;
        }
        CUDNN_OK(cudnnConvolutionForward(h, &one, c->x, x, c->w, w, c->conv, c->fwd, st->workspace,
                                         st->workspace_bytes, &zero, c->y, out),
                 "convolution");
    }
    const T *add = epilogue_add<T>(net, st, nd);
    if (b || add || nd->ep_relu)
        gpu_conv_epilogue(out, b, add, nd->ep_relu, shape_numel(nd->out), nd->out.c,
                          nd->out.h * nd->out.w);
    return 0;
}

/* A phased convolution's backward (conv_backward's): the input phased again and the output's
 * gradient phased, cuDNN's gradients of the phased convolution, gathered back. */
static int phased_backward(PerceptNet *net, const Node *nd, State *st, const Conv *c, float *dx)
{
    const GpuPhased *d = &c->ph;
    const float one = 1, zero = 0, *w, *b;
    cudnnHandle_t h = handle(st);
    float *dw = core->param_grad(net, nd, PARAM_WEIGHT);
    float *db = core->param_grad(net, nd, PARAM_BIAS);
    const float *dout = net->plan.grads + nd->grad_off;
    const size_t xs = (size_t)d->n * d->cinp * d->hi * d->wi;
    if (grow(&st->buf, &st->buf_floats, 2 * xs, "phased input") ||
        grow(&st->phased, &st->phased_floats, (size_t)d->n * d->coutp * d->ho * d->wo,
             "phased output gradient") ||
        grow(&st->phased_dw, &st->phased_dw_floats, (size_t)d->coutp * d->cinp * d->kp * d->kp,
             "phased weight gradient") ||
        conv_operands(net, st, nd, c, &w, &b))
        return -1;
    gpu_phase_input(st->buf, core->act(net, nd->in[0]), d);
    gpu_phase_output_grad(st->phased, dout, d);
    if (db)
        CUDNN_OK(cudnnConvolutionBackwardBias(h, &one, c->out, dout, &one, c->bias, db),
                 "bias gradient");
    if (dw) {
        CUDNN_OK(cudnnConvolutionBackwardFilter(h, &one, c->x, st->buf, c->y, st->phased, c->conv,
                                                c->bwd_filter, st->workspace, st->workspace_bytes,
                                                &zero, c->w, st->phased_dw),
                 "phased weight gradient");
        gpu_unphase_weights_grad(dw, st->phased_dw, d);
    }
    if (dx) {
        CUDNN_OK(cudnnConvolutionBackwardData(h, &one, c->w, w, c->y, st->phased, c->conv,
                                              c->bwd_data, st->workspace, st->workspace_bytes,
                                              &zero, c->x, st->buf + xs),
                 "phased input gradient");
        gpu_phase_input_backward(dx, st->buf + xs, d);
    }
    return 0;
}

/* dx (assigned), dW and db (accumulated, as every backend's parameter gradients are). */
static int conv_backward(PerceptNet *net, const Node *nd, float *dx)
{
    State *st = state(net);
    Conv *c;
    if (!st || conv_prepare(net, nd, st, 0, &c))
        return -1;
    if (c->ph.r)
        return phased_backward(net, nd, st, c, dx);
    const float one = 1, zero = 0;
    cudnnHandle_t h = handle(st);
    const float *x = core->act(net, nd->in[0]), *w = core->param(net, nd, PARAM_WEIGHT);
    float *dw = core->param_grad(net, nd, PARAM_WEIGHT), *db = core->param_grad(net, nd, PARAM_BIAS);
    const float *dout = net->plan.grads + nd->grad_off;
    if (nd->op == OP_CONV_TRANSPOSE2D) {
        /* y = convT(x): cuDNN's "x" is our output, its "y" our input */
        if (db)
            CUDNN_OK(cudnnConvolutionBackwardBias(h, &one, c->out, dout, &one, c->bias, db), "bias gradient");
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
        gpu_reflect_pad(st->buf, x, in.n * in.c, in.h, in.w, nd->pad, 1);
        x = st->buf;
    }
    if (db)
        CUDNN_OK(cudnnConvolutionBackwardBias(h, &one, c->out, dout, &one, c->bias, db), "bias gradient");
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

/* Whether this pass runs nd here, not on its CPU twin: dropout only where it is the
 * identity (its masks are the CPU's counter-based generator's), nor binary and reparam. */
static int on_gpu(const PerceptNet *net, const Node *nd)
{
    switch (nd->op) {
    case OP_CONV2D: case OP_CONV_TRANSPOSE2D: case OP_UPSAMPLE_NEAREST: case OP_PIXEL_SHUFFLE:
    case OP_BATCH_NORM: case OP_RELU: case OP_LEAKY_RELU: case OP_TANH: case OP_SCALED_TANH:
    case OP_SIGMOID: case OP_COS: case OP_ADD: case OP_CONCAT: case OP_AVG_POOL: case OP_MAX_POOL:
    case OP_GLOBAL_AVG_POOL: case OP_CHANNEL_AFFINE: case OP_LINEAR: case OP_RESHAPE:
    case OP_INSTANCE_NORM:
        return 1;
    case OP_DROPOUT:
        return !net->plan.training || nd->p <= 0;
    default:
        return 0;
    }
}

/* dst = src, n elements of T, on the network's stream (a no-op in place); src may be host
 * memory (an upload, outside a graph capture) */
template <typename T>
static int copy_on_device(State *st, T *dst, const T *src, size_t n, const char *what)
{
    if (dst != src)
        CUDA_OK(cudaMemcpyAsync(dst, src, n * sizeof(T), cudaMemcpyDefault, st->stream), what);
    return 0;
}

/* A node's launches were accepted (their work runs on; the graph syncs when it needs the
 * results) */
static int finish(const char *what)
{
    CUDA_OK(cudaGetLastError(), what);
    return 0;
}

/* ---- CUDA graphs: same-size inference passes replayed ------------------------------------
 * The second pass in a row with the same key (plan, parameters, precision) is captured —
 * the first has settled every buffer, descriptor and constant, so nothing in it allocates or
 * synchronises — and later passes with that key replay it: one launch at sync instead of a
 * few per node. Only inference passes with every node on the GPU (a CPU twin synchronises,
 * which a capture forbids); PERCEPT_CUDA_GRAPHS=0 turns it off. */

static PassKey pass_key(const PerceptNet *net, const State *st)
{
    PassKey k;
    memset(&k, 0, sizeof k); /* compared with memcmp, padding included */
    k.act = net->plan.act;
    k.saved = net->plan.saved;
    k.params = net->params_data;
    k.buffers = net->buffers_data;
    k.workspace = st->workspace;
    k.buf = st->buf;
    k.up = st->up;
    k.half = st->half;
    k.stats = st->stats;
    k.fixed = st->fixed;
    k.phased = st->phased;
    k.in = net->plan.in;
    k.half_pass = half_pass(net, st);
    k.norm_fixed = net->norm_fixed;
    return k;
}

static int graphable(const PerceptNet *net, const State *st)
{
    const char *off = getenv("PERCEPT_CUDA_GRAPHS");
    if (net->plan.grad || st->graphs_failed || (off && !strcmp(off, "0")))
        return 0;
    for (int i = 0; i < net->n_nodes; i++) {
        const Node *nd = &net->nodes[i];
        if (nd->fused_into < 0 && !on_gpu(net, nd))
            return 0;
    }
    return 1;
}

/* Whether nd is the first node a pass runs (those before it are fused into later ones). */
static int first_of_pass(const PerceptNet *net, const Node *nd)
{
    for (const Node *q = net->nodes; q < nd; q++)
        if (q->fused_into < 0)
            return 0;
    return 1;
}

static void end_capture(State *st, cudaGraph_t *g)
{
    *g = NULL;
    if (cudaStreamEndCapture(st->stream, g) != cudaSuccess)
        cudaGetLastError();
}

/* A capture given up (a node failed, the network is freed): until it ends, the thread's
 * other CUDA calls would fail too. */
static void abandon_capture(State *st)
{
    if (st->pass != PASS_CAPTURE)
        return;
    cudaGraph_t g;
    end_capture(st, &g);
    if (g)
        cudaGraphDestroy(g);
    st->pass = PASS_DIRECT;
}

/* At a pass's first node: how this pass runs. */
static void begin_pass(PerceptNet *net, State *st)
{
    abandon_capture(st); /* one whose pass never reached sync */
    const PassKey k = pass_key(net, st);
    const int again = !memcmp(&k, &st->last, sizeof k); /* as the last pass ended */
    st->pass = PASS_DIRECT;
    if (!graphable(net, st))
        return;
    if (st->graph && !memcmp(&k, &st->graph_key, sizeof k)) {
        st->pass = PASS_REPLAY;
        return;
    }
    if (st->graph)
        cudaGraphExecDestroy(st->graph);
    st->graph = NULL;
    if (!again)
        return;
    if (cudaStreamBeginCapture(st->stream, cudaStreamCaptureModeThreadLocal) != cudaSuccess) {
        cudaGetLastError();
        return;
    }
    st->pass = PASS_CAPTURE;
    st->graph_key = k;
}

/* At sync: a captured pass becomes a graph, and a captured or replayed pass is launched. A
 * capture that fails loses its pass (its work was recorded, not run): an error, and this
 * network runs without graphs from then on. */
static int end_pass(State *st)
{
    const int pass = st->pass;
    st->pass = PASS_DIRECT;
    if (pass == PASS_CAPTURE) {
        cudaGraph_t g;
        end_capture(st, &g);
        cudaError_t e = g ? cudaGraphInstantiate(&st->graph, g, 0) : cudaErrorUnknown;
        if (g)
            cudaGraphDestroy(g);
        if (e != cudaSuccess) {
            cudaGetLastError();
            st->graph = NULL;
            st->graphs_failed = 1;
            return core->fail("CUDA graph capture failed (%s); graphs are off for this network",
                              cudaGetErrorString(e));
        }
        st->graph_stats = st->stats_pending;
    }
    if (pass != PASS_DIRECT) {
        CUDA_OK(cudaGraphLaunch(st->graph, st->stream), "CUDA graph launch");
        st->stats_pending = st->graph_stats;
    }
    return 0;
}

/* Waits for the device; the first image's instance-norm statistics of the pass go to
 * their host copy (percept_net_norm_stats). */
static int cuda_sync(PerceptNet *net)
{
    State *st = (State *)net->backend_state;
    if (st && end_pass(st))
        return -1;
    if (st)
        st->last = pass_key(net, st); /* with what the pass grew */
    CUDA_OK(cudaDeviceSynchronize(), "CUDA");
    if (st && st->stats_pending) {
        CUDA_OK(cudaMemcpy(net->norm_stats, st->stats, sizeof(float) * net->norm_stats_floats,
                           cudaMemcpyDeviceToHost),
                "instance-norm statistics");
        st->stats_pending = 0;
    }
    return 0;
}

/* A node's forward on the GPU, on float tensors or (fp16 inference) half ones. */
template <typename T> static int forward_on_gpu(PerceptNet *net, const Node *nd, State *st)
{
    Shape in = core->in_shape(net, nd, 0);
    T *out = at<T>(net, st, (int)(nd - net->nodes));
    const T *x = at<T>(net, st, nd->in[0]);
    size_t n = shape_numel(nd->out);
    int hw = in.h * in.w;
    switch (nd->op) {
    case OP_CONV2D:
    case OP_CONV_TRANSPOSE2D:
        if (conv_forward<T>(net, nd, st))
            return -1;
        break;
    case OP_UPSAMPLE_NEAREST:
        gpu_upsample_nearest(out, x, in.n * in.c, in.h, in.w, nd->factor);
        break;
    case OP_PIXEL_SHUFFLE:
        gpu_pixel_shuffle(out, x, in.n, nd->out.c, in.h, in.w, nd->factor);
        break;
    case OP_INSTANCE_NORM: {
        if (net->norm_fixed) { /* the statistics uploaded as the pass began */
            const float *mean = st->fixed + nd->stats_off;
            gpu_instance_norm_fixed(out, x, mean, mean + in.c, core->param(net, nd, PARAM_WEIGHT),
                                    core->param(net, nd, PARAM_BIAS), in.n, in.c, hw,
                                    epilogue_add<T>(net, st, nd), nd->ep_relu);
            break;
        }
        float *saved = net->plan.saved + nd->saved_off;
        gpu_instance_norm(out, saved, saved + in.n * in.c, x, core->param(net, nd, PARAM_WEIGHT),
                          core->param(net, nd, PARAM_BIAS), in.n, in.c, hw, nd->eps,
                          epilogue_add<T>(net, st, nd), nd->ep_relu);
        /* the first image's statistics, kept for percept_net_norm_stats (the saved memory
         * is shared by every node without gradients): copied on the device now, to the host
         * at sync */
        if (grow(&st->stats, &st->stats_floats, net->norm_stats_floats + 1,
                 "instance-norm statistics"))
            return -1;
        float *keep = st->stats + nd->stats_off;
        const size_t bytes = sizeof(float) * in.c;
        CUDA_OK(cudaMemcpyAsync(keep, saved, bytes, cudaMemcpyDeviceToDevice, st->stream),
                "statistics");
        CUDA_OK(cudaMemcpyAsync(keep + in.c, saved + (size_t)in.n * in.c, bytes,
                                cudaMemcpyDeviceToDevice, st->stream),
                "statistics");
        const Node *conv = nd->in[0] >= 0 ? &net->nodes[nd->in[0]] : NULL;
        if (conv && bias_cancels(net, conv)) /* the mean the bias would have moved */
            gpu_axpy(keep, 1, core->param(net, conv, PARAM_BIAS), in.c, 0);
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
        if constexpr (std::is_same<T, float>::value) /* training has gradients: never fp16 */
            if (net->plan.training) {
                gpu_batch_norm_train(out, saved, saved + in.c, rmean, rvar, x, g, b, in.n, in.c,
                                     hw, nd->eps, nd->momentum);
                break;
            }
        gpu_batch_norm_eval(out, saved, saved + in.c, x, rmean, rvar, g, b, in.n, in.c, hw,
                            nd->eps, epilogue_add<T>(net, st, nd), nd->ep_relu);
        break;
    }
    case OP_ADD:
        gpu_elementwise(EW_ADD, out, x, at<T>(net, st, nd->in[1]), n, 0, 0);
        break;
    case OP_CONCAT: {
        const T *ins[NODE_MAX_IN];
        int cs[NODE_MAX_IN];
        for (int j = 0; j < nd->n_in; j++)
            ins[j] = at<T>(net, st, nd->in[j]);
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
    case OP_LINEAR:
        gpu_linear(out, x, core->param(net, nd, PARAM_WEIGHT), core->param(net, nd, PARAM_BIAS),
                   in.n, nd->cin, nd->cout);
        break;
    case OP_RESHAPE:
    case OP_DROPOUT: /* the identity here (on_gpu) */
        if (copy_on_device(st, out, x, n, nd->name))
            return -1;
        break;
    default:
        gpu_elementwise(nd->op == OP_RELU ? EW_RELU : nd->op == OP_LEAKY_RELU ? EW_LEAKY_RELU
                    : nd->op == OP_TANH ? EW_TANH : nd->op == OP_SIGMOID ? EW_SIGMOID
                    : nd->op == OP_COS ? EW_COS : EW_SCALED_TANH,
                    out, x, (const T *)NULL, n, nd->op == OP_LEAKY_RELU ? nd->alpha : nd->scale,
                    nd->shift);
        break;
    }
    return finish(nd->name);
}

/* A node's forward on its CPU twin, after the device's work; in fp16 inference its inputs
 * are converted to float (in the float arena, at their offsets) first, and its output
 * back to half after. */
static int forward_on_cpu(PerceptNet *net, const Node *nd, State *st, int half)
{
    const int self = (int)(nd - net->nodes);
    for (int j = 0; half && j < nd->n_in; j++)
        if (nd->in[j] != INPUT_NODE) /* the input is float already */
            gpu_to_float(core->act(net, nd->in[j]), at<__half>(net, st, nd->in[j]),
                         shape_numel(core->in_shape(net, nd, j)));
    if (half && nd->ep_add >= 0) /* an epilogue's operand has the output's shape */
        gpu_to_float(core->act(net, nd->ep_add), at<__half>(net, st, nd->ep_add),
                     shape_numel(nd->out));
    CUDA_OK(cudaDeviceSynchronize(), "before a CPU op");
    if (core->cpu->forward(net, nd))
        return -1;
    if (half)
        gpu_to_half(at<__half>(net, st, self), core->act(net, self), shape_numel(nd->out));
    return half ? finish(nd->name) : 0;
}

/* Whether nd reads the network input: as an input, its epilogue's operand, or the input of
 * the upsampling folded into it. */
static int reads_input(const PerceptNet *net, const Node *nd)
{
    for (int j = 0; j < nd->n_in; j++)
        if (nd->in[j] == INPUT_NODE)
            return 1;
    return nd->ep_add == INPUT_NODE || (nd->in_up && net->nodes[nd->in[0]].in[0] == INPUT_NODE);
}

static int forward_node(PerceptNet *net, const Node *nd, State *st)
{
    const int half = half_pass(net, st), self = (int)(nd - net->nodes);
    if (half) {
        if (grow(&st->half, &st->half_count, net->plan.act_floats, "fp16 activations"))
            return -1;
        /* the network input, converted where a node reads it (it is not changed while a
         * reader remains) */
        if (reads_input(net, nd))
            gpu_to_half(st->half, net->plan.act, shape_numel(net->plan.in));
    }
    if (!on_gpu(net, nd))
        return forward_on_cpu(net, nd, st, half);
    if (!half)
        return forward_on_gpu<float>(net, nd, st);
    if (forward_on_gpu<__half>(net, nd, st))
        return -1;
    /* the output, and any node the host may read after the pass (kept to the end) */
    if (self == net->output || nd->last_use >= net->n_nodes)
        gpu_to_float(core->act(net, self), at<__half>(net, st, self), shape_numel(nd->out));
    return finish(nd->name);
}

/* Fixed instance-norm statistics to the device, on the stream, before a pass (not part of
 * a captured graph: the host may fix others between passes, which a replay then reads) */
static int upload_fixed_stats(PerceptNet *net, State *st)
{
    const char *what = "fixed instance-norm statistics";
    return grow(&st->fixed, &st->fixed_floats, net->norm_stats_floats + 1, what) ||
                   copy_on_device(st, st->fixed, (const float *)net->norm_stats,
                                  net->norm_stats_floats, what)
               ? -1
               : 0;
}

static int cuda_forward(PerceptNet *net, const Node *nd)
{
    if (nd->fused_into >= 0)
        return 0; /* computed by the node it is fused into (plan.c) */
    State *st = state(net);
    if (!st)
        return -1;
    if (first_of_pass(net, nd)) {
        if (net->norm_fixed && upload_fixed_stats(net, st))
            return -1;
        begin_pass(net, st);
    }
    if (st->pass == PASS_REPLAY)
        return 0; /* the graph runs at sync */
    gpu_set_stream(st->stream);
    if (!forward_node(net, nd, st))
        return 0;
    if (st->pass != PASS_CAPTURE)
        return -1;
    /* failed while capturing (a call the capture forbids?): the pass's work so far was
     * recorded, not run, so it runs again, directly, and this network stops using graphs */
    abandon_capture(st);
    st->graphs_failed = 1;
    for (const Node *q = net->nodes; q <= nd; q++)
        if (q->fused_into < 0 && forward_node(net, q, st))
            return -1;
    return 0;
}

/* May the device write there? (An input's gradient can be the caller's host buffer.) */
int device_writable(const void *p)
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
    case OP_LINEAR:
        gpu_linear_backward(dx, core->param_grad(net, nd, PARAM_WEIGHT),
                            core->param_grad(net, nd, PARAM_BIAS), dout, x,
                            core->param(net, nd, PARAM_WEIGHT), in.n, nd->cin, nd->cout);
        return 0;
    case OP_ADD:
        for (int j = 0; j < 2; j++)
            if (din[j])
                if (copy_on_device((State *)net->backend_state, din[j], dout, n, "add"))
                    return -1;
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
    case OP_COS:
        gpu_elementwise_backward(EW_COS, dx, dout, x, n, nd->scale, 0);
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
    case OP_RESHAPE:
    case OP_DROPOUT:
        return copy_on_device((State *)net->backend_state, dx, dout, n, nd->name);
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
    if (!on_gpu(net, nd)) {
        CUDA_OK(cudaDeviceSynchronize(), "before a CPU op");
        return core->cpu->backward(net, nd, din);
    }
    /* gradients bound for host memory are computed into a staging buffer, then copied */
    State *st = state(net);
    if (!st)
        return -1;
    gpu_set_stream(st->stream);
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
        CUDA_OK(cudaStreamSynchronize(st->stream), "before copying a gradient to the host");
    if (staged >= 0)
        CUDA_OK(cudaMemcpy(din[staged], st->stage,
                           shape_numel(core->in_shape(net, nd, staged)) * sizeof(float),
                           cudaMemcpyDeviceToHost),
                "copying a gradient to the host");
    return 0;
}

/* The graph's whole-buffer work (graph.c: move) on the network's stream; a copy from host
 * memory is a DMA upload (the pages do not migrate one fault at a time) */
static int cuda_copy(PerceptNet *net, float *dst, const float *src, size_t n)
{
    State *st = state(net);
    return !st || copy_on_device(st, dst, src, n, "copy") ? -1 : 0;
}

static int cuda_accumulate(PerceptNet *net, float *dst, const float *src, size_t n)
{
    State *st = state(net);
    if (!st)
        return -1;
    gpu_set_stream(st->stream);
    gpu_elementwise(EW_ADD, dst, dst, src, n, 0, 0);
    return finish("gradient sum");
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
    backend.fuses_epilogues = 1;
    backend.owns = device_writable;
    backend.copy = cuda_copy;
    backend.accumulate = cuda_accumulate;
    backend.math = &cuda_math;
    return &backend;
}
