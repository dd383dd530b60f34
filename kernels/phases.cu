/* A convolution with few channels on one side, run as a phased one (kernels.h: GpuPhased):
 * the layout maps between it and the plain convolution, forward and backward. Their CPU twin
 * is the convolution itself: tests/test-cuda-emulated.c composes them around a phased
 * convolution and compares with core/layers/conv.c. Each is a gather, one thread per element
 * written: no atomics, the same sums in the same order on every run. */
#include "common.cuh"
#include "kernels-half.h"
#include "kernels.h"

/* out (n, cinp, hi, wi): channel ci·r² + s·r + t at (I, J) is the padded input's pixel
 * (r·I + s, r·J + t); zero for the channels added to round cinp up and beyond the padding.
 * The input may be read through a nearest upsampling (d.up). */
template <typename T>
__global__ void phase_input_k(T *out, const T *in, GpuPhased d, size_t total)
{
    const int rr = d.r * d.r, hp = d.h + 2 * d.pad, wp = d.w + 2 * d.pad;
    const int up = d.up > 1 ? d.up : 1, hs = d.h / up, ws = d.w / up;
    FOR_EACH(i, total) {
        const int J = (int)(i % d.wi), I = (int)(i / d.wi % d.hi);
        const int cp = (int)(i / ((size_t)d.wi * d.hi) % d.cinp);
        const size_t b = i / ((size_t)d.wi * d.hi * d.cinp);
        const int ci = cp / rr, y = d.r * I + cp / d.r % d.r, x = d.r * J + cp % d.r;
        float v = 0;
        if (ci < d.cin && y < hp && x < wp) {
            int sy = y - d.pad, sx = x - d.pad;
            if (d.reflect) {
                sy = reflect_source(sy, d.h);
                sx = reflect_source(sx, d.w);
            }
            if (sy >= 0 && sy < d.h && sx >= 0 && sx < d.w)
                v = load_f(in + ((b * d.cin + ci) * hs + sy / up) * ws + sx / up);
        }
        store_f(out + i, v);
    }
}

/* out (coutp, cinp, kp, kp): output channel co·r² + p·r + q reads input channel
 * ci·r² + s·r + t at tap (A, B) with the weight w[co, ci, r·A + s − p, r·B + t − q], zero
 * where that tap is outside the kernel or a channel is padding */
template <typename T>
__global__ void phase_weights_k(T *out, const float *w, GpuPhased d, size_t total)
{
    const int rr = d.r * d.r;
    FOR_EACH(i, total) {
        const int B = (int)(i % d.kp), A = (int)(i / d.kp % d.kp);
        const int cp = (int)(i / ((size_t)d.kp * d.kp) % d.cinp);
        const int op = (int)(i / ((size_t)d.kp * d.kp * d.cinp));
        const int co = op / rr, ci = cp / rr;
        const int a = d.r * A + cp / d.r % d.r - op / d.r % d.r;
        const int bb = d.r * B + cp % d.r - op % d.r;
        float v = 0;
        if (co < d.cout && ci < d.cin && a >= 0 && a < d.k && bb >= 0 && bb < d.k)
            v = w[(((size_t)co * d.cin + ci) * d.k + a) * d.k + bb];
        store_f(out + i, v);
    }
}

/* out (n, cout, hout, wout) from the phased output (n, coutp, ho, wo), made final as
 * gpu_conv_epilogue makes a convolution's: + bias[co], + add, then ReLU (each optional) */
template <typename T>
__global__ void unphase_output_k(T *out, const T *in, const float *bias, const T *add, int relu,
                                 GpuPhased d, size_t total)
{
    const int rr = d.r * d.r;
    FOR_EACH(i, total) {
        const int x = (int)(i % d.wout), y = (int)(i / d.wout % d.hout);
        const int co = (int)(i / ((size_t)d.wout * d.hout) % d.cout);
        const size_t b = i / ((size_t)d.wout * d.hout * d.cout);
        const int op = co * rr + y % d.r * d.r + x % d.r;
        float v = load_f(in + ((b * d.coutp + op) * d.ho + y / d.r) * d.wo + x / d.r);
        if (bias)
            v += bias[co];
        if (add)
            v += load_f(add + i);
        if (relu)
            v = v < 0.0f ? 0.0f : v; /* NaN passes, as relu_forward */
        store_f(out + i, v);
    }
}

/* the output's gradient in the phased layout (n, coutp, ho, wo); zero where no output is */
__global__ void phase_output_grad_k(float *out, const float *dout, GpuPhased d, size_t total)
{
    const int rr = d.r * d.r;
    FOR_EACH(i, total) {
        const int J = (int)(i % d.wo), I = (int)(i / d.wo % d.ho);
        const int op = (int)(i / ((size_t)d.wo * d.ho) % d.coutp);
        const size_t b = i / ((size_t)d.wo * d.ho * d.coutp);
        const int co = op / rr, y = d.r * I + op / d.r % d.r, x = d.r * J + op % d.r;
        out[i] = co < d.cout && y < d.hout && x < d.wout
                     ? dout[((b * d.cout + co) * d.hout + y) * d.wout + x]
                     : 0.0f;
    }
}

