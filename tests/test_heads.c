/* test_heads.c - heads on the hidden-state seam, end to end in C:
 *   - a pretraining checkpoint loads into a classification and a QA model: base weights
 *     come from the file, the report names the new and the unused tensors (HF's two
 *     warnings), and both models learn a synthetic task far beyond chance;
 *   - names of real HF checkpoints load: LayerNorm.gamma/beta, a bare BertModel;
 *   - the fused Q/K/V is saved as HF's query/key/value at every width (hidden 36: the
 *     biases were read from padded offsets before);
 *   - plm's variants get model types of their own; standard models keep HF's;
 *   - the library checks ids, type ids and labels at its boundary. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "core/rng.h"
#include "model/model_io.h"
#include "test.h"
#include "train/adamw.h"
#include "train/safetensors.h"

static plm_config tiny_bert(int hidden) {
    plm_config c;
    plm_config_default(&c, PLM_ARCH_BERT);
    c.vocab_size = 50;
    c.hidden_size = hidden;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 3;
    c.intermediate_size = 64;
    c.max_position_embeddings = 32;
    c.pad_token_id = 0;
    c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.0f;
    return c;
}

static bool contains(const char *list, const char *name) {
    size_t n = strlen(name);
    for (const char *p = list; (p = strstr(p, name)); p += n)
        if ((p == list || p[-1] == ' ') && (p[n] == ',' || p[n] == 0)) return true;
    return false;
}

/* A synthetic task: sequences of random tokens; class 1 iff token 7 occurs; the answer
 * span is where the pair (9, 10) was placed. */
typedef struct {
    int B, T;
    int32_t *ids, *cls, *start, *end;
    uint8_t *mask;
} task_batch;

static void make_batch(task_batch *tb, plm_rng *r) {
    for (int b = 0; b < tb->B; b++) {
        int32_t *row = tb->ids + (size_t)b * tb->T;
        for (int t = 0; t < tb->T; t++) {
            row[t] = 11 + (int32_t)plm_rng_below(r, 39);
            tb->mask[(size_t)b * tb->T + t] = 1;
        }
        tb->cls[b] = (int32_t)plm_rng_below(r, 2);
        if (tb->cls[b]) row[1 + plm_rng_below(r, (uint32_t)tb->T - 1)] = 7;
        int s = 1 + (int)plm_rng_below(r, (uint32_t)tb->T - 2);
        if (row[s] == 7 || row[s + 1] == 7) s = s + 2 < tb->T ? s : 1; /* keep it simple: may overwrite */
        row[s] = 9;
        row[s + 1] = 10;
        bool has7 = false;
        for (int t = 0; t < tb->T; t++) has7 |= row[t] == 7;
        tb->cls[b] = has7;
        tb->start[b] = s;
        tb->end[b] = s + 1;
        row[0] = 1; /* [CLS]-like */
    }
}

