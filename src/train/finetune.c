/* finetune.c - see finetune.h */
#include "finetune.h"

#include <cjson/cJSON.h>
#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "checkpoint.h"
#include "core/common.h"
#include "core/digest.h"
#include "core/progress.h"
#include "core/rng.h"
#include "dist.h"
#include "model/model_io.h"
#include "safetensors.h"
#include "tasks/metrics.h"
#include "trainer.h"

void plm_ft_args_default(plm_ft_args *a) {
    memset(a, 0, sizeof *a);
    a->output_dir = "out";
    a->train_batch_size = 32;
    a->eval_batch_size = 64;
    a->max_seq_length = 128;
    a->num_train_epochs = 3.0f;
    /* BERT-base is fine-tuned with 2e-5..5e-5; the small models plm trains on a CPU
     * (a few layers, hidden 128..256) move too little at those rates in 3 epochs, as
     * Turc et al.'s small BERTs show (their best rates are 1e-4..3e-4). 1e-4 suits them;
     * pass --learning-rate 2e-5 for a BERT-base-sized checkpoint. */
    a->opt = plm_adamw_defaults(1e-4f);
    a->warmup_ratio = 0.1f;
    a->max_grad_norm = 1.0f;
    a->layerwise_lr_decay = 1.0f;
    a->logging_steps = 10;
    a->eval_steps = 0;
    a->save_total_limit = 1;
    a->seed = 42;
}

void plm_ft_collate_opts(plm_collate_opts *o, const plm_tokenizer *tok, int max_len) {
    plm_collate_opts_default(o);
    o->max_length = max_len;
    if (plm_tokenizer_special(tok, PLM_SPECIAL_PAD) < 0) o->pad_id = plm_tokenizer_special(tok, PLM_SPECIAL_EOS);
}

void plm_ft_epoch_order(int *order, int n, uint64_t seed, long epoch) {
    plm_rng r;
    plm_rng_seed(&r, seed, 0x5eed0000ULL + (uint64_t)epoch);
    for (int i = 0; i < n; i++) order[i] = i;
    for (int i = n - 1; i > 0; i--) {
        int j = (int)plm_rng_below(&r, (uint32_t)i + 1);
        int t = order[i];
        order[i] = order[j];
        order[j] = t;
    }
}

/* ---------------------------------------------------------------- batches */

typedef struct {
    plm_encoded_batch eb;
    const char **a, **b;
    int32_t *labels;
    float *targets;
    int cap;
} ft_batch;

static void ft_batch_init(ft_batch *fb, int cap) {
    memset(fb, 0, sizeof *fb);
    plm_encoded_batch_init(&fb->eb);
    fb->cap = cap;
    fb->a = plm_calloc((size_t)cap, sizeof *fb->a);
    fb->b = plm_calloc((size_t)cap, sizeof *fb->b);
    fb->labels = plm_calloc((size_t)cap, sizeof *fb->labels);
    fb->targets = plm_calloc((size_t)cap, sizeof *fb->targets);
}

static void ft_batch_free(ft_batch *fb) {
    plm_encoded_batch_free(&fb->eb);
    free(fb->a);
    free(fb->b);
    free(fb->labels);
    free(fb->targets);
}

/* Encodes the examples idx[0..n) of ds into a model batch. */
static int ft_batch_fill(ft_batch *fb, const plm_model *m, const plm_tokenizer *tok, const plm_dataset *ds,
                         const int *idx, int n, const plm_collate_opts *co, bool training, uint64_t dseed,
                         plm_batch *out) {
    bool pairs = false;
    for (int i = 0; i < n; i++) {
        const plm_example *e = &ds->examples[idx[i]];
        fb->a[i] = e->text_a;
        fb->b[i] = e->text_b;
        pairs |= e->text_b != NULL;
        fb->labels[i] = e->label >= 0 ? e->label : PLM_IGNORE_INDEX;
        fb->targets[i] = e->target;
    }
    if (plm_collate_pairs(tok, fb->a, NULL, pairs ? fb->b : NULL, NULL, n, co, &fb->eb) != 0) {
        char msg[1024];
        snprintf(msg, sizeof msg, "%s", plm_last_error());
        plm_error("example on line %d and the %d after it: %s", ds->examples[idx[0]].line, n - 1, msg);
        return -1;
    }
    *out = (plm_batch){.B = fb->eb.B,
                       .T = fb->eb.T,
                       .input_ids = fb->eb.input_ids,
                       /* a model without a segment table (GPT-2) takes no type ids */
                       .token_type_ids = m->config.type_vocab_size > 0 ? fb->eb.token_type_ids : NULL,
                       .attention_mask = fb->eb.attention_mask,
                       .seq_labels = fb->labels,
                       .seq_targets = fb->targets,
                       .causal = m->config.is_decoder,
                       .training = training,
                       .dropout_seed = dseed};
    return 0;
}

/* ---------------------------------------------------------------- prediction and scores */

