/* prepare.c - plm prepare: text files, folders and JSONL into token shards (shards.h).
 *
 * Streaming: text files are read in blocks and cut into pieces of about 1 MB at the safe
 * split points of corpus.c (so the ids equal encoding each file whole); JSONL files are
 * read line by line, one document per line. Pieces are encoded in batches of about
 * 8 MB on num_threads threads, then appended in order to the split each piece was
 * assigned to: validation with probability validation_split by a hash of (seed, piece
 * index), so a long document can lend some of its 1 MB blocks to validation, where each
 * part counts as a document of its own. Memory: a batch of text and its encodings, and
 * the flag bytes of the shard being written. */
#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <nettle/sha2.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common.h"
#include "core/progress.h"
#include "core/rng.h"
#include "shards.h"

#define PIECE_BYTES (1u << 20) /* as corpus.c's CHUNK_BYTES */
#define BATCH_BYTES (8u << 20)

void plm_prepare_opts_default(plm_prepare_opts *o) {
    memset(o, 0, sizeof *o);
    o->text_field = "text";
    o->validation_split = 0.0f;
    o->seed = 42;
    o->shard_tokens = 1L << 24;
    o->num_threads = 2;
}

/* ---------------------------------------------------------------- inputs */

typedef struct {
    char **a;
    int n, cap;
} str_vec;

static void sv_push(str_vec *v, char *s) {
    if (v->n == v->cap) v->a = plm_realloc(v->a, (size_t)(v->cap = v->cap ? 2 * v->cap : 64) * sizeof(char *));
    v->a[v->n++] = s;
}

static bool has_ext(const char *s, const char *ext) {
    size_t n = strlen(s), e = strlen(ext);
    return n >= e && strcmp(s + n - e, ext) == 0;
}

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

/* A folder's .txt and .jsonl files, recursively, sorted by path. */
static int list_folder(const char *dir, str_vec *out) {
    DIR *d = opendir(dir);
    if (!d) {
        plm_error("%s: %s", dir, strerror(errno));
        return -1;
    }
    str_vec here = {0};
    struct dirent *e;
    while ((e = readdir(d))) {
        if (e->d_name[0] == '.') continue;
        size_t n = strlen(dir) + strlen(e->d_name) + 2;
        char *p = plm_malloc(n);
        snprintf(p, n, "%s/%s", dir, e->d_name);
        sv_push(&here, p);
    }
    closedir(d);
    qsort(here.a, (size_t)here.n, sizeof(char *), cmp_str);
    int rc = 0;
    for (int i = 0; i < here.n; i++) {
        struct stat sb;
        if (rc == 0 && stat(here.a[i], &sb) == 0 && S_ISDIR(sb.st_mode)) {
            rc = list_folder(here.a[i], out);
            free(here.a[i]);
        } else if (rc == 0 && (has_ext(here.a[i], ".txt") || has_ext(here.a[i], ".jsonl"))) {
            sv_push(out, here.a[i]);
        } else {
            free(here.a[i]);
        }
    }
    free(here.a);
    return rc;
}

/* ---------------------------------------------------------------- split writers */

typedef struct {
    const char *name; /* "train" / "validation" */
    const char *dir;
    int width;
    long shard_tokens;
    FILE *f;
    char final[4200], tmp[4210];
    struct sha256_ctx sha;
    size_t n; /* tokens in the open shard */
    uint8_t *flags;
    uint8_t buf[1 << 16];
    size_t buf_n;
    size_t tokens, docs, shards;
    long long open_doc; /* the document whose tokens are being appended, -1 */
    cJSON *list;
} writer;

static int w_flush(writer *w) {
    if (w->buf_n && fwrite(w->buf, 1, w->buf_n, w->f) != w->buf_n) {
        plm_error("%s: write failed: %s", w->tmp, strerror(errno));
        return -1;
    }
    sha256_update(&w->sha, w->buf_n, w->buf);
    w->buf_n = 0;
    return 0;
}