/* Trains a model's single head on the task; returns held-out accuracy. */
static double train_task(plm_model *m, plm_head_kind kind, int steps, double *first_loss, double *last_loss) {
    int B = 16, T = 12;
    plm_model_reserve(m, B, T);
    task_batch tb = {
        B, T, plm_malloc(B * T * 4), plm_malloc(B * 4), plm_malloc(B * 4), plm_malloc(B * 4), plm_malloc(B * T)};
    plm_rng r;
    plm_rng_seed(&r, 7, 1);
    plm_adamw opt;
    plm_adamw_init(&opt, m->num_params);
    plm_adamw_hparams h = {.learning_rate = 2e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.0f};
    for (int s = 0; s < steps; s++) {
        make_batch(&tb, &r);
        plm_batch b = {.B = B,
                       .T = T,
                       .input_ids = tb.ids,
                       .attention_mask = tb.mask,
                       .seq_labels = tb.cls,
                       .start_positions = tb.start,
                       .end_positions = tb.end,
                       .training = true,
                       .dropout_seed = (uint64_t)s};
        plm_model_zero_grad(m);
        if (plm_model_run(m, 0, &b, true, 1.0f) != 0) {
            printf("FAIL heads.train.%s: %s\n", head_kind_name(kind), plm_last_error());
            test_failures++;
            break;
        }
        if (s == 0) *first_loss = m->loss;
        *last_loss = m->loss;
        plm_adamw_step(&opt, m, &h, 2e-3f);
    }
    /* held-out accuracy: class, or exact start position */
    plm_rng_seed(&r, 99, 2);
    int correct = 0, total = 0;
    for (int e = 0; e < 8; e++) {
        make_batch(&tb, &r);
        plm_batch b = {.B = B,
                       .T = T,
                       .input_ids = tb.ids,
                       .attention_mask = tb.mask,
                       .seq_labels = tb.cls,
                       .start_positions = tb.start,
                       .end_positions = tb.end};
        plm_model_run(m, 0, &b, false, 1.0f);
        const plm_head *hd = &m->heads[0];
        correct += hd->result.correct;
        total += hd->result.count;
    }
    plm_adamw_free(&opt);
    free(tb.ids), free(tb.cls), free(tb.start), free(tb.end), free(tb.mask);
    return total ? (double)correct / total : 0.0;
}

static void test_load_into_heads(const char *dir) {
    plm_config c = tiny_bert(48);
    plm_model *pre = plm_model_create(&c, 3);
    char sub[600];
    snprintf(sub, sizeof sub, "%s/pretrained", dir);
    TEST_CHECK(plm_model_save(pre, sub, NULL, 0) == 0, "heads.save_pretraining", "%s", plm_last_error());

    plm_head_spec cls = {PLM_HEAD_SEQ_CLS, 0, 2, 1.0f, PLM_SEQ_POOL_DEFAULT};
    plm_load_report rep = {0};
    plm_model *m = plm_model_load_with_heads(sub, &cls, 1, 11, true, &rep);
    TEST_CHECK(m != NULL, "heads.load_into_classifier", "%s", plm_last_error());
    if (!m) return;
    TEST_CHECK(contains(rep.newly_initialized, "classifier.weight") &&
                   contains(rep.newly_initialized, "classifier.bias") &&
                   contains(rep.newly_initialized, "bert.pooler.dense.weight"),
               "heads.report_newly_initialized", "got [%s]", rep.newly_initialized);
    TEST_CHECK(contains(rep.unused, "cls.predictions.bias") &&
                   contains(rep.unused, "cls.predictions.transform.dense.weight") &&
                   !contains(rep.unused, "bert.embeddings.word_embeddings.weight"),
               "heads.report_unused", "got [%s]", rep.unused);
    const plm_tensor *a = plm_model_find(pre, "bert.encoder.layer.1.output.dense.weight");
    const plm_tensor *b = plm_model_find(m, "bert.encoder.layer.1.output.dense.weight");
    TEST_CHECK(a && b && !memcmp(pre->params + a->offset, m->params + b->offset, a->numel * sizeof(float)),
               "heads.base_weights_loaded", "backbone tensor differs after loading");
    /* the loader draws no values for the backbone it loads, but steps over their draws: a
     * new head starts as it would in a model created whole from the same seed */
    plm_model_spec fs;
    plm_model_spec_default(&fs, &c);
    fs.heads[0] = cls;
    fs.num_heads = 1;
    fs.backbone[0].num_labels = 2;
    plm_model *whole = plm_model_create_spec(&fs, 11);
    const char *fresh_names[] = {"classifier.weight", "bert.pooler.dense.weight"};
    for (int i = 0; i < 2; i++) {
        const plm_tensor *x = whole ? plm_model_find(whole, fresh_names[i]) : NULL,
                         *y = plm_model_find(m, fresh_names[i]);
        TEST_CHECK(x && y && x->numel == y->numel &&
                       !memcmp(whole->params + x->offset, m->params + y->offset, x->numel * sizeof(float)),
                   "heads.fresh_head_as_whole_model", "%s differs from a whole model's of seed 11", fresh_names[i]);
    }
    plm_model_free(whole);
    TEST_CHECK(strcmp(plm_model_architecture(m), "BertForSequenceClassification") == 0, "heads.architecture_cls", "%s",
               plm_model_architecture(m));
    plm_load_report_free(&rep);
    double l0 = 0, l1 = 0;
    double acc = train_task(m, PLM_HEAD_SEQ_CLS, 150, &l0, &l1);
    TEST_CHECK(acc > 0.9 && l1 < 0.5 * l0, "heads.classifier_learns", "accuracy %.3f (chance 0.5), loss %.3f -> %.3f",
               acc, l0, l1);
    printf("# sequence classification: held-out accuracy %.3f, loss %.3f -> %.3f\n", acc, l0, l1);
    /* a fine-tuned model saves and reloads as itself */
    snprintf(sub, sizeof sub, "%s/classifier", dir);
    plm_model_save(m, sub, NULL, 0);
    plm_model *back = plm_model_load(sub);
    TEST_CHECK(back && back->num_heads == 1 && back->heads[0].spec.kind == PLM_HEAD_SEQ_CLS &&
                   !memcmp(back->params, m->params, m->num_params * sizeof(float)),
               "heads.classifier_roundtrip", "%s", back ? "weights or heads differ" : plm_last_error());
    plm_model_free(back);
    plm_model_free(m);

    plm_head_spec qa = {PLM_HEAD_QA, 0, 2, 1.0f, PLM_SEQ_POOL_DEFAULT};
    snprintf(sub, sizeof sub, "%s/pretrained", dir);
    m = plm_model_load_with_heads(sub, &qa, 1, 12, true, &rep);
    TEST_CHECK(m && contains(rep.newly_initialized, "qa_outputs.weight") &&
                   contains(rep.newly_initialized, "qa_outputs.bias") &&
                   !contains(rep.newly_initialized, "bert.pooler.dense.weight"),
               "heads.load_into_qa", "%s", m ? rep.newly_initialized : plm_last_error());
    plm_load_report_free(&rep);
    if (m) {
        acc = train_task(m, PLM_HEAD_QA, 150, &l0, &l1);
        TEST_CHECK(acc > 0.8 && l1 < 0.5 * l0, "heads.qa_learns",
                   "exact start+end %.3f (chance %.3f), loss %.3f -> %.3f", acc, 1.0 / 12, l0, l1);
        printf("# QA spans: held-out exact match %.3f, loss %.3f -> %.3f\n", acc, l0, l1);
        plm_model_free(m);
    }
    plm_model_free(pre);
}

