/* safetensors: round trips (F32 exact, F16 to half precision, metadata with awkward
 * characters), the exact bytes the writer produces and an independent reader (Python's
 * json and struct, when there is a Python), half conversion against a reference, a table
 * of broken files each rejected with a message that says why, and the writer's failure
 * paths (nothing left behind, the old file kept). */
#include <dirent.h>
#include <signal.h>
#include <sys/resource.h>
#include <sys/stat.h>
#include <unistd.h>

#include "check.h"
#include "half.h"
#include "percept/percept.h"

static char tmpdir[256];

static void tmp_path(char *path, size_t size, const char *name)
{
    snprintf(path, size, "%s/%s", tmpdir, name);
}

static int file_exists(const char *path)
{
    return access(path, F_OK) == 0;
}

/* Temporary files the writer left in tmpdir ("x.safetensors.tmp.XXXXXX"). */
static int count_temp_files(void)
{
    DIR *d = opendir(tmpdir);
    int n = 0;
    struct dirent *e;
    while (d && (e = readdir(d)))
        n += strstr(e->d_name, ".tmp.") != NULL;
    if (d)
        closedir(d);
    return n;
}

static uint8_t *read_all(const char *path, size_t *size)
{
    FILE *f = fopen(path, "rb");
    uint8_t *b = NULL;
    *size = 0;
    if (f && !fseek(f, 0, SEEK_END)) {
        long n = ftell(f);
        rewind(f);
        b = n >= 0 ? malloc((size_t)n + 1) : NULL;
        if (b && fread(b, 1, (size_t)n, f) == (size_t)n)
            *size = (size_t)n;
    }
    if (f)
        fclose(f);
    return b;
}

static int write_all(const char *path, const uint8_t *b, size_t size)
{
    FILE *f = fopen(path, "wb");
    int ok = f && fwrite(b, 1, size, f) == size;
    if (f)
        ok &= fclose(f) == 0;
    return ok;
}

/* A file image: 8-byte length (the header's own, or a claimed one), header, data. */
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

/* ---- round trips ---------------------------------------------------------------- */

static const float rt_a[6] = {1.5f, -2.25f, 3e-8f, 65504.0f, -0.0f, 1e-3f};
static const float rt_b[3] = {0.1f, 0.2f, 0.3f};
static const char *rt_note = "quotes \" backslash \\ newline \n tab \t bell \x07 unicode ×→é 😀";

/* Within half precision: relative 2^-11 for normal halves, 2^-25 absolute below them. */
static int half_close(float got, float want)
{
    return fabsf(got - want) <= fmaxf(fabsf(want) * 0x1p-11f, 0x1p-25f);
}

static void write_rt_file(const char *path)
{
    PerceptStWrite t[4] = {{"a", PERCEPT_DTYPE_F32, 2, {2, 3}, rt_a},
                           {"half", PERCEPT_DTYPE_F16, 2, {3, 2}, rt_a},
                           {"b.bias", PERCEPT_DTYPE_F32, 1, {3}, rt_b},
                           {"empty", PERCEPT_DTYPE_F16, 2, {0, 4}, NULL}};
    PerceptStMeta meta[3] = {{"percept.task", "upscale"},
                             {"note", (char *)rt_note},
                             {"ключ", ""}};
    CHECK(percept_st_write(path, t, 4, meta, 3) == 0, "write: %s", percept_error());
}

static void check_rt_tensors(const PerceptSafetensors *st)
{
    const PerceptStTensor *ta = percept_st_find(st, "a"), *th = percept_st_find(st, "half"),
                          *te = percept_st_find(st, "empty");
    CHECK(st->n_tensors == 4 && ta && th && te && percept_st_find(st, "b.bias") &&
          !percept_st_find(st, "nope") && !percept_st_find(st, "__metadata__"), "tensor lookup");
    CHECK(ta && ta->dtype == PERCEPT_DTYPE_F32 && ta->ndim == 2 && ta->shape[0] == 2 &&
          ta->shape[1] == 3 && ta->numel == 6 && !memcmp(ta->data, rt_a, sizeof rt_a),
          "F32 round trip is not exact");
    int ok = th && th->dtype == PERCEPT_DTYPE_F16 && th->shape[0] == 3 && th->numel == 6;
    for (int i = 0; ok && i < 6; i++)
        ok = half_close(th->data[i], rt_a[i]) &&
             th->data[i] == half_to_float(float_to_half(rt_a[i]));
    CHECK(ok, "F16 round trip beyond half precision");
    CHECK(th && signbit(th->data[4]), "F16 lost the sign of -0");
    CHECK(te && te->numel == 0 && te->ndim == 2 && te->shape[0] == 0 && te->shape[1] == 4,
          "zero-size tensor round trip");
}

