/* Convolutions: the im2col+sgemm path against plain loops (zero and reflection padding,
 * strides, odd sizes, several chunks), transposed convolution against its scatter
 * definition, and every gradient against finite differences. */
#include "check.h"
#include "layers.h"

extern size_t conv_chunk_cap_floats;

static float *alloc_uniform(size_t n, uint64_t seed)
{
    float *p = malloc(sizeof(float) * (n ? n : 1));
    fill_uniform(p, n, seed, -1, 1);
    return p;
}

static void check_forward(int n, int cin, int h, int w, int cout, int k, int stride, int pad,
                          PadMode mode)
{
    ConvShape s = {n, cin, h, w, cout, k, stride, pad, mode, 0, 0};
    conv2d_shape(&s);
    size_t nin = (size_t)n * cin * h * w, nout = (size_t)n * cout * s.hout * s.wout;
    float *x = alloc_uniform(nin, 1), *wt = alloc_uniform((size_t)cout * cin * k * k, 2);
    float *b = alloc_uniform(cout, 3), *fast = malloc(sizeof(float) * nout);
    float *ref = malloc(sizeof(float) * nout);
    float *scratch = malloc(sizeof(float) * (conv2d_scratch_floats(&s) + 1));
    conv2d_forward(fast, x, wt, b, scratch, &s);
    conv2d_forward_reference(ref, x, wt, b, &s);
    size_t worst = 0;
    double r = max_tol_ratio(fast, ref, nout, 1e-5, 1e-5, &worst);
    CHECK(r <= 1, "conv2d n%d cin%d %dx%d cout%d k%d s%d p%d %s: fast %g vs reference %g at %zu",
          n, cin, h, w, cout, k, stride, pad, mode == PAD_REFLECT ? "reflect" : "zero",
          fast[worst], ref[worst], worst);
    free(x); free(wt); free(b); free(fast); free(ref); free(scratch);
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
        conv2d_forward(c->out, c->x, c->w, c->b, c->scratch, &c->cs);
}

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
        c.cs = (ConvShape){n, cin, h, w, cout, k, stride, pad, mode, 0, 0};
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
    if (transposed)
        conv_transpose2d_backward(dx, dw, db, r, c.x, c.w, c.scratch, &c.ts);
    else
        conv2d_backward(dx, dw, db, r, c.x, c.w, c.scratch, &c.cs);
    char label[96];
    snprintf(label, sizeof label, "%s cin%d %dx%d cout%d k%d s%d p%d%s", transposed ? "convT" : "conv",
             cin, h, w, cout, k, stride, pad, mode == PAD_REFLECT ? " reflect" : "");
    char l2[128];
    snprintf(l2, sizeof l2, "%s din", label);
    gradcheck(l2, c.x, dx, nin, conv_case_forward, &c, c.out, r, nout, 1e-2f, 1e-2, 1e-3, 200);
    snprintf(l2, sizeof l2, "%s dweight", label);
    gradcheck(l2, c.w, dw, nw, conv_case_forward, &c, c.out, r, nout, 1e-2f, 1e-2, 1e-3, 200);
    snprintf(l2, sizeof l2, "%s dbias", label);
    gradcheck(l2, c.b, db, cout, conv_case_forward, &c, c.out, r, nout, 1e-2f, 1e-2, 1e-3, 200);
    /* parameter gradients accumulate: a second backward doubles them; din is assigned */
    float *dw2 = malloc(sizeof(float) * nw), *dx2 = malloc(sizeof(float) * nin);
    memcpy(dw2, dw, sizeof(float) * nw);
    if (transposed)
        conv_transpose2d_backward(dx2, dw, NULL, r, c.x, c.w, c.scratch, &c.ts);
    else
        conv2d_backward(dx2, dw, NULL, r, c.x, c.w, c.scratch, &c.cs);
    double worst = 0;
    for (size_t i = 0; i < nw; i++)
        worst = fmax(worst, fabs(dw[i] - 2 * dw2[i]) / (1e-6 + fabs(dw2[i])));
    CHECK(worst < 1e-4, "%s: dweight does not accumulate (%g)", label, worst);
    CHECK(!memcmp(dx, dx2, sizeof(float) * nin), "%s: din is not assigned", label);
    free(c.x); free(c.w); free(c.b); free(c.out); free(c.scratch);
    free(r); free(dx); free(dw); free(db); free(dw2); free(dx2);
}

