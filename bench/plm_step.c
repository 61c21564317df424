/* plm_step.c - times one plm training step (zero grads, forward, backward, clip, AdamW)
 * on the benchmark configurations; bench/run.sh puts it next to PyTorch's.
 *   plm_step --config NAME --objective mlm|clm|t5|mlm+nsp|electra [--steps N] [--no-overlap] [--profile]
 *            [--bf16] [--dump DIR]
 * NAME: bench/flops.py's CONFIGS. --profile prints the per-op time table
 * (src/core/profile.h) of the timed steps first; --bf16: bf16 GEMMs (gemm.h), the JSON
 * says which ISA ran ("isa"); every run reports its peak RSS ("peak_rss_mb").
 * t5: a T5 v1.0 encoder-decoder (ReLU, tied, L layers each) on span-corrupted random
 * windows (T inputs, Tt targets); tokens count B * (T + Tt); FLOPs as bench/flops.py's
 * t5_step_flops.
 * mlm+nsp: BertForPreTraining (MLM head + pooler + NSP head) on the MLM batch with
 * token_type_ids 0 / 1 (first / second half) and random NSP labels; loss = MLM + NSP.
 * electra: an ELECTRA discriminator of the config plus a generator of 1/4 its width
 * (electra.h, google-research/electra's get_generator_config), sharing the embedding
 * tables; the generator reads the MLM batch (85% [MASK], 15% kept), the discriminator
 * the batch with samples from the generator's softmax; loss = L_gen + 50 L_disc.
 * tokens_per_s counts B * T (the discriminator's tokens); FLOPs as bench/flops.py's
 * electra_step_flops.
 * --dump DIR: before timing, writes the initial model (HF names: DIR, and DIR/generator
 * for electra), the batch (DIR/batch.safetensors: input_ids, token_type_ids, labels,
 * seq_labels, electra's disc_input_ids) and the loss of a forward pass without dropout
 * (DIR/loss.json), for bench/torch_step.py --check DIR: the same loss in PyTorch; no timing.
 * Under mpirun every rank runs the configuration's batch and the gradients are all-reduced
 * as `plm pretrain` does (train/dist.h): tokens_per_s counts every rank's tokens, and
 * comm_ms is the median time spent waiting for the reduction after the backward pass (the
 * communication the overlap did not hide, and waiting for a slower rank). With --no-overlap
 * a barrier comes first: wait_ms is the time waiting there for the slower rank, comm_ms
 * the allreduce alone. Rank 0 prints.
 * Last line: {"tokens_per_s": ..., "step_ms": ..., "gflops": ..., "peak_rss_mb": ...} */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/profile.h"
#include "core/rng.h"
#include "data/dataloader.h"
#include "data/span_corruption.h"
#include "model/bf16_rate.h"
#include "model/gemm.h"
#include "model/model.h"
#include "model/model_io.h"
#include "train/adamw.h"
#include "train/dist.h"
#include "train/electra.h"
#include "train/safetensors.h"

