/* Convolutions as im2col + sgemm, in chunks of output rows so the column buffer stays
 * bounded however large the image; reflection padding is folded into the index map, so
 * no padded copy of the input is ever made.
 *
 * Threads: chunks run in parallel, each thread doing its own im2col and a single-threaded
 * sgemm on its own column buffer. That keeps each thread's data in its own cache and
 * avoids two thread pools (OpenMP's and OpenBLAS's) spinning against each other, which
 * on two cores cost more than half the time. So percept sets OpenBLAS to one thread. */
#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "layers.h"

/* Column-buffer budget per chunk (floats). Large enough that sgemm sees thousands of
 * columns, small enough to stay cache- and memory-friendly. Tests lower it to force
 * several chunks. */
size_t conv_chunk_cap_floats = (size_t)1 << 20;

/* Weak, so another CBLAS links too (it then keeps its own threading). */
extern void openblas_set_num_threads(int) __attribute__((weak));

static void set_blas_single_threaded(void)
{
    if (openblas_set_num_threads)
        openblas_set_num_threads(1);
}

static void blas_single_threaded(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, set_blas_single_threaded);
}

/* Scratch is sized for this many threads; a run uses at most that many. */
static int max_threads(void)
{
    int t = omp_get_num_procs();
    return t < 1 ? 1 : t > 64 ? 64 : t;
}

static int run_threads(int chunks)
{
    int t = omp_get_max_threads(), m = max_threads();
    t = t < m ? t : m;
    return t < chunks ? t : chunks;
}

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

