/* datasets.c - GLUE task table, TSV/CSV/JSONL table reader, CoNLL-2003, Brown and SQuAD
 * readers. Each reader works on the whole file in memory: it checks the bytes first
 * (empty, NUL, invalid UTF-8), then parses record by record, copying the strings it keeps
 * into the dataset's pool so that freeing a dataset is freeing a few blocks. */
#include "tasks/datasets.h"

#include <cjson/cJSON.h>
#include <dirent.h>
#include <errno.h>
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <strings.h>

#include "core/common.h"
#include "data/corpus.h"

/* ---- string pool ---- */

typedef struct pool_block {
    struct pool_block *next;
    size_t used, cap;
    _Alignas(16) char data[];
} pool_block;

struct plm_strpool {
    pool_block *head;
};

enum { POOL_BLOCK = 1 << 20 };

static plm_strpool *pool_new(void) { return plm_calloc(1, sizeof(plm_strpool)); }

static void *pool_alloc(plm_strpool *p, size_t n) {
    n = (n + 15) & ~(size_t)15;
    pool_block *b = p->head;
    if (!b || b->cap - b->used < n) {
        /* A big request gets a block of its own behind the head, so the head's free
         * space is not abandoned. */
        size_t cap = n > POOL_BLOCK / 4 ? n : POOL_BLOCK;
        pool_block *nb = plm_malloc(sizeof(pool_block) + cap);
        nb->used = 0;
        nb->cap = cap;
        if (b && cap == n) {
            nb->next = b->next;
            b->next = nb;
            nb->used = n;
            return nb->data;
        }
        nb->next = b;
        p->head = b = nb;
    }
    void *r = b->data + b->used;
    b->used += n;
    return r;
}

static char *pool_strndup(plm_strpool *p, const char *s, size_t n) {
    char *r = pool_alloc(p, n + 1);
    memcpy(r, s, n);
    r[n] = 0;
    return r;
}

static char *pool_strdup(plm_strpool *p, const char *s) { return pool_strndup(p, s, strlen(s)); }

static void pool_free(plm_strpool *p) {
    if (!p) return;
    for (pool_block *b = p->head, *next; b; b = next) {
        next = b->next;
        free(b);
    }
    free(p);
}

/* Grows an array that only ever grows through here: n is its current length, and the
 * capacity is the next power of two (at least 8), so it is reallocated when n hits one. */
static void *grow(void *a, int n, size_t size) {
    if (n == 0 || (n >= 8 && (n & (n - 1)) == 0)) return plm_realloc(a, (size_t)(n < 8 ? 8 : 2 * n) * size);
    return a;
}

/* ---- string -> id map (labels, tags) ---- */

typedef struct {
    char **names; /* id -> name (in the owner's pool) */
    int n;
    int *slots; /* open addressing: id + 1, 0 empty */
    int cap;
} strmap;

static uint32_t hash_str(const char *s) {
    uint32_t h = 2166136261u;
    for (; *s; s++) h = (h ^ (unsigned char)*s) * 16777619u;
    return h;
}

static int strmap_get(const strmap *m, const char *s) {
    if (!m->cap) return -1;
    for (uint32_t i = hash_str(s) & (uint32_t)(m->cap - 1);; i = (i + 1) & (uint32_t)(m->cap - 1)) {
        int id = m->slots[i] - 1;
        if (id < 0) return -1;
        if (strcmp(m->names[id], s) == 0) return id;
    }
}

static int strmap_add(strmap *m, plm_strpool *pool, const char *s) {
    if (2 * (m->n + 1) > m->cap) {
        int cap = m->cap ? 2 * m->cap : 64;
        free(m->slots);
        m->slots = plm_calloc((size_t)cap, sizeof(int));
        m->cap = cap;
        for (int id = 0; id < m->n; id++) {
            uint32_t i = hash_str(m->names[id]) & (uint32_t)(cap - 1);
            while (m->slots[i]) i = (i + 1) & (uint32_t)(cap - 1);
            m->slots[i] = id + 1;
        }
    }
    m->names = grow(m->names, m->n, sizeof(char *));
    m->names[m->n] = pool_strdup(pool, s);
    uint32_t i = hash_str(s) & (uint32_t)(m->cap - 1);
    while (m->slots[i]) i = (i + 1) & (uint32_t)(m->cap - 1);
    m->slots[i] = m->n + 1;
    return m->n++;
}

/* A map holding a fixed list (the task's or the training set's), copied into pool. */
static void strmap_fixed(strmap *m, plm_strpool *pool, char *const *names, int n) {
    for (int i = 0; i < n; i++)
        if (strmap_get(m, names[i]) < 0) strmap_add(m, pool, names[i]);
}

static bool is_integer(const char *s, long long *v) {
    char *end;
    errno = 0;
    *v = strtoll(s, &end, 10);
    return *s && *end == 0 && errno == 0;
}

