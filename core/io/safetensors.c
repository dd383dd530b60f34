/* safetensors reader and writer. Format: u64 little-endian header length N, N bytes of
 * JSON {name: {dtype, shape, data_offsets}, "__metadata__": {str: str}}, then the data.
 * Every field is checked against the file size before anything is allocated from it, so a
 * hostile file can cost at most its own size in memory. */
#include <cjson/cJSON.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "half.h"
#include "percept/percept.h"

#define HEADER_MAX ((uint64_t)100 << 20)

static uint64_t read_le64(const uint8_t *p)
{
    uint64_t v = 0;
    for (int i = 7; i >= 0; i--)
        v = v << 8 | p[i];
    return v;
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

typedef struct {
    uint64_t begin, end;
    int index;
} Span;

static int cmp_span(const void *a, const void *b)
{
    const Span *x = a, *y = b;
    return x->begin < y->begin ? -1 : x->begin > y->begin ? 1 : (x->end > y->end) - (x->end < y->end);
}

static int cmp_name(const void *a, const void *b)
{
    return strcmp(((const PerceptStTensor *)a)->name, ((const PerceptStTensor *)b)->name);
}

/* A JSON number that is a non-negative integer below 2^53, or -1. */
static int64_t json_uint(const cJSON *v)
{
    if (!cJSON_IsNumber(v) || v->valuedouble < 0 || v->valuedouble > 9007199254740992.0 ||
        v->valuedouble != floor(v->valuedouble))
        return -1;
    return (int64_t)v->valuedouble;
}

static int parse_entry(PerceptStTensor *t, Span *span, const cJSON *e, uint64_t data_size)
{
    const cJSON *dtype = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *shape = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *offs = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsObject(e))
        return percept_fail("entry for tensor '%s' is not an object", t->name);
    if (!cJSON_IsString(dtype))
        return percept_fail("tensor '%s' has no dtype", t->name);
    if (!strcmp(dtype->valuestring, "F32"))
        t->dtype = PERCEPT_DTYPE_F32;
    else if (!strcmp(dtype->valuestring, "F16"))
        t->dtype = PERCEPT_DTYPE_F16;
    else
        return percept_fail("unsupported dtype %.16s for tensor '%s' (percept reads F32 and F16)",
                            dtype->valuestring, t->name);
    if (!cJSON_IsArray(shape) || cJSON_GetArraySize(shape) > 8)
        return percept_fail("tensor '%s': shape must be a list of at most 8 sizes", t->name);
    t->ndim = cJSON_GetArraySize(shape);
    uint64_t numel = 1;
    int overflow = 0;
    for (int d = 0; d < t->ndim; d++) {
        int64_t v = json_uint(cJSON_GetArrayItem(shape, d));
        if (v < 0)
            return percept_fail("tensor '%s': shape holds something other than a "
                                "non-negative integer", t->name);
        t->shape[d] = v;
        if (v && numel > UINT64_MAX / (uint64_t)v)
            overflow = 1;
        else
            numel *= (uint64_t)v;
    }
    uint64_t esize = t->dtype == PERCEPT_DTYPE_F32 ? 4 : 2;
    if (overflow || numel > data_size / esize + 1)
        return percept_fail("tensor '%s': shape claims more elements than the file holds",
                            t->name);
    if (!cJSON_IsArray(offs) || cJSON_GetArraySize(offs) != 2)
        return percept_fail("tensor '%s': data_offsets must be [begin, end]", t->name);
    int64_t b = json_uint(cJSON_GetArrayItem(offs, 0)), en = json_uint(cJSON_GetArrayItem(offs, 1));
    if (b < 0 || en < 0 || b > en || (uint64_t)en > data_size)
        return percept_fail("tensor '%s': data_offsets [%lld, %lld] are out of range (data is "
                            "%llu bytes)", t->name, (long long)b, (long long)en,
                            (unsigned long long)data_size);
    if ((uint64_t)(en - b) != numel * esize)
        return percept_fail("tensor '%s': data_offsets span %lld bytes but shape and dtype need "
                            "%llu", t->name, (long long)(en - b),
                            (unsigned long long)(numel * esize));
    t->numel = (size_t)numel;
    span->begin = (uint64_t)b;
    span->end = (uint64_t)en;
    return 0;
}

