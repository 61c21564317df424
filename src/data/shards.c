/* shards.c - see shards.h */
#include "shards.h"

#include "core/common.h"

void plm_shards_read(const plm_shards *s, size_t pos, size_t n, int32_t *ids, uint8_t *flags) {
    (void)s, (void)pos, (void)n, (void)ids, (void)flags;
    plm_die("shards: not implemented");
}
