/* cmd_tokenizer.c - `plm tokenizer train`, `plm tokenize` and `plm detokenize`.
 * Text goes line by line: one output line per input line. Large inputs are cut into
 * blocks of lines encoded on all threads and written back in order, with a progress
 * bar on stderr. */
#include "cli/commands.h"
#include "core/common.h"
#include "tokenizer/tokenizer.h"

#include <errno.h>
#include <omp.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

/* ---- small helpers ---- */

static bool ends_with(const char *s, const char *suf) {
    size_t a = strlen(s), b = strlen(suf);
    return a >= b && strcmp(s + a - b, suf) == 0;
}

/* Loads a tokenizer by file type: tokenizer.json (or a directory holding one), a
 * tiktoken ranks file, a BERT vocab.txt, or GPT-2 encoder.json with merges vocab.bpe. */
static plm_tokenizer *load_any(const char *path, const char *merges, bool cased) {
    if (merges) return plm_tokenizer_load_gpt2(path, merges);
    if (ends_with(path, ".tiktoken")) return plm_tokenizer_load_tiktoken(path);
    if (ends_with(path, ".txt")) return plm_tokenizer_load_wordpiece(path, !cased);
    char buf[4096];
    FILE *f = fopen(path, "rb");
    if (!f) { /* maybe a directory */
        snprintf(buf, sizeof buf, "%s/tokenizer.json", path);
        return plm_tokenizer_load(buf);
    }
    fclose(f);
    snprintf(buf, sizeof buf, "%s/tokenizer.json", path);
    FILE *g = fopen(buf, "rb");
    if (g) {
        fclose(g);
        return plm_tokenizer_load(buf);
    }
    return plm_tokenizer_load(path);
}

typedef struct {
    char *p;
    size_t n, cap;
} obuf;

static void ob_put(obuf *b, const char *s, size_t n) {
    if (n == 0) return;
    if (b->n + n > b->cap) {
        b->cap = PLM_MAX(b->cap * 2, b->n + n + 4096);
        b->p = plm_realloc(b->p, b->cap);
    }
    memcpy(b->p + b->n, s, n);
    b->n += n;
}

static void ob_int(obuf *b, long v) {
    char tmp[24];
    int n = snprintf(tmp, sizeof tmp, "%ld", v);
    ob_put(b, tmp, (size_t)n);
}

static void progress(const char *what, size_t done, size_t total, double t0) {
    double frac = total ? (double)done / (double)total : 1.0;
    int w = 30, k = (int)(frac * w);
    char bar[64];
    for (int i = 0; i < w; i++) bar[i] = i < k ? '#' : '.';
    bar[w] = 0;
    double dt = plm_now() - t0;
    fprintf(stderr, "\r%s [%s] %5.1f%% %.1f MB %.1f MB/s", what, bar, 100 * frac, (double)done / 1e6,
            dt > 0 ? (double)done / 1e6 / dt : 0.0);
}

static int usage_error(const char *cmd, const char *fmt, const char *arg) {
    fprintf(stderr, "plm %s: ", cmd);
    fprintf(stderr, fmt, arg);
    fprintf(stderr, " (see plm %s --help)\n", cmd);
    return PLM_EXIT_USAGE;
}

/* ---- plm tokenizer train ---- */

static const char *train_help =
    "usage: plm tokenizer train [options] FILE...\n"
    "Trains a tokenizer on raw text files (streamed line by line) and writes tokenizer.json.\n"
    "  --kind bpe|wordpiece    byte-level BPE (GPT-2 style, default) or WordPiece (BERT style)\n"
    "  --vocab-size N          vocabulary size including special tokens (default 30000)\n"
    "  --min-frequency N       minimum pair/word count to merge (default 0)\n"
    "  --special A,B,...       special tokens, ids 0.. in this order (default for bpe:\n"
    "                          <|endoftext|>,[PAD],[CLS],[SEP],[MASK],[UNK]; wordpiece:\n"
    "                          [PAD],[UNK],[CLS],[SEP],[MASK])\n"
    "  --cased                 WordPiece: keep case and accents (default: uncased)\n"
    "  --observed-alphabet     BPE: start from the bytes seen in the corpus (HF's default\n"
    "                          trainer) instead of all 256\n"
    "  --threads N             threads (default: all cores)\n"
    "  --output PATH           tokenizer.json to write (default tokenizer.json)\n"
    "  --quiet                 no progress on stderr\n";

