/* cmd_pretrain.c - `plm pretrain`: config + corpus files -> a checkpoint directory. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "args.h"
#include "cli.h"
#include "core/common.h"
#include "data/corpus.h"
#include "data/shards.h"
#include "model/model_io.h"
#include "train/electra.h"
#include "train/trainer.h"
#include "model/bf16_rate.h"
#include "model/gemm.h"

int cli_fail(const char *cmd, int code) {
    if (plm_dist_size() > 1)
        fprintf(stderr, "plm %s: error (rank %d of %d): %s\n", cmd, plm_dist_rank(), plm_dist_size(), plm_last_error());
    else
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

void cli_use_bf16(plm_model *m) {
    if (plm_gemm_set_bf16(true)) plm_model_round_bf16(m);
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

/* T5's sentinels: <extra_id_0> .. <extra_id_{n-1}> as added special tokens at the top of
 * the tokenizer, <extra_id_0> last (HF's T5 extra_ids; span corruption counts them down
 * from len(tokenizer) - 1). Added when missing; a tokenizer that has them elsewhere is
 * refused. Returns 0 or -1 (error set). */
static int add_sentinels(plm_tokenizer *t, int n) {
    char name[32];
    if (plm_tokenizer_token_to_id(t, "<extra_id_0>") < 0)
        for (int k = n - 1; k >= 0; k--) {
            snprintf(name, sizeof name, "<extra_id_%d>", k);
            if (plm_tokenizer_add_special(t, name) < 0) return -1;
        }
    int top = plm_tokenizer_vocab_size(t) - 1;
    for (int k = 0; k < n; k++) {
        snprintf(name, sizeof name, "<extra_id_%d>", k);
        if (plm_tokenizer_token_to_id(t, name) != top - k) {
            plm_error("tokenizer: %s is not id %d: T5 sentinels must be the top %d tokens, <extra_id_0> last", name,
                      top - k, n);
            return -1;
        }
    }
    return 0;
}

