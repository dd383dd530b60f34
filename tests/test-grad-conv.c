/* Convolutions: every forward route (pointwise sgemm, im2col + sgemm, direct tiles) against
 * the plain-loop reference, over kernel sizes, strides, zero and reflection padding, odd
 * sizes, tile and channel-block remainders and many chunks; transposed convolution against
 * its scatter definition; every gradient against finite differences; and the gradient
 * contract (parameter gradients accumulate, din is assigned, NULL gradients are skipped). */
#include "check.h"
#include "layers.h"

/* conv.c's buffer budget per thread, in floats: lowered here to force many chunks. */
extern size_t conv_chunk_cap_floats;
/* conv.c's choice of register tiles: 0 forces the AVX2 ones, -1 the widest the CPU runs */
extern int conv_direct_wide;

static float *alloc_uniform(size_t n, uint64_t seed)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    fill_uniform(p, n, seed, -1, 1);
    return p;
}

static const char *mode_name(PadMode m)
{
    return m == PAD_REFLECT ? "reflect" : "zero";
}

/* ---- forward against the reference ------------------------------------------------ */

/* The reference reads an explicitly upsampled copy of x: x0 (n·c planes of h/up × w/up)
 * repeated up × up. */
static float *upsampled(const float *x0, int planes, int h, int w, int up)
{
    float *x = malloc(sizeof(float) * planes * h * w);
    for (int p = 0; p < planes; p++)
        for (int y = 0; y < h; y++)
            for (int i = 0; i < w; i++)
                x[((size_t)p * h + y) * w + i] =
                    x0[((size_t)p * (h / up) + y / up) * (w / up) + i / up];
    return x;
}

/* conv2d_forward against the reference; up > 1: its input read through a nearest ×up
 * upsampling (h, w the size after it) */
static void check_forward_up(int n, int cin, int h, int w, int cout, int k, int stride,
                             int pad, PadMode mode, int with_bias, int up)
{
    ConvShape s = {n, cin, h, w, cout, k, stride, pad, mode, 0, 0, up};
    conv2d_shape(&s);
    size_t nin = (size_t)n * cin * (h / up) * (w / up), nout = (size_t)n * cout * s.hout * s.wout;
    float *x = alloc_uniform(nin, 1), *wt = alloc_uniform((size_t)cout * cin * k * k, 2);
    float *b = with_bias ? alloc_uniform(cout, 3) : NULL;
    float *fast = malloc(sizeof(float) * nout), *ref = malloc(sizeof(float) * nout);
    float *scratch = malloc(sizeof(float) * (conv2d_scratch_floats(&s) + 1));
    float *xr = up > 1 ? upsampled(x, n * cin, h, w, up) : x;
    ConvShape rs = s;
    rs.up = 0;
    conv2d_forward(fast, x, wt, b, scratch, &s, NULL);
    conv2d_forward_reference(ref, xr, wt, b, &rs);
    /* float sums of cin·k² terms against double ones: relative 1e-5 of the output's scale */
    double scale = 0;
    for (size_t i = 0; i < nout; i++)
        scale = fmax(scale, fabs(ref[i]));
    size_t worst = 0;
    double r = max_tol_ratio(fast, ref, nout, 1e-5 * scale, 1e-5, &worst);
    CHECK(r <= 1, "conv2d n%d cin%d %dx%d cout%d k%d s%d p%d %s%s up%d: fast %.8g vs reference "
          "%.8g at %zu", n, cin, h, w, cout, k, stride, pad, mode_name(mode),
          b ? "" : " no bias", up, fast[worst], ref[worst], worst);
    if (xr != x)
        free(xr);
    free(x); free(wt); free(b); free(fast); free(ref); free(scratch);
}

static void check_forward(int n, int cin, int h, int w, int cout, int k, int stride, int pad,
                          PadMode mode, int with_bias)
{
    check_forward_up(n, cin, h, w, cout, k, stride, pad, mode, with_bias, 1);
}

/* Every kernel size with stride 1 and 2, both paddings, several images and channel
 * counts, padding wider than half the window, and 1×1 images. */
