/* trainer.c - see trainer.h */
#include "trainer.h"

#include <errno.h>
#include <inttypes.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

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
    a->opt = (plm_adamw_hparams){
        .learning_rate = 5e-4f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f, .weight_decay = 0.01f};
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
    int32_t *ids, *type_ids, *labels;
    uint8_t *mask;
} batch_buf;

static void batch_alloc(batch_buf *b, int B, int T) {
    size_t n = (size_t)B * T;
    b->B = B;
    b->T = T;
    b->ids = plm_malloc(n * sizeof(int32_t));
    b->type_ids = plm_malloc(n * sizeof(int32_t));
    b->labels = plm_malloc(n * sizeof(int32_t));
    b->mask = plm_malloc(n);
}

static void batch_free(batch_buf *b) {
    free(b->ids);
    free(b->type_ids);
    free(b->labels);
    free(b->mask);
}

static plm_batch as_batch(const batch_buf *b, bool causal, bool training, uint64_t seed) {
    return (plm_batch){.B = b->B,
                       .T = b->T,
                       .input_ids = b->ids,
                       .token_type_ids = b->type_ids,
                       .attention_mask = b->mask,
                       .labels = b->labels,
                       .causal = causal,
                       .training = training,
                       .dropout_seed = seed};
}

plm_eval_result plm_evaluate(plm_model *m, plm_dataloader *d, int batch_size, int max_batches, bool causal) {
    plm_dataloader_seek(d, 0, 0); /* same batches and masks at every evaluation */
    batch_buf bb;
    int nb = (int)PLM_MIN((size_t)max_batches, (d->num_windows + (size_t)batch_size - 1) / (size_t)batch_size);
    batch_alloc(&bb, batch_size, d->T);
    double loss = 0.0;
    long count = 0, correct = 0;
    for (int i = 0; i < nb; i++) {
        int B = (int)PLM_MIN((size_t)batch_size, d->num_windows - (size_t)i * batch_size);
        bb.B = B;
        plm_dataloader_next(d, B, bb.ids, bb.type_ids, bb.mask, bb.labels);
        plm_batch b = as_batch(&bb, causal, false, 0);
        plm_ce_result r = plm_model_forward(m, &b, false, 1.0f);
        loss += r.loss_sum;
        count += r.count;
        correct += r.correct;
    }
    batch_free(&bb);
    plm_eval_result res = {count ? loss / (double)count : NAN, count ? (double)correct / (double)count : NAN, count};
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

static int load_training_state(const char *dir, plm_model *m, plm_adamw *o, long *step, uint64_t *epoch, size_t *pos) {
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (plm_model_load_weights(m, path) != 0) return -1;
    plm_safetensors mst;
    if (plm_st_load(&mst, path) != 0) return -1;
    uint64_t model_step = 0;
    int rc = meta_u64(&mst, "step", path, &model_step);
    plm_st_free(&mst);
    if (rc) return -1;
    snprintf(path, sizeof path, "%s/training_state.safetensors", dir);
    plm_safetensors st;
    if (plm_st_load(&st, path) != 0) return -1;
    rc = -1;
    const plm_st_tensor *tm = plm_st_find(&st, "exp_avg"), *tv = plm_st_find(&st, "exp_avg_sq");
    uint64_t s, e, p;
    if (!tm || !tv || tm->dtype != PLM_DT_F32 || tv->dtype != PLM_DT_F32 || tm->nbytes != o->n * sizeof(float) ||
        tv->nbytes != o->n * sizeof(float)) {
        plm_error("%s: optimizer state does not match the model (%zu parameters)", path, o->n);
        goto done;
    }
    if (meta_u64(&st, "step", path, &s) || meta_u64(&st, "data_epoch", path, &e) ||
        meta_u64(&st, "data_position", path, &p))
        goto done;
    if (s != model_step) {
        plm_error("%s: step %" PRIu64 " does not match model.safetensors (step %" PRIu64 ")", path, s, model_step);
        goto done;
    }
    uint64_t sum = plm_fnv1a(tm->data, tm->nbytes, 0);
    sum = plm_fnv1a(tv->data, tv->nbytes, sum);
    char want[32];
    snprintf(want, sizeof want, "%016" PRIx64, sum);
    const char *got = plm_st_meta(&st, "plm_checksum");
    if (!got || strcmp(got, want) != 0) {
        plm_error("%s: checksum mismatch (file corrupted)", path);
        goto done;
    }
    memcpy(o->m, tm->data, tm->nbytes);
    memcpy(o->v, tv->data, tv->nbytes);
    o->step = (long)s;
    *step = (long)s;
    *epoch = e;
    *pos = (size_t)p;
    rc = 0;
done:
    plm_st_free(&st);
    return rc;
}

static int save_checkpoint(const char *dir, const plm_model *m, const plm_tokenizer *tok, const plm_adamw *o, long step,
                           const plm_dataloader *d, uint64_t seed, bool with_state) {
    char sstep[32], path[4096];
    snprintf(sstep, sizeof sstep, "%ld", step);
    const char *meta[] = {"step", sstep};
    if (plm_model_save(m, dir, meta, 1) != 0) return -1;
    if (tok) {
        snprintf(path, sizeof path, "%s/tokenizer.json", dir);
        if (plm_tokenizer_save(tok, path) != 0) return -1;
    }
    if (with_state) {
        snprintf(path, sizeof path, "%s/training_state.safetensors", dir);
        if (save_training_state(path, o, step, d, seed) != 0) return -1;
    }
    return 0;
}

/* ---------------------------------------------------------------- loop */

int plm_train(plm_model *m, const plm_tokenizer *tok, const plm_token_stream *train, const plm_token_stream *valid,
              const plm_train_args *a) {
    int B = a->per_device_train_batch_size, T = a->max_seq_length, accum = a->gradient_accumulation_steps;
    bool causal = a->objective == PLM_OBJ_CLM;
    if (B <= 0 || T <= 0 || accum <= 0 || a->max_steps <= 0) {
        plm_error("batch size, sequence length, accumulation and max_steps must be positive");
        return PLM_EXIT_USAGE;
    }
    if (T > m->config.max_position_embeddings) {
        plm_error("max_seq_length %d exceeds the model's max_position_embeddings %d", T,
                  m->config.max_position_embeddings);
        return PLM_EXIT_USAGE;
    }
    if (plm_model_reserve(m, B, T) != 0) return PLM_EXIT_USAGE;
    if (plm_mkdirs(a->output_dir) != 0) return PLM_EXIT_FAIL;
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
    plm_adamw opt;
    plm_adamw_init(&opt, m->num_params);
    FILE *log = NULL;
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
        if (pos > dl.num_windows) {
            plm_error("%s: data position %zu is beyond this corpus (%zu windows): a different corpus?",
                      a->resume_from_checkpoint, pos, dl.num_windows);
            goto out;
        }
        plm_dataloader_seek(&dl, epoch, pos);
        if (step >= a->max_steps) {
            plm_error("%s: checkpoint is at step %ld, max_steps is %ld", a->resume_from_checkpoint, step, a->max_steps);
            goto out;
        }
        rc = PLM_EXIT_FAIL;
    }
    char path[4096];
    snprintf(path, sizeof path, "%s/metrics.jsonl", a->output_dir);
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
        double loss = 0.0;
        long predicted = 0;
        for (int micro = 0; micro < accum; micro++) {
            plm_dataloader_next(&dl, B, bb.ids, bb.type_ids, bb.mask, bb.labels);
            uint64_t dseed = plm_hash_combine(a->seed, (uint64_t)step * (uint64_t)accum + (uint64_t)micro);
            plm_batch b = as_batch(&bb, causal, true, dseed);
            plm_ce_result r = plm_model_forward(m, &b, true, 1.0f / (float)accum);
            if (r.count) loss += r.loss_sum / r.count / accum;
            predicted += r.count;
        }
        if (!isfinite(loss)) {
            plm_error("training diverged at step %ld (loss %g); try a lower learning rate", step + 1, loss);
            goto out;
        }
        double norm = plm_clip_grad_norm(m, a->max_grad_norm);
        float lr = plm_lr_at(a->lr_scheduler_type, a->opt.learning_rate, step, a->warmup_steps, a->max_steps);
        plm_adamw_step(&opt, m, &a->opt, lr);
        double dt = plm_now() - t0;
        double tps = (double)B * T * accum / dt;
        loss_ema = isnan(loss_ema) ? loss : 0.9 * loss_ema + 0.1 * loss;
        long done = step + 1;
        if (done % a->logging_steps == 0 || done == a->max_steps || done == 1)
            fprintf(log,
                    "{\"step\": %ld, \"loss\": %.17g, \"learning_rate\": %.9g, \"grad_norm\": %.9g, "
                    "\"predicted_tokens\": %ld, \"tokens_per_s\": %.1f, \"gflops\": %.2f, \"elapsed_s\": %.3f}\n",
                    done, loss, lr, norm, predicted, tps, flops / dt * 1e-9, plm_now() - t_start);
        snprintf(status, sizeof status, "loss %.4f | lr %.2e | %.1fk tok/s", loss_ema, lr, tps / 1000.0);
        bool eval_now = have_valid && ((a->eval_steps > 0 && done % a->eval_steps == 0) || done == a->max_steps);
        if (eval_now) {
            plm_eval_result e = plm_evaluate(m, &vdl, B, a->eval_batches, causal);
            fprintf(log,
                    "{\"step\": %ld, \"eval_loss\": %.17g, \"eval_accuracy\": %.6f, \"eval_perplexity\": %.6g, "
                    "\"eval_tokens\": %ld}\n",
                    done, e.loss, e.accuracy, exp(e.loss), e.tokens);
            if (!a->quiet && !pb.tty)
                fprintf(stderr, "step %ld: eval_loss %.4f, eval_accuracy %.4f\n", done, e.loss, e.accuracy);
        }
        fflush(log);
        if (a->save_steps > 0 && done % a->save_steps == 0 && done < a->max_steps) {
            snprintf(path, sizeof path, "%s/checkpoint-%ld", a->output_dir, done);
            if (save_checkpoint(path, m, tok, &opt, done, &dl, a->seed, true) != 0) goto out;
        }
        if (!a->quiet) plm_progress_update(&pb, done, status);
    }
    if (!a->quiet) plm_progress_finish(&pb, status);
    if (save_checkpoint(a->output_dir, m, tok, &opt, step, &dl, a->seed, true) != 0) goto out;
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
