/* rng.c - see rng.h */
#include "rng.h"

#include <math.h>

float plm_rng_normal(plm_rng *r) {
    double u1 = plm_rng_uniform_d(r), u2 = plm_rng_uniform_d(r);
    if (u1 < 1e-300) u1 = 1e-300;
    return (float)(sqrt(-2.0 * log(u1)) * cos(6.283185307179586 * u2));
}