/* Rewrites a checkpoint as a bare BertModel with LayerNorm.gamma/beta names, as old HF
 * (TF-converted) files carry them, and loads it back. */
static void test_hf_names(const char *dir) {
    plm_config c = tiny_bert(36);
    plm_model *m = plm_model_create(&c, 5);
    char sub[600], path[700], path2[700];
    snprintf(sub, sizeof sub, "%s/names", dir);
    plm_model_save(m, sub, NULL, 0);
    snprintf(path, sizeof path, "%s/model.safetensors", sub);
    plm_safetensors st;
    if (plm_st_load(&st, path) != 0) {
        TEST_CHECK(0, "heads.hf_names.read", "%s", plm_last_error());
        return;
    }
    /* the fused Q/K/V is HF's three tensors: key.bias is rows C..2C of the block */
    const plm_st_tensor *kb = plm_st_find(&st, "bert.encoder.layer.0.attention.self.key.bias");
    const plm_st_tensor *vw = plm_st_find(&st, "bert.encoder.layer.1.attention.self.value.weight");
    TEST_CHECK(kb && !memcmp(kb->data, m->bb[0].w.layers[0].qkv_b + 36, 36 * sizeof(float)) && vw &&
                   !memcmp(vw->data, m->bb[0].w.layers[1].qkv_w + 2 * 36 * 36, 36 * 36 * sizeof(float)),
               "heads.qkv_saved_as_hf_tensors_width36", "saved key/value differ from the computed block");
    plm_st_writer w;
    plm_st_writer_init(&w);
    char names[256][128];
    int n = 0;
    for (int i = 0; i < st.num_tensors && n < 256; i++) {
        const plm_st_tensor *t = &st.tensors[i];
        if (strncmp(t->name, "cls.", 4) == 0) continue; /* a bare BertModel */
        const char *nm = strncmp(t->name, "bert.", 5) == 0 ? t->name + 5 : t->name;
        snprintf(names[n], sizeof names[n], "%s", nm);
        char *ln = strstr(names[n], "LayerNorm.");
        if (ln && strcmp(ln + 10, "weight") == 0) strcpy(ln + 10, "gamma");
        if (ln && strcmp(ln + 10, "bias") == 0) strcpy(ln + 10, "beta");
        plm_st_add(&w, names[n], t->dtype, t->ndim, t->shape, t->data);
        n++;
    }
    snprintf(path2, sizeof path2, "%s/bare.safetensors", dir);
    plm_st_write(&w, path2);
    plm_st_writer_free(&w);
    plm_st_free(&st);
    plm_model *m2 = plm_model_create(&c, 77);
    plm_load_report rep = {0};
    int rc = plm_model_load_weights_ex(m2, path2, false, &rep);
    const plm_tensor *t = plm_model_find(m, "bert.encoder.layer.1.output.LayerNorm.weight");
    TEST_CHECK(rc == 0 && !memcmp(m->params + t->offset, m2->params + t->offset, t->numel * sizeof(float)) &&
                   !memcmp(m->bb[0].w.layers[0].qkv_b, m2->bb[0].w.layers[0].qkv_b, 3 * 36 * sizeof(float)),
               "heads.hf_names_gamma_beta_bare_bertmodel", "%s", rc ? plm_last_error() : "weights differ");
    TEST_CHECK(rc == 0 && contains(rep.newly_initialized, "cls.predictions.bias") && *rep.unused == 0,
               "heads.hf_names_report", "new [%s] unused [%s]", rep.newly_initialized, rep.unused);
    plm_load_report_free(&rep);
    /* a strict load (resume) refuses a file without the head */
    TEST_CHECK(plm_model_load_weights(m2, path2) != 0 && strstr(plm_last_error(), "cls.predictions"),
               "heads.strict_load_needs_head", "%s", plm_last_error());
    plm_model_free(m);
    plm_model_free(m2);
}