static int w_close_shard(writer *w) {
    if (!w->f) return 0;
    if (w_flush(w) != 0) return -1;
    sha256_update(&w->sha, w->n, w->flags);
    uint8_t d[SHA256_DIGEST_SIZE];
    char hex[65];
    sha256_digest(&w->sha, sizeof d, d);
    for (int i = 0; i < SHA256_DIGEST_SIZE; i++) snprintf(hex + 2 * i, 3, "%02x", d[i]);
    bool ok = fwrite(w->flags, 1, w->n, w->f) == w->n && fflush(w->f) == 0 && fsync(fileno(w->f)) == 0;
    ok = fclose(w->f) == 0 && ok;
    w->f = NULL;
    if (!ok || rename(w->tmp, w->final) != 0) {
        plm_error("%s: %s", w->final, strerror(errno));
        return -1;
    }
    cJSON *e = cJSON_CreateObject();
    cJSON_AddStringToObject(e, "file", strrchr(w->final, '/') + 1);
    cJSON_AddNumberToObject(e, "tokens", (double)w->n);
    cJSON_AddStringToObject(e, "sha256", hex);
    cJSON_AddItemToArray(w->list, e);
    w->shards++;
    w->n = 0;
    return 0;
}

static int w_push(writer *w, int32_t id, uint8_t flag) {
    if (!w->f) {
        snprintf(w->final, sizeof w->final, "%s/%s-%05zu.bin", w->dir, w->name, w->shards);
        snprintf(w->tmp, sizeof w->tmp, "%s.tmp", w->final);
        w->f = fopen(w->tmp, "wb");
        if (!w->f) {
            plm_error("%s: %s", w->tmp, strerror(errno));
            return -1;
        }
        uint8_t hdr[16] = "PLMSHRD1";
        uint32_t width = (uint32_t)w->width;
        memcpy(hdr + 8, &width, 4);
        memset(hdr + 12, 0, 4);
        sha256_init(&w->sha);
        memcpy(w->buf, hdr, 16);
        w->buf_n = 16;
    }
    if (w->buf_n + 4 > sizeof w->buf && w_flush(w) != 0) return -1;
    if (w->width == 2) {
        uint16_t v = (uint16_t)id;
        memcpy(w->buf + w->buf_n, &v, 2);
    } else {
        uint32_t v = (uint32_t)id;
        memcpy(w->buf + w->buf_n, &v, 4);
    }
    w->buf_n += (size_t)w->width;
    w->flags[w->n++] = flag;
    w->tokens++;
    if ((long)w->n == w->shard_tokens) return w_close_shard(w);
    return 0;
}

/* ---------------------------------------------------------------- pieces */

typedef struct {
    char *text;
    size_t len;
    long long doc;
    bool doc_end;
    int split;
    const char *file;
    size_t file_off; /* byte offset of the piece in its file (text) */
    long line;       /* JSONL line, 0 for text */
    int32_t *ids;    /* the piece's tokens */
    uint8_t *flags;
    size_t n;
    int failed;
} piece;

#define SUB_BYTES (8u << 10)

/* Encodes a piece in sub-pieces of about 16 KB cut at safe split points (the same ids as
 * one encode call: corpus.h), with one reused encoding: the tokenizer's arrays stay in
 * cache (measured 0.4x of the tokenizer alone with 1 MB pieces, 0.6-0.8x with small ones). */
static int encode_piece(const plm_tokenizer *tok, piece *q, plm_encoding *e) {
    size_t cap = q->len / 3 + 16;
    q->ids = plm_malloc(cap * sizeof(int32_t));
    q->flags = plm_malloc(cap);
    q->n = 0;
    for (size_t pos = 0; pos < q->len;) {
        size_t end = pos + SUB_BYTES >= q->len ? q->len : plm_corpus_next_split(q->text, q->len, pos + SUB_BYTES);
        plm_encoding_clear(e);
        if (plm_tokenizer_encode(tok, q->text + pos, end - pos, e) != 0) return -1;
        if (q->n + (size_t)e->n > cap) {
            while (q->n + (size_t)e->n > cap) cap *= 2;
            q->ids = plm_realloc(q->ids, cap * sizeof(int32_t));
            q->flags = plm_realloc(q->flags, cap);
        }
        memcpy(q->ids + q->n, e->ids, (size_t)e->n * sizeof(int32_t));
        plm_token_flags(q->text + pos, end - pos, e, false, q->flags + q->n);
        q->n += (size_t)e->n;
        pos = end;
    }
    return 0;
}

