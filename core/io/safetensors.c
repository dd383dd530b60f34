/* safetensors reader and writer. Format: u64 little-endian header length N, N bytes of
 * UTF-8 JSON {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then the
 * data buffer; offsets count from the start of the data buffer.
 *
 * Every field is checked against the file size before anything is allocated from it, so a
 * hostile file can cost at most about twice its own size in memory (F16 widens to float).
 * Files are read tensor by tensor straight into the float buffers, so loading a 500 MB
 * VGG-16 costs 500 MB, not a second copy of the file. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/types.h>
#include <unistd.h>

#include "half.h"
#include "percept/percept.h"

/* the reference implementation's limit: a bigger header is not a weight file */
#define HEADER_MAX ((uint64_t)100 << 20)
#define MAX_DIMS 8
/* shapes and offsets must be exact in cJSON's double */
#define JSON_INT_MAX 9007199254740992.0

static uint64_t le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
}

static size_t dtype_size(PerceptDtype d)
{
    return d == PERCEPT_DTYPE_F16 ? 2 : 4;
}

/* 1 when s[0..n) is well-formed UTF-8 without NUL bytes (names and messages are C
 * strings, so an embedded NUL would silently cut them); else 0 and the fault's offset. */
static int utf8_valid(const uint8_t *s, size_t n, size_t *bad)
{
    size_t i = 0;
    while (i < n) {
        uint8_t c = s[i];
        size_t len;
        uint32_t cp, min;
        if (c == 0)
            goto fail;
        if (c < 0x80) {
            i++;
            continue;
        }
        if ((c & 0xe0) == 0xc0)
            len = 2, cp = c & 0x1f, min = 0x80;
        else if ((c & 0xf0) == 0xe0)
            len = 3, cp = c & 0x0f, min = 0x800;
        else if ((c & 0xf8) == 0xf0)
            len = 4, cp = c & 0x07, min = 0x10000;
        else
            goto fail;
        if (n - i < len)
            goto fail;
        for (size_t k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80)
                goto fail;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        /* overlong forms, surrogates and code points past Unicode are not UTF-8 */
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff))
            goto fail;
        i += len;
    }
    return 1;
fail:
    if (bad)
        *bad = i;
    return 0;
}

static int str_utf8_valid(const char *s)
{
    return utf8_valid((const uint8_t *)s, strlen(s), NULL);
}

