/* Elementwise ops and their gradients: twins of core/layers/activation.c and combine.c; the
 * conversions between float and half; a convolution's bias and inference epilogue. */
#include "common.cuh"
#include "kernels-half.h"
#include "kernels.h"

#ifndef PERCEPT_CUDA_EMULATOR
thread_local cudaStream_t gpu_stream;
#endif

void gpu_set_stream(void *stream)
{
#ifndef PERCEPT_CUDA_EMULATOR
    gpu_stream = (cudaStream_t)stream;
#else
    (void)stream; /* the emulator's one queue */
#endif
}

template <typename T>
__global__ void ew_forward(int op, T *out, const T *a, const T *b, size_t n, float p, float q)
{
    FOR_EACH(i, n) {
        float x = load_f(a + i), y = 0;
        switch (op) {
        case EW_ADD: y = x + load_f(b + i); break;
        case EW_RELU: y = x < 0.0f ? 0.0f : x; break;
        case EW_LEAKY_RELU: y = x > 0.0f ? x : p * x; break;
        case EW_TANH: y = tanhf(x); break;
        case EW_SCALED_TANH: y = p * tanhf(x) + q; break;
        case EW_SIGMOID: { /* exp of a non-positive argument only, as the CPU's */
            float e = expf(-fabsf(x));
            y = x >= 0.0f ? 1.0f / (1.0f + e) : e / (1.0f + e);
            break;
        }
        case EW_COS: y = p * cosf(x); break;
        }
        store_f(out + i, y);
    }
}

__global__ void ew_backward(int op, float *dx, const float *dout, const float *ref, size_t n,
                            float p, float q)
{
    FOR_EACH(i, n) {
        float d = dout[i], r = ref[i], t;
        switch (op) {
        case EW_RELU: dx[i] = r <= 0.0f ? 0.0f : d; break;
        case EW_LEAKY_RELU: dx[i] = r > 0.0f ? d : p * d; break;
        case EW_TANH: dx[i] = d * (1.0f - r * r); break;
        case EW_SCALED_TANH: t = (r - q) / p; dx[i] = d * p * (1.0f - t * t); break;
        case EW_SIGMOID: dx[i] = d * r * (1.0f - r); break;
        case EW_COS: dx[i] = d * (-p * sinf(r)); break;
        }
    }
}

void gpu_elementwise(int op, float *out, const float *a, const float *b, size_t n, float p, float q)
{
    if (n)
        LAUNCH(ew_forward<float>, blocks(n), op, out, a, b, n, p, q);
}

void gpu_elementwise(int op, __half *out, const __half *a, const __half *b, size_t n, float p,
                     float q)
{
    if (n)
        LAUNCH(ew_forward<__half>, blocks(n), op, out, a, b, n, p, q);
}

void gpu_elementwise_backward(int op, float *dx, const float *dout, const float *ref, size_t n,
                              float p, float q)
{
    if (n)
        LAUNCH(ew_backward, blocks(n), op, dx, dout, ref, n, p, q);
}

__global__ void to_half_k(__half *out, const float *in, size_t n)
{
    FOR_EACH(i, n)
        store_f(out + i, in[i]);
}

__global__ void to_float_k(float *out, const __half *in, size_t n)
{
    FOR_EACH(i, n)
        out[i] = load_f(in + i);
}

void gpu_to_half(__half *out, const float *in, size_t n)
{
    if (n)
        LAUNCH(to_half_k, blocks(n), out, in, n);
}

void gpu_to_float(float *out, const __half *in, size_t n)
{
    if (n)
        LAUNCH(to_float_k, blocks(n), out, in, n);
}

/* A convolution's output made final, in one pass over it: + bias[ch], + add, then ReLU (each
 * optional) — the CPU's bias and its inference epilogue (epilogue_apply), in that order. */
template <typename T>
__global__ void conv_epilogue_k(T *y, const float *bias, const T *add, int relu, int c, int hw,
                                size_t total)
{
    FOR_EACH(i, total) {
        float v = load_f(y + i);
        if (bias)
            v += bias[i / hw % c];
        if (add)
            v += load_f(add + i);
        if (relu)
            v = v < 0.0f ? 0.0f : v; /* NaN passes, as relu_forward */
        store_f(y + i, v);
    }
}

void gpu_conv_epilogue(float *y, const float *bias, const float *add, int relu, size_t total,
                       int c, int hw)
{
    if (total)
        LAUNCH(conv_epilogue_k<float>, blocks(total), y, bias, add, relu, c, hw, total);
}

void gpu_conv_epilogue(__half *y, const float *bias, const __half *add, int relu, size_t total,
                       int c, int hw)
{
    if (total)
        LAUNCH(conv_epilogue_k<__half>, blocks(total), y, bias, add, relu, c, hw, total);
}
