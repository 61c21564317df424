/* model_io.h - a model directory as Hugging Face writes it: config.json plus
 * model.safetensors with HF tensor names (BertForMaskedLM, GPT2LMHeadModel,
 * BertForSequenceClassification, ... layouts; BERT's fused Q/K/V split into query, key,
 * value; GPT-2's Conv1D weights transposed to [in, out]). Owns the mapping between a
 * model's tensors and a file's names: loading accepts the names real HF checkpoints
 * carry (LayerNorm.gamma/beta, a bare BertModel / GPT2Model without its prefix), loads
 * the base weights into a model with another head, and reports the head tensors it
 * initialised and the file tensors it did not use, as HF does. A checksum in the
 * metadata catches corruption. */
#ifndef PLM_MODEL_IO_H
#define PLM_MODEL_IO_H

#include <stdbool.h>
#include <stdint.h>

#include "model.h"

/* What a load did: comma-separated tensor names (malloc'ed, "" when none). */
typedef struct {
    char *newly_initialized; /* head (or pooler) tensors the file lacked */
    char *unused;            /* file tensors the model has no place for */
} plm_load_report;
void plm_load_report_free(plm_load_report *r);

/* Writes path (atomically) with extra metadata key/value pairs (may be NULL/0). */
int plm_model_save_weights(const plm_model *m, const char *path, const char *const *meta_kv, int n_meta);
/* Loads weights into an existing model. Every backbone tensor must be in the file with
 * its shape. strict: head tensors must be there too and nothing may be left over
 * (resuming); otherwise missing head tensors keep their initialisation and the report
 * (may be NULL) names them. Returns 0 or -1 with the error set. */
int plm_model_load_weights_ex(plm_model *m, const char *path, bool strict, plm_load_report *report);
/* Strict load (a checkpoint of this very model). */
int plm_model_load_weights(plm_model *m, const char *path);

/* config.json (with the architecture and plm's head list) + model.safetensors in dir. */
int plm_model_save(const plm_model *m, const char *dir, const char *const *meta_kv, int n_meta);
/* The model a directory describes: heads from config.json ("plm_heads", else HF's
 * "architectures"), weights loaded strictly. */
plm_model *plm_model_load(const char *dir);
/* The spec a directory's config.json describes. */
int plm_model_spec_load(plm_model_spec *s, const char *dir);
/* Loads dir's weights into a new model with these heads (fine-tuning from a
 * pretraining checkpoint): base weights from the file, new heads initialised from
 * seed. Prints HF's two warnings on stderr unless quiet; report may be NULL. */
plm_model *plm_model_load_with_heads(const char *dir, const plm_head_spec *heads, int num_heads, uint64_t seed,
                                     bool quiet, plm_load_report *report);

#endif
