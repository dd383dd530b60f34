/* Shapes and memory: a network plans its activation memory once per input size.
 * In eval mode outputs share memory once their last reader has run (first-fit over live
 * buffers), so inference on a tile allocates nothing after the first call and needs far
 * less than the sum of all activations. With gradients every output is kept. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"

#define MAX_DIM (1 << 24)
#define ALIGN_FLOATS 16 /* 64 bytes: keeps every buffer cache-line (and AVX-512) aligned */

static size_t align_up(size_t n) { return (n + ALIGN_FLOATS - 1) / ALIGN_FLOATS * ALIGN_FLOATS; }

static int too_small(const Node *nd, Shape in)
{
    return percept_fail("input of %dx%d is too small for node '%s' (%s)", in.w, in.h, nd->name,
                        op_names[nd->op]);
}

static int infer_node(const PerceptNet *net, const Node *nd, Shape *out)
{
    Shape in = nd->in[0] == INPUT_NODE ? net->plan.in : net->nodes[nd->in[0]].out;
    Shape o = in;
    switch (nd->op) {
    case OP_CONV2D:
        if (in.c != nd->cin)
            goto channels;
        if (nd->reflect && (nd->pad >= in.h || nd->pad >= in.w))
            return too_small(nd, in);
        o.c = nd->cout;
        o.h = (in.h + 2 * nd->pad - nd->k) / nd->stride + 1;
        o.w = (in.w + 2 * nd->pad - nd->k) / nd->stride + 1;
        if (in.h + 2 * nd->pad < nd->k || in.w + 2 * nd->pad < nd->k)
            return too_small(nd, in);
        break;
    case OP_CONV_TRANSPOSE2D:
        if (in.c != nd->cin)
            goto channels;
        o.c = nd->cout;
        o.h = (in.h - 1) * nd->stride - 2 * nd->pad + nd->k + nd->output_pad;
        o.w = (in.w - 1) * nd->stride - 2 * nd->pad + nd->k + nd->output_pad;
        if (o.h < 1 || o.w < 1)
            return too_small(nd, in);
        break;
    case OP_UPSAMPLE_NEAREST:
        o.h = in.h * nd->factor;
        o.w = in.w * nd->factor;
        break;
    case OP_PIXEL_SHUFFLE:
        if (in.c % (nd->factor * nd->factor))
            return percept_fail("node '%s' (pixel_shuffle): %d channels are not a multiple of "
                                "%d", nd->name, in.c, nd->factor * nd->factor);
        o.c = in.c / (nd->factor * nd->factor);
        o.h = in.h * nd->factor;
        o.w = in.w * nd->factor;
        break;
    case OP_INSTANCE_NORM:
    case OP_BATCH_NORM:
        if (in.c != nd->cout)
            goto channels;
        break;
    case OP_ADD:
    case OP_CONCAT:
        for (int j = 1; j < nd->n_in; j++) {
            Shape b = net_in_shape(net, nd, j);
            if (b.n != in.n || b.h != in.h || b.w != in.w || (nd->op == OP_ADD && b.c != in.c))
                return percept_fail("node '%s' (%s): input shapes (%d,%d,%d,%d) and "
                                    "(%d,%d,%d,%d) do not match", nd->name, op_names[nd->op],
                                    in.n, in.c, in.h, in.w, b.n, b.c, b.h, b.w);
            if (nd->op == OP_CONCAT)
                o.c += b.c;
        }
        break;
    case OP_AVG_POOL:
    case OP_MAX_POOL:
        if (in.h + 2 * nd->pad < nd->k || in.w + 2 * nd->pad < nd->k)
            return too_small(nd, in);
        o.h = (in.h + 2 * nd->pad - nd->k) / nd->stride + 1;
        o.w = (in.w + 2 * nd->pad - nd->k) / nd->stride + 1;
        break;
    case OP_GLOBAL_AVG_POOL:
        o.h = o.w = 1;
        break;
    case OP_LINEAR:
        if ((size_t)in.c * in.h * in.w != (size_t)nd->cin)
            return percept_fail("node '%s' (linear): expects %d input features, got %d×%d×%d "
                                "(the network is sized for another input size)", nd->name,
                                nd->cin, in.c, in.h, in.w);
        o.c = nd->cout;
        o.h = o.w = 1;
        break;
    case OP_RESHAPE:
        if ((size_t)in.c * in.h * in.w != (size_t)nd->rc * nd->rh * nd->rw)
            return percept_fail("node '%s' (reshape): cannot reshape %d×%d×%d to %d×%d×%d",
                                nd->name, in.c, in.h, in.w, nd->rc, nd->rh, nd->rw);
        o.c = nd->rc;
        o.h = nd->rh;
        o.w = nd->rw;
        break;
    case OP_CHANNEL_AFFINE:
        if (nd->aff_n != 1 && nd->aff_n != in.c)
            goto channels;
        break;
    case OP_REPARAM:
        if (in.c % 2)
            return percept_fail("node '%s' (reparam): needs an even channel count (mean and "
                                "log-variance), got %d", nd->name, in.c);
        o.c = in.c / 2;
        break;
    default:
        break;
    }
    if (o.h > MAX_DIM || o.w > MAX_DIM || (double)o.n * o.c * o.h * o.w > 4e12)
        return percept_fail("node '%s': output of %d×%d×%d×%d is too large", nd->name, o.n,
                            o.c, o.h, o.w);
    *out = o;
    return 0;
channels:
    return percept_fail("node '%s' (%s): expects %d channels, got %d", nd->name,
                        op_names[nd->op],
                        nd->op == OP_CHANNEL_AFFINE ? nd->aff_n :
                        nd->op == OP_CONV2D || nd->op == OP_CONV_TRANSPOSE2D ? nd->cin : nd->cout,
                        in.c);
}