static int seq_head(const plm_model *m) {
    int h = plm_model_head(m, PLM_HEAD_SEQ_CLS);
    if (h < 0) plm_error("the model has no sequence-classification head");
    return h;
}

int plm_ft_predict(plm_model *m, const plm_tokenizer *tok, const plm_dataset *ds, const plm_collate_opts *co, int B,
                   int *pred_label, float *pred_value, double *loss) {
    int h = seq_head(m);
    if (h < 0) return -1;
    int K = m->heads[h].K;
    int T = co->max_length > 0 ? PLM_MIN(co->max_length, m->config.max_position_embeddings)
                               : m->config.max_position_embeddings;
    if (plm_model_reserve(m, B, T) != 0) return -1; /* grow-only: a no-op inside plm_finetune */
    ft_batch fb;
    ft_batch_init(&fb, B);
    int *idx = plm_malloc((size_t)B * sizeof *idx);
    double loss_sum = 0.0;
    long counted = 0;
    int rc = 0;
    for (int start = 0; start < ds->n && rc == 0; start += B) {
        int n = PLM_MIN(B, ds->n - start);
        for (int i = 0; i < n; i++) idx[i] = start + i;
        plm_batch b;
        if (ft_batch_fill(&fb, m, tok, ds, idx, n, co, false, 0, &b) != 0 ||
            plm_model_run(m, 0, &b, false, 1.0f) != 0) {
            rc = -1;
            break;
        }
        const plm_head *hd = &m->heads[h];
        for (int r = 0; r < n; r++) {
            const float *z = hd->logits + (size_t)r * K;
            if (pred_value) pred_value[start + r] = z[0];
            if (pred_label) {
                int best = 0;
                for (int k = 1; k < K; k++)
                    if (z[k] > z[best]) best = k;
                pred_label[start + r] = best;
            }
        }
        /* unlabelled rows count nothing in classification; an unlabelled regression set's
         * loss means nothing, and its callers do not ask for it */
        loss_sum += hd->result.loss_sum;
        counted += hd->result.count;
    }
    if (loss) *loss = counted ? loss_sum / (double)counted : NAN;
    free(idx);
    ft_batch_free(&fb);
    return rc;
}

static double metric_value(const char *name, const plm_dataset *ds, const int *pl, const float *pv) {
    size_t n = (size_t)ds->n;
    if (!strcmp(name, "pearson") || !strcmp(name, "spearman")) {
        double *x = plm_malloc(n * sizeof *x), *y = plm_malloc(n * sizeof *y);
        for (size_t i = 0; i < n; i++) {
            x[i] = pv[i];
            y[i] = ds->examples[i].target;
        }
        double v = !strcmp(name, "pearson") ? plm_pearson(x, y, n) : plm_spearman(x, y, n);
        free(x);
        free(y);
        return v;
    }
    int *gold = plm_malloc(n * sizeof *gold);
    for (size_t i = 0; i < n; i++) gold[i] = ds->examples[i].label;
    double v = !strcmp(name, "f1")    ? plm_f1_binary(gold, pl, n)
               : !strcmp(name, "mcc") ? plm_matthews_corrcoef(gold, pl, n)
                                      : plm_accuracy(gold, pl, n);
    free(gold);
    return v;
}

int plm_ft_evaluate(plm_model *m, const plm_tokenizer *tok, const plm_dataset *ds, const plm_ft_task *t,
                    const plm_collate_opts *co, int B, plm_ft_scores *out) {
    int *pl = plm_malloc((size_t)ds->n * sizeof *pl);
    float *pv = plm_malloc((size_t)ds->n * sizeof *pv);
    memset(out, 0, sizeof *out);
    int rc = plm_ft_predict(m, tok, ds, co, B, pl, pv, &out->loss);
    if (rc == 0) {
        out->n = ds->n;
        for (int k = 0; k < 2; k++) out->value[k] = t->metrics[k] ? metric_value(t->metrics[k], ds, pl, pv) : NAN;
        out->value[2] = NAN;
    }
    free(pl);
    free(pv);
    return rc;
}

/* ---------------------------------------------------------------- the model directory */

void plm_ft_set_pad_id(plm_model *m, const plm_tokenizer *tok) {
    if (m->config.pad_token_id >= 0) return;
    int32_t pad = plm_tokenizer_special(tok, PLM_SPECIAL_PAD);
    if (pad < 0) pad = plm_tokenizer_special(tok, PLM_SPECIAL_EOS);
    m->config.pad_token_id = pad;
    for (int k = 0; k < m->num_backbones; k++) m->bb[k].config.pad_token_id = pad;
}

