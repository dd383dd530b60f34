/* Convolutions on the CPU: Conv2d (zero or reflection padding) and ConvTranspose2d, with
 * PyTorch's semantics and weight layouts.
 *
 * Forward conv2d takes one of three routes, by shape:
 *  - pointwise (1×1, stride 1, no padding): the input already is the GEMM operand;
 *  - im2col + sgemm, for layers whose GEMM (M = cout, K = cin·k², N = positions) is large
 *    in every dimension, where OpenBLAS's kernel is as fast as this machine goes;
 *  - direct: register-tiled loops over a padded copy of a few input rows, for layers where
 *    that GEMM is skinny (few output channels, like the RGB output layer, or few input
 *    channels, like a 9×9 first layer): sgemm then spends its time packing a column
 *    matrix that is k² times the input, and the direct loops read the input in place.
 * Backward and transposed convolutions are im2col / col2im + sgemm.
 *
 * All of it works on chunks of output rows, so buffers stay bounded however large the
 * image. Padding is folded into the index maps of im2col, col2im and the direct path's
 * row copies, so no padded copy of an image is ever made, and the gradient of a reflected
 * pixel lands on the pixel it was copied from.
 *
 * Threads: OpenMP runs whole chunks (forward) or splits each chunk by channels (backward,
 * transposed), and every sgemm is single-threaded on its own part. Two thread pools
 * (OpenMP's and OpenBLAS's) spinning against each other cost more than half the time on
 * two cores, so percept sets OpenBLAS to one thread. Work is split by index, never by
 * which thread comes first, and no sum is split between threads, so results are the
 * same from run to run. */
#include <cblas.h>
#include <omp.h>
#include <pthread.h>
#include <stdlib.h>
#include <string.h>

#include "conv-direct.h"
#include "layers.h"

/* Buffer floats per thread for a chunk (column matrix or direct-path rows). Large enough
 * that sgemm sees thousands of columns, small enough to stay cache-friendly. Tests lower
 * it (declaring it extern) to force many chunks on small images. */
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

static int min_int(int a, int b)
{
    return a < b ? a : b;
}

static int run_threads(int jobs)
{
    return min_int(min_int(omp_get_max_threads(), max_threads()), jobs < 1 ? 1 : jobs);
}

/* Part i of [0, n) cut into `parts` near-equal ranges. */
static void split(int n, int parts, int i, int *lo, int *hi)
{
    *lo = (int)((long long)n * i / parts);
    *hi = (int)((long long)n * (i + 1) / parts);
}

/* ---- index maps ---------------------------------------------------------------------- */

/* Source of padded position i along an axis of n pixels, or -1 for a zero. Reflection
 * mirrors about the edge pixel without repeating it (ReflectionPad2d: -1 -> 1, n -> n-2);
 * it is only asked for positions less than n away from the edge. */
static inline int source_index(int i, int n, int reflect)
{
    if (i >= 0 && i < n)
        return i;
    if (!reflect)
        return -1;
    return i < 0 ? -i : 2 * n - 2 - i;
}

/* Offsets [*lo, *hi) of x0 + i·stride, i < count, that fall inside [0, n). */
static void inside_span(int n, int x0, int stride, int count, int *lo, int *hi)
{
    *lo = x0 >= 0 ? 0 : min_int((-x0 + stride - 1) / stride, count);
    *hi = x0 >= n ? *lo : min_int((n - 1 - x0) / stride + 1, count);
    if (*hi < *lo)
        *hi = *lo;
}

/* What padded position x of a row of n pixels holds; the row is read through a nearest
 * ×up upsampling (n = up × its length; up 1: as it is). */
static inline float padded_at(const float *row, int n, int x, int reflect, int up)
{
    int ix = source_index(x, n, reflect);
    return ix < 0 ? 0.0f : row[ix / up];
}

/* dst[i] = row[(x + i) / 2], i < count: a run of a row upsampled ×2 (GCC vectorises the
 * pairs with an interleave) */
static void gather_doubled(float *dst, const float *row, int x, int count)
{
    int i = 0;
    if (x & 1 && count > 0)
        dst[i++] = row[x++ / 2];
    const float *r = row + x / 2;
    const int pairs = (count - i) / 2;
    float *d = dst + i;
    for (int j = 0; j < pairs; j++) {
        d[2 * j] = r[j];
        d[2 * j + 1] = r[j];
    }
    if (i + 2 * pairs < count)
        dst[count - 1] = r[pairs];
}