static int by_bytes(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int by_integer(const void *a, const void *b) {
    long long x, y;
    is_integer(*(char *const *)a, &x);
    is_integer(*(char *const *)b, &y);
    return x < y ? -1 : x > y ? 1 : by_bytes(a, b);
}

/* Sorts the collected names and returns old id -> new id (caller frees). */
static int *strmap_sort(strmap *m, bool numeric_if_integers) {
    bool numeric = numeric_if_integers;
    long long v;
    for (int i = 0; i < m->n && numeric; i++) numeric = is_integer(m->names[i], &v);
    int *remap = plm_malloc((size_t)(m->n ? m->n : 1) * sizeof(int));
    if (m->n == 0) return remap;
    char **sorted = plm_malloc((size_t)m->n * sizeof(char *));
    memcpy(sorted, m->names, (size_t)m->n * sizeof(char *));
    qsort(sorted, (size_t)m->n, sizeof(char *), numeric ? by_integer : by_bytes);
    for (int i = 0; i < m->n; i++) remap[strmap_get(m, sorted[i])] = i;
    memcpy(m->names, sorted, (size_t)m->n * sizeof(char *));
    free(sorted);
    return remap;
}

static void strmap_free(strmap *m) {
    free(m->names);
    free(m->slots);
    memset(m, 0, sizeof *m);
}

/* Hands the names over to the owner (the strings stay in its pool). */
static char **strmap_take(strmap *m, int *n) {
    char **names = m->names;
    *n = m->n;
    m->names = NULL;
    strmap_free(m);
    return names;
}

/* ---- input checks ---- */

static int line_at(const char *buf, size_t pos) {
    int line = 1;
    for (size_t i = 0; i < pos; i++) line += buf[i] == '\n';
    return line;
}

/* Empty, NUL bytes, invalid UTF-8: errors common to every format. */
static int check_bytes(const char *name, const char *buf, size_t len) {
    if (len == 0) {
        plm_error("%s:1: empty file", name);
        return -1;
    }
    const char *nul = memchr(buf, 0, len);
    if (nul) {
        plm_error("%s:%d: NUL byte", name, line_at(buf, (size_t)(nul - buf)));
        return -1;
    }
    long bad = plm_utf8_check(buf, len);
    if (bad >= 0) {
        plm_error("%s:%d: invalid UTF-8 (byte %ld)", name, line_at(buf, (size_t)bad), bad);
        return -1;
    }
    return 0;
}

/* Skips a UTF-8 BOM (MRPC's files start with one). */
static size_t skip_bom(const char *buf, size_t len) { return len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0 ? 3 : 0; }

/* ---- tables ---- */

/* One record of a TSV/CSV file: fields NUL-terminated inside the reader's copy. */
typedef struct {
    char *s; /* mutable copy of the file */
    size_t n, pos;
    int line; /* line the next record starts on */
    bool csv;
    char **fields;
    int n_fields, cap_fields;
} table_reader;

static void add_field(table_reader *r, char *f) {
    if (r->n_fields == r->cap_fields) {
        r->cap_fields = r->cap_fields ? 2 * r->cap_fields : 16;
        r->fields = plm_realloc(r->fields, (size_t)r->cap_fields * sizeof(char *));
    }
    r->fields[r->n_fields++] = f;
}

/* Reads the next non-blank record. Returns 1, 0 at the end, -1 on a CSV quoting error. */
static int next_record(table_reader *r, const char *name, int *line) {
    for (;;) {
        if (r->pos >= r->n) return 0;
        char *s = r->s;
        size_t i = r->pos;
        *line = r->line;
        r->n_fields = 0;
        if (!r->csv) {
            size_t end = i;
            while (end < r->n && s[end] != '\n') end++;
            r->pos = end + 1;
            r->line++;
            size_t stop = end;
            if (stop > i && s[stop - 1] == '\r') stop--;
            if (stop == i) continue; /* blank line */
            s[stop] = 0;
            char *f = s + i;
            add_field(r, f);
            for (char *t = f; (t = strchr(t, '\t')); t++) {
                *t = 0;
                add_field(r, t + 1);
            }
            return 1;
        }
        /* CSV, RFC 4180: a field is quoted ("a ""b""", newlines allowed) or plain. */
        if (s[i] == '\n' || (s[i] == '\r' && i + 1 < r->n && s[i + 1] == '\n')) {
            r->pos = i + (s[i] == '\r' ? 2 : 1);
            r->line++;
            continue;
        }
        for (;;) {
            char *start = s + i;
            if (i < r->n && s[i] == '"') {
                size_t w = i;
                i++;
                for (;;) {
                    if (i >= r->n) {
                        plm_error("%s:%d: unterminated quoted field", name, *line);
                        return -1;
                    }
                    if (s[i] == '"') {
                        if (i + 1 < r->n && s[i + 1] == '"') {
                            s[w++] = '"';
                            i += 2;
                            continue;
                        }
                        i++;
                        break;
                    }
                    if (s[i] == '\n') r->line++;
                    s[w++] = s[i++];
                }
                if (i < r->n && s[i] == '\r' && i + 1 < r->n && s[i + 1] == '\n') i++;
                if (i < r->n && s[i] != ',' && s[i] != '\n') {
                    plm_error("%s:%d: text after a closing quote", name, r->line);
                    return -1;
                }
                char c = i < r->n ? s[i] : '\n';
                s[w] = 0;
                add_field(r, start);
                i++;
                if (c == '\n') break;
            } else {
                size_t j = i;
                while (j < r->n && s[j] != ',' && s[j] != '\n') j++;
                char c = j < r->n ? s[j] : '\n';
                size_t stop = j;
                if (c == '\n' && stop > i && s[stop - 1] == '\r') stop--;
                s[stop] = 0;
                add_field(r, start);
                i = j + 1;
                if (c == '\n') break;
            }
        }
        r->pos = i;
        r->line++;
        return 1;
    }
}

static int find_column(char *const *names, int n, const char *want) {
    for (int i = 0; i < n; i++)
        if (strcmp(names[i], want) == 0) return i;
    return -1;
}

/* One row, whatever the format: its text fields, label text and id. */
typedef struct {
    const char *a, *b, *label, *id;
} row_values;

typedef struct {
    plm_dataset *ds;
    const plm_table_spec *spec;
    const char *name;
    strmap labels;
    bool fixed; /* labels from the task or the training set */
} table_builder;

static int add_row(table_builder *tb, const row_values *v, int line) {
    plm_dataset *ds = tb->ds;
    const plm_table_spec *spec = tb->spec;
    ds->examples = grow(ds->examples, ds->n, sizeof(plm_example));
    plm_example *ex = &ds->examples[ds->n];
    memset(ex, 0, sizeof *ex);
    ex->line = line;
    ex->label = -1;
    ex->text_a = pool_strdup(ds->pool, v->a);
    ex->text_b = v->b ? pool_strdup(ds->pool, v->b) : NULL;
    ex->id = v->id ? pool_strdup(ds->pool, v->id) : NULL;
    if (spec->label) {
        if (spec->type == PLM_TASK_REGRESSION) {
            char *end;
            errno = 0;
            float t = strtof(v->label, &end);
            while (*end == ' ') end++;
            if (!*v->label || *end || errno || !isfinite(t)) {
                plm_error("%s:%d: bad number '%.40s' in column '%s'", tb->name, line, v->label, spec->label);
                return -1;
            }
            ex->target = t;
        } else {
            if (!*v->label) {
                plm_error("%s:%d: empty label in column '%s'", tb->name, line, spec->label);
                return -1;
            }
            int id = strmap_get(&tb->labels, v->label);
            if (id < 0 && tb->fixed) {
                plm_error("%s:%d: unknown label '%.40s' (not among the %s labels)", tb->name, line, v->label,
                          spec->labels ? "task's" : "training");
                return -1;
            }
            ex->label = id >= 0 ? id : strmap_add(&tb->labels, ds->pool, v->label);
        }
    }
    ds->n++;
    return 0;
}

static int parse_delimited(table_builder *tb, char *s, size_t n) {
    const plm_table_spec *spec = tb->spec;
    table_reader r = {.s = s, .n = n, .line = 1, .csv = spec->format == PLM_FORMAT_CSV};
    char **names = NULL;
    int n_names = 0, line = 1, rc = -1, got;
    if (spec->no_header) {
        names = plm_malloc(sizeof(char *) * (size_t)(spec->n_columns ? spec->n_columns : 1));
        for (int i = 0; i < spec->n_columns; i++) names[i] = (char *)spec->columns[i];
        n_names = spec->n_columns;
    } else {
        got = next_record(&r, tb->name, &line);
        if (got <= 0) {
            if (got == 0) plm_error("%s:1: no header row", tb->name);
            free(r.fields);
            return -1;
        }
        names = plm_malloc(sizeof(char *) * (size_t)r.n_fields);
        for (int i = 0; i < r.n_fields; i++) names[i] = r.fields[i];
        n_names = r.n_fields;
    }
    const char *want[4] = {spec->text_a, spec->text_b, spec->label, spec->id};
    int col[4] = {-1, -1, -1, -1};
    for (int k = 0; k < 4; k++) {
        if (!want[k]) continue;
        col[k] = find_column(names, n_names, want[k]);
        if (col[k] < 0) {
            plm_error("%s:1: no column named '%s' (%s)", tb->name, want[k],
                      spec->no_header ? "not in the task's column list" : "not in the header");
            goto done;
        }
    }
    int before = tb->ds->n;
    while ((got = next_record(&r, tb->name, &line)) > 0) {
        if (r.n_fields != n_names) {
            plm_error("%s:%d: %d columns, expected %d", tb->name, line, r.n_fields, n_names);
            goto done;
        }
        row_values v = {r.fields[col[0]], col[1] >= 0 ? r.fields[col[1]] : NULL, col[2] >= 0 ? r.fields[col[2]] : NULL,
                        col[3] >= 0 ? r.fields[col[3]] : NULL};
        if (add_row(tb, &v, line) != 0) goto done;
    }
    if (got < 0) goto done;
    if (tb->ds->n == before) {
        plm_error("%s:%d: no examples", tb->name, r.line);
        goto done;
    }
    rc = 0;
done:
    free(names);
    free(r.fields);
    return rc;
}

/* A JSONL value as text: strings as they are, numbers and booleans spelled out. */
static const char *json_text(const cJSON *v, char *tmp, size_t tmp_size) {
    if (cJSON_IsString(v)) return v->valuestring;
    if (cJSON_IsBool(v)) return cJSON_IsTrue(v) ? "true" : "false";
    if (cJSON_IsNumber(v)) {
        snprintf(tmp, tmp_size, "%.17g", v->valuedouble);
        return tmp;
    }
    return NULL;
}

static int parse_jsonl(table_builder *tb, const char *s, size_t n) {
    const plm_table_spec *spec = tb->spec;
    int line = 0, before = tb->ds->n;
    size_t i = 0;
    while (i < n) {
        size_t end = i;
        while (end < n && s[end] != '\n') end++;
        line++;
        size_t start = i;
        i = end + 1;
        size_t k = start;
        while (k < end && (s[k] == ' ' || s[k] == '\t' || s[k] == '\r')) k++;
        if (k == end) continue;
        cJSON *o = cJSON_ParseWithLength(s + start, end - start);
        if (!cJSON_IsObject(o)) {
            plm_error("%s:%d: %s", tb->name, line, o ? "not a JSON object" : "bad JSON");
            cJSON_Delete(o);
            return -1;
        }
        const char *want[4] = {spec->text_a, spec->text_b, spec->label, spec->id};
        const char *val[4] = {0};
        char tmp[4][40];
        for (int f = 0; f < 4; f++) {
            if (!want[f]) continue;
            const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, want[f]);
            if (!v) {
                plm_error("%s:%d: no field '%s'", tb->name, line, want[f]);
                cJSON_Delete(o);
                return -1;
            }
            /* Texts must be strings; labels and ids may be numbers or booleans. */
            val[f] = f < 2 ? (cJSON_IsString(v) ? v->valuestring : NULL) : json_text(v, tmp[f], sizeof tmp[f]);
            if (!val[f]) {
                plm_error("%s:%d: field '%s' is not a %s", tb->name, line, want[f],
                          f < 2 ? "string" : "string or number");
                cJSON_Delete(o);
                return -1;
            }
        }
        row_values v = {val[0], val[1], val[2], val[3]};
        int rc = add_row(tb, &v, line);
        cJSON_Delete(o);
        if (rc) return -1;
    }
    if (tb->ds->n == before) {
        plm_error("%s:%d: no examples", tb->name, line);
        return -1;
    }
    return 0;
}