int infer_shapes(PerceptNet *net, Shape in)
{
    if (in.h > MAX_DIM || in.w > MAX_DIM || in.n > 65536)
        return percept_fail("input of %d×%d×%d is too large", in.n, in.h, in.w);
    net->plan.in = in;
    for (int i = 0; i < net->n_nodes; i++)
        if (infer_node(net, &net->nodes[i], &net->nodes[i].out))
            return -1;
    return 0;
}

void plan_free(PerceptNet *net)
{
    Plan *pl = &net->plan;
    const PerceptBackend *be = net->backend;
    if (be) {
        be->release(pl->act);
        be->release(pl->saved);
        be->release(pl->work);
        be->release(pl->grads);
        be->release(pl->tmp);
    }
    memset(pl, 0, sizeof *pl);
}

typedef struct { size_t off, size; int until; } Live;

/* Lowest offset where `size` floats fit between the buffers still live at step `now`. */
static size_t first_fit(Live *live, int n_live, int now, size_t size)
{
    size_t off = 0;
    for (;;) {
        int moved = 0;
        for (int j = 0; j < n_live; j++) {
            if (live[j].until < now)
                continue;
            if (off < live[j].off + live[j].size && live[j].off < off + size) {
                off = live[j].off + live[j].size;
                moved = 1;
            }
        }
        if (!moved)
            return off;
    }
}

/* Inference only, on a backend that fuses: a nearest upsampling that only a conv reads is
 * folded into the conv's input gather (in_up), an eval batch norm that is the only reader
 * of a conv into the conv's weights (ep_bn), and each add or ReLU that is the only
 * reader of a conv or norm (or of a node already folded into one) is folded into it as an
 * epilogue (graph.h: fused_into, ep_add, ep_relu): the add first, and only with an operand
 * computed before the conv, then the ReLU. Without gradients nothing reads the conv's own
 * output. */
