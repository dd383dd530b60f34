/* Fully connected layers and their gradients: twins of linear_forward and linear_backward
 * (core/layers/combine.c, an sgemm there). percept's linear layers are small heads (a
 * discriminator's, a VAE's), so each output is one thread's dot product in double, a gather
 * in a fixed order: no atomics, the same result on every run. in is (n, fin), the weights
 * (fout, fin), out (n, fout). */
#include "common.cuh"
#include "kernels-half.h"
#include "kernels.h"

template <typename T>
__global__ void linear_k(T *out, const T *in, const float *w, const float *b, int fin, int fout,
                         size_t total)
{
    FOR_EACH(i, total) {
        const int o = (int)(i % fout);
        const T *x = in + i / fout * fin;
        const float *wo = w + (size_t)o * fin;
        double s = b ? b[o] : 0.0;
        for (int k = 0; k < fin; k++)
            s += (double)load_f(x + k) * wo[k];
        store_f(out + i, (float)s);
    }
}

void gpu_linear(float *out, const float *in, const float *w, const float *b, int n, int fin,
                int fout)
{
    const size_t total = (size_t)n * fout;
    if (total)
        LAUNCH(linear_k<float>, blocks(total), out, in, w, b, fin, fout, total);
}

void gpu_linear(__half *out, const __half *in, const float *w, const float *b, int n, int fin,
                int fout)
{
    const size_t total = (size_t)n * fout;
    if (total)
        LAUNCH(linear_k<__half>, blocks(total), out, in, w, b, fin, fout, total);
}

/* din[b, k] = Σ_o dout[b, o]·w[o, k] (assigned) */
__global__ void linear_din_k(float *din, const float *dout, const float *w, int fin, int fout,
                             size_t total)
{
    FOR_EACH(i, total) {
        const int k = (int)(i % fin);
        const float *d = dout + i / fin * fout;
        double s = 0;
        for (int o = 0; o < fout; o++)
            s += (double)d[o] * w[(size_t)o * fin + k];
        din[i] = (float)s;
    }
}

/* dw[o, k] += Σ_b dout[b, o]·in[b, k]; db[o] += Σ_b dout[b, o] with k = 0's thread */
__global__ void linear_dw_k(float *dw, float *db, const float *dout, const float *in, int n,
                            int fin, int fout, size_t total)
{
    FOR_EACH(i, total) {
        const int o = (int)(i / fin), k = (int)(i % fin);
        double s = 0, sb = 0;
        for (int b = 0; b < n; b++) {
            const float d = dout[(size_t)b * fout + o];
            s += (double)d * in[(size_t)b * fin + k];
            sb += d;
        }
        if (dw)
            dw[i] += (float)s;
        if (db && k == 0)
            db[o] += (float)sb;
    }
}

void gpu_linear_backward(float *din, float *dw, float *db, const float *dout, const float *in,
                         const float *w, int n, int fin, int fout)
{
    const size_t inputs = (size_t)n * fin, weights = (size_t)fout * fin;
    if (din && inputs)
        LAUNCH(linear_din_k, blocks(inputs), din, dout, w, fin, fout, inputs);
    if ((dw || db) && weights)
        LAUNCH(linear_dw_k, blocks(weights), dw, db, dout, in, n, fin, fout, weights);
}