int cmd_tokenizer(int argc, char **argv) {
    if (argc < 2 || !strcmp(argv[1], "--help") || !strcmp(argv[1], "-h")) {
        fputs("usage: plm tokenizer train [options] FILE...   (plm tokenizer train --help)\n",
              argc < 2 ? stderr : stdout);
        return argc < 2 ? PLM_EXIT_USAGE : PLM_EXIT_OK;
    }
    if (strcmp(argv[1], "train") != 0) return usage_error("tokenizer", "unknown subcommand '%s'", argv[1]);
    plm_tokenizer_train_opts o;
    plm_tokenizer_train_opts_default(&o);
    o.show_progress = true;
    const char *out = "tokenizer.json", *kind = "bpe";
    char *special = NULL;
    const char **files = plm_calloc((size_t)argc, sizeof *files);
    int nfiles = 0, rc = PLM_EXIT_OK;
    for (int i = 2; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(train_help, stdout);
            goto done;
        } else if (!strcmp(a, "--kind") && has_val) {
            kind = argv[++i];
            if (strcmp(kind, "bpe") && strcmp(kind, "wordpiece")) {
                rc = usage_error("tokenizer train", "--kind must be bpe or wordpiece, not '%s'", kind);
                goto done;
            }
        } else if ((!strcmp(a, "--vocab-size") || !strcmp(a, "--min-frequency") || !strcmp(a, "--threads")) &&
                   has_val) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 0 || v > 10000000) {
                rc = usage_error("tokenizer train", "bad number '%s'", argv[i]);
                goto done;
            }
            if (a[2] == 'v')
                o.vocab_size = (int)v;
            else if (a[2] == 'm')
                o.min_frequency = (int)v;
            else
                o.num_threads = (int)v;
        } else if (!strcmp(a, "--special") && has_val) {
            special = argv[++i];
        } else if (!strcmp(a, "--output") && has_val) {
            out = argv[++i];
        } else if (!strcmp(a, "--cased")) {
            o.lowercase = false;
        } else if (!strcmp(a, "--observed-alphabet")) {
            o.bpe_observed_alphabet = true;
        } else if (!strcmp(a, "--quiet")) {
            o.show_progress = false;
        } else if (a[0] == '-' && a[1]) {
            rc = usage_error("tokenizer train",
                             has_val || strncmp(a, "--", 2) ? "unknown option '%s'" : "option '%s' needs a value", a);
            goto done;
        } else {
            files[nfiles++] = a;
        }
    }
    if (nfiles == 0) {
        rc = usage_error("tokenizer train", "%s", "no input files");
        goto done;
    }
    for (int i = 0; i < nfiles; i++) {
        FILE *f = fopen(files[i], "rb");
        if (!f) {
            fprintf(stderr, "plm tokenizer train: %s: %s\n", files[i], strerror(errno));
            rc = PLM_EXIT_INPUT;
            goto done;
        }
        fclose(f);
    }
    bool bpe = !strcmp(kind, "bpe");
    const char *def_bpe[] = {"<|endoftext|>", "[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"};
    const char *def_wp[] = {"[PAD]", "[UNK]", "[CLS]", "[SEP]", "[MASK]"};
    const char *sp[256];
    int nsp = 0;
    char *spcopy = NULL;
    if (special) {
        spcopy = plm_strdup(special);
        for (char *tok = strtok(spcopy, ","); tok && nsp < 256; tok = strtok(NULL, ",")) sp[nsp++] = tok;
        o.special_tokens = sp;
        o.n_special = nsp;
    } else {
        o.special_tokens = bpe ? def_bpe : def_wp;
        o.n_special = bpe ? 6 : 5;
    }
    double t0 = plm_now();
    plm_tokenizer *t =
        bpe ? plm_tokenizer_train_bpe(files, nfiles, &o) : plm_tokenizer_train_wordpiece(files, nfiles, &o);
    if (!t) {
        fprintf(stderr, "plm tokenizer train: %s\n", plm_last_error());
        rc = PLM_EXIT_INPUT;
    } else if (plm_tokenizer_save(t, out) != 0) {
        fprintf(stderr, "plm tokenizer train: %s\n", plm_last_error());
        rc = PLM_EXIT_FAIL;
    } else if (o.show_progress) {
        fprintf(stderr, "wrote %s: %d tokens in %.1fs\n", out, plm_tokenizer_vocab_size(t), plm_now() - t0);
    }
    plm_tokenizer_free(t);
    free(spcopy);
