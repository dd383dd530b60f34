/* Loss curves as a PNG (see plot.h): drawn into an RGB image by hand (a few lines of
 * Bresenham), saved through GEGL, so plotting needs no library of its own. */
#include <glib.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "images.h"
#include "plot.h"

#define W 800
#define H 400
#define MARGIN 20
#define MAX_SERIES 12

static const float colours[MAX_SERIES][3] = {
    {0.12f, 0.47f, 0.71f}, {1.00f, 0.50f, 0.05f}, {0.17f, 0.63f, 0.17f}, {0.84f, 0.15f, 0.16f},
    {0.58f, 0.40f, 0.74f}, {0.55f, 0.34f, 0.29f}, {0.89f, 0.47f, 0.76f}, {0.50f, 0.50f, 0.50f},
    {0.74f, 0.74f, 0.13f}, {0.09f, 0.75f, 0.81f}, {0.00f, 0.00f, 0.00f}, {0.40f, 0.20f, 0.60f},
};

static void dot(float *img, int x, int y, const float *c)
{
    if (x < 0 || x >= W || y < 0 || y >= H)
        return;
    for (int k = 0; k < 3; k++)
        img[(size_t)k * W * H + (size_t)y * W + x] = c[k];
}

static void line(float *img, int x0, int y0, int x1, int y1, const float *c)
{
    int dx = abs(x1 - x0), dy = -abs(y1 - y0), sx = x0 < x1 ? 1 : -1, sy = y0 < y1 ? 1 : -1;
    for (int err = dx + dy;;) {
        dot(img, x0, y0, c);
        dot(img, x0, y0 + 1, c); /* two pixels thick */
        if (x0 == x1 && y0 == y1)
            break;
        int e2 = 2 * err;
        if (e2 >= dy) {
            err += dy;
            x0 += sx;
        }
        if (e2 <= dx) {
            err += dx;
            y0 += sy;
        }
    }
}

int plot_training_log(const char *csv_path, const char *png_path)
{
    gchar *text;
    if (!g_file_get_contents(csv_path, &text, NULL, NULL))
        return percept_fail("%s: cannot read the log", csv_path);
    char **lines = g_strsplit(text, "\n", -1);
    g_free(text);
    char **header = g_strsplit(lines[0] ? lines[0] : "", ",", -1);
    int n_cols = (int)g_strv_length(header);
    g_strfreev(header);
    /* columns 0 (step) and 1 (seconds) are the axes' business; the rest are plotted */
    int series = n_cols - 2 < MAX_SERIES ? n_cols - 2 : MAX_SERIES, rows = 0;
    double *v = g_new(double, (size_t)g_strv_length(lines) * (series + 1));
    for (char **l = lines + 1; *l && series > 0; l++) {
        char **cells = g_strsplit(*l, ",", -1);
        if (g_strv_length(cells) >= (guint)(series + 2)) {
            v[rows * (series + 1)] = g_ascii_strtod(cells[0], NULL);
            for (int s = 0; s < series; s++)
                v[rows * (series + 1) + 1 + s] = *cells[s + 2] ? g_ascii_strtod(cells[s + 2], NULL)
                                                               : NAN;
            rows++;
        }
        g_strfreev(cells);
    }
    g_strfreev(lines);
    if (rows < 2) {
        g_free(v);
        return percept_fail("%s: fewer than two rows to plot", csv_path);
    }
    float *img = g_new(float, 3 * W * H);
    for (int i = 0; i < 3 * W * H; i++)
        img[i] = 1.0f;
    const float grey[3] = {0.85f, 0.85f, 0.85f};
    for (int g = 0; g <= 4; g++) {
        int y = MARGIN + g * (H - 2 * MARGIN) / 4;
        line(img, MARGIN, y, W - MARGIN, y, grey);
    }
    double x0 = v[0], x1 = v[(rows - 1) * (series + 1)];
    for (int s = 0; s < series; s++) {
        double lo = INFINITY, hi = -INFINITY;
        for (int r = 0; r < rows; r++) {
            double y = v[r * (series + 1) + 1 + s];
            if (isfinite(y)) {
                lo = fmin(lo, y);
                hi = fmax(hi, y);
            }
        }
        if (!(hi > lo))
            continue;
        int px = -1, py = -1;
        for (int r = 0; r < rows; r++) {
            double y = v[r * (series + 1) + 1 + s];
            if (!isfinite(y))
                continue;
            int x = MARGIN + (int)((v[r * (series + 1)] - x0) / (x1 - x0) * (W - 2 * MARGIN));
            int yy = H - MARGIN - (int)((y - lo) / (hi - lo) * (H - 2 * MARGIN));
            if (px >= 0)
                line(img, px, py, x, yy, colours[s]);
            px = x;
            py = yy;
        }
    }
    g_free(v);
    PerceptTensor t = {1, 3, H, W, img};
    int rc = image_save_rgb(png_path, &t, 0);
    g_free(img);
    return rc;
}