/* dst[i] = row[x0 + i·stride] for i < count, positions off the row mapped through the
 * padding; the part on the row is a plain (strided) copy. The row is read through a
 * nearest ×up upsampling (n = up × its length), which convolutions fold in (up 1: none). */
static void gather_row(float *dst, const float *row, int n, int x0, int stride, int count,
                       int reflect, int up)
{
    int lo, hi;
    inside_span(n, x0, stride, count, &lo, &hi);
    for (int i = 0; i < lo; i++)
        dst[i] = padded_at(row, n, x0 + i * stride, reflect, up);
    if (up == 2 && stride == 1) {
        gather_doubled(dst + lo, row, x0 + lo, hi - lo);
    } else if (up > 1) {
        for (int i = lo; i < hi; i++)
            dst[i] = row[(x0 + i * stride) / up];
    } else {
        const float *r = row + x0;
        if (stride == 1)
            memcpy(dst + lo, r + lo, sizeof(float) * (hi - lo));
        else if (stride == 2) /* a constant stride: GCC vectorises it with shuffles */
            for (int i = lo; i < hi; i++)
                dst[i] = r[2 * i];
        else
            for (int i = lo; i < hi; i++)
                dst[i] = r[i * stride];
    }
    for (int i = hi; i < count; i++)
        dst[i] = padded_at(row, n, x0 + i * stride, reflect, up);
}

/* row += v at padded position x: the adjoint of padded_at. */
static inline void add_padded_at(float *row, int n, int x, float v, int reflect)
{
    int ix = source_index(x, n, reflect);
    if (ix >= 0)
        row[ix] += v;
}

/* row[x0 + i·stride] += src[i] for i < count: the adjoint of gather_row, so a padded
 * position adds onto the pixel it was copied from (reflection) or vanishes (zeros). */
static void scatter_row(float *row, const float *src, int n, int x0, int stride, int count,
                        int reflect)
{
    int lo, hi;
    inside_span(n, x0, stride, count, &lo, &hi);
    for (int i = 0; i < lo; i++)
        add_padded_at(row, n, x0 + i * stride, src[i], reflect);
    float *r = row + x0;
    if (stride == 1) {
#pragma omp simd
        for (int i = lo; i < hi; i++)
            r[i] += src[i];
    } else {
        for (int i = lo; i < hi; i++)
            r[i * stride] += src[i];
    }
    for (int i = hi; i < count; i++)
        add_padded_at(row, n, x0 + i * stride, src[i], reflect);
}

/* Geometry shared by im2col and col2im: an image of c×h×w read by a k×k window with
 * stride and padding, producing ho×wo positions. */
typedef struct {
    int c, h, w, k, stride, pad, reflect, ho, wo;
    int up; /* im2col: the image is read through a nearest ×up upsampling (h, w are its
             * size after it); 0 or 1: none */
} Window;

static inline int window_up(const Window *g) { return g->up > 1 ? g->up : 1; }

/* Rows [ra, rb) of the column matrix (c·k·k, rows·wo; rows ld apart) of output rows
 * [r0, r0 + rows): row (c, ky, kx) holds what that tap of the window sees at each
 * position. (A fixed ld keeps every chunk's rows in place, the last and shorter one too,
 * so threads on different chunks never overlap.) */
static void im2col(float *col, size_t ld, const float *img, const Window *g, int r0, int rows,
                   int ra, int rb)
{
    const int kk = g->k * g->k, up = window_up(g), w0 = g->w / up;
    for (int r = ra; r < rb; r++) {
        const int c = r / kk, ky = r % kk / g->k, kx = r % g->k;
        const float *plane = img + (size_t)c * (g->h / up) * w0;
        float *dst = col + (size_t)r * ld;
        for (int oy = r0; oy < r0 + rows; oy++, dst += g->wo) {
            int iy = source_index(oy * g->stride - g->pad + ky, g->h, g->reflect);
            if (iy < 0)
                memset(dst, 0, sizeof(float) * g->wo);
            else
                gather_row(dst, plane + (size_t)(iy / up) * w0, g->w, kx - g->pad, g->stride,
                           g->wo, g->reflect, up);
        }
    }
}

/* img += col2im(col) for channels [ca, cb): the adjoint of im2col. Channels are the unit
 * of parallel work, since no two channels write the same pixel. */