typedef struct {
    const plm_tokenizer *tok;
    const plm_prepare_opts *o;
    plm_prepare_stats *st;
    writer w[2];
    int32_t sep;
    piece *p;
    int np, cap;
    size_t batch_bytes, piece_index, done_bytes;
    long long doc_tokens_doc; /* document of doc_had_tokens */
    bool doc_had_tokens;
    plm_progress pb;
} prep;

static int flush_batch(prep *P) {
    int failed = 0;
    double t0 = plm_now();
#pragma omp parallel num_threads(P->o->num_threads) reduction(| : failed)
    {
        plm_encoding e;
        plm_encoding_init(&e);
#pragma omp for schedule(dynamic, 1)
        for (int i = 0; i < P->np; i++)
            if (encode_piece(P->tok, &P->p[i], &e) != 0) P->p[i].failed = failed = 1;
        plm_encoding_free(&e);
    }
    P->st->encode_seconds += plm_now() - t0;
    int rc = 0;
    for (int i = 0; i < P->np; i++) {
        piece *q = &P->p[i];
        if (rc == 0 && q->failed) {
            if (q->line)
                plm_error("%s:%ld: tokenization failed: %s", q->file, q->line, plm_last_error());
            else
                plm_error("%s: tokenization failed at byte %zu: %s", q->file, q->file_off, plm_last_error());
            rc = PLM_EXIT_INPUT;
        }
        writer *w = &P->w[q->split];
        if (P->doc_tokens_doc != q->doc) P->doc_tokens_doc = q->doc, P->doc_had_tokens = false;
        for (size_t k = 0; rc == 0 && !q->failed && k < q->n; k++) {
            uint8_t f = q->flags[k] & (uint8_t)~PLM_TOK_DOC_START;
            if (w->open_doc != q->doc) {
                /* a new document in this split (or a new part of one) */
                if (w->open_doc >= 0 && P->sep >= 0 && w_push(w, P->sep, PLM_TOK_WORD_START) != 0) rc = PLM_EXIT_FAIL;
                w->open_doc = q->doc;
                w->docs++;
                f |= PLM_TOK_DOC_START | PLM_TOK_SENT_START;
            }
            if (rc == 0 && w_push(w, q->ids[k], f) != 0) rc = PLM_EXIT_FAIL;
            P->doc_had_tokens = true;
        }
        if (rc == 0 && q->doc_end) {
            if (w->open_doc == q->doc) {
                if (P->sep >= 0 && w_push(w, P->sep, PLM_TOK_WORD_START) != 0) rc = PLM_EXIT_FAIL;
                w->open_doc = -1;
            } else if (!P->doc_had_tokens && P->sep >= 0) { /* as corpus.c: a document without tokens */
                if (w->open_doc >= 0 && w_push(w, P->sep, PLM_TOK_WORD_START) != 0) rc = PLM_EXIT_FAIL;
                w->open_doc = -1;
                w->docs++;
                if (rc == 0 && w_push(w, P->sep, PLM_TOK_WORD_START | PLM_TOK_DOC_START) != 0) rc = PLM_EXIT_FAIL;
            }
        }
        P->done_bytes += q->len;
        free(q->ids);
        free(q->flags);
        free(q->text);
    }
    P->np = 0;
    P->batch_bytes = 0;
    if (!P->o->quiet) {
        char status[96];
        double dt = plm_now() - P->st->seconds;
        snprintf(status, sizeof status, "%.1f MB, %.1f MB/s, %zu tokens", (double)P->done_bytes / 1e6,
                 (double)P->done_bytes / 1e6 / (dt > 0 ? dt : 1e-9), P->w[0].tokens + P->w[1].tokens);
        plm_progress_update(&P->pb, (long)(P->done_bytes >> 10), status);
    }
    return rc;
}

