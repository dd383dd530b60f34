/* Convolutions as im2col + sgemm, in chunks of output rows so the column buffer stays
 * bounded however large the image; reflection padding is folded into the index map, so
 * no padded copy of the input is ever made. */
#include <cblas.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"

/* Column-buffer budget per chunk (floats). Large enough that sgemm sees thousands of
 * columns, small enough to stay cache- and memory-friendly. Tests lower it to force
 * several chunks. */
size_t conv_chunk_cap_floats = (size_t)4 << 20;

/* Geometry shared by im2col and col2im: an image of c×h×w read by a k×k window with
 * stride and padding, producing ho×wo positions. */
typedef struct {
    int c, h, w, k, stride, pad, reflect, ho, wo;
} Window;

static inline int reflect_index(int i, int n)
{
    if (i < 0)
        return -i;
    if (i >= n)
        return 2 * n - 2 - i;
    return i;
}

/* Source index along one axis, or -1 for a zero-padded position. */
static inline int source_index(int i, int n, int reflect)
{
    if (i >= 0 && i < n)
        return i;
    return reflect ? reflect_index(i, n) : -1;
}

/* col (c·k·k, rows·wo) <- image rows [r0, r0+rows) of the window positions */
static void im2col(float *col, const float *img, const Window *g, int r0, int rows)
{
    const int kk = g->k * g->k, ncols = rows * g->wo;
#pragma omp parallel for schedule(static)
    for (int row = 0; row < g->c * kk; row++) {
        const int c = row / kk, ky = row % kk / g->k, kx = row % g->k;
        const float *plane = img + (size_t)c * g->h * g->w;
        float *dst = col + (size_t)row * ncols;
        for (int oy = r0; oy < r0 + rows; oy++, dst += g->wo) {
            int iy = source_index(oy * g->stride - g->pad + ky, g->h, g->reflect);
            if (iy < 0) {
                memset(dst, 0, sizeof(float) * g->wo);
                continue;
            }
            const float *src = plane + (size_t)iy * g->w;
            int x0 = kx - g->pad; /* input column of output column 0 */
            if (g->stride == 1) {
                /* interior span is a straight copy; only the borders need mapping */
                int lo = x0 < 0 ? -x0 : 0, hi = g->wo;
                if (x0 + hi > g->w)
                    hi = g->w - x0;
                for (int ox = 0; ox < lo && ox < g->wo; ox++) {
                    int ix = source_index(x0 + ox, g->w, g->reflect);
                    dst[ox] = ix < 0 ? 0.0f : src[ix];
                }
                if (hi > lo)
                    memcpy(dst + lo, src + x0 + lo, sizeof(float) * (hi - lo));
                for (int ox = hi > lo ? hi : lo; ox < g->wo; ox++) {
                    int ix = source_index(x0 + ox, g->w, g->reflect);
                    dst[ox] = ix < 0 ? 0.0f : src[ix];
                }
            } else {
                for (int ox = 0; ox < g->wo; ox++) {
                    int ix = source_index(ox * g->stride + x0, g->w, g->reflect);
                    dst[ox] = ix < 0 ? 0.0f : src[ix];
                }
            }
        }
    }
}

/* image += col2im(col): the adjoint of im2col. Threads own channels, so the scatter
 * (several window positions hit one pixel) never races. */
static void col2im_add(float *img, const float *col, const Window *g, int r0, int rows)
{
    const int kk = g->k * g->k, ncols = rows * g->wo;
#pragma omp parallel for schedule(static)
    for (int c = 0; c < g->c; c++) {
        float *plane = img + (size_t)c * g->h * g->w;
        for (int t = 0; t < kk; t++) {
            const int ky = t / g->k, kx = t % g->k;
            const float *src = col + ((size_t)c * kk + t) * ncols;
            for (int oy = r0; oy < r0 + rows; oy++, src += g->wo) {
                int iy = source_index(oy * g->stride - g->pad + ky, g->h, g->reflect);
                if (iy < 0)
                    continue;
                float *dst = plane + (size_t)iy * g->w;
                for (int ox = 0; ox < g->wo; ox++) {
                    int ix = source_index(ox * g->stride - g->pad + kx, g->w, g->reflect);
                    if (ix >= 0)
                        dst[ix] += src[ox];
                }
            }
        }
    }
}

/* Output rows per chunk so that rows·wo columns of `krows` floats fit the budget. */
static int chunk_rows(size_t krows, int wo, int ho)
{
    size_t rows = conv_chunk_cap_floats / (krows * (size_t)wo);
    if (rows < 1)
        rows = 1;
    return rows > (size_t)ho ? ho : (int)rows;
}

static int is_pointwise(const ConvShape *s)
{
    return s->k == 1 && s->stride == 1 && s->pad == 0;
}