static int cmp_str_ptr(const void *a, const void *b)
{
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

/* A name that occurs twice among n (sorting a copy: O(n log n) even for a hostile header),
 * NULL when all differ. *oom is set when the copy cannot be made. */
static const char *find_duplicate(const char *const *names, size_t stride, int n, int *oom)
{
    *oom = 0;
    if (n < 2)
        return NULL;
    const char **sorted = malloc(sizeof *sorted * (size_t)n);
    if (!sorted) {
        *oom = 1;
        return NULL;
    }
    for (int i = 0; i < n; i++)
        sorted[i] = *(const char *const *)((const char *)names + (size_t)i * stride);
    qsort(sorted, (size_t)n, sizeof *sorted, cmp_str_ptr);
    const char *dup = NULL;
    for (int i = 0; !dup && i + 1 < n; i++)
        if (!strcmp(sorted[i], sorted[i + 1]))
            dup = sorted[i];
    free(sorted);
    return dup;
}

void percept_st_free(PerceptSafetensors *st)
{
    if (!st)
        return;
    for (int i = 0; i < st->n_tensors; i++) {
        free(st->tensors[i].name);
        free(st->tensors[i].data);
    }
    for (int i = 0; i < st->n_meta; i++) {
        free(st->meta[i].key);
        free(st->meta[i].value);
    }
    free(st->tensors);
    free(st->meta);
    free(st->path);
    free(st);
}

/* ---- reader: header ------------------------------------------------------------------ */

/* Where a tensor's bytes lie in the data buffer; index is its place in st->tensors. */
typedef struct {
    uint64_t begin, end;
    int index;
} Span;

/* A tensor while the header is parsed: kept with its offsets until names are sorted. */
typedef struct {
    PerceptStTensor t;
    uint64_t begin, end;
} Entry;

static int cmp_entry_name(const void *a, const void *b)
{
    return strcmp(((const Entry *)a)->t.name, ((const Entry *)b)->t.name);
}

static int cmp_span(const void *a, const void *b)
{
    const Span *x = a, *y = b;
    if (x->begin != y->begin)
        return x->begin < y->begin ? -1 : 1;
    return (x->end > y->end) - (x->end < y->end);
}

/* A JSON number that is an integer in 0..2^53, or -1. */
static int64_t json_uint(const cJSON *v)
{
    if (!cJSON_IsNumber(v) || !(v->valuedouble >= 0) || v->valuedouble > JSON_INT_MAX ||
        v->valuedouble != floor(v->valuedouble))
        return -1;
    return (int64_t)v->valuedouble;
}

static int parse_dtype(PerceptStTensor *t, const cJSON *e)
{
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    if (!cJSON_IsString(dtype))
        return percept_fail("tensor '%s' has no dtype", t->name);
    if (!strcmp(dtype->valuestring, "F32"))
        t->dtype = PERCEPT_DTYPE_F32;
    else if (!strcmp(dtype->valuestring, "F16"))
        t->dtype = PERCEPT_DTYPE_F16;
    else
        return percept_fail("unsupported dtype %.32s for tensor '%s' (percept reads F32 and F16)",
                            dtype->valuestring, t->name);
    return 0;
}

/* Shape into t; the element count in *numel (0 is allowed: an empty tensor). */
static int parse_shape(PerceptStTensor *t, const cJSON *e, uint64_t *numel)
{
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    if (!cJSON_IsArray(shape))
        return percept_fail("tensor '%s': shape is missing or not a list", t->name);
    int ndim = cJSON_GetArraySize(shape);
    if (ndim > MAX_DIMS)
        return percept_fail("tensor '%s': shape has %d dimensions (at most %d)", t->name, ndim,
                            MAX_DIMS);
    t->ndim = ndim;
    uint64_t n = 1;
    int overflow = 0;
    for (int d = 0; d < ndim; d++) {
        int64_t v = json_uint(cJSON_GetArrayItem(shape, d));
        if (v < 0)
            return percept_fail("tensor '%s': shape[%d] is not a non-negative integer", t->name,
                                d);
        t->shape[d] = v;
        /* keep scanning after an overflow: a later 0 makes the tensor empty after all */
        if (v && n > UINT64_MAX / (uint64_t)v)
            overflow = 1;
        n *= (uint64_t)v;
    }
    int empty = 0;
    for (int d = 0; d < ndim; d++)
        empty |= t->shape[d] == 0;
    if (empty)
        n = 0;
    else if (overflow || n > UINT64_MAX / dtype_size(t->dtype))
        return percept_fail("tensor '%s': the shape's element count overflows", t->name);
    *numel = n;
    return 0;
}

static int parse_offsets(Entry *en, const cJSON *e, uint64_t data_size)
{
    const char *name = en->t.name;
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return percept_fail("tensor '%s': data_offsets must be [begin, end]", name);
    int64_t b = json_uint(cJSON_GetArrayItem(offs, 0)), end = json_uint(cJSON_GetArrayItem(offs, 1));
    if (b < 0 || end < 0)
        return percept_fail("tensor '%s': data_offsets must be non-negative integers", name);
    if (b > end)
        return percept_fail("tensor '%s': data_offsets [%" PRId64 ", %" PRId64 "] are reversed",
                            name, b, end);
    if ((uint64_t)end > data_size)
        return percept_fail("tensor '%s': data_offsets [%" PRId64 ", %" PRId64 "] run past the "
                            "end of the data (%" PRIu64 " bytes; file truncated?)", name, b, end,
                            data_size);
    en->begin = (uint64_t)b;
    en->end = (uint64_t)end;
    return 0;
}

static int parse_entry(Entry *en, const cJSON *e, uint64_t data_size)
{
    PerceptStTensor *t = &en->t;
    uint64_t numel = 0;
    if (!cJSON_IsObject(e))
        return percept_fail("entry for tensor '%s' is not an object", t->name);
    if (parse_dtype(t, e) || parse_shape(t, e, &numel) || parse_offsets(en, e, data_size))
        return -1;
    uint64_t need = numel * dtype_size(t->dtype);
    if (en->end - en->begin != need)
        return percept_fail("tensor '%s': data_offsets span %" PRIu64 " bytes but shape and dtype "
                            "need %" PRIu64, t->name, en->end - en->begin, need);
    /* widening to float must fit this machine's size_t (only a concern on 32-bit hosts) */
    if (numel > SIZE_MAX / sizeof(float))
        return percept_fail("tensor '%s' is too large for this machine", t->name);
    t->numel = (size_t)numel;
    return 0;
}

static int parse_metadata(PerceptSafetensors *st, const cJSON *m)
{
    if (cJSON_IsNull(m)) /* serde writes an absent Option as null */
        return 0;
    if (!cJSON_IsObject(m))
        return percept_fail("__metadata__ is not an object");
    int n = cJSON_GetArraySize(m), oom;
    st->meta = calloc(n ? (size_t)n : 1, sizeof *st->meta);
    if (!st->meta)
        return percept_fail("out of memory");
    const cJSON *e;
    cJSON_ArrayForEach(e, m) {
        if (!cJSON_IsString(e))
            return percept_fail("metadata value for '%s' is not a string", e->string);
        PerceptStMeta *kv = &st->meta[st->n_meta++];
        kv->key = strdup(e->string);
        kv->value = strdup(e->valuestring);
        if (!kv->key || !kv->value)
            return percept_fail("out of memory");
    }
    const char *dup = find_duplicate((const char *const *)&st->meta[0].key, sizeof *st->meta,
                                     st->n_meta, &oom);
    if (oom)
        return percept_fail("out of memory");
    if (dup)
        return percept_fail("metadata key '%s' appears twice", dup);
    return 0;
}

/* Offsets sorted by position: no overlap, and together they cover the data buffer exactly
 * (as the reference implementation demands; a hole would be bytes nobody can account for). */
static int check_layout(const PerceptSafetensors *st, Span *spans, uint64_t data_size)
{
    qsort(spans, (size_t)st->n_tensors, sizeof *spans, cmp_span);
    uint64_t covered = 0;
    int last = -1;
    for (int i = 0; i < st->n_tensors; i++) {
        if (spans[i].begin == spans[i].end)
            continue; /* empty tensors occupy nothing */
        if (spans[i].begin < covered)
            return percept_fail("tensors '%s' and '%s' overlap (bytes %" PRIu64 "..%" PRIu64 ")",
                                st->tensors[spans[last].index].name,
                                st->tensors[spans[i].index].name, spans[i].begin, covered);
        if (spans[i].begin > covered)
            return percept_fail("data bytes %" PRIu64 "..%" PRIu64 " belong to no tensor",
                                covered, spans[i].begin);
        covered = spans[i].end;
        last = i;
    }
    if (covered != data_size)
        return percept_fail("data buffer has %" PRIu64 " bytes after the last tensor",
                            data_size - covered);
    return 0;
}

/* Tensors sorted by name (lookups bisect), names unique, layout checked; *spans_out lists
 * them in file order for reading. */
static int take_entries(PerceptSafetensors *st, Entry *entries, int n, uint64_t data_size,
                        Span **spans_out)
{
    qsort(entries, (size_t)n, sizeof *entries, cmp_entry_name);
    for (int i = 0; i + 1 < n; i++)
        if (!strcmp(entries[i].t.name, entries[i + 1].t.name))
            return percept_fail("tensor '%s' is listed twice", entries[i].t.name);
    Span *spans = malloc(sizeof *spans * (n ? (size_t)n : 1));
    if (!spans)
        return percept_fail("out of memory");
    for (int i = 0; i < n; i++) {
        /* names move to st: st owns them from here on */
        st->tensors[i] = entries[i].t;
        entries[i].t.name = NULL;
        spans[i] = (Span){entries[i].begin, entries[i].end, i};
    }
    st->n_tensors = n;
    if (check_layout(st, spans, data_size)) {
        free(spans);
        return -1;
    }
    *spans_out = spans;
    return 0;
}

static int parse_root(PerceptSafetensors *st, const cJSON *root, uint64_t data_size,
                      Span **spans_out)
{
    int n = 0, parsed = 0, rc = -1, seen_meta = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) n += strcmp(e->string, "__metadata__") != 0;
    Entry *entries = calloc(n ? (size_t)n : 1, sizeof *entries);
    st->tensors = calloc(n ? (size_t)n : 1, sizeof *st->tensors);
    if (!entries || !st->tensors) {
        percept_fail("out of memory");
        goto done;
    }
    cJSON_ArrayForEach(e, root) {
        if (!strcmp(e->string, "__metadata__")) {
            if (seen_meta++) {
                percept_fail("__metadata__ appears twice");
                goto done;
            }
            if (parse_metadata(st, e))
                goto done;
            continue;
        }
        Entry *en = &entries[parsed++];
        if (!(en->t.name = strdup(e->string))) {
            percept_fail("out of memory");
            goto done;
        }
        if (parse_entry(en, e, data_size))
            goto done;
    }
    rc = take_entries(st, entries, n, data_size, spans_out);
done:
    for (int i = 0; entries && i < parsed; i++)
        free(entries[i].t.name);
    free(entries);
    return rc;
}