static void fuse_for_inference(PerceptNet *net, int grad)
{
    const int n = net->n_nodes;
    for (int i = 0; i < n; i++) {
        net->nodes[i].fused_into = -1;
        net->nodes[i].ep_add = NO_NODE;
        net->nodes[i].ep_relu = 0;
        net->nodes[i].ep_bn = -1;
        net->nodes[i].in_up = 0;
    }
    if (grad || !net->backend->fuses_epilogues || n < 1)
        return;
    int *readers = calloc(n, sizeof *readers);
    if (!readers)
        return; /* no fusion is always correct */
    for (int i = 0; i < n; i++)
        for (int j = 0; j < net->nodes[i].n_in; j++)
            if (net->nodes[i].in[j] != INPUT_NODE)
                readers[net->nodes[i].in[j]]++;
    for (int i = 0; i < n; i++) {
        Node *nd = &net->nodes[i];
        if (nd->op == OP_CONV2D) {
            int q = nd->in[0];
            Node *qd = q == INPUT_NODE ? NULL : &net->nodes[q];
            if (qd && qd->op == OP_UPSAMPLE_NEAREST && readers[q] == 1 && q != net->output) {
                nd->in_up = qd->factor;
                qd->fused_into = i;
            }
            continue;
        }
        if (nd->op == OP_BATCH_NORM && !net->training) {
            int q = nd->in[0];
            Node *qd = q == INPUT_NODE ? NULL : &net->nodes[q];
            if (qd && qd->op == OP_CONV2D && readers[q] == 1 && q != net->output &&
                qd->ep_bn < 0) {
                qd->ep_bn = i;
                nd->fused_into = q;
            }
            continue;
        }
        if ((nd->op != OP_RELU && nd->op != OP_ADD) || nd->n_in > 2)
            continue;
        for (int j = 0; j < nd->n_in; j++) {
            int q = nd->in[j];
            if (q == INPUT_NODE || readers[q] != 1 || q == net->output)
                continue;
            int p = net->nodes[q].fused_into >= 0 ? net->nodes[q].fused_into : q;
            Node *pd = &net->nodes[p];
            int norm_or_conv = pd->op == OP_CONV2D || pd->op == OP_INSTANCE_NORM ||
                               (pd->op == OP_BATCH_NORM && !net->training);
            if (!norm_or_conv || pd->ep_relu)
                continue;
            if (nd->op == OP_ADD) {
                int other = nd->in[1 - j];
                if (pd->ep_add != NO_NODE || (other != INPUT_NODE && other >= p))
                    continue;
                pd->ep_add = other;
            } else {
                pd->ep_relu = 1;
            }
            nd->fused_into = p;
            break;
        }
    }
    free(readers);
}

static size_t assign_offsets(PerceptNet *net, int grad)
{
    int n = net->n_nodes;
    Live *live = calloc(n + 1, sizeof *live);
    size_t top;
    int input_until = -1;
    for (int i = 0; i < n; i++) {
        net->nodes[i].last_use = i == net->output ? n : i;
        for (int j = 0; j < net->nodes[i].n_in; j++) {
            int s = net->nodes[i].in[j];
            if (s == INPUT_NODE)
                input_until = i;
            else
                net->nodes[s].last_use = i;
        }
    }
    fuse_for_inference(net, grad);
    /* a folded upsampling's input is read by its conv, a later node */
    for (int i = 0; i < n; i++) {
        int p = net->nodes[i].fused_into, s = net->nodes[i].in[0];
        if (p > i && s == INPUT_NODE)
            input_until = input_until > p ? input_until : p;
        else if (p > i && net->nodes[s].last_use < p)
            net->nodes[s].last_use = p;
    }
    /* a fused node's buffer is its conv's or norm's, which lives as long as its readers */
    for (int i = 0; i < n; i++) {
        int p = net->nodes[i].fused_into;
        if (p >= 0 && p < i && net->nodes[i].last_use > net->nodes[p].last_use)
            net->nodes[p].last_use = net->nodes[i].last_use;
    }
    top = align_up(shape_numel(net->plan.in));
    if (grad || !live) {
        for (int i = 0; i < n; i++) {
            net->nodes[i].out_off = top;
            top += align_up(shape_numel(net->nodes[i].out));
        }
        free(live);
        return top;
    }
    live[n] = (Live){0, top, input_until};
    for (int i = 0; i < n; i++) {
        if (net->nodes[i].fused_into > i) {
            net->nodes[i].out_off = 0; /* a folded upsampling: never written, never read */
            continue;
        }
        if (net->nodes[i].fused_into >= 0) {
            net->nodes[i].out_off = net->nodes[net->nodes[i].fused_into].out_off;
            continue; /* live[i] stays empty: the buffer is live[fused_into] */
        }
        size_t size = align_up(shape_numel(net->nodes[i].out));
        /* live[0..i-1] are node outputs, live[n] the input; a node's inputs are live now */
        size_t off = first_fit(live, n + 1, i, size);
        live[i] = (Live){off, size, net->nodes[i].last_use};
        net->nodes[i].out_off = off;
        if (off + size > top)
            top = off + size;
    }
    free(live);
    return top;
}

/* Shapes, offsets and arena sizes of a plan for input `in`, in net->plan and the nodes,
 * without allocating anything. */
