/* Our CUDA kernels (elementwise.cu, combine.cu, linear.cu, norm.cu, pool.cu, resample.cu):
 * each has a CPU twin in core/layers/ with the same semantics, which tests/test-cuda-parity.c
 * compares it with. All pointers are device-accessible; launches are asynchronous, on the stream of
 * gpu_set_stream. Gradients of activations are assigned, those of parameters accumulated. */
#ifndef PERCEPT_KERNELS_H
#define PERCEPT_KERNELS_H

#include <stddef.h>

/* The stream (a cudaStream_t; 0: the legacy default stream) the calling thread's launches
 * go to from now on. */
void gpu_set_stream(void *stream);

enum { EW_ADD, EW_RELU, EW_LEAKY_RELU, EW_TANH, EW_SCALED_TANH, EW_SIGMOID, EW_COS };

/* out = op(a) (EW_ADD: a + b); p: LeakyReLU's α, the scaled tanh's or cos's scale, q the
 * scaled tanh's shift */
void gpu_elementwise(int op, float *out, const float *a, const float *b, size_t n, float p,
                     float q);
/* dx = dout · op'(ref): ref is the op's input for ReLU, LeakyReLU and cos, its output for
 * the tanh and sigmoid family */
void gpu_elementwise_backward(int op, float *dx, const float *dout, const float *ref, size_t n,
                              float p, float q);

/* A convolution's output (cuDNN's, (n, c, hw)) made final in one pass: + bias[ch] (or NULL),
 * + add (or NULL), then ReLU if relu: the bias and the inference epilogue (plan.c) */
void gpu_conv_epilogue(float *y, const float *bias, const float *add, int relu, size_t total,
                       int c, int hw);

/* fully connected: in (n, fin), w (fout, fin), b (fout) or NULL, out (n, fout) = in·wᵀ + b;
 * backward: din assigned, dw and db accumulated (each may be NULL) */
void gpu_linear(float *out, const float *in, const float *w, const float *b, int n, int fin,
                int fout);
void gpu_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                         const float *w, int n, int fin, int fout);

/* channel concatenation: inputs k (n, cs[k], hw) -> out (n, Σ cs, hw); a NULL dins[k]
 * is skipped */
void gpu_concat(float *out, const float *const *ins, const int *cs, int count, int n, int hw);
void gpu_concat_backward(float *const *dins, const float *dout, const int *cs, int count, int n,
                         int hw);
/* out = in·scale[ch] + shift[ch] over total floats, ch = (i / hw) mod c (c = 1: one constant
 * for everything); the gradient is din = dout·scale[ch] */
void gpu_channel_affine(float *out, const float *in, const float *scale, const float *shift,
                        size_t total, int c, int hw);
void gpu_channel_affine_backward(float *din, const float *dout, const float *scale, size_t total,
                                 int c, int hw);

/* planes (n·c) of h × w */
void gpu_upsample_nearest(float *out, const float *in, int planes, int h, int w, int f);
void gpu_upsample_nearest_backward(float *din, const float *dout, int planes, int h, int w, int f);
/* (n, c·r², h, w) <-> (n, c, h·r, w·r) */
void gpu_pixel_shuffle(float *out, const float *in, int n, int c, int h, int w, int r);
void gpu_pixel_shuffle_backward(float *din, const float *dout, int n, int c, int h, int w, int r);
/* ReflectionPad2d by p (p < h, p < w) and its gradient (the borders folded back in); the
 * forward reads in through a nearest upsampling by up (0 or 1: none; h × w is its size
 * after it, in is h/up × w/up), as the CPU's convolution does (ConvShape.up) */
void gpu_reflect_pad(float *out, const float *in, int planes, int h, int w, int p, int up);
void gpu_reflect_pad_backward(float *din, const float *dpad, int planes, int h, int w, int p);

/* pooling over planes (n·c) of h × w, zero padding, floor mode (out is hout × wout) */
typedef struct { int planes, h, w, k, stride, pad, hout, wout; } GpuPool;
/* padded zeros count in the divisor */
void gpu_avg_pool(float *out, const float *in, const GpuPool *p);
void gpu_avg_pool_backward(float *din, const float *dout, const GpuPool *p);
/* argmax (planes·hout·wout): the winner's index within its plane, the CPU's layout */
void gpu_max_pool(float *out, int *argmax, const float *in, const GpuPool *p);
void gpu_max_pool_backward(float *din, const float *dout, const int *argmax, const GpuPool *p);
/* (planes, hw) -> (planes) */
void gpu_global_avg_pool(float *out, const float *in, int planes, int hw);
void gpu_global_avg_pool_backward(float *din, const float *dout, int planes, int hw);