/* Parses and checks the header against a data buffer of data_size bytes. */
static int parse_header(PerceptSafetensors *st, const uint8_t *json, size_t hlen,
                        uint64_t data_size, Span **spans_out)
{
    size_t bad;
    if (!utf8_valid(json, hlen, &bad))
        return percept_fail("header is not valid UTF-8 (byte %zu)", bad);
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts((const char *)json, hlen, &end, 0);
    if (!root)
        return percept_fail("header is not valid JSON (near byte %td)",
                            end ? end - (const char *)json : (ptrdiff_t)0);
    /* writers pad with spaces; anything else after the object is a broken header */
    for (const char *p = end; p < (const char *)json + hlen; p++)
        if (*p != ' ' && *p != '\t' && *p != '\n' && *p != '\r') {
            cJSON_Delete(root);
            return percept_fail("header has text after the JSON (byte %td)",
                                p - (const char *)json);
        }
    int rc;
    if (!cJSON_IsObject(root))
        rc = percept_fail("header is not a JSON object");
    else
        rc = parse_root(st, root, data_size, spans_out);
    cJSON_Delete(root);
    return rc;
}

/* The header length field, checked against the bytes that exist before anything is
 * allocated from it. */
static int check_header_len(uint64_t hlen, uint64_t size)
{
    if (hlen > size - 8)
        return percept_fail("header length %" PRIu64 " runs past the end of the file (%" PRIu64
                            " bytes)", hlen, size);
    if (hlen > HEADER_MAX)
        return percept_fail("header length %" PRIu64 " is larger than the %" PRIu64
                            " bytes allowed", hlen, HEADER_MAX);
    return 0;
}

