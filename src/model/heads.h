/* heads.h - the modules that turn a backbone's hidden states [B, T, C] into a loss.
 * Each head owns its parameters (HF names), its activations and its loss; its
 * backward pass adds to the backbone's dhidden (or dpooled). Labels come from the
 * batch (model.h). Losses are means over the counted rows, as HF's.
 *
 *   LM         logits = dec(t(h)) on rows with a label; t = dense -> GELU -> LN for
 *              BERT/ELECTRA (cls.predictions / generator_predictions), identity for
 *              GPT-2 and T5; dec is tied to the token embeddings; cross-entropy. T5 with
 *              tied embeddings scales h by d_model^-1/2 first (HF's rescaling).
 *              Only labelled rows are projected: MLM pays for 15% of the vocabulary GEMM.
 *              With the batch's label_weights the loss is sum_t w_t CE_t (DPO), not the mean;
 *              each row's CE is kept (row_loss) for per-sequence log-probabilities.
 *   NSP        seq_relationship(pooled) -> 2 logits; cross-entropy on seq_labels.
 *   SEQ_CLS    BERT: classifier(dropout(pooled)); ELECTRA: out_proj(dropout(GELU(
 *              dense(dropout(h[:, 0]))))); GPT-2: score(h at the last real token).
 *              With pooling cls / mean (BERT, GPT-2): classifier(dropout(v)) (GPT-2:
 *              score, no bias) with v = h[:, 0], or the mean of h over the real tokens
 *              (attention mask; all T without one), as sentence-transformers pools.
 *              num_labels == 1: regression, mean squared error on seq_targets; or, for a
 *              pairwise batch (batch.h), a reward model: the output is each sequence's
 *              reward and the loss Bradley-Terry's over its (chosen, rejected) row pairs
 *              (pairwise.h), with the pair statistics in `pairs`.
 *   TOKEN_CLS  classifier(dropout(h)) per token; cross-entropy on labels (-100 skipped).
 *   QA         qa_outputs(h) -> start and end logits over T; the mean of the two
 *              cross-entropies. A position T (an answer truncated away) is ignored, as
 *              HF's clamp does; plm also ignores -100 (HF would clamp it to 0).
 *   RTD        ELECTRA's discriminator: dense_prediction(act(dense(h))) -> one logit
 *              per token; binary cross-entropy on labels (0 original, 1 replaced) of the
 *              tokens whose label is not -100 (HF selects them by the attention mask:
 *              the objective gives padding -100). */
#ifndef PLM_HEADS_H
#define PLM_HEADS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backbone.h"
#include "batch.h"
#include "crossentropy.h"
#include "pairwise.h"

typedef enum {
    PLM_HEAD_LM = 0,
    PLM_HEAD_NSP,
    PLM_HEAD_SEQ_CLS,
    PLM_HEAD_TOKEN_CLS,
    PLM_HEAD_QA,
    PLM_HEAD_RTD,
} plm_head_kind;

/* What a SEQ_CLS head reads: the architecture's own choice (BERT's pooler, ELECTRA's
 * [CLS] head, GPT-2's last real token), the first token's state, or the mean state. */
typedef enum { PLM_SEQ_POOL_DEFAULT = 0, PLM_SEQ_POOL_CLS, PLM_SEQ_POOL_MEAN } plm_seq_pooling;

typedef struct {
    plm_head_kind kind;
    int backbone;            /* which backbone's hidden states it reads */
    int num_labels;          /* classes (SEQ_CLS, TOKEN_CLS); 1 = regression */
    float weight;            /* of its loss in the sum (ELECTRA weighs the discriminator by 50) */
    plm_seq_pooling pooling; /* SEQ_CLS only; ELECTRA takes the default only */
} plm_head_spec;

typedef struct plm_head_views {
    float *dense_w, *dense_b; /* transform / classifier dense */
    float *ln_w, *ln_b;       /* LM transform LayerNorm */
    float *out_w, *out_b;     /* the projection to logits: [K, C] (LM: [V, E], tied) */
} plm_head_views;

typedef struct {
    plm_head_spec spec;
    int index;      /* in the model: dropout keys and tensor ownership */
    int K;          /* logits per row: V, 2, num_labels, 1 */
    int in_dim;     /* C, or E for the LM head's transform output */
    int hidden;     /* the backbone's hidden_size C */
    bool transform; /* LM head with dense -> GELU -> LN */
    float in_scale; /* LM head: h is multiplied by this first (T5 tied: d_model^-1/2; else 1) */
    plm_head_views w, g;
    plm_ce_result result;     /* of the last forward */
    double loss;              /* mean loss of the last forward (NAN when nothing was counted) */
    plm_pairwise_stats pairs; /* SEQ_CLS on a pairwise batch: of the last forward */

    /* activations for up to cap rows */
    int cap;
    int num_rows;
    int32_t *rows, *targets;                 /* selected rows (flat b*T+t) and their targets */
    double *row_loss;                        /* LM: -log p(target) of each selected row (last forward) */
    float *row_weight;                       /* LM: the batch's label_weights of the selected rows */
    float *x, *d1, *d1g, *t, *tmean, *trstd; /* gathered input, dense out, GELU out, LN out */
    float *logits;                           /* [rows, K], then dlogits */
    float *dx, *dt, *dd;                     /* gradient buffers */
    float *block;                            /* the one allocation behind the buffers above */
    size_t block_bytes;
} plm_head;

/* Sets K, in_dim and transform from the spec and the backbone's config. */
void head_setup(plm_head *h, const plm_head_spec *spec, const plm_backbone *bb);
/* Sizes the activations for B x T rows. */
void head_reserve(plm_head *h, int B, int T);
void head_free(plm_head *h);
/* Checks the batch's labels for this head (range, presence). Returns 0 or -1. */
int head_check_labels(const plm_head *h, const plm_batch *b, const char *what);
/* Logits and loss from the backbone's last forward. With want_grad the logits buffer
 * becomes dloss/dlogits * grad_scale (the fused cross-entropy), ready for backward. */
void head_forward(plm_head *h, plm_backbone *bb, const plm_batch *b, bool want_grad, float grad_scale);
/* Parameter gradients, and the input gradient added to bb->dhidden / bb->dpooled. */
void head_backward(plm_head *h, plm_backbone *bb, const plm_batch *b);
/* LM logits [n, V] of the given rows of the last forward (inference). */
void head_lm_logits_at(plm_head *h, const plm_backbone *bb, const int32_t *rows, int n, float *out);
/* Does this head read the pooler's output? */
bool head_uses_pooler(const plm_head_spec *spec, plm_arch arch);
const char *head_kind_name(plm_head_kind k);
/* "pooler" (the default), "cls", "mean"; parse returns 0 or -1. */
const char *head_pooling_name(plm_seq_pooling p);
int head_pooling_of(const char *name, plm_seq_pooling *out);

#endif
