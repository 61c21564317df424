/* trainer.c - see trainer.h */
#include "trainer.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "checkpoint.h"
#include "core/common.h"
#include "core/digest.h"
#include "core/progress.h"
#include "core/rng.h"
#include "electra.h"
#include "model/model_io.h"
#include "safetensors.h"

void plm_train_args_default(plm_train_args *a) {
    memset(a, 0, sizeof *a);
    a->output_dir = "out";
    a->objective = PLM_OBJ_CLM;
    plm_objective_opts_default(&a->obj);
    a->per_device_train_batch_size = 16;
    a->max_seq_length = 128;
    a->gradient_accumulation_steps = 1;
    a->max_steps = 1000;
    a->opt = plm_adamw_defaults(5e-4f);
    a->warmup_steps = 100;
    a->lr_scheduler_type = PLM_SCHED_LINEAR;
    a->decay_fraction = 0.2;
    a->decay_type = PLM_DECAY_1SQRT;
    a->max_grad_norm = 1.0f;
    a->logging_steps = 10;
    a->eval_steps = 200;
    a->eval_batches = 20;
    a->save_steps = 0;
    a->clm_fraction = 0.25;
    a->seed = 42;
}

plm_objective plm_train_phase(const plm_train_args *a, long step) {
    if (a->objective != PLM_OBJ_CLM_MLM) return a->objective;
    return step < lround(a->clm_fraction * (double)a->max_steps) ? PLM_OBJ_CLM : PLM_OBJ_MLM;
}

/* ---------------------------------------------------------------- batches */

typedef struct {
    int B, T;
    int32_t *ids, *type_ids, *labels, *seq_labels;
    uint8_t *mask;
    int Tt;                        /* T5: target length */
    int32_t *dec_ids, *dec_labels; /* T5: decoder inputs and labels [B, Tt] */
    bool pairs;                    /* seq_labels carry NSP/SOP labels */
} batch_buf;

/* Tt > 0: also the decoder side of a T5 batch. */
static void batch_alloc(batch_buf *b, int B, int T, int Tt) {
    size_t n = (size_t)B * T;
    memset(b, 0, sizeof *b);
    b->B = B;
    b->T = T;
    b->ids = plm_malloc(n * sizeof(int32_t));
    b->type_ids = plm_malloc(n * sizeof(int32_t));
    b->labels = plm_malloc(n * sizeof(int32_t));
    b->seq_labels = plm_malloc((size_t)B * sizeof(int32_t));
    b->mask = plm_malloc(n);
    if (Tt > 0) {
        b->Tt = Tt;
        b->dec_ids = plm_malloc((size_t)B * Tt * sizeof(int32_t));
        b->dec_labels = plm_malloc((size_t)B * Tt * sizeof(int32_t));
    }
}

static void batch_free(batch_buf *b) {
    free(b->ids);
    free(b->type_ids);
    free(b->labels);
    free(b->seq_labels);
    free(b->mask);
    free(b->dec_ids);
    free(b->dec_labels);
}

static plm_batch as_batch(const batch_buf *b, bool causal, bool training, uint64_t seed) {
    return (plm_batch){.B = b->B,
                       .T = b->T,
                       .input_ids = b->ids,
                       .token_type_ids = b->type_ids,
                       .attention_mask = b->mask,
                       .labels = b->labels,
                       .seq_labels = b->pairs ? b->seq_labels : NULL,
                       .causal = causal,
                       .training = training,
                       .dropout_seed = seed};
}

/* T5 span corruption: the next B windows through the encoder-decoder (the decoder's
 * LM head scores the targets). Returns 0 or -1 (error set). */
static int run_t5_batch(plm_model *m, plm_dataloader *d, batch_buf *bb, bool training, uint64_t seed, bool backward,
                        float loss_scale) {
    plm_dataloader_next_t5(d, bb->B, bb->ids, bb->dec_ids, bb->dec_labels);
    plm_batch enc = {.B = bb->B, .T = bb->T, .input_ids = bb->ids, .training = training, .dropout_seed = seed};
    plm_batch dec = {.B = bb->B,
                     .T = bb->Tt,
                     .input_ids = bb->dec_ids,
                     .labels = bb->dec_labels,
                     .causal = true,
                     .training = training,
                     .dropout_seed = seed};
    return plm_model_run_seq2seq(m, &enc, &dec, backward, loss_scale);
}

/* One micro-batch of the run's objective from d: built, then forward (and backward). */
static int run_batch(plm_model *m, plm_dataloader *d, batch_buf *bb, bool causal, bool training, uint64_t seed,
                     bool backward, float loss_scale) {
    if (d->objective == PLM_OBJ_T5) return run_t5_batch(m, d, bb, training, seed, backward, loss_scale);
    plm_dataloader_next_seq(d, bb->B, bb->ids, bb->type_ids, bb->mask, bb->labels, bb->seq_labels);
    plm_batch b = as_batch(bb, causal, training, seed);
    return plm_model_run(m, 0, &b, backward, loss_scale);
}

