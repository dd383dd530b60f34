/* One of the fake CUDA runtime's counters (tests/fake-cuda/fake-cuda.cpp: host touches,
 * graph launches, algorithm timings) in the module PERCEPT_CUDA_LIBRARY names, once the
 * backend has loaded it; NULL on a real GPU or when it is not loaded. */
#ifndef PERCEPT_TEST_FAKE_COUNTER_H
#define PERCEPT_TEST_FAKE_COUNTER_H

#include <dlfcn.h>
#include <stdlib.h>

static inline unsigned long *fake_cuda_counter(const char *name)
{
    const char *module = getenv("PERCEPT_CUDA_LIBRARY");
    void *h = module ? dlopen(module, RTLD_NOW | RTLD_NOLOAD) : NULL;
    return h ? (unsigned long *)dlsym(h, name) : NULL;
}

#endif