int plm_dataset_parse(plm_dataset *out, const char *name, const char *buf, size_t len, const plm_table_spec *spec,
                      const plm_dataset *train) {
    memset(out, 0, sizeof *out);
    if (!spec->text_a) {
        plm_error("%s: the task names no text column", name);
        return -1;
    }
    if (check_bytes(name, buf, len) != 0) return -1;
    out->type = spec->type;
    out->pool = pool_new();
    table_builder tb = {.ds = out, .spec = spec, .name = name};
    if (spec->type == PLM_TASK_CLASSIFICATION) {
        if (spec->labels) {
            strmap_fixed(&tb.labels, out->pool, (char *const *)spec->labels, spec->n_labels);
            tb.fixed = true;
        } else if (train) {
            strmap_fixed(&tb.labels, out->pool, train->labels, train->n_labels);
            tb.fixed = true;
        }
    }
    size_t off = skip_bom(buf, len);
    int rc;
    if (spec->format == PLM_FORMAT_JSONL) {
        rc = parse_jsonl(&tb, buf + off, len - off);
    } else {
        char *copy = plm_malloc(len - off + 1);
        memcpy(copy, buf + off, len - off);
        copy[len - off] = 0;
        rc = parse_delimited(&tb, copy, len - off);
        free(copy);
    }
    if (rc == 0 && !tb.fixed && spec->type == PLM_TASK_CLASSIFICATION && spec->label) {
        int *remap = strmap_sort(&tb.labels, true);
        for (int i = 0; i < out->n; i++) out->examples[i].label = remap[out->examples[i].label];
        free(remap);
    }
    out->labels = strmap_take(&tb.labels, &out->n_labels);
    if (rc != 0) plm_dataset_free(out);
    return rc;
}