/* ---- reader: data ------------------------------------------------------------------- */

/* Where the data buffer comes from: memory, or a file read in order. */
typedef struct {
    const uint8_t *mem; /* start of the data buffer, or NULL */
    FILE *f;
    uint64_t start;     /* file offset of the data buffer */
    uint64_t pos;       /* data offset the file is at */
} Source;

static int source_read(Source *s, uint64_t begin, void *dst, size_t len, const char *tensor)
{
    if (s->mem) {
        memcpy(dst, s->mem + begin, len);
        return 0;
    }
    /* spans are contiguous, so this only seeks if the layout rules ever loosen */
    if (begin != s->pos && fseeko(s->f, (off_t)(s->start + begin), SEEK_SET))
        return percept_fail("cannot seek to tensor '%s': %s", tensor, strerror(errno));
    errno = 0;
    size_t got = fread(dst, 1, len, s->f);
    s->pos = begin + got;
    if (got != len) {
        if (ferror(s->f))
            return percept_fail("read error in tensor '%s': %s", tensor,
                                strerror(errno ? errno : EIO));
        return percept_fail("file ended inside tensor '%s' (%zu of %zu bytes): it changed "
                            "while being read", tensor, got, len);
    }
    return 0;
}

/* t->data holds the tensor's raw little-endian bytes; widen them to float in place.
 * F16 runs backwards: float j overwrites halves 2j and 2j+1, already converted. */
