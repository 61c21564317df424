/* fuzz_chat.c - libFuzzer target: plm sft's and plm dpo's JSONL readers (tasks/chat.h) on
 * arbitrary bytes. The first byte picks the reader; every parse must either fail with an
 * error set and nothing left allocated, or give conversations whose messages exist, have a
 * known role, and hold at least one assistant message with content (pairs: the same
 * number of chosen and rejected conversations). */
#include "core/common.h"
#include "tasks/chat.h"

#include <stdlib.h>
#include <string.h>

static volatile size_t sink;

static void check_set(const plm_chat_set *s) {
    for (int i = 0; i < s->n; i++) {
        const plm_chat *c = &s->items[i];
        bool answered = false;
        if (c->n <= 0 || c->line < 1) abort();
        for (int k = 0; k < c->n; k++) {
            if ((unsigned)c->msgs[k].role > PLM_ROLE_ASSISTANT) abort();
            answered |= c->msgs[k].role == PLM_ROLE_ASSISTANT && c->msgs[k].content[0];
            sink += strlen(c->msgs[k].content);
        }
        if (!answered) abort();
    }
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size < 1) return 0;
    const char *buf = (const char *)data + 1;
    size_t len = size - 1;
    /* cleared, then a failure must name the file: plm_last_error() is never "" (it says
     * "unknown error" when nothing was set), so testing its first byte could not fail */
    plm_error("%s", "");
    if (data[0] & 1) {
        plm_chat_set c, r;
        if (plm_chat_parse_preferences(&c, &r, "fuzz.jsonl", buf, len) == 0) {
            if (c.n != r.n || c.n == 0) abort();
            check_set(&c);
            check_set(&r);
            plm_chat_set_free(&c);
            plm_chat_set_free(&r);
        } else if (!strstr(plm_last_error(), "fuzz.jsonl") || c.n || r.n) {
            abort();
        }
    } else {
        plm_chat_set s;
        if (plm_chat_parse(&s, "fuzz.jsonl", buf, len) == 0) {
            if (s.n == 0) abort();
            check_set(&s);
            plm_chat_set_free(&s);
        } else if (!strstr(plm_last_error(), "fuzz.jsonl") || s.n) {
            abort();
        }
    }
    return 0;
}
