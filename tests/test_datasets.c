/* test_datasets.c - the fine-tuning readers on the real files in ../shared/data (or
 * $PLM_DATA; missing data is a failure): GLUE train/dev counts and first rows, CoNLL-2003
 * and Brown counts and tag sets, SQuAD v1.1 dev counts with every answer offset checked;
 * then the custom TSV/CSV/JSONL reader and one case per kind of bad input, each with the
 * exact one-line error it must give. */
#include "core/common.h"
#include "tasks/datasets.h"
#include "test.h"

#include <math.h>
#include <string.h>
#include <unistd.h>

static const char *data_dir(void) {
    const char *d = getenv("PLM_DATA");
    return d ? d : "../shared/data";
}

static char tmpdir[256];

/* Writes text (len bytes, or up to its NUL when len is -1) to a file in the temp dir and
 * returns its path (static buffer per slot). */
static const char *tmp_file(const char *name, const char *text, size_t len) {
    static char paths[8][512];
    static int slot;
    char *p = paths[slot++ % 8];
    snprintf(p, 512, "%s/%s", tmpdir, name);
    if (len == (size_t)-1) len = strlen(text);
    FILE *f = fopen(p, "wb");
    if (!f) return p;
    fwrite(text, 1, len, f);
    fclose(f);
    return p;
}

static void test_glue(void) {
    char dir[1024];
    struct {
        const char *task;
        int train, dev; /* -1: split not in shared/data */
    } want[] = {{"cola", 8551, 1043}, {"sst-2", 67349, 872}, {"mrpc", 3668, -1}, {"sts-b", 5749, 1500},
                {"rte", 2490, 277},   {"qnli", -1, 5463},    {"wnli", 635, 71}};
    for (size_t i = 0; i < PLM_ARRAY_LEN(want); i++) {
        const plm_glue_task *t = plm_glue_task_find(want[i].task);
        char name[64];
        snprintf(name, sizeof name, "glue_find_%s", want[i].task);
        TEST_CHECK(t != NULL, name, "no task");
        if (!t) continue;
        snprintf(dir, sizeof dir, "%s/glue/%s", data_dir(), t->dir);
        for (int split = 0; split < 2; split++) {
            int n = split == 0 ? want[i].train : want[i].dev;
            if (n < 0) continue;
            plm_dataset ds;
            int rc = plm_glue_read(&ds, t, dir, split == 0 ? PLM_SPLIT_TRAIN : PLM_SPLIT_DEV);
            snprintf(name, sizeof name, "glue_%s_%s_count", t->name, split == 0 ? "train" : "dev");
            TEST_CHECK(rc == 0 && ds.n == n, name, "rc %d n %d want %d (%s)", rc, ds.n, n, rc ? plm_last_error() : "");
            if (rc) continue;
            bool ok = true;
            for (int k = 0; k < ds.n && ok; k++) {
                const plm_example *e = &ds.examples[k];
                ok = e->text_a && *e->text_a && (t->text_b == NULL) == (e->text_b == NULL);
                if (t->type == PLM_TASK_CLASSIFICATION)
                    ok = ok && e->label >= 0 && e->label < ds.n_labels;
                else
                    ok = ok && e->label == -1 && e->target >= 0 && e->target <= 5;
            }
            snprintf(name, sizeof name, "glue_%s_%s_values", t->name, split == 0 ? "train" : "dev");
            TEST_CHECK(ok && ds.n_labels == t->n_labels, name, "texts / labels out of range");
            plm_dataset_free(&ds);
        }
    }
    /* First rows: the header-less CoLA, the BOM of MRPC, STS-B's float, RTE's label order. */
    plm_dataset ds;
    snprintf(dir, sizeof dir, "%s/glue/CoLA", data_dir());
    if (plm_glue_read(&ds, plm_glue_task_find("cola"), dir, PLM_SPLIT_DEV) == 0) {
        TEST_CHECK(strcmp(ds.examples[0].text_a, "The sailors rode the breeze clear of the rocks.") == 0 &&
                       ds.examples[0].label == 1 && ds.examples[0].line == 1 &&
                       strcmp(ds.examples[1042].text_a, "John talked to Bill about himself.") == 0,
                   "glue_cola_rows", "'%s' %d", ds.examples[0].text_a, ds.examples[0].label);
        plm_dataset_free(&ds);
    }
    snprintf(dir, sizeof dir, "%s/glue/MRPC", data_dir());
    if (plm_glue_read(&ds, plm_glue_task_find("mrpc"), dir, PLM_SPLIT_TRAIN) == 0) {
        TEST_CHECK(strncmp(ds.examples[0].text_a, "Amrozi accused his brother", 26) == 0 &&
                       strncmp(ds.examples[0].text_b, "Referring to him", 16) == 0 && ds.examples[0].label == 1,
                   "glue_mrpc_rows", "'%s' %d", ds.examples[0].text_a, ds.examples[0].label);
        plm_dataset_free(&ds);
    }
    snprintf(dir, sizeof dir, "%s/glue/STS-B", data_dir());
    if (plm_glue_read(&ds, plm_glue_task_find("stsb"), dir, PLM_SPLIT_DEV) == 0) {
        TEST_CHECK(ds.type == PLM_TASK_REGRESSION && ds.examples[0].target == 5.0f &&
                       strcmp(ds.examples[0].text_b, "A man wearing a hard hat is dancing.") == 0,
                   "glue_stsb_rows", "%g", ds.examples[0].target);
        plm_dataset_free(&ds);
    }
    snprintf(dir, sizeof dir, "%s/glue/RTE", data_dir());
    if (plm_glue_read(&ds, plm_glue_task_find("rte"), dir, PLM_SPLIT_DEV) == 0) {
        TEST_CHECK(ds.examples[0].label == 1 && strcmp(ds.labels[1], "not_entailment") == 0, "glue_rte_rows", "%d",
                   ds.examples[0].label);
        plm_dataset_free(&ds);
    }
}