static int plan_measure(PerceptNet *net, Shape in, int grad)
{
    const PerceptBackend *be = net->backend;
    if (infer_shapes(net, in))
        return -1;
    Plan *pl = &net->plan;
    pl->in = in;
    pl->grad = grad;
    pl->training = net->training;
    pl->act_floats = assign_offsets(net, grad);
    size_t saved = 0, work = 0, grads = 0, tmp = shape_numel(in);
    for (int i = 0; i < net->n_nodes; i++) {
        Node *nd = &net->nodes[i];
        size_t s = align_up(be->saved_floats(net, nd, grad));
        nd->saved_floats = s;
        nd->saved_off = grad ? saved : 0;
        saved = grad ? saved + s : (s > saved ? s : saved);
        size_t w = be->scratch_floats(net, nd);
        if (w > work)
            work = w;
        nd->grad_off = grads;
        if (grad)
            grads += align_up(shape_numel(nd->out));
        if (shape_numel(nd->out) > tmp)
            tmp = shape_numel(nd->out);
    }
    pl->saved_floats = saved;
    pl->work_floats = work;
    pl->grads_floats = grads;
    pl->tmp_floats = grad ? tmp : 0;
    return 0;
}

static size_t plan_floats(const Plan *pl)
{
    return pl->act_floats + pl->saved_floats + pl->work_floats + pl->grads_floats +
           pl->tmp_floats;
}

/* Points *buf at an arena of at least `floats` (at least 1), keeping the one it has when it
 * is large enough; 0, or -1 when the backend cannot allocate. */
static int arena_fit(const PerceptBackend *be, float **buf, size_t *cap, size_t floats)
{
    if (!floats)
        floats = 1;
    if (*buf && *cap >= floats)
        return 0;
    be->release(*buf);
    *cap = 0;
    if (!(*buf = be->alloc(floats)))
        return -1;
    *cap = floats;
    return 0;
}

int plan_build(PerceptNet *net, Shape in, int grad)
{
    const PerceptBackend *be = net->backend;
    Plan *pl = &net->plan;
    pl->valid = 0;
    if (plan_measure(net, in, grad))
        return -1;
    if (net->memory_limit && plan_floats(pl) > net->memory_limit / sizeof(float))
        return percept_fail_oom("out of memory: network '%s' needs %.3g MiB for a %d×%d×%d×%d "
                                "input, over its limit of %.3g MiB", net->name,
                                plan_floats(pl) * 4 / 1048576.0, in.n, in.c, in.h, in.w,
                                net->memory_limit / 1048576.0);
    /* without gradients the gradient arenas are kept, unused, for the next training size */
    if (arena_fit(be, &pl->act, &pl->act_cap, pl->act_floats) ||
        arena_fit(be, &pl->saved, &pl->saved_cap, pl->saved_floats) ||
        arena_fit(be, &pl->work, &pl->work_cap, pl->work_floats) ||
        (grad && (arena_fit(be, &pl->grads, &pl->grads_cap, pl->grads_floats) ||
                  arena_fit(be, &pl->tmp, &pl->tmp_cap, pl->tmp_floats)))) {
        double mib = (double)plan_floats(pl) * 4 / 1048576.0;
        char why[512]; /* the backend's message, copied: it is the buffer written next */
        snprintf(why, sizeof why, "%s", percept_error());
        plan_free(net);
        return percept_fail_oom("out of memory: network '%s' needs %.*f %s for a %d×%d×%d×%d "
                                "input (%s)", net->name, mib >= 1024 ? 2 : 1,
                                mib >= 1024 ? mib / 1024 : mib, mib >= 1024 ? "GiB" : "MiB",
                                in.n, in.c, in.h, in.w, why);
    }
    pl->valid = 1;
    return 0;
}

/* ---- shape queries ---------------------------------------------------------------- */

size_t percept_net_memory_bytes(PerceptNet *net, int h, int w)
{
    Plan *pl = &net->plan;
    Shape keep = pl->in;
    int keep_grad = pl->grad, valid = pl->valid;
    size_t bytes = 0;
    if (h >= 1 && w >= 1 &&
        !plan_measure(net, (Shape){1, net->input_channels, h, w}, net->grad || net->training))
        bytes = plan_floats(pl) * sizeof(float);
    /* the nodes' offsets describe the measured size now: put the allocated plan's back */
    if (valid)
        plan_measure(net, keep, keep_grad);
    else
        pl->in = keep;
    return bytes;
}

