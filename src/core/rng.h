/* rng.h - random numbers. Two kinds, both reproducible from the run's seed:
 * - plm_rng: a xoshiro256** stream for sequential draws (data order, masking, sampling);
 * - plm_hash_*: counter-based draws, a pure function of (key, index), so dropout masks
 *   can be recomputed in the backward pass instead of stored, and resuming at step k
 *   needs no saved generator state beyond the seed. */
#ifndef PLM_RNG_H
#define PLM_RNG_H

#include <stdint.h>

typedef struct {
    uint64_t s[4];
} plm_rng;

/* splitmix64's finaliser: a bijective mixer with good avalanche. */
static inline uint64_t plm_hash64(uint64_t x) {
    x += 0x9e3779b97f4a7c15ULL;
    x = (x ^ (x >> 30)) * 0xbf58476d1ce4e5b9ULL;
    x = (x ^ (x >> 27)) * 0x94d049bb133111ebULL;
    return x ^ (x >> 31);
}

/* Combines keys: seed, stream, step, ... into one 64-bit key. */
static inline uint64_t plm_hash_combine(uint64_t a, uint64_t b) { return plm_hash64(a ^ plm_hash64(b)); }

/* The 24 random bits of draw index under key, as an integer. */
static inline uint32_t plm_hash_bits24(uint64_t key, uint64_t index) {
    return (uint32_t)(plm_hash64(key + index * 0xd1b54a32d192ed03ULL) >> 40);
}

/* Uniform in [0, 1) with 24 random bits, from the counter index under key. */
static inline float plm_hash_uniform(uint64_t key, uint64_t index) {
    return (float)plm_hash_bits24(key, index) * 0x1.0p-24f;
}

/* Dropout's draw in integers: plm_hash_uniform(key, i) >= p exactly when
 * plm_hash_bits24(key, i) >= plm_keep_threshold(p), since b 2^-24 >= p <=> b >= p 2^24
 * (exact: a power of two) <=> b >= ceil(p 2^24) for an integer b. Integer lanes
 * vectorise on AVX2, which has no 64-bit integer to float conversion. p in [0, 1]. */
static inline uint32_t plm_keep_threshold(float p) {
    float t = p * 0x1.0p24f;
    uint32_t u = (uint32_t)t;
    return u + ((float)u < t);
}

static inline void plm_rng_seed(plm_rng *r, uint64_t seed, uint64_t stream) {
    uint64_t k = plm_hash_combine(seed, stream);
    for (int i = 0; i < 4; i++) r->s[i] = k = plm_hash64(k + (uint64_t)i);
}

static inline uint64_t plm_rng_rotl(uint64_t x, int k) { return (x << k) | (x >> (64 - k)); }

static inline uint64_t plm_rng_next(plm_rng *r) {
    uint64_t *s = r->s;
    uint64_t result = plm_rng_rotl(s[1] * 5, 7) * 9;
    uint64_t t = s[1] << 17;
    s[2] ^= s[0];
    s[3] ^= s[1];
    s[1] ^= s[2];
    s[0] ^= s[3];
    s[2] ^= t;
    s[3] = plm_rng_rotl(s[3], 45);
    return result;
}

/* Uniform float in [0, 1). */
static inline float plm_rng_uniform(plm_rng *r) { return (float)(plm_rng_next(r) >> 40) * 0x1.0p-24f; }
/* Uniform double in [0, 1) with 53 bits. */
static inline double plm_rng_uniform_d(plm_rng *r) { return (double)(plm_rng_next(r) >> 11) * 0x1.0p-53; }

/* Uniform integer in [0, n) without modulo bias (Lemire's method). */
static inline uint32_t plm_rng_below(plm_rng *r, uint32_t n) {
    uint64_t m = (uint64_t)(uint32_t)(plm_rng_next(r) >> 32) * n;
    if ((uint32_t)m < n) {
        uint32_t t = -n % n;
        while ((uint32_t)m < t) m = (uint64_t)(uint32_t)(plm_rng_next(r) >> 32) * n;
    }
    return (uint32_t)(m >> 32);
}

/* Standard normal (Box-Muller), for weight initialisation. */
float plm_rng_normal(plm_rng *r);

#endif