static const char *model_type_of(const char *dir) {
    static char buf[64];
    char path[700];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t len;
    char *s = plm_read_file(path, &len);
    buf[0] = 0;
    const char *p = s ? strstr(s, "\"model_type\":") : NULL;
    if (p) sscanf(p, "\"model_type\": \"%63[^\"]", buf);
    const char *a = s ? strstr(s, "\"architectures\":") : NULL;
    if (a) {
        size_t k = strlen(buf);
        sscanf(a, "\"architectures\": [\"%40[^\"]", buf + k + 1);
        buf[k] = '/';
    }
    free(s);
    return buf;
}

static void test_variants(const char *dir) {
    struct {
        const char *name, *want;
        plm_arch arch;
        bool pre_ln, causal;
        int types;
    } cases[] = {
        {"bert", "bert/BertForMaskedLM", PLM_ARCH_BERT, false, false, 2},
        {"bert_preln", "plm_bert/PlmBertForMaskedLM", PLM_ARCH_BERT, true, false, 2},
        {"gpt2", "gpt2/GPT2LMHeadModel", PLM_ARCH_GPT2, true, true, 0},
        {"gpt2_bidir", "plm_gpt2/PlmGPT2LMHeadModel", PLM_ARCH_GPT2, true, false, 0},
        {"gpt2_types", "plm_gpt2/PlmGPT2LMHeadModel", PLM_ARCH_GPT2, true, true, 2},
    };
    for (size_t i = 0; i < PLM_ARRAY_LEN(cases); i++) {
        plm_config c = tiny_bert(48);
        if (cases[i].arch == PLM_ARCH_GPT2) {
            plm_config_default(&c, PLM_ARCH_GPT2);
            c.vocab_size = 50, c.hidden_size = 48, c.num_hidden_layers = 1, c.num_attention_heads = 3;
            c.max_position_embeddings = 16, c.intermediate_size = 64;
        }
        c.pre_layernorm = cases[i].pre_ln;
        c.is_decoder = cases[i].causal;
        c.type_vocab_size = cases[i].types;
        plm_model *m = plm_model_create(&c, 1);
        char sub[600];
        snprintf(sub, sizeof sub, "%s/variant_%s", dir, cases[i].name);
        plm_model_save(m, sub, NULL, 0);
        const char *got = model_type_of(sub);
        TEST_CHECK(strcmp(got, cases[i].want) == 0, "heads.variant_name", "%s: wrote %s, want %s", cases[i].name, got,
                   cases[i].want);
        plm_model *back = plm_model_load(sub);
        TEST_CHECK(back && back->config.pre_layernorm == c.pre_layernorm && back->config.is_decoder == c.is_decoder &&
                       !memcmp(back->params, m->params, m->num_params * sizeof(float)),
                   "heads.variant_roundtrip", "%s: %s", cases[i].name, back ? "differs" : plm_last_error());
        plm_model_free(back);
        plm_model_free(m);
    }
}