done:
    free(files);
    return rc;
}

/* ---- plm tokenize / detokenize: shared line-parallel driver ---- */

typedef enum { OUT_IDS, OUT_TOKENS, OUT_OFFSETS } out_format;

typedef struct {
    const plm_tokenizer *t;
    bool decode; /* detokenize */
    out_format fmt;
    bool skip_special;
    int nthreads;
    bool progress;
} job;

/* Processes one line into b. Returns 0, or -1 with plm_error. */
static int do_line(const job *j, const char *s, size_t n, plm_encoding *e, obuf *b, int32_t **ids, size_t *idcap) {
    if (n && s[n - 1] == '\r' && j->decode) n--;
    if (!j->decode) {
        plm_encoding_clear(e);
        if (plm_tokenizer_encode(j->t, s, n, e) != 0) return -1;
        for (int i = 0; i < e->n; i++) {
            if (i) ob_put(b, " ", 1);
            if (j->fmt == OUT_TOKENS) {
                const char *tok = plm_tokenizer_id_to_token(j->t, e->ids[i]);
                ob_put(b, tok, strlen(tok));
            } else {
                ob_int(b, e->ids[i]);
                if (j->fmt == OUT_OFFSETS) {
                    ob_put(b, ":", 1);
                    ob_int(b, e->offsets[2 * i]);
                    ob_put(b, ":", 1);
                    ob_int(b, e->offsets[2 * i + 1]);
                }
            }
        }
        ob_put(b, "\n", 1);
        return 0;
    }
    size_t k = 0;
    const char *p = s, *end = s + n;
    while (p < end) {
        while (p < end && (*p == ' ' || *p == '\t')) p++;
        if (p >= end) break;
        char *q;
        long v = strtol(p, &q, 10);
        if (q == p || (q < end && *q != ' ' && *q != '\t') || v < 0 || v > INT32_MAX) {
            plm_error("not a list of token ids: \"%.40s\"", p);
            return -1;
        }
        if (k == *idcap) *ids = plm_realloc(*ids, (*idcap = *idcap * 2 + 64) * sizeof **ids);
        (*ids)[k++] = (int32_t)v;
        p = q;
    }
    size_t dl;
    char *d = plm_tokenizer_decode(j->t, *ids, (int)k, j->skip_special, &dl);
    if (!d) return -1;
    ob_put(b, d, dl);
    ob_put(b, "\n", 1);
    free(d);
    return 0;
}

#define BLOCK (1u << 20) /* bytes of input per parallel work item */

/* Runs a job over one input (whole buffer), writing to out in order. Returns 0 or the
 * 1-based line number of the first bad line (negative on write error). */