static void check_rt_meta(const PerceptSafetensors *st)
{
    const char *note = percept_st_meta(st, "note"), *empty = percept_st_meta(st, "ключ");
    CHECK(note && !strcmp(note, rt_note), "metadata round trip: %s", note ? note : "(none)");
    CHECK(empty && !empty[0], "empty metadata value with a Cyrillic key");
    CHECK(st->n_meta == 3 && !strcmp(st->meta[0].key, "percept.task"),
          "metadata order: %d entries, first %s", st->n_meta, st->n_meta ? st->meta[0].key : "-");
    CHECK(!percept_st_meta(st, "absent") && !percept_st_meta(NULL, "note") &&
          !percept_st_find(NULL, "a"), "lookups of absent things");
    const char *task = percept_st_task(st);
    CHECK(task && !strcmp(task, "upscale") && !percept_st_task(NULL), "task: %s",
          task ? task : "(none)");
}

/* A training checkpoint's task is the one it trains (percept.train_task); without that key
 * it has none. */
static void check_checkpoint_task(void)
{
    char path[512];
    tmp_path(path, sizeof path, "ckpt.safetensors");
    PerceptStWrite t = {"a", PERCEPT_DTYPE_F32, 2, {2, 3}, rt_a};
    for (int with_task = 0; with_task <= 1; with_task++) {
        PerceptStMeta meta[2] = {{"percept.task", "checkpoint"}, {"percept.train_task", "reconstruct"}};
        CHECK(percept_st_write(path, &t, 1, meta, 1 + with_task) == 0, "write: %s", percept_error());
        PerceptSafetensors *st = percept_st_read(path);
        const char *task = percept_st_task(st);
        CHECK(st && (with_task ? task && !strcmp(task, "reconstruct") : !task),
              "checkpoint %s percept.train_task: task %s", with_task ? "with" : "without",
              task ? task : "(none)");
        percept_st_free(st);
    }
    remove(path);
}

static void check_round_trip(void)
{
    char path[512];
    tmp_path(path, sizeof path, "rt.safetensors");
    write_rt_file(path);
    PerceptSafetensors *st = percept_st_read(path);
    CHECK(st != NULL, "read back: %s", percept_error());
    if (st) {
        check_rt_tensors(st);
        check_rt_meta(st);
        CHECK(!strcmp(st->path, path), "path kept: %s", st->path);
        percept_st_free(st);
    }
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0644, "file mode %o", sb.st_mode & 0777);
    /* the same bytes parse from memory too */
    size_t size;
    uint8_t *b = read_all(path, &size);
    st = b ? percept_st_parse(b, size, "rt") : NULL;
    CHECK(st && st->n_tensors == 4, "parse from memory: %s", percept_error());
    percept_st_free(st);
    free(b);
    /* nothing at all: a valid file with the header {} */
    CHECK(percept_st_write(path, NULL, 0, NULL, 0) == 0, "empty write: %s", percept_error());
    st = percept_st_read(path);
    CHECK(st && st->n_tensors == 0 && st->n_meta == 0, "empty file: %s", percept_error());
    percept_st_free(st);
    unlink(path);
}

/* The writer's exact bytes: length, metadata first, tensors in the caller's order,
 * integers as integers, padding with spaces to 8, little-endian data. */
static void check_writer_bytes(void)
{
    char path[512];
    tmp_path(path, sizeof path, "bytes.safetensors");
    float w[2] = {1.0f, -2.0f}, h[1] = {0.5f};
    PerceptStWrite t[2] = {{"w", PERCEPT_DTYPE_F32, 1, {2}, w}, {"h", PERCEPT_DTYPE_F16, 0, {0}, h}};
    PerceptStMeta meta = {"k", "v\"1"};
    CHECK(percept_st_write(path, t, 2, &meta, 1) == 0, "write: %s", percept_error());
    const char *json = "{\"__metadata__\":{\"k\":\"v\\\"1\"},"
                       "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
                       "\"h\":{\"dtype\":\"F16\",\"shape\":[],\"data_offsets\":[8,10]}}";
    size_t jlen = strlen(json), padded = (jlen + 7) / 8 * 8, size;
    uint8_t want[256] = {0};
    want[0] = (uint8_t)padded;
    memcpy(want + 8, json, jlen);
    memset(want + 8 + jlen, ' ', padded - jlen);
    static const uint8_t data[10] = {0, 0, 0x80, 0x3f, 0, 0, 0, 0xc0, 0x00, 0x38};
    memcpy(want + 8 + padded, data, sizeof data);
    uint8_t *got = read_all(path, &size);
    CHECK(got && size == 8 + padded + sizeof data && !memcmp(got, want, size),
          "writer bytes differ (%zu bytes, want %zu)", size, 8 + padded + sizeof data);
    free(got);
    unlink(path);
}