static Window conv_window(const ConvShape *s)
{
    return (Window){s->cin, s->h, s->w, s->k, s->stride, s->pad, s->pad_mode == PAD_REFLECT,
                    s->hout, s->wout};
}

/* ---- conv2d -------------------------------------------------------------------------- */

void conv2d_shape(ConvShape *s)
{
    s->hout = (s->h + 2 * s->pad - s->k) / s->stride + 1;
    s->wout = (s->w + 2 * s->pad - s->k) / s->stride + 1;
}

size_t conv2d_scratch_floats(const ConvShape *s)
{
    if (is_pointwise(s))
        return 0;
    size_t krows = (size_t)s->cin * s->k * s->k;
    return krows * (size_t)chunk_rows(krows, s->wout, s->hout) * s->wout;
}

void conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                    float *scratch, const ConvShape *s)
{
    // in (n,cin,h,w), out (n,cout,hout,wout), weight (cout, cin·k·k) as a matrix
    const Window g = conv_window(s);
    const int K = s->cin * s->k * s->k, hw_out = s->hout * s->wout;
    const int rows = chunk_rows((size_t)K, s->wout, s->hout);
    for (int b = 0; b < s->n; b++) {
        const float *x = in + (size_t)b * s->cin * s->h * s->w;
        float *y = out + (size_t)b * s->cout * hw_out;
        for (int co = 0; co < s->cout; co++) {
            float v = bias ? bias[co] : 0.0f;
            float *p = y + (size_t)co * hw_out;
            for (int i = 0; i < hw_out; i++)
                p[i] = v;
        }
        if (is_pointwise(s)) {
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->cout, hw_out, K, 1.0f,
                        weight, K, x, hw_out, 1.0f, y, hw_out);
            continue;
        }
        for (int r0 = 0; r0 < s->hout; r0 += rows) {
            int nr = s->hout - r0 < rows ? s->hout - r0 : rows, ncols = nr * s->wout;
            im2col(scratch, x, &g, r0, nr);
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->cout, ncols, K, 1.0f,
                        weight, K, scratch, ncols, 1.0f, y + (size_t)r0 * s->wout, hw_out);
        }
    }
}

static void add_bias_grad(float *dbias, const float *dout, int cout, int hw)
{
    for (int co = 0; co < cout; co++) {
        double acc = 0;
        const float *p = dout + (size_t)co * hw;
        for (int i = 0; i < hw; i++)
            acc += p[i];
        dbias[co] += (float)acc;
    }
}

void conv2d_backward(float *din, float *dweight, float *dbias, const float *dout,
                     const float *in, const float *weight, float *scratch, const ConvShape *s)
{
    const Window g = conv_window(s);
    const int K = s->cin * s->k * s->k, hw_out = s->hout * s->wout;
    const int rows = chunk_rows((size_t)K, s->wout, s->hout);
    const size_t in_plane = (size_t)s->cin * s->h * s->w;
    if (din)
        memset(din, 0, sizeof(float) * in_plane * s->n);
    for (int b = 0; b < s->n; b++) {
        const float *x = in + (size_t)b * in_plane;
        const float *dy = dout + (size_t)b * s->cout * hw_out;
        float *dx = din ? din + (size_t)b * in_plane : NULL;
        if (dbias)
            add_bias_grad(dbias, dy, s->cout, hw_out);
        if (is_pointwise(s)) {
            if (dweight)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->cout, K, hw_out, 1.0f,
                            dy, hw_out, x, hw_out, 1.0f, dweight, K);
            if (dx)
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, hw_out, s->cout, 1.0f,
                            weight, K, dy, hw_out, 0.0f, dx, hw_out);
            continue;
        }
        for (int r0 = 0; r0 < s->hout; r0 += rows) {
            int nr = s->hout - r0 < rows ? s->hout - r0 : rows, ncols = nr * s->wout;
            const float *dyc = dy + (size_t)r0 * s->wout;
            if (dweight) {
                im2col(scratch, x, &g, r0, nr);
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->cout, K, ncols, 1.0f,
                            dyc, hw_out, scratch, ncols, 1.0f, dweight, K);
            }
            if (dx) {
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, ncols, s->cout, 1.0f,
                            weight, K, dyc, hw_out, 0.0f, scratch, ncols);
                col2im_add(dx, scratch, &g, r0, nr);
            }
        }
    }
}

/* The oracle builds an explicitly padded copy of each input plane (ReflectionPad2d /
 * zero padding written out on its own), so it shares no indexing code with im2col. */
static float padded_value(const float *plane, int h, int w, int y, int x, int reflect)
{
    if (reflect) {
        y = y < 0 ? -y : y >= h ? 2 * (h - 1) - y : y;
        x = x < 0 ? -x : x >= w ? 2 * (w - 1) - x : x;
    } else if (y < 0 || y >= h || x < 0 || x >= w) {
        return 0.0f;
    }
    return plane[(size_t)y * w + x];
}

