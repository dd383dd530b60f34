/* A CUDA runtime and cuDNN on the host, for running kernels/backend-cuda.cu (with the kernels
 * under the emulator, tests/cuda-emulator.h) on a machine without a GPU: test-cuda-parity
 * then checks the whole backend — descriptors, the transposed convolution's mapping, staging,
 * the CPU fallbacks — against the CPU backend in every build.
 *
 * It is strict where a GPU would be:
 *  - the device works after the call has returned: kernels, cudaMemset and cuDNN's calls
 *    wait in a queue (the stream, in order) until a synchronisation (cudaDeviceSynchronize,
 *    cudaMemcpy, cudaFree) runs them;
 *  - memory from cudaMalloc is device memory: the host cannot touch it (PROT_NONE) except
 *    while "the device" runs; managed memory the host cannot touch while work is queued (on
 *    a GPU: a race with the kernels). Either access is reported as what it would be; a
 *    host access to idle managed memory is allowed and counted (fake_cuda_host_touches: on
 *    a GPU its pages would migrate);
 *  - new allocations hold NaN, not zeros (cudaMalloc does not clear);
 *  - cuDNN checks that the tensor, filter and convolution descriptors agree (the output size
 *    the convolution gives, the channel counts) and fails with CUDNN_STATUS_BAD_PARAM where
 *    cuDNN would.
 * The convolutions are the definitions, in double: cross-correlation of x with w (k, c, r, s)
 * with padding, stride and dilation; its gradients with respect to x and w; the bias sum.
 * Half tensors (x, w and y all half; the accumulation float, CUDNN_DATA_FLOAT) are read
 * into double and rounded to half once, at the end, as cuDNN's fp16 convolutions do.
 * FAKE_CUDA_LARGEST_MB is the largest allocation it grants (cudaErrorMemoryAllocation for
 * more): a test's way to a GPU whose memory runs out, whatever else is loaded. */
#include <cublas_v2.h>
#include <cuda_fp16.h>
#include <cudnn.h>
#include <cuda_runtime.h>

#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include <map>
#include <vector>

namespace {

struct Allocation {
    size_t bytes, mapped;
    bool managed;
    int prot;
    bool touched; /* managed: the host has used it since the device last did anything */
};
std::map<char *, Allocation> allocations; /* by start */
int device_depth; /* > 0 while "the device" runs */

/* stream capture: the stream capturing (one at a time here), and whether a call a capture
 * forbids has spoiled it */
cudaStream_t capturing;
bool capture_spoiled;

/* a call a capturing stream forbids: it fails, and the capture with it */
bool forbidden_in_capture()
{
    if (capturing)
        capture_spoiled = true;
    return capturing != NULL;
}

size_t largest()
{
    const char *env = getenv("FAKE_CUDA_LARGEST_MB");
    return env && *env ? (size_t)(atof(env) * 1048576.0) : (size_t)-1;
}

/* What the host may touch now: everything while the device runs; otherwise no device
 * memory, and managed memory only when no work is queued — and then only after a fault has
 * counted the touch (on a GPU, the pages migrate to the host): fake_cuda_host_touches
 * counts, per allocation, the spells between the device's activities in which the host
 * used it, so a test can see that work which should stay on the GPU does. */
void update_protection()
{
    for (auto &a : allocations) {
        if (device_depth > 0 || emu_pending())
            a.second.touched = false;
        int prot = device_depth > 0 || (a.second.managed && a.second.touched && !emu_pending())
                       ? PROT_READ | PROT_WRITE
                       : PROT_NONE;
        if (prot != a.second.prot) {
            mprotect(a.first, a.second.mapped, prot);
            a.second.prot = prot;
        }
    }
}

void device_begin()
{
    if (device_depth++ == 0)
        update_protection();
}

void device_end()
{
    if (--device_depth == 0)
        update_protection();
}

struct Device { /* "the device" runs for the lifetime of one of these */
    Device() { device_begin(); }
    ~Device() { device_end(); }
};

} // namespace

/* host uses of managed memory (update_protection); test-cuda-parity reads it (dlsym) */
extern "C" __attribute__((visibility("default"))) unsigned long fake_cuda_host_touches;
unsigned long fake_cuda_host_touches;

/* FAKE_CUDA_REPORT=1: the count on stderr as the process ends (for programs, not tests) */
__attribute__((destructor)) static void report_touches(void)
{
    const char *e = getenv("FAKE_CUDA_REPORT");
    if (e && *e == '1')
        fprintf(stderr, "fake CUDA: the host touched GPU memory %lu times\n",
                fake_cuda_host_touches);
}

