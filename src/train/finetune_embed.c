/* finetune_embed.c - see finetune_embed.h. */
#include "train/finetune_embed.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/progress.h"
#include "core/rng.h"
#include "data/collate.h"
#include "model/model_io.h"
#include "train/contrastive.h"
#include "train/finetune.h"

void plm_embed_ft_args_default(plm_embed_ft_args *a) {
    memset(a, 0, sizeof *a);
    a->output_dir = "embed-out";
    a->batch_size = 32;
    a->max_seq_length = 128;
    a->num_train_epochs = 1.0f;
    a->opt = plm_adamw_defaults(1e-4f);
    a->warmup_ratio = 0.1f;
    a->max_grad_norm = 1.0f;
    a->temperature = 0.05f;
    a->pooling = PLM_POOL_MEAN;
    a->logging_steps = 10;
    a->seed = 42;
}

int plm_finetune_embed(plm_model *m, const plm_tokenizer *tok, const plm_pair_set *train, const plm_embed_ft_args *a) {
    int n = train->n, B = PLM_MIN(a->batch_size, n), C = m->config.hidden_size;
    int T = PLM_MIN(a->max_seq_length, m->config.max_position_embeddings);
    if (n < 2 || B < 2 || T <= 0 || !(a->temperature > 0)) {
        plm_error("contrastive fine-tuning needs at least 2 pairs per batch, a positive max_seq_length and "
                  "temperature (%d pairs, batch %d)",
                  n, a->batch_size);
        return PLM_EXIT_USAGE;
    }
    long per_epoch = n / B; /* full batches only: every step has B - 1 negatives per query */
    long total = a->max_steps > 0 ? a->max_steps : (long)ceil((double)a->num_train_epochs * (double)per_epoch);
    long warmup = (long)ceil((double)a->warmup_ratio * (double)total);
    if (plm_mkdirs(a->output_dir) != 0) return PLM_EXIT_FAIL;
    if (plm_model_reserve(m, 2 * B, T) != 0) return PLM_EXIT_FAIL;
    char path[4200];
    snprintf(path, sizeof path, "%s/metrics.jsonl", a->output_dir);
    FILE *log = fopen(path, "w");
    if (!log) {
        plm_error("%s: cannot write", path);
        return PLM_EXIT_FAIL;
    }
    plm_collate_opts co;
    plm_ft_collate_opts(&co, tok, T);
    plm_encoded_batch eb;
    plm_encoded_batch_init(&eb);
    plm_contrastive obj;
    plm_contrastive_init(&obj, B, C);
    plm_adamw opt;
    plm_adamw_init(&opt, m->num_params);
    int *order = plm_malloc((size_t)n * sizeof *order), *group = plm_malloc((size_t)B * sizeof *group);
    const char **texts = plm_malloc((size_t)2 * B * sizeof *texts);
    plm_backbone *bb = &m->bb[0];
    plm_progress p;
    if (!a->quiet) plm_progress_start(&p, "finetune-embed", total, 0);
    double t0 = plm_now(), loss_acc = 0;
    long acc_n = 0, correct = 0, seen = 0;
    int rc = 0;
    for (long step = 0; step < total; step++) {
        long epoch = step / per_epoch, k = step % per_epoch;
        if (k == 0) plm_ft_epoch_order(order, n, a->seed, epoch);
        for (int i = 0; i < B; i++) {
            int ex = order[k * B + i];
            texts[i] = train->queries[ex];
            texts[B + i] = train->passages[ex];
            group[i] = train->group ? train->group[ex] : ex;
        }
        if (plm_collate_pairs(tok, texts, NULL, NULL, NULL, 2 * B, &co, &eb) != 0) {
            rc = PLM_EXIT_INPUT;
            break;
        }
        plm_batch b = {.B = eb.B,
                       .T = eb.T,
                       .input_ids = eb.input_ids,
                       .token_type_ids = m->config.type_vocab_size > 0 ? eb.token_type_ids : NULL,
                       .attention_mask = eb.attention_mask,
                       .causal = m->config.is_decoder,
                       .training = true,
                       .dropout_seed = plm_hash_combine(a->seed, (uint64_t)step)};
        if (plm_model_check_batch(m, 0, &b) != 0) {
            rc = PLM_EXIT_INPUT;
            break;
        }
        plm_model_zero_grad(m);
        const float *h = backbone_forward(bb, b.B, b.T, b.input_ids, b.token_type_ids, b.attention_mask, b.causal, true,
                                          b.dropout_seed);
        backbone_zero_dhidden(bb);
        double loss = plm_contrastive_forward(&obj, h, eb.lengths, B, eb.T, group, a->temperature, a->pooling);
        plm_contrastive_backward(&obj, eb.lengths, eb.T, a->temperature, a->pooling, bb->dhidden);
        backbone_backward(bb);
        if (!isfinite(loss)) {
            plm_error("step %ld: the loss is %g (diverged; lower --learning-rate)", step + 1, loss);
            rc = PLM_EXIT_FAIL;
            break;
        }
        double norm = a->max_grad_norm > 0 ? plm_clip_grad_norm(m, a->max_grad_norm) : plm_grad_norm(m);
        float lr = plm_lr_at(PLM_SCHED_LINEAR, a->opt.learning_rate, step, warmup, total);
        plm_adamw_step(&opt, m, &a->opt, lr);
        loss_acc += loss;
        acc_n++;
        correct += obj.correct;
        seen += B;
        if ((step + 1) % a->logging_steps == 0 || step + 1 == total) {
            plm_ft_log_step(log, step + 1, (double)(step + 1) / (double)per_epoch, loss_acc / acc_n, lr, norm,
                            plm_now() - t0, NULL);
            fflush(log);
            if (!a->quiet) {
                char status[96];
                snprintf(status, sizeof status, "loss %.4f | in-batch acc %.3f", loss_acc / acc_n,
                         (double)correct / (double)seen);
                plm_progress_update(&p, step + 1, status);
            }
            loss_acc = 0;
            acc_n = 0;
            correct = seen = 0;
        }
    }
    if (!a->quiet && rc == 0) plm_progress_finish(&p, NULL);
    fclose(log);
    if (rc == 0) {
        snprintf(path, sizeof path, "%s/tokenizer.json", a->output_dir);
        if (plm_model_save(m, a->output_dir, NULL, 0) != 0 || plm_tokenizer_save(tok, path) != 0) rc = PLM_EXIT_FAIL;
    }
    free(order);
    free(group);
    free(texts);
    plm_adamw_free(&opt);
    plm_contrastive_free(&obj);
    plm_encoded_batch_free(&eb);
    return rc;
}
