/* shards.h - prepared corpora (plm prepare): token shards on disk read through mmap. */
#ifndef PLM_SHARDS_H
#define PLM_SHARDS_H

#include <stddef.h>
#include <stdint.h>

struct plm_shards;
typedef struct plm_shards plm_shards;

/* Tokens [pos, pos + n) of the concatenated shards, as int32 ids and flag bytes. */
void plm_shards_read(const plm_shards *s, size_t pos, size_t n, int32_t *ids, uint8_t *flags);

#endif
