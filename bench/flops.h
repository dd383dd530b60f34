/* What the forward benchmarks (cpu-forward, gpu-forward) count and feed: FLOPs of a
 * planned network and the input percept and PyTorch both see. Needs graph.h first. */
#ifndef PERCEPT_BENCH_FLOPS_H
#define PERCEPT_BENCH_FLOPS_H

/* 2 × multiply-adds of one node at its planned shapes; 0 for the ops not counted. */
static inline double node_flops(PerceptNet *net, const Node *nd)
{
    Shape o = nd->out;
    if (nd->op == OP_CONV2D)
        return 2.0 * o.n * o.c * o.h * o.w * nd->cin * nd->k * nd->k;
    if (nd->op == OP_CONV_TRANSPOSE2D) {
        Shape in = net_in_shape(net, nd, 0);
        return 2.0 * in.n * in.c * in.h * in.w * nd->cout * nd->k * nd->k;
    }
    if (nd->op == OP_LINEAR)
        return 2.0 * o.n * nd->cin * nd->cout;
    return 0;
}

static inline double net_gflops(PerceptNet *net)
{
    double f = 0;
    for (int i = 0; i < net->n_nodes; i++)
        f += node_flops(net, &net->nodes[i]);
    return f / 1e9;
}

/* The input both percept and PyTorch see: a fixed hash of the index, in [0, 1). */
static inline void fill_input(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((i * 2654435761u) & 0xffffffffu) / 4294967296.0f;
}

#endif