/* Python's json and struct modules as a second reader: a strict JSON parser, and
 * struct's 'e' format as an independent round-to-nearest-even F16 encoder. */
static const char *python_reader =
    "import json, struct, sys\n"
    "b = open(sys.argv[1], 'rb').read()\n"
    "n, = struct.unpack('<Q', b[:8])\n"
    "assert n % 8 == 0 and 8 + n <= len(b), 'header length'\n"
    "h = json.loads(b[8:8 + n].decode('utf-8'))\n"
    "meta = h.pop('__metadata__')\n"
    "assert meta == {'percept.task': 'upscale', 'ключ': '',\n"
    "    'note': 'quotes \" backslash \\\\ newline \\n tab \\t bell \\x07 unicode ×→é 😀'}, meta\n"
    "data = b[8 + n:]\n"
    "vals = struct.unpack('<6f', struct.pack('<6f', 1.5, -2.25, 3e-8, 65504.0, -0.0, 1e-3))\n"
    "want = {'a': ('F32', [2, 3], struct.pack('<6f', *vals)),\n"
    "        'half': ('F16', [3, 2], struct.pack('<6e', *vals)),\n"
    "        'b.bias': ('F32', [3], struct.pack('<3f', 0.1, 0.2, 0.3)),\n"
    "        'empty': ('F16', [0, 4], b'')}\n"
    "assert sorted(h) == sorted(want), sorted(h)\n"
    "end = 0\n"
    "for k, e in h.items():\n"
    "    s, t = e['data_offsets']\n"
    "    assert (e['dtype'], e['shape'], data[s:t]) == want[k], k\n"
    "    end = max(end, t)\n"
    "assert end == len(data), 'trailing data'\n";

static void check_python_reader(void)
{
    if (system("/usr/bin/python3 -c 'import json, struct' >/dev/null 2>&1") != 0) {
        printf("no /usr/bin/python3: cross-check with Python skipped\n");
        return;
    }
    char path[512], script[512], cmd[1200];
    tmp_path(path, sizeof path, "py.safetensors");
    tmp_path(script, sizeof script, "reader.py");
    CHECK(write_all(script, (const uint8_t *)python_reader, strlen(python_reader)), "script");
    write_rt_file(path);
    snprintf(cmd, sizeof cmd, "/usr/bin/python3 '%s' '%s'", script, path);
    CHECK(system(cmd) == 0, "Python's reading of the file disagrees (see its message above)");
    unlink(path);
    unlink(script);
}

/* ---- half conversion -------------------------------------------------------------- */

/* Reference float -> half in double arithmetic (nearbyint rounds ties to even). */
static uint16_t ref_half(float f)
{
    uint16_t sign = signbit(f) ? 0x8000 : 0;
    double a = fabs((double)f);
    if (isnan(f))
        return sign | 0x7e00;
    if (isinf(f))
        return sign | 0x7c00;
    if (a < 0x1p-14) /* subnormal: a multiple of 2^-24; 1024 is the smallest normal */
        return sign | (uint16_t)nearbyint(a * 0x1p24);
    int e;
    frexp(a, &e); /* a = m 2^e, m in [0.5, 1) */
    double r = nearbyint(ldexp(a, 11 - e)); /* 11 significant bits */
    if (r == 2048)
        r = 1024, e++;
    if (e - 1 + 15 >= 31)
        return sign | 0x7c00;
    return sign | (uint16_t)((e - 1 + 15) << 10 | ((int)r - 1024));
}