static int decode(PerceptStTensor *t)
{
    const uint8_t *raw = (const uint8_t *)t->data;
    size_t first_bad = SIZE_MAX;
    if (t->dtype == PERCEPT_DTYPE_F32) {
        for (size_t j = 0; j < t->numel; j++) {
            const uint8_t *p = raw + 4 * j;
            uint32_t bits = (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 |
                            (uint32_t)p[3] << 24;
            float v;
            memcpy(&v, &bits, sizeof v);
            t->data[j] = v;
            if (!isfinite(v) && first_bad == SIZE_MAX)
                first_bad = j;
        }
    } else {
        for (size_t j = t->numel; j-- > 0;) {
            float v = half_to_float((uint16_t)(raw[2 * j] | raw[2 * j + 1] << 8));
            t->data[j] = v;
            if (!isfinite(v))
                first_bad = j;
        }
    }
    if (first_bad != SIZE_MAX)
        return percept_fail("tensor '%s' contains %s at index %zu", t->name,
                            isnan(t->data[first_bad]) ? "NaN" : "Inf", first_bad);
    return 0;
}

/* Reads every tensor in file order into its own float buffer. */
static int load_data(PerceptSafetensors *st, const Span *spans, Source *src)
{
    for (int k = 0; k < st->n_tensors; k++) {
        PerceptStTensor *t = &st->tensors[spans[k].index];
        size_t raw = (size_t)(spans[k].end - spans[k].begin);
        /* bounded by the file: the offsets lie inside it and match the shape */
        t->data = malloc(t->numel ? t->numel * sizeof(float) : 1);
        if (!t->data)
            return percept_fail("out of memory for tensor '%s' (%zu values)", t->name, t->numel);
        if (raw && source_read(src, spans[k].begin, t->data, raw, t->name))
            return -1;
        if (decode(t))
            return -1;
    }
    return 0;
}

/* ---- reader: entry points ------------------------------------------------------------- */

static PerceptSafetensors *st_new(const char *name)
{
    PerceptSafetensors *st = calloc(1, sizeof *st);
    if (!st || !(st->path = strdup(name))) {
        free(st);
        percept_fail("out of memory");
        return NULL;
    }
    return st;
}

static int parse_memory(PerceptSafetensors *st, const uint8_t *bytes, size_t size)
{
    if (size < 8)
        return percept_fail("file is too short (%zu bytes) to be a safetensors file", size);
    uint64_t hlen = le64(bytes);
    Span *spans = NULL;
    if (check_header_len(hlen, size) ||
        parse_header(st, bytes + 8, (size_t)hlen, size - 8 - hlen, &spans))
        return -1;
    Source src = {bytes + 8 + hlen, NULL, 0, 0};
    int rc = load_data(st, spans, &src);
    free(spans);
    return rc;
}

PerceptSafetensors *percept_st_parse(const uint8_t *bytes, size_t size, const char *name)
{
    PerceptSafetensors *st = st_new(name ? name : "(memory)");
    if (!st)
        return NULL;
    int rc = !bytes && size ? percept_fail("no bytes given") : parse_memory(st, bytes, size);
    if (rc) {
        if (name)
            percept_fail_prefix("%s: ", name);
        percept_st_free(st);
        return NULL;
    }
    return st;
}

static int read_exact(FILE *f, void *dst, size_t len, const char *what)
{
    errno = 0;
    size_t got = fread(dst, 1, len, f);
    if (got == len)
        return 0;
    if (ferror(f))
        return percept_fail("read error in the %s: %s", what, strerror(errno ? errno : EIO));
    return percept_fail("file ended inside the %s: it changed while being read", what);
}

static int read_stream(PerceptSafetensors *st, FILE *f, uint64_t size)
{
    uint8_t lenbuf[8];
    if (size < 8)
        return percept_fail("file is too short (%" PRIu64 " bytes) to be a safetensors file",
                            size);
    if (read_exact(f, lenbuf, 8, "header length"))
        return -1;
    uint64_t hlen = le64(lenbuf);
    if (check_header_len(hlen, size))
        return -1;
    uint8_t *json = malloc(hlen ? (size_t)hlen : 1);
    if (!json)
        return percept_fail("out of memory for a %" PRIu64 "-byte header", hlen);
    Span *spans = NULL;
    int rc = read_exact(f, json, (size_t)hlen, "header") ||
             parse_header(st, json, (size_t)hlen, size - 8 - hlen, &spans);
    free(json);
    if (rc)
        return -1;
    Source src = {NULL, f, 8 + hlen, 0};
    rc = load_data(st, spans, &src);
    free(spans);
    if (!rc && fgetc(f) != EOF)
        rc = percept_fail("file grew while being read");
    return rc;
}

PerceptSafetensors *percept_st_read(const char *path)
{
    FILE *f = fopen(path, "rb");
    struct stat sb;
    if (!f) {
        percept_fail("%s: cannot open: %s", path, strerror(errno));
        return NULL;
    }
    if (fstat(fileno(f), &sb) || !S_ISREG(sb.st_mode)) {
        percept_fail("%s: not a regular file", path);
        fclose(f);
        return NULL;
    }
    PerceptSafetensors *st = st_new(path);
    int rc = st ? read_stream(st, f, (uint64_t)sb.st_size) : -1;
    fclose(f);
    if (rc) {
        percept_fail_prefix("%s: ", path);
        percept_st_free(st);
        return NULL;
    }
    return st;
}

const PerceptStTensor *percept_st_find(const PerceptSafetensors *st, const char *name)
{
    if (!st || !name)
        return NULL;
    int lo = 0, hi = st->n_tensors - 1;
    while (lo <= hi) {
        int mid = lo + (hi - lo) / 2, c = strcmp(st->tensors[mid].name, name);
        if (!c)
            return &st->tensors[mid];
        if (c < 0)
            lo = mid + 1;
        else
            hi = mid - 1;
    }
    return NULL;
}

const char *percept_st_meta(const PerceptSafetensors *st, const char *key)
{
    if (!st || !key)
        return NULL;
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta[i].key, key))
            return st->meta[i].value;
    return NULL;
}

