/* Model lookup and the process-wide model cache (see model.h). */
#include <glib/gstdio.h>
#include <string.h>

#include "model.h"
#include "say-once.h"

#ifndef PERCEPT_PRESET_DIR
#define PERCEPT_PRESET_DIR "/usr/local/share/percept/presets"
#endif

static GMutex cache_lock;
static GHashTable *cache; /* path -> PerceptModel* (holds one reference) */

char **percept_model_preset_dirs(void)
{
    GPtrArray *dirs = g_ptr_array_new();
    const char *env = g_getenv("PERCEPT_PRESET_PATH");
    if (env && *env) {
        char **parts = g_strsplit(env, G_SEARCHPATH_SEPARATOR_S, -1);
        for (char **p = parts; *p; p++)
            if (**p)
                g_ptr_array_add(dirs, g_strdup(*p));
        g_strfreev(parts);
    }
    char *user = g_build_filename(g_get_user_data_dir(), "percept", "presets", NULL);
    g_ptr_array_add(dirs, user);
    if (g_strcmp0(user, PERCEPT_PRESET_DIR)) /* not when percept is installed for the user */
        g_ptr_array_add(dirs, g_strdup(PERCEPT_PRESET_DIR));
    g_ptr_array_add(dirs, NULL);
    return (char **)g_ptr_array_free(dirs, FALSE);
}

static gboolean is_path(const char *name)
{
    return strchr(name, G_DIR_SEPARATOR) || g_str_has_suffix(name, ".safetensors");
}

char *percept_model_resolve(const char *name, char **error)
{
    if (!name || !*name) {
        *error = g_strdup("no model given");
        return NULL;
    }
    if (is_path(name)) {
        if (g_file_test(name, G_FILE_TEST_IS_REGULAR))
            return g_strdup(name);
        *error = g_strdup_printf("model file '%s' does not exist", name);
        return NULL;
    }
    char **dirs = percept_model_preset_dirs();
    char *file = g_strconcat(name, ".safetensors", NULL), *found = NULL;
    for (char **d = dirs; *d && !found; d++) {
        char *candidate = g_build_filename(*d, file, NULL);
        if (g_file_test(candidate, G_FILE_TEST_IS_REGULAR))
            found = candidate;
        else
            g_free(candidate);
    }
    if (!found) {
        char *list = g_strjoinv(", ", dirs);
        *error = g_strdup_printf("no preset '%s': %s is in none of %s (install the presets, set "
                                 "PERCEPT_PRESET_PATH, or give a file path)", name, file, list);
        g_free(list);
    }
    g_free(file);
    g_strfreev(dirs);
    return found;
}

/* Scale, alignment, halo and smallest input of a network, or FALSE with *error. */
static gboolean measure(PerceptModel *m, char **error)
{
    PerceptNet *net = m->net;
    int oc, oh, ow;
    if (percept_net_input_channels(net) != 3) {
        *error = g_strdup_printf("the network takes %d channels; percept's operations feed it "
                                 "RGB (3)", percept_net_input_channels(net));
        return FALSE;
    }
    int rf = percept_net_receptive_field(net);
    if (rf < 0) {
        *error = g_strdup("the network sees the whole image at once (global pooling or a "
                          "linear layer), so it cannot run on tiles");
        return FALSE;
    }
    m->align = percept_net_alignment(net);
    if (m->align < 1 || m->align > 256) {
        *error = g_strdup_printf("the network downsamples by %d; at most 256 is supported",
                                 m->align);
        return FALSE;
    }
    m->min_side = 0;
    for (int side = m->align; side <= 1024 && !m->min_side; side += m->align)
        if (percept_net_output_shape(net, 1, side, side, &oc, &oh, &ow) == 0)
            m->min_side = side;
    percept_error_clear();
    if (!m->min_side) {
        *error = g_strdup("the network refuses every input size up to 1024 pixels");
        return FALSE;
    }
    /* the output must be a fixed multiple of the input at every aligned size */
    int a = m->min_side, b = m->min_side + 2 * m->align, ah, aw, bh, bw;
    if (percept_net_output_shape(net, 1, a, a + m->align, &oc, &ah, &aw) ||
        percept_net_output_shape(net, 1, b, b, &oc, &bh, &bw) || oc != 3 || ah % a ||
        ah / a < 1 || ah / a > 16 || aw != ah / a * (a + m->align) || bh != ah / a * b ||
        bw != bh) {
        *error = oc != 3 ? g_strdup_printf("the network gives %d channels, not RGB (3)", oc)
                         : g_strdup("the network's output is not a fixed multiple (1 to 16) "
                                    "of its input size");
        percept_error_clear();
        return FALSE;
    }
    m->scale = ah / a;
    /* half the receptive field reaches each side; one more alignment step covers windows
     * that strided layers leave off centre */
    int half = (rf + 1) / 2 + m->align;
    m->halo = (half + m->align - 1) / m->align * m->align;
    m->has_norm = percept_net_norm_stats_floats(net) > 0;
    return TRUE;
}

