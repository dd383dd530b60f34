/* percept's CUDA kernels against their CPU twins, run by the host emulator
 * (tests/cuda-emulator.h) on a machine without a GPU: the kernels' indexing, reductions,
 * barriers and shuffles, at odd sizes, with several blocks and with outputs poisoned (NaN) so
 * that an element a kernel does not write fails. tests/test-cuda-parity.c compares the same
 * kernels on a GPU, through the backend; this one runs everywhere. The GPU's own rounding
 * (fused multiply-adds, its libm) is not emulated: tolerances are float rounding's. */
#include "check.h"
#include "graph.h"
#include "kernels.h"
#include "layers.h"

extern size_t emu_launches; /* cuda-emulator.cpp */

static float *buffer(size_t n, uint64_t seed, float lo, float hi)
{
    float *x = malloc(sizeof(float) * (n ? n : 1));
    fill_uniform(x, n, seed, lo, hi);
    return x;
}

static float *poisoned(size_t n)
{
    float *x = malloc(sizeof(float) * (n ? n : 1));
    for (size_t i = 0; i < n; i++)
        x[i] = NAN;
    return x;
}

/* gpu within tol of cpu (relative, and absolute for small values), element by element
 * (a NaN fails); tol 0: equal */
static void same(const char *what, const float *gpu, const float *cpu, size_t n, double tol)
{
    size_t worst = 0;
    double r = max_tol_ratio(gpu, cpu, n, tol > 0 ? tol : 1e-30, tol, &worst);
    CHECK(r <= 1, "%s: element %zu is %.9g, the CPU's %.9g (%.3g of the tolerance %g)", what,
          worst, gpu[worst], cpu[worst], r, tol);
}

static void check_elementwise(size_t n)
{
    float *a = buffer(n, 1, -3, 3), *b = buffer(n, 2, -1, 1), *cpu = malloc(sizeof(float) * n);
    float *out = poisoned(n), *dx = poisoned(n);
    char what[64];
    static const char *const names[] = {"add", "relu", "leaky_relu", "tanh", "scaled_tanh",
                                        "sigmoid", "cos"};
    for (int op = EW_ADD; op <= EW_COS; op++) {
        const float p = op == EW_LEAKY_RELU ? 0.2f : op == EW_COS ? 0.0625f : 150.0f, q = 127.5f;
        switch (op) {
        case EW_ADD: add_forward(cpu, a, b, n); break;
        case EW_RELU: relu_forward(cpu, a, n); break;
        case EW_LEAKY_RELU: leaky_relu_forward(cpu, a, n, p); break;
        case EW_TANH: tanh_forward(cpu, a, n); break;
        case EW_SCALED_TANH: scaled_tanh_forward(cpu, a, n, p, q); break;
        case EW_COS: cos_forward(cpu, a, n, p); break;
        default: sigmoid_forward(cpu, a, n); break;
        }
        gpu_elementwise(op, out, a, b, n, p, q);
        snprintf(what, sizeof what, "%s forward (%zu)", names[op], n);
        same(what, out, cpu, n, op == EW_SCALED_TANH ? 1e-6 * p : 1e-6); /* p·tanh + q cancels */
        if (op == EW_ADD)
            continue;
        /* the reference the backward reads: the input for ReLUs and cos, else the output */
        const float *ref = op == EW_RELU || op == EW_LEAKY_RELU || op == EW_COS ? a : out;
        switch (op) {
        case EW_RELU: relu_backward(cpu, b, ref, n); break;
        case EW_LEAKY_RELU: leaky_relu_backward(cpu, b, ref, n, p); break;
        case EW_TANH: tanh_backward(cpu, b, ref, n); break;
        case EW_SCALED_TANH: scaled_tanh_backward(cpu, b, ref, n, p, q); break;
        case EW_COS: cos_backward(cpu, b, ref, n, p); break;
        default: sigmoid_backward(cpu, b, ref, n); break;
        }
        for (size_t i = 0; i < n; i++)
            dx[i] = NAN;
        gpu_elementwise_backward(op, dx, b, ref, n, p, q);
        snprintf(what, sizeof what, "%s backward (%zu)", names[op], n);
        same(what, dx, cpu, n, 1e-5);
    }
    free(a); free(b); free(cpu); free(out); free(dx);
}

/* A convolution's bias and inference epilogue (+ add, ReLU) against the CPU's, and an eval
 * batch norm folded into its weights against the definition. */
