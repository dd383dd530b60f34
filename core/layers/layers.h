/* CPU layer kernels: the reference every other backend is tested against.
 *
 * Conventions (llm.c style):
 *  - outputs first, then inputs, then parameters, then scratch, then shapes;
 *  - all tensors are NCHW float32, contiguous;
 *  - parameter gradients accumulate (+=), activation gradients assign (=);
 *  - a NULL gradient pointer means "not wanted" (e.g. din of the first layer);
 *  - kernels never allocate and never fail: the graph validated the shapes.
 */
#ifndef PERCEPT_LAYERS_H
#define PERCEPT_LAYERS_H

#include <stddef.h>
#include <stdint.h>

typedef enum { PAD_ZERO = 0, PAD_REFLECT = 1 } PadMode;

/* What an inference forward does to each output value as it writes it, while the row or
 * plane is still in cache: add the value at the same place in `add` (a tensor of the
 * output's shape, or NULL), then ReLU if `relu`. The planner (plan.c) folds a residual
 * add and a ReLU that follow a conv or norm into it, saving their passes over memory. */
typedef struct {
    const float *add;
    int relu;
} Epilogue;

/* y[i] = relu?(y[i] + add[i]) for i < n (add may be NULL); combine.c */
void epilogue_apply(float *y, const float *add, int relu, size_t n);

/* ---- convolution (conv.c) ---------------------------------------------- */

typedef struct {
    int n, cin, h, w;       /* input */
    int cout, k, stride, pad;
    PadMode pad_mode;       /* reflect needs pad < h and pad < w */
    int hout, wout;         /* filled by conv2d_shape() */
    int up;                 /* forward only: `in` is read through a nearest ×up upsampling,
                             * h and w being its size after it (in is h/up × w/up);
                             * 0 or 1: none */
} ConvShape;

static inline int conv_up(const ConvShape *s) { return s->up > 1 ? s->up : 1; }
/* floats per plane of the input as stored (before the upsampling it is read through) */
static inline size_t conv_in_plane(const ConvShape *s)
{
    return (size_t)(s->h / conv_up(s)) * (s->w / conv_up(s));
}

/* Fills hout/wout: (h + 2 pad - k) / stride + 1. */
void conv2d_shape(ConvShape *s);
/* which register tiles the direct path runs here: "avx2" or "avx512" */
const char *conv_direct_isa(void);
/* Scratch floats conv2d_forward/backward need (bounded: im2col is done in
 * spatial chunks, so this does not grow with the image beyond a cap). */
size_t conv2d_scratch_floats(const ConvShape *s);

/* out (n,cout,hout,wout); in (n,cin,h,w); weight (cout,cin,k,k); bias (cout) or NULL;
 * ep NULL or applied to out */
void conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                    float *scratch, const ConvShape *s, const Epilogue *ep);
/* din (n,cin,h,w) or NULL; dweight (cout,cin,k,k) +=; dbias (cout) += or NULL */
void conv2d_backward(float *din, float *dweight, float *dbias, const float *dout,
                     const float *in, const float *weight, float *scratch, const ConvShape *s);
/* conv-up.c: conv2d_forward's way for a 3×3 stride-1 conv with padding 1 read through a ×2
 * upsampling (s->up 2): four 2×2 convolutions at the input's resolution, one per output
 * phase, 4/9 of the multiply-adds */
int conv2d_up_phased(const ConvShape *s);
size_t conv2d_up_phased_scratch_floats(const ConvShape *s);
void conv2d_up_phased_forward(float *out, const float *in, const float *weight, const float *bias,
                              float *scratch, const ConvShape *s, const Epilogue *ep);
/* Plain loops, no BLAS, no chunking: the oracle for tests. */
void conv2d_forward_reference(float *out, const float *in, const float *weight,
                              const float *bias, const ConvShape *s);

typedef struct {
    int n, cin, h, w;       /* input */
    int cout, k, stride, pad, output_pad;
    int hout, wout;         /* filled by conv_transpose2d_shape() */
} ConvTShape;

/* hout = (h - 1) stride - 2 pad + k + output_pad (PyTorch ConvTranspose2d). */
void conv_transpose2d_shape(ConvTShape *s);
size_t conv_transpose2d_scratch_floats(const ConvTShape *s);
/* weight (cin,cout,k,k) as in PyTorch */
void conv_transpose2d_forward(float *out, const float *in, const float *weight,
                              const float *bias, float *scratch, const ConvTShape *s);
void conv_transpose2d_backward(float *din, float *dweight, float *dbias, const float *dout,
                               const float *in, const float *weight, float *scratch,
                               const ConvTShape *s);

/* ---- normalisation (norm.c) -------------------------------------------- */

/* Instance norm over each (n,c) plane of hw elements, biased variance.
 * mean, rstd (n*c) are saved for backward. gamma/beta (c) or NULL (no affine). */
void instance_norm_forward(float *out, float *mean, float *rstd, const float *in,
                           const float *gamma, const float *beta, int n, int c, int hw,
                           float eps, const Epilogue *ep);
/* Same, with statistics given (mean, rstd per (n,c)): lets tiles share whole-image stats. */
void instance_norm_apply(float *out, const float *in, const float *mean, const float *rstd,
                         const float *gamma, const float *beta, int n, int c, int hw,
                         const Epilogue *ep);
void instance_norm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                            const float *in, const float *mean, const float *rstd,
                            const float *gamma, int n, int c, int hw);

/* Batch norm, training: statistics over (n,hw) per channel; updates running stats
 * with PyTorch's rule (running_var uses the unbiased variance). mean/rstd (c) saved. */