/* Transposed convolution by its definition: each input pixel scatters a weighted kernel. */
static void check_transposed_definition(int n, int cin, int h, int w, int cout, int k, int stride,
                                        int pad, int extra)
{
    ConvTShape s = {n, cin, h, w, cout, k, stride, pad, extra, 0, 0};
    conv_transpose2d_shape(&s);
    size_t nout = (size_t)n * cout * s.hout * s.wout;
    float *x = alloc_uniform((size_t)n * cin * h * w, 21), *wt = alloc_uniform((size_t)cin * cout * k * k, 22);
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
    CHECK(worst <= 1, "conv_transpose2d cin%d %dx%d cout%d k%d s%d p%d op%d differs from its "
          "definition (%g)", cin, h, w, cout, k, stride, pad, extra, worst);
    free(x); free(wt); free(b); free(fast); free(ref); free(scratch);
}

int main(void)
{
    static const int ks[] = {1, 3, 4, 5, 9};
    for (size_t i = 0; i < sizeof ks / sizeof *ks; i++)
        for (int stride = 1; stride <= 2; stride++)
            for (int m = 0; m < 2; m++) {
                int k = ks[i], pad = k / 2;
                PadMode mode = m ? PAD_REFLECT : PAD_ZERO;
                check_forward(2, 3, 13, 11, 5, k, stride, pad, mode);
                check_forward(1, 1, 7 + k, 5 + k, 1, k, stride, pad, mode);
                check_forward(1, 4, 10, 9, 6, k, stride, 0, PAD_ZERO);
            }
    /* few output channels from many inputs: the tap-product path */
    for (int m = 0; m < 2; m++) {
        check_forward(2, 8, 13, 11, 3, 9, 1, 4, m ? PAD_REFLECT : PAD_ZERO);
        check_forward(1, 12, 9, 14, 1, 3, 1, 1, m ? PAD_REFLECT : PAD_ZERO);
        check_forward(1, 9, 10, 7, 8, 5, 1, 0, PAD_ZERO);
    }
    check_forward(1, 2, 1, 1, 3, 1, 1, 0, PAD_ZERO);
    check_forward(2, 5, 6, 6, 4, 3, 1, 2, PAD_ZERO);
    /* several chunks: lower the column budget so a small image needs many */
    size_t keep = conv_chunk_cap_floats;
    conv_chunk_cap_floats = 300;
    check_forward(2, 3, 17, 13, 4, 3, 1, 1, PAD_REFLECT);
    check_forward(1, 2, 19, 9, 3, 5, 2, 2, PAD_ZERO);
    check_forward(2, 10, 23, 9, 3, 9, 1, 4, PAD_REFLECT);
    check_gradients(0, 2, 2, 9, 7, 3, 3, 1, 1, 0, PAD_REFLECT);
    check_gradients(1, 2, 3, 5, 4, 2, 4, 2, 1, 0, PAD_ZERO);
    conv_chunk_cap_floats = keep;

    check_gradients(0, 2, 2, 6, 5, 3, 3, 1, 1, 0, PAD_ZERO);
    check_gradients(0, 1, 3, 7, 6, 2, 3, 1, 1, 0, PAD_REFLECT);
    check_gradients(0, 2, 2, 7, 7, 3, 3, 2, 1, 0, PAD_REFLECT);
    check_gradients(0, 1, 2, 9, 8, 2, 9, 1, 4, 0, PAD_REFLECT);
    check_gradients(0, 2, 3, 5, 4, 4, 1, 1, 0, 0, PAD_ZERO);
    check_gradients(0, 1, 2, 8, 7, 2, 4, 2, 1, 0, PAD_ZERO);
    check_gradients(1, 2, 3, 4, 5, 2, 4, 2, 1, 0, PAD_ZERO);
    check_gradients(1, 1, 2, 3, 3, 3, 3, 2, 0, 1, PAD_ZERO);
    check_gradients(1, 1, 2, 4, 3, 2, 3, 2, 1, 1, PAD_ZERO);

    check_transposed_definition(2, 3, 4, 5, 2, 4, 2, 1, 0);
    check_transposed_definition(1, 2, 3, 3, 3, 3, 2, 0, 1);
    check_transposed_definition(1, 2, 5, 4, 2, 3, 1, 1, 0);
    check_transposed_definition(1, 1, 2, 3, 2, 5, 3, 2, 2);
    return check_done("test-grad-conv");
}