static int parse_metadata(PerceptSafetensors *st, const cJSON *m)
{
    if (!cJSON_IsObject(m))
        return percept_fail("__metadata__ is not an object");
    int n = cJSON_GetArraySize(m);
    st->meta = calloc(n ? n : 1, sizeof *st->meta);
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
    return 0;
}

/* Offsets sorted: no overlap, and together they cover the data buffer exactly. */
static int check_layout(const PerceptSafetensors *st, Span *spans, uint64_t data_size)
{
    qsort(spans, st->n_tensors, sizeof *spans, cmp_span);
    uint64_t covered = 0;
    for (int i = 0; i < st->n_tensors; i++) {
        if (spans[i].begin == spans[i].end)
            continue;
        if (spans[i].begin < covered)
            return percept_fail("tensor '%s' overlaps another tensor's data",
                                st->tensors[spans[i].index].name);
        if (spans[i].begin > covered)
            return percept_fail("data bytes %llu..%llu belong to no tensor",
                                (unsigned long long)covered, (unsigned long long)spans[i].begin);
        covered = spans[i].end;
    }
    if (covered != data_size)
        return percept_fail("data buffer has %llu bytes after the last tensor",
                            (unsigned long long)(data_size - covered));
    return 0;
}

static int convert_data(PerceptSafetensors *st, const Span *spans_by_index, const uint8_t *data)
{
    for (int i = 0; i < st->n_tensors; i++) {
        PerceptStTensor *t = &st->tensors[i];
        const uint8_t *src = data + spans_by_index[i].begin;
        /* bounded by the file: parse_entry checked numel against the data size */
        t->data = malloc(sizeof(float) * (t->numel ? t->numel : 1));
        if (!t->data)
            return percept_fail("out of memory for tensor '%s'", t->name);
        for (size_t j = 0; j < t->numel; j++) {
            float v;
            if (t->dtype == PERCEPT_DTYPE_F32) {
                uint32_t bits = (uint32_t)src[4 * j] | (uint32_t)src[4 * j + 1] << 8 |
                                (uint32_t)src[4 * j + 2] << 16 | (uint32_t)src[4 * j + 3] << 24;
                memcpy(&v, &bits, sizeof v);
            } else {
                v = half_to_float((uint16_t)(src[2 * j] | src[2 * j + 1] << 8));
            }
            if (!isfinite(v))
                return percept_fail("tensor '%s' contains %s at index %zu", t->name,
                                    isnan(v) ? "NaN" : "Inf", j);
            t->data[j] = v;
        }
    }
    return 0;
}

PerceptSafetensors *percept_st_parse(const uint8_t *bytes, size_t size, const char *name)
{
    PerceptSafetensors *st = calloc(1, sizeof *st);
    cJSON *root = NULL;
    Span *spans = NULL, *by_index = NULL;
    if (!st || !(st->path = strdup(name ? name : "(memory)"))) {
        percept_fail("out of memory");
        goto fail;
    }
    if (size < 8) {
        percept_fail("file is too short (%zu bytes) to be a safetensors file", size);
        goto fail;
    }
    uint64_t hlen = read_le64(bytes);
    if (hlen > size - 8) {
        percept_fail("header length %llu runs past the end of the file (%zu bytes)",
                     (unsigned long long)hlen, size);
        goto fail;
    }
    if (hlen > HEADER_MAX) {
        percept_fail("header length %llu is larger than the %llu bytes allowed",
                     (unsigned long long)hlen, (unsigned long long)HEADER_MAX);
        goto fail;
    }
    root = cJSON_ParseWithLength((const char *)bytes + 8, (size_t)hlen);
    if (!root) {
        percept_fail("header is not valid JSON");
        goto fail;
    }
    if (!cJSON_IsObject(root)) {
        percept_fail("header is not a JSON object");
        goto fail;
    }
    uint64_t data_size = size - 8 - hlen;
    int n = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, root) n += strcmp(e->string, "__metadata__") != 0;
    st->tensors = calloc(n ? n : 1, sizeof *st->tensors);
    spans = calloc(n ? n : 1, sizeof *spans);
    by_index = calloc(n ? n : 1, sizeof *by_index);
    if (!st->tensors || !spans || !by_index) {
        percept_fail("out of memory");
        goto fail;
    }
    cJSON_ArrayForEach(e, root) {
        if (!strcmp(e->string, "__metadata__")) {
            if (st->meta) {
                percept_fail("__metadata__ appears twice");
                goto fail;
            }
            if (parse_metadata(st, e))
                goto fail;
            continue;
        }
        PerceptStTensor *t = &st->tensors[st->n_tensors];
        if (!(t->name = strdup(e->string))) {
            percept_fail("out of memory");
            goto fail;
        }
        st->n_tensors++;
        if (parse_entry(t, &spans[st->n_tensors - 1], e, data_size))
            goto fail;
        spans[st->n_tensors - 1].index = st->n_tensors - 1;
    }
    memcpy(by_index, spans, sizeof *spans * n);
    if (check_layout(st, spans, data_size) || convert_data(st, by_index, bytes + 8 + hlen))
        goto fail;
    /* names sorted: lookups by bisection, duplicates adjacent */
    qsort(st->tensors, n, sizeof *st->tensors, cmp_name);
    for (int i = 0; i + 1 < n; i++)
        if (!strcmp(st->tensors[i].name, st->tensors[i + 1].name)) {
            percept_fail("tensor '%s' is listed twice", st->tensors[i].name);
            goto fail;
        }
    cJSON_Delete(root);
    free(spans);
    free(by_index);
    return st;