void batch_norm_forward_train(float *out, float *mean, float *rstd, float *running_mean,
                              float *running_var, const float *in, const float *gamma,
                              const float *beta, int n, int c, int hw, float eps,
                              float momentum);
void batch_norm_forward_eval(float *out, const float *in, const float *running_mean,
                             const float *running_var, const float *gamma, const float *beta,
                             int n, int c, int hw, float eps, const Epilogue *ep);
void batch_norm_backward(float *din, float *dgamma, float *dbeta, const float *dout,
                         const float *in, const float *mean, const float *rstd,
                         const float *gamma, int n, int c, int hw);

/* ---- activations (activation.c); n = element count; in-place allowed --- */

void relu_forward(float *out, const float *in, size_t n);
void relu_backward(float *din, const float *dout, const float *in, size_t n);
void leaky_relu_forward(float *out, const float *in, size_t n, float alpha);
void leaky_relu_backward(float *din, const float *dout, const float *in, size_t n, float alpha);
void tanh_forward(float *out, const float *in, size_t n);
void tanh_backward(float *din, const float *dout, const float *out, size_t n);
/* Johnson's output layer: out = scale * tanh(in) + shift */
void scaled_tanh_forward(float *out, const float *in, size_t n, float scale, float shift);
void scaled_tanh_backward(float *din, const float *dout, const float *out, size_t n,
                          float scale, float shift);
void sigmoid_forward(float *out, const float *in, size_t n);
void sigmoid_backward(float *din, const float *dout, const float *out, size_t n);
/* random Fourier features (the MMD style loss): out = scale * cos(in) */
void cos_forward(float *out, const float *in, size_t n, float scale);
void cos_backward(float *din, const float *dout, const float *in, size_t n, float scale);

/* ---- resampling and pooling (resample.c) ------------------------------- */

/* in (n,c,h,w) -> out (n,c,h*f,w*f) */
void upsample_nearest_forward(float *out, const float *in, int n, int c, int h, int w, int f);
void upsample_nearest_backward(float *din, const float *dout, int n, int c, int h, int w, int f);
/* PyTorch pixel_shuffle: in (n,c*r*r,h,w) -> out (n,c,h*r,w*r); c is the OUTPUT channels */
void pixel_shuffle_forward(float *out, const float *in, int n, int c, int h, int w, int r);
void pixel_shuffle_backward(float *din, const float *dout, int n, int c, int h, int w, int r);

typedef struct {
    int n, c, h, w, k, stride, pad;  /* zero padding; avg counts padded zeros (PyTorch default) */
    int hout, wout;                  /* filled by pool2d_shape(): floor mode */
} PoolShape;

void pool2d_shape(PoolShape *s);
void avg_pool_forward(float *out, const float *in, const PoolShape *s);
void avg_pool_backward(float *din, const float *dout, const PoolShape *s);
/* argmax (n*c*hout*wout) saves the flat input index within the plane */
void max_pool_forward(float *out, int32_t *argmax, const float *in, const PoolShape *s);
void max_pool_backward(float *din, const float *dout, const int32_t *argmax, const PoolShape *s);
/* in (n,c,h,w) -> out (n,c,1,1) */
void global_avg_pool_forward(float *out, const float *in, int n, int c, int hw);
void global_avg_pool_backward(float *din, const float *dout, int n, int c, int hw);

/* ---- combining (combine.c) --------------------------------------------- */

/* out = a + b (residual add); n elements */
void add_forward(float *out, const float *a, const float *b, size_t n);
/* Concat along channels: inputs k of shape (n, cs[k], hw) -> out (n, sum cs, hw) */
void concat_forward(float *out, const float *const *ins, const int *cs, int count, int n, int hw);
void concat_backward(float *const *dins, const float *dout, const int *cs, int count, int n,
                     int hw);
/* Linear: in (n, fin) -> out (n, fout); weight (fout, fin) as PyTorch; bias (fout) or NULL */
void linear_forward(float *out, const float *in, const float *weight, const float *bias, int n,
                    int fin, int fout);
void linear_backward(float *din, float *dweight, float *dbias, const float *dout,
                     const float *in, const float *weight, int n, int fin, int fout);
/* out = in * scale[c] + shift[c]: fixed per-channel affine (ImageNet normalisation,
 * 0..255 input scaling) */
void channel_affine_forward(float *out, const float *in, const float *scale, const float *shift,
                            int n, int c, int hw);
void channel_affine_backward(float *din, const float *dout, const float *scale, int n, int c,
                             int hw);

/* ---- stochastic and code layers (stochastic.c) ------------------------- */

/* Inverted dropout: mask (n) holds 0 or 1/(1-p); drawn from the counter-based
 * generator percept_rng_uniform(seed, i) so results do not depend on threads. */
void dropout_forward(float *out, float *mask, const float *in, size_t n, float p,
                     uint64_t seed);
void dropout_backward(float *din, const float *dout, const float *mask, size_t n);
/* Ridgeway's binary code: out = in > threshold ? high : low; gradient passes straight
 * through (din = dout). */
void binary_forward(float *out, const float *in, size_t n, float threshold, float low,
                    float high);
void binary_backward(float *din, const float *dout, size_t n);
/* VAE: in (n, 2c, hw) holds mu (first c channels) and logvar (last c);
 * out (n, c, hw) = mu + exp(logvar/2) * eps, eps (n*c*hw) standard normal saved. */
void reparam_forward(float *out, float *eps, const float *in, int n, int c, int hw,
                     uint64_t seed);
void reparam_backward(float *din, const float *dout, const float *in, const float *eps,
                      int n, int c, int hw);

#endif
