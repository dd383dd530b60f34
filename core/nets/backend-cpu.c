/* The CPU backend: runs graph nodes with the kernels of core/layers/. It is the
 * reference every other backend is compared against. */
#include <math.h>
#include <stdlib.h>
#include <unistd.h>
#include <string.h>

#include "graph.h"
#include "layers.h"

size_t cpu_alloc_calls;

/* Physical memory: a larger request would only succeed on paper (overcommit) and end
 * the host application when touched, so it is refused with a message instead. */
static size_t physical_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), size = sysconf(_SC_PAGESIZE);
    return pages > 0 && size > 0 ? (size_t)pages * (size_t)size : (size_t)1 << 40;
}

static float *cpu_alloc(size_t floats)
{
    cpu_alloc_calls++;
    /* 64-byte aligned and zeroed: kernels may rely on neither, but it keeps SIMD loads
     * aligned and makes unwritten memory deterministic. */
    if (floats > physical_bytes() / sizeof(float)) {
        percept_fail("refusing to allocate %.1f GiB: more than this machine's memory",
                     floats * 4.0 / 1073741824.0);
        return NULL;
    }
    size_t bytes = (floats * sizeof(float) + 63) / 64 * 64;
    float *p = aligned_alloc(64, bytes ? bytes : 64);
    if (p)
        memset(p, 0, bytes);
    else
        percept_fail("out of memory allocating %.1f MiB", bytes / 1048576.0);
    return p;
}

static void cpu_release(float *p)
{
    free(p);
}

/* ---- shapes of a node's operands ---------------------------------------------------- */

static Shape in_shape(const PerceptNet *net, const Node *nd)
{
    return net_in_shape(net, nd, 0);
}

static ConvShape conv_shape(const PerceptNet *net, const Node *nd)
{
    Shape in = in_shape(net, nd);
    ConvShape s = {in.n, in.c, in.h, in.w, nd->cout, nd->k, nd->stride, nd->pad,
                   nd->reflect ? PAD_REFLECT : PAD_ZERO, 0, 0, nd->in_up};
    conv2d_shape(&s);
    return s;
}

static ConvTShape convt_shape(const PerceptNet *net, const Node *nd)
{
    Shape in = in_shape(net, nd);
    ConvTShape s = {in.n, in.c, in.h, in.w, nd->cout, nd->k, nd->stride, nd->pad,
                    nd->output_pad, 0, 0};
    conv_transpose2d_shape(&s);
    return s;
}

static PoolShape pool_shape(const PerceptNet *net, const Node *nd)
{
    Shape in = in_shape(net, nd);
    PoolShape s = {in.n, in.c, in.h, in.w, nd->k, nd->stride, nd->pad, 0, 0};
    pool2d_shape(&s);
    return s;
}

static size_t cpu_scratch_floats(const PerceptNet *net, const Node *nd)
{
    if (nd->op == OP_CONV2D) {
        ConvShape s = conv_shape(net, nd);
        size_t folded = nd->ep_bn < 0 ? 0 : (size_t)s.cout * (s.cin * s.k * s.k + 1);
        return conv2d_scratch_floats(&s) + folded;
    }
    if (nd->op == OP_CONV_TRANSPOSE2D) {
        ConvTShape s = convt_shape(net, nd);
        return conv_transpose2d_scratch_floats(&s);
    }
    return 0;
}

static size_t cpu_saved_floats(const PerceptNet *net, const Node *nd, int grad)
{
    Shape in = in_shape(net, nd);
    switch (nd->op) {
    case OP_INSTANCE_NORM:
        return 2 * (size_t)in.n * in.c; /* mean, rstd */
    case OP_BATCH_NORM:
        return 2 * (size_t)in.c;
    case OP_MAX_POOL:
        return shape_numel(nd->out); /* argmax, int32 in float-sized slots */
    case OP_DROPOUT:
    case OP_REPARAM:
        return net->plan.training ? shape_numel(nd->out) : 0; /* mask / noise */
    default:
        return 0;
    }
}

static float *out_of(PerceptNet *net, const Node *nd)
{
    return net->plan.act + nd->out_off;
}

static float *in_of(PerceptNet *net, const Node *nd, int j)
{
    return net_act(net, nd->in[j]);
}

static float *saved_of(PerceptNet *net, const Node *nd)
{
    return net->plan.saved + nd->saved_off;
}

static uint64_t node_seed(const PerceptNet *net, const Node *nd)
{
    return percept_rng_u64(net->noise_seed, (uint64_t)(nd - net->nodes));
}

/* channel_affine with one constant for all channels runs as a single channel */
static void affine_dims(const Node *nd, Shape in, int *c, int *hw)
{
    *c = nd->aff_n == 1 ? 1 : in.c;
    *hw = nd->aff_n == 1 ? in.c * in.h * in.w : in.h * in.w;
}

