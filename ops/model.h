/* Models for the operations: found by preset name or path, loaded once, cached.
 *
 * A model is shared by every node that names the same file; it is reloaded when the file's
 * modification time or size changes (a model retrained in place), and lives until its last
 * user releases it. Networks are not reentrant, so a model is run by one tiler at a time
 * (run_lock). */
#ifndef PERCEPT_OPS_MODEL_H
#define PERCEPT_OPS_MODEL_H

#include <glib.h>

#include "percept/percept.h"

typedef struct {
    char *path;        /* the file it came from */
    char *device;      /* the device it was asked for ("cpu", "cuda", "auto"; "": the default) */
    char *task;        /* percept.task ("" when the file does not say) */
    char *description; /* percept.description ("" when none) */
    PerceptNet *net;
    int scale;         /* output side ÷ input side */
    int align;         /* tiles start at multiples of this (percept_net_alignment) */
    int halo;          /* input pixels around a tile that reach its outputs */
    int min_side;      /* smallest input side the network takes, a multiple of align */
    gboolean has_norm; /* instance norm: whole-image statistics before the tiles */
    GMutex run_lock;
    gint64 mtime;
    goffset size;
    gint refs;
} PerceptModel;

/* The file a model name stands for: a path (contains '/' or ends in .safetensors) as it is,
 * otherwise a preset NAME.safetensors searched in $PERCEPT_PRESET_PATH (':'-separated),
 * the user's data dir (~/.local/share/percept/presets) and percept's installed presets.
 * NULL with *error set when nothing is found. */
char *percept_model_resolve(const char *name, char **error);

/* A counted reference to the model, loading it if needed; NULL with *error (naming the
 * model and why) when it cannot be used: missing, unreadable, corrupt, not an RGB network,
 * or a network that cannot be tiled. */
PerceptModel *percept_model_acquire(const char *name, char **error);
/* The same with the network on a named device ("cpu", "cuda", "auto"; NULL: libpercept's
 * default, PERCEPT_DEVICE). A model is cached per file and device. Unless the CPU is asked
 * for by name, its network may plan at most PERCEPT_DEVICE_MEMORY_MB (when set): room
 * left on a shared GPU; past it the tiler retries smaller tiles, then the CPU. */
PerceptModel *percept_model_acquire_on(const char *name, const char *device, char **error);
void percept_model_release(PerceptModel *model);

/* Why model (loaded as `name`) does not fit operation `op`, or NULL when it does: its
 * percept.task must be one of `tasks` ('|'-separated; a file without a task passes) and its
 * scale 1 (want_scale 1) or above 1 (want_scale 0). Caller frees. */
char *percept_model_unfit(const PerceptModel *model, const char *name, const char *op,
                          const char *tasks, int want_scale);

/* The directories presets are searched in, in order; free with g_strfreev. */
char **percept_model_preset_dirs(void);

#endif
