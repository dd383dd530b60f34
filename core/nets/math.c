/* Where the losses' and the optimiser's arithmetic runs (graph.h: BackendMath): on the GPU
 * when every buffer it touches is the CUDA backend's memory, so a training step's features,
 * gradients and parameters stay there; otherwise on the host, through the public functions
 * (managed memory is host-readable, so that is always correct, only slower). */
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"

/* Products rounded before they are added, never fused into multiply-adds (which -march
 * allows the compiler to choose, here and there): Adam's updates compound over thousands of
 * steps, and the GPU's twins (kernels/loss.cu) round the same way, so a run on either gives
 * the same parameters. */
#pragma GCC optimize("fp-contract=off")

static int host_copy(float *dst, const float *src, size_t n)
{
    if (dst != src)
        memmove(dst, src, n * sizeof(float));
    return 0;
}

static int host_zero(float *p, size_t n)
{
    memset(p, 0, n * sizeof(float));
    return 0;
}

static int host_axpy(float *y, float a, const float *x, size_t n, int assign)
{
    for (size_t i = 0; i < n; i++)
        y[i] = assign ? a * x[i] : y[i] + a * x[i];
    return 0;
}

static int host_count_nonfinite(const float *x, size_t n, size_t *count)
{
    size_t c = 0;
    for (size_t i = 0; i < n; i++)
        c += !isfinite(x[i]);
    *count = c;
    return 0;
}

static int host_mse(const float *x, const float *t, size_t n, float *grad, double *value)
{
    *value = percept_loss_mse(x, t, n, grad);
    return 0;
}

static int host_l1(const float *x, const float *t, size_t n, float *grad, double *value)
{
    *value = percept_loss_l1(x, t, n, grad);
    return 0;
}

static int host_tv(const PerceptTensor *x, float *grad, double *value)
{
    *value = percept_loss_tv(x, grad);
    return 0;
}

static int host_gram(float *g, const PerceptTensor *f)
{
    percept_gram(g, f);
    return 0;
}

static int host_style(const PerceptTensor *f, const float *target, int per_image, float *grad,
                      float *scratch, double *value)
{
    (void)scratch; /* percept_loss_style has its own */
    *value = percept_loss_style(f, target, per_image, grad);
    return isnan(*value) && percept_error_is_out_of_memory() ? -1 : 0;
}

static int host_ssim(const PerceptTensor *x, const PerceptTensor *y, const PerceptSsimConfig *cfg,
                     const float *window, double *value, float *grad)
{
    (void)window; /* percept_ssim makes its own */
    return percept_ssim(x, y, cfg, value, grad);
}

/* Adam's step (core/optim/adam.c gives the scalars) */
static int host_adam(const AdamScalars *s, float *params, const float *grads, float *m, float *v,
                     size_t n)
{
    const AdamScalars c = *s;
    /* every element on its own: the result cannot depend on the thread count */
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < n; i++) {
        const float g = grads[i];
        m[i] = c.b1 * m[i] + (1.0f - c.b1) * g;
        v[i] = c.b2 * v[i] + (1.0f - c.b2) * g * g;
        float p = c.decay ? params[i] * c.keep : params[i];
        params[i] = p - c.step_size * (m[i] / (sqrtf(v[i]) / c.bc2_sqrt + c.eps));
    }
    return 0;
}

static const BackendMath host_math = {
    .copy = host_copy,
    .zero = host_zero,
    .axpy = host_axpy,
    .count_nonfinite = host_count_nonfinite,
    .mse = host_mse,
    .l1 = host_l1,
    .tv = host_tv,
    .gram = host_gram,
    .style = host_style,
    .ssim = host_ssim,
    .adam = host_adam,
};

const BackendMath *math_for(const void *const *ptrs, int n)
{
    const PerceptBackend *gpu = backend_cuda_loaded();
    if (!gpu || !gpu->math)
        return &host_math;
    for (int i = 0; i < n; i++)
        if (ptrs[i] && !gpu->owns(ptrs[i]))
            return &host_math;
    return gpu->math;
}

/* ---- buffers ------------------------------------------------------------------------------ */

float *buffer_reserve(Buffer *b, size_t floats)
{
    if (b->p && b->floats >= floats)
        return b->p;
    buffer_free(b);
    const PerceptBackend *be = backend_for_device(NULL);
    if (!be) { /* PERCEPT_DEVICE names no usable device: the networks fail with the reason */
        percept_error_clear();
        be = &percept_backend_cpu;
    }
    if (!(b->p = be->alloc(floats ? floats : 1)))
        return NULL;
    b->floats = floats;
    return b->p;
}

void buffer_free(Buffer *b)
{
    percept_buffer_free(b->p);
    memset(b, 0, sizeof *b);
}

/* The public face of buffers */
float *percept_buffer_new(size_t floats)
{
    Buffer b = {0};
    return buffer_reserve(&b, floats);
}

/* the backend that owns p frees it */
void percept_buffer_free(float *p)
{
    const PerceptBackend *gpu = backend_cuda_loaded();
    if (!p)
        return;
    if (gpu && gpu->owns(p))
        gpu->release(p);
    else
        percept_backend_cpu.release(p);
}

int percept_copy(float *dst, const float *src, size_t n)
{
    const PerceptBackend *gpu = backend_cuda_loaded();
    if (gpu && gpu->math && (gpu->owns(dst) || gpu->owns(src)))
        return gpu->math->copy(dst, src, n) ? percept_fail_prefix("copy: ") : 0;
    return host_copy(dst, src, n);
}
