/* libpercept: perceptual-loss networks in plain C.
 *
 * Errors: functions return 0 (or a valid pointer) on success and -1 (or NULL) on
 * failure, leaving a message for percept_error() in the calling thread. The library
 * never exits or aborts on bad input.
 */
#ifndef PERCEPT_H
#define PERCEPT_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#if defined(PERCEPT_BUILDING) && defined(__GNUC__)
#define PERCEPT_API __attribute__((visibility("default")))
#else
#define PERCEPT_API
#endif

#define PERCEPT_VERSION "0.1.0"

/* ---- errors --------------------------------------------------------------------- */

/* The last error of this thread ("" when none). */
PERCEPT_API const char *percept_error(void);
PERCEPT_API void percept_error_clear(void);
/* Sets the message (printf-style); returns -1 so callers can `return percept_fail(...)`. */
PERCEPT_API int percept_fail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Prefixes the current message with context ("file.safetensors: "). Returns -1. */
PERCEPT_API int percept_fail_prefix(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
/* Whether the last error was memory running out on a network's device (a GPU's memory, or
 * the network's memory limit): the same work may fit in smaller pieces or on the CPU.
 * Prefixing keeps it; a new error or percept_error_clear resets it. */
PERCEPT_API int percept_error_is_out_of_memory(void);
/* percept_fail for memory running out: percept_error_is_out_of_memory() then says so. */
PERCEPT_API int percept_fail_oom(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- random numbers: counter-based, so a seed gives the same stream everywhere --- */

PERCEPT_API uint64_t percept_rng_u64(uint64_t seed, uint64_t counter);
/* uniform in [0, 1) */
PERCEPT_API float percept_rng_uniform(uint64_t seed, uint64_t counter);
/* standard normal */
PERCEPT_API float percept_rng_normal(uint64_t seed, uint64_t counter);

/* ---- tensors ------------------------------------------------------------------------ */

typedef struct PerceptBackend PerceptBackend;

/* NCHW float32. data belongs to backend memory (CPU: plain host memory). */
typedef struct {
    int n, c, h, w;
    float *data;
} PerceptTensor;

static inline size_t percept_tensor_numel(const PerceptTensor *t)
{
    return (size_t)t->n * t->c * t->h * t->w;
}

/* ---- safetensors ------------------------------------------------------------------ */

typedef enum { PERCEPT_DTYPE_F32 = 0, PERCEPT_DTYPE_F16 = 1 } PerceptDtype;

typedef struct {
    char *name;
    PerceptDtype dtype;
    int ndim;
    int64_t shape[8];
    size_t numel;
    float *data; /* converted to float32, owned by the file object */
} PerceptStTensor;

typedef struct {
    char *key;
    char *value;
} PerceptStMeta;

typedef struct {
    char *path;
    int n_tensors;
    PerceptStTensor *tensors;
    int n_meta;
    PerceptStMeta *meta;
} PerceptSafetensors;

/* Reads and validates a whole file: header length, JSON, dtypes, shapes, offsets (in
 * range, no overlap, covering the data), finite values. Errors name the file. */
PERCEPT_API PerceptSafetensors *percept_st_read(const char *path);
/* Same, from memory (the fuzz target and tests use this); name is used in messages. */
PERCEPT_API PerceptSafetensors *percept_st_parse(const uint8_t *bytes, size_t size,
                                                 const char *name);
PERCEPT_API void percept_st_free(PerceptSafetensors *st);
PERCEPT_API const PerceptStTensor *percept_st_find(const PerceptSafetensors *st,
                                                   const char *name);
PERCEPT_API const char *percept_st_meta(const PerceptSafetensors *st, const char *key);
/* The task the file's network does: percept.task, or for a training checkpoint (task
 * "checkpoint") the task it trains, percept.train_task; NULL when the file does not say. */
PERCEPT_API const char *percept_st_task(const PerceptSafetensors *st);

/* A tensor to write: float32 data stored as dtype (F16 rounds to nearest even). */
typedef struct {
    const char *name;
    PerceptDtype dtype;
    int ndim;
    int64_t shape[8];
    const float *data;
} PerceptStWrite;

/* Writes atomically (temporary file in the same directory, then rename). Metadata
 * entries are string key/value pairs. */
PERCEPT_API int percept_st_write(const char *path, const PerceptStWrite *tensors, int n_tensors,
                                 const PerceptStMeta *meta, int n_meta);

/* ---- networks ------------------------------------------------------------------------ */

typedef struct PerceptNet PerceptNet;

/* Builds a network from its architecture JSON (docs/arch-format.md). Parameters are
 * initialised from seed (He-normal weights, zero biases, unit norm scales). */
PERCEPT_API PerceptNet *percept_net_from_arch(const char *arch_json, uint64_t seed);
/* Loads a weight file: the architecture from metadata percept.arch, every parameter
 * checked against it. */
PERCEPT_API PerceptNet *percept_net_load(const char *path);
/* Architecture from arch_json, parameters from st (by name). A tensor the architecture does
 * not use is an error, so a wrong file is never half-used. */
PERCEPT_API PerceptNet *percept_net_from_safetensors(const PerceptSafetensors *st,
                                                     const char *arch_json);
/* The same on a named device ("cpu", "cuda", "auto"; NULL: percept_set_device's choice):
 * an error (the reason) when "cuda" cannot be used. */
PERCEPT_API PerceptNet *percept_net_from_safetensors_on(const PerceptSafetensors *st,
                                                        const char *arch_json,
                                                        const char *device);
/* The same, ignoring tensors the architecture does not use: for taking the first layers of a
 * larger network (a loss network from a full VGG-16 state_dict). */
PERCEPT_API PerceptNet *percept_net_from_safetensors_subset(const PerceptSafetensors *st,
                                                            const char *arch_json);
PERCEPT_API void percept_net_free(PerceptNet *net);
/* Saves parameters (and buffers such as running statistics) with metadata; percept.arch
 * and percept.version are added. dtype F16 halves the file. */
PERCEPT_API int percept_net_save(PerceptNet *net, const char *path, PerceptDtype dtype,
                                 const PerceptStMeta *meta, int n_meta);

/* The backend new networks run on: "cpu"; "cuda" (NVIDIA GPUs through libpercept-cuda,
 * loaded at run time: an error when it is not installed, or finds no usable GPU); or
 * "auto" (CUDA when it loads and finds a GPU, else the CPU). The default is the environment
 * variable PERCEPT_DEVICE, else "cpu". Returns 0, or -1 with a message (which says why CUDA
 * cannot be used); a network keeps the backend it was made with. */
PERCEPT_API int percept_set_device(const char *device);
/* "cpu" or "cuda": where this network runs. */
PERCEPT_API const char *percept_net_device(const PerceptNet *net);

PERCEPT_API const char *percept_net_name(const PerceptNet *net);
PERCEPT_API const char *percept_net_arch(const PerceptNet *net);
PERCEPT_API size_t percept_net_param_count(const PerceptNet *net);
PERCEPT_API int percept_net_input_channels(const PerceptNet *net);
/* Receptive field of one output pixel, in input pixels (for tiling halos). */
PERCEPT_API int percept_net_receptive_field(const PerceptNet *net);
/* Output size for an input size; -1 with a message if the input is too small/odd. */
PERCEPT_API int percept_net_output_shape(PerceptNet *net, int n, int h, int w, int *oc,
                                         int *oh, int *ow);
/* Bytes of activation memory a forward pass of one h×w image plans (0 with a message if the
 * size is refused); the tiler sizes its tiles with it. Allocates nothing. */
PERCEPT_API size_t percept_net_memory_bytes(PerceptNet *net, int h, int w);
/* The largest downsampling factor inside the network (1 for networks that never stride,
 * 4 for Johnson's style net): inputs cut at multiples of it are processed identically, so
 * tiles must start at multiples of it. */
PERCEPT_API int percept_net_alignment(const PerceptNet *net);
/* Instance-norm statistics: mean and 1/std of every channel of every instance_norm node,
 * in node order (2 · channels floats per node). After a forward pass they hold its first
 * image's; once fixed, every forward pass normalises with the given ones instead of its
 * own (NULL: compute them again) and backward is refused. The tiler runs the whole image
 * once, fixes its statistics, then runs the tiles: tiles normalise as the whole image. */
PERCEPT_API size_t percept_net_norm_stats_floats(const PerceptNet *net);
PERCEPT_API const float *percept_net_norm_stats(const PerceptNet *net);
PERCEPT_API int percept_net_fix_norm_stats(PerceptNet *net, const float *stats);
/* One line per node: name, op, output shape for a given input size. Caller frees. */
PERCEPT_API char *percept_net_summary(PerceptNet *net, int h, int w);

/* Training mode: batch norm uses batch statistics, dropout is active, activations are
 * kept for backward. Eval mode reuses activation memory between layers. */
PERCEPT_API void percept_net_set_training(PerceptNet *net, int training);
/* Keep every activation so backward can run in eval mode too (loss networks, gradient
 * with respect to the input of a frozen network). Training mode implies it. */
PERCEPT_API void percept_net_set_grad(PerceptNet *net, int grad);
/* A frozen network computes no parameter gradients in backward (a loss network: only the
 * gradient with respect to its input is wanted), which saves most of the backward pass. */
PERCEPT_API void percept_net_set_frozen(PerceptNet *net, int frozen);
/* Seed of dropout / reparameterisation noise for the next forward pass. */
PERCEPT_API void percept_net_set_noise_seed(PerceptNet *net, uint64_t seed);

/* Forward: in is host memory (n,c,h,w). *out points into the network's memory and stays
 * valid until the next forward or free. Plans memory on the first call for a size; a
 * later call with the same size allocates nothing. */
PERCEPT_API int percept_net_forward(PerceptNet *net, const PerceptTensor *in,
                                    PerceptTensor *out);
/* Geometric self-ensemble (Timofte et al., "Seven ways to improve example-based single
 * image super resolution", 2016; EDSR+): the mean of the outputs for the input in its 8
 * orientations (flips and transpositions), each turned back. For image-to-image networks
 * trained on crops in all 8 orientations, as percept train makes them, the errors of the
 * 8 passes partly cancel: a little more accuracy for 8 times the work. dst holds the output
 * (percept_net_output_shape's size) and *out describes it; refused for a network whose
 * output does not turn with its input. */
PERCEPT_API int percept_net_forward_ensemble(PerceptNet *net, const PerceptTensor *in,
                                             float *dst, PerceptTensor *out);
/* Backward after a forward with gradients enabled (training mode or percept_net_set_grad;
 * in eval mode batch norm's gradient uses the running statistics): dout has the output's
 * shape. Parameter gradients accumulate; din (input's shape) is written when non-NULL. */
PERCEPT_API int percept_net_backward(PerceptNet *net, const float *dout, float *din);
/* Frees the planned activation memory (the next forward plans again): for hosts such as
 * GIMP that keep a network loaded between uses. */
PERCEPT_API void percept_net_release_memory(PerceptNet *net);
/* The most bytes a forward or backward pass of this network may plan (0: no limit but the
 * device's own memory). A pass that needs more fails as out of memory
 * (percept_error_is_out_of_memory) before anything is allocated: for hosts that leave room
 * on a shared GPU, and for testing what callers do when memory runs out. */
PERCEPT_API void percept_net_set_memory_limit(PerceptNet *net, size_t bytes);
/* The output of a named node after forward (e.g. "features.8" of VGG-16). */
PERCEPT_API int percept_net_node_output(PerceptNet *net, const char *node, PerceptTensor *out);
/* Backward from several nodes at once: grads[i] has node names[i]'s output shape. */
PERCEPT_API int percept_net_backward_from(PerceptNet *net, const char *const *names,
                                          const float *const *grads, int count, float *din);

/* All trainable parameters live in one arena, their gradients in a second of equal size. */
PERCEPT_API float *percept_net_params(PerceptNet *net, size_t *count);
PERCEPT_API float *percept_net_grads(PerceptNet *net, size_t *count);
PERCEPT_API void percept_net_zero_grads(PerceptNet *net);
/* Named parameter (for tests and tools); NULL if absent. */
PERCEPT_API float *percept_net_param(PerceptNet *net, const char *name, size_t *count);
PERCEPT_API float *percept_net_param_grad(PerceptNet *net, const char *name, size_t *count);

/* ---- architecture builders: return malloc'd JSON (docs/arch-format.md) -------------- */

typedef struct {
    int base;          /* channels of the first conv: 32 in Johnson's net */
    int res_blocks;    /* 5 */
    int input_255;     /* 1: input scaled to 0..255 and output back (pytorch/examples) */
} PerceptJohnsonOpts;
PERCEPT_API char *percept_arch_johnson(const PerceptJohnsonOpts *o);

typedef enum {
    PERCEPT_SR_JOHNSON = 0, /* 9x9 conv, residual blocks, (upsample+conv) per x2, 9x9 conv */
    PERCEPT_SR_SHUFFLE = 1  /* works at low resolution, ends in one pixel shuffle */
} PerceptSrKind;
typedef struct {
    PerceptSrKind kind;
    int scale;        /* 2, 4 or 8 */
    int channels;     /* 64 */
    int res_blocks;   /* 4 */
    float tail_gain;  /* shuffle: the last conv's initial weights × this (0 means 1): small
                       * values start the residual near the skip path (nearest upsampling) */
    float block_gain; /* shuffle: each residual block's second conv's initial weights × this
                       * (0 means 1): small values keep the activations' scale through the
                       * unnormalised blocks at initialisation (residual-branch scaling) */
    int center_input; /* subtract 0.5 from the input before the head conv (keeps head ReLUs
                       * alive; the skip path still sees the input as it is) */
} PerceptSrOpts;
PERCEPT_API char *percept_arch_sr(const PerceptSrOpts *o);

/* Restoration (denoise, JPEG artefact removal): the shuffle SR body at scale 1, its output
 * added to the input. */
typedef struct {
    int channels;     /* 64 (half_res: of the half-resolution body) */
    int res_blocks;   /* 4 */
    float tail_gain;  /* the last conv's initial weights × this (0 means 1): small values
                       * start the network near identity */
    int half_res;     /* the residual blocks work at half resolution: for the same cost, a
                       * receptive field about twice as wide (inputs: even sides) */
    float block_gain; /* each residual block's second conv's initial weights × this (0 means
                       * 1), as in PerceptSrOpts */
    int center_input; /* as in PerceptSrOpts */
    int resize_up;    /* half_res: back to full resolution by nearest ×2 upsampling and a 3×3
                       * conv instead of a conv and a pixel shuffle (Odena et al.'s resize-
                       * convolution: no 2-pixel grid where no loss forbids one) */
} PerceptRestoreOpts;
PERCEPT_API char *percept_arch_restore(const PerceptRestoreOpts *o);

typedef struct {
    int size;         /* input side of the discriminator (e.g. 227, 64) */
    int width;        /* 32 in Table 1; scales every layer's channels */
} PerceptDiscriminatorOpts;
PERCEPT_API char *percept_arch_deepsim_discriminator(const PerceptDiscriminatorOpts *o);

typedef struct {
    int size;         /* training image side: a multiple of 8 (Table 2 uses 64) */
    int width;        /* base channels (32 in Table 2's first layer) */
    int code;         /* channels of the code map, 8× smaller than the image (8 in Table 2) */
    int variational;  /* 1: mu/logvar + reparameterisation (VAE) */
    int binary;       /* 1: Ridgeway's binary code layer */
} PerceptAutoencoderOpts;
PERCEPT_API char *percept_arch_deepsim_autoencoder(const PerceptAutoencoderOpts *o);

/* VGG-16 features (torchvision names features.N), ImageNet normalisation on a 0..1
 * input, up to and including the named layer (relu1_2 ... relu5_3). */
PERCEPT_API char *percept_arch_vgg16(const char *last_layer);
/* torchvision index of a VGG-16 layer name ("relu2_2" -> 8); -1 if unknown. */
PERCEPT_API int percept_vgg16_layer_index(const char *name);

/* ---- losses (docs/losses.md) -------------------------------------------------------------
 * Each returns the loss value and, when grad is non-NULL, writes d loss / d input (assigned,
 * same shape as the input). Batches are averaged, so the value does not grow with the batch.
 * Losses do not check their inputs (they run inside training loops); callers that take
 * images from outside check them once with percept_loss_finite. */

/* Mean squared error over all n elements: Johnson's ||y - ŷ||² / CHW, averaged over the
 * batch (the feature reconstruction loss is this on a loss network's features). */
PERCEPT_API double percept_loss_mse(const float *x, const float *target, size_t n, float *grad);
/* Mean absolute error; the gradient at x == target is taken as 0. */
PERCEPT_API double percept_loss_l1(const float *x, const float *target, size_t n, float *grad);
/* Total variation: squared differences between horizontal and vertical neighbours (β = 2,
 * as in Johnson's and neural-style's code), summed over pixels and channels, averaged over
 * the batch. */
PERCEPT_API double percept_loss_tv(const PerceptTensor *x, float *grad);
/* Gram matrices of features f (n, c, h, w): g (n, c, c) = ψ ψᵀ / (c h w) per image. */
PERCEPT_API void percept_gram(float *g, const PerceptTensor *f);
/* Style reconstruction: ||G(f_b) - T||²_F averaged over the batch, where T is one c×c Gram
 * (per_image 0: the style image's, for every image) or n of them (per_image 1). Works when
 * the two images differ in size: only the Gram matrices meet. NaN (with a message) if
 * memory for the Gram matrices runs out. */
PERCEPT_API double percept_loss_style(const PerceptTensor *f, const float *target_gram,
                                      int per_image, float *grad);
/* KL divergence of N(mu, exp(logvar)) from N(0, 1), summed over the n values of each of the
 * `batch` samples and averaged over the batch. */
PERCEPT_API double percept_loss_kl(const float *mu, const float *logvar, size_t n, int batch,
                                   float *dmu, float *dlogvar);
/* Adversarial losses on logits (DeePSiM): discriminator −log D(y) − log(1 − D(G(x))),
 * generator −log D(G(x)), computed as softplus so large logits neither overflow nor give
 * log(0); averaged over the n logits. */
PERCEPT_API double percept_loss_adv_discriminator(const float *real, const float *fake, int n,
                                                  float *dreal, float *dfake);
PERCEPT_API double percept_loss_adv_generator(const float *fake, int n, float *dfake);
/* 0 when all n values are finite; otherwise -1 with a message naming what and where. */
PERCEPT_API int percept_loss_finite(const float *x, size_t n, const char *what);

/* SSIM (Wang et al. 2004), per channel, averaged over valid window positions, channels and
 * images; with grad non-NULL, d SSIM / d x (the loss is 1 − SSIM: negate it). */
typedef struct {
    int window;        /* taps per side: 11 */
    float sigma;       /* Gaussian σ (1.5); 0 for a uniform window (Ridgeway et al.) */
    float k1, k2;      /* 0.01, 0.03 */
    float data_range;  /* 1 for 0..1 images */
} PerceptSsimConfig;
#define PERCEPT_SSIM_WANG {11, 1.5f, 0.01f, 0.03f, 1.0f}
PERCEPT_API int percept_ssim(const PerceptTensor *x, const PerceptTensor *y,
                             const PerceptSsimConfig *cfg, double *value, float *grad);

/* MS-SSIM (Wang et al. 2003) as pytorch-msssim defines it: 5 scales, weights 0.0448 0.2856
 * 0.3001 0.2363 0.1333, Gaussian window as SSIM; each side must be at least 161 pixels
 * (an error otherwise). With grad non-NULL, d MS-SSIM / d x. */
PERCEPT_API int percept_ms_ssim(const PerceptTensor *x, const PerceptTensor *y, double *value,
                                float *grad);

/* The MMD patch loss of Amir & Weiss (docs/losses.md): MMD between the distributions of
 * P×P patches in W×W windows (stride S) under a Gaussian kernel of bandwidth σ, through
 * `features` random Fourier features drawn from `seed` (the same everywhere). With grad
 * non-NULL, d value / d x. percept_mmd_plus is MMD++: 0.001 L2 + 0.05 local patch term + MMD. */
typedef struct {
    int patch, window, stride, features;
    float sigma;
    int channel_norm;  /* 1: ignore each channel's mean within a patch */
    uint64_t seed;
} PerceptMmdConfig;
#define PERCEPT_MMD_DEFAULT {3, 32, 16, 512, 0.6f, 0, 1}
PERCEPT_API int percept_mmd(const PerceptTensor *x, const PerceptTensor *y,
                            const PerceptMmdConfig *cfg, double *value, float *grad);
PERCEPT_API int percept_mmd_plus(const PerceptTensor *x, const PerceptTensor *y,
                                 const PerceptMmdConfig *cfg, double *value, float *grad);
/* Style as a distribution of patches, for loss networks no one trained: the MMD between all
 * P×P patches of each image and all of a style image's, at `levels` scales (the image, then
 * average-pooled by 2, 4, …; each level its own random features, seed + level). The style
 * side is summarised once: embedding (levels × features floats) is its patches' mean random
 * feature per level. Window and stride are unused. value = Σ levels of the batch-mean MMD²; the
 * style image must fill every level, a compared image too small for the coarse ones is
 * compared on the levels it fills (at least one patch). */
PERCEPT_API int percept_patch_embedding(const PerceptTensor *style, const PerceptMmdConfig *cfg,
                                        int levels, float *embedding);
PERCEPT_API int percept_mmd_to_embedding(const PerceptTensor *x, const float *embedding,
                                         const PerceptMmdConfig *cfg, int levels, double *value,
                                         float *grad);

/* A sliced Wasserstein patch loss (docs/losses.md): per image and Laplacian-pyramid level,
 * the squared 1-D Wasserstein-2 distance between the sorted projections of all P×P patches
 * (stride S, all channels) of x and of y on D random unit directions, divided by the level
 * variance of y and averaged over directions, patches, images and levels (the levels that
 * hold a patch, up to `levels`; the last one low-pass). The directions are drawn from seed
 * and a hash of y, so each target brings new ones. With grad non-NULL, d value / d x. */
typedef struct {
    int patch, directions, stride, levels;
    int phases;  /* >1: patches compared only with the target's at the same position modulo
                  * phases (phases/2 at the next level, …): a periodic artefact, such as a
                  * ×4 pixel shuffle's grid, cannot pass for texture */
    int window;  /* >0: compared window by window (window×window pixels, halved at each
                  * level while it holds 2 patches a side), so texture stays where it was;
                  * 0: the whole image */
    uint64_t seed;
} PerceptSwdConfig;
#define PERCEPT_SWD_DEFAULT {7, 32, 2, 4, 1, 0, 1}
PERCEPT_API int percept_swd_config_check(const PerceptSwdConfig *cfg);
PERCEPT_API int percept_swd_loss(const PerceptTensor *x, const PerceptTensor *y,
                                 const PerceptSwdConfig *cfg, double *value, float *grad);

/* ---- metrics (no gradients) ----------------------------------------------------------- */

/* PSNR over all channels of 0..1 images (+inf for identical images; NaN with a message
 * for images of different sizes). */
PERCEPT_API double percept_psnr(const PerceptTensor *a, const PerceptTensor *b);
/* PSNR on luma as SR papers report it: BT.601 Y on the 16..235 scale, peak 255, `border`
 * pixels cropped from each side (usually the scale factor). */
PERCEPT_API double percept_psnr_y(const PerceptTensor *a, const PerceptTensor *b, int border);
/* DeePSiM's normalised Euclidean error over a set of n ≥ 2 image pairs: mean ‖a_i − b_i‖
 * divided by the mean distance between different references ‖b_i − b_j‖ (1.0 = as far as a
 * random other image of the set). */
PERCEPT_API double percept_normalized_euclidean(const PerceptTensor *a, const PerceptTensor *b);
/* Sliced Wasserstein distance (×10³) between 7×7 patches of the Laplacian pyramids of a and
 * b (Karras et al.: 128 patches per image and level, 512 random directions, levels down to
 * 16 px), per level (up to max_levels) and their mean. Deterministic. */
PERCEPT_API int percept_swd(const PerceptTensor *a, const PerceptTensor *b, double *levels,
                            int max_levels, int *n_levels, double *mean);

/* A loss configured by a short string (docs/losses.md):
 *   mse | l1 | tv | ssim | ms-ssim | ssim-ridgeway     (SSIM losses are 1 − SSIM)
 *   mmd[:OPTS] | mmd++[:OPTS]  OPTS: p3:w32:s16:sigma0.6:f512[:norm][:seed1]
 *   swd[:OPTS]                OPTS: p7:d32:s2:levels4:phases1:w0:seed1 (sliced Wasserstein)
 *   feat:NET:LAYER            Johnson's feature reconstruction loss at one layer
 *   style:NET:LAYER,LAYER,…   Gram style loss summed over layers
 * NET is vgg16 (random weights fixed by seed 1: no download needed), vgg16#SEED, or
 * vgg16@FILE.safetensors (a user's torchvision weights; other tensors are ignored).
 * LAYER is a VGG-16 ReLU name: relu1_1 … relu5_3. */
typedef struct PerceptLoss PerceptLoss;
PERCEPT_API PerceptLoss *percept_loss_new(const char *spec);
PERCEPT_API void percept_loss_free(PerceptLoss *loss);
/* The image the loss compares with: the content image (mse, l1, feat: same shape as the
 * images evaluated later) or the style image (style: any size). tv takes none. */
PERCEPT_API int percept_loss_set_target(PerceptLoss *loss, const PerceptTensor *target);
/* Value for images x (n, 3, h, w in 0..1) and, when grad is non-NULL, d loss / d x.
 * Returns 0 and stores the value in *value, or -1 with a message. */
PERCEPT_API int percept_loss_eval(PerceptLoss *loss, const PerceptTensor *x, double *value,
                                  float *grad);
/* Several losses on the same images: values[i] (unweighted) and, when grad is non-NULL, the
 * gradient of Σ weights[i]·values[i]. Feature and style losses on the same loss network (the
 * same NET spec) share one forward and one backward pass through it, as a training loop with
 * Johnson's content and style losses wants. */
PERCEPT_API int percept_losses_eval(PerceptLoss *const *losses, const double *weights, int count,
                                    const PerceptTensor *x, double *values, float *grad);
/* Where the losses compute: mse, l1, tv, feat and style (and Adam, below) run on the GPU when
 * the image, the gradient and the loss network are all there — x a network's output on the
 * CUDA backend, grad from percept_buffer_new; the other losses, and any loss given host
 * memory, on the host. percept_buffer_new: zeroed memory of the backend new networks get
 * (percept_set_device), which the host may read and write between calls; NULL with a
 * message. */
PERCEPT_API float *percept_buffer_new(size_t floats);
PERCEPT_API void percept_buffer_free(float *p);
/* dst = src, n floats, between any of percept's memories (host memory, percept_buffer_new's,
 * a network's output): a DMA transfer when either side is GPU memory — reading a GPU
 * network's output this way is far faster than touching it from the host, whose pages then
 * migrate one fault at a time. 0, or -1 with a message. */
PERCEPT_API int percept_copy(float *dst, const float *src, size_t n);

/* ---- optimiser ------------------------------------------------------------------------ */

typedef struct {
    float lr, beta1, beta2, eps, weight_decay; /* decoupled (AdamW) when weight_decay > 0 */
} PerceptAdamConfig;

typedef struct {
    PerceptAdamConfig cfg;
    size_t count;
    int64_t step;
    float *m, *v;     /* in percept_buffer memory: on the GPU when new networks run there */
} PerceptAdam;

PERCEPT_API int percept_adam_init(PerceptAdam *a, size_t count, PerceptAdamConfig cfg);
PERCEPT_API void percept_adam_free(PerceptAdam *a);
/* One step: on the GPU when params, grads and the moments are all its memory (a network's
 * percept_net_params and percept_net_grads on the CUDA backend), else on the host. 0, or -1
 * with a message (a device error). */
PERCEPT_API int percept_adam_step(PerceptAdam *a, float *params, const float *grads);
/* State as tensors named prefix.m / prefix.v and the step in metadata, so a checkpoint
 * is an ordinary safetensors file. */
PERCEPT_API int percept_adam_save(const PerceptAdam *a, const char *path);
PERCEPT_API int percept_adam_load(PerceptAdam *a, const char *path);

#ifdef __cplusplus
}
#endif
#endif