int plm_ft_patch_config(const char *dir, const plm_ft_config_task *c) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t len;
    char *text = plm_read_file(path, &len);
    if (!text) return -1;
    cJSON *o = cJSON_Parse(text);
    free(text);
    if (!o) {
        plm_error("%s: invalid JSON", path);
        return -1;
    }
    if (c->labels) {
        cJSON *i2l = cJSON_CreateObject(), *l2i = cJSON_CreateObject();
        for (int i = 0; i < c->n_labels; i++) {
            char k[16];
            snprintf(k, sizeof k, "%d", i);
            cJSON_AddStringToObject(i2l, k, c->labels[i]);
            cJSON_AddNumberToObject(l2i, c->labels[i], i);
        }
        cJSON_ReplaceItemInObjectCaseSensitive(o, "id2label", i2l);
        cJSON_ReplaceItemInObjectCaseSensitive(o, "label2id", l2i);
    }
    cJSON_DeleteItemFromObjectCaseSensitive(o, "finetuning_task");
    if (c->problem_type) cJSON_DeleteItemFromObjectCaseSensitive(o, "problem_type");
    cJSON_DeleteItemFromObjectCaseSensitive(o, "plm_task");
    cJSON_AddStringToObject(o, "finetuning_task", c->name);
    if (c->problem_type) cJSON_AddStringToObject(o, "problem_type", c->problem_type);
    cJSON *pt = cJSON_AddObjectToObject(o, "plm_task");
    cJSON_AddStringToObject(pt, "name", c->name);
    cJSON_AddStringToObject(pt, "type", c->type);
    if (c->kind) cJSON_AddStringToObject(pt, "kind", c->kind);
    cJSON *ms = cJSON_AddArrayToObject(pt, "metrics");
    for (int k = 0; k < c->n_metrics; k++)
        if (c->metrics[k]) cJSON_AddItemToArray(ms, cJSON_CreateString(c->metrics[k]));
    for (int k = 0; k < c->n_extra; k++) {
        const plm_ft_config_kv *kv = &c->extra[k];
        if (kv->str)
            cJSON_AddStringToObject(pt, kv->key, kv->str);
        else
            cJSON_AddNumberToObject(pt, kv->key, kv->num);
    }
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    int rc = plm_write_file_atomic(path, s, strlen(s));
    free(s);
    return rc;
}

int plm_ft_save_dir(const plm_model *m, const plm_tokenizer *tok, const plm_ft_config_task *c, const char *dir,
                    const char *const *meta_kv, int n_meta) {
    char path[4096];
    if (plm_model_save(m, dir, meta_kv, n_meta) != 0 || plm_ft_patch_config(dir, c) != 0) return -1;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    return plm_tokenizer_save(tok, path);
}

/* config.json as HF's run_glue leaves it: the label names (plm_model_save writes
 * LABEL_i), the task, the problem type; plm_task lets evaluate/predict find the columns
 * and the truncation length the model was trained with. */
int plm_ft_save_model(const plm_model *m, const plm_tokenizer *tok, const plm_ft_task *t, int max_seq_length,
                      const char *dir, const char *const *meta_kv, int n_meta) {
    plm_ft_config_kv extra[4];
    int n_extra = 0;
    if (t->text_a_column) extra[n_extra++] = (plm_ft_config_kv){"text_column", t->text_a_column, 0};
    if (t->text_b_column) extra[n_extra++] = (plm_ft_config_kv){"text_pair_column", t->text_b_column, 0};
    if (t->label_column) extra[n_extra++] = (plm_ft_config_kv){"label_column", t->label_column, 0};
    if (max_seq_length > 0) extra[n_extra++] = (plm_ft_config_kv){"max_seq_length", NULL, max_seq_length};
    bool regression = t->type == PLM_TASK_REGRESSION;
    plm_ft_config_task c = {
        .name = t->name,
        .problem_type = regression ? "regression" : "single_label_classification",
        .n_labels = t->num_labels,
        .labels = t->type == PLM_TASK_CLASSIFICATION ? t->labels : NULL,
        .type = regression ? "regression" : "classification",
        .n_metrics = 2,
        .metrics = t->metrics,
        .n_extra = n_extra,
        .extra = extra,
    };
    return plm_ft_save_dir(m, tok, &c, dir, meta_kv, n_meta);
}

/* ---------------------------------------------------------------- checkpoints
 * checkpoint-N holds the model at step N (a model directory that evaluate and predict
 * read) and training_state.safetensors: the AdamW moments, the best weights so far and,
 * in the metadata, the step, the best scores and the early-stopping count. The order of
 * the data is a function of (seed, epoch) and dropout of (seed, step), so nothing else is
 * needed to continue bit for bit. The state's layout is the pretraining one plus tensors
 * and keys, so plm_find_checkpoint picks the newest complete checkpoint. */

typedef struct {
    long step;
    long best_step; /* -1: no evaluation yet */
    plm_ft_scores best;
    int bad_evals; /* evaluations since the last improvement */
} ft_state;

static void meta_double(plm_st_writer *w, char *buf, const char *key, double v) {
    snprintf(buf, 40, "%.17g", v);
    plm_st_add_meta(w, key, buf);
}