static void check_forward_shapes(void)
{
    static const int ks[] = {1, 3, 4, 5, 9};
    for (size_t i = 0; i < sizeof ks / sizeof *ks; i++)
        for (int stride = 1; stride <= 2; stride++)
            for (int m = 0; m < 2; m++) {
                int k = ks[i];
                PadMode mode = m ? PAD_REFLECT : PAD_ZERO;
                check_forward(2, 3, 13, 11, 5, k, stride, k / 2, mode, 1);
                check_forward(1, 1, 7, 5, 1, k, stride, k / 2, mode, m);
                check_forward(2, 5, 9 + k, 10, 6, k, stride, 0, mode, 1);
                check_forward(1, 2, 8, 7, 4, k, stride, k - 1, PAD_ZERO, 1);
            }
    check_forward(1, 2, 1, 1, 3, 1, 1, 0, PAD_ZERO, 1);
    check_forward(2, 3, 1, 1, 2, 3, 1, 1, PAD_ZERO, 1);
    check_forward(1, 4, 1, 1, 5, 3, 2, 2, PAD_ZERO, 0);
    check_forward(1, 2, 2, 2, 2, 3, 1, 1, PAD_REFLECT, 1);
}

/* The direct path: every channel count up to two tiles (tile widths 24 to 64 columns,
 * remainders), widths that end in partial tiles, more input channels than one block,
 * strides whose phases hold different numbers of taps. */
static void check_forward_direct(void)
{
    for (int cout = 1; cout <= 9; cout++)
        check_forward(1, 3, 5, 71, cout, 3, 1, 1, PAD_REFLECT, cout % 2);
    check_forward(2, 33, 6, 50, 7, 3, 1, 1, PAD_REFLECT, 1);
    check_forward(1, 17, 9, 30, 3, 9, 1, 4, PAD_REFLECT, 1);
    check_forward(1, 6, 11, 40, 5, 5, 2, 2, PAD_REFLECT, 1);
    check_forward(1, 4, 13, 29, 6, 4, 3, 1, PAD_ZERO, 1);
    check_forward(1, 3, 14, 27, 2, 7, 3, 3, PAD_REFLECT, 0);
    /* rows that end in every tile width of both tables (8 to 256 columns) and in partial
     * vectors, at every channel count of a block */
    static const int widths[] = {2, 7, 16, 17, 31, 48, 63, 80, 95, 97, 130, 191, 255, 257, 300};
    for (size_t i = 0; i < sizeof widths / sizeof *widths; i++)
        for (int cout = 1; cout <= 4; cout++)
            check_forward(1, 2, 3, widths[i], cout + (i % 2) * 4, 3, 1, 1, PAD_REFLECT, 1);
}

/* The direct path once per table of register tiles this CPU runs. */
static void check_forward_direct_tables(void)
{
    conv_direct_wide = 0;
    const char *narrow = conv_direct_isa();
    check_forward_direct();
    conv_direct_wide = -1;
    if (strcmp(conv_direct_isa(), narrow))
        check_forward_direct();
    else
        printf("test-grad-conv: this CPU runs only the %s tiles\n", narrow);
}

/* The im2col + sgemm path takes layers with more than 128 output channels and
 * cin·k² >= 1024; pointwise layers multiply the input in place. */
static void check_forward_gemm(void)
{
    check_forward(2, 128, 6, 9, 136, 3, 1, 1, PAD_REFLECT, 1);
    check_forward(1, 120, 9, 7, 130, 3, 2, 1, PAD_ZERO, 0);
    check_forward(1, 1024, 3, 5, 129, 1, 2, 0, PAD_ZERO, 1);
    check_forward(1, 70, 7, 6, 129, 4, 1, 2, PAD_REFLECT, 1);
    check_forward(2, 7, 9, 5, 6, 1, 1, 0, PAD_ZERO, 1);
    check_forward(1, 130, 4, 3, 140, 1, 1, 0, PAD_ZERO, 0);
}

/* A conv reading its input through the nearest upsampling inference folds into it: ×2 on
 * the direct path (odd positions at the padding's edges, rows ending in partial tiles,
 * stride 2, wide windows), on the im2col path and as a pointwise layer (which then must
 * not multiply the small input in place), and ×3. */