static void check_conv_epilogue(int c, int hw)
{
    const size_t total = (size_t)2 * c * hw;
    float *y = buffer(total, 70, -2, 2), *add = buffer(total, 71, -1, 1), *bias = buffer(c, 72, -1, 1);
    float *cpu = malloc(sizeof(float) * total), *out = poisoned(total);
    for (int with = 0; with < 2; with++) { /* bias and add, or ReLU alone */
        for (size_t i = 0; i < total; i++)
            cpu[i] = y[i] + (with ? bias[i / hw % c] : 0.0f);
        epilogue_apply(cpu, with ? add : NULL, 1, total);
        memcpy(out, y, sizeof(float) * total);
        gpu_conv_epilogue(out, with ? bias : NULL, with ? add : NULL, 1, total, c, hw);
        same(with ? "conv epilogue: bias, add, relu" : "conv epilogue: relu", out, cpu, total, 0);
    }
    const int per = 3 * 3 * 3;
    float *w = buffer((size_t)c * per, 73, -1, 1), *mean = buffer(c, 74, -1, 1);
    float *var = buffer(c, 75, 0.5f, 2), *gamma = buffer(c, 76, 0.5f, 1.5f), *beta = buffer(c, 77, -1, 1);
    float *wf = poisoned((size_t)c * per), *bf = poisoned(c), *wref = malloc(sizeof(float) * c * per);
    float *bref = malloc(sizeof(float) * c);
    for (int o = 0; o < c; o++) {
        double a = gamma[o] / sqrt((double)var[o] + 1e-5f);
        for (int j = 0; j < per; j++)
            wref[o * per + j] = (float)(w[o * per + j] * a);
        bref[o] = (float)((bias[o] - mean[o]) * a + beta[o]);
    }
    gpu_fold_batch_norm(wf, bf, w, bias, mean, var, gamma, beta, c, per, 1e-5f);
    same("batch norm folded into conv weights", wf, wref, (size_t)c * per, 0);
    same("batch norm folded into conv bias", bf, bref, c, 0);
    free(y); free(add); free(bias); free(cpu); free(out); free(w); free(mean); free(var);
    free(gamma); free(beta); free(wf); free(bf); free(wref); free(bref);
}

/* A phased convolution (kernels.h: GpuPhased) against the CPU's convolution, forward with
 * its epilogue and backward: the layout kernels around a phased one computed here by its
 * definition (a valid kp × kp convolution, in double). */
static void check_phased_conv(int n, int cin, int cout, int h, int w, int k, int pad,
                              int reflect, int r, int up)
{
    GpuPhased d = {.n = n, .cin = cin, .cout = cout, .h = h, .w = w, .k = k, .pad = pad,
                   .reflect = reflect, .up = up, .r = r};
    gpu_phased_shape(&d);
    ConvShape s = {.n = n, .cin = cin, .h = h, .w = w, .cout = cout, .k = k, .stride = 1,
                   .pad = pad, .pad_mode = reflect ? PAD_REFLECT : PAD_ZERO, .up = up};
    conv2d_shape(&s);
    /* the input as stored: read through an upsampling by up (forward only, as in plan.c) */
    const size_t xn = (size_t)n * cin * conv_in_plane(&s), yn = (size_t)n * cout * s.hout * s.wout;
    const size_t wn = (size_t)cout * cin * k * k, kk = (size_t)d.kp * d.kp;
    const size_t xpn = (size_t)n * d.cinp * d.hi * d.wi, ypn = (size_t)n * d.coutp * d.ho * d.wo;
    const size_t wpn = (size_t)d.coutp * d.cinp * kk;
    float *x = buffer(xn, 80, -1, 1), *wt = buffer(wn, 81, -0.2f, 0.2f), *b = buffer(cout, 82, -1, 1);
    float *add = buffer(yn, 83, -1, 1), *dy = buffer(yn, 84, -1, 1), *dw0 = buffer(wn, 85, -1, 1);
    float *scratch = malloc(sizeof(float) * conv2d_scratch_floats(&s));
    float *cpu = malloc(sizeof(float) * yn), *dx_cpu = malloc(sizeof(float) * xn);
    float *dw_cpu = malloc(sizeof(float) * wn), *db = calloc(cout, sizeof(float));
    float *xp = poisoned(xpn), *wp = poisoned(wpn), *yp = malloc(sizeof(float) * ypn);
    float *y = poisoned(yn), *dyp = poisoned(ypn), *dwp = malloc(sizeof(float) * wpn);
    float *dxp = malloc(sizeof(float) * xpn), *dx = poisoned(xn), *dw = malloc(sizeof(float) * wn);
    CHECK(s.hout == d.hout && s.wout == d.wout, "phased shape %dx%d, the CPU's %dx%d", d.wout,
          d.hout, s.wout, s.hout);
    conv2d_forward(cpu, x, wt, b, scratch, &s, NULL);
    epilogue_apply(cpu, add, 1, yn);
    memcpy(dw_cpu, dw0, sizeof(float) * wn);
    if (up <= 1)
        conv2d_backward(dx_cpu, dw_cpu, db, dy, x, wt, scratch, &s);

    gpu_phase_input(xp, x, &d);
    gpu_phase_weights(wp, wt, &d);
    for (int bi = 0; bi < n; bi++) /* the phased convolution, by definition */
        for (int o = 0; o < d.coutp; o++)
            for (int i = 0; i < d.ho; i++)
                for (int j = 0; j < d.wo; j++) {
                    double sum = 0;
                    for (int c = 0; c < d.cinp; c++)
                        for (int a = 0; a < d.kp; a++)
                            for (int e = 0; e < d.kp; e++)
                                sum += (double)wp[(((size_t)o * d.cinp + c) * d.kp + a) * d.kp + e] *
                                       xp[(((size_t)bi * d.cinp + c) * d.hi + i + a) * d.wi + j + e];
                    yp[(((size_t)bi * d.coutp + o) * d.ho + i) * d.wo + j] = (float)sum;
                }
    gpu_unphase_output(y, yp, b, add, 1, &d);
    char what[96];
    snprintf(what, sizeof what, "phased conv %d→%d %d×%d pad %d%s, %d×%d%s, r %d", cin, cout, k,
             k, pad, reflect ? " reflected" : "", w, h, up > 1 ? " upsampled" : "", r);
    same(what, y, cpu, yn, 1e-5);
    if (up > 1)
        goto done;

    gpu_phase_output_grad(dyp, dy, &d);
    memset(dwp, 0, sizeof(float) * wpn);
    memset(dxp, 0, sizeof(float) * xpn);
    for (int bi = 0; bi < n; bi++) /* both gradients of the phased convolution, by definition */
        for (int o = 0; o < d.coutp; o++)
            for (int i = 0; i < d.ho; i++)
                for (int j = 0; j < d.wo; j++) {
                    const float g = dyp[(((size_t)bi * d.coutp + o) * d.ho + i) * d.wo + j];
                    for (int c = 0; c < d.cinp; c++)
                        for (int a = 0; a < d.kp; a++)
                            for (int e = 0; e < d.kp; e++) {
                                const size_t wi = (((size_t)o * d.cinp + c) * d.kp + a) * d.kp + e;
                                const size_t xi = (((size_t)bi * d.cinp + c) * d.hi + i + a) * d.wi + j + e;
                                dwp[wi] += g * xp[xi];
                                dxp[xi] += g * wp[wi];
                            }
                }
    memcpy(dw, dw0, sizeof(float) * wn);
    gpu_unphase_weights_grad(dw, dwp, &d);
    gpu_phase_input_backward(dx, dxp, &d);
    strcat(what, ": weight gradient");
    same(what, dw, dw_cpu, wn, 1e-4);
    strcpy(strrchr(what, ':'), ": input gradient");
    same(what, dx, dx_cpu, xn, 1e-4);
done:
    free(x); free(wt); free(b); free(add); free(dy); free(dw0); free(scratch); free(cpu);
    free(dx_cpu); free(dw_cpu); free(db); free(xp); free(wp); free(yp); free(y); free(dyp);
    free(dwp); free(dxp); free(dx); free(dw);
}