/* Queues one piece (takes text). */
static int add_piece(prep *P, char *text, size_t len, long long doc, bool doc_end, const char *file, size_t off,
                     long line) {
    if (P->np == P->cap) P->p = plm_realloc(P->p, (size_t)(P->cap = P->cap ? 2 * P->cap : 64) * sizeof(piece));
    float u = plm_hash_uniform(plm_hash_combine(P->o->seed, 0x5b117ULL), P->piece_index++);
    P->p[P->np++] = (piece){.text = text,
                            .len = len,
                            .doc = doc,
                            .doc_end = doc_end,
                            .split = u < P->o->validation_split ? 1 : 0,
                            .file = file,
                            .file_off = off,
                            .line = line};
    P->batch_bytes += len;
    return P->batch_bytes >= BATCH_BYTES ? flush_batch(P) : 0;
}

static int read_text(prep *P, const char *path, long long doc) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        plm_error("%s: %s", path, strerror(errno));
        return PLM_EXIT_INPUT;
    }
    size_t cap = 4 * PIECE_BYTES, len = 0, file_off = 0;
    char *buf = plm_malloc(cap);
    int rc = 0;
    bool eof = false, any = false;
    while (rc == 0) {
        if (!eof) {
            size_t n = fread(buf + len, 1, cap - len, f);
            len += n;
            if (n == 0 || feof(f)) eof = true;
            if (ferror(f)) {
                plm_error("%s: read error: %s", path, strerror(errno));
                rc = PLM_EXIT_INPUT;
                break;
            }
        }
        size_t pos = 0;
        while (pos < len) {
            size_t end;
            if (pos + PIECE_BYTES >= len) {
                if (!eof) break;
                end = len;
            } else {
                end = plm_corpus_next_split(buf, len, pos + PIECE_BYTES);
                if (end == len && !eof) break;
            }
            long bad = plm_utf8_check(buf + pos, end - pos);
            if (bad >= 0) {
                plm_error("%s: invalid UTF-8 at byte %zu", path, file_off + pos + (size_t)bad);
                rc = PLM_EXIT_INPUT;
                break;
            }
            char *t = plm_malloc(end - pos + 1);
            memcpy(t, buf + pos, end - pos);
            any = true;
            if ((rc = add_piece(P, t, end - pos, doc, eof && end == len, path, file_off + pos, 0)) != 0) break;
            pos = end;
        }
        memmove(buf, buf + pos, len - pos);
        len -= pos;
        file_off += pos;
        if (eof && len == 0) break;
        if (len == cap) buf = plm_realloc(buf, cap *= 2); /* a line longer than the buffer */
    }
    (void)any;
    free(buf);
    fclose(f);
    return rc;
}

static int read_jsonl(prep *P, const char *path, long long *doc) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        plm_error("%s: %s", path, strerror(errno));
        return PLM_EXIT_INPUT;
    }
    char *line = NULL;
    size_t lcap = 0;
    ssize_t n;
    long lineno = 0;
    int rc = 0;
    while (rc == 0 && (n = getline(&line, &lcap, f)) >= 0) {
        lineno++;
        size_t len = (size_t)n;
        while (len && (line[len - 1] == '\n' || line[len - 1] == '\r')) len--;
        size_t k = 0;
        while (k < len && (line[k] == ' ' || line[k] == '\t')) k++;
        if (k == len) continue; /* blank line */
        cJSON *o = cJSON_ParseWithLength(line, len);
        const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, P->o->text_field);
        if (!cJSON_IsObject(o)) {
            plm_error("%s:%ld: not a JSON object", path, lineno);
            rc = PLM_EXIT_INPUT;
        } else if (!cJSON_IsString(t)) {
            plm_error("%s:%ld: no string field \"%s\" (see --text-field)", path, lineno, P->o->text_field);
            rc = PLM_EXIT_INPUT;
        } else {
            size_t tl = strlen(t->valuestring);
            long bad = plm_utf8_check(t->valuestring, tl);
            if (bad >= 0) {
                plm_error("%s:%ld: invalid UTF-8 in \"%s\" at byte %ld", path, lineno, P->o->text_field, bad);
                rc = PLM_EXIT_INPUT;
            } else if (tl > 0) {
                P->done_bytes += len - tl; /* the JSON around the text */
                rc = add_piece(P, plm_strdup(t->valuestring), tl, (*doc)++, true, path, 0, lineno);
            }
        }
        cJSON_Delete(o);
    }
    free(line);
    fclose(f);
    return rc;
}