static void col2im_add(float *img, const float *col, size_t ld, const Window *g, int r0,
                       int rows, int ca, int cb)
{
    const int kk = g->k * g->k;
    for (int r = ca * kk; r < cb * kk; r++) {
        const int c = r / kk, ky = r % kk / g->k, kx = r % g->k;
        float *plane = img + (size_t)c * g->h * g->w;
        const float *src = col + (size_t)r * ld;
        for (int oy = r0; oy < r0 + rows; oy++, src += g->wo) {
            int iy = source_index(oy * g->stride - g->pad + ky, g->h, g->reflect);
            if (iy >= 0)
                scatter_row(plane + (size_t)iy * g->w, src, g->w, kx - g->pad, g->stride,
                            g->wo, g->reflect);
        }
    }
}

typedef struct {
    int rows, chunks; /* output rows per chunk, number of chunks */
} Chunking;

/* Chunks of equal height, each needing at most `budget` floats at `row_floats` per
 * output row (but at least one row), and at least min_chunks of them where there are
 * the rows. */
static Chunking chunking(size_t row_floats, size_t budget, int ho, int min_chunks)
{
    size_t cap = budget / (row_floats ? row_floats : 1);
    if (cap < 1)
        cap = 1;
    int chunks = (int)(((size_t)ho + cap - 1) / cap);
    if (chunks < min_chunks)
        chunks = min_int(min_chunks, ho);
    int rows = (ho + chunks - 1) / chunks;
    return (Chunking){rows, (ho + rows - 1) / rows};
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

/* Channels [c0, c1) of out (planes `stride` apart) start at bias[c], or zero: count floats
 * each. */
static void fill_planes(float *out, const float *bias, int c0, int c1, size_t stride, int count)
{
    for (int c = c0; c < c1; c++) {
        float v = bias ? bias[c] : 0.0f, *p = out + (size_t)c * stride;
        for (int i = 0; i < count; i++)
            p[i] = v;
    }
}

/* ---- direct convolution ---------------------------------------------------------------
 * A chunk of output rows first copies the input rows it reads, padded, into a buffer,
 * x[ci][row][phase][wq]: a stride-s window reads every s-th column, so phase p holds the
 * padded columns p, p + s, ... and every tap reads a contiguous run of its phase. Register
 * tiles (conv-tile.h) of a few output channels × a few vectors of one output row then sum
 * over the taps with their accumulators in registers, with no column matrix and no
 * packing: 8-float vectors on every x86-64, 16-float ones with twice the registers where
 * the CPU has AVX-512 (twice the multiply-adds per instruction). Input channels go in
 * blocks so that a block's rows (and its weights) stay in L1 while a row is swept. */

/* Input channels per pass over a row: as many as keep the rows a 128-column tile reads
 * (k window rows × stride phases × 128 + k columns each) within 24 KB of L1, at most 16. A
 * 9×9 layer then takes 5 channels a pass, not 16 (78 KB, which streamed from L2). */
static int cin_block(const ConvShape *s)
{
    size_t per_channel = sizeof(float) * s->k * s->stride * (128 + s->k);
    int n = (int)((24 << 10) / per_channel);
    return n < 1 ? 1 : n > 16 ? 16 : n;
}

/* -1: the widest tiles this CPU runs; 0: the AVX2 tiles everywhere (tests set it to
 * compare the tables, and PERCEPT_CPU_TILES=avx2 does the same for a user). */
int conv_direct_wide = -1;

#ifdef PERCEPT_HAVE_AVX512
static int avx512_wanted;

static void check_avx512(void)
{
    const char *env = getenv("PERCEPT_CPU_TILES");
    avx512_wanted = __builtin_cpu_supports("avx512f") && !(env && !strcmp(env, "avx2"));
}

/* whether this CPU runs the AVX-512 tiles and the user did not ask for AVX2 */
static int cpu_runs_avx512(void)
{
    static pthread_once_t once = PTHREAD_ONCE_INIT;
    pthread_once(&once, check_avx512);
    return avx512_wanted;
}
#endif

static const DirectTiles *direct_tiles(void)
{
#ifdef PERCEPT_HAVE_AVX512
    if (conv_direct_wide != 0 && cpu_runs_avx512())
        return &conv_tiles_avx512;
#endif
    return &conv_tiles_avx2;
}

const char *conv_direct_isa(void)
{
    return direct_tiles()->isa;
}

typedef struct {
    Chunking ch;
    int rows_in;       /* input rows a full chunk reads: (rows - 1) stride + k */
    size_t wq;         /* floats per prepared row of one phase */
    size_t per_thread; /* prepared floats per thread */
} DirectPlan;

static DirectPlan direct_plan(const ConvShape *s)
{
    DirectPlan p;
    /* room for the widest tile starting at the last column */
    p.wq = (size_t)s->wout + (s->k - 1) / s->stride + TILE_MAX;
    size_t row_floats = (size_t)s->cin * s->stride * p.wq;
    size_t fit = conv_chunk_cap_floats / row_floats; /* input rows within the budget */
    int most = fit > (size_t)s->k ? (int)((fit - s->k) / s->stride) + 1 : 1;
    /* Several chunks per thread balance a machine that slows one thread down; a chunk
     * at least k rows high keeps the re-read rows (k - stride per chunk) a minority. */
    int want = (s->hout + 4 * max_threads() - 1) / (4 * max_threads());
    int rows = min_int(most, want > s->k ? want : s->k);
    p.ch = chunking(1, (size_t)rows, s->hout, 1); /* equal chunks of at most `rows` */
    p.rows_in = (p.ch.rows - 1) * s->stride + s->k;
    p.per_thread = (size_t)p.rows_in * row_floats;
    return p;
}

static size_t direct_scratch_floats(const ConvShape *s)
{
    return (size_t)s->cout * s->cin * s->k * s->k +
           (size_t)max_threads() * direct_plan(s).per_thread;
}

/* Weights in the order tiles read them: blocks of 4 output channels (the last may hold
 * fewer), each [ci][ky][phase][tap][channel], a phase's taps being kx = phase + m·stride. */
static void pack_weights(float *wp, const float *weight, const ConvShape *s)
{
    const int k = s->k, kk = k * k;
    for (int c0 = 0; c0 < s->cout; c0 += 4)
        for (int ci = 0; ci < s->cin; ci++)
            for (int ky = 0; ky < k; ky++)
                for (int ph = 0; ph < s->stride; ph++)
                    for (int kx = ph; kx < k; kx += s->stride)
                        for (int c = c0; c < min_int(c0 + 4, s->cout); c++)
                            *wp++ = weight[((size_t)c * s->cin + ci) * kk + ky * k + kx];
}

/* The input rows of output rows [r0, r0 + rows), padded and split by phase. Columns past
 * the padded width are zero: only tile columns past wout read them. */
static void prepare_rows(float *x, const float *img, const ConvShape *s, const DirectPlan *p,
                         int r0, int rows)
{
    const int reflect = s->pad_mode == PAD_REFLECT, st = s->stride;
    const int rows_in = (rows - 1) * st + s->k, wp = s->w + 2 * s->pad;
    const int up = conv_up(s), h0 = s->h / up, w0 = s->w / up;
    for (int c = 0; c < s->cin; c++)
        for (int r = 0; r < rows_in; r++) {
            int iy = source_index(r0 * st - s->pad + r, s->h, reflect);
            for (int ph = 0; ph < st; ph++) {
                float *d = x + (((size_t)c * p->rows_in + r) * st + ph) * p->wq;
                int n = iy < 0 ? 0 : min_int((wp - ph + st - 1) / st, (int)p->wq);
                if (n)
                    gather_row(d, img + ((size_t)c * h0 + iy / up) * w0, s->w, ph - s->pad,
                               st, n, reflect, up);
                memset(d + n, 0, sizeof(float) * (p->wq - n));
            }
        }
}

/* How a row is cut for one channel count: `wide` tiles by fn_wide, then tiles by fn of
 * `width` columns each, the last of which may hold fewer. */
typedef struct {
    TileFn fn_wide, fn;
    int wide, wide_width, width, tiles;
} RowCut;

/* The table's tile of cb channels × at least xv vectors (its widest if none is wider). */
static int tile_at_least(const DirectTiles *t, int cb, int xv)
{
    if (xv > TILE_XV_MAX)
        xv = TILE_XV_MAX;
    while (xv < TILE_XV_MAX && !t->fn[cb][xv])
        xv++;
    while (!t->fn[cb][xv])
        xv--;
    return xv;
}

/* As few tiles as the widest allows, of near-equal widths: a row of V vectors takes
 * T = ceil(V / widest) tiles, V mod T of them one vector wider than the rest (a 512-column
 * row at 4 channels: 96 96 80 80 80 80, not six of 96 with 64 columns unused). Widths the
 * table lacks round up to one it has. */
static RowCut row_cut(const DirectTiles *t, int cb, int wout)
{
    const int widest = tile_at_least(t, cb, TILE_XV_MAX);
    const int vectors = (wout + t->vl - 1) / t->vl;
    const int tiles = (vectors + widest - 1) / widest;
    const int narrow = tile_at_least(t, cb, vectors / tiles);
    const int wide = tile_at_least(t, cb, vectors / tiles + 1);
    RowCut c = {t->fn[cb][wide], t->fn[cb][narrow], vectors % tiles, wide * t->vl,
                narrow * t->vl, 0};
    if (narrow * t->vl * tiles >= wout) /* the narrow tiles alone cover the row */
        c.wide = 0;
    const int rest = wout - c.wide * wide * t->vl;
    c.tiles = (rest + c.width - 1) / c.width;
    return c;
}

/* One output row (channel 0 at y, channels hw_out apart) from its prepared rows x. */
static void direct_row(float *y, size_t hw_out, const float *x, const TileGeom *g,
                       const float *wp, const float *bias, const ConvShape *s,
                       const RowCut *cuts)
{
    const int kk = s->k * s->k;
    const int block = cin_block(s);
    for (int ci = 0; ci < s->cin; ci += block) {
        const int nci = min_int(block, s->cin - ci);
        for (int c0 = 0; c0 < s->cout; c0 += 4) {
            const int cb = min_int(4, s->cout - c0);
            const float *w = wp + (size_t)c0 * s->cin * kk + (size_t)ci * kk * cb;
            const RowCut *c = &cuts[cb];
            const float *b = bias ? bias + c0 : NULL;
            int x0 = 0;
            for (int i = 0; i < c->wide; i++, x0 += c->wide_width)
                c->fn_wide(y + c0 * hw_out + x0, hw_out, c->wide_width,
                           x + ci * g->cstride + x0, g, nci, w, b, ci == 0);
            for (int i = 0; i < c->tiles; i++, x0 += c->width)
                c->fn(y + c0 * hw_out + x0, hw_out, min_int(c->width, s->wout - x0),
                      x + ci * g->cstride + x0, g, nci, w, b, ci == 0);
        }
    }
}

/* The epilogue of output rows [r0, r0 + rows) of image b, all channels. */
static void rows_epilogue(float *out, const Epilogue *ep, const ConvShape *s, int b, int r0,
                          int rows)
{
    const size_t hw_out = (size_t)s->hout * s->wout;
    for (int c = 0; c < s->cout; c++) {
        size_t at = ((size_t)b * s->cout + c) * hw_out + (size_t)r0 * s->wout;
        epilogue_apply(out + at, ep->add ? ep->add + at : NULL, ep->relu,
                       (size_t)rows * s->wout);
    }
}

static void conv2d_forward_direct(float *out, const float *in, const float *weight,
                                  const float *bias, float *scratch, const ConvShape *s,
                                  const Epilogue *ep)
{
    const DirectPlan p = direct_plan(s);
    const TileGeom g = {(size_t)p.rows_in * s->stride * p.wq, (size_t)s->stride * p.wq, p.wq,
                        s->k, s->stride};
    const size_t hw_out = (size_t)s->hout * s->wout;
    float *wp = scratch, *bufs = scratch + (size_t)s->cout * s->cin * s->k * s->k;
    pack_weights(wp, weight, s);
    const DirectTiles *t = direct_tiles();
    RowCut cuts[5] = {{0}};
    for (int cb = 1; cb <= 4; cb++)
        cuts[cb] = row_cut(t, cb, s->wout);
    const int jobs = s->n * p.ch.chunks;
#pragma omp parallel for schedule(dynamic) num_threads(run_threads(jobs))
    for (int j = 0; j < jobs; j++) {
        const int b = j / p.ch.chunks, r0 = j % p.ch.chunks * p.ch.rows;
        const int rows = min_int(p.ch.rows, s->hout - r0);
        float *x = bufs + (size_t)omp_get_thread_num() * p.per_thread;
        prepare_rows(x, in + (size_t)b * s->cin * conv_in_plane(s), s, &p, r0, rows);
        float *y = out + (size_t)b * s->cout * hw_out + (size_t)r0 * s->wout;
        for (int r = 0; r < rows; r++) {
            direct_row(y + (size_t)r * s->wout, hw_out, x + r * s->stride * g.kystride, &g, wp,
                       bias, s, cuts);
            if (ep)
                rows_epilogue(out, ep, s, b, r0 + r, 1);
        }
    }
}

/* ---- conv2d -------------------------------------------------------------------------- */

static int is_pointwise(const ConvShape *s)
{
    return s->k == 1 && s->stride == 1 && s->pad == 0 && conv_up(s) == 1;
}

/* The direct path wins unless the GEMM is large in M and K: measured on the Johnson and
 * VGG-16 layers (bench/cpu-forward --per-layer), the direct tiles beat im2col + sgemm up
 * to 128 output channels (128→128 3×3 at 64²: 177 against 157 GFLOP/s), and sgemm wins
 * from 256 outputs with 256·9 inputs (512→512 3×3 at 32²: 162 against 141). */
static int use_direct(const ConvShape *s)
{
    return !is_pointwise(s) && (s->cout <= 128 || (size_t)s->cin * s->k * s->k < 1024);
}

static Window conv_window(const ConvShape *s)
{
    return (Window){s->cin, s->h, s->w, s->k, s->stride, s->pad, s->pad_mode == PAD_REFLECT,
                    s->hout, s->wout, s->up};
}

/* Forward im2col: each thread its own chunk and column buffer, at least one per thread. */
static Chunking forward_chunking(const ConvShape *s)
{
    size_t K = (size_t)s->cin * s->k * s->k;
    return chunking(is_pointwise(s) ? 0 : K * s->wout, conv_chunk_cap_floats, s->hout,
                    max_threads());
}

/* Backward: one column buffer per chunk, shared by the threads. */
static Chunking backward_chunking(const ConvShape *s)
{
    size_t K = (size_t)s->cin * s->k * s->k;
    return chunking(K * s->wout, conv_chunk_cap_floats * max_threads(), s->hout, 1);
}

void conv2d_shape(ConvShape *s)
{
    s->hout = (s->h + 2 * s->pad - s->k) / s->stride + 1;
    s->wout = (s->w + 2 * s->pad - s->k) / s->stride + 1;
}

size_t conv2d_scratch_floats(const ConvShape *s)
{
    if (is_pointwise(s))
        return 0;
    if (conv2d_up_phased(s)) /* forward only: backward never reads through an upsampling */
        return conv2d_up_phased_scratch_floats(s);
    size_t K = (size_t)s->cin * s->k * s->k;
    Chunking f = forward_chunking(s), b = backward_chunking(s);
    size_t forward = use_direct(s) ? direct_scratch_floats(s)
                                   : (size_t)max_threads() * K * f.rows * s->wout;
    size_t backward = K * b.rows * s->wout;
    return forward > backward ? forward : backward;
}

static void conv2d_forward_gemm(float *out, const float *in, const float *weight,
                                const float *bias, float *scratch, const ConvShape *s,
                                const Epilogue *ep)
{
    // weight (cout, K = cin·k·k) as a matrix; out chunk (cout, cols) = weight · col
    const Window g = conv_window(s);
    const int K = s->cin * s->k * s->k, hw_in = (int)conv_in_plane(s), hw_out = s->hout * s->wout;
    const int point = is_pointwise(s);
    const Chunking ch = forward_chunking(s);
    const size_t per = point ? 0 : (size_t)K * ch.rows * s->wout;
    const int jobs = s->n * ch.chunks;
#pragma omp parallel for schedule(dynamic) num_threads(run_threads(jobs))
    for (int j = 0; j < jobs; j++) {
        const int b = j / ch.chunks, r0 = j % ch.chunks * ch.rows;
        const int ncols = min_int(ch.rows, s->hout - r0) * s->wout;
        const float *x = in + (size_t)b * s->cin * hw_in;
        float *y = out + (size_t)b * s->cout * hw_out + (size_t)r0 * s->wout;
        if (bias)
            fill_planes(y, bias, 0, s->cout, hw_out, ncols);
        const float *B = x + (size_t)r0 * s->w; /* pointwise: the input is the matrix */
        int ldb = hw_in;
        if (!point) {
            float *col = scratch + (size_t)omp_get_thread_num() * per;
            im2col(col, ncols, x, &g, r0, ncols / s->wout, 0, K);
            B = col;
            ldb = ncols;
        }
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, s->cout, ncols, K, 1.0f, weight,
                    K, B, ldb, bias ? 1.0f : 0.0f, y, hw_out);
        if (ep)
            rows_epilogue(out, ep, s, b, r0, ncols / s->wout);
    }
}

