/* datasets.h - fine-tuning data: the built-in GLUE task definitions, a reader for custom
 * sentence(-pair) tasks in TSV, CSV or JSONL, and readers for CoNLL-2003 (NER), the Brown
 * corpus (POS) and SQuAD v1.1. Owns the parsed examples, their label / tag sets and the
 * strings they point to. Every reader checks its input (UTF-8, column counts, numbers,
 * labels) and fails with a one-line "file:line: problem" error, returning -1. */
#ifndef PLM_DATASETS_H
#define PLM_DATASETS_H

#include <stdbool.h>
#include <stddef.h>

typedef enum { PLM_TASK_CLASSIFICATION, PLM_TASK_REGRESSION } plm_task_type;
typedef enum { PLM_FORMAT_TSV, PLM_FORMAT_CSV, PLM_FORMAT_JSONL } plm_format;
typedef enum { PLM_SPLIT_TRAIN, PLM_SPLIT_DEV, PLM_SPLIT_TEST } plm_split;

/* Strings of one dataset live in blocks freed together (opaque). */
typedef struct plm_strpool plm_strpool;

/* One sentence or sentence pair. */
typedef struct {
    const char *text_a;
    const char *text_b; /* NULL for single-sentence tasks */
    int label;          /* index into the dataset's labels; -1 unlabelled (test) or regression */
    float target;       /* regression target (STS-B score); 0 otherwise */
    const char *id;     /* the row's index / id column, NULL when the spec names none */
    int line;           /* line of the file the row starts on (1-based), for messages */
} plm_example;

typedef struct {
    plm_example *examples;
    int n;
    plm_task_type type;
    char **labels; /* classification label names; labels[ex.label] */
    int n_labels;
    plm_strpool *pool;
} plm_dataset;

/* How to read a table. Columns are named: by the header row, by `columns` when the file
 * has none (CoLA's train/dev), or by the keys of each JSONL object. TSV is GLUE's format:
 * split on tabs, no quoting (quotes are text, as in HF's glue processors). CSV follows
 * RFC 4180 (quoted fields, "" for a quote, newlines inside quotes). A UTF-8 BOM and CR
 * before LF are dropped. */
typedef struct {
    plm_format format;
    bool no_header;             /* TSV/CSV without a header row: names come from columns */
    const char *const *columns; /* column names when no_header */
    int n_columns;
    const char *text_a; /* required */
    const char *text_b; /* NULL: single sentence */
    const char *label;  /* NULL: unlabelled (test split): label -1 */
    const char *id;     /* NULL: no id column */
    plm_task_type type;
    const char *const *labels; /* fixed label list (GLUE); NULL: see plm_dataset_read */
    int n_labels;
} plm_table_spec;

/* Reads a table into out (which it initialises). The label list is spec->labels when
 * given, else train's labels (dev and test must use the training labels: a label not
 * among them is an error naming file and line), else the distinct labels of this file,
 * sorted as HF's run_glue does: numerically when every label is an integer, otherwise
 * by bytes (strcmp). Sorting rather than first appearance makes the label ids
 * independent of row order. Regression labels must be finite numbers. */
int plm_dataset_read(plm_dataset *out, const char *path, const plm_table_spec *spec, const plm_dataset *train);
/* The same on a buffer already in memory; name stands for the file in messages. */
int plm_dataset_parse(plm_dataset *out, const char *name, const char *buf, size_t len, const plm_table_spec *spec,
                      const plm_dataset *train);
/* Format from the file name: .csv, .jsonl / .json, otherwise TSV. */
plm_format plm_format_from_path(const char *path);
void plm_dataset_free(plm_dataset *ds);

/* A GLUE task as HF's glue processors and run_glue define it. */
typedef struct {
    const char *name;     /* "cola", "sst2", "mrpc", "stsb", "qqp", "mnli", "mnli-mm", "qnli", "rte", "wnli" */
    const char *dir;      /* folder name in the GLUE download: "CoLA", "SST-2", ..., "MNLI" */
    const char *files[3]; /* train, dev, test file names */
    const char *text_a;   /* column names (same in all splits) */
    const char *text_b;   /* NULL for single-sentence tasks */
    const char *label;    /* label column of train/dev; test files have none */
    const char *test_id;  /* id column of the test file ("index"; QQP "id") */
    const char *const *train_dev_columns; /* names for header-less train/dev (CoLA), else NULL */
    int n_train_dev_columns;
    const char *const *labels; /* label list in GLUE's order; NULL for regression */
    int n_labels;
    plm_task_type type;
    const char *metrics[2]; /* "mcc", "accuracy", "f1", "pearson", "spearman"; [1] may be NULL */
} plm_glue_task;

