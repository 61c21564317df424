/* config.h - the model configuration, named and serialised as Hugging Face's
 * config.json (BertConfig for encoders, GPT2Config for decoders, T5Config for T5's
 * encoder-decoder), plus the few plm keys HF lacks (pre_layernorm). Owns validation: an inconsistent config is refused
 * with a message naming the file and the key. */
#ifndef PLM_CONFIG_H
#define PLM_CONFIG_H

#include <stdbool.h>

#include "gelu.h"

typedef enum { PLM_ARCH_BERT = 0, PLM_ARCH_GPT2 = 1, PLM_ARCH_ELECTRA = 2, PLM_ARCH_T5 = 3 } plm_arch;

typedef struct {
    plm_arch arch; /* model_type: "bert", "electra" (encoders), "gpt2" (decoder), "t5" (encoder-decoder) */
    int vocab_size;
    int embedding_size; /* width of the embedding tables; 0 = hidden_size; else a projection follows (ELECTRA) */
    int hidden_size;
    int num_hidden_layers;
    int num_attention_heads;
    int intermediate_size;
    int max_position_embeddings;
    int type_vocab_size; /* 0: no segment embeddings */
    plm_gelu_kind hidden_act;
    float layer_norm_eps;
    float hidden_dropout_prob;
    float attention_probs_dropout_prob;
    float initializer_range;
    bool is_decoder;          /* causal self-attention */
    bool add_cross_attention; /* decoder layers also attend to an encoder's hidden states */
    bool pre_layernorm;       /* LayerNorm before each sub-layer (GPT-2) or after (BERT) */
    bool tie_word_embeddings; /* the output projection is the token embedding matrix */
    int num_labels;           /* classes of a classification head (id2label's size); 1 = regression */
    int pad_token_id, bos_token_id, eos_token_id, mask_token_id, cls_token_id, sep_token_id; /* -1: none */
    /* T5 (T5Config names: d_model = hidden_size, d_ff = intermediate_size, num_layers =
     * num_hidden_layers of the encoder, num_heads, dropout_rate = both dropouts,
     * layer_norm_epsilon, initializer_factor = initializer_range, n_positions =
     * max_position_embeddings: plm's longest sequence, T5 has no position table) */
    int num_decoder_layers;
    int d_kv; /* channels per head; 0: hidden_size / num_attention_heads (T5 may differ) */
    int relative_attention_num_buckets, relative_attention_max_distance;
    bool gated_act; /* feed_forward_proj "gated-gelu" (v1.1): wi_0, wi_1; else "relu" (v1.0): wi */
    int decoder_start_token_id;
} plm_config;

/* Defaults of BertConfig (arch BERT), GPT2Config (arch GPT2) or T5Config (arch T5), small sizes. */
void plm_config_default(plm_config *c, plm_arch arch);
/* Parses config.json text; path is used in error messages. Returns 0 or -1. */
int plm_config_parse(plm_config *c, const char *json, const char *path);
int plm_config_load(plm_config *c, const char *path);
/* Checks consistency (hidden_size % num_attention_heads, positive sizes, ...). */
int plm_config_validate(const plm_config *c, const char *path);
/* HF-style config.json text (malloc'ed); architecture names the model class
 * ("BertForSequenceClassification"); NULL: the arch's LM model. */
char *plm_config_to_json(const plm_config *c, const char *architecture);
int plm_config_save(const plm_config *c, const char *architecture, const char *path);
const char *plm_arch_name(plm_arch a);
/* Channels per attention head: d_kv, or hidden_size / num_attention_heads. */
int plm_config_d_kv(const plm_config *c);
/* True for plm's own variants that HF would load as something else: pre-LN BERT or
 * ELECTRA, bidirectional or post-LN GPT-2, GPT-2 with segment embeddings. They are
 * written with model_type "plm_bert" / "plm_gpt2" / "plm_electra". */
bool plm_config_is_variant(const plm_config *c);

#endif