void conv2d_forward_reference(float *out, const float *in, const float *weight,
                              const float *bias, const ConvShape *s)
{
    const int reflect = s->pad_mode == PAD_REFLECT;
    for (int b = 0; b < s->n; b++)
        for (int co = 0; co < s->cout; co++)
            for (int oy = 0; oy < s->hout; oy++)
                for (int ox = 0; ox < s->wout; ox++) {
                    double acc = bias ? bias[co] : 0.0;
                    for (int ci = 0; ci < s->cin; ci++) {
                        const float *plane = in + ((size_t)b * s->cin + ci) * s->h * s->w;
                        for (int ky = 0; ky < s->k; ky++)
                            for (int kx = 0; kx < s->k; kx++)
                                acc += (double)padded_value(plane, s->h, s->w,
                                                            oy * s->stride - s->pad + ky,
                                                            ox * s->stride - s->pad + kx, reflect) *
                                       weight[(((size_t)co * s->cin + ci) * s->k + ky) * s->k + kx];
                    }
                    out[(((size_t)b * s->cout + co) * s->hout + oy) * s->wout + ox] = (float)acc;
                }
}

/* ---- transposed convolution: the adjoint of a strided conv --------------------------- */

/* The conv whose backward-data this is: it reads the transposed conv's output (cout
 * channels, hout×wout) and produces its input grid (h×w). */
static Window convt_window(const ConvTShape *s)
{
    return (Window){s->cout, s->hout, s->wout, s->k, s->stride, s->pad, 0, s->h, s->w};
}

void conv_transpose2d_shape(ConvTShape *s)
{
    s->hout = (s->h - 1) * s->stride - 2 * s->pad + s->k + s->output_pad;
    s->wout = (s->w - 1) * s->stride - 2 * s->pad + s->k + s->output_pad;
}

size_t conv_transpose2d_scratch_floats(const ConvTShape *s)
{
    size_t krows = (size_t)s->cout * s->k * s->k;
    return krows * (size_t)chunk_rows(krows, s->w, s->h) * s->w;
}

void conv_transpose2d_forward(float *out, const float *in, const float *weight,
                              const float *bias, float *scratch, const ConvTShape *s)
{
    // in (n,cin,h,w), out (n,cout,hout,wout), weight (cin, cout·k·k) as a matrix
    const Window g = convt_window(s);
    const int K = s->cout * s->k * s->k, hw_in = s->h * s->w, hw_out = s->hout * s->wout;
    const int rows = chunk_rows((size_t)K, s->w, s->h);
    memset(out, 0, sizeof(float) * s->n * s->cout * hw_out);
    for (int b = 0; b < s->n; b++) {
        const float *x = in + (size_t)b * s->cin * hw_in;
        float *y = out + (size_t)b * s->cout * hw_out;
        for (int r0 = 0; r0 < s->h; r0 += rows) {
            int nr = s->h - r0 < rows ? s->h - r0 : rows, ncols = nr * s->w;
            cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, ncols, s->cin, 1.0f, weight,
                        K, x + (size_t)r0 * s->w, hw_in, 0.0f, scratch, ncols);
            col2im_add(y, scratch, &g, r0, nr);
        }
        if (bias)
            for (int co = 0; co < s->cout; co++) {
                float *p = y + (size_t)co * hw_out;
                for (int i = 0; i < hw_out; i++)
                    p[i] += bias[co];
            }
    }
}

void conv_transpose2d_backward(float *din, float *dweight, float *dbias, const float *dout,
                               const float *in, const float *weight, float *scratch,
                               const ConvTShape *s)
{
    const Window g = convt_window(s);
    const int K = s->cout * s->k * s->k, hw_in = s->h * s->w, hw_out = s->hout * s->wout;
    const int rows = chunk_rows((size_t)K, s->w, s->h);
    for (int b = 0; b < s->n; b++) {
        const float *x = in + (size_t)b * s->cin * hw_in;
        const float *dy = dout + (size_t)b * s->cout * hw_out;
        float *dx = din ? din + (size_t)b * s->cin * hw_in : NULL;
        if (dbias)
            add_bias_grad(dbias, dy, s->cout, hw_out);
        for (int r0 = 0; r0 < s->h; r0 += rows) {
            int nr = s->h - r0 < rows ? s->h - r0 : rows, ncols = nr * s->w;
            im2col(scratch, dy, &g, r0, nr);
            if (dx)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->cin, ncols, K, 1.0f,
                            weight, K, scratch, ncols, 0.0f, dx + (size_t)r0 * s->w, hw_in);
            if (dweight)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->cin, K, ncols, 1.0f,
                            x + (size_t)r0 * s->w, hw_in, scratch, ncols, 1.0f, dweight, K);
        }
    }
}