/* The task named name (case-insensitive; "sst-2", "sts-b" and "mnli-m" also accepted), or NULL. */
const plm_glue_task *plm_glue_task_find(const char *name);
/* All built-in tasks; *n gets the count. */
const plm_glue_task *plm_glue_tasks(int *n);
/* The table spec for one split of the task (TSV; test: id column, no label). */
void plm_glue_spec(const plm_glue_task *task, plm_split split, plm_table_spec *spec);
/* Reads dir/<file of split>, e.g. plm_glue_read(t, "data/glue/RTE", PLM_SPLIT_DEV, &ds). */
int plm_glue_read(plm_dataset *out, const plm_glue_task *task, const char *dir, plm_split split);

/* Token classification: a sentence of words with one tag each (tags index the set's tag
 * list), and for CoNLL optionally the POS tag too. */
typedef struct {
    const char **words;
    int *tags;
    int *pos; /* NULL unless asked for */
    int n;
    int line; /* line of the first word */
} plm_tagged_sentence;

typedef struct {
    plm_tagged_sentence *sents;
    int n;
    char **tags; /* tag names, sorted by bytes (HF run_ner's get_label_list) */
    int n_tags;
    char **pos_tags; /* CoNLL POS tag names when kept, sorted */
    int n_pos;
    long n_tokens;
    plm_strpool *pool;
} plm_tagged_set;

/* CoNLL-2003: "word POS chunk NER" per line, blank lines between sentences, -DOCSTART-
 * lines skipped. Tags are kept as given (the original files use IOB1). With train the tag
 * sets are the training file's and an unknown tag is an error; otherwise they are
 * collected from this file. keep_pos also keeps column 2. */
int plm_conll_read(plm_tagged_set *out, const char *path, const plm_tagged_set *train, bool keep_pos);
int plm_conll_parse(plm_tagged_set *out, const char *name, const char *buf, size_t len, const plm_tagged_set *train,
                    bool keep_pos);

/* Brown corpus (original tagged files ca01 ... cr09): one sentence per line, tokens
 * "word/tag" split on the last '/' (words such as 1-1/2 contain one). Reads the files in
 * the order given into one set; train as for CoNLL. */
int plm_brown_read(plm_tagged_set *out, const char *const *paths, int n_paths, const plm_tagged_set *train);
/* Every corpus file of dir (names c[a-r][0-9][0-9], in name order). */
int plm_brown_read_dir(plm_tagged_set *out, const char *dir, const plm_tagged_set *train);
int plm_brown_parse(plm_tagged_set *out, const char *name, const char *buf, size_t len, const plm_tagged_set *train);
void plm_tagged_set_free(plm_tagged_set *s);

/* SQuAD v1.1. answer_start in the JSON counts code points of the context (Python str
 * indices); here it is a byte offset into the UTF-8 context, checked so that
 * context[start, start + strlen(text)) == text. An answer that fails the check keeps
 * start -1 and is counted in n_mismatch (the reader does not fail on it). */
typedef struct {
    const char *id;
    const char *question;
    int context; /* index into contexts */
    int n_answers;
    const char **answer_texts;
    int *answer_starts; /* byte offsets, -1 on mismatch */
} plm_squad_question;

typedef struct {
    const char **contexts;
    int n_contexts;
    plm_squad_question *qs;
    int n;
    long n_answers;
    long n_mismatch;
    plm_strpool *pool;
} plm_squad_set;

/* Appends the questions of path to out; out must be zeroed first ({0}) so that the two
 * halves of the dev set can be read into one set. Structural errors name the file and
 * the JSON path (data[3].paragraphs[1].qas[0]: "id" is not a string); parse errors and
 * invalid UTF-8 name the line. */
int plm_squad_read(plm_squad_set *out, const char *path);
int plm_squad_parse(plm_squad_set *out, const char *name, const char *buf, size_t len);
void plm_squad_free(plm_squad_set *s);

#endif