static void check_half(void)
{
    static const struct { float f; uint16_t h; } rows[] = {
        {1.0f, 0x3c00}, {-2.0f, 0xc000}, {65504.0f, 0x7bff}, {65519.99f, 0x7bff},
        {65520.0f, 0x7c00}, {1e10f, 0x7c00}, {-INFINITY, 0xfc00},
        {5.9604645e-8f, 0x0001}, {2.9802322e-8f, 0x0000}, {2.9802326e-8f, 0x0001},
        {6.1035156e-5f, 0x0400}, {6.0975552e-5f, 0x03ff}, {0.0f, 0x0000}, {-0.0f, 0x8000},
        {1.0009765625f, 0x3c01}, {1.00048828125f, 0x3c00}, {1.00146484375f, 0x3c02},
    };
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++)
        CHECK(float_to_half(rows[i].f) == rows[i].h, "float_to_half(%.9g) = %04x, want %04x",
              rows[i].f, float_to_half(rows[i].f), rows[i].h);
    int bad = 0, bad_ref = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {
        if ((h & 0x7c00) == 0x7c00 && (h & 0x3ff))
            continue; /* NaN payloads */
        bad += float_to_half(half_to_float((uint16_t)h)) != h;
        /* the midpoint to the next half, and a float either side: every rounding tie
         * (past the largest half, the next would be 2^16: the tie that overflows) */
        if ((h & 0x7fff) >= 0x7c00)
            continue;
        double next = (h & 0x7fff) == 0x7bff ? copysign(65536.0, half_to_float((uint16_t)h))
                                             : half_to_float((uint16_t)(h + 1));
        float mid = (float)(((double)half_to_float((uint16_t)h) + next) / 2);
        float probes[3] = {mid, nextafterf(mid, 0), nextafterf(mid, INFINITY * mid)};
        for (int k = 0; k < 3; k++)
            bad_ref += float_to_half(probes[k]) != ref_half(probes[k]);
    }
    CHECK(!bad, "%d half values do not survive half->float->half", bad);
    CHECK(!bad_ref, "%d rounding ties differ from the reference", bad_ref);
    /* a sweep over float bit patterns against the reference */
    int sweep = 0;
    for (uint64_t x = 0; x < 0x100000000ull; x += 4099) {
        uint32_t bits = (uint32_t)x;
        float f;
        memcpy(&f, &bits, sizeof f);
        if (!isnan(f))
            sweep += float_to_half(f) != ref_half(f);
    }
    CHECK(!sweep, "%d floats convert differently from the reference", sweep);
    CHECK(isnan(half_to_float(float_to_half(NAN))), "NaN lost");
    CHECK(half_to_float(0x0001) == 0x1p-24f && half_to_float(0x8400) == -0x1p-14f &&
          isinf(half_to_float(0xfc00)) && half_to_float(0xfc00) < 0, "half_to_float specials");
}

/* ---- broken files -------------------------------------------------------------------- */

#define OK_HEADER "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}"
#define F16_HEADER "{\"w\":{\"dtype\":\"F16\",\"shape\":[2],\"data_offsets\":[0,4]}}"
#define W_ENTRY(shape, offs) "{\"w\":{\"dtype\":\"F32\",\"shape\":" shape ",\"data_offsets\":" offs "}}"

typedef struct {
    const char *label, *header;
    const void *data;
    size_t data_len;
    uint64_t claimed;   /* header length written, 0: the true one */
    long keep;          /* bytes of the file kept, -1: all */
    size_t drop;        /* bytes cut from the end */
    int via_file;       /* also through percept_st_read: the message names the path */
    const char *expect; /* NULL: must load */
    int tensors;        /* when it loads: tensor count */
} Row;

static const float two[2] = {1, 2}, nan2[2] = {1, NAN}, inf2[2] = {INFINITY, 1};
static const uint16_t h_ok[2] = {0x3c00, 0xc000}, h_nan[2] = {0x3c00, 0x7e00},
                      h_inf[2] = {0xfc00, 0}, h_both[2] = {0x7c00, 0x7e00};
static const uint8_t zeros[64];