const char *percept_st_task(const PerceptSafetensors *st)
{
    const char *task = percept_st_meta(st, "percept.task");
    return task && !strcmp(task, "checkpoint") ? percept_st_meta(st, "percept.train_task") : task;
}

/* ---- writer ---------------------------------------------------------------------- */

/* Element count of a tensor to write, or -1 with a message for an unusable shape. */
static int write_numel(const PerceptStWrite *t, uint64_t *numel)
{
    if (t->ndim < 0 || t->ndim > MAX_DIMS)
        return percept_fail("tensor '%s': %d dimensions (at most %d)", t->name, t->ndim,
                            MAX_DIMS);
    uint64_t n = 1;
    for (int d = 0; d < t->ndim; d++) {
        if (t->shape[d] < 0)
            return percept_fail("tensor '%s': negative size %" PRId64, t->name, t->shape[d]);
        if (t->shape[d] && n > (uint64_t)JSON_INT_MAX / (uint64_t)t->shape[d])
            return percept_fail("tensor '%s': the shape's element count overflows", t->name);
        n *= (uint64_t)t->shape[d];
    }
    *numel = n;
    return 0;
}

static int check_write_tensor(const PerceptStWrite *t, int i, uint64_t *bytes)
{
    uint64_t numel = 0;
    if (!t->name || !t->name[0])
        return percept_fail("tensor %d has no name", i);
    if (!strcmp(t->name, "__metadata__"))
        return percept_fail("'__metadata__' cannot name a tensor");
    if (!str_utf8_valid(t->name))
        return percept_fail("tensor %d's name is not valid UTF-8", i);
    if (t->dtype != PERCEPT_DTYPE_F32 && t->dtype != PERCEPT_DTYPE_F16)
        return percept_fail("tensor '%s': unknown dtype %d", t->name, (int)t->dtype);
    if (write_numel(t, &numel))
        return -1;
    if (numel && !t->data)
        return percept_fail("tensor '%s' has no data", t->name);
    /* the reader refuses non-finite values, so never write a file that cannot be read */
    for (uint64_t j = 0; j < numel; j++)
        if (!isfinite(t->data[j]))
            return percept_fail("refusing to write tensor '%s': it contains %s at index %" PRIu64,
                                t->name, isnan(t->data[j]) ? "NaN" : "Inf", j);
    *bytes = numel * dtype_size(t->dtype);
    return 0;
}

