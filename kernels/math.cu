/* The CUDA backend's arithmetic for the losses and Adam (graph.h: BackendMath): our kernels
 * (loss.cu) and, for the Gram matrices of the style loss and their gradient, cuBLAS. The
 * core calls it when every buffer involved is on the GPU (core/nets/math.c), so a training
 * step's features, gradients and parameters never travel to the host.
 *
 * The work goes to the calling thread's default stream (cudaStreamPerThread) and is waited
 * for before returning: the host reads a loss's value, and the next network pass — on its
 * own stream, which waits for no other — reads the gradients, so each call must be done.
 * (Between such calls the networks' passes end synchronised too: the order is the host's.)
 * The calls share one reduction buffer, SSIM's working memory and a cuBLAS handle, so they
 * take turns (a lock; thread-local copies would do too, but LeakSanitizer cannot scan a
 * module's dynamic TLS reliably, and training runs on one thread). */
#include <cublas_v2.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include <mutex>

#include "kernels.h"
#include "plugin.h"

#define CUBLAS_OK(call, what)                                                                  \
    do {                                                                                       \
        cublasStatus_t s_ = (call);                                                            \
        if (s_ != CUBLAS_STATUS_SUCCESS)                                                       \
            return core->fail("%s: cuBLAS: %s", what, cublasGetStatusString(s_));             \
    } while (0)

static const cudaStream_t stream = cudaStreamPerThread;
static std::mutex turn; /* every call holds it: the memory and handle below are shared */
#define TAKE_TURN std::lock_guard<std::mutex> held_(turn)

/* A call's work issued on the stream: waits for it */
static int done(const char *what)
{
    CUDA_OK(cudaGetLastError(), what);
    CUDA_OK(cudaStreamSynchronize(stream), what);
    return 0;
}

/* The reduction memory: gpu_reduce_blocks' partial sums (at most 1024), then the total.
 * The calling thread's kernels go to this file's stream from here on. */
static double *partials(void)
{
    static double *p;
    if (!p && cudaMalloc((void **)&p, 1025 * sizeof(double)) != cudaSuccess) {
        cudaGetLastError();
        core->fail_oom("CUDA: out of memory for a reduction");
        return NULL;
    }
    gpu_set_stream(stream);
    return p;
}

/* The total of a reduction over n elements whose kernel wrote p's partial sums */
static int total(double *p, size_t n, double *value, const char *what)
{
    gpu_sum_partials(p + 1024, p, gpu_reduce_blocks(n));
    if (done(what))
        return -1;
    CUDA_OK(cudaMemcpy(value, p + 1024, sizeof(double), cudaMemcpyDeviceToHost), what);
    return 0;
}

/* The cuBLAS handle, on the calling thread's stream: strict FP32 products unless
 * PERCEPT_CUDA_PRECISION asks for tf32 or fp16 (then TF32 tensor cores, as the convs') */
static cublasHandle_t blas(void)
{
    static cublasHandle_t h;
    Precision precision = PRECISION_FP32;
    if (precision_setting(&precision))
        return NULL;
    if (!h && cublasCreate(&h) != CUBLAS_STATUS_SUCCESS) {
        core->fail("cuBLAS: cannot create a handle");
        h = NULL;
    }
    if (h && (cublasSetStream(h, stream) != CUBLAS_STATUS_SUCCESS ||
              cublasSetMathMode(h, precision == PRECISION_FP32 ? CUBLAS_DEFAULT_MATH
                                                               : CUBLAS_TF32_TENSOR_OP_MATH) !=
                  CUBLAS_STATUS_SUCCESS)) {
        core->fail("cuBLAS: cannot set the stream or math mode");
        return NULL;
    }
    return h;
}

/* either side may be host memory: a download to it waits for the stream, then copies */
static int gpu_copy(float *dst, const float *src, size_t n)
{
    TAKE_TURN;
    if (dst == src || !n)
        return 0;
    if (!device_writable(dst)) {
        CUDA_OK(cudaStreamSynchronize(stream), "CUDA copy");
        CUDA_OK(cudaMemcpy(dst, src, n * sizeof(float), cudaMemcpyDefault), "CUDA copy");
        return 0;
    }
    CUDA_OK(cudaMemcpyAsync(dst, src, n * sizeof(float), cudaMemcpyDefault, stream), "CUDA copy");
    return done("CUDA copy");
}

static int gpu_zero(float *p, size_t n)
{
    TAKE_TURN;
    CUDA_OK(cudaMemsetAsync(p, 0, n * sizeof(float), stream), "CUDA memset");
    return done("CUDA memset");
}

static int math_axpy(float *y, float a, const float *x, size_t n, int assign)
{
    TAKE_TURN;
    gpu_set_stream(stream);
    gpu_axpy(y, a, x, n, assign);
    return done("gradient sum");
}

static int math_count_nonfinite(const float *x, size_t n, size_t *count)
{
    TAKE_TURN;
    double *p = partials(), c = 0;
    if (!p)
        return -1;
    gpu_count_nonfinite(p, x, n);
    if (total(p, n, &c, "finiteness check"))
        return -1;
    *count = (size_t)c;
    return 0;
}