static const Row rows[] = {
    {"valid F32", OK_HEADER, two, 8, 0, -1, 0, 1, NULL, 1},
    {"valid F16", F16_HEADER, h_ok, 4, 0, -1, 0, 0, NULL, 1},
    {"empty header {}", "{}", NULL, 0, 0, -1, 0, 1, NULL, 0},
    {"header padded with spaces", "{}      ", NULL, 0, 0, -1, 0, 0, NULL, 0},
    {"zero-size tensor", W_ENTRY("[0,3]", "[0,0]"), NULL, 0, 0, -1, 0, 1, NULL, 1},
    {"zero-size tensor beside data", "{\"e\":{\"dtype\":\"F16\",\"shape\":[0],\"data_offsets\":[8,8]},"
     "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", two, 8, 0, -1, 0, 0, NULL, 2},
    {"scalar", W_ENTRY("[]", "[0,4]"), two, 4, 0, -1, 0, 0, NULL, 1},
    {"metadata null", "{\"__metadata__\":null}", NULL, 0, 0, -1, 0, 0, NULL, 0},
    {"empty file", OK_HEADER, two, 8, 0, 0, 0, 1, "too short (0 bytes)", 0},
    {"shorter than 8 bytes", OK_HEADER, two, 8, 0, 5, 0, 0, "too short (5 bytes)", 0},
    {"data shorter than offsets", OK_HEADER, two, 8, 0, -1, 3, 1,
     "data_offsets [0, 8] run past the end of the data (5 bytes", 0},
    {"header length past the end", OK_HEADER, two, 8, 1000, -1, 0, 0,
     "header length 1000 runs past the end of the file", 0},
    {"2 GB header claim", OK_HEADER, two, 8, (uint64_t)2 << 30, -1, 0, 1,
     "header length 2147483648 runs past the end", 0},
    {"2^64-1 header claim", OK_HEADER, two, 8, UINT64_MAX, -1, 0, 0, "runs past the end", 0},
    {"invalid JSON", "{\"w\":{\"dtype\":\"F32\",", zeros, 8, 0, -1, 0, 1, "not valid JSON", 0},
    {"text after the JSON", "{}  x", NULL, 0, 0, -1, 0, 0, "text after the JSON (byte 4)", 0},
    {"invalid UTF-8", "{\"\xff\":1}", NULL, 0, 0, -1, 0, 0, "not valid UTF-8 (byte 2)", 0},
    {"overlong UTF-8", "{\"\xc0\xaf\":1}", NULL, 0, 0, -1, 0, 0, "not valid UTF-8", 0},
    {"JSON not an object", "[1,2,3]", NULL, 0, 0, -1, 0, 0, "not a JSON object", 0},
    {"entry not an object", "{\"w\":3}", NULL, 0, 0, -1, 0, 0,
     "entry for tensor 'w' is not an object", 0},
    {"unknown dtype BF16", "{\"w\":{\"dtype\":\"BF16\",\"shape\":[2],\"data_offsets\":[0,4]}}",
     zeros, 4, 0, -1, 0, 1, "unsupported dtype BF16 for tensor 'w'", 0},
    {"unknown dtype I64", "{\"w\":{\"dtype\":\"I64\",\"shape\":[1],\"data_offsets\":[0,8]}}",
     zeros, 8, 0, -1, 0, 0, "unsupported dtype I64 for tensor 'w'", 0},
    {"no dtype", "{\"w\":{\"shape\":[2],\"data_offsets\":[0,8]}}", two, 8, 0, -1, 0, 0,
     "tensor 'w' has no dtype", 0},
    {"shape not a list", W_ENTRY("2", "[0,8]"), two, 8, 0, -1, 0, 0,
     "shape is missing or not a list", 0},
    {"no shape", "{\"w\":{\"dtype\":\"F32\",\"data_offsets\":[0,8]}}", two, 8, 0, -1, 0, 0,
     "shape is missing or not a list", 0},
    {"negative dim", W_ENTRY("[-2]", "[0,8]"), two, 8, 0, -1, 0, 1,
     "shape[0] is not a non-negative integer", 0},
    {"fractional dim", W_ENTRY("[1,2.5]", "[0,8]"), two, 8, 0, -1, 0, 0,
     "shape[1] is not a non-negative integer", 0},
    {"string dim", W_ENTRY("[\"2\"]", "[0,8]"), two, 8, 0, -1, 0, 0,
     "shape[0] is not a non-negative integer", 0},
    {"nine dims", W_ENTRY("[1,1,1,1,1,1,1,1,2]", "[0,8]"), two, 8, 0, -1, 0, 0,
     "9 dimensions (at most 8)", 0},
    {"overflowing shape", W_ENTRY("[4294967296,4294967296,16]", "[0,8]"), two, 8, 0, -1, 0, 1,
     "element count overflows", 0},
    {"overflow in bytes only", W_ENTRY("[2147483648,2147483648]", "[0,8]"), two, 8, 0, -1, 0, 0,
     "element count overflows", 0},
    {"huge shape, small offsets", W_ENTRY("[1099511627776]", "[0,8]"), two, 8, 0, -1, 0, 0,
     "span 8 bytes but shape and dtype need 4398046511104", 0},
    {"offsets out of range", W_ENTRY("[2]", "[8,16]"), two, 8, 0, -1, 0, 1,
     "data_offsets [8, 16] run past the end of the data (8 bytes", 0},
    {"offsets reversed", W_ENTRY("[2]", "[8,0]"), two, 8, 0, -1, 0, 0,
     "data_offsets [8, 0] are reversed", 0},
    {"offsets not a pair", W_ENTRY("[2]", "[0]"), two, 8, 0, -1, 0, 0,
     "data_offsets must be [begin, end]", 0},
    {"offsets negative", W_ENTRY("[2]", "[-8,0]"), two, 8, 0, -1, 0, 0,
     "data_offsets must be non-negative integers", 0},
    {"offsets size mismatch", W_ENTRY("[3]", "[0,8]"), two, 8, 0, -1, 0, 1,
     "data_offsets span 8 bytes but shape and dtype need 12", 0},
    {"offsets overlapping", "{\"a\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"b\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", two, 8, 0, -1, 0, 1,
     "tensors 'a' and 'b' overlap", 0},
    {"hole in the data", W_ENTRY("[1]", "[4,8]"), two, 8, 0, -1, 0, 0,
     "data bytes 0..4 belong to no tensor", 0},
    {"trailing bytes", W_ENTRY("[1]", "[0,4]"), two, 8, 0, -1, 0, 0,
     "4 bytes after the last tensor", 0},
    {"duplicate tensor name", "{\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[0,4]},"
     "\"w\":{\"dtype\":\"F32\",\"shape\":[1],\"data_offsets\":[4,8]}}", two, 8, 0, -1, 0, 1,
     "tensor 'w' is listed twice", 0},
    {"duplicate name, same bytes", "{\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]},"
     "\"w\":{\"dtype\":\"F32\",\"shape\":[2],\"data_offsets\":[0,8]}}", two, 8, 0, -1, 0, 0,
     "tensor 'w' is listed twice", 0},
    {"metadata not strings", "{\"__metadata__\":{\"a\":1}}", NULL, 0, 0, -1, 0, 1,
     "metadata value for 'a' is not a string", 0},
    {"metadata not an object", "{\"__metadata__\":[\"a\"]}", NULL, 0, 0, -1, 0, 0,
     "__metadata__ is not an object", 0},
    {"metadata twice", "{\"__metadata__\":{},\"__metadata__\":{}}", NULL, 0, 0, -1, 0, 0,
     "__metadata__ appears twice", 0},
    {"duplicate metadata key", "{\"__metadata__\":{\"a\":\"1\",\"b\":\"\",\"a\":\"2\"}}", NULL, 0,
     0, -1, 0, 0, "metadata key 'a' appears twice", 0},
    {"NaN value", OK_HEADER, nan2, 8, 0, -1, 0, 1, "tensor 'w' contains NaN at index 1", 0},
    {"Inf value", OK_HEADER, inf2, 8, 0, -1, 0, 0, "tensor 'w' contains Inf at index 0", 0},
    {"F16 NaN", F16_HEADER, h_nan, 4, 0, -1, 0, 0, "tensor 'w' contains NaN at index 1", 0},
    {"F16 -Inf", F16_HEADER, h_inf, 4, 0, -1, 0, 0, "tensor 'w' contains Inf at index 0", 0},
    {"F16 first bad index", F16_HEADER, h_both, 4, 0, -1, 0, 0, "contains Inf at index 0", 0},
};

