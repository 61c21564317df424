/* cmd_pretrain.c - `plm pretrain`: config + corpus files -> a checkpoint directory. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "core/common.h"
#include "data/corpus.h"
#include "model/model_io.h"
#include "train/trainer.h"
#include "model/gemm.h"

int cli_fail(const char *cmd, int code) {
    fprintf(stderr, "plm %s: error: %s\n", cmd, plm_last_error());
    return code;
}

int cli_load_model_heads(const char *dir, const plm_head_spec *heads, int num_heads, uint64_t seed, bool quiet,
                         plm_model **m, plm_tokenizer **tok) {
    char path[4096];
    *m = NULL;
    *tok = NULL;
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    *tok = plm_tokenizer_load(path);
    if (!*tok) return PLM_EXIT_INPUT;
    *m = heads ? plm_model_load_with_heads(dir, heads, num_heads, seed, quiet, NULL) : plm_model_load(dir);
    if (!*m) {
        plm_tokenizer_free(*tok);
        *tok = NULL;
        return PLM_EXIT_INPUT;
    }
    if (plm_tokenizer_vocab_size(*tok) > (*m)->config.vocab_size) {
        plm_error("%s: tokenizer.json has %d tokens, more than the model's vocab_size %d", dir,
                  plm_tokenizer_vocab_size(*tok), (*m)->config.vocab_size);
        plm_model_free(*m);
        plm_tokenizer_free(*tok);
        return PLM_EXIT_INPUT;
    }
    return 0;
}

int cli_load_model(const char *dir, plm_model **m, plm_tokenizer **tok) {
    return cli_load_model_heads(dir, NULL, 0, 0, true, m, tok);
}

static const char *special_tokens[] = {"<|endoftext|>", "[PAD]", "[CLS]", "[SEP]", "[MASK]", "[UNK]"};

/* Token ids the config records for HF (pad, bos/eos, mask, cls, sep). */
static void config_set_special_ids(plm_config *c, const plm_tokenizer *t) {
    c->pad_token_id = plm_tokenizer_special(t, PLM_SPECIAL_PAD);
    c->bos_token_id = plm_tokenizer_special(t, PLM_SPECIAL_BOS);
    c->eos_token_id = plm_tokenizer_special(t, PLM_SPECIAL_EOS);
    c->mask_token_id = plm_tokenizer_special(t, PLM_SPECIAL_MASK);
    c->cls_token_id = plm_tokenizer_special(t, PLM_SPECIAL_CLS);
    c->sep_token_id = plm_tokenizer_special(t, PLM_SPECIAL_SEP);
}

