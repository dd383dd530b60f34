/* Which backend a new network runs on, and loading the CUDA one at run time: percept and
 * GIMP must run on machines without the NVIDIA driver or cuDNN, so libpercept never links
 * CUDA; kernels/ builds libpercept-cuda.so, opened here on first use. */
#include <dlfcn.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "graph.h"

typedef enum { DEVICE_UNSET, DEVICE_CPU, DEVICE_CUDA, DEVICE_AUTO } Device;

static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static Device chosen = DEVICE_UNSET;
static int cuda_tried;
static const PerceptBackend *cuda_backend;
static char cuda_why[512]; /* why cuda_backend is NULL */

static const PerceptCoreApi core_api = {
    .fail = percept_fail,
    .fail_oom = percept_fail_oom,
    .act = net_act,
    .param = net_param,
    .param_grad = net_param_grad,
    .in_shape = net_in_shape,
    .cpu = &percept_backend_cpu,
};

static int parse_device(const char *s, Device *d)
{
    if (!strcmp(s, "cpu"))
        *d = DEVICE_CPU;
    else if (!strcmp(s, "cuda"))
        *d = DEVICE_CUDA;
    else if (!strcmp(s, "auto"))
        *d = DEVICE_AUTO;
    else
        return percept_fail("unknown device '%s' (cpu, cuda or auto)", s);
    return 0;
}

/* PERCEPT_CUDA_LIBRARY, else libpercept-cuda.so next to this library, else the loader's
 * search path. */
static void *open_plugin(void)
{
    const char *env = getenv("PERCEPT_CUDA_LIBRARY");
    if (env && *env)
        return dlopen(env, RTLD_NOW | RTLD_LOCAL);
    Dl_info info;
    if (dladdr((void *)percept_set_device, &info) && info.dli_fname) {
        char path[4096];
        const char *slash = strrchr(info.dli_fname, '/');
        if (slash && snprintf(path, sizeof path, "%.*s/libpercept-cuda.so",
                              (int)(slash - info.dli_fname), info.dli_fname) < (int)sizeof path) {
            void *h = dlopen(path, RTLD_NOW | RTLD_LOCAL);
            if (h)
                return h;
        }
    }
    return dlopen("libpercept-cuda.so", RTLD_NOW | RTLD_LOCAL);
}

/* Called with lock held. */
static void load_cuda(void)
{
    if (cuda_tried)
        return;
    cuda_tried = 1;
    void *h = open_plugin();
    if (!h) {
        const char *e = dlerror();
        snprintf(cuda_why, sizeof cuda_why, "the CUDA backend is not available (%s)",
                 e ? e : "libpercept-cuda.so not found");
        return;
    }
    PerceptPluginEntry entry = (PerceptPluginEntry)(uintptr_t)dlsym(h, PERCEPT_PLUGIN_ENTRY);
    if (!entry) {
        snprintf(cuda_why, sizeof cuda_why, "libpercept-cuda.so has no %s", PERCEPT_PLUGIN_ENTRY);
        dlclose(h);
        return;
    }
    PerceptCoreApi api = core_api;
    api.abi = PERCEPT_PLUGIN_ABI;
    static PerceptCoreApi kept; /* the plugin keeps the pointer */
    kept = api;
    cuda_backend = entry(&kept);
    if (!cuda_backend) {
        snprintf(cuda_why, sizeof cuda_why, "CUDA: %s", percept_error());
        dlclose(h);
    }
}


/* The device new networks get when none is named. Called with lock held; -1 (message) for
 * a PERCEPT_DEVICE that names none. */
static int default_device(Device *d)
{
    if (chosen == DEVICE_UNSET) {
        const char *env = getenv("PERCEPT_DEVICE");
        if (!env || !*env)
            chosen = DEVICE_CPU;
        else if (parse_device(env, &chosen)) {
            chosen = DEVICE_UNSET;
            return percept_fail_prefix("PERCEPT_DEVICE: ");
        }
    }
    *d = chosen;
    return 0;
}

const PerceptBackend *backend_for_device(const char *device)
{
    Device d = DEVICE_CPU;
    if (device && parse_device(device, &d))
        return NULL;
    pthread_mutex_lock(&lock);
    const PerceptBackend *be = &percept_backend_cpu;
    if (!device && default_device(&d))
        be = NULL;
    else if (d != DEVICE_CPU) {
        load_cuda();
        if (cuda_backend)
            be = cuda_backend;
        else if (d == DEVICE_CUDA) {
            percept_fail("device cuda: %s", cuda_why);
            be = NULL;
        }
    }
    pthread_mutex_unlock(&lock);
    return be;
}

int percept_set_device(const char *device)
{
    Device d = DEVICE_UNSET;
    if (!device)
        return percept_fail("no device given (cpu, cuda or auto)");
    if (parse_device(device, &d) || !backend_for_device(device)) /* cuda: can it run? */
        return -1;
    pthread_mutex_lock(&lock);
    chosen = d;
    pthread_mutex_unlock(&lock);
    return 0;
}

const PerceptBackend *backend_cuda_loaded(void)
{
    pthread_mutex_lock(&lock);
    const PerceptBackend *be = cuda_backend;
    pthread_mutex_unlock(&lock);
    return be;
}