static uint8_t *row_bytes(const Row *r, size_t *size)
{
    uint8_t *b = make_file(r->header, r->data, r->data_len, size, r->claimed);
    if (r->keep >= 0)
        *size = (size_t)r->keep;
    *size -= r->drop;
    return b;
}

/* A row that must load: its tensor count, and the first value where there is one. */
static void check_loaded(const Row *r, const PerceptSafetensors *st)
{
    CHECK(st != NULL, "%s: should load: %s", r->label, percept_error());
    if (!st)
        return;
    CHECK(st->n_tensors == r->tensors, "%s: %d tensors, want %d", r->label, st->n_tensors,
          r->tensors);
    const PerceptStTensor *w = percept_st_find(st, "w");
    if (w && w->numel)
        CHECK(w->data[0] == 1, "%s: w[0] = %g", r->label, w->data[0]);
    if (w && !strcmp(r->label, "valid F16"))
        CHECK(w->numel == 2 && w->data[1] == -2, "F16 values");
    if (w && !strcmp(r->label, "zero-size tensor"))
        CHECK(w->numel == 0 && w->ndim == 2 && w->shape[1] == 3 && w->data, "zero-size tensor");
}

static void check_row_in_memory(const Row *r, const uint8_t *b, size_t size)
{
    percept_error_clear();
    PerceptSafetensors *st = percept_st_parse(b, size, "bad.safetensors");
    if (!r->expect)
        check_loaded(r, st);
    else
        CHECK(!st && strstr(percept_error(), r->expect) &&
              !strncmp(percept_error(), "bad.safetensors: ", 17),
              "%s: expected 'bad.safetensors: …%s…', got '%s'", r->label, r->expect,
              st ? "(loaded)" : percept_error());
    percept_st_free(st);
}