int plm_dataset_read(plm_dataset *out, const char *path, const plm_table_spec *spec, const plm_dataset *train) {
    memset(out, 0, sizeof *out);
    size_t len;
    char *buf = plm_read_file(path, &len);
    if (!buf) return -1;
    int rc = plm_dataset_parse(out, path, buf, len, spec, train);
    free(buf);
    return rc;
}

plm_format plm_format_from_path(const char *path) {
    const char *dot = strrchr(path, '.');
    if (dot && strcasecmp(dot, ".csv") == 0) return PLM_FORMAT_CSV;
    if (dot && (strcasecmp(dot, ".jsonl") == 0 || strcasecmp(dot, ".json") == 0)) return PLM_FORMAT_JSONL;
    return PLM_FORMAT_TSV;
}

void plm_dataset_free(plm_dataset *ds) {
    free(ds->examples);
    free(ds->labels);
    pool_free(ds->pool);
    memset(ds, 0, sizeof *ds);
}

/* ---- GLUE ---- */

/* Label lists in the order of HF's glue processors (get_labels), which fixes the ids a
 * checkpoint's classifier rows mean. */
static const char *const labels_01[] = {"0", "1"};
static const char *const labels_mnli[] = {"contradiction", "entailment", "neutral"};
static const char *const labels_entail[] = {"entailment", "not_entailment"};
/* CoLA's train and dev files have no header; these are the columns GLUE documents. */
static const char *const cola_columns[] = {"source", "label", "original_label", "sentence"};