plm_eval_result plm_evaluate_ex(plm_model *m, plm_dataloader *d, int batch_size, int max_batches, bool causal,
                                int32_t majority_token) {
    plm_dataloader_seek(d, 0, 0); /* same batches and masks at every evaluation */
    batch_buf bb;
    int nb = (int)PLM_MIN((size_t)max_batches, (d->num_windows + (size_t)batch_size - 1) / (size_t)batch_size);
    batch_alloc(&bb, batch_size, d->T, d->t5_targets_length);
    bb.pairs = d->objective == PLM_OBJ_MLM && d->opts.pair != PLM_PAIR_NONE;
    int nsp = bb.pairs ? plm_model_head(m, PLM_HEAD_NSP) : -1;
    double loss = 0.0;
    long count = 0, correct = 0, majority = 0, mcount = 0, mcorrect = 0, mmajority = 0, seqs = 0, seq_correct = 0;
    int32_t mask_id = d->objective == PLM_OBJ_MLM ? d->vocab->mask : -1;
    const plm_head *lm = m->num_heads && m->heads[0].spec.kind == PLM_HEAD_LM ? &m->heads[0] : NULL;
    for (int i = 0; i < nb; i++) {
        int B = (int)PLM_MIN((size_t)batch_size, d->num_windows - (size_t)i * batch_size);
        bb.B = B;
        if (run_batch(m, d, &bb, causal, false, 0, false, 1.0f) != 0) break;
        plm_ce_result r = m->heads[0].result;
        loss += r.loss_sum;
        count += r.count;
        correct += r.correct;
        if (nsp >= 0) {
            seqs += m->heads[nsp].result.count;
            seq_correct += m->heads[nsp].result.correct;
        }
        for (size_t k = 0; d->objective != PLM_OBJ_T5 && k < (size_t)B * d->T; k++) /* T5's labels: dec_labels */
            majority += bb.labels[k] >= 0 && bb.labels[k] == majority_token;
        /* the rows whose input is [MASK]: the head's logits (no gradient: still logits) */
        for (int k = 0; lm && mask_id >= 0 && k < lm->num_rows; k++) {
            int32_t row = lm->rows[k], y = lm->targets[k];
            if (bb.ids[row] != mask_id) continue;
            const float *z = lm->logits + (size_t)k * lm->K;
            int best = 0;
            for (int v = 1; v < lm->K; v++)
                if (z[v] > z[best]) best = v;
            mcount++;
            mcorrect += best == y;
            mmajority += y == majority_token;
        }
    }
    batch_free(&bb);
    plm_eval_result res = {count ? loss / (double)count : NAN,
                           count ? (double)correct / (double)count : NAN,
                           count,
                           count && majority_token >= 0 ? (double)majority / (double)count : NAN,
                           mcount ? (double)mcorrect / (double)mcount : NAN,
                           mcount && majority_token >= 0 ? (double)mmajority / (double)mcount : NAN,
                           mcount,
                           seqs ? (double)seq_correct / (double)seqs : NAN,
                           seqs};
    return res;
}

plm_eval_result plm_evaluate(plm_model *m, plm_dataloader *d, int batch_size, int max_batches, bool causal) {
    return plm_evaluate_ex(m, d, batch_size, max_batches, causal, -1);
}

/* ELECTRA's validation: the joint step without backward on fixed batches and fixed
 * samples; generator loss and masked accuracy, discriminator loss, accuracy and AUC over
 * every real token, and the accuracy of always answering "original". One metrics line. */
static void evaluate_electra(plm_model *m, plm_dataloader *d, int batch_size, int max_batches, FILE *log, long step,
                             bool print) {
    plm_dataloader_seek(d, 0, 0);
    batch_buf bb;
    int nb = (int)PLM_MIN((size_t)max_batches, (d->num_windows + (size_t)batch_size - 1) / (size_t)batch_size);
    batch_alloc(&bb, batch_size, d->T, 0);
    plm_electra_state st;
    plm_electra_state_init(&st, batch_size, d->T);
    size_t cap = (size_t)nb * batch_size * d->T, n = 0;
    float *score = plm_malloc(cap * sizeof(float));
    int32_t *label = plm_malloc(cap * sizeof(int32_t));
    double gl = 0.0, dl = 0.0, joint = 0.0;
    long gc = 0, gk = 0, dc = 0, dk = 0, orig = 0;
    for (int i = 0; i < nb; i++) {
        int B = (int)PLM_MIN((size_t)batch_size, d->num_windows - (size_t)i * batch_size);
        bb.B = B;
        plm_dataloader_next(d, B, bb.ids, bb.type_ids, bb.mask, bb.labels);
        plm_batch b = as_batch(&bb, false, false, 0);
        if (plm_electra_step(m, &st, &b, plm_hash_combine(0xe7a1, (uint64_t)i), false, 1.0f) != 0) break;
        gl += st.gen.loss_sum, gc += st.gen.count, gk += st.gen.correct;
        dl += st.disc.loss_sum, dc += st.disc.count, dk += st.disc.correct;
        joint += m->loss;
        const float *z = m->heads[0].logits; /* raw logits: a forward pass without gradient */
        for (size_t k = 0; k < (size_t)B * d->T; k++)
            if (st.disc_labels[k] != PLM_IGNORE_INDEX) {
                score[n] = z[k];
                label[n++] = st.disc_labels[k];
                orig += st.disc_labels[k] == 0;
            }
    }
    double auc = plm_roc_auc(score, label, n);
    double g_loss = gc ? gl / (double)gc : NAN, d_loss = dc ? dl / (double)dc : NAN;
    double g_acc = gc ? (double)gk / (double)gc : NAN, d_acc = dc ? (double)dk / (double)dc : NAN;
    double base = dc ? (double)orig / (double)dc : NAN;
    fprintf(log,
            "{\"step\": %ld, \"eval_loss\": %.17g, \"eval_generator_loss\": %.17g, \"eval_masked_accuracy\": %.6f, "
            "\"eval_discriminator_loss\": %.17g, \"eval_discriminator_accuracy\": %.6f, \"eval_discriminator_auc\": "
            "%.6f, \"eval_always_original_accuracy\": %.6f, \"eval_masked_tokens\": %ld, \"eval_tokens\": %ld}\n",
            step, nb ? joint / nb : NAN, g_loss, g_acc, d_loss, d_acc, auc, base, gc, dc);
    if (print)
        fprintf(stderr,
                "step %ld: generator loss %.4f, masked accuracy %.4f; discriminator accuracy %.4f (always "
                "original %.4f), AUC %.4f\n",
                step, g_loss, g_acc, d_acc, base, auc);
    free(score);
    free(label);
    plm_electra_state_free(&st);
    batch_free(&bb);
}

/* ---------------------------------------------------------------- checkpoints */