/* image += col2im(col): the adjoint of im2col. */
static void col2im_add(float *img, const float *col, const Window *g, int r0, int rows)
{
    const int kk = g->k * g->k, ncols = rows * g->wo;
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

typedef struct {
    int rows, chunks; /* output rows per chunk, number of chunks */
} Chunking;

/* Chunks of equal height whose column buffer (krows × rows·wo) fits the budget, and at
 * least one per thread where the image has the rows. */
static Chunking chunking(size_t krows, int wo, int ho)
{
    size_t cap = conv_chunk_cap_floats / (krows * (size_t)wo);
    if (cap < 1)
        cap = 1;
    int chunks = (int)(((size_t)ho + cap - 1) / cap), t = max_threads();
    if (chunks < t)
        chunks = t < ho ? t : ho;
    int rows = (ho + chunks - 1) / chunks;
    return (Chunking){rows, (ho + rows - 1) / rows};
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

/* Per thread: a column buffer, then a private weight-gradient accumulator. */
static size_t per_thread_floats(size_t krows, int wo, int ho, size_t weight_floats)
{
    Chunking c = chunking(krows, wo, ho);
    return krows * (size_t)c.rows * wo + weight_floats;
}

static void add_bias_grad(float *dbias, const float *dout, int n, int cout, int hw)
{
#pragma omp parallel for schedule(static)
    for (int co = 0; co < cout; co++) {
        double acc = 0;
        for (int b = 0; b < n; b++) {
            const float *p = dout + ((size_t)b * cout + co) * hw;
            for (int i = 0; i < hw; i++)
                acc += p[i];
        }
        dbias[co] += (float)acc;
    }
}

/* Adds the threads' private weight gradients into dweight. */
static void reduce_weight_grads(float *dweight, const float *scratch, size_t per, size_t off,
                                size_t count, int threads)
{
#pragma omp parallel for schedule(static)
    for (size_t i = 0; i < count; i++) {
        float acc = 0;
        for (int t = 0; t < threads; t++)
            acc += scratch[(size_t)t * per + off + i];
        dweight[i] += acc;
    }
}

/* ---- convolutions with few output channels ------------------------------------------
 * The last layer of an image network (e.g. 9×9, 32 or 64 channels -> RGB) gives sgemm a
 * matrix of 3 rows: it runs at a fraction of its speed and im2col dominates. Instead, for
 * each kernel row ky, multiply that row's k taps with the padded input at once,
 *     T (k·cout × positions) = Wr[ky] (k·cout × cin) · Xpad[rows + ky] (cin × positions),
 * a better-shaped sgemm with no column buffer, then add each tap's shifted plane of T
 * into the output. */

static int narrow_path(const ConvShape *s)
{
    return s->stride == 1 && s->k > 1 && s->cout <= 8 && s->cin >= 8;
}

typedef struct {
    Chunking ch;
    int wp;            /* padded width */
    size_t xpad, taps; /* per-thread floats: padded input rows, one kernel row's products */
} NarrowPlan;

static NarrowPlan narrow_plan(const ConvShape *s)
{
    NarrowPlan p;
    p.wp = s->w + 2 * s->pad;
    /* a larger budget than im2col's: a chunk re-reads k-1 halo rows, so it should be tall */
    size_t keep = conv_chunk_cap_floats;
    conv_chunk_cap_floats *= 4;
    p.ch = chunking((size_t)s->cin + (size_t)s->k * s->cout, p.wp, s->hout);
    conv_chunk_cap_floats = keep;
    p.xpad = (size_t)s->cin * (p.ch.rows + s->k - 1) * p.wp;
    p.taps = (size_t)s->k * s->cout * p.ch.rows * p.wp;
    return p;
}

static size_t narrow_scratch_floats(const ConvShape *s)
{
    NarrowPlan p = narrow_plan(s);
    return (size_t)s->k * s->k * s->cout * s->cin + (size_t)max_threads() * (p.xpad + p.taps);
}

/* rows [r0, r0 + nrows) of the zero- or reflection-padded input, each wp wide */
static void pad_rows(float *dst, const float *x, const ConvShape *s, int wp, int r0, int nrows)
{
    const int reflect = s->pad_mode == PAD_REFLECT;
    for (int c = 0; c < s->cin; c++) {
        const float *plane = x + (size_t)c * s->h * s->w;
        for (int r = 0; r < nrows; r++) {
            float *d = dst + ((size_t)c * nrows + r) * wp;
            int iy = source_index(r0 + r - s->pad, s->h, reflect);
            if (iy < 0) {
                memset(d, 0, sizeof(float) * wp);
                continue;
            }
            const float *src = plane + (size_t)iy * s->w;
            for (int x0 = 0; x0 < s->pad; x0++) {
                int l = source_index(x0 - s->pad, s->w, reflect);
                int rr = source_index(s->w + x0, s->w, reflect);
                d[x0] = l < 0 ? 0.0f : src[l];
                d[s->pad + s->w + x0] = rr < 0 ? 0.0f : src[rr];
            }
            memcpy(d + s->pad, src, sizeof(float) * s->w);
        }
    }
}

static void conv2d_forward_narrow(float *out, const float *in, const float *weight,
                                  const float *bias, float *scratch, const ConvShape *s)
{
    const NarrowPlan p = narrow_plan(s);
    const int k = s->k, kk = k * k, hw_out = s->hout * s->wout, cout = s->cout;
    float *wr = scratch; /* [ky][kx][co] rows of cin weights */
    float *threads_area = scratch + (size_t)kk * cout * s->cin;
    for (int t = 0; t < kk; t++)
        for (int co = 0; co < cout; co++)
            for (int ci = 0; ci < s->cin; ci++)
                wr[((size_t)t * cout + co) * s->cin + ci] = weight[((size_t)co * s->cin + ci) * kk + t];
    for (int b = 0; b < s->n; b++) {
        const float *x = in + (size_t)b * s->cin * s->h * s->w;
        float *y = out + (size_t)b * cout * hw_out;
#pragma omp parallel for schedule(dynamic) num_threads(run_threads(p.ch.chunks))
        for (int c = 0; c < p.ch.chunks; c++) {
            int r0 = c * p.ch.rows, nr = s->hout - r0 < p.ch.rows ? s->hout - r0 : p.ch.rows;
            int span_rows = nr + k - 1, cols = nr * p.wp;
            float *xpad = threads_area + (size_t)omp_get_thread_num() * (p.xpad + p.taps);
            float *taps = xpad + p.xpad;
            pad_rows(xpad, x, s, p.wp, r0, span_rows);
            for (int co = 0; co < cout; co++)
                for (int r = 0; r < nr; r++) {
                    float *dst = y + (size_t)co * hw_out + (size_t)(r0 + r) * s->wout;
                    float v = bias ? bias[co] : 0.0f;
                    for (int i = 0; i < s->wout; i++)
                        dst[i] = v;
                }
            for (int ky = 0; ky < k; ky++) {
                /* the products of kernel row ky with input rows ky .. ky + nr */
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, k * cout, cols, s->cin,
                            1.0f, wr + (size_t)ky * k * cout * s->cin, s->cin,
                            xpad + (size_t)ky * p.wp, span_rows * p.wp, 0.0f, taps, cols);
                for (int kx = 0; kx < k; kx++)
                    for (int co = 0; co < cout; co++)
                        for (int r = 0; r < nr; r++) {
                            float *dst = y + (size_t)co * hw_out + (size_t)(r0 + r) * s->wout;
                            const float *src = taps + ((size_t)kx * cout + co) * cols +
                                               (size_t)r * p.wp + kx;
                            for (int i = 0; i < s->wout; i++)
                                dst[i] += src[i];
                        }
            }
        }
    }
}

/* ---- conv2d -------------------------------------------------------------------------- */

void conv2d_shape(ConvShape *s)
{
    s->hout = (s->h + 2 * s->pad - s->k) / s->stride + 1;
    s->wout = (s->w + 2 * s->pad - s->k) / s->stride + 1;
}

size_t conv2d_scratch_floats(const ConvShape *s)
{
    size_t K = (size_t)s->cin * s->k * s->k;
    size_t col = is_pointwise(s) ? 0 : K;
    size_t im2col = (size_t)max_threads() * per_thread_floats(col ? col : 1, s->wout, s->hout,
                                                              (size_t)s->cout * K);
    size_t narrow = narrow_path(s) ? narrow_scratch_floats(s) : 0;
    return im2col > narrow ? im2col : narrow;
}

void conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                    float *scratch, const ConvShape *s)
{
    // in (n,cin,h,w), out (n,cout,hout,wout), weight (cout, cin·k·k) as a matrix
    blas_single_threaded();
    if (narrow_path(s)) {
        conv2d_forward_narrow(out, in, weight, bias, scratch, s);
        return;
    }
    const Window g = conv_window(s);
    const int K = s->cin * s->k * s->k, hw_in = s->h * s->w, hw_out = s->hout * s->wout;
    const int point = is_pointwise(s);
    const Chunking ch = chunking(point ? 1 : (size_t)K, s->wout, s->hout);
    const size_t per = per_thread_floats(point ? 1 : (size_t)K, s->wout, s->hout,
                                         (size_t)s->cout * K);
    for (int b = 0; b < s->n; b++) {
        const float *x = in + (size_t)b * s->cin * hw_in;
        float *y = out + (size_t)b * s->cout * hw_out;
#pragma omp parallel for schedule(dynamic) num_threads(run_threads(ch.chunks))
        for (int c = 0; c < ch.chunks; c++) {
            int r0 = c * ch.rows, nr = s->hout - r0 < ch.rows ? s->hout - r0 : ch.rows;
            int ncols = nr * s->wout;
            float *col = scratch + (size_t)omp_get_thread_num() * per;
            float *yc = y + (size_t)r0 * s->wout;
            for (int co = 0; co < s->cout; co++) {
                float v = bias ? bias[co] : 0.0f, *p = yc + (size_t)co * hw_out;
                for (int i = 0; i < ncols; i++)
                    p[i] = v;
            }
            const float *B = x + (size_t)r0 * s->w; /* pointwise: the input is the matrix */
            int ldb = hw_in;
            if (!point) {
                im2col(col, x, &g, r0, nr);
                B = col;
                ldb = ncols;
            }
            cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->cout, ncols, K, 1.0f,
                        weight, K, B, ldb, 1.0f, yc, hw_out);
        }
    }
}