/* mse or l1 (kernel: gpu_mse or gpu_l1): the mean of its sum */
static int pixel_loss(void (*kernel)(double *, float *, const float *, const float *, size_t),
                      const float *x, const float *t, size_t n, float *grad, double *value,
                      const char *what)
{
    TAKE_TURN;
    double *p = partials(), sum = 0;
    if (!p)
        return -1;
    kernel(p, grad, x, t, n);
    if (total(p, n, &sum, what))
        return -1;
    *value = sum / (double)n;
    return 0;
}

static int math_mse(const float *x, const float *t, size_t n, float *grad, double *value)
{
    return pixel_loss(gpu_mse, x, t, n, grad, value, "mse loss");
}

static int math_l1(const float *x, const float *t, size_t n, float *grad, double *value)
{
    return pixel_loss(gpu_l1, x, t, n, grad, value, "l1 loss");
}

static int math_tv(const PerceptTensor *x, float *grad, double *value)
{
    TAKE_TURN;
    double *p = partials(), sum = 0;
    const float scale = 1.0f / (float)x->n;
    if (!p)
        return -1;
    gpu_tv(p, grad, x->data, x->n * x->c, x->h, x->w, scale);
    if (total(p, percept_tensor_numel(x), &sum, "tv loss"))
        return -1;
    *value = sum * scale;
    return 0;
}

/* g (n, c, c) = ψ ψᵀ / (c h w) per image, issued. Row-major ψ (c × hw) is column-major
 * A (hw × c), so G = Aᵀ A. */
static int gram_issue(float *g, const PerceptTensor *f)
{
    cublasHandle_t h = blas();
    if (!h)
        return -1;
    const int c = f->c, hw = f->h * f->w;
    const float norm = 1.0f / ((float)c * hw), zero = 0;
    CUBLAS_OK(cublasSgemmStridedBatched(h, CUBLAS_OP_T, CUBLAS_OP_N, c, c, hw, &norm, f->data,
                                        hw, (long long)c * hw, f->data, hw, (long long)c * hw,
                                        &zero, g, c, (long long)c * c, f->n),
              "Gram matrices");
    return 0;
}

static int math_gram(float *g, const PerceptTensor *f)
{
    TAKE_TURN;
    return gram_issue(g, f) || done("Gram matrices") ? -1 : 0;
}

/* percept_loss_style: D = G − T, value Σ‖D‖² / n, grad (n, c, hw) = 4 / (n c h w) · D ψ —
 * in column-major terms Aᵀ's gradient is A · Dᵀ, and row-major D read column-major is Dᵀ */
static int math_style(const PerceptTensor *f, const float *target, int per_image, float *grad,
                      float *scratch, double *value)
{
    TAKE_TURN;
    double *p = partials(), sum = 0;
    cublasHandle_t h = blas();
    if (!p || !h || gram_issue(scratch, f))
        return -1;
    const int c = f->c, hw = f->h * f->w;
    gpu_gram_difference(p, scratch, target, f->n, (size_t)c * c, per_image);
    if (grad) {
        const float scale = 4.0f / ((float)f->n * c * hw), zero = 0;
        CUBLAS_OK(cublasSgemmStridedBatched(h, CUBLAS_OP_N, CUBLAS_OP_N, hw, c, c, &scale,
                                            f->data, hw, (long long)c * hw, scratch, c,
                                            (long long)c * c, &zero, grad, hw, (long long)c * hw,
                                            f->n),
                  "style loss gradient");
    }
    if (total(p, (size_t)f->n * c * c, &sum, "style loss"))
        return -1;
    *value = sum / f->n;
    return 0;
}

/* percept_ssim: the kernels' working memory kept and grown */
static int math_ssim(const PerceptTensor *x, const PerceptTensor *y, const PerceptSsimConfig *cfg,
                     const float *window, double *value, float *grad)
{
    TAKE_TURN;
    static float *scratch;
    static size_t have;
    GpuSsim d = {x->n * x->c, x->h, x->w, cfg->window, {0},
                 pow(cfg->k1 * cfg->data_range, 2), pow(cfg->k2 * cfg->data_range, 2)};
    memcpy(d.win, window, sizeof(float) * cfg->window);
    const size_t need = gpu_ssim_scratch_floats(&d);
    double *p = partials(), sum = 0;
    if (!p)
        return -1;
    if (need > have) {
        cudaFree(scratch);
        scratch = NULL;
        have = 0;
        CUDA_OK(cudaMalloc((void **)&scratch, need * sizeof(float)), "SSIM's working memory");
        have = need;
    }
    gpu_ssim(p, grad, x->data, y->data, &d, scratch);
    const size_t positions = (size_t)d.planes * (d.h - d.taps + 1) * (d.w - d.taps + 1);
    if (total(p, positions, &sum, "SSIM"))
        return -1;
    *value = sum / (double)positions;
    return 0;
}

static int math_adam(const AdamScalars *s, float *params, const float *grads, float *m, float *v,
                     size_t n)
{
    TAKE_TURN;
    gpu_set_stream(stream);
    gpu_adam(params, m, v, grads, n,
             GpuAdam{s->b1, s->b2, s->eps, s->step_size, s->bc2_sqrt, s->keep, s->decay});
    return done("Adam step");
}

const BackendMath cuda_math = {
    gpu_copy, gpu_zero, math_axpy, math_count_nonfinite, math_mse, math_l1, math_tv, math_gram,
    math_style, math_ssim, math_adam,
};
