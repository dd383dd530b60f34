/* What the benchmarks share: a monotonic clock and a comparator for medians. */
#ifndef PERCEPT_BENCH_TIMING_H
#define PERCEPT_BENCH_TIMING_H

#include <time.h>

static inline double now(void)
{
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec + t.tv_nsec * 1e-9;
}

static inline int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

#endif