void conv2d_forward(float *out, const float *in, const float *weight, const float *bias,
                    float *scratch, const ConvShape *s, const Epilogue *ep)
{
    // out (n,cout,hout,wout); in (n,cin,h,w); weight (cout,cin,k,k); bias (cout) or NULL
    blas_single_threaded();
    if (conv2d_up_phased(s))
        conv2d_up_phased_forward(out, in, weight, bias, scratch, s, ep);
    else if (use_direct(s))
        conv2d_forward_direct(out, in, weight, bias, scratch, s, ep);
    else
        conv2d_forward_gemm(out, in, weight, bias, scratch, s, ep);
}

void conv2d_backward(float *din, float *dweight, float *dbias, const float *dout,
                     const float *in, const float *weight, float *scratch, const ConvShape *s)
{
    // dweight (cout, K) += dout · colᵀ; din = col2im(weightᵀ · dout), chunk by chunk.
    // Threads split each chunk: by columns of dweight (rows of col) for the first, by
    // input channels for the second, so no two threads write the same float.
    blas_single_threaded();
    const int kk = s->k * s->k, K = s->cin * kk, hw_in = s->h * s->w;
    const int hw_out = s->hout * s->wout, point = is_pointwise(s);
    if (dbias)
        add_bias_grad(dbias, dout, s->n, s->cout, hw_out);
    if (!din && !dweight)
        return;
    const Window g = conv_window(s);
    /* pointwise needs no column buffer: the whole image is one chunk */
    const Chunking ch = point ? (Chunking){s->hout, 1} : backward_chunking(s);
    const size_t ld = (size_t)ch.rows * s->wout; /* col (K, ld) */
    float *col = scratch;
#pragma omp parallel num_threads(run_threads(K))
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int ra, rb, ca, cb;
        split(K, nt, t, &ra, &rb);
        split(s->cin, nt, t, &ca, &cb);
        for (int b = 0; b < s->n; b++) {
            const float *x = in + (size_t)b * s->cin * hw_in;
            const float *dy = dout + (size_t)b * s->cout * hw_out;
            float *dx = din ? din + (size_t)b * s->cin * hw_in : NULL;
            if (dx && !point)
                memset(dx + (size_t)ca * hw_in, 0, sizeof(float) * (cb - ca) * hw_in);
            for (int c = 0; c < ch.chunks; c++) {
                const int r0 = c * ch.rows, rows = min_int(ch.rows, s->hout - r0);
                const int ncols = rows * s->wout;
                const float *dyc = dy + (size_t)r0 * s->wout;
                if (dweight && rb > ra) {
                    const float *B = x + (size_t)r0 * s->w; /* pointwise: the input itself */
                    int ldb = hw_in;
                    if (!point) {
                        im2col(col, ld, x, &g, r0, rows, ra, rb);
                        B = col;
                        ldb = (int)ld;
                    }
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->cout, rb - ra, ncols,
                                1.0f, dyc, hw_out, B + (size_t)ra * ldb, ldb, 1.0f, dweight + ra,
                                K);
                }
                if (!dx)
                    continue;
                if (point) {
                    if (cb > ca)
                        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, cb - ca, ncols,
                                    s->cout, 1.0f, weight + ca, K, dyc, hw_out, 0.0f,
                                    dx + (size_t)ca * hw_in + (size_t)r0 * s->w, hw_in);
                    continue;
                }
#pragma omp barrier /* col is about to be overwritten */
                if (cb > ca) {
                    cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (cb - ca) * kk, ncols,
                                s->cout, 1.0f, weight + (size_t)ca * kk, K, dyc, hw_out, 0.0f,
                                col + (size_t)ca * kk * ld, (int)ld);
                    col2im_add(dx, col, ld, &g, r0, rows, ca, cb);
                }