/* A fully connected layer, forward and backward, against the CPU's (an sgemm). */
static void check_linear(int n, int fin, int fout)
{
    float *x = buffer((size_t)n * fin, 80, -1, 1), *w = buffer((size_t)fout * fin, 81, -1, 1);
    float *b = buffer(fout, 82, -1, 1), *dy = buffer((size_t)n * fout, 83, -1, 1);
    float *ref = malloc(sizeof(float) * n * fout), *y = poisoned((size_t)n * fout);
    float *dref = malloc(sizeof(float) * n * fin), *dx = poisoned((size_t)n * fin);
    float *dw_cpu = buffer((size_t)fout * fin, 84, -1, 1), *dw = malloc(sizeof(float) * fout * fin);
    float *db_cpu = buffer(fout, 85, -1, 1), *db = malloc(sizeof(float) * fout);
    memcpy(dw, dw_cpu, sizeof(float) * fout * fin); /* gradients accumulate */
    memcpy(db, db_cpu, sizeof(float) * fout);
    linear_forward(ref, x, w, b, n, fin, fout);
    gpu_linear(y, x, w, b, n, fin, fout);
    same("linear forward", y, ref, (size_t)n * fout, 1e-5);
    linear_backward(dref, dw_cpu, db_cpu, dy, x, w, n, fin, fout);
    gpu_linear_backward(dx, dw, db, dy, x, w, n, fin, fout);
    same("linear input gradient", dx, dref, (size_t)n * fin, 1e-5);
    same("linear weight gradient (accumulated)", dw, dw_cpu, (size_t)fout * fin, 1e-5);
    same("linear bias gradient (accumulated)", db, db_cpu, fout, 1e-5);
    free(x); free(w); free(b); free(dy); free(ref); free(y); free(dref); free(dx);
    free(dw_cpu); free(dw); free(db_cpu); free(db);
}