/* Peak resident set size of this process (VmHWM), MB. */
static double peak_rss_mb(void) {
    FILE *f = fopen("/proc/self/status", "r");
    char line[256];
    double kb = 0.0;
    while (f && fgets(line, sizeof line, f))
        if (strncmp(line, "VmHWM:", 6) == 0) kb = atof(line + 6);
    if (f) fclose(f);
    return kb / 1024.0;
}

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    plm_dist_init(&argc, &argv);
    const char *cfg = "tiny", *obj = "clm", *dump = NULL;
    int steps = 10;
    plm_dist_opts dopt = {0};
    bool profile = false, bf16 = false;
    for (int i = 1; i < argc; i += 2) {
        if (strcmp(argv[i], "--no-overlap") == 0 || strcmp(argv[i], "--profile") == 0 ||
            strcmp(argv[i], "--bf16") == 0) {
            if (argv[i][2] == 'n')
                dopt.no_overlap = true;
            else if (argv[i][2] == 'p')
                profile = true;
            else
                bf16 = plm_gemm_set_bf16(true);
            i--;
            continue;
        }
        if (i + 1 >= argc) break;
        if (strcmp(argv[i], "--config") == 0)
            cfg = argv[i + 1];
        else if (strcmp(argv[i], "--objective") == 0)
            obj = argv[i + 1];
        else if (strcmp(argv[i], "--steps") == 0)
            steps = atoi(argv[i + 1]);
        else if (strcmp(argv[i], "--dump") == 0)
            dump = argv[i + 1];
        else {
            fprintf(stderr, "plm_step: unknown option %s\n", argv[i]);
            return 2;
        }
    }
    bool nsp = strcmp(obj, "mlm+nsp") == 0, electra = strcmp(obj, "electra") == 0;
    bool mlm = strcmp(obj, "mlm") == 0 || nsp || electra, t5 = strcmp(obj, "t5") == 0;
    if (!mlm && !t5 && strcmp(obj, "clm") != 0) {
        fprintf(stderr, "plm_step: unknown objective %s (mlm, clm, t5, mlm+nsp, electra)\n", obj);
        return 2;
    }
    plm_config c;
    plm_config_default(&c, t5 ? PLM_ARCH_T5 : electra ? PLM_ARCH_ELECTRA : mlm ? PLM_ARCH_BERT : PLM_ARCH_GPT2);
    int B, T;
    if (strcmp(cfg, "tiny") == 0) {
        c.num_hidden_layers = 2, c.hidden_size = 128, c.num_attention_heads = 2, c.vocab_size = 8192, T = 128, B = 32;
    } else if (strcmp(cfg, "small") == 0) {
        c.num_hidden_layers = 4, c.hidden_size = 256, c.num_attention_heads = 4, c.vocab_size = 8192, T = 128, B = 32;
    } else if (strcmp(cfg, "medium") == 0) {
        c.num_hidden_layers = 6, c.hidden_size = 384, c.num_attention_heads = 6, c.vocab_size = 16384, T = 256, B = 16;
    } else if (strcmp(cfg, "small-512") == 0) {
        c.num_hidden_layers = 4, c.hidden_size = 256, c.num_attention_heads = 4, c.vocab_size = 8192, T = 512, B = 8;
    } else if (strcmp(cfg, "small-1024") == 0) {
        c.num_hidden_layers = 4, c.hidden_size = 256, c.num_attention_heads = 4, c.vocab_size = 8192, T = 1024, B = 4;
    } else if (strcmp(cfg, "gpt2-mini") == 0) {
        c.num_hidden_layers = 6, c.hidden_size = 512, c.num_attention_heads = 8, c.vocab_size = 50257, T = 256, B = 8;
    } else if (strcmp(cfg, "gpt2-124m") == 0) {
        c.num_hidden_layers = 12, c.hidden_size = 768, c.num_attention_heads = 12, c.vocab_size = 50257, T = 256, B = 4;
    } else {
        fprintf(stderr, "plm_step: unknown config %s\n", cfg);
        return 2;
    }
    c.intermediate_size = 4 * c.hidden_size;
    c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.1f;
    c.pad_token_id = 0;
    if (c.max_position_embeddings < T) c.max_position_embeddings = T;
    c.num_decoder_layers = c.num_hidden_layers;
    int L5 = 0, Tt = 0; /* T5: window and target lengths */
    if (t5) plm_t5_lengths(T, 0.15, 3.0, &L5, &Tt);
    plm_config gc = c; /* electra: the generator */
    plm_model *m;
    if (nsp || electra) {
        plm_model_spec sp;
        if (electra) {
            plm_electra_generator_config(&gc, &c, 0.25f);
            plm_electra_spec(&sp, &c, &gc, 50.0f);
        } else {
            plm_model_spec_default(&sp, &c);
            plm_model_spec_add_head(&sp, PLM_HEAD_NSP, 2);
        }
        m = plm_model_create_spec(&sp, 1);
    } else {
        m = plm_model_create(&c, 1);
    }
    if (!m) {
        fprintf(stderr, "plm_step: %s\n", plm_last_error());
        return 1;
    }
    plm_model_reserve(m, B, T);
    plm_electra_state est;
    plm_electra_state_init(&est, electra ? B : 1, electra ? T : 1);
    plm_grad_sync *gs = plm_grad_sync_create(m, 1, &dopt);
    plm_adamw opt;
    plm_grad_sync_adamw_init(gs, &opt);
    plm_adamw_hparams h = {1e-4f, 0.9f, 0.999f, 1e-8f, 0.01f};

    /* random tokens; MLM masks them as the dataloader does (15%, 80/10/10) */
    size_t N = (size_t)B * T;
    int32_t *ids = plm_malloc(N * sizeof(int32_t)), *labels = plm_malloc(N * sizeof(int32_t));
    plm_rng r;
    plm_rng_seed(&r, 1, 2);
    for (size_t i = 0; i < N; i++) ids[i] = 5 + (int32_t)plm_rng_below(&r, (uint32_t)c.vocab_size - 5);
    long n_pred = (long)N;
    if (mlm) {
        plm_vocab_info v = {.vocab_size = c.vocab_size, .cls = 1, .sep = 2, .mask = 3, .pad = 0, .eos = 4};
        v.is_special = plm_calloc((size_t)c.vocab_size, 1);
        for (int i = 0; i < 5; i++) v.is_special[i] = 1;
        v.random_pool = plm_malloc((size_t)c.vocab_size * sizeof(int32_t));
        for (int i = 5; i < c.vocab_size; i++) v.random_pool[v.num_random++] = i;
        plm_objective_opts o;
        plm_objective_opts_default(&o);
        if (electra) o.mask_replace_prob = 0.85f, o.random_replace_prob = 0.0f; /* google-research/electra */
        n_pred = 0;
        for (int b = 0; b < B; b++) n_pred += plm_mlm_mask(ids + (size_t)b * T, labels + (size_t)b * T, T, &v, &o, &r);
        plm_vocab_info_free(&v);
    } else if (!t5) {
        for (size_t i = 0; i < N; i++) labels[i] = (i + 1) % T ? ids[i + 1] : ids[i];
    }
    int32_t *types = NULL, seq_labels[64] = {0}; /* mlm+nsp: segments and NSP labels (B <= 64) */
    if (nsp) {
        types = plm_malloc(N * sizeof(int32_t));
        for (size_t i = 0; i < N; i++) types[i] = (int)(i % (size_t)T) >= T / 2;
        for (int b = 0; b < B && b < 64; b++) seq_labels[b] = (int32_t)plm_rng_below(&r, 2);
    }
    int32_t *enc = NULL, *dec = NULL, *tgt = NULL;
    if (t5) { /* span corruption of random windows: sentinels from the top, EOS 1, start 0 */
        enc = plm_malloc((size_t)B * T * sizeof(int32_t));
        dec = plm_malloc((size_t)B * Tt * sizeof(int32_t));
        tgt = plm_malloc((size_t)B * Tt * sizeof(int32_t));
        int32_t *win = plm_malloc((size_t)L5 * sizeof(int32_t));
        uint8_t *noise = plm_malloc((size_t)L5);
        for (int b = 0; b < B; b++) {
            for (int i = 0; i < L5; i++) win[i] = 5 + (int32_t)plm_rng_below(&r, (uint32_t)c.vocab_size - 105);
            plm_t5_noise_mask(noise, L5, 0.15, 3.0, &r);
            int ni, nt;
            plm_t5_corrupt(win, noise, L5, c.vocab_size - 1, 1, enc + (size_t)b * T, &ni, tgt + (size_t)b * Tt, &nt);
            plm_t5_shift_right(tgt + (size_t)b * Tt, Tt, 0, dec + (size_t)b * Tt);
        }
        free(win);
        free(noise);
        n_pred = (long)B * Tt;
    }
    /* the step's batch; training steps add dropout on top of it */
    const plm_batch batch = {.B = B,
                             .T = T,
                             .input_ids = ids,
                             .token_type_ids = types,
                             .labels = labels,
                             .seq_labels = nsp ? seq_labels : NULL,
                             .causal = !mlm};
    if (dump && plm_dist_is_root()) {
        /* the loss of a forward pass without dropout, the weights and the batch */
        plm_batch b = batch;
        double loss;
        if (t5) {
            plm_batch eb = {.B = B, .T = T, .input_ids = enc},
                      db = {.B = B, .T = Tt, .input_ids = dec, .labels = tgt, .causal = true};
            plm_model_run_seq2seq(m, &eb, &db, false, 1.0f);
            loss = m->loss;
        } else if (electra) {
            plm_electra_step(m, &est, &b, 7, false, 1.0f);
            loss = m->loss;
        } else {
            plm_model_forward(m, &b, false, 1.0f);
            loss = m->loss;
        }
        char path[4200];
        snprintf(path, sizeof path, "%s/batch.safetensors", dump);
        int rc = plm_mkdirs(dump);
        if (rc == 0) rc = electra ? plm_electra_save(m, dump, NULL, 0) : plm_model_save(m, dump, NULL, 0);
        plm_st_writer w;
        plm_st_writer_init(&w);
        int64_t shp[2] = {B, T}, shp_t[2] = {B, Tt}, shp_b[1] = {B};
        plm_st_add(&w, "input_ids", PLM_DT_I32, 2, shp, t5 ? enc : ids);
        if (types) plm_st_add(&w, "token_type_ids", PLM_DT_I32, 2, shp, types);
        if (t5) {
            plm_st_add(&w, "decoder_input_ids", PLM_DT_I32, 2, shp_t, dec);
            plm_st_add(&w, "labels", PLM_DT_I32, 2, shp_t, tgt);
        } else {
            plm_st_add(&w, "labels", PLM_DT_I32, 2, shp, labels);
        }
        if (nsp) plm_st_add(&w, "seq_labels", PLM_DT_I32, 1, shp_b, seq_labels);
        if (electra) plm_st_add(&w, "disc_input_ids", PLM_DT_I32, 2, shp, est.disc_ids);
        if (rc == 0) rc = plm_st_write(&w, path);
        plm_st_writer_free(&w);
        snprintf(path, sizeof path, "%s/loss.json", dump);
        FILE *f = rc == 0 ? fopen(path, "w") : NULL;
        if (f) {
            fprintf(f, "{\"objective\": \"%s\", \"config\": \"%s\", \"loss\": %.9g}\n", obj, cfg, loss);
            fclose(f);
        }
        if (!f) {
            fprintf(stderr, "plm_step: --dump %s: %s\n", dump, plm_last_error());
            return 1;
        }
        printf("{\"dump\": \"%s\", \"loss\": %.9g}\n", dump, loss);
        return plm_dist_finish(0); /* no timing */
    }
    double *times = plm_malloc((size_t)steps * 3 * sizeof(double)), *comm = times + steps, *wait = comm + steps;
    for (int s = -3; s < steps; s++) {
        if (s == 0 && profile) {
            plm_prof_enable(true);
            plm_prof_reset();
        }
        double t0 = plm_now();
        plm_model_zero_grad(m);
        plm_batch b = batch;
        b.training = true;
        b.dropout_seed = (uint64_t)(s + 100);
        plm_grad_sync_micro_begin(gs, 0);
        if (t5) {
            plm_batch eb = {.B = B, .T = T, .input_ids = enc, .training = true, .dropout_seed = (uint64_t)(s + 100)};
            plm_batch db = {.B = B,
                            .T = Tt,
                            .input_ids = dec,
                            .labels = tgt,
                            .causal = true,
                            .training = true,
                            .dropout_seed = (uint64_t)(s + 100)};
            plm_model_run_seq2seq(m, &eb, &db, true, 1.0f);
        } else if (electra) {
            plm_electra_step(m, &est, &b, (uint64_t)(s + 1000), true, 1.0f);
        } else {
            plm_model_forward(m, &b, true, 1.0f);
        }
        plm_grad_sync_micro_end(gs, 0);
        double t1 = plm_now();
        if (dopt.no_overlap) plm_dist_barrier();
        if (s >= 0) wait[s] = plm_now() - t1;
        t1 = plm_now();
        plm_grad_sync_finish(gs);
        if (s >= 0) comm[s] = plm_now() - t1;
        plm_grad_sync_clip(gs, 1.0);
        plm_grad_sync_adamw_step(gs, &opt, &h, 1e-4f);
        if (s >= 0) times[s] = plm_now() - t0;
    }
    double mean = 0.0;
    for (int s = 0; s < steps; s++) mean += times[s] / steps;
    if (profile) {
        printf("per-op time of one %s %s step (mean of %d; exclusive: nested ops are not counted twice)\n", cfg, obj,
               steps);
        plm_prof_report(stdout, steps, mean * 1e3);
    }
    qsort(times, (size_t)steps, sizeof(double), cmp_double);
    qsort(comm, (size_t)steps, sizeof(double), cmp_double);
    qsort(wait, (size_t)steps, sizeof(double), cmp_double);
    double med = times[steps / 2], ranks = plm_dist_size();
    double flops = plm_model_flops(&c, B, T, (int)n_pred);
    double tokens = (double)N;
    if (t5) { /* bench/flops.py t5_step_flops */
        double h = c.hidden_size, I = c.intermediate_size, V = c.vocab_size, L = c.num_hidden_layers;
        flops = 6.0 * B * T * L * (4 * h * h + 2 * h * I) + 6.0 * B * Tt * L * (6 * h * h + 2 * h * I) +
                6.0 * B * T * L * 2 * h * h + 6.0 * B * Tt * h * V +
                12.0 * L * B * h * ((double)T * T + (double)Tt * Tt + (double)Tt * T);
        tokens = (double)B * (T + Tt);
    } else if (electra) { /* bench/flops.py electra_step_flops */
        flops = plm_model_flops(&c, B, T, 0) + 6.0 * B * T * (double)c.hidden_size * c.hidden_size /* RTD dense */ +
                plm_model_flops(&gc, B, T, (int)n_pred);
    }
    flops *= ranks;
    if (plm_dist_is_root())
        printf("{\"tokens_per_s\": %.1f, \"step_ms\": %.2f, \"step_ms_min\": %.2f, \"gflops\": %.2f, \"n_pred\": %ld, "
               "\"ranks\": %d, \"comm_ms\": %.2f, \"wait_ms\": %.2f, \"grad_mb\": %.2f, \"peak_rss_mb\": %.1f, "
               "\"precision\": \"%s\", \"isa\": \"%s\", \"bf16_dot_vs_fma\": %.2f}\n",
               tokens * ranks / med, med * 1e3, times[0] * 1e3, flops / med * 1e-9, n_pred, (int)ranks,
               comm[steps / 2] * 1e3, wait[steps / 2] * 1e3, (double)m->num_params * 4 / 1048576.0, peak_rss_mb(),
               bf16 ? "bf16" : "fp32", bf16 ? plm_bf16_isa() : "fp32", plm_bf16_dot_ratio());
    plm_grad_sync_free(gs);
    plm_adamw_free(&opt);
    plm_model_free(m);
    free(ids);
    free(labels);
    free(times);
    free(enc);
    free(dec);
    free(tgt);
    free(types);
    plm_electra_state_free(&est);
    return plm_dist_finish(0);
}
