/* wordpiece_tool.c - driver for the WordPiece conformance scripts (not a test itself):
 *   wordpiece_tool unicode            per-code-point classification, as tests/ref/bert_unicode_dump.js
 *   wordpiece_tool decode VOCAB IDS   decode lines of ids, as tests/ref/hf_wordpiece_decode.js
 *   wordpiece_tool pairs VOCAB MAXLEN (longest_first|only_first|only_second) (pad|nopad) FILE
 *        model inputs of "A<TAB>B" lines, as tests/ref/hf_wordpiece_pairs.js prints
 *   wordpiece_tool unicode-raw        utf8proc's own properties, for tests/ref/gen_wordpiece_unicode.js
 *   wordpiece_tool encode VOCAB (uncased|cased) FILE...   (VOCAB may be a tokenizer.json)
 *        one output line per input line (split on "\n" only): "id:start:end:word ..."
 *        with byte offsets, or "ERROR message" for a line plm rejects; as
 *        tests/ref/hf_wordpiece.js prints for HF. */
#include "tokenizer/tokenizer.h"
#include "tokenizer/wordpiece.h"
#include "core/common.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <utf8proc.h>

static void hex_utf8(const char *s, size_t n, FILE *f) {
    const unsigned char *u = (const unsigned char *)s;
    size_t i = 0;
    bool first = true;
    while (i < n) {
        uint32_t c;
        int k;
        if (u[i] < 0x80)
            c = u[i], k = 1;
        else if (u[i] < 0xE0)
            c = ((uint32_t)(u[i] & 0x1F) << 6) | (u[i + 1] & 0x3F), k = 2;
        else if (u[i] < 0xF0)
            c = ((uint32_t)(u[i] & 0x0F) << 12) | ((uint32_t)(u[i + 1] & 0x3F) << 6) | (u[i + 2] & 0x3F), k = 3;
        else
            c = ((uint32_t)(u[i] & 0x07) << 18) | ((uint32_t)(u[i + 1] & 0x3F) << 12) |
                ((uint32_t)(u[i + 2] & 0x3F) << 6) | (u[i + 3] & 0x3F),
            k = 4;
        fprintf(f, first ? "%x" : " %x", c);
        first = false;
        i += (size_t)k;
    }
}

static int count_word(void *ctx, const char *w, int len, const int32_t *s, const int32_t *e) {
    (void)w, (void)len, (void)s, (void)e;
    (*(int *)ctx)++;
    return 0;
}

static int cp_to_utf8(uint32_t c, char *o) {
    if (c < 0x80) return o[0] = (char)c, 1;
    if (c < 0x800) return o[0] = (char)(0xC0 | (c >> 6)), o[1] = (char)(0x80 | (c & 0x3F)), 2;
    if (c < 0x10000)
        return o[0] = (char)(0xE0 | (c >> 12)), o[1] = (char)(0x80 | ((c >> 6) & 0x3F)),
               o[2] = (char)(0x80 | (c & 0x3F)), 3;
    o[0] = (char)(0xF0 | (c >> 18)), o[1] = (char)(0x80 | ((c >> 12) & 0x3F)), o[2] = (char)(0x80 | ((c >> 6) & 0x3F));
    o[3] = (char)(0x80 | (c & 0x3F));
    return 4;
}

static int unicode_dump(void) {
    plm_wp_norm cased = {true, false, false, false}, unc = {true, false, true, true},
                none = {false, false, false, false}, cjk = {false, true, false, false};
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        char c[8], abc[8];
        int n = cp_to_utf8(cp, c);
        abc[0] = 'a';
        memcpy(abc + 1, c, (size_t)n);
        abc[n + 1] = 'b';
        size_t la, lb;
        char *a = plm_wp_normalize(&cased, c, (size_t)n, &la);
        char *b = plm_wp_normalize(&unc, c, (size_t)n, &lb);
        int words = 0;
        plm_wp_pretokenize(&none, abc, (size_t)n + 2, count_word, &words);
        int punct = words == 3;
        size_t lc;
        char *k = plm_wp_normalize(&cjk, c, (size_t)n, &lc);
        int is_cjk = !(lc == (size_t)n && !memcmp(k, c, lc));
        free(k);
        if (!((la == (size_t)n && !memcmp(a, c, la)) && (lb == (size_t)n && !memcmp(b, c, lb)) && !punct && !is_cjk)) {
            printf("%x\t", cp);
            hex_utf8(a, la, stdout);
            putchar('\t');
            hex_utf8(b, lb, stdout);
            printf("\t%d\t%d\t%d\n", punct, words, is_cjk);
        }
        free(a);
        free(b);
    }
    return 0;
}

