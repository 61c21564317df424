/* generate.h - autoregressive generation with KV caches, for a batch of prompts.
 * Each new token runs one position per sequence through the network, attending to the
 * keys and values cached for that sequence's earlier positions; a prompt is run as one
 * chunk (GEMMs over all its positions, logits only at its last one). Sampling is greedy,
 * or temperature with optional top-k and top-p (nucleus) filtering, reproducible from a
 * seed. Owns the batched KV cache (preallocated; nothing is allocated per token). */
#ifndef PLM_GENERATE_H
#define PLM_GENERATE_H

#include <stdbool.h>
#include <stdint.h>

#include "core/rng.h"
#include "model/model.h"

typedef struct {
    int max_new_tokens;
    bool do_sample;    /* false: greedy */
    float temperature; /* > 0 */
    int top_k;         /* 0: off */
    float top_p;       /* 1: off */
    uint64_t seed;
    int32_t eos_token_id; /* stop when generated; -1: never */
    /* plm_generate_batch: sequence i's own seed seeds[i] (NULL: every sequence's stream is
     * seeded from seed alone); distinct seeds draw independent samples of one prompt */
    const uint64_t *seeds;
} plm_sampling;

void plm_sampling_default(plm_sampling *s);

/* The KV cache of B sequences of a causal model. Sequences are not padded: each has its
 * own length (len[b] positions cached) and its own slice of the cache, so a batch of
 * prompts of different lengths needs no attention mask and no position offsets, and a
 * sequence's keys, values and logits are the ones it would get alone (up to the
 * summation order of the GEMMs). A call appends any number of tokens to any subset of
 * the sequences: their rows are stacked into one [rows, C] matrix for every linear layer. */
typedef struct {
    const plm_model *m;
    int B, max_len, max_rows; /* sequences, positions per sequence, rows per call */
    int *len;                 /* [B] */
    float *k, *v;             /* [L, B, max_len, C] */
    /* one call's activations, [max_rows, width] */
    float *x, *ln, *qkv, *atty, *tmp, *fch, *h1;
    float *att;             /* attention_forward_ex's saved state for one chunk (attention.h) */
    float *last, *lt;       /* [B, max(C, E)]: each item's last row, and the head's transform */
    float *logits;          /* [B, V] */
    float *mean, *rstd;     /* [max_rows]: LayerNorm statistics (not needed, but written) */
    int *row_seq, *row_pos; /* [max_rows]: sequence and position of each row */
    int *grow;              /* [max_rows]: the rows attend_rows takes (generate.c) */
} plm_kv_cache;

/* B sequences of up to max_len positions (capped at max_position_embeddings); a call
 * takes at most max_rows tokens in total. Returns 0. */
int plm_kv_cache_init_batch(plm_kv_cache *kv, const plm_model *m, int B, int max_len, int max_rows);
/* One sequence, one token per call. */
int plm_kv_cache_init(plm_kv_cache *kv, const plm_model *m, int max_len);
void plm_kv_cache_free(plm_kv_cache *kv);
/* Appends n[i] tokens (ids, concatenated over the items) to sequence seq[i], for each of
 * the count items (distinct sequences); returns the logits [count, V] of each item's last
 * new token. */
const float *plm_kv_cache_append(plm_kv_cache *kv, int count, const int *seq, const int *n, const int32_t *ids);
/* Runs token id at the next position of sequence 0; returns the logits [V] for the next token. */
const float *plm_kv_cache_step(plm_kv_cache *kv, int32_t id);

/* Picks the next token from logits (modified in place). work: NULL, or room for
 * plm_sample_work_bytes(V) so that nothing is allocated. */
size_t plm_sample_work_bytes(int V);
int32_t plm_sample(float *logits, int V, const plm_sampling *s, plm_rng *r, void *work);

/* Throughput of one generate call: prompt tokens run in the prefill chunks, and tokens
 * generated (each run through the network except a sequence's last). */
