/* JPEG compression artefacts (see degrade.h): a round trip through libjpeg in memory, as a
 * camera or a web service would save the photo (baseline, 4:2:0 chroma, the standard
 * quantisation tables scaled by quality, integer DCT so the result is the same on every
 * machine). libjpeg reports errors through error_exit, which by default exits the process:
 * here it jumps back and the error is returned. Without libjpeg (the GPU machine has none)
 * the degradation is an error. */
#ifndef PERCEPT_HAVE_JPEG
#include "degrade.h"
#include "percept/percept.h"

int degrade_jpeg(float *dst, const float *src, int h, int w, int quality)
{
    return percept_fail("jpeg degradation: this percept was built without libjpeg");
}
#else
#include <setjmp.h>
#include <stdio.h> /* before jpeglib.h, which uses FILE */
#include <stdlib.h>

#include <jpeglib.h>

#include "degrade.h"
#include "percept/percept.h"

typedef struct {
    struct jpeg_error_mgr mgr;
    jmp_buf back;
    char message[JMSG_LENGTH_MAX];
} JpegError;

static void on_error(j_common_ptr cinfo)
{
    JpegError *e = (JpegError *)cinfo->err;
    e->mgr.format_message(cinfo, e->message);
    longjmp(e->back, 1);
}

static unsigned char to_byte(float v)
{
    v = v * 255.0f + 0.5f;
    return v <= 0 ? 0 : v >= 255 ? 255 : (unsigned char)v;
}

/* Everything the round trip allocates, so one exit path frees it after a longjmp. */
typedef struct {
    struct jpeg_compress_struct c;
    struct jpeg_decompress_struct d;
    unsigned char *rgb, *file;
    unsigned long file_size;
} RoundTrip;

static int round_trip(RoundTrip *rt, JpegError *err, int h, int w, int quality)
{
    rt->c.err = jpeg_std_error(&err->mgr);
    err->mgr.error_exit = on_error;
    jpeg_create_compress(&rt->c);
    jpeg_mem_dest(&rt->c, &rt->file, &rt->file_size);
    rt->c.image_width = (JDIMENSION)w;
    rt->c.image_height = (JDIMENSION)h;
    rt->c.input_components = 3;
    rt->c.in_color_space = JCS_RGB;
    jpeg_set_defaults(&rt->c);
    rt->c.dct_method = JDCT_ISLOW;
    jpeg_set_quality(&rt->c, quality, TRUE);
    jpeg_start_compress(&rt->c, TRUE);
    while (rt->c.next_scanline < rt->c.image_height) {
        JSAMPROW row = rt->rgb + (size_t)rt->c.next_scanline * w * 3;
        jpeg_write_scanlines(&rt->c, &row, 1);
    }
    jpeg_finish_compress(&rt->c);

    rt->d.err = &err->mgr;
    jpeg_create_decompress(&rt->d);
    jpeg_mem_src(&rt->d, rt->file, rt->file_size);
    jpeg_read_header(&rt->d, TRUE);
    rt->d.out_color_space = JCS_RGB;
    rt->d.dct_method = JDCT_ISLOW;
    rt->d.do_fancy_upsampling = TRUE;
    jpeg_start_decompress(&rt->d);
    while (rt->d.output_scanline < rt->d.output_height) {
        JSAMPROW row = rt->rgb + (size_t)rt->d.output_scanline * w * 3;
        jpeg_read_scanlines(&rt->d, &row, 1);
    }
    jpeg_finish_decompress(&rt->d);
    return 0;
}

int degrade_jpeg(float *dst, const float *src, int h, int w, int quality)
{
    if (h < 1 || w < 1 || h > JPEG_MAX_DIMENSION || w > JPEG_MAX_DIMENSION || quality < 1 ||
        quality > 100)
        return percept_fail("jpeg degradation: %d×%d (at most %d a side) at quality %d "
                            "(1..100)", w, h, (int)JPEG_MAX_DIMENSION, quality);
    size_t plane = (size_t)h * w;
    RoundTrip rt = {0};
    JpegError err = {0};
    rt.rgb = malloc(3 * plane);
    if (!rt.rgb)
        return percept_fail("out of memory");
    for (size_t i = 0; i < plane; i++)
        for (int c = 0; c < 3; c++)
            rt.rgb[3 * i + c] = to_byte(src[c * plane + i]);
    int rc;
    if (setjmp(err.back))
        rc = percept_fail("jpeg degradation: libjpeg: %s", err.message);
    else
        rc = round_trip(&rt, &err, h, w, quality);
    if (!rc)
        for (size_t i = 0; i < plane; i++)
            for (int c = 0; c < 3; c++)
                dst[c * plane + i] = rt.rgb[3 * i + c] / 255.0f;
    jpeg_destroy_compress(&rt.c);
    jpeg_destroy_decompress(&rt.d);
    free(rt.file);
    free(rt.rgb);
    return rc;
}
#endif