static void test_glue_table(void) {
    int n;
    const plm_glue_task *all = plm_glue_tasks(&n);
    TEST_CHECK(n == 10, "glue_table_size", "%d tasks", n);
    (void)all;
    const plm_glue_task *m = plm_glue_task_find("MNLI"), *mm = plm_glue_task_find("mnli-mm");
    TEST_CHECK(m && mm && m->n_labels == 3 && strcmp(m->labels[0], "contradiction") == 0 &&
                   strcmp(m->labels[2], "neutral") == 0 && strcmp(m->files[1], "dev_matched.tsv") == 0 &&
                   strcmp(mm->files[1], "dev_mismatched.tsv") == 0 && strcmp(m->label, "gold_label") == 0,
               "glue_table_mnli", "labels / files");
    const plm_glue_task *q = plm_glue_task_find("qqp");
    TEST_CHECK(q && strcmp(q->metrics[0], "f1") == 0 && strcmp(q->metrics[1], "accuracy") == 0 &&
                   strcmp(q->test_id, "id") == 0 && strcmp(q->text_a, "question1") == 0,
               "glue_table_qqp", "metrics / columns");
    const plm_glue_task *c = plm_glue_task_find("cola"), *s = plm_glue_task_find("sts-b");
    TEST_CHECK(c && s && strcmp(c->metrics[0], "mcc") == 0 && !c->metrics[1] && s->type == PLM_TASK_REGRESSION &&
                   strcmp(s->metrics[0], "pearson") == 0 && strcmp(s->metrics[1], "spearman") == 0 &&
                   strcmp(plm_glue_task_find("qnli")->labels[0], "entailment") == 0 && !plm_glue_task_find("nope"),
               "glue_table_metrics", "metrics / labels");
    /* A test split: header with index, no label column; labels stay -1, ids kept. */
    const char *p = tmp_file("test.tsv", "index\tsentence\n0\tfine .\n1\tnot fine .\n", -1);
    plm_table_spec spec;
    plm_glue_spec(c, PLM_SPLIT_TEST, &spec);
    plm_dataset ds;
    int rc = plm_dataset_read(&ds, p, &spec, NULL);
    TEST_CHECK(rc == 0 && ds.n == 2 && ds.examples[1].label == -1 && strcmp(ds.examples[1].id, "1") == 0 &&
                   strcmp(ds.examples[1].text_a, "not fine .") == 0,
               "glue_test_split", "rc %d n %d (%s)", rc, ds.n, rc ? plm_last_error() : "");
    if (rc == 0) plm_dataset_free(&ds);
}