#pragma omp barrier /* the next chunk's im2col overwrites col */
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
    return (Window){s->cout, s->hout, s->wout, s->k, s->stride, s->pad, 0, s->h, s->w, 1};
}

/* Chunks of input rows; one column buffer (cout·k·k, rows·w) shared by the threads. */
static Chunking convt_chunking(const ConvTShape *s)
{
    return chunking((size_t)s->cout * s->k * s->k * s->w, conv_chunk_cap_floats * max_threads(),
                    s->h, 1);
}

void conv_transpose2d_shape(ConvTShape *s)
{
    s->hout = (s->h - 1) * s->stride - 2 * s->pad + s->k + s->output_pad;
    s->wout = (s->w - 1) * s->stride - 2 * s->pad + s->k + s->output_pad;
}

size_t conv_transpose2d_scratch_floats(const ConvTShape *s)
{
    return (size_t)s->cout * s->k * s->k * convt_chunking(s).rows * s->w;
}

void conv_transpose2d_forward(float *out, const float *in, const float *weight,
                              const float *bias, float *scratch, const ConvTShape *s)
{
    // in (n,cin,h,w), out (n,cout,hout,wout), weight (cin, K = cout·k·k) as a matrix:
    // out = col2im(weightᵀ · in), each thread on its own output channels.
    blas_single_threaded();
    const Window g = convt_window(s);
    const int kk = s->k * s->k, K = s->cout * kk, hw_in = s->h * s->w;
    const int hw_out = s->hout * s->wout;
    const Chunking ch = convt_chunking(s);
    const size_t ld = (size_t)ch.rows * s->w; /* col (K, ld) */
#pragma omp parallel num_threads(run_threads(s->cout))
    {
        int ca, cb;
        split(s->cout, omp_get_num_threads(), omp_get_thread_num(), &ca, &cb);
        for (int b = 0; b < s->n && cb > ca; b++) {
            const float *x = in + (size_t)b * s->cin * hw_in;
            float *y = out + (size_t)b * s->cout * hw_out;
            fill_planes(y, bias, ca, cb, hw_out, hw_out);
            for (int c = 0; c < ch.chunks; c++) {
                const int r0 = c * ch.rows, rows = min_int(ch.rows, s->h - r0);
                const int ncols = rows * s->w;
                cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, (cb - ca) * kk, ncols,
                            s->cin, 1.0f, weight + (size_t)ca * kk, K, x + (size_t)r0 * s->w,
                            hw_in, 0.0f, scratch + (size_t)ca * kk * ld, (int)ld);
                col2im_add(y, scratch, ld, &g, r0, rows, ca, cb);
            }
        }
    }
}