static const plm_glue_task glue_tasks[] = {
    {"cola",
     "CoLA",
     {"train.tsv", "dev.tsv", "test.tsv"},
     "sentence",
     NULL,
     "label",
     "index",
     cola_columns,
     4,
     labels_01,
     2,
     PLM_TASK_CLASSIFICATION,
     {"mcc", NULL}},
    {"sst2",
     "SST-2",
     {"train.tsv", "dev.tsv", "test.tsv"},
     "sentence",
     NULL,
     "label",
     "index",
     NULL,
     0,
     labels_01,
     2,
     PLM_TASK_CLASSIFICATION,
     {"accuracy", NULL}},
    {"mrpc",
     "MRPC",
     {"train.tsv", "dev.tsv", "test.tsv"},
     "#1 String",
     "#2 String",
     "Quality",
     "index",
     NULL,
     0,
     labels_01,
     2,
     PLM_TASK_CLASSIFICATION,
     {"f1", "accuracy"}},
    {"stsb",
     "STS-B",
     {"train.tsv", "dev.tsv", "test.tsv"},
     "sentence1",
     "sentence2",
     "score",
     "index",
     NULL,
     0,
     NULL,
     0,
     PLM_TASK_REGRESSION,
     {"pearson", "spearman"}},
    {"qqp",
     "QQP",
     {"train.tsv", "dev.tsv", "test.tsv"},
     "question1",
     "question2",
     "is_duplicate",
     "id",
     NULL,
     0,
     labels_01,
     2,
     PLM_TASK_CLASSIFICATION,
     {"f1", "accuracy"}},
    {"mnli",
     "MNLI",
     {"train.tsv", "dev_matched.tsv", "test_matched.tsv"},
     "sentence1",
     "sentence2",
     "gold_label",
     "index",
     NULL,
     0,
     labels_mnli,
     3,
     PLM_TASK_CLASSIFICATION,
     {"accuracy", NULL}},
    {"mnli-mm",
     "MNLI",
     {"train.tsv", "dev_mismatched.tsv", "test_mismatched.tsv"},
     "sentence1",
     "sentence2",
     "gold_label",
     "index",
     NULL,
     0,
     labels_mnli,
     3,
     PLM_TASK_CLASSIFICATION,
     {"accuracy", NULL}},
    {"qnli",
     "QNLI",
     {"train.tsv", "dev.tsv", "test.tsv"},
     "question",
     "sentence",
     "label",
     "index",
     NULL,
     0,
     labels_entail,
     2,
     PLM_TASK_CLASSIFICATION,
     {"accuracy", NULL}},
    {"rte",
     "RTE",
     {"train.tsv", "dev.tsv", "test.tsv"},
     "sentence1",
     "sentence2",
     "label",
     "index",
     NULL,
     0,
     labels_entail,
     2,
     PLM_TASK_CLASSIFICATION,
     {"accuracy", NULL}},
    {"wnli",
     "WNLI",
     {"train.tsv", "dev.tsv", "test.tsv"},
     "sentence1",
     "sentence2",
     "label",
     "index",
     NULL,
     0,
     labels_01,
     2,
     PLM_TASK_CLASSIFICATION,
     {"accuracy", NULL}},
};

const plm_glue_task *plm_glue_tasks(int *n) {
    *n = (int)PLM_ARRAY_LEN(glue_tasks);
    return glue_tasks;
}

const plm_glue_task *plm_glue_task_find(const char *name) {
    static const char *const aliases[][2] = {{"sst-2", "sst2"}, {"sts-b", "stsb"}, {"mnli-m", "mnli"}};
    for (size_t i = 0; i < PLM_ARRAY_LEN(aliases); i++)
        if (strcasecmp(name, aliases[i][0]) == 0) name = aliases[i][1];
    for (size_t i = 0; i < PLM_ARRAY_LEN(glue_tasks); i++)
        if (strcasecmp(name, glue_tasks[i].name) == 0) return &glue_tasks[i];
    return NULL;
}

void plm_glue_spec(const plm_glue_task *t, plm_split split, plm_table_spec *spec) {
    memset(spec, 0, sizeof *spec);
    spec->format = PLM_FORMAT_TSV;
    spec->text_a = t->text_a;
    spec->text_b = t->text_b;
    spec->type = t->type;
    spec->labels = t->labels;
    spec->n_labels = t->n_labels;
    if (split == PLM_SPLIT_TEST) {
        spec->id = t->test_id; /* test files: a header, the id, the texts, no label */
        return;
    }
    spec->label = t->label;
    if (t->train_dev_columns) {
        spec->no_header = true;
        spec->columns = t->train_dev_columns;
        spec->n_columns = t->n_train_dev_columns;
    }
}

int plm_glue_read(plm_dataset *out, const plm_glue_task *task, const char *dir, plm_split split) {
    char path[4096];
    snprintf(path, sizeof path, "%s/%s", dir, task->files[split]);
    plm_table_spec spec;
    plm_glue_spec(task, split, &spec);
    return plm_dataset_read(out, path, &spec, NULL);
}

/* ---- tagged sentences (CoNLL-2003, Brown) ---- */

