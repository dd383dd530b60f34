/* A 3×3 convolution (stride 1, padding 1) read through a ×2 nearest upsampling — the
 * upsampling layers of Johnson's networks, folded by plan.c — as four 2×2 convolutions at
 * the input's own resolution, one per output phase: the output pixel (2i + p, 2j + q) sees
 * only two distinct input rows and columns, so the taps that read the same input pixel are
 * added up first. 4·cin·cout multiply-adds per output pixel instead of 9·cin·cout.
 *
 * Along an axis, phase 0 reads x[i − 1] with tap 0 and x[i] with taps 1 and 2; phase 1
 * reads x[i] with taps 0 and 1 and x[i + 1] with tap 2. Reflection padding of the upsampled
 * image is the replication of the input's edge here (its mirror of row 1 is row 0 again),
 * zero padding stays zero. */
#include <string.h>

#include "layers.h"

/* which of the two rows phase p's tap a reads (0: the upper) */
static int tap_row(int p, int a)
{
    return p == 0 ? (a > 0) : (a == 2);
}

int conv2d_up_phased(const ConvShape *s)
{
    return s->up == 2 && s->k == 3 && s->stride == 1 && s->pad == 1;
}

/* the 2×2 convolution over the input padded by one pixel, (h + 2) × (w + 2): phase (p, q)
 * is its output's (h × w) window at (p, q) */
static ConvShape phase_shape(const ConvShape *s)
{
    ConvShape t = {.n = s->n, .cin = s->cin, .h = s->h / 2 + 2, .w = s->w / 2 + 2,
                   .cout = s->cout, .k = 2, .stride = 1, .pad = 0, .pad_mode = PAD_ZERO};
    conv2d_shape(&t);
    return t;
}

size_t conv2d_up_phased_scratch_floats(const ConvShape *s)
{
    const ConvShape t = phase_shape(s);
    return (size_t)s->cout * s->cin * 4 + (size_t)t.n * t.cin * t.h * t.w +
           (size_t)t.n * t.cout * t.hout * t.wout + conv2d_scratch_floats(&t);
}

/* phase (p, q)'s weights: w's taps added into the two rows and columns they read */
static void phase_weights(float *wp, const float *w, int cout, int cin, int p, int q)
{
    memset(wp, 0, sizeof(float) * cout * cin * 4);
    for (size_t oc = 0; oc < (size_t)cout * cin; oc++)
        for (int a = 0; a < 3; a++)
            for (int b = 0; b < 3; b++)
                wp[oc * 4 + tap_row(p, a) * 2 + tap_row(q, b)] += w[oc * 9 + a * 3 + b];
}

/* xp (n, cin, h + 2, w + 2): the input padded by one pixel, its edge replicated (reflect)
 * or zero */
static void pad_input(float *xp, const float *x, const ConvShape *t, int reflect)
{
    const int h = t->h - 2, w = t->w - 2;
#pragma omp parallel for schedule(static)
    for (size_t plane = 0; plane < (size_t)t->n * t->cin; plane++)
        for (int i = 0; i < t->h; i++) {
            float *d = xp + (plane * t->h + i) * t->w;
            int y = i - 1;
            if (y < 0 || y >= h) {
                if (!reflect) {
                    memset(d, 0, sizeof(float) * t->w);
                    continue;
                }
                y = y < 0 ? 0 : h - 1;
            }
            const float *row = x + (plane * h + y) * w;
            memcpy(d + 1, row, sizeof(float) * w);
            d[0] = reflect ? row[0] : 0.0f;
            d[w + 1] = reflect ? row[w - 1] : 0.0f;
        }
}

void conv2d_up_phased_forward(float *out, const float *in, const float *weight, const float *bias,
                              float *scratch, const ConvShape *s, const Epilogue *ep)
{
    const ConvShape t = phase_shape(s);
    const size_t plane = (size_t)t.hout * t.wout, out_plane = (size_t)s->hout * s->wout;
    const int h = s->h / 2, w = s->w / 2;
    float *wp = scratch, *xp = wp + (size_t)s->cout * s->cin * 4;
    float *y = xp + (size_t)t.n * t.cin * t.h * t.w, *work = y + (size_t)t.n * t.cout * plane;
    pad_input(xp, in, &t, s->pad_mode == PAD_REFLECT);
    for (int p = 0; p < 2; p++)
        for (int q = 0; q < 2; q++) {
            phase_weights(wp, weight, s->cout, s->cin, p, q);
            conv2d_forward(y, xp, wp, NULL, work, &t, NULL);
            /* its window at (p, q) to every other pixel of the output */
#pragma omp parallel for schedule(static)
            for (size_t c = 0; c < (size_t)s->n * s->cout; c++) {
                const float b = bias ? bias[c % s->cout] : 0.0f;
                for (int i = 0; i < h; i++) {
                    float *o = out + c * out_plane + (size_t)(2 * i + p) * s->wout + q;
                    const float *src = y + c * plane + (size_t)(i + p) * t.wout + q;
                    for (int j = 0; j < w; j++)
                        o[2 * j] = src[j] + b;
                }
            }
        }
    if (ep)
        epilogue_apply(out, ep->add, ep->relu, (size_t)s->n * s->cout * out_plane);
}