int cmd_pretrain(int argc, char **argv) {
    const char *config_path = NULL, *tokenizer_path = NULL, *objective = "clm", *scheduler = "linear";
    const char *resume = NULL, *init_from = NULL, *masking = "token", *data_dir = NULL;
    char data_tok[4200];
    arg_list train_files = {0}, valid_files = {0};
    float valid_split = 0.05f, decay_fraction = 0.2f, generator_size = 0.25f, disc_weight = 50.0f, clm_fraction = 0.25f;
    float mask_replace = NAN, random_replace = NAN; /* per-objective defaults below */
    bool reset_at_switch = false;
    const char *decay_type = "1-sqrt";
    int vocab_size = 8192, extra_ids = 100;
    bool bf16 = false;
    bool quiet = false, static_masking = false, right_to_left = false;
    plm_train_args a;
    plm_train_args_default(&a);
    arg_spec specs[] = {
        {"--config", ARG_STR, &config_path, "model config.json (HF names); default: a small BERT (mlm) or GPT-2 (clm)"},
        {"--train", ARG_LIST, &train_files, "training text files (UTF-8; each file is a document)"},
        {"--data", ARG_STR, &data_dir,
         "a directory written by plm prepare: train on its shards (mmap), validate on its validation split; its "
         "tokenizer.json is the default tokenizer"},
        {"--validation", ARG_LIST, &valid_files, "validation text files (default: split off the training text)"},
        {"--validation-split", ARG_FLOAT, &valid_split, "fraction of the training tokens held out (default 0.05)"},
        {"--tokenizer", ARG_STR, &tokenizer_path, "tokenizer.json; default: train a byte-level BPE on --train"},
        {"--vocab-size", ARG_INT, &vocab_size, "vocabulary size of a newly trained tokenizer (default 8192)"},
        {"--output-dir", ARG_STR, &a.output_dir, "where checkpoints, metrics.jsonl and loss.svg go (default out)"},
        {"--objective", ARG_STR, &objective,
         "clm (next token), mlm (masked LM), mlm+nsp (MLM + next sentence prediction, BERT), mlm+sop (MLM + "
         "sentence order prediction, ALBERT), electra (replaced-token detection), clm+mlm (CLM, then MLM on the "
         "same weights) or t5 (span corruption, encoder-decoder); the pair objectives train BertForPreTraining "
         "(default clm)"},
        {"--generator-size", ARG_FLOAT, &generator_size,
         "electra: generator width as a fraction of the discriminator's (hidden, intermediate, heads) (default 0.25)"},
        {"--disc-weight", ARG_FLOAT, &disc_weight, "electra: lambda in L_gen + lambda L_disc (default 50)"},
        {"--clm-fraction", ARG_FLOAT, &clm_fraction,
         "clm+mlm: share of the steps trained with causal attention on CLM before MLM (default 0.25)"},
        {"--reset-optimizer-at-switch", ARG_FLAG, &reset_at_switch,
         "clm+mlm: zero AdamW's moments at the switch (the learning-rate schedule runs on)"},
        {"--short-seq-prob", ARG_FLOAT, &a.obj.short_seq_prob,
         "mlm+nsp/sop: share of pairs with a random shorter target length (default 0.1)"},
        {"--max-steps", ARG_LONG, &a.max_steps, "optimizer steps; 0 writes the initialised model (default 1000)"},
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
        {"--lr-scheduler", ARG_STR, &scheduler, "linear, cosine, constant or wsd (default linear)"},
        {"--lr-scheduler-type", ARG_STR, &scheduler, "the same as --lr-scheduler (HF's name)"},
        {"--decay-fraction", ARG_FLOAT, &decay_fraction,
         "wsd: share of the steps in the final decay, after warmup and a constant phase (default 0.2)"},
        {"--decay-type", ARG_STR, &decay_type, "wsd: shape of the final decay, 1-sqrt or linear (default 1-sqrt)"},
        {"--max-grad-norm", ARG_FLOAT, &a.max_grad_norm, "clip gradients to this global norm; 0 = off (default 1)"},
        {"--logging-steps", ARG_LONG, &a.logging_steps, "metrics.jsonl line every N steps (default 10)"},
        {"--eval-steps", ARG_LONG, &a.eval_steps, "validation every N steps (default 200)"},
        {"--eval-batches", ARG_INT, &a.eval_batches, "validation batches per evaluation (default 20)"},
        {"--save-steps", ARG_LONG, &a.save_steps, "write checkpoint-N every N steps (default: final only)"},
        {"--save-total-limit", ARG_INT, &a.save_total_limit,
         "keep only the newest N checkpoint-N directories (default: all)"},
        {"--seed", ARG_U64, &a.seed, "random seed: same seed, same run (default 42)"},
        {"--mlm-probability", ARG_FLOAT, &a.obj.mlm_probability,
         "share of tokens selected for MLM, 0.05..0.5 (default 0.15)"},
        {"--mask-replace-prob", ARG_FLOAT, &mask_replace, "selected -> [MASK] (default 0.8; electra 0.85)"},
        {"--random-replace-prob", ARG_FLOAT, &random_replace,
         "selected -> random token (default 0.1; electra 0: google-research/electra keeps 15% unchanged)"},
        {"--static-masking", ARG_FLAG, &static_masking,
         "static masks (BERT): --dupe-factor fixed masks per sequence, reused every dupe-factor epochs, instead of "
         "a new mask each epoch (RoBERTa)"},
        {"--dupe-factor", ARG_INT, &a.obj.dupe_factor, "number of static masks per sequence (default 10, as BERT)"},
        {"--masking", ARG_STR, &masking,
         "token (each token), whole_word (all pieces of a word together) or span (SpanBERT: geometric spans of "
         "whole words, p 0.2, at most 10 words) (default token)"},
        {"--right-to-left", ARG_FLAG, &right_to_left, "CLM: predict the previous token instead of the next"},
        {"--noise-density", ARG_FLOAT, &a.obj.noise_density, "T5: share of tokens corrupted (default 0.15)"},
        {"--mean-noise-span-length", ARG_FLOAT, &a.obj.mean_noise_span_length,
         "T5: mean length of a corrupted span (default 3)"},
        {"--extra-ids", ARG_INT, &extra_ids,
         "T5: sentinel tokens <extra_id_N> added at the top of the tokenizer when missing (default 100)"},
        {"--resume-from-checkpoint", ARG_STR, &resume,
         "continue an interrupted run: a checkpoint directory, or an output directory (its newest complete "
         "checkpoint)"},
        {"--init-from", ARG_STR, &init_from, "continued pretraining: start from a model directory's weights"},
        {"--bf16", ARG_FLAG, &bf16,
         "bf16 mixed precision: matrix-product inputs in bf16 with fp32 sums (oneDNN; attention's tiles with "
         "AVX512_BF16), weights, gradients, softmax and AdamW in fp32; on a CPU without AVX512_BF16 / AMX-BF16 it "
         "says so and runs fp32; where the bf16 dot product is slower than fp32 (Intel without AMX) it says that"},
        {"--quiet", ARG_FLAG, &quiet, "no progress bar"},
        {"--deterministic-reduce", ARG_FLAG, &a.dist.deterministic,
         "under mpirun: add the micro-batch gradients in one fixed order (bit-identical weights for any number of "
         "ranks dividing ranks x accumulation steps; slower)"},
        {"--zero1", ARG_FLAG, &a.dist.zero1,
         "under mpirun: shard the AdamW state over the ranks (ZeRO-1: reduce-scatter, update a slice, all-gather)"},
        {"--no-overlap", ARG_FLAG, &a.dist.no_overlap,
         "under mpirun: one blocking gradient allreduce after the backward pass instead of buckets overlapping it"},
        {"--bucket-cap-mb", ARG_FLOAT, &a.dist.bucket_cap_mb,
         "under mpirun: send gradients in buckets of at least this many MiB during the backward pass (default 4)"},
    };
    int rc = args_parse("pretrain",
                        "Pretrain a GPT-style (clm), BERT-style (mlm, clm+mlm), ELECTRA (electra) or T5 (t5: span "
                        "corruption) model on raw text.",
                        specs, (int)PLM_ARRAY_LEN(specs), argc, argv);
    if (rc) {
        args_list_free(&train_files);
        args_list_free(&valid_files);
        return rc == 1 ? 0 : rc;
    }
    if (!plm_dist_is_root()) quiet = true; /* under mpirun rank 0 reports; the others only fail */
    a.quiet = quiet;
    if (bf16 && plm_gemm_set_bf16(true) && plm_dist_is_root()) plm_bf16_training_note();
    a.obj.static_masking = static_masking;
    a.obj.right_to_left = right_to_left;
    if (strcmp(objective, "clm") == 0)
        a.objective = PLM_OBJ_CLM;
    else if (strcmp(objective, "mlm") == 0)
        a.objective = PLM_OBJ_MLM;
    else if (strcmp(objective, "electra") == 0)
        a.objective = PLM_OBJ_ELECTRA;
    else if (strcmp(objective, "clm+mlm") == 0)
        a.objective = PLM_OBJ_CLM_MLM;
    else if (strcmp(objective, "mlm+nsp") == 0)
        a.objective = PLM_OBJ_MLM, a.obj.pair = PLM_PAIR_NSP;
    else if (strcmp(objective, "mlm+sop") == 0)
        a.objective = PLM_OBJ_MLM, a.obj.pair = PLM_PAIR_SOP;
    else if (strcmp(objective, "t5") == 0)
        a.objective = PLM_OBJ_T5;
    else {
        fprintf(stderr,
                "plm pretrain: --objective must be clm, mlm, mlm+nsp, mlm+sop, electra, clm+mlm or t5, got \"%s\"\n",
                objective);
        goto usage_fail;
    }
    bool t5 = a.objective == PLM_OBJ_T5;
    if (t5 && (extra_ids < 1 || extra_ids > 1000)) {
        fprintf(stderr, "plm pretrain: --extra-ids must be in 1..1000\n");
        goto usage_fail;
    }
    bool electra = a.objective == PLM_OBJ_ELECTRA, needs_mask = a.objective != PLM_OBJ_CLM && !t5;
    a.obj.mask_replace_prob = !isnan(mask_replace) ? mask_replace : electra ? 0.85f : 0.8f;
    a.obj.random_replace_prob = !isnan(random_replace) ? random_replace : electra ? 0.0f : 0.1f;
    if (!(clm_fraction >= 0.0f && clm_fraction <= 1.0f)) {
        fprintf(stderr, "plm pretrain: --clm-fraction must be in [0, 1]\n");
        goto usage_fail;
    }
    a.clm_fraction = clm_fraction;
    a.reset_optimizer_at_switch = reset_at_switch;
    if (!(generator_size > 0.0f && generator_size <= 1.0f) || !(disc_weight > 0.0f && isfinite(disc_weight))) {
        fprintf(stderr, "plm pretrain: --generator-size must be in (0, 1] and --disc-weight positive\n");
        goto usage_fail;
    }
    if (strcmp(scheduler, "linear") == 0)
        a.lr_scheduler_type = PLM_SCHED_LINEAR;
    else if (strcmp(scheduler, "cosine") == 0)
        a.lr_scheduler_type = PLM_SCHED_COSINE;
    else if (strcmp(scheduler, "constant") == 0)
        a.lr_scheduler_type = PLM_SCHED_CONSTANT;
    else if (strcmp(scheduler, "wsd") == 0)
        a.lr_scheduler_type = PLM_SCHED_WSD;
    else {
        fprintf(stderr, "plm pretrain: --lr-scheduler must be linear, cosine, constant or wsd\n");
        goto usage_fail;
    }
    if (strcmp(decay_type, "1-sqrt") == 0)
        a.decay_type = PLM_DECAY_1SQRT;
    else if (strcmp(decay_type, "linear") == 0)
        a.decay_type = PLM_DECAY_LINEAR;
    else {
        fprintf(stderr, "plm pretrain: --decay-type must be 1-sqrt or linear, got \"%s\"\n", decay_type);
        goto usage_fail;
    }
    if (!(decay_fraction >= 0.0f && decay_fraction <= 1.0f)) {
        fprintf(stderr, "plm pretrain: --decay-fraction must be in [0, 1]\n");
        goto usage_fail;
    }
    a.decay_fraction = decay_fraction;
    if ((train_files.n == 0) == (data_dir == NULL)) {
        fprintf(stderr, "plm pretrain: either --train FILE... or --data DIR is required (see plm pretrain --help)\n");
        goto usage_fail;
    }
    if (data_dir && valid_files.n > 0) {
        fprintf(stderr, "plm pretrain: --data brings its validation split; --validation goes with --train\n");
        goto usage_fail;
    }
    if (data_dir && !tokenizer_path && !resume && !init_from) {
        snprintf(data_tok, sizeof data_tok, "%s/tokenizer.json", data_dir);
        tokenizer_path = data_tok;
    }
    if (strcmp(masking, "token") == 0)
        a.obj.masking = PLM_MASK_TOKEN;
    else if (strcmp(masking, "whole_word") == 0 || strcmp(masking, "whole-word") == 0)
        a.obj.masking = PLM_MASK_WHOLE_WORD;
    else if (strcmp(masking, "span") == 0)
        a.obj.masking = PLM_MASK_SPAN;
    else {
        fprintf(stderr, "plm pretrain: --masking must be token, whole_word or span, got \"%s\"\n", masking);
        goto usage_fail;
    }
    if (plm_objective_opts_check(&a.obj) != 0) {
        fprintf(stderr, "plm pretrain: %s\n", plm_last_error());
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
    char *resume_dir = NULL, path[4200];
    if (resume) {
        long resume_step;
        if (!(resume_dir = plm_find_checkpoint(resume, &resume_step))) goto fail;
        if (plm_dist_is_root()) fprintf(stderr, "resuming from %s (step %ld)\n", resume_dir, resume_step);
        a.resume_from_checkpoint = resume_dir;
    }
    const char *model_dir = resume ? resume_dir : init_from;
    if (model_dir && electra) {
        /* both models of an ELECTRA checkpoint (electra.h): resuming, or continuing */
        if (!plm_electra_dir(model_dir)) {
            plm_error("%s: --objective electra continues from an ELECTRA pretraining directory (with generator/); "
                      "start a new one with --config",
                      model_dir);
            goto fail;
        }
        snprintf(path, sizeof path, "%s/tokenizer.json", model_dir);
        if (!(tok = plm_tokenizer_load(path)) || !(m = plm_electra_load(model_dir))) goto fail;
    } else if (model_dir) {
        /* continued pretraining reads the base weights of any checkpoint into a model
         * with the objective's head (an LM head) */
        plm_head_spec lm[2] = {{PLM_HEAD_LM, 0, 0, 1.0f, PLM_SEQ_POOL_DEFAULT},
                               {PLM_HEAD_NSP, 0, 2, 1.0f, PLM_SEQ_POOL_DEFAULT}};
        int nheads = a.obj.pair != PLM_PAIR_NONE ? 2 : 1; /* BertForPreTraining for NSP/SOP */
        /* T5's LM head sits on its decoder: its own config.json names it */
        if ((rc = resume || t5 ? cli_load_model(model_dir, &m, &tok)
                               : cli_load_model_heads(model_dir, lm, nheads, a.seed, quiet, &m, &tok)) != 0)
            goto fail;
        rc = PLM_EXIT_INPUT;
    } else {
        plm_config cfg;
        if (config_path) {
            if (plm_config_load(&cfg, config_path) != 0) goto fail;
        } else {
            plm_config_default(&cfg, t5                               ? PLM_ARCH_T5
                                     : a.objective == PLM_OBJ_CLM     ? PLM_ARCH_GPT2
                                     : a.objective == PLM_OBJ_ELECTRA ? PLM_ARCH_ELECTRA
                                                                      : PLM_ARCH_BERT);
        }
        if (electra && cfg.arch == PLM_ARCH_BERT) cfg.arch = PLM_ARCH_ELECTRA; /* the same body, ELECTRA's names */
        if (electra && cfg.arch != PLM_ARCH_ELECTRA) {
            plm_error("%s: --objective electra needs an encoder config (model_type electra or bert)",
                      config_path ? config_path : "config");
            goto fail;
        }
        if (a.obj.pair != PLM_PAIR_NONE && cfg.arch != PLM_ARCH_BERT) {
            plm_error("%s: --objective %s needs a BERT config (the NSP head reads BERT's pooler)",
                      config_path ? config_path : "config", objective);
            goto fail;
        }
        if (tokenizer_path) {
            tok = plm_tokenizer_load(tokenizer_path);
            if (!tok) goto fail;
        } else {
            plm_tokenizer_train_opts to;
            plm_tokenizer_train_opts_default(&to);
            to.vocab_size = config_path ? cfg.vocab_size : vocab_size;
            if (t5) to.vocab_size -= extra_ids; /* the sentinels fill the top */
            to.special_tokens = special_tokens;
            to.n_special = (int)PLM_ARRAY_LEN(special_tokens);
            to.show_progress = !quiet;
            if (!quiet)
                fprintf(stderr, "training a byte-level BPE tokenizer (vocab %d) on the corpus\n", to.vocab_size);
            tok = plm_tokenizer_train_bpe((const char *const *)train_files.items, train_files.n, &to);
            if (!tok) goto fail;
            if (t5 && add_sentinels(tok, extra_ids) != 0) goto fail;
            if (!config_path) cfg.vocab_size = plm_tokenizer_vocab_size(tok);
        }
        if (t5 && tokenizer_path && add_sentinels(tok, extra_ids) != 0) goto fail;
        if (plm_tokenizer_vocab_size(tok) > cfg.vocab_size) {
            plm_error("%s: vocab_size %d is smaller than the tokenizer's %d tokens",
                      config_path ? config_path : "config", cfg.vocab_size, plm_tokenizer_vocab_size(tok));
            goto fail;
        }
        config_set_special_ids(&cfg, tok);
        if (cfg.arch == PLM_ARCH_T5) {
            /* HF's T5: the decoder starts from the pad token */
            if (cfg.pad_token_id < 0 || cfg.eos_token_id < 0) {
                plm_error("the tokenizer needs a pad and an EOS token for T5");
                goto fail;
            }
            cfg.decoder_start_token_id = cfg.pad_token_id;
            cfg.bos_token_id = cfg.mask_token_id = cfg.cls_token_id = cfg.sep_token_id = -1;
        }
        if (electra) {
            plm_config gen;
            plm_model_spec spec;
            if (plm_electra_generator_config(&gen, &cfg, generator_size) != 0) goto fail;
            plm_electra_spec(&spec, &cfg, &gen, disc_weight);
            m = plm_model_create_spec(&spec, a.seed);
        } else {
            plm_model_spec spec;
            plm_model_spec_default(&spec, &cfg);
            if (a.obj.pair != PLM_PAIR_NONE) plm_model_spec_add_head(&spec, PLM_HEAD_NSP, 2); /* BertForPreTraining */
            m = plm_model_create_spec(&spec, a.seed);
        }
        if (!m) goto fail;
    }
    if (t5) {
        if (m->config.arch != PLM_ARCH_T5) {
            plm_error("--objective t5 needs a T5 model (a config.json with \"model_type\": \"t5\")");
            rc = PLM_EXIT_USAGE;
            goto fail;
        }
        if (add_sentinels(tok, extra_ids) != 0) goto fail;
        a.obj.decoder_start_token_id = m->config.decoder_start_token_id;
    } else if (m->config.arch == PLM_ARCH_T5) {
        plm_error("a T5 model trains with --objective t5");
        rc = PLM_EXIT_USAGE;
        goto fail;
    }
    /* the saved config says how the model was last trained: causal after CLM, bidirectional
     * after MLM, clm+mlm or ELECTRA (generate and fill-mask read is_decoder); a checkpoint
     * continued with another objective changes it */
    bool decoder = a.objective == PLM_OBJ_CLM;
    if (!t5 && m->config.is_decoder != decoder) {
        if (model_dir && !quiet)
            fprintf(stderr, "note: %s was trained %s; --objective %s makes it %s (is_decoder %s)\n", model_dir,
                    m->config.is_decoder ? "causally" : "bidirectionally", objective,
                    decoder ? "causal" : "bidirectional", decoder ? "true" : "false");
        for (int k = 0; k < m->num_backbones; k++) m->bb[k].config.is_decoder = decoder;
        m->config.is_decoder = decoder;
    }
    if (needs_mask && plm_tokenizer_special(tok, PLM_SPECIAL_MASK) < 0) {
        plm_error("the tokenizer has no [MASK] token, needed for --objective %s", objective);
        goto fail;
    }
    int32_t sep = plm_tokenizer_special(tok, PLM_SPECIAL_EOS);
    if (sep < 0) sep = plm_tokenizer_special(tok, PLM_SPECIAL_SEP);
    if (data_dir) {
        /* shards through mmap; the tokenizer must be the one the data was prepared with */
        if (plm_shards_open(data_dir, "train", tok, true, &train) != 0 ||
            plm_shards_open(data_dir, "validation", tok, true, &valid) != 0)
            goto fail;
        if (train.n == 0) {
            plm_error("%s: the train split has no tokens", data_dir);
            goto fail;
        }
    } else if (plm_corpus_tokenize(tok, (const char *const *)train_files.items, train_files.n, sep, &train, !quiet) !=
               0) {
        goto fail;
    } else if (valid_files.n > 0) {
        if (plm_corpus_tokenize(tok, (const char *const *)valid_files.items, valid_files.n, sep, &valid, !quiet) != 0)
            goto fail;
    } else if (valid_split > 0) { /* hold out the tail of the stream */
        size_t nv = (size_t)((double)train.n * valid_split);
        if (a.obj.pair != PLM_PAIR_NONE) {
            /* pairs: whole documents, at least two (a random next segment needs another one) */
            size_t cut = train.n - PLM_MIN(nv, train.n), docs = 0;
            while (cut > 0 && !((train.flags[cut] & PLM_TOK_DOC_START) && ++docs >= 2 && train.n - cut >= nv)) cut--;
            nv = cut > 0 ? train.n - cut : 0;
        }
        if (nv > (size_t)a.max_seq_length + 1) {
            valid.n = nv;
            valid.ids = plm_malloc(nv * sizeof(int32_t));
            memcpy(valid.ids, train.ids + train.n - nv, nv * sizeof(int32_t));
            valid.flags = plm_malloc(nv);
            memcpy(valid.flags, train.flags + train.n - nv, nv);
            train.n -= nv;
        }
    }
    if (!quiet) {
        fprintf(stderr,
                "model: %s, %d layers, hidden %d, %d heads, %.2fM parameters; %zu training tokens, %zu validation\n",
                plm_arch_name(m->config.arch), m->config.num_hidden_layers, m->config.hidden_size,
                m->config.num_attention_heads, (double)m->num_params / 1e6, train.n, valid.n);
        if (plm_electra_is_joint(m))
            fprintf(stderr, "generator: %d layers, hidden %d, %d heads (embeddings shared); lambda %g\n",
                    m->bb[1].config.num_hidden_layers, m->bb[1].config.hidden_size, m->bb[1].config.num_attention_heads,
                    (double)m->heads[0].spec.weight);
        if (a.objective == PLM_OBJ_CLM_MLM)
            fprintf(stderr, "two phases: CLM (causal) for steps 1-%ld, then MLM (bidirectional)\n",
                    lround(a.clm_fraction * (double)a.max_steps));
    }
    if ((rc = plm_train(m, tok, &train, valid.n ? &valid : NULL, &a)) != 0) goto fail;
    if (!quiet && electra)
        fprintf(stderr,
                "saved %s/{config.json,model.safetensors} (the discriminator, ElectraForPreTraining), "
                "%s/generator/ (ElectraForMaskedLM), tokenizer.json, metrics.jsonl, loss.svg\n",
                a.output_dir, a.output_dir);
    else if (!quiet)
        fprintf(stderr, "saved %s/{config.json,model.safetensors,tokenizer.json}, metrics.jsonl, loss.svg\n",
                a.output_dir);
    rc = 0;
    goto done;
fail:
    cli_fail("pretrain", rc);
done:
    if (train.shards)
        plm_shards_close(&train);
    else
        plm_token_stream_free(&train);
    if (valid.shards)
        plm_shards_close(&valid);
    else
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
