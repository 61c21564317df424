/* model.h - a run's network: one parameter buffer with named views, one or more
 * transformer backbones (backbone.h) and the heads that read their hidden states
 * (heads.h). Owns the parameter table, the heads' losses and their sum.
 *
 * The seam: a backbone's forward pass ends in final hidden states [B, T, C]; its
 * backward pass starts from their gradient, which every head attached to it adds to.
 * So BertForMaskedLM is backbone "bert" + head LM; BertForPreTraining adds NSP;
 * ELECTRA is two backbones (generator, discriminator) sharing the embedding tensors,
 * each with its head. A shared tensor is one region of the buffer seen by both
 * backbones, so both backward passes add into the same gradient: the sum.
 *
 * Tensors carry Hugging Face's names. One tensor that one GEMM reads as a block (the
 * fused Q/K/V) is stored once and split into HF's tensors on save, joined on load. */
#ifndef PLM_MODEL_H
#define PLM_MODEL_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "backbone.h"
#include "batch.h"
#include "config.h"
#include "crossentropy.h"
#include "gemm.h"
#include "heads.h"

/* One named tensor inside the parameter buffer. */
typedef struct {
    char name[96]; /* the HF name (or the internal name of a fused tensor) */
    int ndim;      /* 1 or 2 */
    int shape[2];  /* our layout (nn.Linear's [out, in]) */
    size_t offset; /* in floats, into params/grads */
    size_t numel;
    bool transpose; /* stored transposed in HF files (GPT-2's Conv1D [in, out]) */
    bool no_decay;  /* biases and LayerNorm weights: no weight decay */
    int head;       /* the head that owns it; PLM_TENSOR_BACKBONE or PLM_TENSOR_POOLER */
    int nparts;     /* > 1: saved as nparts equal row blocks named parts[k] (BERT's Q, K, V) */
    char parts[3][96];
} plm_tensor;

#define PLM_TENSOR_BACKBONE (-1) /* must be in a checkpoint */
#define PLM_TENSOR_POOLER   (-2) /* optional: BertForMaskedLM files have no pooler */

/* A tensor that is another's storage under a second name (a tied decoder, ELECTRA's
 * shared embeddings). Not saved twice; accepted silently when a file has it. */
typedef struct {
    char name[96];
    int target; /* index into tensors */
} plm_alias;

#define PLM_MAX_BACKBONES 2
#define PLM_MAX_HEADS     4

typedef struct plm_model {
    plm_config config; /* the first backbone's (the model's) configuration */
    plm_tensor *tensors;
    int num_tensors;
    plm_alias *aliases;
    int num_aliases;
    size_t num_params;
    float *params, *grads; /* one buffer each; grads zero pages, memory once written */
    /* bf16 copy of params for the bf16 GEMMs (gemm.h): filled by AdamW's pass under
     * --bf16, stale after any other write of params (plm_model_params_written). */
    plm_bf16_mirror params16;

    plm_backbone bb[PLM_MAX_BACKBONES];
    int num_backbones;
    plm_head heads[PLM_MAX_HEADS];
    int num_heads;
    double loss; /* of the last forward: sum over heads of weight * mean loss */
} plm_model;

/* What a model is made of: backbone configs and the heads on them. */
typedef struct {
    plm_config backbone[PLM_MAX_BACKBONES];
    const char *prefix[PLM_MAX_BACKBONES]; /* tensor-name prefix; NULL: the arch's ("bert", ...) */
    int num_backbones;
    plm_head_spec heads[PLM_MAX_HEADS];
    int num_heads;
    bool share_embeddings; /* backbone 1 uses backbone 0's token/position/segment tables */
} plm_model_spec;

/* The pretraining model of a config: its LM head (BERT's MLM head, GPT-2's LM head). */
void plm_model_spec_default(plm_model_spec *s, const plm_config *c);
/* Adds a head (kind, num_labels) on backbone 0; returns its index. */
int plm_model_spec_add_head(plm_model_spec *s, plm_head_kind kind, int num_labels);

/* Builds the parameter table and initialises weights as HF does: N(0, initializer_range)
 * for matrices (GPT-2 scales residual projections by 1/sqrt(2 L)), zero biases, unit
 * LayerNorm weights, zero padding-token embedding (BERT). */
plm_model *plm_model_create_spec(const plm_model_spec *s, uint64_t seed);
/* Which weights plm_model_create_spec_ex draws: all of them; none, every weight left 0
 * for a caller that loads each one next (plm_model_load: drawing gpt2-mini's 45M
 * normals took 0.3 s of a plm generate); or all but the backbone's, which a checkpoint
 * must hold (plm_model_load_with_heads). The last still steps the generator over the
 * backbone's draws, so a new head gets the values PLM_INIT_ALL would give it. */