static void test_boundary_checks(void) {
    plm_config c = tiny_bert(48);
    plm_model_spec s;
    plm_model_spec_default(&s, &c);
    plm_model_spec_add_head(&s, PLM_HEAD_NSP, 2);
    plm_model *m = plm_model_create_spec(&s, 1);
    plm_model_reserve(m, 2, 4);
    int32_t ids[8] = {1, 5, 6, 2, 1, 7, 8, 2}, types[8] = {0}, labels[8], seq[2] = {0, 1};
    for (int i = 0; i < 8; i++) labels[i] = -100;
    labels[1] = 5;
    plm_batch b = {.B = 2, .T = 4, .input_ids = ids, .token_type_ids = types, .labels = labels, .seq_labels = seq};
    TEST_CHECK(plm_model_run(m, 0, &b, true, 1.0f) == 0, "heads.mlm_plus_nsp_runs", "%s", plm_last_error());
    TEST_CHECK(strcmp(plm_model_architecture(m), "BertForPreTraining") == 0, "heads.architecture_pretraining", "%s",
               plm_model_architecture(m));
    ids[3] = 50;
    TEST_CHECK(plm_model_run(m, 0, &b, false, 1.0f) != 0 && strstr(plm_last_error(), "outside the vocabulary"),
               "heads.input_id_checked", "%s", plm_last_error());
    ids[3] = 2;
    types[2] = 2;
    TEST_CHECK(plm_model_run(m, 0, &b, false, 1.0f) != 0 && strstr(plm_last_error(), "type_vocab_size"),
               "heads.type_id_checked", "%s", plm_last_error());
    types[2] = 0;
    labels[2] = 50;
    TEST_CHECK(plm_model_run(m, 0, &b, false, 1.0f) != 0 && strstr(plm_last_error(), "label 50"),
               "heads.token_label_checked", "%s", plm_last_error());
    labels[2] = -100;
    seq[1] = 2;
    TEST_CHECK(plm_model_run(m, 0, &b, false, 1.0f) != 0 && strstr(plm_last_error(), "label 2 of sequence 1"),
               "heads.sequence_label_checked", "%s", plm_last_error());
    seq[1] = 1;
    b.seq_labels = NULL;
    TEST_CHECK(plm_model_run(m, 0, &b, false, 1.0f) != 0 && strstr(plm_last_error(), "needs seq_labels"),
               "heads.missing_labels_checked", "%s", plm_last_error());
    plm_model_free(m);
}

int main(void) {
    char dir[] = "/tmp/plm_heads_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    test_load_into_heads(dir);
    test_hf_names(dir);
    test_variants(dir);
    test_boundary_checks();
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    TEST_EXIT();
}