static int save_state(const char *path, const plm_adamw *o, const float *best_params, const ft_state *s, long spe,
                      int n_train, uint64_t seed) {
    plm_st_writer w;
    plm_st_writer_init(&w);
    int64_t shape[1] = {(int64_t)o->n};
    plm_st_add(&w, "exp_avg", PLM_DT_F32, 1, shape, o->m);
    plm_st_add(&w, "exp_avg_sq", PLM_DT_F32, 1, shape, o->v);
    plm_st_add(&w, "best_params", PLM_DT_F32, 1, shape, best_params);
    plm_digest sum, best;
    plm_digest_init(&sum, NULL);
    plm_digest_update(&sum, o->m, o->n * sizeof(float));
    plm_digest_update(&sum, o->v, o->n * sizeof(float));
    plm_digest_init(&best, NULL);
    plm_digest_update(&best, best_params, o->n * sizeof(float));
    char b[13][40];
    snprintf(b[0], 40, "%ld", s->step);
    snprintf(b[1], 40, "%ld", s->step / spe);
    snprintf(b[2], 40, "%" PRIu64, seed);
    plm_digest_final(&sum, b[3]);
    plm_digest_final(&best, b[4]);
    snprintf(b[5], 40, "%ld", s->best_step);
    snprintf(b[6], 40, "%d", s->bad_evals);
    snprintf(b[7], 40, "%d", n_train);
    plm_st_add_meta(&w, "step", b[0]);
    plm_st_add_meta(&w, "data_epoch", b[1]);
    plm_st_add_meta(&w, "data_position", "0");
    plm_st_add_meta(&w, "seed", b[2]);
    plm_st_add_meta(&w, "plm_checksum", b[3]);
    plm_st_add_meta(&w, "best_checksum", b[4]);
    plm_st_add_meta(&w, "best_step", b[5]);
    plm_st_add_meta(&w, "bad_evals", b[6]);
    plm_st_add_meta(&w, "train_examples", b[7]);
    /* AdamW's update count (its bias correction): the step count, except for a task whose
     * step makes several updates (PPO) */
    char ostep[40];
    snprintf(ostep, sizeof ostep, "%ld", o->step);
    plm_st_add_meta(&w, "adamw_step", ostep);
    meta_double(&w, b[8], "best_loss", s->best.loss);
    meta_double(&w, b[9], "best_metric0", s->best.value[0]);
    meta_double(&w, b[10], "best_metric1", s->best.value[1]);
    meta_double(&w, b[12], "best_metric2", s->best.value[2]);
    snprintf(b[11], 40, "%d", s->best.n);
    plm_st_add_meta(&w, "best_n", b[11]);
    int rc = plm_st_write(&w, path);
    plm_st_writer_free(&w);
    return rc;
}

static int meta_num(const plm_safetensors *st, const char *path, const char *key, double *v) {
    const char *s = plm_st_meta(st, key);
    char *end;
    if (!s || !*s || (*v = strtod(s, &end), *end)) {
        plm_error("%s: missing or bad \"%s\" in metadata (not a fine-tuning checkpoint?)", path, key);
        return -1;
    }
    return 0;
}

/* Loads a checkpoint's weights and state into m, o, best_params and s. */
static int load_state(const char *dir, plm_model *m, plm_adamw *o, float *best_params, ft_state *s, int n_train,
                      uint64_t seed) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (plm_model_load_weights(m, path) != 0) return -1;
    snprintf(path, sizeof path, "%s/training_state.safetensors", dir);
    plm_safetensors st;
    if (plm_st_load(&st, path) != 0) return -1;
    int rc = -1;
    const plm_st_tensor *tm = plm_st_find(&st, "exp_avg"), *tv = plm_st_find(&st, "exp_avg_sq"),
                        *tb = plm_st_find(&st, "best_params");
    size_t nb = o->n * sizeof(float);
    double step, best_step, bad, ntr, sd, l, v0, v1, bn;
    if (!tm || !tv || !tb || tm->nbytes != nb || tv->nbytes != nb || tb->nbytes != nb) {
        plm_error("%s: optimizer state does not match the model (%zu parameters)", path, o->n);
        goto done;
    }
    if (meta_num(&st, path, "step", &step) || meta_num(&st, path, "best_step", &best_step) ||
        meta_num(&st, path, "bad_evals", &bad) || meta_num(&st, path, "train_examples", &ntr) ||
        meta_num(&st, path, "seed", &sd) || meta_num(&st, path, "best_loss", &l) ||
        meta_num(&st, path, "best_metric0", &v0) || meta_num(&st, path, "best_metric1", &v1) ||
        meta_num(&st, path, "best_n", &bn))
        goto done;
    /* the optimizer's moments and the best weights, each against its checksum */
    const char *stored = plm_st_meta(&st, "plm_checksum"), *stored_best = plm_st_meta(&st, "best_checksum");
    plm_digest sum, best;
    plm_digest_init(&sum, stored);
    plm_digest_update(&sum, tm->data, nb);
    plm_digest_update(&sum, tv->data, nb);
    plm_digest_init(&best, stored_best);
    plm_digest_update(&best, tb->data, nb);
    bool sum_ok = plm_digest_matches(&sum, stored), best_ok = plm_digest_matches(&best, stored_best);
    if (!sum_ok || !best_ok) {
        plm_error("%s: checksum mismatch (file corrupted)", path);
        goto done;
    }
    if ((int)ntr != n_train) {
        plm_error("%s: the run had %d training examples, this one has %d: a different training file?", path, (int)ntr,
                  n_train);
        goto done;
    }
    (void)sd;
    if (strtoull(plm_st_meta(&st, "seed"), NULL, 10) != seed) {
        plm_error("%s: the run used --seed %s, not %" PRIu64, path, plm_st_meta(&st, "seed"), seed);
        goto done;
    }
    memcpy(o->m, tm->data, nb);
    memcpy(o->v, tv->data, nb);
    memcpy(best_params, tb->data, nb);
    o->step = (long)step;
    double ostep;
    if (plm_st_meta(&st, "adamw_step")) { /* older checkpoints: one update per step */
        if (meta_num(&st, path, "adamw_step", &ostep) != 0) goto done;
        o->step = (long)ostep;
    }
    s->step = (long)step;
    s->best_step = (long)best_step;
    s->bad_evals = (int)bad;
    /* best_metric2 came with the token tasks; a sequence task's older checkpoint lacks it */
    double v2 = NAN;
    if (plm_st_meta(&st, "best_metric2") && meta_num(&st, path, "best_metric2", &v2) != 0) goto done;
    s->best = (plm_ft_scores){l, {v0, v1, v2}, (int)bn};
    rc = 0;