static void check_combine(void)
{
    const int n = 2, hw = 37, cs[3] = {3, 1, 5}, total = 9;
    float *ins[3], *dins_gpu[3], *dins_cpu[3];
    for (int k = 0; k < 3; k++) {
        ins[k] = buffer((size_t)n * cs[k] * hw, 10 + k, -1, 1);
        dins_gpu[k] = poisoned((size_t)n * cs[k] * hw);
        dins_cpu[k] = malloc(sizeof(float) * n * cs[k] * hw);
    }
    size_t nout = (size_t)n * total * hw;
    float *cpu = malloc(sizeof(float) * nout), *out = poisoned(nout);
    concat_forward(cpu, (const float *const *)ins, cs, 3, n, hw);
    gpu_concat(out, (const float *const *)ins, cs, 3, n, hw);
    same("concat of 3", out, cpu, nout, 0);
    float *dout = buffer(nout, 13, -1, 1);
    concat_backward(dins_cpu, dout, cs, 3, n, hw);
    gpu_concat_backward(dins_gpu, dout, cs, 3, n, hw);
    for (int k = 0; k < 3; k++)
        same("concat backward", dins_gpu[k], dins_cpu[k], (size_t)n * cs[k] * hw, 0);

    /* channel affine: per channel, and one constant (c = 1) */
    float scale[3] = {2.0f, -0.5f, 255.0f}, shift[3] = {0.1f, -0.2f, 0.0f};
    for (int c = 3; c >= 1; c -= 2) {
        size_t m = (size_t)n * 3 * hw;
        float *x = buffer(m, 14, -1, 1), *ref = malloc(sizeof(float) * m), *y = poisoned(m);
        channel_affine_forward(ref, x, scale, shift, n, c, c == 1 ? 3 * hw : hw);
        gpu_channel_affine(y, x, scale, shift, m, c, c == 1 ? 3 * hw : hw);
        same(c == 1 ? "channel affine, one constant" : "channel affine", y, ref, m, 1e-6);
        channel_affine_backward(ref, x, scale, n, c, c == 1 ? 3 * hw : hw);
        for (size_t i = 0; i < m; i++)
            y[i] = NAN;
        gpu_channel_affine_backward(y, x, scale, m, c, c == 1 ? 3 * hw : hw);
        same("channel affine backward", y, ref, m, 1e-6);
        free(x); free(ref); free(y);
    }
    for (int k = 0; k < 3; k++) {
        free(ins[k]); free(dins_gpu[k]); free(dins_cpu[k]);
    }
    free(cpu); free(out); free(dout);
}

static void check_resample(int n, int c, int h, int w, int f)
{
    size_t small = (size_t)n * c * h * w, big = small * f * f;
    float *x = buffer(small, 20, -1, 1), *cpu = malloc(sizeof(float) * big), *gpu = poisoned(big);
    float *dy = buffer(big, 21, -1, 1), *dx_cpu = malloc(sizeof(float) * small);
    float *dx = poisoned(small);
    upsample_nearest_forward(cpu, x, n, c, h, w, f);
    gpu_upsample_nearest(gpu, x, n * c, h, w, f);
    same("upsample nearest", gpu, cpu, big, 0);
    upsample_nearest_backward(dx_cpu, dy, n, c, h, w, f);
    gpu_upsample_nearest_backward(dx, dy, n * c, h, w, f);
    same("upsample nearest backward", dx, dx_cpu, small, 1e-6);
    if (c % (f * f) == 0) { /* (n, c, h, w) -> (n, c/f², h·f, w·f) */
        for (size_t i = 0; i < small; i++)
            gpu[i] = NAN;
        pixel_shuffle_forward(cpu, x, n, c / (f * f), h, w, f);
        gpu_pixel_shuffle(gpu, x, n, c / (f * f), h, w, f);
        same("pixel shuffle", gpu, cpu, small, 0);
        pixel_shuffle_backward(dx_cpu, dy, n, c / (f * f), h, w, f);
        for (size_t i = 0; i < small; i++)
            dx[i] = NAN;
        gpu_pixel_shuffle_backward(dx, dy, n, c / (f * f), h, w, f);
        same("pixel shuffle backward", dx, dx_cpu, small, 0);
    }
    free(x); free(cpu); free(gpu); free(dy); free(dx_cpu); free(dx);
}

/* ReflectionPad2d, written here as the definition: each padded pixel reads the mirrored
 * source; the gradient adds each padded pixel's back where it was read */
static int mirror(int i, int n)
{
    return i < 0 ? -i : i >= n ? 2 * n - 2 - i : i;
}

/* up > 1: the input read through a nearest upsampling (forward only), h × w its size after */
static void check_reflect_pad(int planes, int h, int w, int p, int up)
{
    const int hp = h + 2 * p, wp = w + 2 * p, u = up > 1 ? up : 1;
    size_t small = (size_t)planes * h * w, big = (size_t)planes * hp * wp;
    float *x = buffer(small / (u * u), 30 + p, -1, 1), *ref = malloc(sizeof(float) * big);
    float *y = poisoned(big), *dy = buffer(big, 31, -1, 1), *dref = calloc(small, sizeof(float));
    float *dx = poisoned(small);
    for (int q = 0; q < planes; q++)
        for (int i = 0; i < hp; i++)
            for (int j = 0; j < wp; j++) {
                size_t src = ((size_t)q * h + mirror(i - p, h)) * w + mirror(j - p, w);
                ref[((size_t)q * hp + i) * wp + j] =
                    x[((size_t)q * (h / u) + mirror(i - p, h) / u) * (w / u) + mirror(j - p, w) / u];
                dref[src] += dy[((size_t)q * hp + i) * wp + j];
            }
    gpu_reflect_pad(y, x, planes, h, w, p, up);
    char what[64];
    snprintf(what, sizeof what, "reflect pad %d of %dx%d%s", p, w, h, u > 1 ? ", upsampled" : "");
    same(what, y, ref, big, 0);
    if (u == 1) { /* the gradient: of the padding alone */
        gpu_reflect_pad_backward(dx, dy, planes, h, w, p);
        snprintf(what, sizeof what, "reflect pad %d of %dx%d backward", p, w, h);
        same(what, dx, dref, small, 1e-5);
    }
    free(x); free(ref); free(y); free(dy); free(dref); free(dx);
}