static int check_write_meta(const PerceptStMeta *meta, int n_meta)
{
    for (int i = 0; i < n_meta; i++) {
        if (!meta[i].key || !meta[i].value)
            return percept_fail("metadata entry %d has no key or value", i);
        if (!str_utf8_valid(meta[i].key))
            return percept_fail("metadata key %d is not valid UTF-8", i);
        if (!str_utf8_valid(meta[i].value))
            return percept_fail("metadata value of '%s' is not valid UTF-8", meta[i].key);
    }
    int oom = 0;
    const char *dup = n_meta < 2 ? NULL : find_duplicate((const char *const *)&meta[0].key,
                                                         sizeof *meta, n_meta, &oom);
    if (oom)
        return percept_fail("out of memory");
    if (dup)
        return percept_fail("metadata key '%s' is given twice", dup);
    return 0;
}

static int check_write_args(const PerceptStWrite *t, int n, const PerceptStMeta *meta,
                            int n_meta)
{
    if (n < 0 || n_meta < 0 || (n && !t) || (n_meta && !meta))
        return percept_fail("invalid arguments (%d tensors, %d metadata entries)", n, n_meta);
    uint64_t total = 0, bytes = 0;
    for (int i = 0; i < n; i++) {
        if (check_write_tensor(&t[i], i, &bytes))
            return -1;
        if (bytes > (uint64_t)JSON_INT_MAX - total)
            return percept_fail("tensors add up to more data than a file can describe");
        total += bytes;
    }
    int oom = 0;
    const char *dup = n < 2 ? NULL : find_duplicate(&t[0].name, sizeof *t, n, &oom);
    if (oom)
        return percept_fail("out of memory");
    if (dup)
        return percept_fail("tensor '%s' is given twice", dup);
    return check_write_meta(meta, n_meta);
}

/* A JSON list of integers, printed as integers: cJSON would print a double, and 1e+15 is
 * not a u64 to a strict reader. */
static cJSON *int_list(const uint64_t *v, int n)
{
    cJSON *a = cJSON_CreateArray();
    for (int i = 0; a && i < n; i++) {
        char buf[24];
        snprintf(buf, sizeof buf, "%" PRIu64, v[i]);
        cJSON *item = cJSON_CreateRaw(buf);
        if (!item || !cJSON_AddItemToArray(a, item)) {
            cJSON_Delete(item);
            cJSON_Delete(a);
            a = NULL;
        }
    }
    return a;
}

static int add_tensor_entry(cJSON *root, const PerceptStWrite *t, uint64_t *off)
{
    uint64_t shape[MAX_DIMS], numel = 0;
    write_numel(t, &numel); /* checked already */
    for (int d = 0; d < t->ndim; d++)
        shape[d] = (uint64_t)t->shape[d];
    uint64_t offs[2] = {*off, *off + numel * dtype_size(t->dtype)};
    cJSON *e = cJSON_AddObjectToObject(root, t->name);
    if (!e || !cJSON_AddStringToObject(e, "dtype", t->dtype == PERCEPT_DTYPE_F16 ? "F16" : "F32"))
        return -1;
    cJSON *s = int_list(shape, t->ndim);
    if (!s || !cJSON_AddItemToObject(e, "shape", s)) {
        cJSON_Delete(s);
        return -1;
    }
    cJSON *o = int_list(offs, 2);
    if (!o || !cJSON_AddItemToObject(e, "data_offsets", o)) {
        cJSON_Delete(o);
        return -1;
    }
    *off = offs[1];
    return 0;
}

/* The header JSON: metadata first, then tensors in the caller's order (data follows in
 * the same order). cJSON escapes quotes, backslashes and control characters. */
static char *build_header(const PerceptStWrite *t, int n, const PerceptStMeta *meta, int n_meta)
{
    cJSON *root = cJSON_CreateObject();
    uint64_t off = 0;
    if (!root)
        return NULL;
    if (n_meta) {
        cJSON *m = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; m && i < n_meta; i++)
            if (!cJSON_AddStringToObject(m, meta[i].key, meta[i].value))
                m = NULL;
        if (!m)
            goto fail;
    }
    for (int i = 0; i < n; i++)
        if (add_tensor_entry(root, &t[i], &off))
            goto fail;
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    return json;
fail:
    cJSON_Delete(root);
    return NULL;
}

/* A stdio stream that remembers the first error's errno, so the message says why
 * (No space left on device, File too large, ...). */
typedef struct {
    FILE *f;
    int err;
} Out;

static void out_write(Out *o, const void *p, size_t n)
{
    if (o->err || !n)
        return;
    errno = 0;
    if (fwrite(p, 1, n, o->f) != n)
        o->err = errno ? errno : EIO;
}