done:
    plm_st_free(&st);
    return rc;
}

/* output_dir/checkpoint-N, written under a temporary name and renamed into place. */
static int save_checkpoint(const char *output_dir, const plm_model *m, const plm_ft_loop_task *lt, const plm_adamw *o,
                           const float *best_params, const ft_state *s, long spe, uint64_t seed) {
    char tmp[4200], path[4400], sstep[32];
    snprintf(sstep, sizeof sstep, "%ld", s->step);
    const char *meta[] = {"step", sstep};
    if (plm_checkpoint_begin(output_dir, s->step, tmp, sizeof tmp) != 0) return -1;
    snprintf(path, sizeof path, "%s/training_state.safetensors", tmp);
    if (lt->save_model(lt->ctx, m, tmp, meta, 1) != 0 || save_state(path, o, best_params, s, spe, lt->n_train, seed) ||
        (lt->save_state && lt->save_state(lt->ctx, tmp) != 0)) {
        plm_checkpoint_abort(tmp);
        return -1;
    }
    return plm_checkpoint_commit(tmp, output_dir, s->step);
}

/* ---------------------------------------------------------------- the loop */

static bool better(double v, const ft_state *s, bool lower) {
    return s->best_step < 0 || (isfinite(v) && (lower ? !(v >= s->best.value[0]) : !(v <= s->best.value[0])));
}

/* ", \"key\": v", with null for a NaN or infinite v: printf's "nan" is not JSON, and a score
 * can be undefined (an evaluation without a counted label) */
static void log_number(FILE *log, const char *prefix, const char *key, double v) {
    if (isfinite(v))
        fprintf(log, ", \"%s%s\": %.17g", prefix, key, v);
    else
        fprintf(log, ", \"%s%s\": null", prefix, key);
}

void plm_ft_log_scores(FILE *log, long step, double epoch, const plm_ft_named_scores *e) {
    fprintf(log, "{\"step\": %ld, \"epoch\": %.4f", step, epoch);
    log_number(log, "", "eval_loss", e->loss);
    for (int k = 0; k < e->n_metrics; k++)
        if (e->names[k]) log_number(log, "eval_", e->names[k], e->values[k]);
    fprintf(log, ", \"eval_samples\": %d}\n", e->samples);
}

void plm_ft_log_step(FILE *log, long step, double epoch, double loss, float lr, double grad_norm, double elapsed_s,
                     const char *extra) {
    fprintf(log,
            "{\"step\": %ld, \"epoch\": %.4f, \"loss\": %.17g, \"learning_rate\": %.9g, \"grad_norm\": %.9g, "
            "\"elapsed_s\": %.3f%s}\n",
            step, epoch, loss, lr, grad_norm, elapsed_s, extra ? extra : "");
}

int plm_ft_write_results(const char *dir, const char *task, const plm_ft_named_scores *e, long best_step, long steps,
                         double epochs, bool final_newline) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "task", task);
    cJSON_AddNumberToObject(o, "eval_loss", e->loss);
    for (int k = 0; k < e->n_metrics; k++) {
        char key[64];
        snprintf(key, sizeof key, "eval_%s", e->names[k] ? e->names[k] : "");
        if (e->names[k]) cJSON_AddNumberToObject(o, key, e->values[k]);
    }
    cJSON_AddNumberToObject(o, "eval_samples", e->samples);
    cJSON_AddNumberToObject(o, "best_step", (double)best_step);
    cJSON_AddNumberToObject(o, "train_steps", (double)steps);
    cJSON_AddNumberToObject(o, "epochs", epochs);
    char *s = cJSON_Print(o), path[4096];
    cJSON_Delete(o);
    snprintf(path, sizeof path, "%s/eval_results.json", dir);
    size_t n = strlen(s);
    if (final_newline) s[n++] = '\n'; /* cJSON's buffer has room for the NUL we overwrite; n keeps it out */
    int rc = plm_write_file_atomic(path, s, n);
    free(s);
    return rc;
}

