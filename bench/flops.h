/* What the forward benchmarks (cpu-forward, gpu-forward) count and feed: FLOPs of a
 * planned network and the input percept and PyTorch both see. Needs graph.h first. */
#ifndef PERCEPT_BENCH_FLOPS_H
#define PERCEPT_BENCH_FLOPS_H

#include <stdlib.h>
#include <string.h>

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

/* A lower bound on one forward pass's memory traffic: every node that runs (not fused into
 * another) reads its inputs and writes its output once, in elements of elem bytes, and its
 * parameters are read once (float). */
static inline double net_traffic_bytes(PerceptNet *net, size_t elem)
{
    double b = (double)net->params_floats * sizeof(float);
    for (int i = 0; i < net->n_nodes; i++) {
        const Node *nd = &net->nodes[i];
        if (nd->fused_into >= 0)
            continue;
        b += (double)shape_numel(nd->out) * elem;
        for (int j = 0; j < nd->n_in; j++)
            b += (double)shape_numel(net_in_shape(net, nd, j)) * elem;
    }
    return b;
}

/* --ceilings "fp32:T,tf32:T,fp16:T,copy:G" (bench/gpu-ceilings.py: TFLOP/s, GB/s): the value
 * named, or 0 */
static inline double ceiling(const char *spec, const char *name)
{
    size_t len = strlen(name);
    for (const char *p = spec; p && *p; p = strchr(p, ',') ? strchr(p, ',') + 1 : NULL)
        if (!strncmp(p, name, len) && p[len] == ':')
            return atof(p + len + 1);
    return 0;
}

/* The time, ms, a pass of gflop GFLOP and bytes of traffic takes at least at these rates
 * (the larger of the two; 0 when a ceiling is missing) */
static inline double floor_ms(double gflop, double bytes, double tflops, double copy_gbs)
{
    if (!(tflops > 0) || !(copy_gbs > 0))
        return 0;
    const double compute = gflop / tflops, memory = bytes / copy_gbs / 1e6;
    return compute > memory ? compute : memory;
}

/* The input both percept and PyTorch see: a fixed hash of the index, in [0, 1). */
static inline void fill_input(float *x, size_t n)
{
    for (size_t i = 0; i < n; i++)
        x[i] = (float)((i * 2654435761u) & 0xffffffffu) / 4294967296.0f;
}

#endif