int cmd_pretrain(int argc, char **argv) {
    const char *config_path = NULL, *tokenizer_path = NULL, *objective = "clm", *scheduler = "linear";
    const char *resume = NULL, *init_from = NULL;
    arg_list train_files = {0}, valid_files = {0};
    float valid_split = 0.05f;
    int vocab_size = 8192;
    bool bf16 = false;
    bool quiet = false, static_masking = false, right_to_left = false;
    plm_train_args a;
    plm_train_args_default(&a);
    arg_spec specs[] = {
        {"--config", ARG_STR, &config_path, "model config.json (HF names); default: a small BERT (mlm) or GPT-2 (clm)"},
        {"--train", ARG_LIST, &train_files, "training text files (UTF-8; each file is a document)"},
        {"--validation", ARG_LIST, &valid_files, "validation text files (default: split off the training text)"},
        {"--validation-split", ARG_FLOAT, &valid_split, "fraction of the training tokens held out (default 0.05)"},
        {"--tokenizer", ARG_STR, &tokenizer_path, "tokenizer.json; default: train a byte-level BPE on --train"},
        {"--vocab-size", ARG_INT, &vocab_size, "vocabulary size of a newly trained tokenizer (default 8192)"},
        {"--output-dir", ARG_STR, &a.output_dir, "where checkpoints, metrics.jsonl and loss.svg go (default out)"},
        {"--objective", ARG_STR, &objective, "clm (next token) or mlm (masked LM) (default clm)"},
        {"--max-steps", ARG_LONG, &a.max_steps, "optimizer steps (default 1000)"},
        {"--batch-size", ARG_INT, &a.per_device_train_batch_size, "sequences per micro-batch (default 16)"},
        {"--seq-len", ARG_INT, &a.max_seq_length, "tokens per sequence (default 128)"},
        {"--gradient-accumulation-steps", ARG_INT, &a.gradient_accumulation_steps,
         "micro-batches per step (default 1)"},
        {"--learning-rate", ARG_FLOAT, &a.opt.learning_rate, "peak learning rate (default 5e-4)"},
        {"--weight-decay", ARG_FLOAT, &a.opt.weight_decay, "AdamW decoupled weight decay (default 0.01)"},
        {"--adam-beta1", ARG_FLOAT, &a.opt.beta1, "default 0.9"},
        {"--adam-beta2", ARG_FLOAT, &a.opt.beta2, "default 0.999"},
        {"--adam-epsilon", ARG_FLOAT, &a.opt.eps, "default 1e-8"},
        {"--warmup-steps", ARG_LONG, &a.warmup_steps, "linear warmup steps (default 100)"},
        {"--lr-scheduler", ARG_STR, &scheduler, "linear, cosine or constant (default linear)"},
        {"--max-grad-norm", ARG_FLOAT, &a.max_grad_norm, "clip gradients to this global norm; 0 = off (default 1)"},
        {"--logging-steps", ARG_LONG, &a.logging_steps, "metrics.jsonl line every N steps (default 10)"},
        {"--eval-steps", ARG_LONG, &a.eval_steps, "validation every N steps (default 200)"},
        {"--eval-batches", ARG_INT, &a.eval_batches, "validation batches per evaluation (default 20)"},
        {"--save-steps", ARG_LONG, &a.save_steps, "write checkpoint-N every N steps (default: final only)"},
        {"--save-total-limit", ARG_INT, &a.save_total_limit,
         "keep only the newest N checkpoint-N directories (default: all)"},
        {"--seed", ARG_U64, &a.seed, "random seed: same seed, same run (default 42)"},
        {"--mlm-probability", ARG_FLOAT, &a.obj.mlm_probability, "share of tokens selected for MLM (default 0.15)"},
        {"--mask-replace-prob", ARG_FLOAT, &a.obj.mask_replace_prob, "selected -> [MASK] (default 0.8)"},
        {"--random-replace-prob", ARG_FLOAT, &a.obj.random_replace_prob, "selected -> random token (default 0.1)"},
        {"--static-masking", ARG_FLAG, &static_masking, "one fixed mask per sequence (BERT) instead of dynamic"},
        {"--right-to-left", ARG_FLAG, &right_to_left, "CLM: predict the previous token instead of the next"},
        {"--resume-from-checkpoint", ARG_STR, &resume,
         "continue an interrupted run: a checkpoint directory, or an output directory (its newest complete "
         "checkpoint)"},
        {"--init-from", ARG_STR, &init_from, "continued pretraining: start from a model directory's weights"},
        {"--bf16", ARG_FLAG, &bf16,
         "bf16 mixed precision: GEMM inputs in bf16 (oneDNN, fp32 accumulation), weights, gradients and AdamW in "
         "fp32; on a CPU without AVX512_BF16 / AMX-BF16 it says so and runs fp32"},
        {"--quiet", ARG_FLAG, &quiet, "no progress bar"},
    };
    int rc = args_parse("pretrain", "Pretrain a BERT-style (mlm) or GPT-style (clm) model on raw text.", specs,
                        (int)PLM_ARRAY_LEN(specs), argc, argv);
    if (rc) {
        args_list_free(&train_files);
        args_list_free(&valid_files);
        return rc == 1 ? 0 : rc;
    }
    a.quiet = quiet;
    if (bf16) plm_gemm_set_bf16(true);
    a.obj.static_masking = static_masking;
    a.obj.right_to_left = right_to_left;
    if (strcmp(objective, "clm") == 0)
        a.objective = PLM_OBJ_CLM;
    else if (strcmp(objective, "mlm") == 0)
        a.objective = PLM_OBJ_MLM;
    else {
        fprintf(stderr, "plm pretrain: --objective must be clm or mlm, got \"%s\"\n", objective);
        goto usage_fail;
    }
    if (strcmp(scheduler, "linear") == 0)
        a.lr_scheduler_type = PLM_SCHED_LINEAR;
    else if (strcmp(scheduler, "cosine") == 0)
        a.lr_scheduler_type = PLM_SCHED_COSINE;
    else if (strcmp(scheduler, "constant") == 0)
        a.lr_scheduler_type = PLM_SCHED_CONSTANT;
    else {
        fprintf(stderr, "plm pretrain: --lr-scheduler must be linear, cosine or constant\n");
        goto usage_fail;
    }
    if (train_files.n == 0) {
        fprintf(stderr, "plm pretrain: --train FILE... is required (see plm pretrain --help)\n");
        goto usage_fail;
    }
    if (a.obj.mlm_probability <= 0 || a.obj.mlm_probability >= 1 || a.obj.mask_replace_prob < 0 ||
        a.obj.random_replace_prob < 0 || a.obj.mask_replace_prob + a.obj.random_replace_prob > 1) {
        fprintf(stderr, "plm pretrain: masking probabilities must be in [0, 1] and mask + random <= 1\n");
        goto usage_fail;
    }
    if (a.save_total_limit < 0) {
        fprintf(stderr, "plm pretrain: --save-total-limit must be >= 0\n");
        goto usage_fail;
    }
    if (valid_split < 0 || valid_split >= 1) {
        fprintf(stderr, "plm pretrain: --validation-split must be in [0, 1)\n");
        goto usage_fail;
    }

    rc = PLM_EXIT_INPUT;
    plm_tokenizer *tok = NULL;
    plm_model *m = NULL;
    plm_token_stream train = {0}, valid = {0};
    char *resume_dir = NULL;
    if (resume) {
        long resume_step;
        if (!(resume_dir = plm_find_checkpoint(resume, &resume_step))) goto fail;
        fprintf(stderr, "resuming from %s (step %ld)\n", resume_dir, resume_step);
        a.resume_from_checkpoint = resume_dir;
    }
    const char *model_dir = resume ? resume_dir : init_from;
    if (model_dir) {
        /* continued pretraining reads the base weights of any checkpoint into a model
         * with the objective's head (an LM head) */
        plm_head_spec lm = {PLM_HEAD_LM, 0, 0, 1.0f};
        if ((rc = resume ? cli_load_model(model_dir, &m, &tok)
                         : cli_load_model_heads(model_dir, &lm, 1, a.seed, quiet, &m, &tok)) != 0)
            goto fail;
        rc = PLM_EXIT_INPUT;
    } else {
        plm_config cfg;
        if (config_path) {
            if (plm_config_load(&cfg, config_path) != 0) goto fail;
        } else {
            plm_config_default(&cfg, a.objective == PLM_OBJ_MLM ? PLM_ARCH_BERT : PLM_ARCH_GPT2);
        }
        if (tokenizer_path) {
            tok = plm_tokenizer_load(tokenizer_path);
            if (!tok) goto fail;
        } else {
            plm_tokenizer_train_opts to;
            plm_tokenizer_train_opts_default(&to);
            to.vocab_size = config_path ? cfg.vocab_size : vocab_size;
            to.special_tokens = special_tokens;
            to.n_special = (int)PLM_ARRAY_LEN(special_tokens);
            to.show_progress = !quiet;
            if (!quiet)
                fprintf(stderr, "training a byte-level BPE tokenizer (vocab %d) on the corpus\n", to.vocab_size);
            tok = plm_tokenizer_train_bpe((const char *const *)train_files.items, train_files.n, &to);
            if (!tok) goto fail;
            if (!config_path) cfg.vocab_size = plm_tokenizer_vocab_size(tok);
        }
        if (plm_tokenizer_vocab_size(tok) > cfg.vocab_size) {
            plm_error("%s: vocab_size %d is smaller than the tokenizer's %d tokens",
                      config_path ? config_path : "config", cfg.vocab_size, plm_tokenizer_vocab_size(tok));
            goto fail;
        }
        config_set_special_ids(&cfg, tok);
        m = plm_model_create(&cfg, a.seed);
        if (!m) goto fail;
    }
    if (a.objective == PLM_OBJ_MLM && plm_tokenizer_special(tok, PLM_SPECIAL_MASK) < 0) {
        plm_error("the tokenizer has no [MASK] token, needed for --objective mlm");
        goto fail;
    }
    int32_t sep = plm_tokenizer_special(tok, PLM_SPECIAL_EOS);
    if (sep < 0) sep = plm_tokenizer_special(tok, PLM_SPECIAL_SEP);
    if (plm_corpus_tokenize(tok, (const char *const *)train_files.items, train_files.n, sep, &train, !quiet) != 0)
        goto fail;
    if (valid_files.n > 0) {
        if (plm_corpus_tokenize(tok, (const char *const *)valid_files.items, valid_files.n, sep, &valid, !quiet) != 0)
            goto fail;
    } else if (valid_split > 0) { /* hold out the tail of the stream */
        size_t nv = (size_t)((double)train.n * valid_split);
        if (nv > (size_t)a.max_seq_length + 1) {
            valid.n = nv;
            valid.ids = plm_malloc(nv * sizeof(int32_t));
            memcpy(valid.ids, train.ids + train.n - nv, nv * sizeof(int32_t));
            train.n -= nv;
        }
    }
    if (!quiet) {
        fprintf(stderr,
                "model: %s, %d layers, hidden %d, %d heads, %.2fM parameters; %zu training tokens, %zu validation\n",
                plm_arch_name(m->config.arch), m->config.num_hidden_layers, m->config.hidden_size,
                m->config.num_attention_heads, (double)m->num_params / 1e6, train.n, valid.n);
    }
    if ((rc = plm_train(m, tok, &train, valid.n ? &valid : NULL, &a)) != 0) goto fail;
    if (!quiet)
        fprintf(stderr, "saved %s/{config.json,model.safetensors,tokenizer.json}, metrics.jsonl, loss.svg\n",
                a.output_dir);
    rc = 0;
    goto done;
fail:
    cli_fail("pretrain", rc);
done:
    plm_token_stream_free(&train);
    plm_token_stream_free(&valid);
    plm_model_free(m);
    if (tok) plm_tokenizer_free(tok);
    free(resume_dir);
    args_list_free(&train_files);
    args_list_free(&valid_files);
    return rc;
usage_fail:
    args_list_free(&train_files);
    args_list_free(&valid_files);
    return PLM_EXIT_USAGE;
}
