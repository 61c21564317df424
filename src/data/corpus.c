/* corpus.c - see corpus.h */
#include "corpus.h"

#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "shards.h"

long plm_utf8_check(const char *str, size_t n) {
    const unsigned char *s = (const unsigned char *)str;
    size_t i = 0;
    while (i < n) {
        unsigned c = s[i];
        if (c < 0x80) {
            i++;
            continue;
        }
        int len;
        unsigned min;
        if ((c & 0xe0) == 0xc0)
            len = 2, min = 0x80;
        else if ((c & 0xf0) == 0xe0)
            len = 3, min = 0x800;
        else if ((c & 0xf8) == 0xf0)
            len = 4, min = 0x10000;
        else
            return (long)i;
        if (i + (size_t)len > n) return (long)i;
        unsigned cp = c & (0x7f >> len);
        for (int k = 1; k < len; k++) {
            if ((s[i + k] & 0xc0) != 0x80) return (long)i;
            cp = cp << 6 | (s[i + k] & 0x3f);
        }
        if (cp < min || cp > 0x10ffff || (cp >= 0xd800 && cp <= 0xdfff)) return (long)i;
        i += (size_t)len;
    }
    return -1;
}

/* A safe split point: just after a '\n' that is followed by a character that is not
 * whitespace. GPT-2's pattern ends every token at such a point (the newline run is
 * its own token and no letter/number/punctuation token starts with '\n'), and BERT
 * splits at all whitespace. */
size_t plm_corpus_next_split(const char *t, size_t len, size_t from) {
    for (size_t i = from; i + 1 < len; i++)
        if (t[i] == '\n' && t[i + 1] != ' ' && t[i + 1] != '\n' && t[i + 1] != '\r' && t[i + 1] != '\t' &&
            t[i + 1] != '\v' && t[i + 1] != '\f')
            return i + 1;
    return len;
}

#define CHUNK_BYTES (1u << 20)

void plm_token_stream_free(plm_token_stream *s) {
    free(s->ids);
    free(s->flags);
    s->ids = NULL;
    s->flags = NULL;
    s->n = 0;
}

void plm_stream_read(const plm_token_stream *s, size_t pos, size_t n, int32_t *ids, uint8_t *flags) {
    if (s->shards) {
        plm_shards_read(s->shards, pos, n, ids, flags);
        return;
    }
    memcpy(ids, s->ids + pos, n * sizeof(int32_t));
    if (!flags) return;
    if (s->flags)
        memcpy(flags, s->flags + pos, n);
    else
        memset(flags, PLM_TOK_WORD_START, n);
}

static bool is_space(unsigned char c) {
    return c == ' ' || c == '\n' || c == '\r' || c == '\t' || c == '\v' || c == '\f';
}

/* Does the text before position p (a whitespace byte) end a sentence: [.!?] followed
 * only by closing quotes or brackets? */
static bool ends_sentence(const char *t, size_t p) {
    while (p > 0 && (t[p - 1] == '"' || t[p - 1] == '\'' || t[p - 1] == ')' || t[p - 1] == ']')) p--;
    return p > 0 && (t[p - 1] == '.' || t[p - 1] == '!' || t[p - 1] == '?');
}

void plm_token_flags(const char *text, size_t len, const plm_encoding *e, bool doc_start, uint8_t *flags) {
    bool pending = true; /* a chunk starts at a line start */
    size_t prev_end = 0;
    for (int k = 0; k < e->n; k++) {
        uint8_t f = 0;
        if (k == 0 || e->word_ids[k] != e->word_ids[k - 1] || e->word_ids[k] < 0) f |= PLM_TOK_WORD_START;
        size_t s = (size_t)e->offsets[2 * k], end = (size_t)e->offsets[2 * k + 1];
        if (end > len) end = len;
        if (s < prev_end) s = prev_end; /* overlapping offsets (a byte split over tokens) */
        /* the gap before the token and the token itself, byte by byte: a line break or a
         * sentence end arms a sentence start, the next non-whitespace byte takes it */
        for (size_t p = prev_end; p < (end > s ? end : s); p++) {
            unsigned char c = (unsigned char)text[p];
            if (is_space(c)) {
                if (c == '\n' || ends_sentence(text, p)) pending = true;
            } else if (p >= s && pending) {
                f |= PLM_TOK_SENT_START;
                pending = false;
            }
        }
        if (k == 0 && doc_start) f |= PLM_TOK_DOC_START | PLM_TOK_SENT_START;
        if (end > prev_end) prev_end = end;
        flags[k] = f;
    }
}