static int save_training_state(const char *path, const plm_adamw *o, long step, const plm_dataloader *d,
                               uint64_t seed) {
    plm_st_writer w;
    plm_st_writer_init(&w);
    int64_t shape[1] = {(int64_t)o->n};
    plm_st_add(&w, "exp_avg", PLM_DT_F32, 1, shape, o->m);
    plm_st_add(&w, "exp_avg_sq", PLM_DT_F32, 1, shape, o->v);
    plm_digest sum;
    plm_digest_init(&sum, NULL);
    plm_digest_update(&sum, o->m, o->n * sizeof(float));
    plm_digest_update(&sum, o->v, o->n * sizeof(float));
    char buf[5][32];
    snprintf(buf[0], 32, "%ld", step);
    snprintf(buf[1], 32, "%" PRIu64, d->epoch);
    snprintf(buf[2], 32, "%zu", d->pos);
    snprintf(buf[3], 32, "%" PRIu64, seed);
    plm_digest_final(&sum, buf[4]);
    plm_st_add_meta(&w, "step", buf[0]);
    plm_st_add_meta(&w, "data_epoch", buf[1]);
    plm_st_add_meta(&w, "data_position", buf[2]);
    plm_st_add_meta(&w, "seed", buf[3]);
    plm_st_add_meta(&w, "plm_checksum", buf[4]);
    int rc = plm_st_write(&w, path);
    plm_st_writer_free(&w);
    return rc;
}

static int meta_u64(const plm_safetensors *st, const char *key, const char *path, uint64_t *out) {
    const char *s = plm_st_meta(st, key);
    char *end;
    errno = 0;
    if (!s || !*s || (*out = strtoull(s, &end, 10), *end || errno)) {
        plm_error("%s: missing or bad \"%s\" in metadata", path, key);
        return -1;
    }
    return 0;
}

/* The "step" in a model.safetensors' metadata. */
static int model_step_of(const char *path, uint64_t *step) {
    plm_safetensors mst;
    if (plm_st_load(&mst, path) != 0) return -1;
    int rc = meta_u64(&mst, "step", path, step);
    plm_st_free(&mst);
    return rc;
}

/* Checks an opened training_state.safetensors against the parameter count and the step of
 * the model.safetensors next to it (the two are written separately; equal steps show they
 * belong together). */
static int verify_training_state(const plm_safetensors *st, const char *path, size_t n, uint64_t model_step,
                                 uint64_t *step, uint64_t *epoch, uint64_t *pos) {
    const plm_st_tensor *tm = plm_st_find(st, "exp_avg"), *tv = plm_st_find(st, "exp_avg_sq");
    if (!tm || !tv || tm->dtype != PLM_DT_F32 || tv->dtype != PLM_DT_F32 || tm->nbytes != n * sizeof(float) ||
        tv->nbytes != n * sizeof(float)) {
        plm_error("%s: optimizer state does not match the model (%zu parameters)", path, n);
        return -1;
    }
    if (meta_u64(st, "step", path, step) || meta_u64(st, "data_epoch", path, epoch) ||
        meta_u64(st, "data_position", path, pos))
        return -1;
    if (*step != model_step) {
        plm_error("%s: step %" PRIu64 " does not match model.safetensors (step %" PRIu64 ")", path, *step, model_step);
        return -1;
    }
    const char *stored = plm_st_meta(st, "plm_checksum");
    plm_digest sum;
    plm_digest_init(&sum, stored);
    plm_digest_update(&sum, tm->data, tm->nbytes);
    plm_digest_update(&sum, tv->data, tv->nbytes);
    if (!plm_digest_matches(&sum, stored)) {
        plm_error("%s: checksum mismatch (file corrupted)", path);
        return -1;
    }
    return 0;
}

/* The model a checkpoint directory holds: an ELECTRA pair (electra.h) or one model. */
static plm_model *load_checkpoint_model(const char *dir) {
    return plm_electra_dir(dir) ? plm_electra_load(dir) : plm_model_load(dir);
}

static int load_training_state(const char *dir, plm_model *m, plm_adamw *o, long *step, uint64_t *epoch, size_t *pos) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (plm_electra_is_joint(m)) {
        plm_model *j = plm_electra_load(dir);
        if (!j) return -1;
        bool same = j->num_params == m->num_params && j->num_tensors == m->num_tensors;
        for (int i = 0; same && i < m->num_tensors; i++) same = strcmp(j->tensors[i].name, m->tensors[i].name) == 0;
        if (same) memcpy(m->params, j->params, m->num_params * sizeof(float));
        plm_model_params_written(m);
        plm_model_free(j);
        if (!same) {
            plm_error("%s: the checkpoint's generator and discriminator differ from this model's", dir);
            return -1;
        }
    } else if (plm_model_load_weights(m, path) != 0)
        return -1;
    uint64_t model_step = 0;
    if (model_step_of(path, &model_step) != 0) return -1;
    snprintf(path, sizeof path, "%s/training_state.safetensors", dir);
    plm_safetensors st;
    if (plm_st_load(&st, path) != 0) return -1;
    uint64_t s, e, p;
    int rc = verify_training_state(&st, path, m->num_params, model_step, &s, &e, &p);
    if (rc == 0) { /* the whole state, or this rank's ZeRO-1 slice of it */
        memcpy(o->m, (const float *)plm_st_find(&st, "exp_avg")->data + o->offset, o->n * sizeof(float));
        memcpy(o->v, (const float *)plm_st_find(&st, "exp_avg_sq")->data + o->offset, o->n * sizeof(float));
        o->step = (long)s;
        *step = (long)s;
        *epoch = e;
        *pos = (size_t)p;
    }
    plm_st_free(&st);
    return rc;
}

/* ---------------------------------------------------------------- checkpoint directories
 * A checkpoint is complete when tokenizer.json, config.json, model.safetensors and
 * training_state.safetensors are all there, load, and agree on the step. Every file is
 * written atomically (common.h); on top of that:
 *  - checkpoint-N is written under a temporary name and renamed into place (checkpoint.h),
 *    so a checkpoint-N directory is always complete;
 *  - the final model lives in output_dir itself (the layout generate/eval and HF load), so
 *    it cannot be renamed into place as a whole. There training_state.safetensors is the
 *    commit marker: it and model.safetensors are deleted first and it is written last. A kill
 *    in between leaves output_dir without model.safetensors or without training_state, never
 *    files of two different steps side by side; resuming then falls back to the newest
 *    checkpoint-N and redoes the last steps bit-exactly. */