typedef struct {
    long prompt_tokens, new_tokens;
    double prefill_s, decode_s;
} plm_gen_stats;

/* Generates up to max_new_tokens after the prompt; writes them to out (capacity
 * max_new_tokens) and returns how many. Calls on_token (if set) as each arrives. */
int plm_generate(const plm_model *m, const int32_t *prompt, int n_prompt, const plm_sampling *s, int32_t *out,
                 void (*on_token)(int32_t id, void *ctx), void *ctx);

/* Generates for count prompts as one batch: prompt i (n_prompt[i] tokens) gets its tokens
 * in out + i * max_new_tokens and their number in n_out[i]. Every sequence has its own
 * random stream seeded from s->seed alone (or s->seeds[i]), so each prompt's output,
 * sampled or greedy, is the one it gets when generated alone with that seed. on_token (if set) is called as tokens
 * arrive, with the prompt index. stats may be NULL. Returns 0, or -1 with the error set. */
int plm_generate_batch(const plm_model *m, const int32_t *const *prompts, const int *n_prompt, int count,
                       const plm_sampling *s, int32_t *out, int *n_out,
                       void (*on_token)(int seq, int32_t id, void *ctx), void *ctx, plm_gen_stats *stats);

/* What plm_generate_batch allocates, kept between calls (the rollouts of RL training):
 * the KV cache and the sampling state, grown to the largest call so far, so a call that
 * fits allocates nothing. Zero-initialise; free with plm_gen_workspace_free. */
typedef struct {
    plm_kv_cache kv; /* kv.m NULL: nothing allocated yet */
    int count;       /* sequences rng and seq hold */
    plm_rng *rng;    /* [count] */
    int *seq;        /* [3 count]: running sequences, lengths, quotas */
    int32_t *ids;    /* [kv.max_rows] */
    void *work;      /* plm_sample's, for kv.m's vocabulary */
} plm_gen_workspace;

/* plm_generate_batch with its buffers in ws (same results, bit for bit). */
int plm_generate_batch_ws(plm_gen_workspace *ws, const plm_model *m, const int32_t *const *prompts, const int *n_prompt,
                          int count, const plm_sampling *s, int32_t *out, int *n_out,
                          void (*on_token)(int seq, int32_t id, void *ctx), void *ctx, plm_gen_stats *stats);
/* Grows ws for every call of up to count prompts of up to max_prompt tokens and
 * max_new_tokens new ones: reserved before a loop, the loop's calls allocate nothing. */
void plm_gen_workspace_reserve(plm_gen_workspace *ws, const plm_model *m, int count, int max_prompt,
                               int max_new_tokens);
void plm_gen_workspace_free(plm_gen_workspace *ws);

/* Text-to-text generation with a T5 encoder-decoder: the encoder runs once over input
 * (n_input tokens, which should end in EOS as T5's tokenizer adds it); the decoder starts
 * from decoder_start_token_id and decodes token by token with its self-attention keys
 * and values and the cross-attention keys and values of the encoder states cached
 * (t5.h). Same sampling, output and return value as plm_generate. */
int plm_generate_seq2seq(plm_model *m, const int32_t *input, int n_input, const plm_sampling *s, int32_t *out,
                         void (*on_token)(int32_t id, void *ctx), void *ctx);

/* The same for count inputs as one batch: the encoder runs over the inputs right-padded
 * to the longest (padding masked out of its attention and of the cross-attention), the
 * decoder steps all sequences together until each has its EOS or max_new_tokens. Output
 * as plm_generate_batch. */
int plm_generate_seq2seq_batch(plm_model *m, const int32_t *const *inputs, const int *n_input, int count,
                               const plm_sampling *s, int32_t *out, int *n_out,
                               void (*on_token)(int seq, int32_t id, void *ctx), void *ctx, plm_gen_stats *stats);

#endif