static void test_custom(void) {
    /* CSV: quotes, "" escapes, a newline inside quotes, CRLF; labels sorted numerically. */
    const char csv[] = "text,label,extra\r\n\"a, \"\"quoted\"\" one\",10,x\r\nplain,2,y\r\n\"two\nlines\",1,z\r\n";
    const char *p = tmp_file("train.csv", csv, sizeof csv - 1);
    plm_table_spec spec = {.format = plm_format_from_path(p), .text_a = "text", .label = "label"};
    plm_dataset tr, dev;
    int rc = plm_dataset_read(&tr, p, &spec, NULL);
    TEST_CHECK(rc == 0 && tr.n == 3 && strcmp(tr.examples[0].text_a, "a, \"quoted\" one") == 0 &&
                   strcmp(tr.examples[2].text_a, "two\nlines") == 0 && tr.examples[2].line == 4 && tr.n_labels == 3 &&
                   strcmp(tr.labels[0], "1") == 0 && strcmp(tr.labels[2], "10") == 0 && tr.examples[0].label == 2 &&
                   tr.examples[1].label == 1,
               "custom_csv", "rc %d n %d (%s)", rc, tr.n, rc ? plm_last_error() : "");
    /* Dev with the training labels: an unseen label is an error naming file and line. */
    const char dcsv[] = "text,label,extra\nok,2,x\nbad,3,y\n";
    const char *dp = tmp_file("dev.csv", dcsv, sizeof dcsv - 1);
    rc = plm_dataset_read(&dev, dp, &spec, &tr);
    char want[1024];
    snprintf(want, sizeof want, "%s:3: unknown label '3' (not among the training labels)", dp);
    TEST_CHECK(rc == -1 && strcmp(plm_last_error(), want) == 0, "custom_dev_unknown_label", "%s", plm_last_error());
    if (rc == 0) plm_dataset_free(&dev);
    if (tr.pool) plm_dataset_free(&tr);
    /* JSONL pair task, string labels sorted by bytes, numeric id. */
    const char jl[] =
        "{\"q\":\"a\",\"p\":\"b\",\"y\":\"yes\",\"id\":7}\n\n{\"q\":\"c\",\"p\":\"d\",\"y\":\"no\",\"id\":8}\n";
    p = tmp_file("t.jsonl", jl, sizeof jl - 1);
    plm_table_spec js = {.format = plm_format_from_path(p), .text_a = "q", .text_b = "p", .label = "y", .id = "id"};
    rc = plm_dataset_read(&tr, p, &js, NULL);
    TEST_CHECK(rc == 0 && tr.n == 2 && strcmp(tr.labels[0], "no") == 0 && tr.examples[0].label == 1 &&
                   strcmp(tr.examples[1].text_b, "d") == 0 && strcmp(tr.examples[1].id, "8") == 0 &&
                   tr.examples[1].line == 3,
               "custom_jsonl", "rc %d (%s)", rc, rc ? plm_last_error() : "");
    if (rc == 0) plm_dataset_free(&tr);
    /* TSV regression. */
    const char tsv[] = "s\tscore\nx\t0.5\ny\t4\n";
    p = tmp_file("r.tsv", tsv, sizeof tsv - 1);
    plm_table_spec rs = {.text_a = "s", .label = "score", .type = PLM_TASK_REGRESSION};
    rc = plm_dataset_read(&tr, p, &rs, NULL);
    TEST_CHECK(rc == 0 && tr.n == 2 && tr.examples[0].target == 0.5f && tr.examples[1].target == 4.0f &&
                   tr.n_labels == 0,
               "custom_tsv_regression", "rc %d (%s)", rc, rc ? plm_last_error() : "");
    if (rc == 0) plm_dataset_free(&tr);
}

/* One bad input: the reader must return -1 with exactly "file:want". */
static void bad_table(const char *name, const char *file, const char *text, size_t len, const plm_table_spec *spec,
                      const char *want) {
    const char *p = tmp_file(file, text, len);
    plm_dataset ds;
    int rc = plm_dataset_read(&ds, p, spec, NULL);
    char full[1024];
    snprintf(full, sizeof full, "%s:%s", p, want);
    TEST_CHECK(rc == -1 && strcmp(plm_last_error(), full) == 0, name, "rc %d, got '%s', want '%s'", rc,
               plm_last_error(), full);
    if (rc == 0) plm_dataset_free(&ds);
}

