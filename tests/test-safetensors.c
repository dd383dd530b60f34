/* safetensors: round trips (F32 exact, F16 to half precision, metadata with awkward
 * characters), a table of broken files each rejected with a message that says why, and
 * the writer's failure paths. */
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "half.h"
#include "percept/percept.h"

static char tmpdir[256];

/* A file image: 8-byte length, header, data. */
static uint8_t *make_file(const char *header, const void *data, size_t data_len, size_t *size,
                          uint64_t claimed_len)
{
    size_t hlen = strlen(header);
    *size = 8 + hlen + data_len;
    uint8_t *b = malloc(*size);
    uint64_t len = claimed_len ? claimed_len : hlen;
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)(len >> (8 * i));
    memcpy(b + 8, header, hlen);
    if (data_len)
        memcpy(b + 8 + hlen, data, data_len);
    return b;
}

static void check_round_trip(void)
{
    char path[512];
    snprintf(path, sizeof path, "%s/rt-%d.safetensors", tmpdir, (int)getpid());
    float a[6] = {1.5f, -2.25f, 3e-8f, 65504.0f, -0.0f, 1e-3f}, b[3] = {0.1f, 0.2f, 0.3f};
    PerceptStWrite t[3] = {{"a", PERCEPT_DTYPE_F32, 2, {2, 3}, a},
                           {"half", PERCEPT_DTYPE_F16, 2, {3, 2}, a},
                           {"b.bias", PERCEPT_DTYPE_F32, 1, {3}, b}};
    PerceptStMeta meta[2] = {{"percept.task", "upscale"},
                             {"note", "quotes \" backslash \\ newline \n unicode ×→é"}};
    CHECK(percept_st_write(path, t, 3, meta, 2) == 0, "write: %s", percept_error());
    PerceptSafetensors *st = percept_st_read(path);
    CHECK(st != NULL, "read back: %s", percept_error());
    if (st) {
        const PerceptStTensor *ta = percept_st_find(st, "a"), *th = percept_st_find(st, "half");
        CHECK(st->n_tensors == 3 && ta && th && percept_st_find(st, "b.bias") &&
              !percept_st_find(st, "nope"), "tensor lookup");
        CHECK(ta && ta->ndim == 2 && ta->shape[0] == 2 && ta->shape[1] == 3 &&
              !memcmp(ta->data, a, sizeof a), "F32 round trip is not exact");
        int ok = th && th->dtype == PERCEPT_DTYPE_F16 && th->shape[0] == 3;
        for (int i = 0; ok && i < 6; i++)
            ok = fabsf(th->data[i] - a[i]) <= fmaxf(fabsf(a[i]) * 1e-3f, 6e-8f);
        CHECK(ok, "F16 round trip beyond half precision");
        CHECK(percept_st_meta(st, "note") && !strcmp(percept_st_meta(st, "note"), meta[1].value),
              "metadata round trip: %s", percept_st_meta(st, "note"));
        percept_st_free(st);
    }
    /* the header is padded to 8 bytes and the file is what numpy/PyTorch expect */
    FILE *f = fopen(path, "rb");
    uint8_t len[8];
    CHECK(f && fread(len, 1, 8, f) == 8 && len[0] % 8 == 0, "header length not 8-aligned");
    if (f)
        fclose(f);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0644, "file mode %o", sb.st_mode & 0777);
    unlink(path);
}

static void check_half(void)
{
    /* exact values, rounding to nearest even, subnormals, overflow, NaN */
    static const struct { float f; uint16_t h; } rows[] = {
        {1.0f, 0x3c00}, {-2.0f, 0xc000}, {65504.0f, 0x7bff}, {65520.0f, 0x7c00},
        {5.9604645e-8f, 0x0001}, {6.1035156e-5f, 0x0400}, {0.0f, 0x0000},
        {1.0009765625f, 0x3c01}, {1.00048828125f, 0x3c00}, {1.00146484375f, 0x3c02},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        CHECK(float_to_half(rows[i].f) == rows[i].h, "float_to_half(%g) = %04x, want %04x",
              rows[i].f, float_to_half(rows[i].f), rows[i].h);
    int bad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
            continue; /* NaN payloads */
        bad += float_to_half(half_to_float((uint16_t)h)) != h;
    }
    CHECK(!bad, "%d half values do not survive half->float->half", bad);
    CHECK(isnan(half_to_float(float_to_half(NAN))), "NaN lost");
}