static long run_buffer(const job *j, const char *buf, size_t len, FILE *out, size_t *done, size_t total, double t0) {
    /* cut into blocks at newlines */
    size_t nb = len / BLOCK + 1;
    size_t *cut = plm_malloc((nb + 1) * sizeof *cut);
    size_t m = 0;
    cut[m++] = 0;
    while (cut[m - 1] < len) {
        size_t c = PLM_MIN(len, cut[m - 1] + BLOCK);
        const char *nl = c < len ? memchr(buf + c, '\n', len - c) : NULL;
        c = nl ? (size_t)(nl - buf) + 1 : len;
        if (m == nb + 1) {
            nb *= 2;
            cut = plm_realloc(cut, (nb + 1) * sizeof *cut);
        }
        cut[m++] = c;
    }
    long bad = 0;
    int nt = j->nthreads;
    /* blocks are processed in waves of nt*2, each wave written in order */
    size_t wave = (size_t)nt * 2;
    obuf *ob = plm_calloc(wave, sizeof *ob);
    long *badline = plm_calloc(wave, sizeof *badline);
    long lines_before = 0;
    for (size_t w0 = 0; w0 + 1 < m && !bad; w0 += wave) {
        size_t wn = PLM_MIN(wave, m - 1 - w0);
#pragma omp parallel for num_threads(nt) schedule(dynamic, 1)
        for (size_t k = 0; k < wn; k++) {
            plm_encoding e;
            plm_encoding_init(&e);
            int32_t *ids = NULL;
            size_t idcap = 0;
            ob[k].n = 0;
            badline[k] = 0;
            const char *p = buf + cut[w0 + k], *end = buf + cut[w0 + k + 1];
            long ln = 0;
            while (p < end) {
                const char *nl = memchr(p, '\n', (size_t)(end - p));
                size_t n = nl ? (size_t)(nl - p) : (size_t)(end - p);
                ln++;
                if (do_line(j, p, n, &e, &ob[k], &ids, &idcap) != 0) {
                    badline[k] = ln;
                    break;
                }
                p = nl ? nl + 1 : end;
            }
            badline[k] = badline[k] ? badline[k] : -ln; /* negative: lines in the block */
            free(ids);
            plm_encoding_free(&e);
        }
        for (size_t k = 0; k < wn; k++) {
            if (badline[k] > 0) {
                bad = lines_before + badline[k];
                break;
            }
            lines_before += -badline[k];
            if (fwrite(ob[k].p, 1, ob[k].n, out) != ob[k].n) {
                bad = -1;
                break;
            }
            *done += cut[w0 + k + 1] - cut[w0 + k];
        }
        if (j->progress) progress(j->decode ? "detokenize" : "tokenize", *done, total, t0);
    }
    for (size_t k = 0; k < wave; k++) free(ob[k].p);
    free(ob);
    free(badline);
    free(cut);
    return bad;
}