/* ---- forward -------------------------------------------------------------------------- */

/* The weights and bias of a conv followed by the eval batch norm bn: per output channel,
 * a = γ / sqrt(var + ε) scales the weights, and the bias becomes (bias − mean)·a + β. */
static void fold_batch_norm(float *wf, float *bf, const float *w, const float *b,
                            const Node *bn, PerceptNet *net, const ConvShape *s)
{
    const float *mean = net_param(net, bn, PARAM_RUNNING_MEAN);
    const float *var = net_param(net, bn, PARAM_RUNNING_VAR);
    const float *gamma = net_param(net, bn, PARAM_WEIGHT), *beta = net_param(net, bn, PARAM_BIAS);
    const size_t per = (size_t)s->cin * s->k * s->k;
    for (int c = 0; c < s->cout; c++) {
        double a = (gamma ? gamma[c] : 1.0) / sqrt((double)var[c] + bn->eps);
        for (size_t j = 0; j < per; j++)
            wf[c * per + j] = (float)(w[c * per + j] * a);
        bf[c] = (float)(((b ? b[c] : 0.0) - mean[c]) * a + (beta ? beta[c] : 0.0));
    }
}

/* What the conv or norm nd does to its output for the add and ReLU fused into it. */
static Epilogue node_epilogue(PerceptNet *net, const Node *nd)
{
    return (Epilogue){nd->ep_add == NO_NODE ? NULL : net_act(net, nd->ep_add), nd->ep_relu};
}

static int cpu_forward(PerceptNet *net, const Node *nd)
{
    if (nd->fused_into >= 0)
        return 0; /* computed by the node it is fused into */
    const Epilogue epi = node_epilogue(net, nd);
    const Epilogue *ep = epi.add || epi.relu ? &epi : NULL;
    Shape in = in_shape(net, nd);
    float *out = out_of(net, nd), *x = in_of(net, nd, 0), *saved = saved_of(net, nd);
    float *w = net_param(net, nd, PARAM_WEIGHT), *b = net_param(net, nd, PARAM_BIAS);
    size_t n = shape_numel(nd->out);
    int hw = in.h * in.w;
    switch (nd->op) {
    case OP_CONV2D: {
        ConvShape s = conv_shape(net, nd);
        float *work = net->plan.work;
        if (nd->in_up) /* the upsampling folded into this conv: read what it would read */
            x = net_act(net, net->nodes[nd->in[0]].in[0]);
        if (nd->ep_bn >= 0) { /* the weights and bias with the batch norm after them */
            work += conv2d_scratch_floats(&s);
            fold_batch_norm(work, work + (size_t)s.cout * s.cin * s.k * s.k, w, b,
                            &net->nodes[nd->ep_bn], net, &s);
            w = work;
            b = work + (size_t)s.cout * s.cin * s.k * s.k;
            work = net->plan.work;
        }
        conv2d_forward(out, x, w, b, work, &s, ep);
        break;
    }
    case OP_CONV_TRANSPOSE2D: {
        ConvTShape s = convt_shape(net, nd);
        conv_transpose2d_forward(out, x, w, b, net->plan.work, &s);
        break;
    }
    case OP_UPSAMPLE_NEAREST:
        upsample_nearest_forward(out, x, in.n, in.c, in.h, in.w, nd->factor);
        break;
    case OP_PIXEL_SHUFFLE:
        pixel_shuffle_forward(out, x, in.n, nd->out.c, in.h, in.w, nd->factor);
        break;
    case OP_INSTANCE_NORM: {
        float *stats = net->norm_stats + nd->stats_off; /* mean[c], rstd[c] */
        if (net->norm_fixed) {
            for (int i = 0; i < in.n; i++) {
                size_t at = (size_t)i * in.c * hw;
                Epilogue image = {epi.add ? epi.add + at : NULL, epi.relu};
                instance_norm_apply(out + at, x + at, stats, stats + in.c, w, b, 1, in.c, hw,
                                    ep ? &image : NULL);
            }
            break;
        }
        instance_norm_forward(out, saved, saved + in.n * in.c, x, w, b, in.n, in.c, hw, nd->eps,
                              ep);
        memcpy(stats, saved, sizeof(float) * in.c);
        memcpy(stats + in.c, saved + in.n * in.c, sizeof(float) * in.c);
        break;
    }
    case OP_BATCH_NORM:
        if (net->plan.training)
            batch_norm_forward_train(out, saved, saved + in.c, net_param(net, nd, PARAM_RUNNING_MEAN),
                                     net_param(net, nd, PARAM_RUNNING_VAR), x, w, b, in.n, in.c,
                                     hw, nd->eps, nd->momentum);
        else
            batch_norm_forward_eval(out, x, net_param(net, nd, PARAM_RUNNING_MEAN),
                                    net_param(net, nd, PARAM_RUNNING_VAR), w, b, in.n, in.c, hw,
                                    nd->eps, ep);
        break;
    case OP_RELU:
        relu_forward(out, x, n);
        break;
    case OP_LEAKY_RELU:
        leaky_relu_forward(out, x, n, nd->alpha);
        break;
    case OP_TANH:
        tanh_forward(out, x, n);
        break;
    case OP_SCALED_TANH:
        scaled_tanh_forward(out, x, n, nd->scale, nd->shift);
        break;
    case OP_SIGMOID:
        sigmoid_forward(out, x, n);
        break;
    case OP_COS:
        cos_forward(out, x, n, nd->scale);
        break;
    case OP_ADD:
        add_forward(out, x, in_of(net, nd, 1), n);
        break;
    case OP_CONCAT: {
        const float *ins[NODE_MAX_IN];
        int cs[NODE_MAX_IN];
        for (int j = 0; j < nd->n_in; j++) {
            ins[j] = in_of(net, nd, j);
            cs[j] = net_in_shape(net, nd, j).c;
        }
        concat_forward(out, ins, cs, nd->n_in, in.n, hw);
        break;
    }
    case OP_AVG_POOL: {
        PoolShape s = pool_shape(net, nd);
        avg_pool_forward(out, x, &s);
        break;
    }
    case OP_MAX_POOL: {
        PoolShape s = pool_shape(net, nd);
        max_pool_forward(out, (int32_t *)saved, x, &s);
        break;
    }
    case OP_GLOBAL_AVG_POOL:
        global_avg_pool_forward(out, x, in.n, in.c, hw);
        break;
    case OP_LINEAR:
        linear_forward(out, x, w, b, in.n, nd->cin, nd->cout);
        break;
    case OP_RESHAPE:
        memcpy(out, x, n * sizeof(float));
        break;
    case OP_CHANNEL_AFFINE: {
        int c, plane;
        affine_dims(nd, in, &c, &plane);
        channel_affine_forward(out, x, nd->aff_scale, nd->aff_shift, in.n, c, plane);
        break;
    }
    case OP_DROPOUT:
        if (net->plan.training && nd->p > 0)
            dropout_forward(out, saved, x, n, nd->p, node_seed(net, nd));
        else
            memcpy(out, x, n * sizeof(float));
        break;
    case OP_BINARY:
        binary_forward(out, x, n, nd->threshold, nd->low, nd->high);
        break;
    case OP_REPARAM:
        if (net->plan.training) {
            reparam_forward(out, saved, x, in.n, nd->out.c, hw, node_seed(net, nd));
        } else {
            /* inference decodes the mean: the first half of the channels */
            for (int i = 0; i < in.n; i++)
                memcpy(out + (size_t)i * nd->out.c * hw, x + (size_t)i * in.c * hw,
                       sizeof(float) * nd->out.c * hw);
        }
        break;
    case OP_COUNT:
        break;
    }
    return 0;
}