int plm_corpus_tokenize(const plm_tokenizer *tok, const char *const *files, int nfiles, int32_t doc_sep,
                        plm_token_stream *out, int verbose) {
    size_t cap = 1 << 16;
    out->ids = plm_malloc(cap * sizeof(int32_t));
    out->flags = plm_malloc(cap);
    out->n = 0;
    out->shards = NULL;
    double t0 = plm_now();
    size_t total_bytes = 0;
    for (int f = 0; f < nfiles; f++) {
        size_t len, doc_first = out->n;
        char *text = plm_read_file(files[f], &len);
        if (!text) goto fail;
        long bad = plm_utf8_check(text, len);
        if (bad >= 0) {
            plm_error("%s: invalid UTF-8 at byte %ld", files[f], bad);
            free(text);
            goto fail;
        }
        total_bytes += len;
        /* chunk boundaries */
        size_t nchunks = 0, ccap = 16;
        size_t *starts = plm_malloc((ccap + 1) * sizeof(size_t));
        for (size_t pos = 0; pos < len;) {
            size_t end = pos + CHUNK_BYTES >= len ? len : plm_corpus_next_split(text, len, pos + CHUNK_BYTES);
            if (nchunks == ccap) starts = plm_realloc(starts, ((ccap *= 2) + 1) * sizeof(size_t));
            starts[nchunks++] = pos;
            pos = end;
        }
        starts[nchunks] = len;
        plm_encoding *enc = plm_calloc(nchunks ? nchunks : 1, sizeof(plm_encoding));
        int failed = 0;
#pragma omp parallel for schedule(dynamic, 1) reduction(| : failed)
        for (size_t k = 0; k < nchunks; k++) {
            plm_encoding_init(&enc[k]);
            if (plm_tokenizer_encode(tok, text + starts[k], starts[k + 1] - starts[k], &enc[k]) != 0) failed = 1;
        }
        size_t need = out->n + 1;
        for (size_t k = 0; k < nchunks; k++) need += (size_t)enc[k].n;
        if (need > cap) {
            while (cap < need) cap *= 2;
            out->ids = plm_realloc(out->ids, cap * sizeof(int32_t));
            out->flags = plm_realloc(out->flags, cap);
        }
        for (size_t k = 0; k < nchunks; k++) {
            memcpy(out->ids + out->n, enc[k].ids, (size_t)enc[k].n * sizeof(int32_t));
            plm_token_flags(text + starts[k], starts[k + 1] - starts[k], &enc[k], out->n == doc_first,
                            out->flags + out->n);
            out->n += (size_t)enc[k].n;
            plm_encoding_free(&enc[k]);
        }
        free(enc);
        free(starts);
        free(text);
        if (failed) {
            plm_error("%s: tokenization failed: %s", files[f], plm_last_error());
            goto fail;
        }
        if (doc_sep >= 0 && len > 0) {
            out->flags[out->n] = PLM_TOK_WORD_START | (out->n == doc_first ? PLM_TOK_DOC_START : 0);
            out->ids[out->n++] = doc_sep;
        }
        if (verbose)
            fprintf(stderr, "\rtokenizing: %d/%d files, %.1f MB, %zu tokens, %.1f MB/s", f + 1, nfiles,
                    (double)total_bytes / 1e6, out->n, (double)total_bytes / 1e6 / (plm_now() - t0 + 1e-9));
    }
    if (verbose) fputc('\n', stderr);
    if (out->n == 0 || (doc_sep >= 0 && out->n <= (size_t)nfiles)) {
        plm_error("%s%s: empty corpus (no tokens)", nfiles ? files[0] : "corpus", nfiles > 1 ? " ..." : "");
        goto fail;
    }
    return 0;
fail:
    plm_token_stream_free(out);
    return -1;
}
