/* IEEE half <-> float conversion (round to nearest even; subnormals, Inf and NaN kept). */
#ifndef PERCEPT_HALF_H
#define PERCEPT_HALF_H

#include <stdint.h>

float half_to_float(uint16_t h);
uint16_t float_to_half(float f);

#endif