/* ---- backward ------------------------------------------------------------------------- */

/* Batch norm in eval mode is a fixed per-channel affine map of the input. */
static void batch_norm_backward_eval(float *din, float *dgamma, float *dbeta, const float *dout,
                                     const float *in, const float *rmean, const float *rvar,
                                     const float *gamma, int n, int c, int hw, float eps)
{
    for (int ch = 0; ch < c; ch++) {
        float rstd = 1.0f / sqrtf(rvar[ch] + eps), g = gamma ? gamma[ch] : 1.0f;
        double sg = 0, sb = 0;
        for (int i = 0; i < n; i++) {
            size_t base = ((size_t)i * c + ch) * hw;
            for (int k = 0; k < hw; k++) {
                float d = dout[base + k];
                sb += d;
                sg += (double)d * (in[base + k] - rmean[ch]) * rstd;
                if (din)
                    din[base + k] = d * g * rstd;
            }
        }
        if (dgamma)
            dgamma[ch] += (float)sg;
        if (dbeta)
            dbeta[ch] += (float)sb;
    }
}

static int cpu_backward(PerceptNet *net, const Node *nd, float *const *din)
{
    Shape in = in_shape(net, nd);
    float *dout = net->plan.grads + nd->grad_off;
    float *out = out_of(net, nd), *x = in_of(net, nd, 0), *saved = saved_of(net, nd);
    float *w = net_param(net, nd, PARAM_WEIGHT);
    float *dw = net_param_grad(net, nd, PARAM_WEIGHT), *db = net_param_grad(net, nd, PARAM_BIAS);
    float *dx = din[0];
    size_t n = shape_numel(nd->out);
    int hw = in.h * in.w;
    switch (nd->op) {
    case OP_CONV2D: {
        ConvShape s = conv_shape(net, nd);
        conv2d_backward(dx, dw, db, dout, x, w, net->plan.work, &s);
        return 0;
    }
    case OP_CONV_TRANSPOSE2D: {
        ConvTShape s = convt_shape(net, nd);
        conv_transpose2d_backward(dx, dw, db, dout, x, w, net->plan.work, &s);
        return 0;
    }
    case OP_INSTANCE_NORM:
        instance_norm_backward(dx, dw, db, dout, x, saved, saved + in.n * in.c, w, in.n, in.c,
                               hw);
        return 0;
    case OP_BATCH_NORM:
        if (net->plan.training)
            batch_norm_backward(dx, dw, db, dout, x, saved, saved + in.c, w, in.n, in.c, hw);
        else
            batch_norm_backward_eval(dx, dw, db, dout, x, net_param(net, nd, PARAM_RUNNING_MEAN),
                                     net_param(net, nd, PARAM_RUNNING_VAR), w, in.n, in.c, hw,
                                     nd->eps);
        return 0;
    case OP_LINEAR:
        linear_backward(dx, dw, db, dout, x, w, in.n, nd->cin, nd->cout);
        return 0;
    case OP_ADD:
        for (int j = 0; j < 2; j++)
            if (din[j])
                memcpy(din[j], dout, n * sizeof(float));
        return 0;
    case OP_CONCAT: {
        int cs[NODE_MAX_IN];
        for (int j = 0; j < nd->n_in; j++)
            cs[j] = net_in_shape(net, nd, j).c;
        concat_backward(din, dout, cs, nd->n_in, in.n, hw);
        return 0;
    }
    default:
        break;
    }
    if (!dx)
        return 0; /* the remaining ops have no parameters */
    switch (nd->op) {
    case OP_UPSAMPLE_NEAREST:
        upsample_nearest_backward(dx, dout, in.n, in.c, in.h, in.w, nd->factor);
        break;
    case OP_PIXEL_SHUFFLE:
        pixel_shuffle_backward(dx, dout, in.n, nd->out.c, in.h, in.w, nd->factor);
        break;
    case OP_RELU:
        relu_backward(dx, dout, x, n);
        break;
    case OP_LEAKY_RELU:
        leaky_relu_backward(dx, dout, x, n, nd->alpha);
        break;
    case OP_TANH:
        tanh_backward(dx, dout, out, n);
        break;
    case OP_SCALED_TANH:
        scaled_tanh_backward(dx, dout, out, n, nd->scale, nd->shift);
        break;
    case OP_SIGMOID:
        sigmoid_backward(dx, dout, out, n);
        break;
    case OP_COS:
        cos_backward(dx, dout, x, n, nd->scale);
        break;
    case OP_AVG_POOL: {
        PoolShape s = pool_shape(net, nd);
        avg_pool_backward(dx, dout, &s);
        break;
    }
    case OP_MAX_POOL: {
        PoolShape s = pool_shape(net, nd);
        max_pool_backward(dx, dout, (const int32_t *)saved, &s);
        break;
    }
    case OP_GLOBAL_AVG_POOL:
        global_avg_pool_backward(dx, dout, in.n, in.c, hw);
        break;
    case OP_RESHAPE:
        memcpy(dx, dout, n * sizeof(float));
        break;
    case OP_CHANNEL_AFFINE: {
        int c, plane;
        affine_dims(nd, in, &c, &plane);
        channel_affine_backward(dx, dout, nd->aff_scale, in.n, c, plane);
        break;
    }
    case OP_DROPOUT:
        if (net->plan.training && nd->p > 0)
            dropout_backward(dx, dout, saved, n);
        else
            memcpy(dx, dout, n * sizeof(float));
        break;
    case OP_BINARY:
        binary_backward(dx, dout, n);
        break;
    case OP_REPARAM:
        if (net->plan.training) {
            reparam_backward(dx, dout, x, saved, in.n, nd->out.c, hw);
        } else {
            size_t half = (size_t)nd->out.c * hw;
            for (int i = 0; i < in.n; i++) {
                memcpy(dx + 2 * i * half, dout + i * half, half * sizeof(float));
                memset(dx + 2 * i * half + half, 0, half * sizeof(float));
            }
        }
        break;
    default:
        break;
    }
    return 0;
}

const PerceptBackend percept_backend_cpu = {
    .name = "cpu",
    .alloc = cpu_alloc,
    .release = cpu_release,
    .scratch_floats = cpu_scratch_floats,
    .saved_floats = cpu_saved_floats,
    .forward = cpu_forward,
    .backward = cpu_backward,
    .fuses_epilogues = 1,
};