/* PLM_TEST_SLOW_SAVE=<ms> sleeps after every checkpoint file, so that
 * tests/checkpoint_kill.sh can land SIGKILLs inside saves. Testing only. */
static void test_slow_save(void) {
    const char *s = getenv("PLM_TEST_SLOW_SAVE");
    long ms = s ? strtol(s, NULL, 10) : 0;
    if (ms > 0) nanosleep(&(struct timespec){.tv_sec = ms / 1000, .tv_nsec = ms % 1000 * 1000000L}, NULL);
}

/* Writes the checkpoint files into dir; training_state.safetensors last (the commit marker). */
static int save_checkpoint_files(const char *dir, const plm_model *m, const plm_tokenizer *tok, const plm_adamw *o,
                                 long step, const plm_dataloader *d, uint64_t seed) {
    char sstep[32], path[4096];
    snprintf(sstep, sizeof sstep, "%ld", step);
    const char *meta[] = {"step", sstep};
    if (tok) {
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        if (plm_tokenizer_save(tok, path) != 0) return -1;
        test_slow_save();
    }
    if ((plm_electra_is_joint(m) ? plm_electra_save(m, dir, meta, 1) : plm_model_save(m, dir, meta, 1)) != 0) return -1;
    if (tok && plm_electra_is_joint(m)) { /* generator/ is a model directory of its own (fill-mask, eval) */
        snprintf(path, sizeof path, "%s/generator/tokenizer.json", dir);
        if (plm_tokenizer_save(tok, path) != 0) return -1;
    }
    test_slow_save();
    snprintf(path, sizeof path, "%s/training_state.safetensors", dir);
    if (save_training_state(path, o, step, d, seed) != 0) return -1;
    test_slow_save();
    return 0;
}

/* output_dir/checkpoint-<step>, renamed into place only once complete. */
static int save_checkpoint_dir(const char *output_dir, long step, const plm_model *m, const plm_tokenizer *tok,
                               const plm_adamw *o, const plm_dataloader *d, uint64_t seed) {
    char tmp[4200];
    if (plm_checkpoint_begin(output_dir, step, tmp, sizeof tmp) != 0) return -1;
    if (save_checkpoint_files(tmp, m, tok, o, step, d, seed) != 0) {
        plm_checkpoint_abort(tmp);
        return -1;
    }
    return plm_checkpoint_commit(tmp, output_dir, step);
}

/* The final model straight into output_dir; see the comment above. */
static int save_final_model(const char *output_dir, const plm_model *m, const plm_tokenizer *tok, const plm_adamw *o,
                            long step, const plm_dataloader *d, uint64_t seed) {
    const char *names[] = {"training_state.safetensors", "model.safetensors"};
    char path[4096];
    for (size_t i = 0; i < PLM_ARRAY_LEN(names); i++) {
        snprintf(path, sizeof path, "%s/%s", output_dir, names[i]);
        if (unlink(path) != 0 && errno != ENOENT) {
            plm_error("%s: %s", path, strerror(errno));
            return -1;
        }
    }
    if (plm_fsync_dir(output_dir) != 0) return -1;
    return save_checkpoint_files(output_dir, m, tok, o, step, d, seed);
}

/* Loads every file of a checkpoint and checks that they agree; returns its step. */
static int check_checkpoint(const char *dir, long *step) {
    char path[4096];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    plm_tokenizer *tok = plm_tokenizer_load(path);
    if (!tok) return -1;
    plm_tokenizer_free(tok);
    plm_model *m = load_checkpoint_model(dir); /* config.json + checksummed model.safetensors */
    if (!m) return -1;
    size_t n = m->num_params;
    plm_model_free(m);
    uint64_t model_step, s, e, p;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (model_step_of(path, &model_step) != 0) return -1;
    snprintf(path, sizeof path, "%s/training_state.safetensors", dir);
    plm_safetensors st;
    if (plm_st_load(&st, path) != 0) return -1;
    int rc = verify_training_state(&st, path, n, model_step, &s, &e, &p);
    plm_st_free(&st);
    if (rc == 0) *step = (long)s;
    return rc;
}

char *plm_find_checkpoint(const char *dir, long *step) {
    char path[4096], first_err[1024] = "";
    int tried = 0;
    /* dir itself, if it holds a training state (a checkpoint, or a finished output dir) */
    long self_step = -1;
    snprintf(path, sizeof path, "%s/training_state.safetensors", dir);
    if (access(path, F_OK) == 0) {
        tried++;
        if (check_checkpoint(dir, &self_step) != 0) {
            self_step = -1;
            snprintf(first_err, sizeof first_err, "%s", plm_last_error());
        }
    }
    plm_checkpoint_entry *c;
    int n = plm_checkpoint_list(dir, &c);
    if (n < 0) return NULL;
    char *found = NULL;
    /* newest first; an incomplete one (a run of an older plm killed mid-save, a damaged disk)
     * is skipped with a warning, as HF would fail on it */
    for (int i = n - 1; i >= 0 && !found && c[i].step > self_step; i--) {
        long s = -1;
        tried++;
        bool ok = check_checkpoint(c[i].path, &s) == 0;
        if (ok && s != c[i].step) {
            plm_error("%s: training_state.safetensors is at step %ld, not %ld", c[i].path, s, c[i].step);
            ok = false;
        }
        if (ok) {
            found = plm_strdup(c[i].path);
            *step = s;
            break;
        }
        if (!first_err[0]) snprintf(first_err, sizeof first_err, "%s", plm_last_error());
        fprintf(stderr, "plm: warning: skipping incomplete checkpoint %s: %s\n", c[i].path, plm_last_error());
    }
    free(c);
    if (!found && self_step >= 0) {
        found = plm_strdup(dir);
        *step = self_step;
    }
    if (!found) {
        if (tried == 0)
            plm_error("%s: no checkpoint to resume from (no training_state.safetensors, no checkpoint-N directory)",
                      dir);
        else if (tried == 1)
            plm_error("%s", first_err);
        else
            plm_error("%s: no complete checkpoint to resume from (newest: %s)", dir, first_err);
    }
    return found;
}