int percept_net_alignment(const PerceptNet *net)
{
    double *jump = malloc(sizeof(double) * net->n_nodes), most = 1;
    if (!jump)
        return percept_fail("out of memory");
    for (int i = 0; i < net->n_nodes; i++) {
        const Node *nd = &net->nodes[i];
        double j = nd->in[0] == INPUT_NODE ? 1 : jump[nd->in[0]];
        switch (nd->op) {
        case OP_CONV2D:
        case OP_AVG_POOL:
        case OP_MAX_POOL:
            j *= nd->stride;
            break;
        case OP_CONV_TRANSPOSE2D:
            j /= nd->stride;
            break;
        case OP_UPSAMPLE_NEAREST:
        case OP_PIXEL_SHUFFLE:
            j /= nd->factor;
            break;
        default:
            break;
        }
        jump[i] = j;
        if (j > most)
            most = j;
    }
    free(jump);
    return most > 1 << 20 ? 1 << 20 : (int)ceil(most - 1e-9);
}

int percept_net_output_shape(PerceptNet *net, int n, int h, int w, int *oc, int *oh, int *ow)
{
    Shape keep = net->plan.in;
    Shape in = {n, net->input_channels, h, w};
    if (n < 1 || h < 1 || w < 1)
        return percept_fail("empty input (%d×%d)", w, h);
    int rc = infer_shapes(net, in);
    if (!rc) {
        const Node *o = &net->nodes[net->output];
        if (oc) *oc = o->out.c;
        if (oh) *oh = o->out.h;
        if (ow) *ow = o->out.w;
    }
    /* restore the planned shapes so a later forward on the planned size stays valid */
    if (net->plan.valid)
        infer_shapes(net, keep);
    return rc;
}

/* Receptive field in input pixels (the spatial window; instance-norm statistics are
 * whole-image and handled by the tiler, not by a halo), walking the nodes with (field, jump) per output:
 * a k-tap window at jump j widens the field by (k-1) j; strides multiply the jump and
 * upsampling divides it. Global pooling and linear layers see the whole image. */
int percept_net_receptive_field(const PerceptNet *net)
{
    double *rf = malloc(sizeof(double) * net->n_nodes), *jump = malloc(sizeof(double) * net->n_nodes);
    int result = -1;
    if (!rf || !jump)
        goto out;
    for (int i = 0; i < net->n_nodes; i++) {
        const Node *nd = &net->nodes[i];
        double r = 1, j = 1;
        for (int k = 0; k < nd->n_in; k++) {
            int s = nd->in[k];
            double rs = s == INPUT_NODE ? 1 : rf[s], js = s == INPUT_NODE ? 1 : jump[s];
            if (k == 0 || rs > r || rs < 0)
                r = (r < 0 || rs < 0) ? -1 : rs;
            if (k == 0)
                j = js;
        }
        switch (nd->op) {
        case OP_CONV2D:
        case OP_AVG_POOL:
        case OP_MAX_POOL:
            if (r >= 0)
                r += (nd->k - 1) * j;
            j *= nd->stride;
            break;
        case OP_CONV_TRANSPOSE2D:
            /* an output pixel reads ceil(k / stride) input pixels along each axis */
            if (r >= 0)
                r += ((nd->k + nd->stride - 1) / nd->stride - 1) * j;
            j /= nd->stride;
            break;
        case OP_UPSAMPLE_NEAREST:
        case OP_PIXEL_SHUFFLE:
            j /= nd->factor;
            break;
        case OP_GLOBAL_AVG_POOL:
        case OP_LINEAR:
            r = -1;
            break;
        default:
            break;
        }
        rf[i] = r;
        jump[i] = j;
    }
    result = rf[net->output] < 0 ? -1 : (int)ceil(rf[net->output]);
out:
    free(rf);
    free(jump);
    return result;
}

char *percept_net_summary(PerceptNet *net, int h, int w)
{
    Shape keep = net->plan.in;
    if (infer_shapes(net, (Shape){1, net->input_channels, h, w}))
        return NULL;
    size_t cap = 256 + (size_t)net->n_nodes * 160, len = 0;
    char *buf = malloc(cap);
    if (!buf) {
        percept_fail("out of memory");
        return NULL;
    }
    for (int i = 0; i < net->n_nodes; i++) {
        const Node *nd = &net->nodes[i];
        size_t params = 0;
        for (int s = 0; s < PARAM_SLOTS; s++)
            if (nd->param[s] >= 0 && net->params[nd->param[s]].trainable)
                params += net->params[nd->param[s]].numel;
        len += (size_t)snprintf(buf + len, cap - len, "  %-28.28s %-17s %5d×%-5d×%-4d %9zu\n",
                                nd->name, op_names[nd->op], nd->out.w, nd->out.h, nd->out.c,
                                params);
        if (len >= cap)
            len = cap - 1;
    }
    if (net->plan.valid)
        infer_shapes(net, keep);
    return buf;
}