void conv_transpose2d_backward(float *din, float *dweight, float *dbias, const float *dout,
                               const float *in, const float *weight, float *scratch,
                               const ConvTShape *s)
{
    // col = im2col(dout); dweight (cin, K) += in · colᵀ; din = weight · col.
    // Threads split each chunk by rows of col, then by input channels.
    blas_single_threaded();
    const Window g = convt_window(s);
    const int K = s->cout * s->k * s->k, hw_in = s->h * s->w, hw_out = s->hout * s->wout;
    if (dbias)
        add_bias_grad(dbias, dout, s->n, s->cout, hw_out);
    if (!din && !dweight)
        return;
    const Chunking ch = convt_chunking(s);
    const size_t ld = (size_t)ch.rows * s->w; /* col (K, ld) */
    float *col = scratch;
#pragma omp parallel num_threads(run_threads(K))
    {
        const int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int ra, rb, ca, cb;
        split(K, nt, t, &ra, &rb);
        split(s->cin, nt, t, &ca, &cb);
        for (int b = 0; b < s->n; b++) {
            const float *x = in + (size_t)b * s->cin * hw_in;
            const float *dy = dout + (size_t)b * s->cout * hw_out;
            for (int c = 0; c < ch.chunks; c++) {
                const int r0 = c * ch.rows, rows = min_int(ch.rows, s->h - r0);
                const int ncols = rows * s->w;
                im2col(col, ld, dy, &g, r0, rows, ra, rb);
                if (dweight && rb > ra)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, s->cin, rb - ra, ncols,
                                1.0f, x + (size_t)r0 * s->w, hw_in, col + (size_t)ra * ld,
                                (int)ld, 1.0f, dweight + ra, K);
                if (!din)
                    continue;
#pragma omp barrier /* din reads every row of col */
                if (cb > ca)
                    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, cb - ca, ncols, K,
                                1.0f, weight + (size_t)ca * K, K, col, (int)ld, 0.0f,
                                din + ((size_t)b * s->cin + ca) * hw_in + (size_t)r0 * s->w,
                                hw_in);
#pragma omp barrier /* the next chunk's im2col overwrites col */
            }
        }
    }
}