typedef enum { PLM_INIT_NONE, PLM_INIT_ALL, PLM_INIT_BUT_BACKBONE } plm_init_mode;
plm_model *plm_model_create_spec_ex(const plm_model_spec *s, uint64_t seed, plm_init_mode init);
/* plm_model_create_spec of plm_model_spec_default(config). */
plm_model *plm_model_create(const plm_config *config, uint64_t seed);
void plm_model_free(plm_model *m);
/* Must follow every write of m->params other than plm_adamw_step's (loading, copying
 * weights in, a test setting them): the bf16 copy of the weights becomes stale, and the
 * bf16 GEMMs round the fp32 weights themselves until the next AdamW step refreshes it. */
void plm_model_params_written(plm_model *m);
/* Inference under bf16 (plm_gemm_bf16()): rounds every weight into m->params16 once, so
 * each bf16 GEMM reads the weights' bf16 copy (half the bytes of fp32: decoding streams
 * every weight per token) instead of rounding them per call. Returns false, doing
 * nothing, when bf16 GEMMs or their copies (PLM_BF16_REUSE=0) are off. Training needs
 * no call: AdamW writes the copy. */
bool plm_model_round_bf16(plm_model *m);
/* Allocates activations and gradients for batches up to B x T (T <= max_position_embeddings). */
int plm_model_reserve(plm_model *m, int B, int T);
void plm_model_zero_grad(plm_model *m);
const plm_tensor *plm_model_find(const plm_model *m, const char *name);
/* Index of the first head of this kind, or -1. */
int plm_model_head(const plm_model *m, plm_head_kind kind);

/* Checks a batch at the library boundary: ids < vocab_size, type ids < type_vocab_size,
 * labels in range for each head. Returns 0, or -1 with the error set. */
int plm_model_check_batch(const plm_model *m, int backbone, const plm_batch *b);

/* Forward pass of backbone k and its heads, their losses, and with backward the
 * backward pass: gradients are ADDED to m->grads, scaled so that they are
 * d(loss_scale * sum_h weight_h * mean loss_h)/dparam. Returns 0, or -1 with the error
 * set (a batch that fails plm_model_check_batch). Results in m->heads[h].result. */
int plm_model_run(plm_model *m, int k, const plm_batch *b, bool backward, float loss_scale);

/* Backbone k's forward pass alone, no head: its final hidden states [B, T, C] (NULL on a
 * batch that fails plm_model_check_batch, error set). With for_backward, what
 * plm_model_backward_hidden needs is kept. For a head computed outside the model (PPO's
 * value head on every position, train/ppo.h). */
const float *plm_model_forward_hidden(plm_model *m, int k, const plm_batch *b, bool for_backward);
/* The backward pass of backbone k after plm_model_forward_hidden(for_backward) of b, from
 * the gradient of its hidden states dhidden [B, T, C]: gradients are added to m->grads. */
void plm_model_backward_hidden(plm_model *m, int k, const plm_batch *b, const float *dhidden);

/* An encoder-decoder (backbone 1 has add_cross_attention): the encoder reads enc, the
 * decoder reads dec and attends to the encoder's final states; heads on either. The
 * decoder's backward pass hands the encoder the gradient of its states. Same contract
 * as plm_model_run. */
int plm_model_run_seq2seq(plm_model *m, const plm_batch *enc, const plm_batch *dec, bool backward, float loss_scale);
bool plm_model_is_seq2seq(const plm_model *m);

/* plm_model_run on backbone 0; returns the first head's result ({NAN, 0, 0} on a bad
 * batch, with the error set). The summed loss is m->loss. */
plm_ce_result plm_model_forward(plm_model *m, const plm_batch *b, bool backward, float loss_scale);

/* Final hidden states [B, T, C] of backbone 0's last forward pass. */
const float *plm_model_hidden(const plm_model *m);
/* LM-head logits [n, V] for n positions (flat indices b*T+t) of the last forward pass. */
void plm_model_logits_at(plm_model *m, const int32_t *positions, int n, float *out);

/* FLOPs of one training step (forward + backward) for B x T tokens, with the head
 * applied to head_rows rows: 6 * (GEMM parameters) per token + attention. */
double plm_model_flops(const plm_config *c, int B, int T, int head_rows);

/* The same for a T5 span-corruption step: the encoder over T inputs, the decoder (self-
 * and cross-attention) over Tt targets, the LM head on every target (bench/flops.py
 * t5_step_flops). */
double plm_model_flops_t5(const plm_config *c, int B, int T, int Tt);

/* The model's class name as HF knows it ("BertForMaskedLM", "GPT2ForSequenceClassification")
 * or plm's own for variants HF cannot load as-is ("PlmBertForMaskedLM"). */
const char *plm_model_architecture(const plm_model *m);

#endif