int plm_ft_train(plm_model *m, const plm_ft_loop_task *lt, const plm_ft_args *a, plm_ft_scores *best_out) {
    int B = a->train_batch_size, n = lt->n_train;
    if (lt->step && plm_dist_size() > 1) {
        plm_error("%s trains in one process only", lt->name);
        return PLM_EXIT_USAGE;
    }
    if (B <= 0 || a->eval_batch_size <= 0 || (a->max_steps <= 0 && a->num_train_epochs <= 0)) {
        plm_error("batch sizes and --num-train-epochs (or --max-steps) must be positive");
        return PLM_EXIT_USAGE;
    }
    if (n <= 0) {
        plm_error("no training examples");
        return PLM_EXIT_INPUT;
    }
    if (lt->max_len > m->config.max_position_embeddings) {
        plm_error("features of %d tokens exceed the model's %d positions: lower --max-seq-length", lt->max_len,
                  m->config.max_position_embeddings);
        return PLM_EXIT_USAGE;
    }
    int rows = PLM_MAX(lt->rows_per_item, 1) * PLM_MAX(B, a->eval_batch_size);
    if (plm_model_reserve(m, rows, PLM_MAX(lt->max_len, 1)) != 0) return PLM_EXIT_USAGE;
    /* data parallelism (dist.h): a step is a global batch of GB = ranks x B rows, rank r
     * takes its r-th B of them; rank 0 alone writes files */
    int rank = plm_dist_rank(), GB = B * plm_dist_size();
    bool root = rank == 0, quiet = a->quiet || !root;
    double same[] = {
        B, lt->max_len, a->num_train_epochs, (double)a->max_steps, (double)m->num_params, a->opt.learning_rate, n};
    if (plm_dist_check_same(plm_fnv1a(&a->seed, sizeof a->seed, plm_fnv1a(same, sizeof same, 0)),
                            "fine-tuning settings") != 0)
        return PLM_EXIT_USAGE;
    if (root && plm_mkdirs(a->output_dir) != 0) return PLM_EXIT_FAIL;
    if (root) plm_checkpoint_remove_stale(a->output_dir);
    long spe = (n + GB - 1) / GB; /* steps per epoch; the last batch may be short (HF keeps it) */
    long total = a->max_steps > 0 ? a->max_steps : (long)ceil((double)a->num_train_epochs * (double)spe);
    long warmup = (long)ceil((double)a->warmup_ratio * (double)total);
    long eval_every = a->eval_steps > 0 ? a->eval_steps : spe;
    const char *metric0 = lt->metrics[0];

    int rc = PLM_EXIT_FAIL;
    plm_adamw opt;
    plm_adamw_init(&opt, m->num_params);
    if (plm_adamw_layerwise_decay(&opt, m, a->layerwise_lr_decay) != 0) {
        plm_adamw_free(&opt);
        return PLM_EXIT_USAGE;
    }
    plm_grad_sync *gs = plm_grad_sync_create(m, 1, &(plm_dist_opts){0});
    float *best_params = plm_malloc(m->num_params * sizeof(float));
    memcpy(best_params, m->params, m->num_params * sizeof(float));
    int *order = plm_malloc((size_t)n * sizeof *order);
    FILE *log = NULL;
    ft_state s = {.step = 0, .best_step = -1, .best = {NAN, {NAN, NAN, NAN}, 0}, .bad_evals = 0};
    if (a->resume_from_checkpoint) {
        if (load_state(a->resume_from_checkpoint, m, &opt, best_params, &s, n, a->seed) != 0 ||
            (lt->load_state && lt->load_state(lt->ctx, a->resume_from_checkpoint) != 0)) {
            rc = PLM_EXIT_INPUT;
            goto out;
        }
        if (s.step > total) {
            plm_error("%s: checkpoint is at step %ld, the run has %ld steps", a->resume_from_checkpoint, s.step, total);
            rc = PLM_EXIT_INPUT;
            goto out;
        }
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/metrics.jsonl", a->output_dir);
    if (root && a->resume_from_checkpoint && plm_truncate_metrics(path, s.step) != 0) goto out;
    if (root && !(log = fopen(path, a->resume_from_checkpoint ? "a" : "w"))) {
        plm_error("%s: %s", path, strerror(errno));
        goto out;
    }
    char label[64], status[200] = "";
    snprintf(label, sizeof label, "finetune %s", lt->name);
    plm_progress pb;
    plm_progress_start(&pb, label, total, s.step);
    double loss_ema = NAN, t_start = plm_now();
    long cur_epoch = -1;
    double last_eval = NAN; /* shown in the progress bar */
    bool stopped = a->early_stopping_patience > 0 && s.bad_evals >= a->early_stopping_patience;
    while (s.step < total && !stopped) {
        long epoch = s.step / spe, k = s.step % spe;
        if (epoch != cur_epoch) {
            plm_ft_epoch_order(order, n, a->seed, epoch);
            cur_epoch = epoch;
        }
        int nbg = (int)PLM_MIN((long)GB, (long)n - k * GB); /* the global batch */
        int lo = PLM_MIN(rank * B, nbg), nb = PLM_MIN(B, nbg - lo);
        uint64_t dseed = plm_hash_combine(a->seed, (uint64_t)s.step);
        if (rank > 0) dseed = plm_hash_combine(dseed, (uint64_t)rank); /* ranks draw their own dropout */
        double norm = NAN, loss = NAN;
        float lr = plm_lr_at(PLM_SCHED_LINEAR, a->opt.learning_rate, s.step, warmup, total);
        if (lt->step) {
            if (lt->step(lt->ctx, m, order + k * GB, nbg, dseed, &opt, &a->opt, lr, a->max_grad_norm, &norm) != 0) {
                rc = PLM_EXIT_INPUT;
                goto out;
            }
            goto stepped;
        }
        plm_batch b;
        plm_model_zero_grad(m);
        plm_grad_sync_micro_begin(gs, 0);
        /* each rank's mean loss weighted by its share of the global batch: the gradient of the
         * global batch's mean (a rank left without rows by a short last batch adds zeros) */
        if (nb > 0 && (lt->train_batch(lt->ctx, m, order + k * GB + lo, nb, dseed, &b) != 0 ||
                       plm_model_run(m, 0, &b, true, (float)nb / (float)nbg) != 0)) {
            rc = PLM_EXIT_INPUT;
            goto out;
        }
        plm_grad_sync_micro_end(gs, 0);
        plm_grad_sync_finish(gs);
        /* a NaN loss with finite gradients is a batch without a counted label (a QA or NER
         * batch whose rows are all -100): nothing to learn from, not a divergence */
        double mine = nb > 0 && lt->batch_loss ? lt->batch_loss(lt->ctx) : m->loss;
        loss = mine;
        if (GB > B) {
            double part = nb > 0 && isfinite(mine) ? mine * nb : 0.0;
            plm_dist_allreduce_f64(&part, 1);
            loss = part / nbg;
        }
        norm = plm_grad_sync_clip(gs, a->max_grad_norm);
        if (!isfinite(norm) || isinf(loss)) {
            plm_error("training diverged at step %ld (loss %g, grad norm %g); try a lower learning rate", s.step + 1,
                      loss, norm);
            goto out;
        }
        plm_grad_sync_adamw_step(gs, &opt, &a->opt, lr);
    stepped:
        if (lt->step) {
            loss = lt->batch_loss ? lt->batch_loss(lt->ctx) : NAN;
            if (!isfinite(norm) || isinf(loss)) {
                plm_error("training diverged at step %ld (loss %g, grad norm %g); try a lower learning rate",
                          s.step + 1, loss, norm);
                goto out;
            }
        }
        if (plm_first_nonfinite(m, m->params) >= 0) {
            plm_error("training diverged at step %ld: parameter %s is not finite; try a lower learning rate",
                      s.step + 1, m->tensors[plm_first_nonfinite(m, m->params)].name);
            goto out;
        }
        s.step++;
        double ep = (double)s.step / (double)spe;
        if (isfinite(loss)) loss_ema = isnan(loss_ema) ? loss : 0.9 * loss_ema + 0.1 * loss;
        if (root && (s.step % a->logging_steps == 0 || s.step == total || s.step == 1)) {
            char extra[1024] = "";
            if (lt->step_fields) lt->step_fields(lt->ctx, extra, sizeof extra);
            plm_ft_log_step(log, s.step, ep, isfinite(loss) ? loss : 0.0, lr, norm, plm_now() - t_start, extra);
        }
        if (lt->has_dev && (s.step % eval_every == 0 || s.step == total)) {
            plm_ft_scores e;
            if (lt->evaluate(lt->ctx, m, a->eval_batch_size, &e) != 0) {
                rc = PLM_EXIT_INPUT;
                goto out;
            }
            plm_ft_named_scores ne = {e.loss, lt->n_metrics, lt->metrics, e.value, e.n};
            if (root) plm_ft_log_scores(log, s.step, ep, &ne);
            last_eval = e.value[0];
            if (better(e.value[0], &s, lt->lower_is_better)) {
                s.best = e;
                s.best_step = s.step;
                s.bad_evals = 0;
                memcpy(best_params, m->params, m->num_params * sizeof(float));
                if (lt->keep_best) lt->keep_best(lt->ctx, false);
            } else {
                s.bad_evals++;
            }
            stopped = a->early_stopping_patience > 0 && s.bad_evals >= a->early_stopping_patience;
            if (!quiet && !pb.tty)
                fprintf(stderr, "step %ld (epoch %.2f): eval_%s %.4f, eval_loss %.4f (best %.4f at step %ld)%s\n",
                        s.step, ep, metric0, e.value[0], e.loss, s.best.value[0], s.best_step,
                        stopped ? "; early stopping" : "");
            /* every rank evaluated the same weights, so all agree on best and stopping */
            if (root) {
                fflush(log);
                fsync(fileno(log)); /* the log is on disk before the checkpoint a resume appends from */
                if (save_checkpoint(a->output_dir, m, lt, &opt, best_params, &s, spe, a->seed) != 0) goto out;
                plm_checkpoint_rotate(a->output_dir, a->save_total_limit, s.step);
            }
        }
        if (log) fflush(log);
        if (s.best_step >= 0)
            snprintf(status, sizeof status, "loss %.4f | %s %.4f (best %.4f) | epoch %.2f", loss_ema, metric0,
                     last_eval, s.best.value[0], ep);
        else
            snprintf(status, sizeof status, "loss %.4f | lr %.2e | epoch %.2f", loss_ema, lr, ep);
        if (!quiet) plm_progress_update(&pb, s.step, status);
    }
    if (!quiet) plm_progress_finish(&pb, status);
    /* the final model is the best one seen (HF's load_best_model_at_end) */
    if (s.best_step >= 0) {
        memcpy(m->params, best_params, m->num_params * sizeof(float));
        if (lt->keep_best) lt->keep_best(lt->ctx, true);
    }
    plm_model_params_written(m);
    char sstep[32];
    snprintf(sstep, sizeof sstep, "%ld", s.best_step >= 0 ? s.best_step : s.step);
    const char *meta[] = {"step", sstep};
    if (root && lt->save_model(lt->ctx, m, a->output_dir, meta, 1) != 0) goto out;
    plm_ft_named_scores nbest = {s.best.loss, lt->n_metrics, lt->metrics, s.best.value, s.best.n};
    if (root && s.best_step >= 0 &&
        plm_ft_write_results(a->output_dir, lt->name, &nbest, s.best_step, s.step, (double)s.step / spe, true) != 0)
        goto out;
    if (best_out) *best_out = s.best;
    rc = 0;
out:
    if (log) fclose(log);
    free(order);
    free(best_params);
    plm_adamw_free(&opt);
    plm_grad_sync_free(gs);
    return rc;
}

/* ---------------------------------------------------------------- sequence tasks on the loop */

typedef struct {
    const plm_tokenizer *tok;
    const plm_dataset *train, *dev;
    const plm_ft_task *t;
    plm_collate_opts co;
    ft_batch fb;
} seq_loop;

static int seq_train_batch(void *ctx, plm_model *m, const int *rows, int n, uint64_t dseed, plm_batch *out) {
    seq_loop *c = ctx;
    return ft_batch_fill(&c->fb, m, c->tok, c->train, rows, n, &c->co, true, dseed, out);
}

static int seq_evaluate(void *ctx, plm_model *m, int B, plm_ft_scores *out) {
    seq_loop *c = ctx;
    return plm_ft_evaluate(m, c->tok, c->dev, c->t, &c->co, B, out);
}

static int seq_save(void *ctx, const plm_model *m, const char *dir, const char *const *meta_kv, int n_meta) {
    seq_loop *c = ctx;
    return plm_ft_save_model(m, c->tok, c->t, c->co.max_length, dir, meta_kv, n_meta);
}

int plm_finetune(plm_model *m, const plm_tokenizer *tok, const plm_dataset *train, const plm_dataset *dev,
                 const plm_ft_task *t, const plm_ft_args *a, plm_ft_scores *best_out) {
    if (a->max_seq_length <= 0) {
        plm_error("--max-seq-length must be positive");
        return PLM_EXIT_USAGE;
    }
    int h = seq_head(m);
    if (h < 0) return PLM_EXIT_INPUT;
    if (m->heads[h].K != t->num_labels) {
        plm_error("the model's head has %d outputs, the task %d labels", m->heads[h].K, t->num_labels);
        return PLM_EXIT_INPUT;
    }
    seq_loop c = {.tok = tok, .train = train, .dev = dev, .t = t};
    int T = PLM_MIN(a->max_seq_length, m->config.max_position_embeddings);
    plm_ft_collate_opts(&c.co, tok, T);
    ft_batch_init(&c.fb, PLM_MAX(a->train_batch_size, 1));
    plm_ft_loop_task lt = {.name = t->name,
                           .n_metrics = 2,
                           .metrics = t->metrics,
                           .n_train = train->n,
                           .max_len = T,
                           .has_dev = dev != NULL,
                           .ctx = &c,
                           .train_batch = seq_train_batch,
                           .evaluate = seq_evaluate,
                           .save_model = seq_save};
    int rc = plm_ft_train(m, &lt, a, best_out);
    ft_batch_free(&c.fb);
    return rc;
}