int plm_truncate_metrics(const char *path, long step) {
    if (access(path, F_OK) != 0) return 0;
    size_t len;
    char *buf = plm_read_file(path, &len);
    if (!buf) return -1;
    char *out = plm_malloc(len + 1);
    size_t n = 0;
    for (char *line = buf; line < buf + len;) {
        char *nl = memchr(line, '\n', (size_t)(buf + len - line));
        if (!nl) break;
        long s;
        if (sscanf(line, "{\"step\": %ld", &s) != 1 || s <= step) {
            memcpy(out + n, line, (size_t)(nl + 1 - line));
            n += (size_t)(nl + 1 - line);
        }
        line = nl + 1;
    }
    int rc = n == len ? 0 : plm_write_file_atomic(path, out, n);
    free(out);
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------- divergence */

/* Name of the first tensor with a NaN or Inf in base (m->params or m->grads), or NULL. */
/* The name of the first tensor of base (params or grads) holding a NaN or inf, or NULL. */
static const char *first_nonfinite_tensor(const plm_model *m, const float *base) {
    int i = plm_first_nonfinite(m, base);
    return i < 0 ? NULL : m->tensors[i].name;
}

/* PLM_TEST_NAN_GRAD_AT_STEP=<n> puts a NaN into one gradient at step n, so that
 * tests/checkpoint_kill.sh can make a run diverge at a known step (a real blow-up with a
 * huge learning rate also works, but where it first shows depends on the kernels).
 * Testing only. */
static void test_inject_nan(plm_model *m, long step) {
    const char *s = getenv("PLM_TEST_NAN_GRAD_AT_STEP");
    if (s && strtol(s, NULL, 10) == step && m->num_tensors > 0) m->grads[m->tensors[m->num_tensors / 2].offset] = NAN;
}

/* One line naming the step and the first non-finite tensor. The step is never saved, so the
 * newest checkpoint stays the last good state. */
static void set_divergence_error(const plm_model *m, long step, double loss, double norm, bool updated) {
    const char *hint = "the last checkpoint is intact; try a lower learning rate";
    const char *t = updated ? first_nonfinite_tensor(m, m->params) : first_nonfinite_tensor(m, m->grads);
    if (updated)
        plm_error("training diverged at step %ld: parameter %s is not finite after the update (loss %g, "
                  "grad norm %g); %s",
                  step, t ? t : "?", loss, norm, hint);
    else if (t)
        plm_error("training diverged at step %ld: gradient of %s is not finite (loss %g, grad norm %g); %s", step, t,
                  loss, norm, hint);
    else
        plm_error("training diverged at step %ld: the loss is not finite (loss %g, every gradient finite); %s", step,
                  loss, hint);
}

/* ---------------------------------------------------------------- loop */

/* Data parallelism (dist.h): passes over n windows of the global data order that other
 * ranks take, rolling over epochs exactly as plm_dataloader_next does. */
static void skip_windows(plm_dataloader *d, size_t n) {
    while (n > 0) {
        if (d->pos >= d->num_windows) plm_dataloader_seek(d, d->epoch + 1, 0);
        size_t k = PLM_MIN(n, d->num_windows - d->pos);
        d->pos += k;
        n -= k;
    }
}

/* Checkpoint on rank 0 (the whole optimizer state is gathered there first under ZeRO-1;
 * every rank takes part). */
static int save_checkpoint_dist(plm_grad_sync *gs, const char *output_dir, long step, const plm_model *m,
                                const plm_tokenizer *tok, const plm_adamw *o, const plm_dataloader *d, uint64_t seed,
                                bool final) {
    plm_adamw full = {0};
    const plm_adamw *so = plm_grad_sync_full_state(gs, o, &full);
    int rc = 0;
    if (so)
        rc = final ? save_final_model(output_dir, m, tok, so, step, d, seed)
                   : save_checkpoint_dir(output_dir, step, m, tok, so, d, seed);
    if (full.m) plm_adamw_free(&full);
    return rc;
}

static const char *objective_name(plm_objective o) {
    return o == PLM_OBJ_CLM       ? "clm"
           : o == PLM_OBJ_MLM     ? "mlm"
           : o == PLM_OBJ_ELECTRA ? "electra"
           : o == PLM_OBJ_T5      ? "t5"
                                  : "clm+mlm";
}

/* The most frequent non-special token of the stream: the context-free baseline's answer. */
static int32_t majority_token(const plm_token_stream *s, const plm_vocab_info *v) {
    long *count = plm_calloc((size_t)v->vocab_size, sizeof(long));
    int32_t buf[4096]; /* in blocks: a sharded stream lives in its mmapped files */
    for (size_t i = 0; i < s->n; i += PLM_ARRAY_LEN(buf)) {
        size_t n = PLM_MIN(PLM_ARRAY_LEN(buf), s->n - i);
        plm_stream_read(s, i, n, buf, NULL);
        for (size_t k = 0; k < n; k++)
            if (buf[k] >= 0 && buf[k] < v->vocab_size) count[buf[k]]++;
    }
    int32_t best = -1;
    for (int k = 0; k < v->vocab_size; k++)
        if (!v->is_special[k] && (best < 0 || count[k] > count[best])) best = k;
    free(count);
    return best;
}

int plm_train(plm_model *m, const plm_tokenizer *tok, const plm_token_stream *train, const plm_token_stream *valid,
              const plm_train_args *a) {
    int B = a->per_device_train_batch_size, T = a->max_seq_length, accum = a->gradient_accumulation_steps;
    bool electra = a->objective == PLM_OBJ_ELECTRA, two_phase = a->objective == PLM_OBJ_CLM_MLM;
    /* the two-phase schedule switches from CLM to MLM before this step (0-based) */
    long switch_step = two_phase ? lround(a->clm_fraction * (double)a->max_steps) : -1;
    /* max_steps 0 writes the initialised model: the from-scratch baseline of a fine-tuning
     * comparison (HF's from_config) */
    if (B <= 0 || T <= 0 || accum <= 0 || a->max_steps < 0) {
        plm_error("batch size, sequence length and accumulation must be positive, max_steps not negative");
        return PLM_EXIT_USAGE;
    }
    if (two_phase && !(a->clm_fraction >= 0.0 && a->clm_fraction <= 1.0)) {
        plm_error("clm_fraction must be in [0, 1]");
        return PLM_EXIT_USAGE;
    }
    if (electra != plm_electra_is_joint(m)) {
        plm_error(electra ? "--objective electra needs a generator + discriminator model"
                          : "an ELECTRA generator + discriminator trains only with --objective electra");
        return PLM_EXIT_USAGE;
    }
    if (T > m->config.max_position_embeddings) {
        plm_error("max_seq_length %d exceeds the model's max_position_embeddings %d", T,
                  m->config.max_position_embeddings);
        return PLM_EXIT_USAGE;
    }
    bool t5 = a->objective == PLM_OBJ_T5;
    if (t5 != (m->config.arch == PLM_ARCH_T5)) {
        plm_error("--objective t5 needs a T5 model (model_type t5) and a T5 model needs --objective t5");
        return PLM_EXIT_USAGE;
    }
    if (plm_model_reserve(m, B, T) != 0) return PLM_EXIT_USAGE;
    /* data parallelism: rank r of N runs global micro-batches r*accum .. r*accum+accum-1 of
     * the K = N*accum of each step (dist.h); rank 0 alone writes files */
    int rank = plm_dist_rank(), nranks = plm_dist_size(), K = nranks * accum;
    bool root = rank == 0;
    /* the ranks' sums only mean something if they all run the same settings */
    {
        double same[] = {B,
                         T,
                         accum,
                         (double)a->max_steps,
                         (double)m->num_params,
                         a->objective,
                         a->opt.learning_rate,
                         a->dist.deterministic,
                         a->dist.zero1,
                         a->dist.no_overlap,
                         a->dist.bucket_cap_mb};
        uint64_t h = plm_fnv1a(&a->seed, sizeof a->seed, plm_fnv1a(same, sizeof same, 0));
        if (plm_dist_check_same(h, "training settings") != 0) return PLM_EXIT_USAGE;
    }
    if (root && plm_mkdirs(a->output_dir) != 0) return PLM_EXIT_FAIL;
    if (root) plm_checkpoint_remove_stale(a->output_dir);
    plm_vocab_info vocab;
    plm_vocab_info_init(&vocab, tok);
    if (vocab.vocab_size > m->config.vocab_size) {
        plm_error("tokenizer has %d tokens but the model's vocab_size is %d", vocab.vocab_size, m->config.vocab_size);
        plm_vocab_info_free(&vocab);
        return PLM_EXIT_INPUT;
    }
    /* loaders: dl for the (first) phase, dl2 for the MLM phase of clm+mlm; validation alike */
    plm_dataloader dl, dl2, vdl, vdl2;
    bool have_dl2 = false, have_valid = false, have_vdl2 = false;
    plm_objective first = two_phase ? PLM_OBJ_CLM : electra ? PLM_OBJ_MLM : a->objective;
    int rc = PLM_EXIT_INPUT;
    batch_buf bb = {0};
    plm_grad_sync *gs = plm_grad_sync_create(m, accum, &a->dist);
    double *recs = NULL;
    plm_adamw opt;
    plm_grad_sync_adamw_init(gs, &opt);
    plm_electra_state est;
    plm_electra_state_init(&est, electra ? B : 1, electra ? T : 1);
    FILE *log = NULL;
    int32_t majority = majority_token(train, &vocab);
    if (plm_dataloader_init(&dl, train, first, &a->obj, &vocab, T, a->seed, true) != 0) goto out_nodl;
    batch_alloc(&bb, B, T, dl.t5_targets_length);
    bb.pairs = a->objective == PLM_OBJ_MLM && a->obj.pair != PLM_PAIR_NONE;
    if (bb.pairs && plm_model_head(m, PLM_HEAD_NSP) < 0) {
        plm_error("--objective mlm+nsp/mlm+sop needs a model with the NSP head (BertForPreTraining)");
        goto out;
    }
    if (two_phase) {
        if (plm_dataloader_init(&dl2, train, PLM_OBJ_MLM, &a->obj, &vocab, T, a->seed ^ 0x3a5eULL, true) != 0) goto out;
        have_dl2 = true;
    }
    if (valid && valid->n > 0) {
        /* Shuffled with a fixed seed: the eval_batches x B windows of an evaluation are
         * spread over the whole validation set (in order they would all come from its
         * first documents: NSP's random B segments then all came from one other
         * document), and they are the same windows at every evaluation. */
        if (plm_dataloader_init(&vdl, valid, first, &a->obj, &vocab, T, a->seed ^ 0x7a11dULL, true) != 0) goto out;
        have_valid = true;
        if (two_phase) {
            if (plm_dataloader_init(&vdl2, valid, PLM_OBJ_MLM, &a->obj, &vocab, T, a->seed ^ 0x7a11dULL, true) != 0)
                goto out;
            have_vdl2 = true;
        }
    }
    rc = PLM_EXIT_FAIL;
    long step = 0;
    if (a->resume_from_checkpoint) {
        uint64_t epoch;
        size_t pos;
        rc = PLM_EXIT_INPUT; /* a bad checkpoint is bad input */
        if (load_training_state(a->resume_from_checkpoint, m, &opt, &step, &epoch, &pos) != 0) goto out;
        /* a checkpoint holds the data position of the loader of its next step */
        plm_dataloader *d = two_phase && step >= switch_step ? &dl2 : &dl;
        plm_dataloader_seek(d, epoch, pos); /* an epoch's window count can vary (sentence pairs) */
        if (pos > d->num_windows) {
            plm_error("%s: data position %zu is beyond this corpus (%zu windows): a different corpus?",
                      a->resume_from_checkpoint, pos, d->num_windows);
            goto out;
        }
        /* AdamW's bias correction restarted at the switch when the optimizer was reset */
        if (two_phase && a->reset_optimizer_at_switch && step >= switch_step) opt.step = step - switch_step;
        /* step == max_steps: a finished run (or one killed while saving its final model); the
         * loop is skipped and the final model written again. */
        if (step > a->max_steps) {
            plm_error("%s: checkpoint is at step %ld, max_steps is %ld", a->resume_from_checkpoint, step, a->max_steps);
            goto out;
        }
        rc = PLM_EXIT_FAIL;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/metrics.jsonl", a->output_dir);
    if (root && a->resume_from_checkpoint && plm_truncate_metrics(path, step) != 0) goto out;
    if (root) log = fopen(path, a->resume_from_checkpoint ? "a" : "w");
    if (root && !log) {
        plm_error("%s: %s", path, strerror(errno));
        goto out;
    }
    bool quiet = a->quiet || !root;
    /* per global micro-batch: loss, the heads' losses, predicted tokens; summed in global
     * micro-batch order, so every world size adds the same numbers the same way */
    enum { NREC = 2 + PLM_MAX_HEADS };
    recs = plm_malloc((size_t)K * NREC * sizeof(double));
    char title[64];
    snprintf(title, sizeof title, "pretrain %s", objective_name(a->objective));
    plm_progress pb;
    plm_progress_start(&pb, title, a->max_steps, step);
    double t_start = plm_now(), loss_ema = NAN;
    char status[160] = "";
    for (; step < a->max_steps; step++) {
        plm_objective phase = plm_train_phase(a, step);
        bool causal = phase == PLM_OBJ_CLM;
        plm_dataloader *d = two_phase && step >= switch_step ? &dl2 : &dl;
        if (two_phase && step == switch_step && step > 0) {
            /* the switch: same weights, bidirectional attention, MLM batches; the learning-rate
             * schedule runs on; AdamW's state too unless reset. Logged with the first MLM step. */
            if (a->reset_optimizer_at_switch) {
                memset(opt.m, 0, opt.n * sizeof(float));
                memset(opt.v, 0, opt.n * sizeof(float));
                opt.step = 0;
            }
            if (log)
                fprintf(log,
                        "{\"step\": %ld, \"event\": \"phase_switch\", \"from\": \"clm\", \"to\": \"mlm\", "
                        "\"reset_optimizer\": %s}\n",
                        step + 1, a->reset_optimizer_at_switch ? "true" : "false");
            /* one line even with --quiet: it changes what the losses mean */
            if (!quiet && pb.tty) fprintf(stderr, "\n");
            if (root)
                fprintf(stderr, "step %ld: phase switch: CLM (causal attention) -> MLM (bidirectional)%s\n", step,
                        a->reset_optimizer_at_switch ? ", optimizer state reset" : "");
        }
        double flops = (t5 ? plm_model_flops_t5(&m->config, B, T, dl.t5_targets_length)
                           : plm_model_flops(&m->config, B, T,
                                             phase == PLM_OBJ_CLM ? B * T : (int)(B * T * a->obj.mlm_probability))) *
                       K;
        double t0 = plm_now();
        plm_model_zero_grad(m);
        double loss = 0.0, head_loss[PLM_MAX_HEADS] = {0};
        long predicted = 0;
        skip_windows(d, (size_t)rank * accum * B);
        for (int micro = 0; micro < accum; micro++) {
            uint64_t j = (uint64_t)rank * accum + (uint64_t)micro; /* global micro-batch */
            uint64_t dseed = plm_hash_combine(a->seed, (uint64_t)step * (uint64_t)K + j);
            plm_grad_sync_micro_begin(gs, micro);
            int run_rc;
            if (electra) {
                plm_dataloader_next(d, B, bb.ids, bb.type_ids, bb.mask, bb.labels);
                plm_batch b = as_batch(&bb, causal, true, dseed);
                run_rc = plm_electra_step(m, &est, &b, plm_hash_combine(dseed, 0x5a3b1e), true, 1.0f / (float)K);
            } else {
                run_rc = run_batch(m, d, &bb, causal, true, dseed, true, 1.0f / (float)K);
            }
            if (run_rc != 0) {
                rc = PLM_EXIT_INPUT;
                goto out;
            }
            plm_grad_sync_micro_end(gs, micro);
            /* the run's loss is the weighted sum of its heads' mean losses */
            int lm = electra ? 1 : 0; /* ELECTRA: the generator's LM head counts the predicted tokens */
            double *r = recs + (size_t)(rank * accum + micro) * NREC;
            memset(r, 0, NREC * sizeof(double));
            if (m->heads[lm].result.count) r[0] = m->loss;
            for (int h = 0; h < m->num_heads; h++)
                if (m->heads[h].result.count) r[1 + h] = m->heads[h].loss;
            r[NREC - 1] = (double)m->heads[lm].result.count;
        }
        skip_windows(d, (size_t)(nranks - 1 - rank) * accum * B);
        plm_dist_allgather_f64(recs, accum * NREC);
        for (int jj = 0; jj < K; jj++) {
            const double *r = recs + (size_t)jj * NREC;
            loss += r[0] / K;
            for (int h = 0; h < m->num_heads; h++) head_loss[h] += r[1 + h] / K;
            predicted += (long)r[NREC - 1];
        }
        plm_grad_sync_finish(gs);
        /* Divergence: a non-finite loss or gradient stops the run before the update, and
         * parameters are checked after it, so NaN weights never reach a checkpoint (nor, where
         * avoidable, the next forward pass). Exit code 1; checkpoints so far stay intact. */
        test_inject_nan(m, step + 1);
        double norm = plm_grad_sync_clip(gs, a->max_grad_norm);
        if (!isfinite(loss) || !isfinite(norm)) {
            set_divergence_error(m, step + 1, loss, norm, false);
            goto out;
        }
        float lr = a->lr_scheduler_type == PLM_SCHED_WSD
                       ? plm_lr_wsd(a->opt.learning_rate, step, a->warmup_steps, a->max_steps, a->decay_fraction,
                                    a->decay_type)
                       : plm_lr_at(a->lr_scheduler_type, a->opt.learning_rate, step, a->warmup_steps, a->max_steps);
        plm_grad_sync_adamw_step(gs, &opt, &a->opt, lr);
        if (first_nonfinite_tensor(m, m->params)) {
            set_divergence_error(m, step + 1, loss, norm, true);
            goto out;
        }
        double dt = plm_now() - t0;
        double tps = (double)B * T * K / dt;
        loss_ema = isnan(loss_ema) ? loss : 0.9 * loss_ema + 0.1 * loss;
        long done = step + 1;
        if (root && (done % a->logging_steps == 0 || done == a->max_steps || done == 1)) {
            fprintf(log,
                    "{\"step\": %ld, \"loss\": %.17g, \"learning_rate\": %.9g, \"grad_norm\": %.9g, "
                    "\"predicted_tokens\": %ld, \"tokens_per_s\": %.1f, \"gflops\": %.2f, \"elapsed_s\": %.3f",
                    done, loss, lr, norm, predicted, tps, flops / dt * 1e-9, plm_now() - t_start);
            if (two_phase) fprintf(log, ", \"objective\": \"%s\"", objective_name(phase));
            /* a run of several heads (MLM + NSP, ELECTRA) logs each one's loss too */
            for (int h = 0; m->num_heads > 1 && h < m->num_heads; h++)
                fprintf(log, ", \"loss_%s\": %.17g", head_kind_name(m->heads[h].spec.kind), head_loss[h]);
            if (electra)
                fprintf(log, ", \"generator_accuracy\": %.6f, \"discriminator_accuracy\": %.6f, \"replaced\": %ld",
                        est.gen.count ? (double)est.gen.correct / est.gen.count : NAN,
                        est.disc.count ? (double)est.disc.correct / est.disc.count : NAN, est.replaced);
            fprintf(log, "}\n");
        }
        snprintf(status, sizeof status, "%s%sloss %.4f | lr %.2e | %.1fk tok/s", two_phase ? objective_name(phase) : "",
                 two_phase ? " | " : "", loss_ema, lr, tps / 1000.0);
        bool eval_now =
            root && have_valid && ((a->eval_steps > 0 && done % a->eval_steps == 0) || done == a->max_steps);
        if (eval_now && electra) {
            evaluate_electra(m, &vdl, B, a->eval_batches, log, done, !quiet && !pb.tty);
        } else if (eval_now) {
            /* the objective of the step just done */
            plm_dataloader *v = two_phase && phase == PLM_OBJ_MLM ? &vdl2 : &vdl;
            plm_eval_result e = plm_evaluate_ex(m, v, B, a->eval_batches, causal, majority);
            fprintf(log,
                    "{\"step\": %ld, \"eval_loss\": %.17g, \"eval_accuracy\": %.6f, \"eval_perplexity\": %.6g, "
                    "\"eval_tokens\": %ld, \"eval_objective\": \"%s\", \"eval_%s_accuracy\": %.6f, "
                    "\"eval_majority_token_accuracy\": %.6f",
                    done, e.loss, e.accuracy, exp(e.loss), e.tokens, objective_name(phase),
                    phase == PLM_OBJ_MLM ? "masked" : "next_token", e.accuracy, e.majority_accuracy);
            if (phase == PLM_OBJ_MLM)
                fprintf(log,
                        ", \"eval_mask_token_accuracy\": %.6f, \"eval_mask_token_majority_accuracy\": %.6f, "
                        "\"eval_mask_tokens\": %ld",
                        e.mask_accuracy, e.mask_majority_accuracy, e.mask_tokens);
            if (bb.pairs) /* NSP / SOP accuracy on the validation pairs */
                fprintf(log, ", \"eval_%s_accuracy\": %.6f, \"eval_%s_sequences\": %ld",
                        a->obj.pair == PLM_PAIR_SOP ? "sop" : "nsp", e.seq_accuracy,
                        a->obj.pair == PLM_PAIR_SOP ? "sop" : "nsp", e.sequences);
            /* T5: the loss of the targets (sentinels, corrupted spans, EOS) is the span-corruption loss */
            if (t5) fprintf(log, ", \"eval_span_corruption_loss\": %.17g", e.loss);
            fprintf(log, "}\n");
            if (!quiet && !pb.tty)
                fprintf(stderr, "step %ld: eval_loss %.4f, eval_accuracy %.4f (most frequent token: %.4f)\n", done,
                        e.loss, e.accuracy, e.majority_accuracy);
        }
        if (log) fflush(log);
        if (a->save_steps > 0 && done % a->save_steps == 0 && done < a->max_steps) {
            /* the log is on disk before a checkpoint that a resumed run appends to it from */
            if (log) fsync(fileno(log));
            plm_dataloader *next = two_phase && done >= switch_step ? &dl2 : &dl;
            if (save_checkpoint_dist(gs, a->output_dir, done, m, tok, &opt, next, a->seed, false) != 0) goto out;
            if (root) plm_checkpoint_rotate(a->output_dir, a->save_total_limit, done);
        }
        if (!quiet) plm_progress_update(&pb, done, status);
    }
    if (!quiet) plm_progress_finish(&pb, status);
    if (log) fsync(fileno(log));
    if (save_checkpoint_dist(gs, a->output_dir, step, m, tok, &opt, two_phase && step >= switch_step ? &dl2 : &dl,
                             a->seed, true) != 0)
        goto out;
    if (!root) {
        rc = 0;
        goto out;
    }
    fclose(log);
    log = NULL;
    char svg[4096];
    snprintf(path, sizeof path, "%s/metrics.jsonl", a->output_dir);
    snprintf(svg, sizeof svg, "%s/loss.svg", a->output_dir);
    snprintf(title, sizeof title, "%s loss", objective_name(a->objective));
    plm_plot_metrics(path, svg, title);
    rc = 0;
out:
    if (have_vdl2) plm_dataloader_free(&vdl2);
    if (have_valid) plm_dataloader_free(&vdl);
    if (have_dl2) plm_dataloader_free(&dl2);
    plm_dataloader_free(&dl);
out_nodl:
    if (log) fclose(log);
    plm_electra_state_free(&est);
    plm_adamw_free(&opt);
    plm_grad_sync_free(gs);
    free(recs);
    batch_free(&bb);
    plm_vocab_info_free(&vocab);
    return rc;
}