/* utf8proc's own view, without wordpiece_unicode.h: what the generator compares HF to.
 * Columns: cp, other (Cc Cf Cn Co Cs), punct (P*), Mn, lowercase, NFD. */
static int unicode_raw(void) {
    for (uint32_t cp = 0; cp <= 0x10FFFF; cp++) {
        if (cp >= 0xD800 && cp <= 0xDFFF) continue;
        utf8proc_category_t k = utf8proc_category((utf8proc_int32_t)cp);
        int other = k == UTF8PROC_CATEGORY_CN || k == UTF8PROC_CATEGORY_CC || k == UTF8PROC_CATEGORY_CF ||
                    k == UTF8PROC_CATEGORY_CO || k == UTF8PROC_CATEGORY_CS;
        int punct = k >= UTF8PROC_CATEGORY_PC && k <= UTF8PROC_CATEGORY_PO;
        int mn = k == UTF8PROC_CATEGORY_MN;
        uint32_t lower = (uint32_t)utf8proc_tolower((utf8proc_int32_t)cp);
        utf8proc_int32_t d[8];
        int bound = 0;
        utf8proc_ssize_t nd = utf8proc_decompose_char((utf8proc_int32_t)cp, d, 8, UTF8PROC_DECOMPOSE, &bound);
        printf("%x\t%d\t%d\t%d\t%x\t", cp, other, punct, mn, lower);
        for (int i = 0; i < nd; i++) printf(i ? " %x" : "%x", (uint32_t)d[i]);
        printf("\t%d\t%d\n", utf8proc_get_property((utf8proc_int32_t)cp)->combining_class, (int)k);
    }
    return 0;
}

/* Encodes every line of the files (split on "\n" only) without special tokens. */
static int encode_files(const char *vocab, bool lower, char **files, int nfiles) {
    size_t vl = strlen(vocab);
    plm_tokenizer *t = vl > 5 && !strcmp(vocab + vl - 5, ".json") ? plm_tokenizer_load(vocab)
                                                                  : plm_tokenizer_load_wordpiece(vocab, lower);
    if (!t) {
        fprintf(stderr, "%s\n", plm_last_error());
        return 3;
    }
    static char obuf[1 << 20];
    setvbuf(stdout, obuf, _IOFBF, sizeof obuf);
    plm_encoding e;
    plm_encoding_init(&e);
    for (int f = 0; f < nfiles; f++) {
        size_t len;
        char *buf = plm_read_file(files[f], &len);
        if (!buf) {
            fprintf(stderr, "%s\n", plm_last_error());
            return 3;
        }
        for (char *p = buf, *end = buf + len; p < end;) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
            plm_encoding_clear(&e);
            if (plm_tokenizer_encode(t, p, n, &e) != 0) {
                printf("ERROR %s\n", plm_last_error());
            } else {
                for (int i = 0; i < e.n; i++)
                    printf(i ? " %d:%d:%d:%d" : "%d:%d:%d:%d", e.ids[i], e.offsets[2 * i], e.offsets[2 * i + 1],
                           e.word_ids[i]);
                putchar('\n');
            }
            p = nl ? nl + 1 : end;
        }
        free(buf);
    }
    fflush(stdout);
    plm_encoding_free(&e);
    plm_tokenizer_free(t);
    return 0;
}