/* ---------------------------------------------------------------- driver */

static cJSON *split_json(const writer *w) {
    cJSON *s = cJSON_CreateObject();
    cJSON_AddNumberToObject(s, "tokens", (double)w->tokens);
    cJSON_AddNumberToObject(s, "documents", (double)w->docs);
    cJSON_AddItemReferenceToObject(s, "shards", w->list);
    return s;
}

int plm_prepare(const plm_tokenizer *tok, const plm_prepare_opts *o, plm_prepare_stats *st) {
    memset(st, 0, sizeof *st);
    if (o->validation_split < 0 || o->validation_split >= 1 || o->shard_tokens < 1 || o->num_threads < 1) {
        plm_error("prepare: validation_split must be in [0, 1), shard_tokens and num_threads >= 1");
        return PLM_EXIT_USAGE;
    }
    str_vec files = {0};
    int rc = 0;
    for (int i = 0; i < o->num_inputs && rc == 0; i++) {
        struct stat sb;
        if (stat(o->inputs[i], &sb) != 0) {
            plm_error("%s: %s", o->inputs[i], strerror(errno));
            rc = PLM_EXIT_INPUT;
        } else if (S_ISDIR(sb.st_mode)) {
            if (list_folder(o->inputs[i], &files) != 0) rc = PLM_EXIT_INPUT;
        } else {
            sv_push(&files, plm_strdup(o->inputs[i]));
        }
    }
    size_t total = 0;
    for (int i = 0; i < files.n && rc == 0; i++) {
        struct stat sb;
        if (stat(files.a[i], &sb) == 0) total += (size_t)sb.st_size;
    }
    if (rc == 0 && files.n == 0) {
        plm_error("%s: no input files (folders contribute their .txt and .jsonl files)",
                  o->num_inputs ? o->inputs[0] : "prepare");
        rc = PLM_EXIT_INPUT;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/manifest.json", o->output_dir);
    if (rc == 0 && plm_mkdirs(o->output_dir) != 0) rc = PLM_EXIT_FAIL;
    if (rc == 0 && access(path, F_OK) == 0) {
        if (!o->overwrite) {
            plm_error("%s: already holds prepared data (--overwrite replaces it)", o->output_dir);
            rc = PLM_EXIT_USAGE;
        } else if (unlink(path) != 0) {
            plm_error("%s: %s", path, strerror(errno));
            rc = PLM_EXIT_FAIL;
        }
    }
    if (rc != 0) {
        for (int i = 0; i < files.n; i++) free(files.a[i]);
        free(files.a);
        return rc;
    }
    prep P = {.tok = tok, .o = o, .st = st, .doc_tokens_doc = -1};
    int V = plm_tokenizer_vocab_size(tok);
    P.sep = plm_tokenizer_special(tok, PLM_SPECIAL_EOS);
    if (P.sep < 0) P.sep = plm_tokenizer_special(tok, PLM_SPECIAL_SEP);
    const char *names[2] = {"train", "validation"};
    for (int s = 0; s < 2; s++) {
        P.w[s] = (writer){.name = names[s],
                          .dir = o->output_dir,
                          .width = V <= 65536 ? 2 : 4,
                          .shard_tokens = o->shard_tokens,
                          .open_doc = -1,
                          .list = cJSON_CreateArray()};
        P.w[s].flags = plm_malloc((size_t)o->shard_tokens);
    }
    st->seconds = plm_now(); /* the start time until the end */
    if (!o->quiet) plm_progress_start(&P.pb, "prepare", (long)(total >> 10) + 1, 0);
    long long doc = 0;
    for (int i = 0; i < files.n && rc == 0; i++) {
        if (has_ext(files.a[i], ".jsonl"))
            rc = read_jsonl(&P, files.a[i], &doc);
        else
            rc = read_text(&P, files.a[i], doc++);
    }
    if (rc == 0) rc = flush_batch(&P);
    for (int s = 0; s < 2 && rc == 0; s++)
        if (w_close_shard(&P.w[s]) != 0) rc = PLM_EXIT_FAIL;
    for (int i = 0; i < P.np; i++) free(P.p[i].text);
    st->seconds = plm_now() - st->seconds;
    st->bytes = total;
    st->documents = (size_t)doc;
    for (int s = 0; s < 2; s++) {
        st->tokens[s] = P.w[s].tokens;
        st->docs[s] = P.w[s].docs;
        st->shards[s] = P.w[s].shards;
    }
    if (rc == 0 && st->tokens[0] == 0) {
        plm_error("%s%s: empty corpus (no tokens%s)", o->inputs[0], o->num_inputs > 1 ? " ..." : "",
                  st->tokens[1] ? " left for training" : "");
        rc = PLM_EXIT_INPUT;
    }
    if (rc == 0) {
        char h[65];
        plm_tokenizer_hash(tok, h);
        cJSON *m = cJSON_CreateObject();
        cJSON_AddStringToObject(m, "format", "plm-shards");
        cJSON_AddNumberToObject(m, "version", 1);
        cJSON_AddStringToObject(m, "dtype", P.w[0].width == 2 ? "uint16" : "uint32");
        cJSON_AddNumberToObject(m, "vocab_size", V);
        cJSON_AddStringToObject(m, "tokenizer_sha256", h);
        cJSON_AddNumberToObject(m, "document_separator", P.sep);
        cJSON *fl = cJSON_AddObjectToObject(m, "flags");
        cJSON_AddNumberToObject(fl, "word_start", PLM_TOK_WORD_START);
        cJSON_AddNumberToObject(fl, "sentence_start", PLM_TOK_SENT_START);
        cJSON_AddNumberToObject(fl, "document_start", PLM_TOK_DOC_START);
        cJSON_AddStringToObject(m, "sentence_splitter",
                                "line breaks, and . ! ? (+ closing quotes/brackets) before whitespace");
        cJSON_AddNumberToObject(m, "validation_split", o->validation_split);
        cJSON_AddNumberToObject(m, "seed", (double)o->seed);
        cJSON *in = cJSON_AddObjectToObject(m, "inputs");
        cJSON_AddNumberToObject(in, "files", files.n);
        cJSON_AddNumberToObject(in, "bytes", (double)total);
        cJSON_AddNumberToObject(in, "documents", (double)doc);
        cJSON *sp = cJSON_AddObjectToObject(m, "splits");
        cJSON_AddItemToObject(sp, "train", split_json(&P.w[0]));
        cJSON_AddItemToObject(sp, "validation", split_json(&P.w[1]));
        char tpath[4200];
        snprintf(tpath, sizeof tpath, "%s/tokenizer.json", o->output_dir);
        char *js = cJSON_Print(m);
        if (plm_tokenizer_save(tok, tpath) != 0 || plm_write_file_atomic(path, js, strlen(js)) != 0 ||
            plm_fsync_dir(o->output_dir) != 0)
            rc = PLM_EXIT_FAIL;
        free(js);
        cJSON_Delete(m);
    }
    if (!o->quiet) plm_progress_finish(&P.pb, rc == 0 ? "done" : "failed");
    for (int s = 0; s < 2; s++) {
        if (P.w[s].f) {
            fclose(P.w[s].f);
            unlink(P.w[s].tmp);
        }
        cJSON_Delete(P.w[s].list);
        free(P.w[s].flags);
    }
    free(P.p);
    for (int i = 0; i < files.n; i++) free(files.a[i]);
    free(files.a);
    return rc;
}
