/* electra.h - ELECTRA's replaced-token detection (Clark et al. 2020), as
 * google-research/electra trains it. Owns the generator's configuration, the
 * corruption of a masked batch into the discriminator's input, the joint training step,
 * its validation metrics, and the checkpoint layout of the two models.
 *
 * One model, two backbones sharing the token/position/segment tables (model.h):
 *   backbone 0  the discriminator ("electra.*"), head RTD weighted by disc_weight (lambda)
 *   backbone 1  the generator ("generator.electra.*"), head LM (generator_predictions)
 * A step, given an MLM batch (masked ids, labels = original ids at the selected positions):
 *   1. the generator reads the masked ids; L_gen = its MLM cross-entropy;
 *   2. at every selected position a token is sampled from the generator's softmax
 *      (temperature 1, no gradient flows through the sample);
 *   3. the discriminator reads the original sequence with the samples at the selected
 *      positions; label 1 where the sample differs from the original, 0 elsewhere on every
 *      real token ([CLS] and [SEP] included, as HF's attention-mask selection); a sample
 *      equal to the original is "original";
 *   4. loss = L_gen + lambda * L_disc (lambda 50), one backward pass each into the shared
 *      gradient buffer.
 * Checkpoints: the directory holds the discriminator as HF's ElectraForPreTraining
 * (config.json + model.safetensors: electra.* and discriminator_predictions.*, what
 * fine-tuning loads) and the generator as ElectraForMaskedLM in DIR/generator/ (its own
 * copy of the shared embedding tables, as HF's google/electra-*-generator). */
#ifndef PLM_ELECTRA_H
#define PLM_ELECTRA_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "core/rng.h"
#include "model/model.h"

/* The generator of a discriminator config, google-research/electra's get_generator_config:
 * hidden_size = round(size * disc hidden_size), intermediate_size scaled alike,
 * num_attention_heads = max(1, hidden_size / 64) (lowered until it divides hidden_size),
 * same depth; its embedding width is the discriminator's (shared tables; a projection
 * follows when it differs from its hidden_size). Returns 0 or -1 (size out of (0, 1]). */
int plm_electra_generator_config(plm_config *gen, const plm_config *disc, float generator_size);

/* The joint model's spec from the two configs (disc->arch must be ELECTRA). */
void plm_electra_spec(plm_model_spec *s, const plm_config *disc, const plm_config *gen, float disc_weight);

/* Is m a joint generator + discriminator model (the spec above)? */
bool plm_electra_is_joint(const plm_model *m);

/* The discriminator's input and labels from the generator's batch: at positions with a
 * generator label (the original id), the sample; label = sample != original. Elsewhere
 * the generator's input (the original) and label 0, or -100 where attention_mask is 0
 * (attn_mask NULL: no padding). */
void plm_electra_corrupt(const int32_t *gen_ids, const int32_t *gen_labels, const int32_t *sampled,
                         const uint8_t *attn_mask, size_t N, int32_t *disc_ids, int32_t *disc_labels);

/* A draw from softmax(z[0..V)) (inverse CDF in double precision). */
int32_t plm_sample_softmax(const float *z, int V, plm_rng *r);

/* Buffers of the step, for batches up to B x T. */
typedef struct {
    size_t cap;
    int32_t *sampled, *disc_ids, *disc_labels; /* [B * T] */
    /* results of the last step */
    double gen_loss, disc_loss; /* mean losses (NAN when nothing was counted) */
    plm_ce_result gen, disc;    /* counts: masked tokens / real tokens, correct predictions */
    long replaced;              /* discriminator labels equal to 1 */
} plm_electra_state;

void plm_electra_state_init(plm_electra_state *s, int B, int T);
void plm_electra_state_free(plm_electra_state *s);

/* One micro-batch (see above): gen is the MLM batch; sample_seed determines the samples.
 * With backward, gradients of loss_scale * (L_gen + lambda L_disc) are added to m->grads.
 * m->loss is the joint loss. Returns 0, or -1 with the error set (a bad batch). */
int plm_electra_step(plm_model *m, plm_electra_state *s, const plm_batch *gen, uint64_t sample_seed, bool backward,
                     float loss_scale);

/* Area under the ROC curve of scores against 0/1 labels (ties count one half), the
 * Mann-Whitney statistic; NAN when one class is absent. Sorts a copy. */
double plm_roc_auc(const float *score, const int32_t *label, size_t n);

/* Saves the joint model as DIR (ElectraForPreTraining) + DIR/generator (ElectraForMaskedLM). */
int plm_electra_save(const plm_model *m, const char *dir, const char *const *meta_kv, int n_meta);
/* Does dir hold an ELECTRA pretraining checkpoint (a generator/ subfolder)? */
bool plm_electra_dir(const char *dir);
/* The joint model of such a directory, every tensor loaded strictly. NULL with the error set. */
plm_model *plm_electra_load(const char *dir);

#endif
