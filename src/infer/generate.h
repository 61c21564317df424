/* generate.h - autoregressive generation from a causal model with a KV cache: each new
 * token runs one position through the network, attending to the keys and values
 * cached for the earlier positions. Sampling is greedy, or temperature with optional
 * top-k and top-p (nucleus) filtering, reproducible from a seed. */
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
} plm_sampling;

void plm_sampling_default(plm_sampling *s);

typedef struct {
    const plm_model *m;
    int max_len, len;
    float *k, *v; /* [L, max_len, C] */
    float *x, *ln, *qkv, *scores, *atty, *tmp, *fch, *h1, *h2, *logits;
    float mean[2], rstd[2];
} plm_kv_cache;

int plm_kv_cache_init(plm_kv_cache *kv, const plm_model *m, int max_len);
void plm_kv_cache_free(plm_kv_cache *kv);
/* Runs token id at the next position; returns the logits [V] for the next token. */
const float *plm_kv_cache_step(plm_kv_cache *kv, int32_t id);

/* Picks the next token from logits (modified in place). */
int32_t plm_sample(float *logits, int V, const plm_sampling *s, plm_rng *r);

/* Generates up to max_new_tokens after the prompt; writes them to out (capacity
 * max_new_tokens) and returns how many. Calls on_token (if set) as each arrives. */
int plm_generate(const plm_model *m, const int32_t *prompt, int n_prompt, const plm_sampling *s, int32_t *out,
                 void (*on_token)(int32_t id, void *ctx), void *ctx);

/* Text-to-text generation with a T5 encoder-decoder: the encoder runs once over input
 * (n_input tokens, which should end in EOS as T5's tokenizer adds it); the decoder starts
 * from decoder_start_token_id and decodes token by token with its self-attention keys
 * and values and the cross-attention keys and values of the encoder states cached
 * (t5.h). Same sampling, output and return value as plm_generate. */
int plm_generate_seq2seq(plm_model *m, const int32_t *input, int n_input, const plm_sampling *s, int32_t *out,
                         void (*on_token)(int32_t id, void *ctx), void *ctx);

#endif