static void test_bad_inputs(void) {
    plm_table_spec pair = {.text_a = "a", .text_b = "b", .label = "label"};
    bad_table("bad_tsv_columns", "cols.tsv", "a\tb\tlabel\nx\ty\t1\nx\t1\n", -1, &pair, "3: 2 columns, expected 3");
    bad_table("bad_missing_column", "miss.tsv", "a\tc\tlabel\nx\ty\t1\n", -1, &pair,
              "1: no column named 'b' (not in the header)");
    plm_table_spec reg = {.text_a = "a", .label = "score", .type = PLM_TASK_REGRESSION};
    bad_table("bad_float", "float.tsv", "a\tscore\nx\t1.5\ny\t2.x\n", -1, &reg,
              "3: bad number '2.x' in column 'score'");
    bad_table("bad_float_nan", "nan.tsv", "a\tscore\nx\tnan\n", -1, &reg, "2: bad number 'nan' in column 'score'");
    bad_table("bad_utf8", "utf8.tsv", "a\tscore\nx\t1\n\xc3\x28\t2\n", -1, &reg, "3: invalid UTF-8 (byte 12)");
    bad_table("bad_empty", "empty.tsv", "", 0, &reg, "1: empty file");
    bad_table("bad_header_only", "hdr.tsv", "a\tscore\n", -1, &reg, "2: no examples");
    bad_table("bad_nul", "nul.tsv", "a\tscore\nx\x00y\t1\n", 14, &reg, "2: NUL byte");
    plm_table_spec csv = {.format = PLM_FORMAT_CSV, .text_a = "a", .label = "label"};
    bad_table("bad_csv_quote", "q.csv", "a,label\n\"open,1\n", -1, &csv, "2: unterminated quoted field");
    bad_table("bad_csv_after_quote", "q2.csv", "a,label\n\"x\"y,1\n", -1, &csv, "2: text after a closing quote");
    plm_table_spec jl = {.format = PLM_FORMAT_JSONL, .text_a = "a", .label = "label"};
    bad_table("bad_jsonl_truncated", "t.jsonl", "{\"a\":\"x\",\"label\":1}\n{\"a\":\"y\",\"lab", -1, &jl,
              "2: bad JSON");
    bad_table("bad_jsonl_field", "f.jsonl", "{\"a\":\"x\",\"label\":1}\n{\"a\":3,\"label\":1}\n", -1, &jl,
              "2: field 'a' is not a string");
    bad_table("bad_jsonl_missing", "m.jsonl", "{\"a\":\"x\"}\n", -1, &jl, "1: no field 'label'");
    plm_table_spec fixed = {.text_a = "a", .label = "label", .labels = (const char *const[]){"0", "1"}, .n_labels = 2};
    bad_table("bad_glue_label", "l.tsv", "a\tlabel\nx\t1\ny\t2\n", -1, &fixed,
              "3: unknown label '2' (not among the task's labels)");

    /* CoNLL, Brown, SQuAD. */
    char want[1024];
    plm_tagged_set ts;
    const char *p = tmp_file("bad.conll", "-DOCSTART- -X- O O\n\nEU NNP I-NP I-ORG\nrejects VBZ I-VP\n", -1);
    int rc = plm_conll_read(&ts, p, NULL, false);
    snprintf(want, sizeof want, "%s:4: fewer fields, expected 4 (word POS chunk NER)", p);
    TEST_CHECK(rc == -1 && strcmp(plm_last_error(), want) == 0, "bad_conll_columns", "%s", plm_last_error());
    p = tmp_file("bad.brown", "\tThe/at jury/nn\n\n\tsaid\n", -1);
    rc = plm_brown_read(&ts, &p, 1, NULL);
    snprintf(want, sizeof want, "%s:3: token 'said' is not word/tag", p);
    TEST_CHECK(rc == -1 && strcmp(plm_last_error(), want) == 0, "bad_brown_token", "%s", plm_last_error());
    plm_squad_set sq = {0};
    p = tmp_file("trunc.json", "{\"data\": [{\"title\": \"x\",\n \"paragraphs\": [{\"context\": \"abc", -1);
    rc = plm_squad_read(&sq, p);
    snprintf(want, sizeof want, "%s:2: bad JSON", p);
    TEST_CHECK(rc == -1 && strcmp(plm_last_error(), want) == 0, "bad_squad_truncated", "%s", plm_last_error());
    plm_squad_free(&sq);
    p = tmp_file("noid.json",
                 "{\"data\": [{\"paragraphs\": [{\"context\": \"abc\", \"qas\": [{\"question\": \"q\"}]}]}]}", -1);
    rc = plm_squad_read(&sq, p);
    snprintf(want, sizeof want, "%s: data[0].paragraphs[0].qas[0]: no \"id\" string", p);
    TEST_CHECK(rc == -1 && strcmp(plm_last_error(), want) == 0, "bad_squad_structure", "%s", plm_last_error());
    plm_squad_free(&sq);
}