static void check_bad_files(void)
{
    float two[2] = {1, 2};
    float nan2[2] = {1, NAN}, inf2[2] = {INFINITY, 1};
    uint8_t zeros[64] = {0};
    static const char *ok_header = "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}";
    struct {
        const char *label, *header;
        const void *data;
        size_t data_len;
        uint64_t claimed;
        size_t truncate; /* bytes kept, 0 = all */
        const char *expect; /* NULL: must load */
    } rows[] = {
        {"valid", ok_header, two, 8, 0, 0, NULL},
        {"empty header", "{}", NULL, 0, 0, 0, NULL},
        {"zero-size tensor", "{\"w\":{\"dtype\":\"F32\",\"shape\":[0,3],\"data_offsets\":[0,0]}}", NULL, 0, 0, 0, NULL},
        {"too short", ok_header, two, 8, 0, 5, "too short"},
        {"data truncated", ok_header, two, 8, 0, 8 + 54 + 5, "out of range"},
        {"header past end", ok_header, two, 8, 1000, 0, "past the end"},
        {"2 GB header claim", ok_header, two, 8, (uint64_t)2 << 30, 0, "past the end"},
        {"invalid JSON", "{\"w\":{\"dtype\":\"F32\",", zeros, 8, 0, 0, "not valid JSON"},
        {"JSON not an object", "[1,2,3]", NULL, 0, 0, 0, "not a JSON object"},
        {"unknown dtype", "{\"w\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}", zeros, 4, 0, 0, "unsupported dtype BF16"},
        {"no dtype", "{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", two, 8, 0, 0, "no dtype"},
        {"shape not a list", "{\"w\":{\"dtype\":\"F32\",\"shape\":2,\"data_offsets\":[0,8]}}", two, 8, 0, 0, "shape must be a list"},
        {"negative dim", "{\"w\":{\"dtype\":\"F32\",\"shape\":[-2],\"data_offsets\":[0,8]}}", two, 8, 0, 0, "non-negative"},
        {"overflowing shape", "{\"w\":{\"dtype\":\"F32\",\"shape\":[4294967296,4294967296,16],\"data_offsets\":[0,8]}}", two, 8, 0, 0, "more elements than the file holds"},
        {"offsets out of range", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,16]}}", two, 8, 0, 0, "out of range"},
        {"offsets reversed", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[8,0]}}", two, 8, 0, 0, "out of range"},
        {"offsets size mismatch", "{\"w\":{\"dtype\":\"F32\",\"shape\":[3],\"data_offsets\":[0,8]}}", two, 8, 0, 0, "need 12"},
        {"offsets overlapping", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", two, 8, 0, 0, "overlaps"},
        {"hole in data", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", two, 8, 0, 0, "belong to no tensor"},
        {"trailing bytes", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]}}", two, 8, 0, 0, "after the last tensor"},
        {"duplicate name", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", two, 8, 0, 0, "listed twice"},
        {"metadata not strings", "{\"__metadata__\":{\"a\":1}}", NULL, 0, 0, 0, "not a string"},
        {"NaN value", ok_header, nan2, 8, 0, 0, "contains NaN at index 1"},
        {"Inf value", ok_header, inf2, 8, 0, 0, "contains Inf at index 0"},
        {"entry not object", "{\"w\":3}", NULL, 0, 0, 0, "not an object"},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        size_t size;
        uint8_t *b = make_file(rows[i].header, rows[i].data, rows[i].data_len, &size, rows[i].claimed);
        if (rows[i].truncate)
            size = rows[i].truncate;
        percept_error_clear();
        PerceptSafetensors *st = percept_st_parse(b, size, "bad.safetensors");
        if (!rows[i].expect)
            CHECK(st != NULL, "%s: should load: %s", rows[i].label, percept_error());
        else
            CHECK(!st && strstr(percept_error(), rows[i].expect), "%s: expected '%s', got '%s'",
                  rows[i].label, rows[i].expect, st ? "(loaded)" : percept_error());
        if (st && !strcmp(rows[i].label, "zero-size tensor"))
            CHECK(st->n_tensors == 1 && st->tensors[0].numel == 0, "zero-size tensor kept");
        percept_st_free(st);
        /* the same through a file: the message names it */
        if (rows[i].expect && i % 4 == 3) {
            char path[512];
            snprintf(path, sizeof path, "%s/bad-%zu-%d.safetensors", tmpdir, i, (int)getpid());
            FILE *f = fopen(path, "wb");
            fwrite(b, 1, size, f);
            fclose(f);
            st = percept_st_read(path);
            CHECK(!st && strstr(percept_error(), path) && strstr(percept_error(), rows[i].expect),
                  "%s via file: '%s'", rows[i].label, percept_error());
            percept_st_free(st);
            unlink(path);
        }
        free(b);
    }
    PerceptSafetensors *st = percept_st_read("/nonexistent/dir/x.safetensors");
    CHECK(!st && strstr(percept_error(), "/nonexistent/dir/x.safetensors") &&
          strstr(percept_error(), "No such file"), "missing file: %s", percept_error());
    st = percept_st_read(tmpdir);
    CHECK(!st && strstr(percept_error(), "not a regular file"), "directory: %s", percept_error());
}

static void check_writer_failures(void)
{
    float v[2] = {1, NAN};
    PerceptStWrite t = {"w", PERCEPT_DTYPE_F32, 1, {1}, v};
    CHECK(percept_st_write("/nonexistent/dir/out.safetensors", &t, 1, NULL, 0) == -1 &&
          strstr(percept_error(), "/nonexistent/dir/out.safetensors") &&
          strstr(percept_error(), "No such file"), "unwritable dir: %s", percept_error());
    char path[512];
    snprintf(path, sizeof path, "%s/nan-%d.safetensors", tmpdir, (int)getpid());
    t.shape[0] = 2;
    CHECK(percept_st_write(path, &t, 1, NULL, 0) == -1 && strstr(percept_error(), "NaN") &&
          access(path, F_OK) != 0, "NaN tensor written: %s", percept_error());
    PerceptStWrite dup[2] = {{"w", PERCEPT_DTYPE_F32, 1, {1}, v}, {"w", PERCEPT_DTYPE_F32, 1, {1}, v}};
    CHECK(percept_st_write(path, dup, 2, NULL, 0) == -1 && strstr(percept_error(), "twice"),
          "duplicate names written: %s", percept_error());
    /* nothing left behind: no temporary files in the directory */
    char cmd[600];
    snprintf(cmd, sizeof cmd, "ls %s | grep -q '\\.tmp\\.'", tmpdir);
    CHECK(system(cmd) != 0, "a temporary file was left in %s", tmpdir);
}

int main(void)
{
    const char *t = getenv("PERCEPT_TEST_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s/st-%d", t ? t : "/tmp", (int)getpid());
    mkdir(tmpdir, 0755);
    check_round_trip();
    check_half();
    check_bad_files();
    check_writer_failures();
    rmdir(tmpdir);
    return check_done("test-safetensors");
}