static void check_pool(int max, int n, int c, int h, int w, int k, int stride, int pad)
{
    PoolShape s = {n, c, h, w, k, stride, pad, 0, 0};
    pool2d_shape(&s);
    GpuPool g = {n * c, h, w, k, stride, pad, s.hout, s.wout};
    size_t in = (size_t)n * c * h * w, out = (size_t)n * c * s.hout * s.wout;
    float *x = buffer(in, 40, -1, 1), *ref = malloc(sizeof(float) * out), *y = poisoned(out);
    float *dy = buffer(out, 41, -1, 1), *dref = malloc(sizeof(float) * in), *dx = poisoned(in);
    if (max) /* ties too: ReLU'd inputs have many zeros */
        for (size_t i = 0; i < in; i += 3)
            x[i] = 0;
    int32_t *arg_cpu = malloc(sizeof(int32_t) * out), *arg = malloc(sizeof(int32_t) * out);
    char what[80];
    snprintf(what, sizeof what, "%s pool k%d s%d p%d on %dx%d", max ? "max" : "avg", k, stride,
             pad, w, h);
    if (max) {
        max_pool_forward(ref, arg_cpu, x, &s);
        gpu_max_pool(y, arg, x, &g);
        CHECK(memcmp(arg, arg_cpu, sizeof(int32_t) * out) == 0, "%s: argmax as the CPU's", what);
        max_pool_backward(dref, dy, arg_cpu, &s);
        gpu_max_pool_backward(dx, dy, arg, &g);
    } else {
        avg_pool_forward(ref, x, &s);
        gpu_avg_pool(y, x, &g);
        avg_pool_backward(dref, dy, &s);
        gpu_avg_pool_backward(dx, dy, &g);
    }
    same(what, y, ref, out, 1e-6);
    strcat(what, " backward");
    same(what, dx, dref, in, 1e-6);
    free(x); free(ref); free(y); free(dy); free(dref); free(dx); free(arg_cpu); free(arg);
}

static void check_global_pool(int n, int c, int hw)
{
    size_t in = (size_t)n * c * hw;
    float *x = buffer(in, 50, -1, 2), *ref = malloc(sizeof(float) * n * c), *y = poisoned(n * c);
    float *dy = buffer(n * c, 51, -1, 1), *dref = malloc(sizeof(float) * in), *dx = poisoned(in);
    global_avg_pool_forward(ref, x, n, c, hw);
    gpu_global_avg_pool(y, x, n * c, hw);
    same("global avg pool", y, ref, n * c, 1e-6);
    global_avg_pool_backward(dref, dy, n, c, hw);
    gpu_global_avg_pool_backward(dx, dy, n * c, hw);
    same("global avg pool backward", dx, dref, in, 1e-6);
    free(x); free(ref); free(y); free(dy); free(dref); free(dx);
}

/* Instance and batch norm, forward and backward, with and without the affine parameters.
 * The input sits far from 0 (the statistics are taken around a pivot for that reason). */