/* PERCEPT_DEVICE_MEMORY_MB (fractions allowed) on a network not asked for on the CPU. */
static void apply_device_limit(PerceptModel *m)
{
    const char *env = g_getenv("PERCEPT_DEVICE_MEMORY_MB");
    double mb = env ? g_ascii_strtod(env, NULL) : 0;
    if (mb > 0 && strcmp(m->device, "cpu"))
        percept_net_set_memory_limit(m->net, (size_t)(mb * 1048576.0));
}

static void model_free(PerceptModel *m)
{
    percept_net_free(m->net);
    g_mutex_clear(&m->run_lock);
    g_free(m->path);
    g_free(m->device);
    g_free(m->task);
    g_free(m->description);
    g_free(m);
}

static PerceptModel *model_load(const char *path, const char *device, GStatBuf *st,
                                char **error)
{
    PerceptSafetensors *file = percept_st_read(path);
    if (!file) {
        *error = g_strdup(percept_error());
        return NULL;
    }
    const char *arch = percept_st_meta(file, "percept.arch");
    const char *task = percept_st_task(file); /* a training checkpoint: the task it trains */
    const char *description = percept_st_meta(file, "percept.description");
    PerceptModel *m = g_new0(PerceptModel, 1);
    g_mutex_init(&m->run_lock);
    m->path = g_strdup(path);
    m->device = g_strdup(device ? device : "");
    m->task = g_strdup(task ? task : "");
    m->description = g_strdup(description ? description : "");
    m->mtime = (gint64)st->st_mtime;
    m->size = st->st_size;
    m->refs = 1;
    if (arch && !(m->net = percept_net_from_safetensors_on(file, arch, device)) &&
        percept_error_is_out_of_memory() && g_strcmp0(device, "cpu")) {
        /* the weights do not fit the GPU: the model runs on the CPU, as the tiler's runs do
         * when even its smallest tiles do not fit, and says so once */
        char *why = g_strdup(percept_error());
        if ((m->net = percept_net_from_safetensors_on(file, arch, "cpu"))) {
            g_free(m->device);
            m->device = g_strdup("cpu");
            static gsize said = 0;
            percept_say_once(&said, "percept: %s: %s; running on the CPU", path, why);
        }
        g_free(why);
    }
    if (!arch)
        *error = g_strdup_printf("%s: not a percept weight file (no percept.arch in its "
                                 "metadata)", path);
    else if (!m->net)
        *error = g_strdup_printf("%s: %s", path, percept_error());
    else if (!measure(m, error)) {
        char *why = *error;
        *error = g_strdup_printf("%s: %s", path, why);
        g_free(why);
    }
    percept_st_free(file);
    if (*error) {
        model_free(m);
        return NULL;
    }
    apply_device_limit(m);
    return m;
}

PerceptModel *percept_model_acquire(const char *name, char **error)
{
    return percept_model_acquire_on(name, NULL, error);
}

PerceptModel *percept_model_acquire_on(const char *name, const char *device, char **error)
{
    *error = NULL;
    char *path = percept_model_resolve(name, error);
    if (!path)
        return NULL;
    GStatBuf st;
    if (g_stat(path, &st) != 0) {
        *error = g_strdup_printf("%s: cannot read it", path);
        g_free(path);
        return NULL;
    }
    g_mutex_lock(&cache_lock);
    if (!cache)
        cache = g_hash_table_new_full(g_str_hash, g_str_equal, g_free,
                                      (GDestroyNotify)percept_model_release);
    char *key = g_strconcat(path, "\n", device ? device : "", NULL);
    PerceptModel *m = g_hash_table_lookup(cache, key);
    if (m && (m->mtime != (gint64)st.st_mtime || m->size != st.st_size)) {
        g_hash_table_remove(cache, key); /* changed on disk: users keep the old one */
        m = NULL;
    }
    if (!m && (m = model_load(path, device, &st, error)))
        g_hash_table_insert(cache, g_strdup(key), m);
    g_free(key);
    if (m)
        g_atomic_int_inc(&m->refs);
    g_mutex_unlock(&cache_lock);
    g_free(path);
    return m;
}

void percept_model_release(PerceptModel *model)
{
    if (model && g_atomic_int_dec_and_test(&model->refs))
        model_free(model);
}

static gboolean task_accepted(const char *task, const char *tasks)
{
    if (!*task)
        return TRUE;
    char **list = g_strsplit(tasks, "|", -1);
    gboolean ok = g_strv_contains((const char *const *)list, task);
    g_strfreev(list);
    return ok;
}

char *percept_model_unfit(const PerceptModel *m, const char *name, const char *op,
                          const char *tasks, int want_scale)
{
    if (!task_accepted(m->task, tasks)) {
        char **list = g_strsplit(tasks, "|", -1);
        char *names = g_strjoinv(" or ", list);
        char *why = g_strdup_printf("model '%s' is for %s; %s takes models for %s", name,
                                    m->task, op, names);
        g_free(names);
        g_strfreev(list);
        return why;
    }
    if (want_scale == 1 && m->scale != 1)
        return g_strdup_printf("model '%s' enlarges %d times; %s needs one that keeps the size",
                               name, m->scale, op);
    if (want_scale == 0 && m->scale == 1)
        return g_strdup_printf("model '%s' keeps the image size; %s needs a model that "
                               "enlarges", name, op);
    return NULL;
}
