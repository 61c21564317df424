/* fuzz_datasets.c - libFuzzer target: the fine-tuning readers on arbitrary bytes. The
 * first byte picks the reader (TSV / CSV / JSONL table with one or two texts, fixed or
 * collected labels, regression; GLUE CoLA's header-less spec; CoNLL; Brown; SQuAD) and
 * every parse must either fail with an error set or give examples whose strings exist
 * and whose label / tag ids are inside their sets. */
#include "core/common.h"
#include "tasks/datasets.h"

#include <stdlib.h>
#include <string.h>

/* Touching every string makes ASan check that it is there and terminated. */
static volatile size_t sink;

static void check_table(const plm_dataset *ds, const plm_table_spec *spec) {
    for (int i = 0; i < ds->n; i++) {
        const plm_example *e = &ds->examples[i];
        if (!e->text_a || (spec->text_b != NULL) != (e->text_b != NULL)) abort();
        if (spec->label && spec->type == PLM_TASK_CLASSIFICATION && (e->label < 0 || e->label >= ds->n_labels)) abort();
        if ((!spec->label || spec->type == PLM_TASK_REGRESSION) && e->label != -1) abort();
        if (e->line < 1) abort();
        sink += strlen(e->text_a) + (e->text_b ? strlen(e->text_b) : 0) + (e->id ? strlen(e->id) : 0);
    }
    for (int i = 0; i < ds->n_labels; i++) sink += strlen(ds->labels[i]);
}

static void check_tagged(const plm_tagged_set *s) {
    long n = 0;
    for (int i = 0; i < s->n; i++) {
        const plm_tagged_sentence *st = &s->sents[i];
        if (st->n <= 0) abort();
        for (int k = 0; k < st->n; k++) {
            if (st->tags[k] < 0 || st->tags[k] >= s->n_tags) abort();
            if (st->pos && (st->pos[k] < 0 || st->pos[k] >= s->n_pos)) abort();
            sink += strlen(st->words[k]);
        }
        n += st->n;
    }
    if (n != s->n_tokens) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    if (size == 0) return 0;
    uint8_t mode = data[0];
    const char *buf = (const char *)data + 1;
    size_t n = size - 1;
    static const char *const two[] = {"0", "1"};
    int reader = mode % 8;
    if (reader < 5) {
        plm_table_spec spec = {.format = (plm_format)(mode % 3), .text_a = "a", .label = "label"};
        if (mode & 0x10) spec.text_b = "b";
        if (mode & 0x20) spec.id = "id";
        if (mode & 0x40) spec.type = PLM_TASK_REGRESSION;
        if (mode & 0x80) spec.labels = two, spec.n_labels = 2;
        if (reader == 4) plm_glue_spec(plm_glue_task_find("cola"), PLM_SPLIT_DEV, &spec);
        plm_dataset ds, dev;
        if (plm_dataset_parse(&ds, "fuzz", buf, n, &spec, NULL) == 0) {
            check_table(&ds, &spec);
            /* The same bytes read as a dev split against their own labels must succeed. */
            if (plm_dataset_parse(&dev, "fuzz", buf, n, &spec, &ds) != 0) abort();
            if (dev.n != ds.n) abort();
            check_table(&dev, &spec);
            plm_dataset_free(&dev);
            plm_dataset_free(&ds);
        } else if (!*plm_last_error()) {
            abort();
        }
    } else if (reader == 5) {
        plm_tagged_set s, d;
        if (plm_conll_parse(&s, "fuzz", buf, n, NULL, mode & 0x10) == 0) {
            check_tagged(&s);
            if (plm_conll_parse(&d, "fuzz", buf, n, &s, mode & 0x10) != 0) abort();
            check_tagged(&d);
            plm_tagged_set_free(&d);
            plm_tagged_set_free(&s);
        }
    } else if (reader == 6) {
        plm_tagged_set s;
        if (plm_brown_parse(&s, "fuzz", buf, n, NULL) == 0) {
            check_tagged(&s);
            plm_tagged_set_free(&s);
        }
    } else {
        plm_squad_set sq = {0};
        if (plm_squad_parse(&sq, "fuzz", buf, n) == 0) {
            for (int i = 0; i < sq.n; i++) {
                const plm_squad_question *q = &sq.qs[i];
                if (q->context < 0 || q->context >= sq.n_contexts) abort();
                size_t cl = strlen(sq.contexts[q->context]);
                for (int k = 0; k < q->n_answers; k++) {
                    int b = q->answer_starts[k];
                    size_t tl = strlen(q->answer_texts[k]);
                    if (b >= 0 && ((size_t)b + tl > cl || memcmp(sq.contexts[q->context] + b, q->answer_texts[k], tl)))
                        abort();
                }
            }
        }
        plm_squad_free(&sq);
    }
    return 0;
}