static void check_norms(int n, int c, int hw, int affine)
{
    size_t m = (size_t)n * c * hw;
    const float eps = 1e-5f, momentum = 0.1f;
    float *x = buffer(m, 60, 90, 110), *dy = buffer(m, 61, -1, 1);
    float *gamma = affine ? buffer(c, 62, 0.5f, 1.5f) : NULL;
    float *beta = affine ? buffer(c, 63, -1, 1) : NULL;
    float *ref = malloc(sizeof(float) * m), *y = poisoned(m);
    float *dref = malloc(sizeof(float) * m), *dx = poisoned(m);
    float *mean_cpu = malloc(sizeof(float) * n * c), *rstd_cpu = malloc(sizeof(float) * n * c);
    float *mean = poisoned(n * c), *rstd = poisoned(n * c);
    float g_cpu[64], b_cpu[64], g_gpu[64], b_gpu[64];
    fill_uniform(g_cpu, c, 64, -1, 1);
    fill_uniform(b_cpu, c, 65, -1, 1);
    memcpy(g_gpu, g_cpu, sizeof(float) * c);
    memcpy(b_gpu, b_cpu, sizeof(float) * c);
    char what[96];
    const char *kind = affine ? "affine" : "plain";

    instance_norm_forward(ref, mean_cpu, rstd_cpu, x, gamma, beta, n, c, hw, eps, NULL);
    gpu_instance_norm(y, mean, rstd, x, gamma, beta, n, c, hw, eps, NULL, 0);
    snprintf(what, sizeof what, "instance norm %s %dx%dx%d", kind, n, c, hw);
    same(what, y, ref, m, 1e-5);
    same("instance norm mean", mean, mean_cpu, n * c, 1e-6);
    same("instance norm rstd", rstd, rstd_cpu, n * c, 1e-5);
    instance_norm_backward(dref, affine ? g_cpu : NULL, affine ? b_cpu : NULL, dy, x, mean_cpu,
                           rstd_cpu, gamma, n, c, hw);
    gpu_instance_norm_backward(dx, affine ? g_gpu : NULL, affine ? b_gpu : NULL, dy, x, mean_cpu,
                               rstd_cpu, gamma, n, c, hw);
    snprintf(what, sizeof what, "instance norm %s backward", kind);
    same(what, dx, dref, m, 1e-4);
    same("instance norm dgamma (accumulated)", g_gpu, g_cpu, c, 1e-4);
    same("instance norm dbeta (accumulated)", b_gpu, b_cpu, c, 1e-4);

    /* batch norm, training: batch statistics and the running ones */
    float rm_cpu[64], rv_cpu[64], rm[64], rv[64];
    fill_uniform(rm_cpu, c, 66, -1, 1);
    fill_uniform(rv_cpu, c, 67, 0.5f, 2);
    memcpy(rm, rm_cpu, sizeof(float) * c);
    memcpy(rv, rv_cpu, sizeof(float) * c);
    for (size_t i = 0; i < m; i++)
        y[i] = dx[i] = NAN;
    batch_norm_forward_train(ref, mean_cpu, rstd_cpu, rm_cpu, rv_cpu, x, gamma, beta, n, c, hw,
                             eps, momentum);
    gpu_batch_norm_train(y, mean, rstd, rm, rv, x, gamma, beta, n, c, hw, eps, momentum);
    snprintf(what, sizeof what, "batch norm %s %dx%dx%d", kind, n, c, hw);
    same(what, y, ref, m, 1e-5);
    same("batch norm mean", mean, mean_cpu, c, 1e-6);
    same("batch norm rstd", rstd, rstd_cpu, c, 1e-5);
    same("batch norm running mean", rm, rm_cpu, c, 1e-6);
    same("batch norm running variance", rv, rv_cpu, c, 1e-5);
    batch_norm_backward(dref, affine ? g_cpu : NULL, affine ? b_cpu : NULL, dy, x, mean_cpu,
                        rstd_cpu, gamma, n, c, hw);
    gpu_batch_norm_backward(dx, affine ? g_gpu : NULL, affine ? b_gpu : NULL, dy, x, mean_cpu,
                            rstd_cpu, gamma, n, c, hw);
    snprintf(what, sizeof what, "batch norm %s backward", kind);
    same(what, dx, dref, m, 1e-4);
    same("batch norm dgamma", g_gpu, g_cpu, c, 1e-4);
    same("batch norm dbeta", b_gpu, b_cpu, c, 1e-4);

    /* eval: the running statistics; its backward (the CPU backend's, restated here) */
    for (size_t i = 0; i < m; i++)
        y[i] = dx[i] = NAN;
    batch_norm_forward_eval(ref, x, rm_cpu, rv_cpu, gamma, beta, n, c, hw, eps, NULL);
    gpu_batch_norm_eval(y, mean, rstd, x, rm_cpu, rv_cpu, gamma, beta, n, c, hw, eps, NULL, 0);
    snprintf(what, sizeof what, "batch norm eval %s", kind);
    same(what, y, ref, m, 1e-5);
    double sg[64] = {0}, sb[64] = {0};
    for (int ch = 0; ch < c; ch++) {
        float r = 1.0f / sqrtf(rv_cpu[ch] + eps), g = gamma ? gamma[ch] : 1.0f;
        for (int i = 0; i < n; i++)
            for (int k = 0; k < hw; k++) {
                size_t j = ((size_t)i * c + ch) * hw + k;
                dref[j] = dy[j] * g * r;
                sb[ch] += dy[j];
                sg[ch] += (double)dy[j] * (x[j] - rm_cpu[ch]) * r;
            }
        g_cpu[ch] += (float)sg[ch];
        b_cpu[ch] += (float)sb[ch];
    }
    gpu_batch_norm_backward_eval(dx, affine ? g_gpu : NULL, affine ? b_gpu : NULL, dy, x,
                                 rm_cpu, rv_cpu, gamma, n, c, hw, eps);
    snprintf(what, sizeof what, "batch norm eval %s backward", kind);
    same(what, dx, dref, m, 1e-5);
    if (affine) {
        same("batch norm eval dgamma", g_gpu, g_cpu, c, 1e-4);
        same("batch norm eval dbeta", b_gpu, b_cpu, c, 1e-4);
    }

    /* with the inference epilogue (plan.c): + add (here dy), then ReLU */
    const Epilogue ep = {dy, 1};
    for (size_t i = 0; i < m; i++)
        y[i] = NAN;
    instance_norm_forward(ref, mean_cpu, rstd_cpu, x, gamma, beta, n, c, hw, eps, &ep);
    gpu_instance_norm(y, mean, rstd, x, gamma, beta, n, c, hw, eps, dy, 1);
    snprintf(what, sizeof what, "instance norm %s + add + relu", kind);
    same(what, y, ref, m, 1e-5);
    for (size_t i = 0; i < m; i++)
        y[i] = NAN;
    batch_norm_forward_eval(ref, x, rm_cpu, rv_cpu, gamma, beta, n, c, hw, eps, &ep);
    gpu_batch_norm_eval(y, mean, rstd, x, rm_cpu, rv_cpu, gamma, beta, n, c, hw, eps, dy, 1);
    snprintf(what, sizeof what, "batch norm eval %s + add + relu", kind);
    same(what, y, ref, m, 1e-5);
    free(x); free(dy); free(gamma); free(beta); free(ref); free(y); free(dref); free(dx);
    free(mean_cpu); free(rstd_cpu); free(mean); free(rstd);
}