typedef struct {
    plm_tagged_set *set;
    const char *name;
    strmap tags, pos;
    bool fixed, keep_pos;
    /* the sentence being read */
    const char **words;
    int *t, *p;
    int n, cap, line;
} tag_builder;

static void tb_begin(tag_builder *b, plm_tagged_set *out, const plm_tagged_set *train, bool keep_pos) {
    memset(out, 0, sizeof *out);
    memset(b, 0, sizeof *b);
    out->pool = pool_new();
    b->set = out;
    b->keep_pos = keep_pos;
    if (train) {
        b->fixed = true;
        strmap_fixed(&b->tags, out->pool, train->tags, train->n_tags);
        strmap_fixed(&b->pos, out->pool, train->pos_tags, train->n_pos);
    }
}

static int tag_id(tag_builder *b, strmap *m, const char *tag, int line, const char *what) {
    int id = strmap_get(m, tag);
    if (id >= 0) return id;
    if (b->fixed) {
        plm_error("%s:%d: unknown %s '%.40s' (not in the training set)", b->name, line, what, tag);
        return -1;
    }
    return strmap_add(m, b->set->pool, tag);
}

static int tb_token(tag_builder *b, const char *word, size_t word_len, const char *tag, const char *pos, int line) {
    if (b->n == b->cap) {
        b->cap = b->cap ? 2 * b->cap : 64;
        b->words = plm_realloc(b->words, (size_t)b->cap * sizeof(char *));
        b->t = plm_realloc(b->t, (size_t)b->cap * sizeof(int));
        b->p = plm_realloc(b->p, (size_t)b->cap * sizeof(int));
    }
    if (b->n == 0) b->line = line;
    int t = tag_id(b, &b->tags, tag, line, "tag");
    if (t < 0) return -1;
    int p = 0;
    if (b->keep_pos && (p = tag_id(b, &b->pos, pos, line, "POS tag")) < 0) return -1;
    b->words[b->n] = pool_strndup(b->set->pool, word, word_len);
    b->t[b->n] = t;
    b->p[b->n] = p;
    b->n++;
    return 0;
}

static void tb_end_sentence(tag_builder *b) {
    if (b->n == 0) return;
    plm_tagged_set *s = b->set;
    s->sents = grow(s->sents, s->n, sizeof(plm_tagged_sentence));
    plm_tagged_sentence *st = &s->sents[s->n++];
    st->n = b->n;
    st->line = b->line;
    st->words = pool_alloc(s->pool, (size_t)b->n * sizeof(char *));
    memcpy(st->words, b->words, (size_t)b->n * sizeof(char *));
    st->tags = pool_alloc(s->pool, (size_t)b->n * sizeof(int));
    memcpy(st->tags, b->t, (size_t)b->n * sizeof(int));
    st->pos = NULL;
    if (b->keep_pos) {
        st->pos = pool_alloc(s->pool, (size_t)b->n * sizeof(int));
        memcpy(st->pos, b->p, (size_t)b->n * sizeof(int));
    }
    s->n_tokens += b->n;
    b->n = 0;
}

static int tb_finish(tag_builder *b, int rc) {
    plm_tagged_set *s = b->set;
    free(b->words);
    free(b->t);
    free(b->p);
    if (rc == 0 && s->n == 0) {
        plm_error("%s: no sentences", b->name);
        rc = -1;
    }
    if (rc == 0 && !b->fixed) {
        int *tr = strmap_sort(&b->tags, false), *pr = strmap_sort(&b->pos, false);
        for (int i = 0; i < s->n; i++)
            for (int k = 0; k < s->sents[i].n; k++) {
                s->sents[i].tags[k] = tr[s->sents[i].tags[k]];
                if (s->sents[i].pos) s->sents[i].pos[k] = pr[s->sents[i].pos[k]];
            }
        free(tr);
        free(pr);
    }
    s->tags = strmap_take(&b->tags, &s->n_tags);
    s->pos_tags = strmap_take(&b->pos, &s->n_pos);
    if (rc != 0) plm_tagged_set_free(s);
    return rc;
}

/* Splits s (NUL-terminated line) on spaces and tabs into at most max fields. */
static int split_ws(char *s, char **f, int max) {
    int n = 0;
    for (;;) {
        while (*s == ' ' || *s == '\t') s++;
        if (!*s) return n;
        if (n == max) return max + 1;
        f[n++] = s;
        while (*s && *s != ' ' && *s != '\t') s++;
        if (*s) *s++ = 0;
    }
}

int plm_conll_parse(plm_tagged_set *out, const char *name, const char *buf, size_t len, const plm_tagged_set *train,
                    bool keep_pos) {
    tag_builder b;
    tb_begin(&b, out, train, keep_pos);
    b.name = name;
    if (check_bytes(name, buf, len) != 0) return tb_finish(&b, -1);
    char *s = plm_malloc(len + 1);
    memcpy(s, buf, len);
    s[len] = 0;
    int line = 0, rc = 0;
    for (size_t i = 0; i < len && rc == 0;) {
        size_t end = i;
        while (end < len && s[end] != '\n') end++;
        line++;
        if (end > i && s[end - 1] == '\r') s[end - 1] = 0;
        s[end] = 0;
        char *text = s + i;
        i = end + 1;
        char *f[4];
        int nf = split_ws(text, f, 4);
        if (nf == 0) {
            tb_end_sentence(&b);
        } else if (strcmp(f[0], "-DOCSTART-") == 0) {
            tb_end_sentence(&b); /* a document boundary also ends a sentence */
        } else if (nf != 4) {
            plm_error("%s:%d: %s fields, expected 4 (word POS chunk NER)", name, line,
                      nf > 4 ? "more than 4" : "fewer");
            rc = -1;
        } else {
            rc = tb_token(&b, f[0], strlen(f[0]), f[3], f[1], line);
        }
    }
    if (rc == 0) tb_end_sentence(&b);
    free(s);
    return tb_finish(&b, rc);
}