static void check_forward_upsampled(void)
{
    static const int widths[] = {1, 3, 8, 33, 65};
    for (size_t i = 0; i < sizeof widths / sizeof *widths; i++) {
        check_forward_up(2, 3, 6, 2 * widths[i], 5, 3, 1, 1, PAD_REFLECT, 1, 2);
        check_forward_up(1, 4, 4, 2 * widths[i], 3, 3, 1, 1, PAD_ZERO, 0, 2);
    }
    check_forward_up(1, 5, 10, 14, 4, 3, 2, 1, PAD_REFLECT, 1, 2);
    check_forward_up(1, 3, 18, 22, 3, 9, 1, 4, PAD_REFLECT, 1, 2);
    check_forward_up(1, 2, 8, 10, 6, 4, 1, 2, PAD_ZERO, 1, 2);
    check_forward_up(1, 128, 6, 10, 136, 3, 1, 1, PAD_REFLECT, 1, 2);
    check_forward_up(1, 6, 8, 6, 5, 1, 1, 0, PAD_ZERO, 1, 2);
    check_forward_up(2, 3, 9, 12, 4, 3, 1, 1, PAD_REFLECT, 1, 3);
    check_forward_up(1, 130, 6, 9, 140, 3, 2, 1, PAD_REFLECT, 0, 3);
}

/* ---- finite differences ------------------------------------------------------------ */

typedef struct {
    int transposed;
    ConvShape cs;
    ConvTShape ts;
    float *x, *w, *b, *out, *scratch;
} ConvCase;

static void conv_case_forward(void *p)
{
    ConvCase *c = p;
    if (c->transposed)
        conv_transpose2d_forward(c->out, c->x, c->w, c->b, c->scratch, &c->ts);
    else
        conv2d_forward(c->out, c->x, c->w, c->b, c->scratch, &c->cs, NULL);
}

static void conv_case_backward(const ConvCase *c, float *dx, float *dw, float *db,
                               const float *dout)
{
    if (c->transposed)
        conv_transpose2d_backward(dx, dw, db, dout, c->x, c->w, c->scratch, &c->ts);
    else
        conv2d_backward(dx, dw, db, dout, c->x, c->w, c->scratch, &c->cs);
}

/* dL/dx, dL/dw, dL/db for L = sum(out · r) against central differences, then the contract:
 * a second backward doubles dweight and dbias, rewrites din (filled with garbage first),
 * and gives the same dweight whether or not din and dbias are wanted. */
static void check_gradients(int transposed, int n, int cin, int h, int w, int cout, int k,
                            int stride, int pad, int extra, PadMode mode)
{
    ConvCase c = {transposed, {0}, {0}, 0, 0, 0, 0, 0};
    size_t nout, nw = (size_t)cout * cin * k * k, scratch;
    if (transposed) {
        c.ts = (ConvTShape){n, cin, h, w, cout, k, stride, pad, extra, 0, 0};
        conv_transpose2d_shape(&c.ts);
        nout = (size_t)n * cout * c.ts.hout * c.ts.wout;
        scratch = conv_transpose2d_scratch_floats(&c.ts);
    } else {
        c.cs = (ConvShape){n, cin, h, w, cout, k, stride, pad, mode, 0, 0, 1};
        conv2d_shape(&c.cs);
        nout = (size_t)n * cout * c.cs.hout * c.cs.wout;
        scratch = conv2d_scratch_floats(&c.cs);
    }
    size_t nin = (size_t)n * cin * h * w;
    c.x = alloc_uniform(nin, 11);
    c.w = alloc_uniform(nw, 12);
    c.b = alloc_uniform(cout, 13);
    c.out = malloc(sizeof(float) * nout);
    c.scratch = malloc(sizeof(float) * (scratch + 1));
    float *r = alloc_uniform(nout, 14), *dx = malloc(sizeof(float) * nin);
    float *dw = calloc(nw, sizeof(float)), *db = calloc(cout, sizeof(float));
    conv_case_forward(&c);
    conv_case_backward(&c, dx, dw, db, r);

    char label[96], what[128];
    snprintf(label, sizeof label, "%s n%d cin%d %dx%d cout%d k%d s%d p%d%s%s",
             transposed ? "convT" : "conv", n, cin, h, w, cout, k, stride, pad,
             transposed && extra ? " op1" : "", !transposed && mode == PAD_REFLECT ? " reflect" : "");
    snprintf(what, sizeof what, "%s din", label);
    gradcheck(what, c.x, dx, nin, conv_case_forward, &c, c.out, r, nout, 1e-2f, 1e-2, 1e-3, 200);
    snprintf(what, sizeof what, "%s dweight", label);
    gradcheck(what, c.w, dw, nw, conv_case_forward, &c, c.out, r, nout, 1e-2f, 1e-2, 1e-3, 200);
    snprintf(what, sizeof what, "%s dbias", label);
    gradcheck(what, c.b, db, cout, conv_case_forward, &c, c.out, r, nout, 1e-2f, 1e-2, 1e-3, 200);

    float *dw1 = malloc(sizeof(float) * nw), *db1 = malloc(sizeof(float) * cout);
    float *dx2 = malloc(sizeof(float) * nin), *dw_only = calloc(nw, sizeof(float));
    memcpy(dw1, dw, sizeof(float) * nw);
    memcpy(db1, db, sizeof(float) * cout);
    for (size_t i = 0; i < nin; i++)
        dx2[i] = 1e30f;
    conv_case_backward(&c, dx2, dw, db, r);
    double worst = 0;
    for (size_t i = 0; i < nw; i++)
        worst = fmax(worst, fabs(dw[i] - 2 * dw1[i]) / (1e-6 + fabs(dw1[i])));
    for (int i = 0; i < cout; i++)
        worst = fmax(worst, fabs(db[i] - 2 * db1[i]) / (1e-6 + fabs(db1[i])));
    CHECK(worst < 1e-5, "%s: a second backward does not double dweight and dbias (%g)", label,
          worst);
    CHECK(!memcmp(dx, dx2, sizeof(float) * nin), "%s: din is not assigned", label);
    conv_case_backward(&c, NULL, dw_only, NULL, r);
    CHECK(!memcmp(dw_only, dw1, sizeof(float) * nw),
          "%s: dweight changes when din and dbias are not wanted", label);

    free(c.x); free(c.w); free(c.b); free(c.out); free(c.scratch);
    free(r); free(dx); free(dw); free(db); free(dw1); free(db1); free(dx2); free(dw_only);
}

