/* model.h - the transformer: one parameter buffer with named views, preallocated
 * activations, and the forward/backward passes of the whole network.
 *
 * Architecture (config.h): token + position (+ segment) embeddings, then
 * num_hidden_layers blocks of self-attention and a GELU MLP, each either
 *   post-LN (BERT):  h = LN(x + Attn(x));     out = LN(h + MLP(h))
 *   pre-LN (GPT-2):  h = x + Attn(LN(x));     out = h + MLP(LN(h)),  final LN after the last
 * and an output head over the vocabulary, tied to the token embeddings by default:
 *   BERT: dense -> GELU -> LayerNorm -> decoder + bias   (BertForMaskedLM's cls.predictions)
 *   GPT-2: a plain projection                            (GPT2LMHeadModel's lm_head)
 * The head runs only on rows that have a label (labels != -100): MLM computes the
 * vocabulary projection for the masked positions alone.
 *
 * Attention is causal or bidirectional per call, so one model can be trained with
 * CLM then MLM. Tensors carry Hugging Face's names so checkpoints load in
 * transformers (BertForMaskedLM / GPT2LMHeadModel). */
#ifndef PLM_MODEL_H
#define PLM_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "config.h"
#include "crossentropy.h"

/* One named tensor inside the parameter buffer. */
typedef struct {
    char name[96];
    int ndim;
    int shape[2];  /* our layout (nn.Linear's [out, in]) */
    size_t offset; /* in floats, into params/grads */
    size_t numel;
    bool transpose; /* stored transposed in HF files (GPT-2's Conv1D [in, out]) */
    bool no_decay;  /* biases and LayerNorm weights: no weight decay */
} plm_tensor;

typedef struct {
    float *ln1_w, *ln1_b; /* pre-LN: before attention; post-LN: attention.output.LayerNorm */
    float *qkv_w, *qkv_b; /* [3C, C]: query | key | value rows */
    float *attn_proj_w, *attn_proj_b;
    float *ln2_w, *ln2_b;   /* pre-LN: before the MLP; post-LN: output.LayerNorm */
    float *fc_w, *fc_b;     /* [I, C] */
    float *proj_w, *proj_b; /* [C, I] */
} plm_layer_weights;

typedef struct {
    float *wte, *wpe, *wtt;     /* wtt NULL without segment embeddings */
    float *emb_ln_w, *emb_ln_b; /* post-LN only */
    plm_layer_weights *layers;
    float *ln_f_w, *ln_f_b;                                     /* pre-LN only */
    float *head_dense_w, *head_dense_b, *head_ln_w, *head_ln_b; /* BERT head transform */
    float *head_bias;                                           /* BERT decoder bias, else NULL */
    float *lm_w;                                                /* [V, C]; == wte when tied */
} plm_weights;

typedef struct {
    float *ln1, *ln1_mean, *ln1_rstd;
    float *qkv, *att, *atty;
    float *res1;
    float *ln2, *ln2_mean, *ln2_rstd;
    float *fch, *fch_gelu;
    float *res2;
} plm_layer_acts;

/* One batch of model inputs, [B, T] row-major. */
typedef struct {
    int B, T;
    const int32_t *input_ids;
    const int32_t *token_type_ids; /* NULL: all segment 0 */
    const uint8_t *attention_mask; /* NULL: no padding */
    const int32_t *labels;         /* target id per position or -100; CLM labels are pre-shifted */
    bool causal;                   /* causal self-attention */
    bool training;                 /* dropout on */
    uint64_t dropout_seed;         /* dropout masks are a function of this seed */
} plm_batch;

typedef struct plm_model {
    plm_config config;
    plm_tensor *tensors;
    int num_tensors;
    size_t num_params;
    float *params, *grads; /* grads allocated by plm_model_reserve */
    plm_weights w, g;      /* named views into params and grads */

    /* activations, sized by plm_model_reserve for up to B x T */
    int cap_B, cap_T;
    float *emb, *emb_ln, *emb_mean, *emb_rstd, *x0;
    plm_layer_acts *acts;
    float *lnf, *lnf_mean, *lnf_rstd;
    int32_t *rows, *row_targets; /* head rows (positions with a label) and their targets */
    int num_rows;
    float *hsel, *h_dense, *h_gelu, *h_ln, *h_mean, *h_rstd, *logits;
    float *g_resid, *g_a, *g_b, *g_atty, *g_qkv, *g_fch;
    float *scratch;
    size_t scratch_floats;
    plm_batch cur; /* the batch of the last forward pass */
} plm_model;

/* Builds the parameter table and initialises weights as HF does: N(0, initializer_range)
 * for matrices (GPT-2 scales residual projections by 1/sqrt(2 L)), zero biases, unit
 * LayerNorm weights, zero padding-token embedding (BERT). */
plm_model *plm_model_create(const plm_config *config, uint64_t seed);
void plm_model_free(plm_model *m);
/* Allocates activations and gradients for batches up to B x T (T <= max_position_embeddings). */
int plm_model_reserve(plm_model *m, int B, int T);
void plm_model_zero_grad(plm_model *m);
const plm_tensor *plm_model_find(const plm_model *m, const char *name);

/* Forward pass and loss; with backward, also the backward pass: gradients are ADDED
 * to m->grads, scaled so that they are d(loss_scale * mean loss)/dparam. */
plm_ce_result plm_model_forward(plm_model *m, const plm_batch *b, bool backward, float loss_scale);

/* Final hidden states [B, T, C] of the last forward pass (after ln_f for pre-LN). */
const float *plm_model_hidden(const plm_model *m);
/* Logits [n, V] for n positions (flat indices b*T+t) of the last forward pass. Writes
 * them to out (n x V floats). Uses the head activations as scratch. */
void plm_model_logits_at(plm_model *m, const int32_t *positions, int n, float *out);

/* FLOPs of one training step (forward + backward) for B x T tokens, with the head
 * applied to head_rows rows: 6 * (GEMM parameters) per token + attention. */
double plm_model_flops(const plm_config *c, int B, int T, int head_rows);

#endif