static void out_tensor(Out *o, const PerceptStWrite *t)
{
    uint64_t numel = 0;
    write_numel(t, &numel);
    uint8_t buf[4096];
    size_t esize = dtype_size(t->dtype), fill = 0;
    for (uint64_t j = 0; j < numel && !o->err; j++) {
        if (t->dtype == PERCEPT_DTYPE_F16) {
            uint16_t h = float_to_half(t->data[j]);
            buf[fill] = (uint8_t)h;
            buf[fill + 1] = (uint8_t)(h >> 8);
        } else {
            uint32_t bits;
            memcpy(&bits, &t->data[j], 4);
            for (int b = 0; b < 4; b++)
                buf[fill + b] = (uint8_t)(bits >> (8 * b));
        }
        fill += esize;
        if (fill == sizeof buf) {
            out_write(o, buf, fill);
            fill = 0;
        }
    }
    out_write(o, buf, fill);
}

/* Header and data into an open temporary file, flushed to disk; errno of the failure. */
static int write_contents(int fd, const char *json, const PerceptStWrite *t, int n)
{
    Out o = {fdopen(fd, "wb"), 0};
    if (!o.f) {
        int e = errno;
        close(fd);
        return e ? e : EIO;
    }
    size_t len = strlen(json), padded = (len + 7) / 8 * 8;
    uint8_t lenbuf[8];
    for (int b = 0; b < 8; b++)
        lenbuf[b] = (uint8_t)((uint64_t)padded >> (8 * b));
    out_write(&o, lenbuf, 8);
    out_write(&o, json, len);
    out_write(&o, "        ", padded - len);
    for (int i = 0; i < n; i++)
        out_tensor(&o, &t[i]);
    if (!o.err && fflush(o.f))
        o.err = errno ? errno : EIO;
    if (!o.err && fsync(fileno(o.f)))
        o.err = errno ? errno : EIO;
    if (fclose(o.f) && !o.err)
        o.err = errno ? errno : EIO;
    return o.err;
}

/* After the rename, the directory entry itself must reach the disk for the new file to
 * survive a crash. Best effort: the data is already safe, and some file systems refuse. */
static void sync_dir(const char *path)
{
    char *dir = strdup(path);
    if (!dir)
        return;
    char *slash = strrchr(dir, '/');
    const char *d = slash ? (slash == dir ? "/" : (*slash = '\0', dir)) : ".";
    int fd = open(d, O_RDONLY | O_DIRECTORY);
    if (fd >= 0) {
        (void)fsync(fd);
        close(fd);
    }
    free(dir);
}

int percept_st_write(const char *path, const PerceptStWrite *tensors, int n_tensors,
                     const PerceptStMeta *meta, int n_meta)
{
    if (!path || !path[0])
        return percept_fail("no output path given");
    if (check_write_args(tensors, n_tensors, meta, n_meta))
        return percept_fail_prefix("%s: ", path);
    char *json = build_header(tensors, n_tensors, meta, n_meta);
    size_t plen = strlen(path);
    char *tmp = malloc(plen + sizeof ".tmp.XXXXXX");
    if (!json || !tmp) {
        free(json);
        free(tmp);
        return percept_fail("%s: out of memory building the header", path);
    }
    /* the temporary file sits beside the target so rename() is atomic */
    memcpy(tmp, path, plen);
    memcpy(tmp + plen, ".tmp.XXXXXX", sizeof ".tmp.XXXXXX");
    int fd = mkstemp(tmp), err = 0;
    if (fd < 0) {
        percept_fail("%s: cannot create a file in its directory: %s", path, strerror(errno));
        free(json);
        free(tmp);
        return -1;
    }
    /* mkstemp makes 0600; a weight file is for sharing */
    (void)fchmod(fd, 0644);
    err = write_contents(fd, json, tensors, n_tensors);
    if (err) {
        percept_fail("%s: cannot write: %s", path, strerror(err));
    } else if (rename(tmp, path)) {
        err = errno;
        percept_fail("%s: cannot replace it with the new file: %s", path, strerror(err));
    }
    if (err)
        unlink(tmp);
    else
        sync_dir(path);
    free(json);
    free(tmp);
    return err ? -1 : 0;
}