static int run_files(const char *cmd, const job *j, char **files, int nfiles, const char *outdir, const char *ext,
                     const char *outpath) {
    size_t total = 0, done = 0;
    for (int i = 0; i < nfiles; i++) {
        FILE *f = fopen(files[i], "rb");
        if (!f) {
            fprintf(stderr, "plm %s: %s: %s\n", cmd, files[i], strerror(errno));
            return PLM_EXIT_INPUT;
        }
        fseek(f, 0, SEEK_END);
        total += (size_t)PLM_MAX(ftell(f), 0);
        fclose(f);
    }
    double t0 = plm_now();
    FILE *out = stdout;
    if (outpath && !outdir) {
        out = fopen(outpath, "wb");
        if (!out) {
            fprintf(stderr, "plm %s: %s: %s\n", cmd, outpath, strerror(errno));
            return PLM_EXIT_FAIL;
        }
    }
    int rc = PLM_EXIT_OK;
    for (int i = 0; i < nfiles && rc == PLM_EXIT_OK; i++) {
        size_t len;
        char *buf = plm_read_file(files[i], &len);
        if (!buf) {
            fprintf(stderr, "plm %s: %s\n", cmd, plm_last_error());
            rc = PLM_EXIT_INPUT;
            break;
        }
        FILE *o = out;
        char path[4096];
        if (outdir) {
            const char *base = strrchr(files[i], '/');
            base = base ? base + 1 : files[i];
            snprintf(path, sizeof path, "%s/%s%s", outdir, base, ext);
            o = fopen(path, "wb");
            if (!o) {
                fprintf(stderr, "plm %s: %s: %s\n", cmd, path, strerror(errno));
                free(buf);
                rc = PLM_EXIT_FAIL;
                break;
            }
        }
        long bad = run_buffer(j, buf, len, o, &done, total, t0);
        if (bad > 0) {
            fprintf(stderr, "%splm %s: %s:%ld: %s\n", j->progress ? "\n" : "", cmd, files[i], bad, plm_last_error());
            rc = PLM_EXIT_INPUT;
        } else if (bad < 0 || fflush(o) != 0) {
            fprintf(stderr, "plm %s: write error: %s\n", cmd, strerror(errno));
            rc = PLM_EXIT_FAIL;
        }
        if (o != out) fclose(o); /* a per-file output (--output-dir); --output is closed once, below */
        free(buf);
    }
    if (out != stdout) fclose(out);
    if (j->progress) fprintf(stderr, "\n");
    return rc;
}

/* Reads stdin whole, so it goes through the same parallel path. */
static int run_stdin(const char *cmd, const job *j, const char *outpath) {
    size_t cap = 1 << 20, n = 0;
    char *buf = plm_malloc(cap);
    size_t got;
    while ((got = fread(buf + n, 1, cap - n, stdin)) > 0) {
        n += got;
        if (n == cap) buf = plm_realloc(buf, cap *= 2);
    }
    FILE *out = outpath ? fopen(outpath, "wb") : stdout;
    if (!out) {
        fprintf(stderr, "plm %s: %s: %s\n", cmd, outpath, strerror(errno));
        free(buf);
        return PLM_EXIT_FAIL;
    }
    size_t done = 0;
    job jj = *j;
    jj.progress = false;
    long bad = run_buffer(&jj, buf, n, out, &done, n, plm_now());
    int rc = PLM_EXIT_OK;
    if (bad > 0) {
        fprintf(stderr, "plm %s: <stdin>:%ld: %s\n", cmd, bad, plm_last_error());
        rc = PLM_EXIT_INPUT;
    } else if (bad < 0 || fflush(out) != 0) {
        rc = PLM_EXIT_FAIL;
    }
    if (out != stdout) fclose(out);
    free(buf);
    return rc;
}

static const char *tokenize_help =
    "usage: plm tokenize --tokenizer PATH [options] [FILE...]\n"
    "Encodes text, one output line per input line (stdin when no FILE).\n"
    "  --tokenizer PATH    tokenizer.json (or its directory), BERT vocab.txt, a .tiktoken file,\n"
    "                      or GPT-2 encoder.json together with --merges vocab.bpe\n"
    "  --merges PATH       GPT-2 vocab.bpe\n"
    "  --cased             vocab.txt: no lowercasing / accent stripping\n"
    "  --format F          ids (default), tokens, or offsets (id:start:end, byte offsets)\n"
    "  --output PATH       write here instead of stdout\n"
    "  --output-dir DIR    batch mode: FILE -> DIR/basename(FILE).ids\n"
    "  --threads N         threads (default: all cores)\n"
    "  --quiet             no progress bar\n";

static const char *detokenize_help = "usage: plm detokenize --tokenizer PATH [options] [FILE...]\n"
                                     "Decodes lines of space-separated ids back to text (stdin when no FILE).\n"
                                     "  --tokenizer PATH    as for plm tokenize\n"
                                     "  --merges PATH       GPT-2 vocab.bpe\n"
                                     "  --cased             vocab.txt: cased\n"
                                     "  --skip-special      drop special tokens\n"
                                     "  --output PATH       write here instead of stdout\n"
                                     "  --output-dir DIR    batch mode: FILE -> DIR/basename(FILE).txt\n"
                                     "  --threads N         threads (default: all cores)\n"
                                     "  --quiet             no progress bar\n";