/* Trains on FILES and writes the vocabulary as vocab.txt (one token per line, by id), or
 * as HF tokenizer.json when OUT ends in .json. */
static int train(const char *out, int vocab_size, bool specials, char **files, int nfiles) {
    plm_tokenizer_train_opts o;
    plm_tokenizer_train_opts_default(&o);
    static const char *sp[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    o.vocab_size = vocab_size;
    o.lowercase = true;
    o.special_tokens = sp;
    o.n_special = specials ? 5 : 0;
    o.show_progress = true;
    double t0 = plm_now();
    plm_tokenizer *t = plm_tokenizer_train_wordpiece((const char *const *)files, nfiles, &o);
    if (!t) {
        fprintf(stderr, "%s\n", plm_last_error());
        return 3;
    }
    fprintf(stderr, "trained %d tokens in %.1fs\n", plm_tokenizer_vocab_size(t), plm_now() - t0);
    size_t ol = strlen(out);
    if (ol > 5 && !strcmp(out + ol - 5, ".json")) { /* HF tokenizer.json instead of vocab.txt */
        int rc = plm_tokenizer_save(t, out);
        if (rc) fprintf(stderr, "%s\n", plm_last_error());
        plm_tokenizer_free(t);
        return rc ? 3 : 0;
    }
    FILE *f = fopen(out, "w");
    if (!f) return 3;
    for (int i = 0; i < plm_tokenizer_vocab_size(t); i++) fprintf(f, "%s\n", plm_tokenizer_id_to_token(t, i));
    fclose(f);
    plm_tokenizer_free(t);
    return 0;
}

/* Tokens per byte of FILES with the vocabulary (uncased). */
static int tpb(const char *vocab, char **files, int nfiles) {
    plm_tokenizer *t = plm_tokenizer_load_wordpiece(vocab, true);
    if (!t) {
        fprintf(stderr, "%s\n", plm_last_error());
        return 3;
    }
    plm_encoding e;
    plm_encoding_init(&e);
    long long bytes = 0, toks = 0, unk = 0;
    for (int f = 0; f < nfiles; f++) {
        size_t len;
        char *buf = plm_read_file(files[f], &len);
        if (!buf) return 3;
        for (char *p = buf, *end = buf + len; p < end;) {
            char *nl = memchr(p, '\n', (size_t)(end - p));
            size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
            plm_encoding_clear(&e);
            if (plm_tokenizer_encode(t, p, n, &e) == 0) {
                toks += e.n;
                for (int i = 0; i < e.n; i++) unk += e.ids[i] == plm_tokenizer_special(t, PLM_SPECIAL_UNK);
            }
            bytes += (long long)n + 1;
            p = nl ? nl + 1 : end;
        }
        free(buf);
    }
    printf("%lld tokens %lld bytes %.6f tokens/byte %lld unk\n", toks, bytes, (double)toks / (double)bytes, unk);
    plm_encoding_free(&e);
    plm_tokenizer_free(t);
    return 0;
}

/* Decodes lines of space-separated ids (skipping special tokens), one output line each
 * with "\\" and newlines escaped, as tests/ref/hf_wordpiece_decode.js prints. */
static int decode_file(const char *vocab, const char *file) {
    plm_tokenizer *t = plm_tokenizer_load_wordpiece(vocab, true);
    size_t len;
    char *buf = t ? plm_read_file(file, &len) : NULL;
    if (!buf) {
        fprintf(stderr, "%s\n", plm_last_error());
        plm_tokenizer_free(t);
        return 3;
    }
    int cap = 1024;
    int32_t *ids = plm_malloc((size_t)cap * sizeof *ids);
    for (char *p = buf, *end = buf + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        int n = 0;
        for (char *q = p; q < le;) {
            char *e;
            long v = strtol(q, &e, 10);
            if (e == q) break;
            if (n == cap) ids = plm_realloc(ids, (size_t)(cap *= 2) * sizeof *ids);
            ids[n++] = (int32_t)v;
            q = e;
        }
        size_t dl;
        char *d = plm_tokenizer_decode(t, ids, n, true, &dl);
        for (size_t i = 0; d && i < dl; i++) {
            if (d[i] == '\\')
                fputs("\\\\", stdout);
            else if (d[i] == '\n')
                fputs("\\n", stdout);
            else
                putchar(d[i]);
        }
        putchar('\n');
        free(d);
        p = nl ? nl + 1 : end;
    }
    free(ids);
    free(buf);
    plm_tokenizer_free(t);
    return 0;
}

/* Model inputs for lines "A" or "A<TAB>B": [CLS] A [SEP] (B [SEP]) with truncation to
 * max_len (0 = none) by strategy, padded to max_len if pad. One line per input line:
 * "id,type,attention,special,start,end,word,seq ..." or "ERROR". */
static int pairs(const char *vocab, int max_len, const char *strategy, bool pad, const char *file) {
    plm_tokenizer *t = plm_tokenizer_load_wordpiece(vocab, true);
    size_t len;
    char *buf = t ? plm_read_file(file, &len) : NULL;
    if (!buf) {
        fprintf(stderr, "%s\n", plm_last_error());
        plm_tokenizer_free(t);
        return 3;
    }
    plm_encode_opts o;
    plm_encode_opts_default(&o);
    o.max_length = max_len;
    o.truncation = !strcmp(strategy, "only_first")    ? PLM_TRUNC_ONLY_FIRST
                   : !strcmp(strategy, "only_second") ? PLM_TRUNC_ONLY_SECOND
                                                      : PLM_TRUNC_LONGEST_FIRST;
    o.pad_to_max_length = pad;
    plm_encoding e;
    plm_encoding_init(&e);
    for (char *p = buf, *end = buf + len; p < end;) {
        char *nl = memchr(p, '\n', (size_t)(end - p));
        char *le = nl ? nl : end;
        char *tab = memchr(p, '\t', (size_t)(le - p));
        const char *b = tab ? tab + 1 : NULL;
        size_t alen = (size_t)((tab ? tab : le) - p), blen = tab ? (size_t)(le - b) : 0;
        if (plm_tokenizer_encode_full(t, p, alen, b, blen, &o, &e) != 0) {
            puts("ERROR");
        } else {
            for (int i = 0; i < e.n; i++)
                printf(i ? " %d,%d,%d,%d,%d,%d,%d,%d" : "%d,%d,%d,%d,%d,%d,%d,%d", e.ids[i], e.type_ids[i],
                       e.attention_mask[i], e.special_mask[i], e.offsets[2 * i], e.offsets[2 * i + 1], e.word_ids[i],
                       e.seq_ids[i]);
            putchar('\n');
        }
        p = nl ? nl + 1 : end;
    }
    plm_encoding_free(&e);
    free(buf);
    plm_tokenizer_free(t);
    return 0;
}

int main(int argc, char **argv) {
    if (argc == 7 && !strcmp(argv[1], "pairs"))
        return pairs(argv[2], atoi(argv[3]), argv[4], !strcmp(argv[5], "pad"), argv[6]);
    if (argc == 4 && !strcmp(argv[1], "decode")) return decode_file(argv[2], argv[3]);
    if (argc >= 5 && !strcmp(argv[1], "train"))
        return train(argv[2], atoi(argv[3]), strcmp(argv[4], "nospecial") != 0, argv + 5, argc - 5);
    if (argc >= 4 && !strcmp(argv[1], "tpb")) return tpb(argv[2], argv + 3, argc - 3);
    if (argc >= 2 && !strcmp(argv[1], "unicode")) return unicode_dump();
    if (argc >= 5 && !strcmp(argv[1], "encode"))
        return encode_files(argv[2], strcmp(argv[3], "cased") != 0, argv + 4, argc - 4);
    if (argc >= 2 && !strcmp(argv[1], "unicode-raw")) return unicode_raw();
    fprintf(stderr, "usage: wordpiece_tool unicode | encode VOCAB [--cased]\n");
    return 2;
}