static void test_conll(void) {
    char p[1024];
    plm_tagged_set tr, dev, te;
    snprintf(p, sizeof p, "%s/conll2003/eng.train", data_dir());
    int rc = plm_conll_read(&tr, p, NULL, true);
    TEST_CHECK(rc == 0 && tr.n == 14041 && tr.n_tokens == 203621, "conll_train_count",
               "rc %d %d sentences %ld tokens (%s)", rc, tr.n, tr.n_tokens, rc ? plm_last_error() : "");
    if (rc) return;
    /* IOB1 as in the original: B- only where two entities of a type touch. */
    TEST_CHECK(tr.n_tags == 8 && strcmp(tr.tags[0], "B-LOC") == 0 && strcmp(tr.tags[7], "O") == 0, "conll_tag_set",
               "%d tags", tr.n_tags);
    TEST_CHECK(strcmp(tr.sents[0].words[0], "EU") == 0 && strcmp(tr.tags[tr.sents[0].tags[0]], "I-ORG") == 0 &&
                   strcmp(tr.pos_tags[tr.sents[0].pos[0]], "NNP") == 0 && tr.sents[0].line == 3,
               "conll_first_token", "'%s'", tr.sents[0].words[0]);
    snprintf(p, sizeof p, "%s/conll2003/eng.testa", data_dir());
    rc = plm_conll_read(&dev, p, &tr, true);
    TEST_CHECK(rc == 0 && dev.n == 3250 && dev.n_tokens == 51362 && dev.n_tags == 8, "conll_dev_count",
               "rc %d %d sentences %ld tokens (%s)", rc, dev.n, dev.n_tokens, rc ? plm_last_error() : "");
    if (rc == 0) plm_tagged_set_free(&dev);
    snprintf(p, sizeof p, "%s/conll2003/eng.testb", data_dir());
    rc = plm_conll_read(&te, p, &tr, false);
    TEST_CHECK(rc == 0 && te.n == 3453 && te.n_tokens == 46435 && te.sents[0].pos == NULL, "conll_test_count",
               "rc %d %d sentences %ld tokens (%s)", rc, te.n, te.n_tokens, rc ? plm_last_error() : "");
    if (rc == 0) plm_tagged_set_free(&te);
    /* A tag the training set never had. */
    const char *bad = tmp_file("dev.conll", "EU NNP I-NP B-PER\n", -1);
    rc = plm_conll_read(&te, bad, &tr, false);
    char want[1024];
    snprintf(want, sizeof want, "%s:1: unknown tag 'B-PER' (not in the training set)", bad);
    TEST_CHECK(rc == -1 && strcmp(plm_last_error(), want) == 0, "conll_unknown_tag", "%s", plm_last_error());
    plm_tagged_set_free(&tr);
}

static void test_brown(void) {
    char p[1024];
    snprintf(p, sizeof p, "%s/brown", data_dir());
    plm_tagged_set s;
    int rc = plm_brown_read_dir(&s, p, NULL);
    TEST_CHECK(rc == 0 && s.n == 57340 && s.n_tokens == 1161192 && s.n_tags == 472, "brown_count",
               "rc %d %d sentences %ld tokens %d tags (%s)", rc, s.n, s.n_tokens, s.n_tags, rc ? plm_last_error() : "");
    if (rc) return;
    /* Words with a '/' of their own: split on the last one. */
    int found = 0;
    for (int i = 0; i < s.n && !found; i++)
        for (int k = 0; k < s.sents[i].n; k++)
            if (strcmp(s.sents[i].words[k], "1-1/2") == 0 && strcmp(s.tags[s.sents[i].tags[k]], "cd") == 0) found = 1;
    TEST_CHECK(found && strcmp(s.sents[0].words[0], "The") == 0 && strcmp(s.tags[s.sents[0].tags[0]], "at") == 0,
               "brown_slash_words", "1-1/2/cd not found");
    plm_tagged_set_free(&s);
}