static int tokenize_main(int argc, char **argv, bool decode) {
    const char *cmd = decode ? "detokenize" : "tokenize";
    const char *tokpath = NULL, *merges = NULL, *outpath = NULL, *outdir = NULL;
    job j = {.decode = decode, .fmt = OUT_IDS, .nthreads = omp_get_num_procs(), .progress = true};
    bool cased = false;
    char **files = plm_calloc((size_t)argc + 1, sizeof *files);
    int nfiles = 0, rc = PLM_EXIT_OK;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i];
        bool has_val = i + 1 < argc;
        if (!strcmp(a, "--help") || !strcmp(a, "-h")) {
            fputs(decode ? detokenize_help : tokenize_help, stdout);
            goto done;
        } else if (!strcmp(a, "--tokenizer") && has_val) {
            tokpath = argv[++i];
        } else if (!strcmp(a, "--merges") && has_val) {
            merges = argv[++i];
        } else if (!strcmp(a, "--output") && has_val) {
            outpath = argv[++i];
        } else if (!strcmp(a, "--output-dir") && has_val) {
            outdir = argv[++i];
        } else if (!strcmp(a, "--threads") && has_val) {
            char *end;
            long v = strtol(argv[++i], &end, 10);
            if (*end || v < 1 || v > 1024) {
                rc = usage_error(cmd, "bad --threads '%s'", argv[i]);
                goto done;
            }
            j.nthreads = (int)v;
        } else if (!decode && !strcmp(a, "--format") && has_val) {
            const char *f = argv[++i];
            if (!strcmp(f, "ids"))
                j.fmt = OUT_IDS;
            else if (!strcmp(f, "tokens"))
                j.fmt = OUT_TOKENS;
            else if (!strcmp(f, "offsets"))
                j.fmt = OUT_OFFSETS;
            else {
                rc = usage_error(cmd, "--format must be ids, tokens or offsets, not '%s'", f);
                goto done;
            }
        } else if (!strcmp(a, "--cased")) {
            cased = true;
        } else if (decode && !strcmp(a, "--skip-special")) {
            j.skip_special = true;
        } else if (!strcmp(a, "--quiet")) {
            j.progress = false;
        } else if (a[0] == '-' && a[1]) {
            rc = usage_error(cmd, "unknown option '%s'", a);
            goto done;
        } else {
            files[nfiles++] = argv[i];
        }
    }
    if (!tokpath) {
        rc = usage_error(cmd, "%s", "--tokenizer is required");
        goto done;
    }
    if (outdir && nfiles == 0) {
        rc = usage_error(cmd, "%s", "--output-dir needs input files");
        goto done;
    }
    plm_tokenizer *t = load_any(tokpath, merges, cased);
    if (!t) {
        fprintf(stderr, "plm %s: %s\n", cmd, plm_last_error());
        rc = PLM_EXIT_INPUT;
        goto done;
    }
    j.t = t;
    if (outdir && plm_mkdirs(outdir) != 0) {
        fprintf(stderr, "plm %s: %s\n", cmd, plm_last_error());
        rc = PLM_EXIT_FAIL;
    } else if (nfiles == 0) {
        rc = run_stdin(cmd, &j, outpath);
    } else {
        j.progress = j.progress && (outpath || outdir || isatty(2)); /* not into a log of a pipe */
        rc = run_files(cmd, &j, files, nfiles, outdir, decode ? ".txt" : ".ids", outpath);
    }
    plm_tokenizer_free(t);
done:
    free(files);
    return rc;
}

int cmd_tokenize(int argc, char **argv) { return tokenize_main(argc, argv, false); }
int cmd_detokenize(int argc, char **argv) { return tokenize_main(argc, argv, true); }
