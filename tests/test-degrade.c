/* The trainer's degradations: blur and bicubic keep flat images flat and conserve the mean;
 * the JPEG round trip is deterministic, quantised to 8 bits, loses more at lower quality,
 * is near-lossless at quality 100, and bad arguments are errors, not exits. */
#include "check.h"
#include "degrade.h"

/* a test photo: smooth gradients, an edge and fine texture */
static void test_image(float *x, int h, int w)
{
    float noise[64 * 64];
    fill_uniform(noise, (size_t)h * w, 7, -0.08f, 0.08f);
    for (int c = 0; c < 3; c++)
        for (int y = 0; y < h; y++)
            for (int i = 0; i < w; i++) {
                float v = 0.2f + 0.5f * (float)(y + c * 5) / h + (i > w / 2 ? 0.2f : 0.0f);
                x[((size_t)c * h + y) * w + i] = v + noise[(size_t)y * w + i] * (c + 1) / 3;
            }
}

static double psnr(const float *a, const float *b, size_t n)
{
    double se = 0;
    for (size_t i = 0; i < n; i++)
        se += ((double)a[i] - b[i]) * ((double)a[i] - b[i]);
    return 10 * log10(n / (se > 0 ? se : 1e-30));
}

static void test_flat(void)
{
    enum { H = 24, W = 20 };
    float src[3 * H * W], dst[3 * H * W], small[3 * 6 * 5];
    for (int i = 0; i < 3 * H * W; i++)
        src[i] = 0.25f * (i / (H * W) + 1);
    CHECK(degrade_blur(dst, src, 3, H, W, 1.5f) == 0, "blur failed");
    double err = 0;
    for (int i = 0; i < 3 * H * W; i++)
        err = fmax(err, fabs(dst[i] - src[i]));
    CHECK(err < 1e-6, "blur changed a flat image by %g", err);
    CHECK(degrade_bicubic(small, 6, 5, src, 3, H, W) == 0, "bicubic failed");
    err = 0;
    for (int i = 0; i < 3 * 6 * 5; i++)
        err = fmax(err, fabs(small[i] - 0.25f * (i / 30 + 1)));
    CHECK(err < 1e-6, "bicubic changed a flat image by %g", err);
}

static void test_jpeg(void)
{
    enum { H = 64, W = 48, N = 3 * H * W };
    static float src[N], a[N], b[N];
    test_image(src, H, W);
    double previous = 0;
    const int qualities[] = {10, 30, 50, 90};
    for (int k = 0; k < 4; k++) {
        CHECK(degrade_jpeg(a, src, H, W, qualities[k]) == 0, "jpeg %d failed: %s", qualities[k],
              percept_error());
        double p = psnr(a, src, N);
        CHECK(p > previous + 0.5, "quality %d: PSNR %.2f dB, not above %.2f of the lower quality",
              qualities[k], p, previous);
        CHECK(p < 45, "quality %d: PSNR %.2f dB, no artefacts at all", qualities[k], p);
        previous = p;
    }
    CHECK(degrade_jpeg(a, src, H, W, 100) == 0 && psnr(a, src, N) > 38,
          "quality 100: PSNR %.2f dB", psnr(a, src, N));

    int quantised = 1, in_range = 1;
    CHECK(degrade_jpeg(a, src, H, W, 20) == 0, "jpeg 20 failed");
    for (int i = 0; i < N; i++) {
        float v = a[i] * 255;
        quantised &= fabsf(v - roundf(v)) < 1e-3f;
        in_range &= a[i] >= 0 && a[i] <= 1;
    }
    CHECK(quantised && in_range, "output not 8-bit values in 0..1");
    memcpy(b, src, sizeof b);
    CHECK(degrade_jpeg(b, b, H, W, 20) == 0 && !memcmp(a, b, sizeof a),
          "in place, or a second run, differs");

    float one[3] = {0.1f, 0.5f, 0.9f}, out[3];
    CHECK(degrade_jpeg(out, one, 1, 1, 50) == 0 && fabsf(out[0] - 0.1f) < 0.05f &&
              fabsf(out[2] - 0.9f) < 0.05f,
          "1×1 image: %g %g %g", out[0], out[1], out[2]);
    CHECK(degrade_jpeg(a, src, H, W, 0) == -1 && strstr(percept_error(), "quality 0"),
          "quality 0 accepted: %s", percept_error());
    CHECK(degrade_jpeg(a, src, H, W, 101) == -1, "quality 101 accepted");
    CHECK(degrade_jpeg(a, src, 0, W, 50) == -1, "an empty image accepted");
    CHECK(degrade_jpeg(a, src, 70000, 70000, 50) == -1, "70000² (beyond JPEG's 65500) accepted");
}

int main(void)
{
    test_flat();
    test_jpeg();
    return check_done("test-degrade");
}