static void test_squad(void) {
    char p[1024];
    plm_squad_set sq = {0};
    int rc = 0;
    for (int part = 1; part <= 2 && rc == 0; part++) {
        snprintf(p, sizeof p, "%s/squad-v1.1/dev-v1.1.part%d.json", data_dir(), part);
        rc = plm_squad_read(&sq, p);
    }
    TEST_CHECK(rc == 0 && sq.n == 10570 && sq.n_contexts == 2067 && sq.n_answers == 34726, "squad_dev_count",
               "rc %d %d questions %d contexts %ld answers (%s)", rc, sq.n, sq.n_contexts, sq.n_answers,
               rc ? plm_last_error() : "");
    /* Every answer: the byte offset from the code-point answer_start finds the text. */
    long checked = 0, bad = sq.n_mismatch, nonascii = 0;
    for (int i = 0; i < sq.n; i++) {
        const plm_squad_question *q = &sq.qs[i];
        const char *c = sq.contexts[q->context];
        for (int k = 0; k < q->n_answers; k++) {
            int b = q->answer_starts[k];
            if (b < 0) continue;
            checked++;
            if (strncmp(c + b, q->answer_texts[k], strlen(q->answer_texts[k])) != 0) bad++;
            for (int j = 0; j < b; j++)
                if ((unsigned char)c[j] >= 0x80) {
                    nonascii++;
                    break;
                }
        }
    }
    printf("# squad dev: %d questions, %ld answers, %ld mismatches, %ld answers after non-ASCII text\n", sq.n,
           sq.n_answers, sq.n_mismatch, nonascii);
    TEST_CHECK(rc == 0 && bad == 0 && checked == 34726 && nonascii > 0, "squad_dev_offsets",
               "%ld mismatches, %ld checked", bad, checked);
    TEST_CHECK(rc == 0 && strcmp(sq.qs[0].id, "56be4db0acb8001400a502ec") == 0 &&
                   strcmp(sq.qs[0].answer_texts[0], "Denver Broncos") == 0,
               "squad_first_question", "'%s'", sq.n ? sq.qs[0].id : "");
    plm_squad_free(&sq);
    snprintf(p, sizeof p, "%s/squad-v1.1/train-v1.1.du2017-test-subset.json", data_dir());
    rc = plm_squad_read(&sq, p);
    TEST_CHECK(rc == 0 && sq.n == 11877 && sq.n_mismatch == 0, "squad_train_subset", "rc %d n %d mismatches %ld", rc,
               sq.n, sq.n_mismatch);
    /* A wrong offset is counted, not fatal. */
    plm_squad_free(&sq);
    const char j[] =
        "{\"data\":[{\"paragraphs\":[{\"context\":\"\xc3\xa9t\xc3\xa9 x\",\"qas\":[{\"id\":\"a\",\"question\":"
        "\"q\",\"answers\":[{\"text\":\"x\",\"answer_start\":4},{\"text\":\"x\",\"answer_start\":3}]}]}]}]}";
    rc = plm_squad_parse(&sq, "mem.json", j, sizeof j - 1);
    TEST_CHECK(rc == 0 && sq.n == 1 && sq.qs[0].answer_starts[0] == 6 && sq.qs[0].answer_starts[1] == -1 &&
                   sq.n_mismatch == 1,
               "squad_char_offsets", "rc %d starts %d %d", rc, sq.n ? sq.qs[0].answer_starts[0] : 0,
               sq.n ? sq.qs[0].answer_starts[1] : 0);
    plm_squad_free(&sq);
}

int main(void) {
    char probe[1024];
    snprintf(probe, sizeof probe, "%s/glue/SST-2/dev.tsv", data_dir());
    if (access(probe, R_OK) != 0) {
        printf("FAIL datasets_data: %s missing (tests read ../shared/data or $PLM_DATA)\n", probe);
        return 1;
    }
    snprintf(tmpdir, sizeof tmpdir, "/tmp/plm_test_datasets_XXXXXX");
    if (!mkdtemp(tmpdir)) {
        printf("FAIL datasets_tmpdir: cannot create %s\n", tmpdir);
        return 1;
    }
    test_glue_table();
    test_glue();
    test_custom();
    test_bad_inputs();
    test_conll();
    test_brown();
    test_squad();
    char cmd[300];
    snprintf(cmd, sizeof cmd, "rm -rf %s", tmpdir);
    if (system(cmd) != 0) printf("# could not remove %s\n", tmpdir);
    TEST_EXIT();
}