int plm_conll_read(plm_tagged_set *out, const char *path, const plm_tagged_set *train, bool keep_pos) {
    size_t len;
    char *buf = plm_read_file(path, &len);
    if (!buf) {
        memset(out, 0, sizeof *out);
        return -1;
    }
    int rc = plm_conll_parse(out, path, buf, len, train, keep_pos);
    free(buf);
    return rc;
}

/* One Brown file into the builder: each non-blank line is a sentence of word/tag tokens. */
static int brown_file(tag_builder *b, const char *name, const char *buf, size_t len) {
    b->name = name;
    if (check_bytes(name, buf, len) != 0) return -1;
    char *s = plm_malloc(len + 1);
    memcpy(s, buf, len);
    s[len] = 0;
    int line = 0, rc = 0;
    for (size_t i = 0; i < len && rc == 0;) {
        size_t end = i;
        while (end < len && s[end] != '\n') end++;
        line++;
        s[end] = 0;
        char *p = s + i;
        i = end + 1;
        for (;;) {
            while (*p == ' ' || *p == '\t' || *p == '\r') p++;
            if (!*p) break;
            char *tok = p;
            while (*p && *p != ' ' && *p != '\t' && *p != '\r') p++;
            char c = *p;
            *p = 0;
            char *slash = strrchr(tok, '/');
            if (!slash || slash == tok || !slash[1]) {
                plm_error("%s:%d: token '%.40s' is not word/tag", name, line, tok);
                rc = -1;
                break;
            }
            if ((rc = tb_token(b, tok, (size_t)(slash - tok), slash + 1, "", line)) != 0) break;
            *p = c;
        }
        tb_end_sentence(b);
    }
    free(s);
    return rc;
}

int plm_brown_parse(plm_tagged_set *out, const char *name, const char *buf, size_t len, const plm_tagged_set *train) {
    tag_builder b;
    tb_begin(&b, out, train, false);
    b.name = name;
    return tb_finish(&b, brown_file(&b, name, buf, len));
}

int plm_brown_read(plm_tagged_set *out, const char *const *paths, int n_paths, const plm_tagged_set *train) {
    tag_builder b;
    tb_begin(&b, out, train, false);
    b.name = n_paths > 0 ? paths[0] : "brown";
    int rc = 0;
    for (int i = 0; i < n_paths && rc == 0; i++) {
        size_t len;
        char *buf = plm_read_file(paths[i], &len);
        if (!buf) {
            rc = -1;
            break;
        }
        rc = brown_file(&b, paths[i], buf, len);
        free(buf);
    }
    return tb_finish(&b, rc);
}

static bool is_brown_name(const char *s) {
    return strlen(s) == 4 && s[0] == 'c' && s[1] >= 'a' && s[1] <= 'r' && s[2] >= '0' && s[2] <= '9' && s[3] >= '0' &&
           s[3] <= '9';
}

int plm_brown_read_dir(plm_tagged_set *out, const char *dir, const plm_tagged_set *train) {
    memset(out, 0, sizeof *out);
    DIR *d = opendir(dir);
    if (!d) {
        plm_error("%s: %s", dir, strerror(errno));
        return -1;
    }
    char **paths = NULL;
    int n = 0;
    for (struct dirent *e; (e = readdir(d));) {
        if (!is_brown_name(e->d_name)) continue;
        paths = grow(paths, n, sizeof(char *));
        size_t len = strlen(dir) + strlen(e->d_name) + 2;
        paths[n] = plm_malloc(len);
        snprintf(paths[n++], len, "%s/%s", dir, e->d_name);
    }
    closedir(d);
    int rc = -1;
    if (n == 0)
        plm_error("%s: no Brown corpus files (ca01 ... cr09)", dir);
    else {
        qsort(paths, (size_t)n, sizeof(char *), by_bytes);
        rc = plm_brown_read(out, (const char *const *)paths, n, train);
    }
    for (int i = 0; i < n; i++) free(paths[i]);
    free(paths);
    return rc;
}

void plm_tagged_set_free(plm_tagged_set *s) {
    free(s->sents);
    free(s->tags);
    free(s->pos_tags);
    pool_free(s->pool);
    memset(s, 0, sizeof *s);
}

/* ---- SQuAD v1.1 ---- */

/* Byte offset of code point number chars in s (n bytes), or -1 past the end. */
static long char_to_byte(const char *s, size_t n, long chars) {
    size_t i = 0;
    for (long c = 0; c < chars; c++) {
        if (i >= n) return -1;
        i++;
        while (i < n && ((unsigned char)s[i] & 0xc0) == 0x80) i++;
    }
    return (long)i;
}