/* A reduction's total: the kernel has written partial sums for n elements */
static double reduced(double *partial, size_t n)
{
    gpu_sum_partials(partial + 1024, partial, gpu_reduce_blocks(n));
    return partial[1024];
}

/* The losses' kernels (loss.cu) against percept_loss_mse, _l1, _tv and the style loss's
 * Gram difference; the sums in double, so within 1e-12 of the CPU's */
static void check_loss_kernels(int planes, int h, int w)
{
    const size_t n = (size_t)planes * h * w;
    float *x = buffer(n, 51, -1, 2), *t = buffer(n, 52, 0, 1), *cpu = malloc(sizeof(float) * n);
    float *grad = poisoned(n);
    double *partial = malloc(sizeof(double) * 1025), v;
    char what[64];
    v = percept_loss_mse(x, t, n, cpu);
    gpu_mse(partial, grad, x, t, n);
    CHECK(fabs(reduced(partial, n) / n - v) <= 1e-12 * v, "mse (%zu): %.17g, the CPU's %.17g", n,
          reduced(partial, n) / n, v);
    snprintf(what, sizeof what, "mse gradient (%zu)", n);
    same(what, grad, cpu, n, 0);
    v = percept_loss_l1(x, t, n, cpu);
    gpu_l1(partial, grad, x, t, n);
    CHECK(fabs(reduced(partial, n) / n - v) <= 1e-12 * v, "l1 (%zu)", n);
    snprintf(what, sizeof what, "l1 gradient (%zu)", n);
    same(what, grad, cpu, n, 0);
    /* tv: planes as 2 images of planes/2 channels (scale 1/2) */
    v = percept_loss_tv(&(PerceptTensor){2, planes / 2, h, w, x}, cpu);
    for (size_t i = 0; i < n; i++)
        grad[i] = NAN;
    gpu_tv(partial, grad, x, planes / 2 * 2, h, w, 0.5f);
    CHECK(fabs(reduced(partial, n) * 0.5 - v) <= 1e-12 * v, "tv (%d×%d×%d): %.17g, the CPU's %.17g",
          planes, h, w, reduced(partial, n) * 0.5, v);
    snprintf(what, sizeof what, "tv gradient (%d×%d×%d)", planes, h, w);
    same(what, grad, cpu, (size_t)planes / 2 * 2 * h * w, 0);
    /* non-finite values counted wherever they are */
    x[0] = NAN;
    x[n - 1] = INFINITY;
    x[n / 2] = -INFINITY;
    gpu_count_nonfinite(partial, x, n);
    CHECK(reduced(partial, n) == 3, "non-finite values counted: %g of 3", reduced(partial, n));
    /* n/cc Gram matrices of cc elements minus one target (and minus one each) */
    const size_t cc = 49;
    const int count = (int)(n / cc);
    for (int per_image = 0; per_image < 2; per_image++) {
        float *g = buffer(count * cc, 53, 0, 1), *d = malloc(sizeof(float) * count * cc);
        double sum = 0;
        for (size_t i = 0; i < count * cc; i++) {
            d[i] = g[i] - t[per_image ? i : i % cc];
            sum += (double)d[i] * d[i];
        }
        gpu_gram_difference(partial, g, t, count, cc, per_image);
        CHECK(fabs(reduced(partial, count * cc) - sum) <= 1e-12 * sum, "Gram difference sum");
        same(per_image ? "Gram differences, per image" : "Gram differences", g, d, count * cc, 0);
        free(g);
        free(d);
    }
    free(x); free(t); free(cpu); free(grad); free(partial);
}

/* SSIM's kernels against percept_ssim: the index (in −1…1) within 10⁻⁶ (its positions'
 * sums in another order; random images give an index near 0, so not relative) and the
 * gradient, for Wang's Gaussian window and a uniform one */
static void check_ssim_kernels(int n, int c, int h, int w, PerceptSsimConfig cfg)
{
    const size_t count = (size_t)n * c * h * w;
    float *x = buffer(count, 71, 0, 1), *y = buffer(count, 72, 0, 1), *cpu = malloc(sizeof(float) * count);
    float *grad = poisoned(count);
    double *partial = malloc(sizeof(double) * 1025), v = 0;
    CHECK(!percept_ssim(&(PerceptTensor){n, c, h, w, x}, &(PerceptTensor){n, c, h, w, y}, &cfg,
                        &v, cpu),
          "SSIM: %s", percept_error());
    GpuSsim d = {n * c, h, w, cfg.window, {0}, pow(cfg.k1 * cfg.data_range, 2),
                 pow(cfg.k2 * cfg.data_range, 2)};
    ssim_window(&cfg, d.win);
    float *scratch = malloc(sizeof(float) * gpu_ssim_scratch_floats(&d));
    gpu_ssim(partial, grad, x, y, &d, scratch);
    const double positions = (double)n * c * (h - cfg.window + 1) * (w - cfg.window + 1);
    const double gv = reduced(partial, (size_t)positions) / positions;
    CHECK(fabs(gv - v) <= 1e-6, "SSIM (%d×%d×%d×%d, window %d): %.9g, the CPU's %.9g",
          n, c, h, w, cfg.window, gv, v);
    char what[80];
    snprintf(what, sizeof what, "SSIM gradient (%d×%d×%d×%d, window %d)", n, c, h, w, cfg.window);
    same(what, grad, cpu, count, 1e-5);
    free(x); free(y); free(cpu); free(grad); free(partial); free(scratch);
}