static void check_conv_gradients(void)
{
    for (int m = 0; m < 2; m++) {
        PadMode mode = m ? PAD_REFLECT : PAD_ZERO;
        check_gradients(0, 2, 2, 6, 5, 3, 3, 1, 1, 0, mode);
        check_gradients(0, 1, 3, 7, 6, 2, 3, 2, 1, 0, mode);
        check_gradients(0, 1, 2, 9, 8, 2, 9, 1, 4, 0, mode);
        check_gradients(0, 2, 2, 8, 7, 2, 4, 2, 1, 0, mode);
    }
    check_gradients(0, 2, 3, 5, 4, 4, 1, 1, 0, 0, PAD_ZERO);
    check_gradients(0, 1, 3, 6, 5, 2, 1, 2, 0, 0, PAD_ZERO);
    check_gradients(0, 1, 2, 5, 5, 2, 3, 1, 2, 0, PAD_ZERO);
}

static void check_transposed_gradients(void)
{
    for (int k = 3; k <= 4; k++)
        for (int pad = 0; pad <= 1; pad++)
            for (int op = 0; op <= 1; op++)
                check_gradients(1, 2, 3, 4, 5, 2, k, 2, pad, op, PAD_ZERO);
    check_gradients(1, 1, 2, 3, 3, 3, 3, 1, 1, 0, PAD_ZERO);
}

/* ---- transposed convolution by its definition --------------------------------------- */

