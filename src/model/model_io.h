/* model_io.h - a model directory as Hugging Face writes it: config.json plus
 * model.safetensors with HF tensor names (BertForMaskedLM / GPT2LMHeadModel layouts,
 * GPT-2's Conv1D weights transposed to [in, out]). Loading checks that every tensor
 * is present with the right shape; a checksum in the metadata catches corruption. */
#ifndef PLM_MODEL_IO_H
#define PLM_MODEL_IO_H

#include <stdint.h>

#include "model.h"

/* Writes dir/model.safetensors (atomically) with extra metadata key/value pairs
 * (may be NULL/0), e.g. the training step. */
int plm_model_save_weights(const plm_model *m, const char *path, const char *const *meta_kv, int n_meta);
/* Loads weights into an existing model of matching config. */
int plm_model_load_weights(plm_model *m, const char *path);
/* config.json + model.safetensors in dir. */
int plm_model_save(const plm_model *m, const char *dir, const char *const *meta_kv, int n_meta);
plm_model *plm_model_load(const char *dir);

/* FNV-1a 64 over bytes, used as a content checksum in metadata. */
uint64_t plm_fnv1a(const void *data, size_t n, uint64_t h);

#endif