namespace {

/* A host access to device memory: what a GPU program would fault on. */
void on_fault(int sig, siginfo_t *info, void *)
{
    char *at = static_cast<char *>(info->si_addr);
    for (auto &a : allocations)
        if (at >= a.first && at < a.first + a.second.mapped) {
            if (a.second.managed && !emu_pending() && device_depth == 0) {
                fake_cuda_host_touches++; /* allowed: counted, then open until the device runs */
                a.second.touched = true;
                a.second.prot = PROT_READ | PROT_WRITE;
                mprotect(a.first, a.second.mapped, a.second.prot);
                return;
            }
            if (a.second.managed)
                fprintf(stderr, "fake CUDA: the host touched managed memory (%zu bytes at %p, "
                                "address %p) while the device had work queued: a race on a "
                                "GPU (a synchronisation is missing)\n", a.second.bytes,
                        (void *)a.first, (void *)at);
            else
                fprintf(stderr, "fake CUDA: the host touched device memory (cudaMalloc'd %zu "
                                "bytes at %p, address %p): a fault on a GPU\n", a.second.bytes,
                        (void *)a.first, (void *)at);
            abort();
        }
    signal(sig, SIG_DFL); /* an ordinary crash */
    raise(sig);
}

cudaError_t allocate(void **p, size_t bytes, bool managed)
{
    static bool installed;
    if (!installed) {
        struct sigaction sa = {};
        sa.sa_sigaction = on_fault;
        sa.sa_flags = SA_SIGINFO;
        sigaction(SIGSEGV, &sa, NULL);
        emu_device_begin = device_begin;
        emu_device_end = device_end;
        emu_queue_changed = update_protection;
        emu_deferred = true;
        installed = true;
    }
    *p = NULL;
    if (bytes > largest())
        return cudaErrorMemoryAllocation;
    size_t page = (size_t)sysconf(_SC_PAGESIZE), mapped = (bytes + page - 1) / page * page;
    void *m = mmap(NULL, mapped ? mapped : page, PROT_READ | PROT_WRITE,
                   MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (m == MAP_FAILED)
        return cudaErrorMemoryAllocation;
    memset(m, 0xff, bytes); /* NaN: device memory is not cleared */
    allocations[static_cast<char *>(m)] = {bytes, mapped ? mapped : page, managed,
                                           PROT_READ | PROT_WRITE, false};
    update_protection();
    *p = m;
    return cudaSuccess;
}

const Allocation *find(const void *p, char **start)
{
    const char *c = static_cast<const char *>(p);
    auto it = allocations.upper_bound(const_cast<char *>(c));
    if (it == allocations.begin())
        return NULL;
    --it;
    if (c >= it->first + it->second.mapped)
        return NULL;
    if (start)
        *start = it->first;
    return &it->second;
}

} // namespace

/* ---- runtime -------------------------------------------------------------------------- */

cudaError_t cudaGetDeviceCount(int *count)
{
    *count = 1;
    return cudaSuccess;
}

cudaError_t cudaDeviceGetAttribute(int *value, enum cudaDeviceAttr attr, int device)
{
    *value = attr == cudaDevAttrManagedMemory && device == 0;
    return device == 0 ? cudaSuccess : cudaErrorInvalidValue;
}

cudaError_t cudaMalloc(void **p, size_t bytes)
{
    if (forbidden_in_capture())
        return cudaErrorStreamCaptureUnsupported;
    return allocate(p, bytes, false);
}

cudaError_t cudaMallocManaged(void **p, size_t bytes, unsigned flags)
{
    if (forbidden_in_capture())
        return cudaErrorStreamCaptureUnsupported;
    return flags == cudaMemAttachGlobal ? allocate(p, bytes, true) : cudaErrorInvalidValue;
}

cudaError_t cudaFree(void *p)
{
    if (!p)
        return cudaSuccess;
    if (forbidden_in_capture())
        return cudaErrorStreamCaptureUnsupported;
    emu_flush(); /* as cudaFree: it waits for the device */
    auto it = allocations.find(static_cast<char *>(p));
    if (it == allocations.end())
        return cudaErrorInvalidValue;
    munmap(it->first, it->second.mapped);
    allocations.erase(it);
    return cudaSuccess;
}

/* cudaMemset's work: bytes of p set to value, queued (forbidden: the call spoiled a capture) */
static cudaError_t queue_memset(void *p, int value, size_t bytes, bool forbidden)
{
    char *start;
    const Allocation *a = find(p, &start);
    if (!a || static_cast<char *>(p) + bytes > start + a->bytes)
        return cudaErrorInvalidValue;
    if (forbidden)
        return cudaErrorStreamCaptureUnsupported;
    emu_enqueue([p, value, bytes] {
        Device d;
        memset(p, value, bytes);
    });
    return cudaSuccess;
}

cudaError_t cudaMemset(void *p, int value, size_t bytes)
{
    return queue_memset(p, value, bytes, forbidden_in_capture()); /* on the legacy stream */
}

cudaError_t cudaMemsetAsync(void *p, int value, size_t bytes, cudaStream_t stream)
{
    /* another stream's work while one captures */
    return queue_memset(p, value, bytes, capturing && stream != capturing && forbidden_in_capture());
}

cudaError_t cudaMemcpy(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind)
{
    /* the direction must be what the pointers are (cudaMemcpyDefault: any) */
    const bool dst_dev = find(dst, NULL) != NULL, src_dev = find(src, NULL) != NULL;
    if ((kind == cudaMemcpyHostToDevice && (!dst_dev || src_dev)) ||
        (kind == cudaMemcpyDeviceToHost && (dst_dev || !src_dev)))
        return cudaErrorInvalidValue;
    if (forbidden_in_capture())
        return cudaErrorStreamCaptureUnsupported;
    emu_flush(); /* the copy waits for the work before it, and the host for the copy */
    Device d;
    memmove(dst, src, bytes);
    return cudaSuccess;
}

/* Into device memory, from device memory or (host to device, or cudaMemcpyDefault) from
 * pageable host memory, which is staged at the call, as CUDA does: the caller may reuse it at
 * once. A host destination would make it synchronous: not supported here. */
cudaError_t cudaMemcpyAsync(void *dst, const void *src, size_t bytes, cudaMemcpyKind kind,
                            cudaStream_t stream)
{
    const bool from_device = find(src, NULL) != NULL;
    if (!find(dst, NULL) || (kind == cudaMemcpyDeviceToDevice && !from_device) ||
        (kind == cudaMemcpyHostToDevice && from_device) ||
        (kind != cudaMemcpyDeviceToDevice && kind != cudaMemcpyHostToDevice &&
         kind != cudaMemcpyDefault))
        return cudaErrorInvalidValue;
    if (capturing && (stream != capturing || !from_device) && forbidden_in_capture())
        return cudaErrorStreamCaptureUnsupported; /* another stream's, or pageable memory */
    if (!from_device) {
        std::vector<char> staged(static_cast<const char *>(src),
                                 static_cast<const char *>(src) + bytes);
        emu_enqueue([dst, staged] {
            Device d;
            memcpy(dst, staged.data(), staged.size());
        });
        return cudaSuccess;
    }
    emu_enqueue([dst, src, bytes] {
        Device d;
        memmove(dst, src, bytes);
    });
    return cudaSuccess;
}

cudaError_t cudaDeviceSynchronize(void)
{
    if (forbidden_in_capture())
        return cudaErrorStreamCaptureUnsupported;
    emu_flush();
    return cudaSuccess;
}

struct FakeStream {
    unsigned flags;
};
struct FakeGraph {
    std::vector<std::function<void()>> work;
};

cudaError_t cudaStreamCreateWithFlags(cudaStream_t *stream, unsigned flags)
{
    if (flags & ~1u)
        return cudaErrorInvalidValue;
    *stream = new FakeStream{flags};
    return cudaSuccess;
}

cudaError_t cudaStreamDestroy(cudaStream_t stream)
{
    if (!stream || stream == capturing)
        return cudaErrorInvalidValue;
    delete stream;
    return cudaSuccess;
}

/* one queue: the stream's work is all the work */
cudaError_t cudaStreamSynchronize(cudaStream_t stream)
{
    (void)stream;
    return cudaDeviceSynchronize();
}

cudaError_t cudaStreamBeginCapture(cudaStream_t stream, enum cudaStreamCaptureMode mode)
{
    (void)mode;
    if (!stream || capturing) /* the legacy stream cannot be captured */
        return cudaErrorInvalidValue;
    capturing = stream;
    capture_spoiled = false;
    emu_capture = new std::vector<std::function<void()>>();
    return cudaSuccess;
}

cudaError_t cudaStreamEndCapture(cudaStream_t stream, cudaGraph_t *graph)
{
    if (!stream || stream != capturing)
        return cudaErrorInvalidValue;
    FakeGraph *g = new FakeGraph{std::move(*emu_capture)};
    delete emu_capture;
    emu_capture = NULL;
    capturing = NULL;
    if (capture_spoiled) {
        delete g;
        *graph = NULL;
        return cudaErrorStreamCaptureInvalidated;
    }
    *graph = g;
    return cudaSuccess;
}

cudaError_t cudaGraphInstantiate(cudaGraphExec_t *exec, cudaGraph_t graph,
                                 unsigned long long flags)
{
    if (!graph || flags)
        return cudaErrorInvalidValue;
    *exec = new FakeGraph(*graph);
    return cudaSuccess;
}

/* graphs launched so far: test-cuda-parity reads it (dlsym) to see that replays happened */
extern "C" __attribute__((visibility("default"))) unsigned long fake_cuda_graph_launches;
unsigned long fake_cuda_graph_launches;

/* the graph's work queued again, with the arguments it was captured with */
cudaError_t cudaGraphLaunch(cudaGraphExec_t exec, cudaStream_t stream)
{
    (void)stream;
    if (!exec || capturing)
        return cudaErrorInvalidValue;
    fake_cuda_graph_launches++;
    for (const auto &w : exec->work)
        emu_enqueue(w);
    return cudaSuccess;
}

cudaError_t cudaGraphExecDestroy(cudaGraphExec_t exec)
{
    delete exec;
    return cudaSuccess;
}

cudaError_t cudaGraphDestroy(cudaGraph_t graph)
{
    delete graph;
    return cudaSuccess;
}

cudaError_t cudaGetLastError(void)
{
    return cudaSuccess;
}

cudaError_t cudaPointerGetAttributes(struct cudaPointerAttributes *a, const void *p)
{
    const Allocation *al = find(p, NULL);
    memset(a, 0, sizeof *a);
    a->type = !al ? cudaMemoryTypeUnregistered
                  : al->managed ? cudaMemoryTypeManaged : cudaMemoryTypeDevice;
    return cudaSuccess;
}

const char *cudaGetErrorString(cudaError_t e)
{
    switch (e) {
    case cudaSuccess: return "no error";
    case cudaErrorInvalidValue: return "invalid argument";
    case cudaErrorMemoryAllocation: return "out of memory";
    case cudaErrorStreamCaptureUnsupported: return "operation not permitted when stream is capturing";
    case cudaErrorStreamCaptureInvalidated: return "operation failed due to a previous error during capture";
    default: return "unknown error";
    }
}

/* ---- cuDNN ---------------------------------------------------------------------------- */

struct FakeCudnnContext {
    int unused;
};
struct FakeTensor {
    int n, c, h, w; /* a filter: k, c, r, s */
    bool set;
    cudnnDataType_t type;
};
struct FakeConv {
    int pad_h, pad_w, u, v, dil_h, dil_w;
    bool set;
};

const char *cudnnGetErrorString(cudnnStatus_t s)
{
    switch (s) {
    case CUDNN_STATUS_SUCCESS: return "CUDNN_STATUS_SUCCESS";
    case CUDNN_STATUS_BAD_PARAM: return "CUDNN_STATUS_BAD_PARAM";
    case CUDNN_STATUS_NOT_SUPPORTED: return "CUDNN_STATUS_NOT_SUPPORTED";
    default: return "CUDNN_STATUS_NOT_INITIALIZED";
    }
}

cudnnStatus_t cudnnCreate(cudnnHandle_t *h)
{
    *h = new FakeCudnnContext();
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetStream(cudnnHandle_t h, cudaStream_t stream)
{
    (void)stream; /* one queue for every stream */
    return h ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_BAD_PARAM;
}

cudnnStatus_t cudnnCreateTensorDescriptor(cudnnTensorDescriptor_t *d)
{
    *d = new FakeTensor();
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyTensorDescriptor(cudnnTensorDescriptor_t d)
{
    delete d;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetTensor4dDescriptor(cudnnTensorDescriptor_t d, cudnnTensorFormat_t format,
                                         cudnnDataType_t type, int n, int c, int h, int w)
{
    if (format != CUDNN_TENSOR_NCHW || (type != CUDNN_DATA_FLOAT && type != CUDNN_DATA_HALF) ||
        n < 1 || c < 1 || h < 1 || w < 1)
        return CUDNN_STATUS_BAD_PARAM;
    *d = {n, c, h, w, true, type};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnCreateFilterDescriptor(cudnnFilterDescriptor_t *d)
{
    return cudnnCreateTensorDescriptor(d);
}

cudnnStatus_t cudnnDestroyFilterDescriptor(cudnnFilterDescriptor_t d)
{
    return cudnnDestroyTensorDescriptor(d);
}

cudnnStatus_t cudnnSetFilter4dDescriptor(cudnnFilterDescriptor_t d, cudnnDataType_t type,
                                         cudnnTensorFormat_t format, int k, int c, int r, int s)
{
    return cudnnSetTensor4dDescriptor(d, format, type, k, c, r, s);
}

cudnnStatus_t cudnnCreateConvolutionDescriptor(cudnnConvolutionDescriptor_t *d)
{
    *d = new FakeConv();
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnDestroyConvolutionDescriptor(cudnnConvolutionDescriptor_t d)
{
    delete d;
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolution2dDescriptor(cudnnConvolutionDescriptor_t d, int pad_h,
                                              int pad_w, int u, int v, int dilation_h,
                                              int dilation_w, cudnnConvolutionMode_t mode,
                                              cudnnDataType_t compute)
{
    if (pad_h < 0 || pad_w < 0 || u < 1 || v < 1 || dilation_h < 1 || dilation_w < 1 ||
        compute != CUDNN_DATA_FLOAT)
        return CUDNN_STATUS_BAD_PARAM;
    if (mode != CUDNN_CROSS_CORRELATION) /* percept's convolutions are PyTorch's */
        return CUDNN_STATUS_NOT_SUPPORTED;
    *d = {pad_h, pad_w, u, v, dilation_h, dilation_w, true};
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnSetConvolutionMathType(cudnnConvolutionDescriptor_t d, cudnnMathType_t m)
{
    return d ? CUDNN_STATUS_SUCCESS : CUDNN_STATUS_BAD_PARAM;
}

namespace {

/* x (n, c, h, w), w (k, c, r, s) and y (n, k, oh, ow) agree under conv, all of one data
 * type: cuDNN's BAD_PARAM otherwise */
bool consistent(const FakeTensor *x, const FakeTensor *w, const FakeConv *cv, const FakeTensor *y)
{
    if (!x->set || !w->set || !cv->set || !y->set || x->c != w->c || y->c != w->n || x->n != y->n ||
        x->type != w->type || x->type != y->type)
        return false;
    int oh = (x->h + 2 * cv->pad_h - cv->dil_h * (w->h - 1) - 1) / cv->u + 1;
    int ow = (x->w + 2 * cv->pad_w - cv->dil_w * (w->w - 1) - 1) / cv->v + 1;
    return oh == y->h && ow == y->w && oh > 0 && ow > 0;
}

template <typename Perf> cudnnStatus_t one_algorithm(int requested, int *returned, Perf *perf, bool ok)
{
    if (!ok || requested < 1)
        return CUDNN_STATUS_BAD_PARAM;
    memset(perf, 0, sizeof *perf);
    perf->algo = 0;
    perf->status = CUDNN_STATUS_SUCCESS;
    perf->memory = 4096; /* some workspace, so that the bound is exercised */
    *returned = 1;
    return CUDNN_STATUS_SUCCESS;
}

size_t count(const FakeTensor *t)
{
    return (size_t)t->n * t->c * t->h * t->w;
}

/* The correlation's index arithmetic, once for all three passes: for each (image, output
 * channel, output pixel, input channel, tap) inside the image, visit(x index, w index,
 * y index). */
template <typename F>
void each_tap(const FakeTensor *x, const FakeTensor *w, const FakeConv *cv, const FakeTensor *y,
              F visit)
{
    for (int n = 0; n < y->n; n++)
        for (int k = 0; k < y->c; k++)
            for (int oy = 0; oy < y->h; oy++)
                for (int ox = 0; ox < y->w; ox++) {
                    size_t yi = (((size_t)n * y->c + k) * y->h + oy) * y->w + ox;
                    for (int c = 0; c < x->c; c++)
                        for (int r = 0; r < w->h; r++) {
                            int iy = oy * cv->u - cv->pad_h + r * cv->dil_h;
                            if (iy < 0 || iy >= x->h)
                                continue;
                            for (int s = 0; s < w->w; s++) {
                                int ix = ox * cv->v - cv->pad_w + s * cv->dil_w;
                                if (ix < 0 || ix >= x->w)
                                    continue;
                                visit((((size_t)n * x->c + c) * x->h + iy) * x->w + ix,
                                      (((size_t)k * w->c + c) * w->h + r) * w->w + s, yi);
                            }
                        }
                }
}

/* element i of a float or half tensor */
double get(const void *p, size_t i, cudnnDataType_t type)
{
    return type == CUDNN_DATA_HALF ? __half2float(static_cast<const __half *>(p)[i])
                                   : static_cast<const float *>(p)[i];
}

/* out = a·acc + b·out (b 0: out is not read, as cuDNN), rounded to out's type once */
void blend(void *out, const double *acc, size_t n, float a, float b,
           cudnnDataType_t type = CUDNN_DATA_FLOAT)
{
    for (size_t i = 0; i < n; i++) {
        float v = (float)(a * acc[i] + (b != 0 ? (double)b * get(out, i, type) : 0.0));
        if (type == CUDNN_DATA_HALF)
            static_cast<__half *>(out)[i] = __float2half(v);
        else
            static_cast<float *>(out)[i] = v;
    }
}

float value(const void *scalar)
{
    return *static_cast<const float *>(scalar);
}

/* One of the three correlations, queued with copies of its descriptors and scalars (cuDNN
 * reads them at the call): acc[out] += product, out sized `n`, `target` its floats. */
enum Pass { FORWARD, BACKWARD_DATA, BACKWARD_FILTER };
void queue_correlation(Pass pass, const FakeTensor *x, const FakeTensor *w, const FakeConv *cv,
                       const FakeTensor *y, const void *a, const void *b, void *target,
                       size_t n, const void *alpha, const void *beta)
{
    emu_enqueue([pass, x = *x, w = *w, cv = *cv, y = *y, a, b, target, n, al = value(alpha),
                 be = value(beta)] {
        Device d;
        const cudnnDataType_t t = x.type; /* consistent(): the same for all three */
        double *acc = new double[n]();
        each_tap(&x, &w, &cv, &y, [&](size_t xi, size_t wi, size_t yi) {
            switch (pass) {
            case FORWARD: acc[yi] += get(a, xi, t) * get(b, wi, t); break;         /* a x, b w */
            case BACKWARD_DATA: acc[xi] += get(a, yi, t) * get(b, wi, t); break;   /* a dy, b w */
            case BACKWARD_FILTER: acc[wi] += get(a, xi, t) * get(b, yi, t); break; /* a x, b dy */
            }
        });
        blend(target, acc, n, al, be, t);
        delete[] acc;
    });
}

} // namespace

cudnnStatus_t cudnnGetConvolutionForwardAlgorithm_v7(cudnnHandle_t h,
                                                     cudnnTensorDescriptor_t x,
                                                     cudnnFilterDescriptor_t w,
                                                     cudnnConvolutionDescriptor_t conv,
                                                     cudnnTensorDescriptor_t y, int requested,
                                                     int *returned,
                                                     cudnnConvolutionFwdAlgoPerf_t *perf)
{
    return one_algorithm(requested, returned, perf, h && consistent(x, w, conv, y));
}

cudnnStatus_t cudnnGetConvolutionBackwardDataAlgorithm_v7(
    cudnnHandle_t h, cudnnFilterDescriptor_t w, cudnnTensorDescriptor_t dy,
    cudnnConvolutionDescriptor_t conv, cudnnTensorDescriptor_t dx, int requested, int *returned,
    cudnnConvolutionBwdDataAlgoPerf_t *perf)
{
    return one_algorithm(requested, returned, perf, h && consistent(dx, w, conv, dy));
}

cudnnStatus_t cudnnGetConvolutionBackwardFilterAlgorithm_v7(
    cudnnHandle_t h, cudnnTensorDescriptor_t x, cudnnTensorDescriptor_t dy,
    cudnnConvolutionDescriptor_t conv, cudnnFilterDescriptor_t dw, int requested, int *returned,
    cudnnConvolutionBwdFilterAlgoPerf_t *perf)
{
    return one_algorithm(requested, returned, perf, h && consistent(x, dw, conv, dy));
}

/* ---- timing algorithms: the one there is, once the buffers are checked ---------------- */

extern "C" __attribute__((visibility("default"))) unsigned long fake_cudnn_finds;
unsigned long fake_cudnn_finds;

namespace {

/* whether p is device memory holding t's elements */
bool holds(const void *p, const FakeTensor *t)
{
    char *start;
    const Allocation *a = find(p, &start);
    const size_t es = t->type == CUDNN_DATA_HALF ? 2 : 4;
    return a && static_cast<const char *>(p) + count(t) * es <= start + a->bytes;
}

template <typename Perf>
cudnnStatus_t measured(int requested, int *returned, Perf *perf, bool ok, void *workspace,
                       size_t workspace_bytes)
{
    char *start;
    const Allocation *a = workspace ? find(workspace, &start) : NULL;
    ok = ok && (!workspace_bytes ||
                (a && static_cast<char *>(workspace) + workspace_bytes <= start + a->bytes));
    fake_cudnn_finds += ok;
    return one_algorithm(requested, returned, perf, ok);
}

} // namespace

cudnnStatus_t cudnnFindConvolutionForwardAlgorithmEx(
    cudnnHandle_t h, cudnnTensorDescriptor_t xd, const void *x, cudnnFilterDescriptor_t wd,
    const void *w, cudnnConvolutionDescriptor_t conv, cudnnTensorDescriptor_t yd, void *y,
    int requested, int *returned, cudnnConvolutionFwdAlgoPerf_t *perf, void *workspace,
    size_t workspace_bytes)
{
    const bool ok = h && consistent(xd, wd, conv, yd) && holds(x, xd) && holds(w, wd) && holds(y, yd);
    return measured(requested, returned, perf, ok, workspace, workspace_bytes);
}

cudnnStatus_t cudnnFindConvolutionBackwardDataAlgorithmEx(
    cudnnHandle_t h, cudnnFilterDescriptor_t wd, const void *w, cudnnTensorDescriptor_t dyd,
    const void *dy, cudnnConvolutionDescriptor_t conv, cudnnTensorDescriptor_t dxd, void *dx,
    int requested, int *returned, cudnnConvolutionBwdDataAlgoPerf_t *perf, void *workspace,
    size_t workspace_bytes)
{
    const bool ok = h && consistent(dxd, wd, conv, dyd) && holds(w, wd) && holds(dy, dyd) &&
                    holds(dx, dxd);
    return measured(requested, returned, perf, ok, workspace, workspace_bytes);
}

cudnnStatus_t cudnnFindConvolutionBackwardFilterAlgorithmEx(
    cudnnHandle_t h, cudnnTensorDescriptor_t xd, const void *x, cudnnTensorDescriptor_t dyd,
    const void *dy, cudnnConvolutionDescriptor_t conv, cudnnFilterDescriptor_t dwd, void *dw,
    int requested, int *returned, cudnnConvolutionBwdFilterAlgoPerf_t *perf, void *workspace,
    size_t workspace_bytes)
{
    const bool ok = h && consistent(xd, dwd, conv, dyd) && holds(x, xd) && holds(dy, dyd) &&
                    holds(dw, dwd);
    return measured(requested, returned, perf, ok, workspace, workspace_bytes);
}

cudnnStatus_t cudnnConvolutionForward(cudnnHandle_t h, const void *alpha,
                                      cudnnTensorDescriptor_t xd, const void *x,
                                      cudnnFilterDescriptor_t wd, const void *w,
                                      cudnnConvolutionDescriptor_t conv,
                                      cudnnConvolutionFwdAlgo_t algo, void *workspace,
                                      size_t workspace_bytes, const void *beta,
                                      cudnnTensorDescriptor_t yd, void *y)
{
    if (!h || !consistent(xd, wd, conv, yd) || workspace_bytes < 4096)
        return CUDNN_STATUS_BAD_PARAM;
    queue_correlation(FORWARD, xd, wd, conv, yd, x, w, y, count(yd), alpha, beta);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionBackwardData(cudnnHandle_t h, const void *alpha,
                                           cudnnFilterDescriptor_t wd, const void *w,
                                           cudnnTensorDescriptor_t dyd, const void *dy,
                                           cudnnConvolutionDescriptor_t conv,
                                           cudnnConvolutionBwdDataAlgo_t algo, void *workspace,
                                           size_t workspace_bytes, const void *beta,
                                           cudnnTensorDescriptor_t dxd, void *dx)
{
    if (!h || !consistent(dxd, wd, conv, dyd) || workspace_bytes < 4096)
        return CUDNN_STATUS_BAD_PARAM;
    queue_correlation(BACKWARD_DATA, dxd, wd, conv, dyd, dy, w, dx, count(dxd), alpha, beta);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionBackwardFilter(cudnnHandle_t h, const void *alpha,
                                             cudnnTensorDescriptor_t xd, const void *x,
                                             cudnnTensorDescriptor_t dyd, const void *dy,
                                             cudnnConvolutionDescriptor_t conv,
                                             cudnnConvolutionBwdFilterAlgo_t algo,
                                             void *workspace, size_t workspace_bytes,
                                             const void *beta, cudnnFilterDescriptor_t dwd,
                                             void *dw)
{
    if (!h || !consistent(xd, dwd, conv, dyd) || workspace_bytes < 4096)
        return CUDNN_STATUS_BAD_PARAM;
    queue_correlation(BACKWARD_FILTER, xd, dwd, conv, dyd, x, dy, dw, count(dwd), alpha, beta);
    return CUDNN_STATUS_SUCCESS;
}

cudnnStatus_t cudnnConvolutionBackwardBias(cudnnHandle_t h, const void *alpha,
                                           cudnnTensorDescriptor_t dyd, const void *dy,
                                           const void *beta, cudnnTensorDescriptor_t dbd,
                                           void *db)
{
    if (!h || !dyd->set || !dbd->set || dbd->n != 1 || dbd->c != dyd->c || dbd->h != 1 ||
        dbd->w != 1 || dyd->type != CUDNN_DATA_FLOAT || dbd->type != CUDNN_DATA_FLOAT)
        return CUDNN_STATUS_BAD_PARAM;
    emu_enqueue([t = *dyd, g = static_cast<const float *>(dy), out = static_cast<float *>(db),
                 al = value(alpha), be = value(beta)] {
        Device d;
        double *acc = new double[t.c]();
        size_t plane = (size_t)t.h * t.w;
        for (size_t i = 0; i < count(&t); i++)
            acc[i / plane % t.c] += g[i];
        blend(out, acc, t.c, al, be);
        delete[] acc;
    });
    return CUDNN_STATUS_SUCCESS;
}

/* ---- cuBLAS ----------------------------------------------------------------------------- */

struct FakeCublasContext {
    int unused;
};

cublasStatus_t cublasCreate(cublasHandle_t *h)
{
    *h = new FakeCublasContext();
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasDestroy(cublasHandle_t h)
{
    delete h;
    return CUBLAS_STATUS_SUCCESS;
}

cublasStatus_t cublasSetStream(cublasHandle_t h, cudaStream_t stream)
{
    (void)stream; /* one queue for every stream */
    return h ? CUBLAS_STATUS_SUCCESS : CUBLAS_STATUS_NOT_INITIALIZED;
}

cublasStatus_t cublasSetMathMode(cublasHandle_t h, cublasMath_t mode)
{
    if (!h)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    return mode == CUBLAS_DEFAULT_MATH || mode == CUBLAS_TF32_TENSOR_OP_MATH
               ? CUBLAS_STATUS_SUCCESS
               : CUBLAS_STATUS_INVALID_VALUE;
}

const char *cublasGetStatusString(cublasStatus_t s)
{
    switch (s) {
    case CUBLAS_STATUS_SUCCESS: return "CUBLAS_STATUS_SUCCESS";
    case CUBLAS_STATUS_INVALID_VALUE: return "CUBLAS_STATUS_INVALID_VALUE";
    default: return "CUBLAS_STATUS_NOT_INITIALIZED";
    }
}

cublasStatus_t cublasSgemmStridedBatched(cublasHandle_t h, cublasOperation_t transa,
                                         cublasOperation_t transb, int m, int n, int k,
                                         const float *alpha, const float *a, int lda,
                                         long long stride_a, const float *b, int ldb,
                                         long long stride_b, const float *beta, float *c,
                                         int ldc, long long stride_c, int batch)
{
    if (!h)
        return CUBLAS_STATUS_NOT_INITIALIZED;
    /* cuBLAS's checks: the leading dimensions hold the stored rows; the matrices are device
     * memory (a host pointer faults on a GPU; here it is refused) */
    const int rows_a = transa == CUBLAS_OP_N ? m : k, rows_b = transb == CUBLAS_OP_N ? k : n;
    if (m < 0 || n < 0 || k < 0 || batch < 0 || lda < (rows_a > 1 ? rows_a : 1) ||
        ldb < (rows_b > 1 ? rows_b : 1) || ldc < (m > 1 ? m : 1) ||
        (batch && m && n && (!find(c, NULL) || (k && (!find(a, NULL) || !find(b, NULL))))))
        return CUBLAS_STATUS_INVALID_VALUE;
    const float al = *alpha, be = *beta; /* host scalars, read at the call */
    emu_enqueue([=] {
        Device d;
        for (int bi = 0; bi < batch; bi++) {
            const float *A = a + bi * stride_a, *B = b + bi * stride_b;
            float *C = c + bi * stride_c;
            for (int j = 0; j < n; j++)
                for (int i = 0; i < m; i++) {
                    double s = 0;
                    for (int p = 0; p < k; p++)
                        s += (double)(transa == CUBLAS_OP_N ? A[i + (size_t)p * lda]
                                                            : A[p + (size_t)i * lda]) *
                             (transb == CUBLAS_OP_N ? B[p + (size_t)j * ldb]
                                                    : B[j + (size_t)p * ldb]);
                    float &out = C[i + (size_t)j * ldc];
                    /* β = 0: C is not read (it may hold NaN) */
                    out = (float)(al * s + (be != 0 ? (double)be * out : 0.0));
                }
        }
    });
    return CUBLAS_STATUS_SUCCESS;
}