/* dw (cout, cin, k, k) += the phased weights' gradient summed over the r² places each weight
 * has there (one per output phase), phases in order */
__global__ void unphase_weights_grad_k(float *dw, const float *dwp, GpuPhased d, size_t total)
{
    const int rr = d.r * d.r;
    FOR_EACH(i, total) {
        const int bb = (int)(i % d.k), a = (int)(i / d.k % d.k);
        const int ci = (int)(i / ((size_t)d.k * d.k) % d.cin);
        const int co = (int)(i / ((size_t)d.k * d.k * d.cin));
        float s = 0;
        for (int p = 0; p < d.r; p++)
            for (int q = 0; q < d.r; q++) {
                const int op = co * rr + p * d.r + q;
                const int cp = ci * rr + (a + p) % d.r * d.r + (bb + q) % d.r;
                s += dwp[(((size_t)op * d.cinp + cp) * d.kp + (a + p) / d.r) * d.kp +
                         (bb + q) / d.r];
            }
        dw[i] += s;
    }
}

/* dx (n, cin, h, w), assigned: the phased input's gradient at every padded pixel that read
 * (y, x) — the centre, and with reflection the border pixels mirrored onto it */
__global__ void phase_input_back_k(float *dx, const float *dxp, GpuPhased d, size_t total)
{
    const int rr = d.r * d.r;
    FOR_EACH(i, total) {
        const int x = (int)(i % d.w), y = (int)(i / d.w % d.h);
        const int ci = (int)(i / ((size_t)d.w * d.h) % d.cin);
        const size_t b = i / ((size_t)d.w * d.h * d.cin);
        int py[3], px[3];
        const int ny = padded_readers(y, d.h, d.pad, d.reflect, py);
        const int nx = padded_readers(x, d.w, d.pad, d.reflect, px);
        float s = 0;
        for (int u = 0; u < ny; u++)
            for (int v = 0; v < nx; v++) {
                const int cp = ci * rr + py[u] % d.r * d.r + px[v] % d.r;
                s += dxp[((b * d.cinp + cp) * d.hi + py[u] / d.r) * d.wi + px[v] / d.r];
            }
        dx[i] = s;
    }
}

template <typename T> static void phase_input(T *out, const T *in, const GpuPhased *d)
{
    size_t total = (size_t)d->n * d->cinp * d->hi * d->wi;
    if (total)
        LAUNCH(phase_input_k<T>, blocks(total), out, in, *d, total);
}

void gpu_phase_input(float *out, const float *in, const GpuPhased *d) { phase_input(out, in, d); }
void gpu_phase_input(__half *out, const __half *in, const GpuPhased *d) { phase_input(out, in, d); }

template <typename T> static void phase_weights(T *out, const float *w, const GpuPhased *d)
{
    size_t total = (size_t)d->coutp * d->cinp * d->kp * d->kp;
    if (total)
        LAUNCH(phase_weights_k<T>, blocks(total), out, w, *d, total);
}

void gpu_phase_weights(float *out, const float *w, const GpuPhased *d)
{
    phase_weights(out, w, d);
}

void gpu_phase_weights(__half *out, const float *w, const GpuPhased *d)
{
    phase_weights(out, w, d);
}

template <typename T>
static void unphase_output(T *out, const T *in, const float *bias, const T *add, int relu,
                           const GpuPhased *d)
{
    size_t total = (size_t)d->n * d->cout * d->hout * d->wout;
    if (total)
        LAUNCH(unphase_output_k<T>, blocks(total), out, in, bias, add, relu, *d, total);
}

void gpu_unphase_output(float *out, const float *in, const float *bias, const float *add,
                        int relu, const GpuPhased *d)
{
    unphase_output(out, in, bias, add, relu, d);
}

void gpu_unphase_output(__half *out, const __half *in, const float *bias, const __half *add,
                        int relu, const GpuPhased *d)
{
    unphase_output(out, in, bias, add, relu, d);
}

void gpu_phase_output_grad(float *out, const float *dout, const GpuPhased *d)
{
    size_t total = (size_t)d->n * d->coutp * d->ho * d->wo;
    if (total)
        LAUNCH(phase_output_grad_k, blocks(total), out, dout, *d, total);
}

void gpu_unphase_weights_grad(float *dw, const float *dwp, const GpuPhased *d)
{
    size_t total = (size_t)d->cout * d->cin * d->k * d->k;
    if (total)
        LAUNCH(unphase_weights_grad_k, blocks(total), dw, dwp, *d, total);
}

void gpu_phase_input_backward(float *dx, const float *dxp, const GpuPhased *d)
{
    size_t total = (size_t)d->n * d->cin * d->h * d->w;
    if (total)
        LAUNCH(phase_input_back_k, blocks(total), dx, dxp, *d, total);
}
