/* digest.c - see digest.h */
#include "digest.h"

#include <inttypes.h>
#include <stdio.h>
#include <string.h>
#include <xxhash.h>

#include "common.h"

uint64_t plm_fnv1a(const void *data, size_t n, uint64_t h) {
    const unsigned char *p = data;
    if (h == 0) h = 0xcbf29ce484222325ULL;
    for (size_t i = 0; i < n; i++) h = (h ^ p[i]) * 0x100000001b3ULL;
    return h;
}

/* FNV-1a hashes one byte per multiply (about 1 GB/s), which made checksums most of the
 * time of loading a model; XXH3 runs at memory speed. */
void plm_digest_init(plm_digest *d, const char *stored) {
    d->fnv = plm_fnv1a(NULL, 0, 0); /* the offset basis */
    d->xxh = NULL;
    if (stored && strncmp(stored, "xxh3:", 5) != 0) return; /* a legacy FNV-1a string */
    XXH3_state_t *s = XXH3_createState();
    if (!s || XXH3_64bits_reset(s) != XXH_OK) plm_die("out of memory allocating a hash state");
    d->xxh = s;
}

void plm_digest_update(plm_digest *d, const void *p, size_t n) {
    if (d->xxh)
        XXH3_64bits_update(d->xxh, p, n);
    else
        d->fnv = plm_fnv1a(p, n, d->fnv);
}

void plm_digest_final(plm_digest *d, char out[32]) {
    if (d->xxh) {
        snprintf(out, 32, "xxh3:%016" PRIx64, (uint64_t)XXH3_64bits_digest(d->xxh));
        XXH3_freeState(d->xxh);
        d->xxh = NULL;
    } else {
        snprintf(out, 32, "%016" PRIx64, d->fnv);
    }
}

bool plm_digest_matches(plm_digest *d, const char *stored) {
    char got[32];
    plm_digest_final(d, got);
    return stored && strcmp(got, stored) == 0;
}