/* Each input pixel scatters its value times the kernel onto the output. */
static void check_transposed_definition(int n, int cin, int h, int w, int cout, int k,
                                        int stride, int pad, int extra)
{
    ConvTShape s = {n, cin, h, w, cout, k, stride, pad, extra, 0, 0};
    conv_transpose2d_shape(&s);
    size_t nout = (size_t)n * cout * s.hout * s.wout;
    float *x = alloc_uniform((size_t)n * cin * h * w, 21);
    float *wt = alloc_uniform((size_t)cin * cout * k * k, 22);
    float *b = alloc_uniform(cout, 23), *fast = malloc(sizeof(float) * nout);
    double *ref = calloc(nout, sizeof(double));
    float *scratch = malloc(sizeof(float) * (conv_transpose2d_scratch_floats(&s) + 1));
    conv_transpose2d_forward(fast, x, wt, b, scratch, &s);
    for (int bi = 0; bi < n; bi++)
        for (int co = 0; co < cout; co++)
            for (int i = 0; i < s.hout * s.wout; i++)
                ref[((size_t)bi * cout + co) * s.hout * s.wout + i] = b[co];
    for (int bi = 0; bi < n; bi++)
        for (int ci = 0; ci < cin; ci++)
            for (int y = 0; y < h; y++)
                for (int xx = 0; xx < w; xx++)
                    for (int co = 0; co < cout; co++)
                        for (int ky = 0; ky < k; ky++)
                            for (int kx = 0; kx < k; kx++) {
                                int oy = y * stride - pad + ky, ox = xx * stride - pad + kx;
                                if (oy < 0 || ox < 0 || oy >= s.hout || ox >= s.wout)
                                    continue;
                                ref[(((size_t)bi * cout + co) * s.hout + oy) * s.wout + ox] +=
                                    (double)x[(((size_t)bi * cin + ci) * h + y) * w + xx] *
                                    wt[(((size_t)ci * cout + co) * k + ky) * k + kx];
                            }
    double worst = 0;
    for (size_t i = 0; i < nout; i++)
        worst = fmax(worst, fabs(fast[i] - ref[i]) / (1e-5 + 1e-5 * fabs(ref[i])));
    CHECK(worst <= 1, "conv_transpose2d n%d cin%d %dx%d cout%d k%d s%d p%d op%d differs from "
          "its definition (%g)", n, cin, h, w, cout, k, stride, pad, extra, worst);
    free(x); free(wt); free(b); free(fast); free(ref); free(scratch);
}

static void check_transposed_shapes(void)
{
    check_transposed_definition(2, 3, 4, 5, 2, 4, 2, 1, 0);
    check_transposed_definition(1, 2, 3, 3, 3, 3, 2, 0, 1);
    check_transposed_definition(1, 2, 5, 4, 2, 3, 1, 1, 0);
    check_transposed_definition(1, 1, 2, 3, 2, 5, 3, 2, 2);
    check_transposed_definition(2, 5, 7, 6, 7, 3, 2, 1, 1);
    check_transposed_definition(1, 16, 9, 11, 8, 4, 2, 1, 0);
    check_transposed_definition(1, 3, 1, 1, 2, 3, 2, 0, 0);
}

/* ---- chunks ------------------------------------------------------------------------ */

/* With a budget of a few hundred floats every chunk is one output row; with a few
 * thousand, several rows and a shorter last chunk. Every route and both passes then
 * cross chunk boundaries (and threads work on different chunks at once). */
static void check_chunks(void)
{
    static const size_t caps[] = {300, 5000};
    size_t keep = conv_chunk_cap_floats;
    for (size_t i = 0; i < sizeof caps / sizeof *caps; i++) {
        conv_chunk_cap_floats = caps[i];
        check_forward(2, 3, 17, 13, 4, 3, 1, 1, PAD_REFLECT, 1);
        check_forward(1, 2, 19, 9, 3, 5, 2, 2, PAD_ZERO, 1);
        check_forward(2, 10, 23, 9, 3, 9, 1, 4, PAD_REFLECT, 1);
        check_forward(1, 128, 11, 6, 136, 3, 1, 1, PAD_REFLECT, 1);
        check_forward_up(2, 4, 18, 14, 5, 3, 1, 1, PAD_REFLECT, 1, 2);
        check_forward_up(1, 128, 10, 6, 136, 3, 1, 1, PAD_REFLECT, 1, 2);
        check_forward(1, 5, 21, 7, 6, 1, 1, 0, PAD_ZERO, 1);
        check_gradients(0, 2, 2, 9, 7, 3, 3, 1, 1, 0, PAD_REFLECT);
        check_gradients(0, 1, 3, 11, 6, 2, 4, 2, 1, 0, PAD_ZERO);
        check_gradients(1, 2, 3, 5, 4, 2, 4, 2, 1, 0, PAD_ZERO);
        check_gradients(1, 1, 3, 7, 4, 3, 3, 2, 1, 1, PAD_ZERO);
        check_transposed_definition(2, 5, 13, 6, 7, 3, 2, 1, 1);
    }
    conv_chunk_cap_floats = keep;
}

int main(void)
{
    check_forward_shapes();
    check_forward_direct_tables();
    check_forward_gemm();
    check_forward_upsampled();
    check_conv_gradients();
    check_transposed_gradients();
    check_transposed_shapes();
    check_chunks();
    return check_done("test-grad-conv");
}