static const cJSON *json_field(const cJSON *o, const char *key, int want_string) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (want_string == 1) return cJSON_IsString(v) ? v : NULL;
    if (want_string == 2) return cJSON_IsNumber(v) ? v : NULL;
    return cJSON_IsArray(v) ? v : NULL;
}

int plm_squad_parse(plm_squad_set *out, const char *name, const char *buf, size_t len) {
    if (!out->pool) out->pool = pool_new();
    if (check_bytes(name, buf, len) != 0) return -1;
    const char *end = NULL;
    cJSON *root = cJSON_ParseWithLengthOpts(buf, len, &end, 0);
    if (!root) {
        size_t pos = end && end >= buf && end <= buf + len ? (size_t)(end - buf) : len;
        plm_error("%s:%d: bad JSON", name, line_at(buf, pos));
        return -1;
    }
    int rc = -1;
    const cJSON *data = cJSON_IsObject(root) ? json_field(root, "data", 0) : NULL;
    if (!data) {
        plm_error("%s: no \"data\" array at the top level", name);
        goto done;
    }
    int ai = 0;
    for (const cJSON *art = data->child; art; art = art->next, ai++) {
        const cJSON *paras = cJSON_IsObject(art) ? json_field(art, "paragraphs", 0) : NULL;
        if (!paras) {
            plm_error("%s: data[%d]: no \"paragraphs\" array", name, ai);
            goto done;
        }
        int pi = 0;
        for (const cJSON *para = paras->child; para; para = para->next, pi++) {
            const cJSON *ctx = cJSON_IsObject(para) ? json_field(para, "context", 1) : NULL;
            const cJSON *qas = ctx ? json_field(para, "qas", 0) : NULL;
            if (!qas) {
                plm_error("%s: data[%d].paragraphs[%d]: no \"%s\" %s", name, ai, pi, ctx ? "qas" : "context",
                          ctx ? "array" : "string");
                goto done;
            }
            const char *context = pool_strdup(out->pool, ctx->valuestring);
            size_t clen = strlen(context);
            out->contexts = grow(out->contexts, out->n_contexts, sizeof(char *));
            int ci = out->n_contexts++;
            out->contexts[ci] = context;
            int qi = 0;
            for (const cJSON *qa = qas->child; qa; qa = qa->next, qi++) {
                const cJSON *id = cJSON_IsObject(qa) ? json_field(qa, "id", 1) : NULL;
                const cJSON *question = id ? json_field(qa, "question", 1) : NULL;
                const cJSON *answers = question ? json_field(qa, "answers", 0) : NULL;
                if (!answers) {
                    plm_error("%s: data[%d].paragraphs[%d].qas[%d]: no %s", name, ai, pi, qi,
                              !id         ? "\"id\" string"
                              : !question ? "\"question\" string"
                                          : "\"answers\" array");
                    goto done;
                }
                int na = cJSON_GetArraySize(answers);
                out->qs = grow(out->qs, out->n, sizeof(plm_squad_question));
                plm_squad_question *q = &out->qs[out->n];
                q->id = pool_strdup(out->pool, id->valuestring);
                q->question = pool_strdup(out->pool, question->valuestring);
                q->context = ci;
                q->n_answers = na;
                q->answer_texts = pool_alloc(out->pool, (size_t)(na ? na : 1) * sizeof(char *));
                q->answer_starts = pool_alloc(out->pool, (size_t)(na ? na : 1) * sizeof(int));
                int k = 0;
                for (const cJSON *an = answers->child; an; an = an->next, k++) {
                    const cJSON *text = cJSON_IsObject(an) ? json_field(an, "text", 1) : NULL;
                    const cJSON *start = text ? json_field(an, "answer_start", 2) : NULL;
                    if (!start) {
                        plm_error("%s: data[%d].paragraphs[%d].qas[%d].answers[%d]: no %s", name, ai, pi, qi, k,
                                  !text ? "\"text\" string" : "\"answer_start\" number");
                        goto done;
                    }
                    q->answer_texts[k] = pool_strdup(out->pool, text->valuestring);
                    /* answer_start counts code points: find its byte, then check the text is there. */
                    double cs = start->valuedouble;
                    size_t tlen = strlen(text->valuestring);
                    long b =
                        cs >= 0 && cs <= (double)clen && cs == floor(cs) ? char_to_byte(context, clen, (long)cs) : -1;
                    bool ok = b >= 0 && (size_t)b + tlen <= clen && memcmp(context + b, text->valuestring, tlen) == 0;
                    q->answer_starts[k] = ok ? (int)b : -1;
                    out->n_answers++;
                    out->n_mismatch += !ok;
                }
                out->n++;
            }
        }
    }
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

int plm_squad_read(plm_squad_set *out, const char *path) {
    size_t len;
    char *buf = plm_read_file(path, &len);
    if (!buf) return -1;
    int rc = plm_squad_parse(out, path, buf, len);
    free(buf);
    return rc;
}

void plm_squad_free(plm_squad_set *s) {
    free(s->contexts);
    free(s->qs);
    pool_free(s->pool);
    memset(s, 0, sizeof *s);
}