fail:
    cJSON_Delete(root);
    free(spans);
    free(by_index);
    percept_st_free(st);
    return NULL;
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
    size_t size = (size_t)sb.st_size;
    uint8_t *bytes = malloc(size ? size : 1);
    if (!bytes) {
        percept_fail("%s: out of memory reading %zu bytes", path, size);
        fclose(f);
        return NULL;
    }
    size_t got = fread(bytes, 1, size, f);
    int err = ferror(f);
    fclose(f);
    if (err || got != size) {
        percept_fail("%s: read error (%zu of %zu bytes)", path, got, size);
        free(bytes);
        return NULL;
    }
    PerceptSafetensors *st = percept_st_parse(bytes, size, path);
    if (!st)
        percept_fail_prefix("%s: ", path);
    free(bytes);
    return st;
}

const PerceptStTensor *percept_st_find(const PerceptSafetensors *st, const char *name)
{
    int lo = 0, hi = st->n_tensors - 1;
    while (lo <= hi) {
        int mid = (lo + hi) / 2, c = strcmp(st->tensors[mid].name, name);
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
    for (int i = 0; i < st->n_meta; i++)
        if (!strcmp(st->meta[i].key, key))
            return st->meta[i].value;
    return NULL;
}

/* ---- writer ---------------------------------------------------------------------- */

static char *build_header(const PerceptStWrite *t, int n, const PerceptStMeta *meta, int n_meta,
                          uint64_t *data_size)
{
    cJSON *root = cJSON_CreateObject(), *m = NULL;
    uint64_t off = 0;
    if (!root)
        return NULL;
    if (n_meta) {
        m = cJSON_AddObjectToObject(root, "__metadata__");
        for (int i = 0; m && i < n_meta; i++)
            if (!cJSON_AddStringToObject(m, meta[i].key, meta[i].value))
                m = NULL;
        if (!m)
            goto fail;
    }
    for (int i = 0; i < n; i++) {
        uint64_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++)
            numel *= (uint64_t)t[i].shape[d];
        uint64_t bytes = numel * (t[i].dtype == PERCEPT_DTYPE_F16 ? 2 : 4);
        cJSON *e = cJSON_AddObjectToObject(root, t[i].name), *shape, *offs;
        if (!e || !cJSON_AddStringToObject(e, "dtype", t[i].dtype == PERCEPT_DTYPE_F16 ? "F16" : "F32") ||
            !(shape = cJSON_AddArrayToObject(e, "shape")) ||
            !(offs = cJSON_AddArrayToObject(e, "data_offsets")))
            goto fail;
        for (int d = 0; d < t[i].ndim; d++)
            cJSON_AddItemToArray(shape, cJSON_CreateNumber((double)t[i].shape[d]));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)off));
        cJSON_AddItemToArray(offs, cJSON_CreateNumber((double)(off + bytes)));
        off += bytes;
    }
    char *json = cJSON_PrintUnformatted(root);
    cJSON_Delete(root);
    *data_size = off;
    return json;