/* instance norm over (n, c, hw): mean and rstd (n·c) saved; gamma, beta (c) or NULL; then
 * the inference epilogue: + add (or NULL), ReLU if relu */
void gpu_instance_norm(float *out, float *mean, float *rstd, const float *x, const float *gamma,
                       const float *beta, int n, int c, int hw, float eps, const float *add,
                       int relu);
/* dx assigned (or NULL), dgamma and dbeta accumulated (or NULL) */
void gpu_instance_norm_backward(float *dx, float *dgamma, float *dbeta, const float *dout,
                                const float *x, const float *mean, const float *rstd,
                                const float *gamma, int n, int c, int hw);

/* instance norm with fixed statistics (percept_net_fix_norm_stats: the whole image's, for
 * every tile): mean and rstd per channel, the same for every image, then the epilogue —
 * the CPU's instance_norm_apply */
void gpu_instance_norm_fixed(float *out, const float *x, const float *mean, const float *rstd,
                             const float *gamma, const float *beta, int n, int c, int hw,
                             const float *add, int relu);

/* batch norm over (n, c, hw): mean and rstd (c) saved, the CPU's layout. Training: batch
 * statistics, running_mean and running_var (or NULL) updated with the momentum; eval: the
 * running statistics (mean and rstd still written, as the normalisation's input). */
void gpu_batch_norm_train(float *out, float *mean, float *rstd, float *running_mean,
                          float *running_var, const float *x, const float *gamma,
                          const float *beta, int n, int c, int hw, float eps, float momentum);
void gpu_batch_norm_eval(float *out, float *mean, float *rstd, const float *x,
                         const float *running_mean, const float *running_var, const float *gamma,
                         const float *beta, int n, int c, int hw, float eps, const float *add,
                         int relu);
/* An eval batch norm folded into the convolution before it (plan.c's ep_bn), as the CPU's
 * fold_batch_norm: wf = w·a, bf = (b − mean)·a + beta, a = gamma / √(var + eps) per output
 * channel (per: the weights of one); b, gamma, beta may be NULL */
void gpu_fold_batch_norm(float *wf, float *bf, const float *w, const float *b, const float *mean,
                         const float *var, const float *gamma, const float *beta, int cout,
                         size_t per, float eps);
/* dx assigned (or NULL), dgamma and dbeta accumulated (or NULL); training: through the
 * batch statistics the forward saved; eval: through the fixed running ones */
void gpu_batch_norm_backward(float *dx, float *dgamma, float *dbeta, const float *dout,
                             const float *x, const float *mean, const float *rstd,
                             const float *gamma, int n, int c, int hw);
void gpu_batch_norm_backward_eval(float *dx, float *dgamma, float *dbeta, const float *dout,
                                  const float *x, const float *running_mean,
                                  const float *running_var, const float *gamma, int n, int c,
                                  int hw, float eps);

/* ---- phased convolutions (phases.cu) -----------------------------------------------------
 * A stride-1 convolution with few channels on one side (Johnson's 9×9 convolutions from and
 * to RGB) run as one over an r-times smaller grid with r² times the channels, which tensor
 * cores run well: output pixel (r·I + p, r·J + q) of channel co is channel co·r² + p·r + q of
 * a kp × kp valid convolution, kp = (k + r − 2) / r + 1, over the phased input, whose channel
 * ci·r² + s·r + t at (I, J) is the padded input's pixel (r·I + s, r·J + t). The exact
 * convolution, re-indexed: the phased weights are the kernel's taps, and zeros. */