void conv2d_backward(float *din, float *dweight, float *dbias, const float *dout,
                     const float *in, const float *weight, float *scratch, const ConvShape *s)
{
    blas_single_threaded();
    const Window g = conv_window(s);
    const int K = s->cin * s->k * s->k, hw_in = s->h * s->w, hw_out = s->hout * s->wout;
    const int point = is_pointwise(s);
    const Chunking ch = chunking(point ? 1 : (size_t)K, s->wout, s->hout);
    const size_t wsize = (size_t)s->cout * K;
    const size_t per = per_thread_floats(point ? 1 : (size_t)K, s->wout, s->hout, wsize);
    const size_t col_floats = per - wsize;
    const int threads = run_threads(ch.chunks);
    /* chunks two apart never share input rows when a chunk is at least a window high */
    const int step = point || ch.rows * s->stride >= s->k ? 2 : ch.chunks;
    if (dbias)
        add_bias_grad(dbias, dout, s->n, s->cout, hw_out);
    if (din)
        memset(din, 0, sizeof(float) * s->n * s->cin * hw_in);
    for (int t = 0; dweight && t < threads; t++)
        memset(scratch + (size_t)t * per + col_floats, 0, sizeof(float) * wsize);
    for (int b = 0; b < s->n; b++) {
        const float *x = in + (size_t)b * s->cin * hw_in;
        const float *dy = dout + (size_t)b * s->cout * hw_out;
        float *dx = din ? din + (size_t)b * s->cin * hw_in : NULL;
        if (dweight) {
#pragma omp parallel for schedule(dynamic) num_threads(threads)
            for (int c = 0; c < ch.chunks; c++) {
                int r0 = c * ch.rows, nr = s->hout - r0 < ch.rows ? s->hout - r0 : ch.rows;
                int ncols = nr * s->wout;
                float *col = scratch + (size_t)omp_get_thread_num() * per;
                const float *B = x + (size_t)r0 * s->w;
                int ldb = hw_in;
                if (!point) {
                    im2col(col, x, &g, r0, nr);
                    B = col;
                    ldb = ncols;
                }
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->cout, K, ncols, 1.0f,
                            dy + (size_t)r0 * s->wout, hw_out, B, ldb, 1.0f, col + col_floats, K);
            }
        }
        if (!dx)
            continue;
        for (int phase = 0; phase < step && phase < ch.chunks; phase++) {
#pragma omp parallel for schedule(dynamic) num_threads(step == 2 ? threads : 1)
            for (int c = phase; c < ch.chunks; c += step) {
                int r0 = c * ch.rows, nr = s->hout - r0 < ch.rows ? s->hout - r0 : ch.rows;
                int ncols = nr * s->wout;
                const float *dyc = dy + (size_t)r0 * s->wout;
                if (point) {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, ncols, s->cout, 1.0f,
                                weight, K, dyc, hw_out, 0.0f, dx + (size_t)r0 * s->w, hw_in);
                    continue;
                }
                float *col = scratch + (size_t)omp_get_thread_num() * per;
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, ncols, s->cout, 1.0f,
                            weight, K, dyc, hw_out, 0.0f, col, ncols);
                col2im_add(dx, col, &g, r0, nr);
            }
        }
    }
    if (dweight)
        reduce_weight_grads(dweight, scratch, per, col_floats, wsize, threads);
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
    size_t K = (size_t)s->cout * s->k * s->k;
    return (size_t)max_threads() * per_thread_floats(K, s->w, s->h, (size_t)s->cin * K);
}