static void check_row_via_file(const Row *r, const uint8_t *b, size_t size, size_t i)
{
    char name[64], path[512];
    snprintf(name, sizeof name, "row-%zu.safetensors", i);
    tmp_path(path, sizeof path, name);
    CHECK(write_all(path, b, size), "%s: cannot write %s", r->label, path);
    percept_error_clear();
    PerceptSafetensors *st = percept_st_read(path);
    if (!r->expect)
        check_loaded(r, st);
    else
        CHECK(!st && !strncmp(percept_error(), path, strlen(path)) &&
              strstr(percept_error(), r->expect), "%s via file: '%s'", r->label,
              st ? "(loaded)" : percept_error());
    percept_st_free(st);
    unlink(path);
}

static void check_bad_files(void)
{
    for (size_t i = 0; i < sizeof rows / sizeof *rows; i++) {
        size_t size;
        uint8_t *b = row_bytes(&rows[i], &size);
        check_row_in_memory(&rows[i], b, size);
        if (rows[i].via_file)
            check_row_via_file(&rows[i], b, size, i);
        free(b);
    }
}

/* A header over the 100 MB limit that does fit in the file: refused before JSON parsing.
 * calloc's untouched pages cost nothing. */
static void check_header_limit(void)
{
    size_t hlen = ((size_t)100 << 20) + 8, size = 8 + hlen;
    uint8_t *b = calloc(size, 1);
    if (!b)
        return;
    for (int i = 0; i < 8; i++)
        b[i] = (uint8_t)((uint64_t)hlen >> (8 * i));
    PerceptSafetensors *st = percept_st_parse(b, size, "big");
    CHECK(!st && strstr(percept_error(), "larger than the 104857600 bytes allowed"),
          "100 MB header limit: %s", percept_error());
    percept_st_free(st);
    free(b);
    st = percept_st_parse(NULL, 0, NULL);
    CHECK(!st && strstr(percept_error(), "too short"), "no bytes: %s", percept_error());
}

static void check_unreadable(void)
{
    PerceptSafetensors *st = percept_st_read("/nonexistent/dir/x.safetensors");
    CHECK(!st && !strncmp(percept_error(), "/nonexistent/dir/x.safetensors: ", 32) &&
          strstr(percept_error(), "No such file"), "missing file: %s", percept_error());
    st = percept_st_read(tmpdir);
    CHECK(!st && strstr(percept_error(), tmpdir) && strstr(percept_error(), "not a regular file"),
          "directory: %s", percept_error());
}

/* ---- writer failures -------------------------------------------------------------------- */

static void expect_write_failure(const char *label, const char *path, int rc, const char *expect)
{
    CHECK(rc == -1 && strstr(percept_error(), path) && strstr(percept_error(), expect),
          "%s: expected '%s', got '%s'", label, expect, rc ? percept_error() : "(written)");
    CHECK(count_temp_files() == 0, "%s: a temporary file was left behind", label);
}

/* Arguments the writer refuses before touching the disk. */
static void check_writer_arguments(void)
{
    char path[512];
    tmp_path(path, sizeof path, "args.safetensors");
    float v[2] = {1, NAN}, inf[1] = {INFINITY}, ok[2] = {1, 2};
    const struct {
        const char *label;
        PerceptStWrite t[2];
        int n;
        PerceptStMeta meta[2];
        int n_meta;
        const char *expect;
    } cases[] = {
        {"NaN", {{"w", PERCEPT_DTYPE_F32, 1, {2}, v}}, 1, {{0}}, 0, "contains NaN at index 1"},
        {"Inf as F16", {{"w", PERCEPT_DTYPE_F16, 1, {1}, inf}}, 1, {{0}}, 0, "contains Inf"},
        {"duplicate names", {{"w", 0, 1, {1}, ok}, {"w", 0, 1, {1}, ok}}, 2, {{0}}, 0,
         "tensor 'w' is given twice"},
        {"duplicate metadata", {{0}}, 0, {{"k", "a"}, {"k", "b"}}, 2, "metadata key 'k' is given twice"},
        {"unknown dtype", {{"w", (PerceptDtype)7, 1, {1}, ok}}, 1, {{0}}, 0, "unknown dtype 7"},
        {"negative size", {{"w", 0, 2, {2, -1}, ok}}, 1, {{0}}, 0, "negative size -1"},
        {"nine dims", {{"w", 0, 9, {1}, ok}}, 1, {{0}}, 0, "9 dimensions"},
        {"overflowing shape", {{"w", 0, 3, {1 << 30, 1 << 30, 1 << 30}, ok}}, 1, {{0}}, 0,
         "element count overflows"},
        {"no data", {{"w", 0, 1, {2}, NULL}}, 1, {{0}}, 0, "tensor 'w' has no data"},
        {"__metadata__ as a name", {{"__metadata__", 0, 1, {1}, ok}}, 1, {{0}}, 0,
         "'__metadata__' cannot name a tensor"},
        {"empty name", {{"", 0, 1, {1}, ok}}, 1, {{0}}, 0, "tensor 0 has no name"},
        {"invalid UTF-8 name", {{"w\xff", 0, 1, {1}, ok}}, 1, {{0}}, 0, "not valid UTF-8"},
        {"invalid UTF-8 value", {{0}}, 0, {{"k", "\xe2\x82"}}, 1, "value of 'k' is not valid UTF-8"},
        {"no metadata value", {{0}}, 0, {{"k", NULL}}, 1, "metadata entry 0 has no key or value"},
        {"negative count", {{0}}, -1, {{0}}, 0, "invalid arguments"},
    };
    for (size_t i = 0; i < sizeof cases / sizeof *cases; i++) {
        int rc = percept_st_write(path, cases[i].t, cases[i].n, cases[i].meta, cases[i].n_meta);
        expect_write_failure(cases[i].label, path, rc, cases[i].expect);
        CHECK(!file_exists(path), "%s: a file was written", cases[i].label);
        unlink(path);
    }
}

