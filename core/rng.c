/* Counter-based random numbers: value i of stream `seed` is a hash of (seed, i), so the
 * same seed gives the same numbers whatever the thread count, order or backend (the CUDA
 * kernels compute the same hash). */
#include <math.h>

#include "percept/percept.h"

/* splitmix64 finaliser applied twice: passes BigCrush as a counter-based generator. */
static uint64_t mix64(uint64_t z)
{
    z = (z ^ (z >> 30)) * 0xBF58476D1CE4E5B9ull;
    z = (z ^ (z >> 27)) * 0x94D049BB133111EBull;
    return z ^ (z >> 31);
}

uint64_t percept_rng_u64(uint64_t seed, uint64_t counter)
{
    return mix64(mix64(seed * 0x9E3779B97F4A7C15ull + 0x632BE59BD9B4E019ull) ^
                 (counter + 0x9E3779B97F4A7C15ull));
}

float percept_rng_uniform(uint64_t seed, uint64_t counter)
{
    /* 24 random bits: exactly representable, strictly below 1 */
    return (float)(percept_rng_u64(seed, counter) >> 40) * (1.0f / 16777216.0f);
}

float percept_rng_normal(uint64_t seed, uint64_t counter)
{
    /* Box-Muller on two derived uniforms in double precision; u1 in (0, 1]. */
    uint64_t a = percept_rng_u64(seed, 2 * counter), b = percept_rng_u64(seed, 2 * counter + 1);
    double u1 = ((double)(a >> 11) + 1.0) * (1.0 / 9007199254740992.0);
    double u2 = (double)(b >> 11) * (1.0 / 9007199254740992.0);
    return (float)(sqrt(-2.0 * log(u1)) * cos(2.0 * M_PI * u2));
}