/* y = a·x and y += a·x; Adam's step against the host's (percept_adam_step on host memory) */
static void check_vector_kernels(size_t n)
{
    float *x = buffer(n, 61, -1, 1), *y = buffer(n, 62, -1, 1), *cpu = malloc(sizeof(float) * n);
    for (size_t i = 0; i < n; i++) {
        volatile float product = 0.3f * x[i]; /* rounded, as the kernel's: no multiply-add */
        cpu[i] = y[i] + product;
    }
    gpu_axpy(y, 0.3f, x, n, 0);
    same("y += a·x", y, cpu, n, 0);
    for (size_t i = 0; i < n; i++) {
        cpu[i] = -2.5f * x[i];
        y[i] = NAN;
    }
    gpu_axpy(y, -2.5f, x, n, 1);
    same("y = a·x", y, cpu, n, 0);
    PerceptAdam a;
    float *p = buffer(n, 63, -1, 1), *m = calloc(n, sizeof(float)), *v = calloc(n, sizeof(float));
    CHECK(!percept_adam_init(&a, n, (PerceptAdamConfig){1e-2f, 0.9f, 0.999f, 1e-8f, 0.01f}),
          "Adam: %s", percept_error());
    memcpy(cpu, p, sizeof(float) * n);
    for (int step = 0; step < 3; step++) {
        float *g = buffer(n, 64 + step, -1, 1);
        const AdamScalars s = adam_scalars(&a);
        gpu_adam(p, m, v, g, n,
                 (GpuAdam){s.b1, s.b2, s.eps, s.step_size, s.bc2_sqrt, s.keep, s.decay});
        CHECK(!percept_adam_step(&a, cpu, g), "Adam: %s", percept_error());
        free(g);
    }
    same("Adam, 3 steps: parameters", p, cpu, n, 0);
    same("Adam, 3 steps: m", m, a.m, n, 0);
    same("Adam, 3 steps: v", v, a.v, n, 0);
    percept_adam_free(&a);
    free(x); free(y); free(cpu); free(p); free(m); free(v);
}

int main(void)
{
    check_elementwise(1000);
    check_elementwise(3 * 256 * 7 + 13); /* several blocks, a partial last one */
    check_combine();
    check_conv_epilogue(5, 37);
    check_linear(3, 300, 7);
    check_linear(2, 17, 600); /* more outputs than a block */
    check_conv_epilogue(3, 300); /* several blocks */
    check_phased_conv(2, 3, 5, 11, 13, 9, 4, 1, 2, 0); /* Johnson's first: odd sizes */
    check_phased_conv(1, 6, 3, 12, 10, 9, 4, 1, 2, 0); /* … and last */
    check_phased_conv(1, 3, 4, 9, 14, 7, 2, 0, 2, 0);  /* zero padding, a smaller output */
    check_phased_conv(1, 2, 3, 10, 9, 5, 2, 1, 3, 0);
    check_phased_conv(1, 4, 2, 13, 11, 9, 4, 1, 4, 0);
    check_phased_conv(1, 4, 3, 12, 14, 9, 4, 1, 2, 2); /* read through an upsampling */
    check_phased_conv(2, 3, 2, 9, 12, 5, 2, 0, 2, 3);
    check_resample(2, 8, 5, 7, 2);
    check_resample(1, 9, 4, 3, 3);
    check_reflect_pad(3, 5, 7, 1, 0);
    check_reflect_pad(2, 9, 6, 4, 0);
    check_reflect_pad(1, 12, 11, 5, 0); /* wider than a 9×9 conv's pad */
    check_reflect_pad(1, 20, 17, 9, 0);
    check_reflect_pad(2, 10, 14, 1, 2); /* read through an upsampling, as plan.c folds it */
    check_reflect_pad(1, 12, 9, 4, 3);
    check_pool(0, 2, 3, 9, 11, 3, 2, 1);
    check_pool(0, 1, 2, 8, 8, 2, 2, 0);
    check_pool(1, 2, 3, 9, 11, 3, 2, 1);
    check_pool(1, 1, 4, 8, 10, 2, 2, 0);
    check_global_pool(2, 5, 300);
    check_norms(2, 5, 37, 1);
    check_norms(3, 4, 600, 0); /* planes wider than a block */
    check_norms(2, 3, 1, 1);   /* one pixel per plane: instance norm's variance is zero */
    check_loss_kernels(4, 7, 9);
    check_loss_kernels(6, 67, 131); /* many blocks: the partial sums */
    check_ssim_kernels(2, 3, 17, 23, (PerceptSsimConfig)PERCEPT_SSIM_WANG);
    check_ssim_kernels(1, 2, 40, 70, (PerceptSsimConfig){7, 0, 0.01f, 0.01f, 1}); /* uniform */
    check_vector_kernels(1000);
    check_vector_kernels(3 * 256 * 7 + 13);
    CHECK(emu_launches > 50, "the kernels ran (%zu launches)", emu_launches);
    return check_done("test-cuda-emulated");
}