/* A file larger than RLIMIT_FSIZE fails mid-write (EFBIG, as a full disk fails with
 * ENOSPC): the message says why, the temporary file goes, the old file stays. */
static void check_write_too_large(const PerceptStWrite *small)
{
    char path[512];
    tmp_path(path, sizeof path, "limit.safetensors");
    CHECK(percept_st_write(path, small, 1, NULL, 0) == 0, "first write: %s", percept_error());
    static float big[16384];
    PerceptStWrite t = {"big", PERCEPT_DTYPE_F32, 1, {16384}, big};
    struct rlimit keep, lim;
    if (getrlimit(RLIMIT_FSIZE, &keep) || keep.rlim_cur < 65536)
        return;
    lim = keep;
    lim.rlim_cur = 8192;
    void (*old)(int) = signal(SIGXFSZ, SIG_IGN);
    int set = setrlimit(RLIMIT_FSIZE, &lim) == 0;
    int rc = set ? percept_st_write(path, &t, 1, NULL, 0) : -1;
    setrlimit(RLIMIT_FSIZE, &keep);
    signal(SIGXFSZ, old);
    if (!set)
        return;
    expect_write_failure("file too large", path, rc, "File too large");
    PerceptSafetensors *st = percept_st_read(path);
    CHECK(st && st->n_tensors == 1 && percept_st_find(st, "w"),
          "the old file did not survive a failed write: %s", percept_error());
    percept_st_free(st);
    unlink(path);
}

static void check_writer_failures(void)
{
    float v[2] = {1, 2};
    PerceptStWrite t = {"w", PERCEPT_DTYPE_F32, 1, {2}, v};
    int rc = percept_st_write("/nonexistent/dir/out.safetensors", &t, 1, NULL, 0);
    expect_write_failure("missing directory", "/nonexistent/dir/out.safetensors", rc,
                         "No such file or directory");
    /* the target is a directory: rename fails after the data was written */
    char dir[512];
    tmp_path(dir, sizeof dir, "a-directory");
    mkdir(dir, 0755);
    rc = percept_st_write(dir, &t, 1, NULL, 0);
    expect_write_failure("target is a directory", dir, rc, "Is a directory");
    rmdir(dir);
    /* permissions do not stop root */
    if (geteuid() != 0) {
        tmp_path(dir, sizeof dir, "read-only");
        mkdir(dir, 0555);
        char path[600];
        snprintf(path, sizeof path, "%s/x.safetensors", dir);
        rc = percept_st_write(path, &t, 1, NULL, 0);
        expect_write_failure("read-only directory", path, rc, "Permission denied");
        rmdir(dir);
    }
    check_writer_arguments();
    check_write_too_large(&t);
}

int main(void)
{
    const char *t = getenv("PERCEPT_TEST_TMP");
    snprintf(tmpdir, sizeof tmpdir, "%s/st-%d", t ? t : "/tmp", (int)getpid());
    if (mkdir(tmpdir, 0755)) {
        perror(tmpdir);
        return 1;
    }
    check_round_trip();
    check_checkpoint_task();
    check_writer_bytes();
    check_python_reader();
    check_half();
    check_bad_files();
    check_header_limit();
    check_unreadable();
    check_writer_failures();
    CHECK(rmdir(tmpdir) == 0, "%s not empty at the end", tmpdir);
    return check_done("test-safetensors");
}
