/* digest.h - the checksums of plm's files (model weights, optimizer states): XXH3-64 of
 * libxxhash over the bytes in order, stored as "xxh3:" and 16 hex digits. Files written
 * before it carry FNV-1a as 16 bare hex digits; a digest started from such a string
 * computes FNV-1a, so those files still verify. Owns nothing beyond the hash state. */
#ifndef PLM_DIGEST_H
#define PLM_DIGEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef struct {
    void *xxh;    /* XXH3_state_t, or NULL: FNV-1a */
    uint64_t fnv; /* FNV-1a's running value */
} plm_digest;

/* A digest to compare with stored (a file's checksum string), or to write when stored
 * is NULL: FNV-1a for a legacy string, XXH3 otherwise. */
void plm_digest_init(plm_digest *d, const char *stored);
/* Adds n bytes; the split of the data into calls does not change the result. */
void plm_digest_update(plm_digest *d, const void *p, size_t n);
/* The checksum string (at most 24 bytes with its NUL) into out; frees the state. */
void plm_digest_final(plm_digest *d, char out[32]);
/* Whether stored is the checksum of the data given to d (which it frees). */
bool plm_digest_matches(plm_digest *d, const char *stored);

/* FNV-1a 64 over n bytes from h (0: the offset basis): a small, serial hash for a few
 * bytes (seeds and settings compared across ranks) and for legacy checksums. */
uint64_t plm_fnv1a(const void *data, size_t n, uint64_t h);

#endif