void conv_transpose2d_forward(float *out, const float *in, const float *weight,
                              const float *bias, float *scratch, const ConvTShape *s)
{
    // in (n,cin,h,w), out (n,cout,hout,wout), weight (cin, cout·k·k) as a matrix
    blas_single_threaded();
    const Window g = convt_window(s);
    const int K = s->cout * s->k * s->k, hw_in = s->h * s->w, hw_out = s->hout * s->wout;
    const Chunking ch = chunking((size_t)K, s->w, s->h);
    const size_t per = per_thread_floats((size_t)K, s->w, s->h, (size_t)s->cin * K);
    /* input chunks scatter into overlapping output rows: run them two apart */
    const int step = ch.rows * s->stride >= s->k ? 2 : ch.chunks;
    memset(out, 0, sizeof(float) * s->n * s->cout * hw_out);
    for (int b = 0; b < s->n; b++) {
        const float *x = in + (size_t)b * s->cin * hw_in;
        float *y = out + (size_t)b * s->cout * hw_out;
        for (int phase = 0; phase < step && phase < ch.chunks; phase++) {
#pragma omp parallel for schedule(dynamic) num_threads(step == 2 ? run_threads(ch.chunks) : 1)
            for (int c = phase; c < ch.chunks; c += step) {
                int r0 = c * ch.rows, nr = s->h - r0 < ch.rows ? s->h - r0 : ch.rows;
                int ncols = nr * s->w;
                float *col = scratch + (size_t)omp_get_thread_num() * per;
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, K, ncols, s->cin, 1.0f,
                            weight, K, x + (size_t)r0 * s->w, hw_in, 0.0f, col, ncols);
                col2im_add(y, col, &g, r0, nr);
            }
        }
        if (bias)
#pragma omp parallel for schedule(static)
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
    blas_single_threaded();
    const Window g = convt_window(s);
    const int K = s->cout * s->k * s->k, hw_in = s->h * s->w, hw_out = s->hout * s->wout;
    const Chunking ch = chunking((size_t)K, s->w, s->h);
    const size_t wsize = (size_t)s->cin * K;
    const size_t per = per_thread_floats((size_t)K, s->w, s->h, wsize), col_floats = per - wsize;
    const int threads = run_threads(ch.chunks);
    if (dbias)
        add_bias_grad(dbias, dout, s->n, s->cout, hw_out);
    for (int t = 0; dweight && t < threads; t++)
        memset(scratch + (size_t)t * per + col_floats, 0, sizeof(float) * wsize);
    for (int b = 0; b < s->n; b++) {
        const float *x = in + (size_t)b * s->cin * hw_in;
        const float *dy = dout + (size_t)b * s->cout * hw_out;
        float *dx = din ? din + (size_t)b * s->cin * hw_in : NULL;
        /* gathers only: every chunk reads dout and writes its own rows of din */
#pragma omp parallel for schedule(dynamic) num_threads(threads)
        for (int c = 0; c < ch.chunks; c++) {
            int r0 = c * ch.rows, nr = s->h - r0 < ch.rows ? s->h - r0 : ch.rows;
            int ncols = nr * s->w;
            float *col = scratch + (size_t)omp_get_thread_num() * per;
            im2col(col, dy, &g, r0, nr);
            if (dx)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->cin, ncols, K, 1.0f,
                            weight, K, col, ncols, 0.0f, dx + (size_t)r0 * s->w, hw_in);
            if (dweight)
                cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->cin, K, ncols, 1.0f,
                            x + (size_t)r0 * s->w, hw_in, col, ncols, 1.0f, col + col_floats, K);
        }
    }
    if (dweight)
        reduce_weight_grads(dweight, scratch, per, col_floats, wsize, threads);
}