typedef struct {
    int n, cin, cout, h, w;          /* the input (n, cin, h, w); the output's channels */
    int k, pad, reflect;             /* the convolution: stride 1, padding mirrored or zero */
    int up;                          /* 0 or 1, or the input is read through a nearest
                                      * upsampling by up (h × w its size after it) */
    int r;                           /* phases per axis */
    /* gpu_phased_shape: */
    int hout, wout;                  /* the output: h + 2·pad − k + 1 */
    int kp;                          /* the phased kernel */
    int cinp, coutp;                 /* cin·r², cout·r², rounded up to 8 (zero channels) */
    int ho, wo, hi, wi;              /* phased output ⌈hout / r⌉ …, input ho + kp − 1 … */
} GpuPhased;

static inline void gpu_phased_shape(GpuPhased *d)
{
    const int r = d->r;
    d->hout = d->h + 2 * d->pad - d->k + 1;
    d->wout = d->w + 2 * d->pad - d->k + 1;
    d->kp = (d->k + r - 2) / r + 1;
    d->cinp = (d->cin * r * r + 7) / 8 * 8;
    d->coutp = (d->cout * r * r + 7) / 8 * 8;
    d->ho = (d->hout + r - 1) / r;
    d->wo = (d->wout + r - 1) / r;
    d->hi = d->ho + d->kp - 1;
    d->wi = d->wo + d->kp - 1;
}

/* the phased input (n, cinp, hi, wi) and weights (coutp, cinp, kp, kp) */
void gpu_phase_input(float *out, const float *in, const GpuPhased *d);
void gpu_phase_weights(float *out, const float *w, const GpuPhased *d);
/* the output (n, cout, hout, wout) from the phased one (n, coutp, ho, wo), with the
 * convolution's epilogue: + bias[co] (or NULL), + add (or NULL), ReLU if relu */
void gpu_unphase_output(float *out, const float *in, const float *bias, const float *add,
                        int relu, const GpuPhased *d);
/* backward: the output's gradient in the phased layout; dw (cout, cin, k, k) += the phased
 * weights' gradient gathered back; dx (n, cin, h, w) assigned from the phased input's */
void gpu_phase_output_grad(float *out, const float *dout, const GpuPhased *d);
void gpu_unphase_weights_grad(float *dw, const float *dwp, const GpuPhased *d);
void gpu_phase_input_backward(float *dx, const float *dxp, const GpuPhased *d);

/* ---- losses and Adam (loss.cu) -----------------------------------------------------------
 * A loss's sum goes to partial, gpu_reduce_blocks(n) doubles (one per block), which
 * gpu_sum_partials adds, in a fixed order, into *out; gradients are assigned (or NULL). */
unsigned gpu_reduce_blocks(size_t n);
void gpu_sum_partials(double *out, const double *partial, unsigned count);
/* Σ (x − t)² and grad = 2 (x − t) / n; Σ |x − t| and grad = sign(x − t) / n */
void gpu_mse(double *partial, float *grad, const float *x, const float *t, size_t n);
void gpu_l1(double *partial, float *grad, const float *x, const float *t, size_t n);
/* total variation over planes of h × w (unscaled sum), grad scaled by scale */
void gpu_tv(double *partial, float *grad, const float *x, int planes, int h, int w, float scale);
void gpu_count_nonfinite(double *partial, const float *x, size_t n);
/* n Gram matrices of cc elements: g −= target (target: one, or n when per_image), Σ g² */
void gpu_gram_difference(double *partial, float *g, const float *target, int n, size_t cc,
                         int per_image);
/* SSIM over planes of h × w with a taps × taps window (the outer product of win), C1, C2:
 * the sum of the valid positions' indices into partial (gpu_reduce_blocks(planes · positions)),
 * and with grad (or NULL) d mean SSIM / d x, assigned; scratch: gpu_ssim_scratch_floats */
typedef struct {
    int planes, h, w, taps;
    float win[64];
    double c1, c2;
} GpuSsim;
size_t gpu_ssim_scratch_floats(const GpuSsim *d);
void gpu_ssim(double *partial, float *grad, const float *x, const float *y, const GpuSsim *d,
              float *scratch);
/* y = a·x (assign) or y += a·x */
void gpu_axpy(float *y, float a, const float *x, size_t n, int assign);
/* one Adam step with the host's scalars (core/nets/math.c) */
typedef struct { float b1, b2, eps, step_size, bc2_sqrt, keep; int decay; } GpuAdam;
void gpu_adam(float *p, float *m, float *v, const float *g, size_t n, GpuAdam c);

#endif