fail:
    cJSON_Delete(root);
    return NULL;
}

static int check_write_args(const PerceptStWrite *t, int n)
{
    for (int i = 0; i < n; i++) {
        if (!t[i].name || !t[i].name[0] || !strcmp(t[i].name, "__metadata__"))
            return percept_fail("tensor %d has no usable name", i);
        if (t[i].ndim < 0 || t[i].ndim > 8)
            return percept_fail("tensor '%s': %d dimensions (at most 8)", t[i].name, t[i].ndim);
        size_t numel = 1;
        for (int d = 0; d < t[i].ndim; d++) {
            if (t[i].shape[d] < 0)
                return percept_fail("tensor '%s': negative size", t[i].name);
            numel *= (size_t)t[i].shape[d];
        }
        if (numel && !t[i].data)
            return percept_fail("tensor '%s' has no data", t[i].name);
        for (size_t j = 0; j < numel; j++)
            if (!isfinite(t[i].data[j]))
                return percept_fail("refusing to write tensor '%s': it contains %s at index %zu",
                                    t[i].name, isnan(t[i].data[j]) ? "NaN" : "Inf", j);
        for (int k = 0; k < i; k++)
            if (!strcmp(t[k].name, t[i].name))
                return percept_fail("tensor '%s' is given twice", t[i].name);
    }
    return 0;
}

static int write_tensor_data(FILE *f, const PerceptStWrite *t)
{
    size_t numel = 1;
    for (int d = 0; d < t->ndim; d++)
        numel *= (size_t)t->shape[d];
    uint8_t buf[4096];
    size_t esize = t->dtype == PERCEPT_DTYPE_F16 ? 2 : 4, fill = 0;
    for (size_t j = 0; j < numel; j++) {
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
            if (fwrite(buf, 1, fill, f) != fill)
                return -1;
            fill = 0;
        }
    }
    return fill && fwrite(buf, 1, fill, f) != fill ? -1 : 0;
}

int percept_st_write(const char *path, const PerceptStWrite *tensors, int n_tensors,
                     const PerceptStMeta *meta, int n_meta)
{
    if (check_write_args(tensors, n_tensors))
        return percept_fail_prefix("%s: ", path);
    uint64_t data_size;
    char *json = build_header(tensors, n_tensors, meta, n_meta, &data_size);
    if (!json)
        return percept_fail("%s: out of memory building the header", path);
    size_t len = strlen(json), padded = (len + 7) / 8 * 8;
    size_t plen = strlen(path);
    char *tmp = malloc(plen + 16);
    if (!tmp) {
        free(json);
        return percept_fail("%s: out of memory", path);
    }
    /* the temporary file sits beside the target so rename() is atomic */
    snprintf(tmp, plen + 16, "%s.tmp.XXXXXX", path);
    int fd = mkstemp(tmp);
    if (fd < 0) {
        int e = errno;
        free(json);
        free(tmp);
        return percept_fail("%s: cannot create a file there: %s", path, strerror(e));
    }
    fchmod(fd, 0644);
    FILE *f = fdopen(fd, "wb");
    uint8_t lenbuf[8];
    for (int b = 0; b < 8; b++)
        lenbuf[b] = (uint8_t)((uint64_t)padded >> (8 * b));
    int ok = f && fwrite(lenbuf, 1, 8, f) == 8 && fwrite(json, 1, len, f) == len;
    for (size_t i = len; ok && i < padded; i++)
        ok = fputc(' ', f) != EOF;
    for (int i = 0; ok && i < n_tensors; i++)
        ok = write_tensor_data(f, &tensors[i]) == 0;
    ok = ok && fflush(f) == 0 && fsync(fileno(f)) == 0;
    int e = errno;
    if (f)
        ok = (fclose(f) == 0) && ok;
    else
        close(fd);
    if (ok && rename(tmp, path) != 0) {
        e = errno;
        ok = 0;
    }
    if (!ok) {
        unlink(tmp);
        percept_fail("%s: write failed: %s", path, strerror(e ? e : EIO));
    }
    free(json);
    free(tmp);
    return ok ? 0 : -1;
}
