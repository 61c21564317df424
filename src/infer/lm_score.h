/* lm_score.h - log-likelihoods of text under a causal language model: the summed
 * log-probability of a continuation given a context (zero- and few-shot prompting,
 * tasks/prompting.h) and sliding-window perplexity over a token stream (plm eval).
 * Owns nothing between calls: activations are the model's (plm_model_reserve), the
 * batch buffers are allocated and freed inside each call.
 *
 * Both run whole sequences through the batched forward pass (GEMMs over B x T rows)
 * and read the LM head only at the rows whose next token is scored, so a sequence
 * costs one forward pass, not one per scored token. Sequences of a batch are padded on
 * the right: with causal attention a position never sees the padding after it, so the
 * scores equal those of each sequence run alone (up to float rounding). */
#ifndef PLM_LM_SCORE_H
#define PLM_LM_SCORE_H

#include <stddef.h>
#include <stdint.h>

#include "core/progress.h"
#include "model/model.h"

/* One continuation to score: log p(cont | ctx) = sum_i log p(cont[i] | ctx, cont[<i]).
 * n_ctx >= 1 (the first continuation token needs something to condition on; GPT-2
 * conditions an empty context on <|endoftext|>), n_ctx + n_cont <= the model's
 * max_position_embeddings. */
typedef struct {
    const int32_t *ctx;
    int n_ctx;
    const int32_t *cont;
    int n_cont;
    double logprob; /* out: the sum over the continuation's tokens, natural log */
    bool greedy;    /* out: every continuation token is the argmax of its distribution */
} plm_lm_request;

/* Scores n requests in batches of up to batch_size sequences (longest first, so a batch
 * pads little). The log-softmax is taken in double from the fp32 logits. progress may be
 * NULL; it advances by one per request. Returns 0, or -1 with the error set (a request
 * longer than the context, an id outside the vocabulary, a model without an LM head). */
int plm_lm_score(plm_model *m, plm_lm_request *reqs, int n, int batch_size, plm_progress *progress);

/* Perplexity of a token stream the way Hugging Face's perplexity guide computes it for
 * fixed-length models: windows of max_length tokens starting every stride tokens (the
 * last may be shorter); each window scores the tokens no earlier window scored,
 * conditioned on the up to max_length - 1 tokens before them in the window. With
 * stride < max_length every token but the first is scored exactly once (n - 1); with
 * stride == max_length the windows are disjoint and, as in the guide, the first token of
 * each window is not scored (nothing before it in its window): n - windows tokens.
 * The average is over exactly the scored tokens (the guide's own weighting subtracts one
 * token per window for its label shift even where none is lost; the difference is one
 * token in max_length / stride, negligible at stride 512). */
typedef struct {
    double nll;   /* sum of -log p over the scored tokens, natural log */
    long tokens;  /* scored tokens: n - 1, or n - windows for disjoint windows */
    long correct; /* of them, tokens that were the argmax of their distribution */
    long windows; /* forward passes of up to max_length tokens */
} plm_ppl_result;

int plm_lm_perplexity(plm_model *m, const int32_t *ids, size_t n, int max_length, int stride, int batch_size,
                      plm_progress *progress, plm_ppl_result *out);

#endif
