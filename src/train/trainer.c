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
#include "core/progress.h"
#include "core/rng.h"
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
    a->max_grad_norm = 1.0f;
    a->logging_steps = 10;
    a->eval_steps = 200;
    a->eval_batches = 20;
    a->save_steps = 0;
    a->seed = 42;
}

/* ---------------------------------------------------------------- batches */

typedef struct {
    int B, T;
    int32_t *ids, *type_ids, *labels, *seq_labels;
    uint8_t *mask;
    bool pairs; /* seq_labels carry NSP/SOP labels */
} batch_buf;

static void batch_alloc(batch_buf *b, int B, int T) {
    size_t n = (size_t)B * T;
    b->B = B;
    b->T = T;
    b->ids = plm_malloc(n * sizeof(int32_t));
    b->type_ids = plm_malloc(n * sizeof(int32_t));
    b->labels = plm_malloc(n * sizeof(int32_t));
    b->seq_labels = plm_malloc((size_t)B * sizeof(int32_t));
    b->mask = plm_malloc(n);
    b->pairs = false;
}

static void batch_free(batch_buf *b) {
    free(b->ids);
    free(b->type_ids);
    free(b->labels);
    free(b->seq_labels);
    free(b->mask);
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

plm_eval_result plm_evaluate(plm_model *m, plm_dataloader *d, int batch_size, int max_batches, bool causal) {
    plm_dataloader_seek(d, 0, 0); /* same batches and masks at every evaluation */
    batch_buf bb;
    int nb = (int)PLM_MIN((size_t)max_batches, (d->num_windows + (size_t)batch_size - 1) / (size_t)batch_size);
    batch_alloc(&bb, batch_size, d->T);
    bb.pairs = d->objective == PLM_OBJ_MLM && d->opts.pair != PLM_PAIR_NONE;
    int nsp = bb.pairs ? plm_model_head(m, PLM_HEAD_NSP) : -1;
    double loss = 0.0;
    long count = 0, correct = 0, seqs = 0, seq_correct = 0;
    for (int i = 0; i < nb; i++) {
        int B = (int)PLM_MIN((size_t)batch_size, d->num_windows - (size_t)i * batch_size);
        bb.B = B;
        plm_dataloader_next_seq(d, B, bb.ids, bb.type_ids, bb.mask, bb.labels, bb.seq_labels);
        plm_batch b = as_batch(&bb, causal, false, 0);
        plm_ce_result r = plm_model_forward(m, &b, false, 1.0f);
        loss += r.loss_sum;
        count += r.count;
        correct += r.correct;
        if (nsp >= 0) {
            seqs += m->heads[nsp].result.count;
            seq_correct += m->heads[nsp].result.correct;
        }
    }
    batch_free(&bb);
    plm_eval_result res = {count ? loss / (double)count : NAN, count ? (double)correct / (double)count : NAN, count,
                           seqs ? (double)seq_correct / (double)seqs : NAN, seqs};
    return res;
}

/* ---------------------------------------------------------------- checkpoints */

static int save_training_state(const char *path, const plm_adamw *o, long step, const plm_dataloader *d,
                               uint64_t seed) {
    plm_st_writer w;
    plm_st_writer_init(&w);
    int64_t shape[1] = {(int64_t)o->n};
    plm_st_add(&w, "exp_avg", PLM_DT_F32, 1, shape, o->m);
    plm_st_add(&w, "exp_avg_sq", PLM_DT_F32, 1, shape, o->v);
    uint64_t sum = plm_fnv1a(o->m, o->n * sizeof(float), 0);
    sum = plm_fnv1a(o->v, o->n * sizeof(float), sum);
    char buf[5][32];
    snprintf(buf[0], 32, "%ld", step);
    snprintf(buf[1], 32, "%" PRIu64, d->epoch);
    snprintf(buf[2], 32, "%zu", d->pos);
    snprintf(buf[3], 32, "%" PRIu64, seed);
    snprintf(buf[4], 32, "%016" PRIx64, sum);
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
    uint64_t sum = plm_fnv1a(tm->data, tm->nbytes, 0);
    sum = plm_fnv1a(tv->data, tv->nbytes, sum);
    char want[32];
    snprintf(want, sizeof want, "%016" PRIx64, sum);
    const char *got = plm_st_meta(st, "plm_checksum");
    if (!got || strcmp(got, want) != 0) {
        plm_error("%s: checksum mismatch (file corrupted)", path);
        return -1;
    }
    return 0;
}

static int load_training_state(const char *dir, plm_model *m, plm_adamw *o, long *step, uint64_t *epoch, size_t *pos) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (plm_model_load_weights(m, path) != 0) return -1;
    uint64_t model_step = 0;
    if (model_step_of(path, &model_step) != 0) return -1;
    snprintf(path, sizeof path, "%s/training_state.safetensors", dir);
    plm_safetensors st;
    if (plm_st_load(&st, path) != 0) return -1;
    uint64_t s, e, p;
    int rc = verify_training_state(&st, path, o->n, model_step, &s, &e, &p);
    if (rc == 0) {
        memcpy(o->m, plm_st_find(&st, "exp_avg")->data, o->n * sizeof(float));
        memcpy(o->v, plm_st_find(&st, "exp_avg_sq")->data, o->n * sizeof(float));
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
    if (plm_model_save(m, dir, meta, 1) != 0) return -1;
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
    plm_model *m = plm_model_load(dir); /* config.json + checksummed model.safetensors */
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

int plm_train(plm_model *m, const plm_tokenizer *tok, const plm_token_stream *train, const plm_token_stream *valid,
              const plm_train_args *a) {
    int B = a->per_device_train_batch_size, T = a->max_seq_length, accum = a->gradient_accumulation_steps;
    bool causal = a->objective == PLM_OBJ_CLM;
    /* max_steps 0 writes the initialised model: the from-scratch baseline of a fine-tuning
     * comparison (HF's from_config) */
    if (B <= 0 || T <= 0 || accum <= 0 || a->max_steps < 0) {
        plm_error("batch size, sequence length and accumulation must be positive, max_steps not negative");
        return PLM_EXIT_USAGE;
    }
    if (T > m->config.max_position_embeddings) {
        plm_error("max_seq_length %d exceeds the model's max_position_embeddings %d", T,
                  m->config.max_position_embeddings);
        return PLM_EXIT_USAGE;
    }
    if (plm_model_reserve(m, B, T) != 0) return PLM_EXIT_USAGE;
    if (plm_mkdirs(a->output_dir) != 0) return PLM_EXIT_FAIL;
    plm_checkpoint_remove_stale(a->output_dir);
    plm_vocab_info vocab;
    plm_vocab_info_init(&vocab, tok);
    if (vocab.vocab_size > m->config.vocab_size) {
        plm_error("tokenizer has %d tokens but the model's vocab_size is %d", vocab.vocab_size, m->config.vocab_size);
        plm_vocab_info_free(&vocab);
        return PLM_EXIT_INPUT;
    }
    plm_dataloader dl, vdl;
    bool have_valid = false;
    int rc = PLM_EXIT_INPUT;
    batch_buf bb;
    batch_alloc(&bb, B, T);
    bb.pairs = a->objective == PLM_OBJ_MLM && a->obj.pair != PLM_PAIR_NONE;
    plm_adamw opt;
    plm_adamw_init(&opt, m->num_params);
    FILE *log = NULL;
    if (bb.pairs && plm_model_head(m, PLM_HEAD_NSP) < 0) {
        plm_error("--objective mlm+nsp/mlm+sop needs a model with the NSP head (BertForPreTraining)");
        goto out_nodl;
    }
    if (plm_dataloader_init(&dl, train, a->objective, &a->obj, &vocab, T, a->seed, true) != 0) goto out_nodl;
    if (valid && valid->n > 0) {
        if (plm_dataloader_init(&vdl, valid, a->objective, &a->obj, &vocab, T, a->seed ^ 0x7a11dULL, false) != 0)
            goto out;
        have_valid = true;
    }
    rc = PLM_EXIT_FAIL;
    long step = 0;
    if (a->resume_from_checkpoint) {
        uint64_t epoch;
        size_t pos;
        rc = PLM_EXIT_INPUT; /* a bad checkpoint is bad input */
        if (load_training_state(a->resume_from_checkpoint, m, &opt, &step, &epoch, &pos) != 0) goto out;
        plm_dataloader_seek(&dl, epoch, pos); /* an epoch's window count can vary (sentence pairs) */
        if (pos > dl.num_windows) {
            plm_error("%s: data position %zu is beyond this corpus (%zu windows): a different corpus?",
                      a->resume_from_checkpoint, pos, dl.num_windows);
            goto out;
        }
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
    if (a->resume_from_checkpoint && plm_truncate_metrics(path, step) != 0) goto out;
    log = fopen(path, a->resume_from_checkpoint ? "a" : "w");
    if (!log) {
        plm_error("%s: %s", path, strerror(errno));
        goto out;
    }
    double flops =
        plm_model_flops(&m->config, B, T, a->objective == PLM_OBJ_MLM ? (int)(B * T * a->obj.mlm_probability) : B * T) *
        accum;
    plm_progress pb;
    plm_progress_start(&pb, a->objective == PLM_OBJ_MLM ? "pretrain mlm" : "pretrain clm", a->max_steps, step);
    double t_start = plm_now(), loss_ema = NAN;
    char status[160] = "";
    for (; step < a->max_steps; step++) {
        double t0 = plm_now();
        plm_model_zero_grad(m);
        double loss = 0.0, head_loss[PLM_MAX_HEADS] = {0};
        long predicted = 0;
        for (int micro = 0; micro < accum; micro++) {
            plm_dataloader_next_seq(&dl, B, bb.ids, bb.type_ids, bb.mask, bb.labels, bb.seq_labels);
            uint64_t dseed = plm_hash_combine(a->seed, (uint64_t)step * (uint64_t)accum + (uint64_t)micro);
            plm_batch b = as_batch(&bb, causal, true, dseed);
            if (plm_model_run(m, 0, &b, true, 1.0f / (float)accum) != 0) {
                rc = PLM_EXIT_INPUT;
                goto out;
            }
            /* the run's loss is the weighted sum of its heads' mean losses */
            if (m->heads[0].result.count) loss += m->loss / accum;
            for (int h = 0; h < m->num_heads; h++)
                if (m->heads[h].result.count) head_loss[h] += m->heads[h].loss / accum;
            predicted += m->heads[0].result.count;
        }
        /* Divergence: a non-finite loss or gradient stops the run before the update, and
         * parameters are checked after it, so NaN weights never reach a checkpoint (nor, where
         * avoidable, the next forward pass). Exit code 1; checkpoints so far stay intact. */
        test_inject_nan(m, step + 1);
        double norm = plm_clip_grad_norm(m, a->max_grad_norm);
        if (!isfinite(loss) || !isfinite(norm)) {
            set_divergence_error(m, step + 1, loss, norm, false);
            goto out;
        }
        float lr = plm_lr_at(a->lr_scheduler_type, a->opt.learning_rate, step, a->warmup_steps, a->max_steps);
        plm_adamw_step(&opt, m, &a->opt, lr);
        if (first_nonfinite_tensor(m, m->params)) {
            set_divergence_error(m, step + 1, loss, norm, true);
            goto out;
        }
        double dt = plm_now() - t0;
        double tps = (double)B * T * accum / dt;
        loss_ema = isnan(loss_ema) ? loss : 0.9 * loss_ema + 0.1 * loss;
        long done = step + 1;
        if (done % a->logging_steps == 0 || done == a->max_steps || done == 1) {
            fprintf(log,
                    "{\"step\": %ld, \"loss\": %.17g, \"learning_rate\": %.9g, \"grad_norm\": %.9g, "
                    "\"predicted_tokens\": %ld, \"tokens_per_s\": %.1f, \"gflops\": %.2f, \"elapsed_s\": %.3f",
                    done, loss, lr, norm, predicted, tps, flops / dt * 1e-9, plm_now() - t_start);
            /* a run of several heads (MLM + NSP, ELECTRA) logs each one's loss too */
            for (int h = 0; m->num_heads > 1 && h < m->num_heads; h++)
                fprintf(log, ", \"loss_%s\": %.17g", head_kind_name(m->heads[h].spec.kind), head_loss[h]);
            fprintf(log, "}\n");
        }
        snprintf(status, sizeof status, "loss %.4f | lr %.2e | %.1fk tok/s", loss_ema, lr, tps / 1000.0);
        bool eval_now = have_valid && ((a->eval_steps > 0 && done % a->eval_steps == 0) || done == a->max_steps);
        if (eval_now) {
            plm_eval_result e = plm_evaluate(m, &vdl, B, a->eval_batches, causal);
            fprintf(log,
                    "{\"step\": %ld, \"eval_loss\": %.17g, \"eval_accuracy\": %.6f, \"eval_perplexity\": %.6g, "
                    "\"eval_tokens\": %ld",
                    done, e.loss, e.accuracy, exp(e.loss), e.tokens);
            if (bb.pairs) /* NSP / SOP accuracy on the validation pairs */
                fprintf(log, ", \"eval_%s_accuracy\": %.6f, \"eval_%s_sequences\": %ld",
                        a->obj.pair == PLM_PAIR_SOP ? "sop" : "nsp", e.seq_accuracy,
                        a->obj.pair == PLM_PAIR_SOP ? "sop" : "nsp", e.sequences);
            fprintf(log, "}\n");
            if (!a->quiet && !pb.tty)
                fprintf(stderr, "step %ld: eval_loss %.4f, eval_accuracy %.4f\n", done, e.loss, e.accuracy);
        }
        fflush(log);
        if (a->save_steps > 0 && done % a->save_steps == 0 && done < a->max_steps) {
            /* the log is on disk before a checkpoint that a resumed run appends to it from */
            fsync(fileno(log));
            if (save_checkpoint_dir(a->output_dir, done, m, tok, &opt, &dl, a->seed) != 0) goto out;
            plm_checkpoint_rotate(a->output_dir, a->save_total_limit, done);
        }
        if (!a->quiet) plm_progress_update(&pb, done, status);
    }
    if (!a->quiet) plm_progress_finish(&pb, status);
    fsync(fileno(log));
    if (save_final_model(a->output_dir, m, tok, &opt, step, &dl, a->seed) != 0) goto out;
    fclose(log);
    log = NULL;
    char svg[4096];
    snprintf(path, sizeof path, "%s/metrics.jsonl", a->output_dir);
    snprintf(svg, sizeof svg, "%s/loss.svg", a->output_dir);
    plm_plot_metrics(path, svg, a->objective == PLM_OBJ_MLM ? "MLM loss" : "CLM loss");
    rc = 0;
out:
    if (have_valid) plm_dataloader_free(&vdl);
    plm_dataloader_free(&dl);
out_nodl:
    if (log) fclose(log);
    plm_adamw_free(&opt);
    batch_free(&bb);
    plm_vocab_info_free(&vocab);
    return rc;
}
