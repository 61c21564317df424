/* config.c - see config.h */
#include "config.h"

#include <cjson/cJSON.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

const char *plm_arch_name(plm_arch a) {
    return a == PLM_ARCH_GPT2 ? "gpt2" : a == PLM_ARCH_ELECTRA ? "electra" : a == PLM_ARCH_T5 ? "t5" : "bert";
}

int plm_config_d_kv(const plm_config *c) {
    return c->d_kv > 0 ? c->d_kv : c->num_attention_heads > 0 ? c->hidden_size / c->num_attention_heads : 0;
}

bool plm_config_is_variant(const plm_config *c) {
    if (c->arch == PLM_ARCH_T5) return false;
    if (c->arch == PLM_ARCH_GPT2) return !c->pre_layernorm || !c->is_decoder || c->type_vocab_size > 0;
    return c->pre_layernorm || (c->arch == PLM_ARCH_BERT && c->embedding_size > 0);
}

void plm_config_default(plm_config *c, plm_arch arch) {
    memset(c, 0, sizeof *c);
    c->arch = arch;
    c->vocab_size = 8192;
    c->hidden_size = 256;
    c->num_hidden_layers = 4;
    c->num_attention_heads = 4;
    c->intermediate_size = 1024;
    c->max_position_embeddings = 512;
    c->num_labels = 2;
    c->initializer_range = 0.02f;
    c->tie_word_embeddings = true;
    c->pad_token_id = c->bos_token_id = c->eos_token_id = -1;
    c->mask_token_id = c->cls_token_id = c->sep_token_id = -1;
    c->decoder_start_token_id = -1;
    if (arch == PLM_ARCH_T5) {
        /* T5Config: no biases, RMS norm, relative position buckets, dropout_rate 0.1,
         * pad = decoder start = 0, eos = 1, initializer_factor 1.0, ReLU (v1.0) */
        c->hidden_size = 256;
        c->intermediate_size = 1024;
        c->num_hidden_layers = c->num_decoder_layers = 4;
        c->num_attention_heads = 4;
        c->type_vocab_size = 0;
        c->hidden_act = PLM_ACT_RELU;
        c->layer_norm_eps = 1e-6f;
        c->hidden_dropout_prob = c->attention_probs_dropout_prob = 0.1f;
        c->initializer_range = 1.0f;
        c->pre_layernorm = true;
        c->relative_attention_num_buckets = 32;
        c->relative_attention_max_distance = 128;
        c->pad_token_id = c->decoder_start_token_id = 0;
        c->eos_token_id = 1;
        return;
    }
    if (arch != PLM_ARCH_GPT2) {
        c->type_vocab_size = 2;
        c->hidden_act = PLM_GELU_ERF;
        c->layer_norm_eps = 1e-12f;
        c->hidden_dropout_prob = c->attention_probs_dropout_prob = 0.1f;
        c->is_decoder = false;
        c->pre_layernorm = false;
    } else {
        c->type_vocab_size = 0;
        c->hidden_act = PLM_GELU_TANH;
        c->layer_norm_eps = 1e-5f;
        c->hidden_dropout_prob = c->attention_probs_dropout_prob = 0.1f;
        c->is_decoder = true;
        c->pre_layernorm = true;
    }
}

/* Reads the first of several alias keys (BertConfig and GPT2Config names). */
static const cJSON *get_any(const cJSON *root, const char *const *keys) {
    for (; *keys; keys++) {
        const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, *keys);
        if (it && !cJSON_IsNull(it)) return it;
    }
    return NULL;
}

static int read_int(const cJSON *root, const char *path, int *out, const char *k1, const char *k2) {
    const char *keys[] = {k1, k2, NULL};
    const cJSON *it = get_any(root, keys);
    if (!it) return 0;
    if (!cJSON_IsNumber(it) || it->valuedouble != floor(it->valuedouble) || fabs(it->valuedouble) > 1e9) {
        plm_error("%s: \"%s\" must be an integer", path, it->string);
        return -1;
    }
    *out = (int)it->valuedouble;
    return 0;
}

static int read_float(const cJSON *root, const char *path, float *out, const char *k1, const char *k2) {
    const char *keys[] = {k1, k2, NULL};
    const cJSON *it = get_any(root, keys);
    if (!it) return 0;
    /* beyond FLT_MAX the float would be inf, which passes the range checks but not JSON */
    if (!cJSON_IsNumber(it) || !(fabs(it->valuedouble) <= FLT_MAX)) {
        plm_error("%s: \"%s\" must be a number within float range", path, it->string);
        return -1;
    }
    *out = (float)it->valuedouble;
    return 0;
}

static int read_bool(const cJSON *root, const char *path, bool *out, const char *key) {
    const cJSON *it = cJSON_GetObjectItemCaseSensitive(root, key);
    if (!it || cJSON_IsNull(it)) return 0;
    if (!cJSON_IsBool(it)) {
        plm_error("%s: \"%s\" must be true or false", path, key);
        return -1;
    }
    *out = cJSON_IsTrue(it);
    return 0;
}

/* T5Config's keys (d_kv x num_heads may differ from d_model, as in T5 v1.1); feed_forward_proj is "relu", "gelu",
 * "gated-gelu" (new GELU, as HF) or "gated-relu". */
static int parse_t5(plm_config *c, const cJSON *root, const char *path) {
    plm_config_default(c, PLM_ARCH_T5);
    c->num_decoder_layers = -1;
    c->d_kv = 64; /* T5Config's default */
    float dropout = c->hidden_dropout_prob;
    if (read_int(root, path, &c->vocab_size, "vocab_size", NULL) ||
        read_int(root, path, &c->hidden_size, "d_model", NULL) || read_int(root, path, &c->d_kv, "d_kv", NULL) ||
        read_int(root, path, &c->intermediate_size, "d_ff", NULL) ||
        read_int(root, path, &c->num_hidden_layers, "num_layers", NULL) ||
        read_int(root, path, &c->num_decoder_layers, "num_decoder_layers", NULL) ||
        read_int(root, path, &c->num_attention_heads, "num_heads", NULL) ||
        read_int(root, path, &c->relative_attention_num_buckets, "relative_attention_num_buckets", NULL) ||
        read_int(root, path, &c->relative_attention_max_distance, "relative_attention_max_distance", NULL) ||
        read_int(root, path, &c->max_position_embeddings, "n_positions", NULL) ||
        read_float(root, path, &dropout, "dropout_rate", NULL) ||
        read_float(root, path, &c->layer_norm_eps, "layer_norm_epsilon", NULL) ||
        read_float(root, path, &c->initializer_range, "initializer_factor", NULL) ||
        read_bool(root, path, &c->tie_word_embeddings, "tie_word_embeddings") ||
        read_int(root, path, &c->pad_token_id, "pad_token_id", NULL) ||
        read_int(root, path, &c->eos_token_id, "eos_token_id", NULL) ||
        read_int(root, path, &c->decoder_start_token_id, "decoder_start_token_id", NULL))
        return -1;
    if (c->num_decoder_layers == -1) c->num_decoder_layers = c->num_hidden_layers;
    /* a T5Config always has its own d_kv (0, "derive it", exists only inside plm) */
    if (c->d_kv < 1) {
        plm_error("%s: d_kv must be in 1..65536, got %d", path, c->d_kv);
        return -1;
    }
    c->hidden_dropout_prob = c->attention_probs_dropout_prob = dropout;
    const cJSON *ff = cJSON_GetObjectItemCaseSensitive(root, "feed_forward_proj");
    if (ff) {
        const char *v = cJSON_IsString(ff) ? ff->valuestring : "";
        c->gated_act = strncmp(v, "gated-", 6) == 0;
        const char *act = c->gated_act ? v + 6 : v;
        if (strcmp(act, "relu") == 0)
            c->hidden_act = PLM_ACT_RELU;
        else if (strcmp(act, "gelu") == 0) /* HF maps "gated-gelu" to gelu_new */
            c->hidden_act = c->gated_act ? PLM_GELU_TANH : PLM_GELU_ERF;
        else if (strcmp(act, "gelu_new") == 0)
            c->hidden_act = PLM_GELU_TANH;
        else {
            plm_error("%s: unsupported feed_forward_proj (expected \"relu\", \"gelu\", \"gated-gelu\" or "
                      "\"gated-relu\")",
                      path);
            return -1;
        }
    }
    return plm_config_validate(c, path);
}

int plm_config_parse(plm_config *c, const char *json, const char *path) {
    cJSON *root = cJSON_Parse(json);
    if (!root) {
        const char *at = cJSON_GetErrorPtr();
        int line = 1;
        if (at)
            for (const char *p = json; p < at && *p; p++) line += *p == '\n';
        plm_error("%s:%d: invalid JSON", path, line);
        return -1;
    }
    int rc = -1;
    if (!cJSON_IsObject(root)) {
        plm_error("%s: config must be a JSON object", path);
        goto done;
    }
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    plm_arch arch = PLM_ARCH_BERT;
    if (mt) {
        if (!cJSON_IsString(mt)) {
            plm_error("%s: \"model_type\" must be a string", path);
            goto done;
        }
        /* plm_* are plm's variants of the same architectures (plm_config_is_variant) */
        const char *t = mt->valuestring;
        if (strncmp(t, "plm_", 4) == 0) t += 4;
        if (strcmp(t, "t5") == 0) {
            rc = parse_t5(c, root, path);
            goto done;
        }
        if (strcmp(t, "gpt2") == 0)
            arch = PLM_ARCH_GPT2;
        else if (strcmp(t, "electra") == 0)
            arch = PLM_ARCH_ELECTRA;
        else if (strcmp(t, "bert") != 0) {
            plm_error("%s: unsupported model_type \"%s\" (expected \"bert\", \"electra\", \"gpt2\" or \"t5\")", path,
                      mt->valuestring);
            goto done;
        }
    }
    plm_config_default(c, arch);
    c->intermediate_size = -1; /* derived below when absent */
    c->embedding_size = 0;
    if (read_int(root, path, &c->vocab_size, "vocab_size", NULL) ||
        read_int(root, path, &c->hidden_size, "hidden_size", "n_embd") ||
        read_int(root, path, &c->num_hidden_layers, "num_hidden_layers", "n_layer") ||
        read_int(root, path, &c->num_attention_heads, "num_attention_heads", "n_head") ||
        read_int(root, path, &c->intermediate_size, "intermediate_size", "n_inner") ||
        read_int(root, path, &c->max_position_embeddings, "max_position_embeddings", "n_positions") ||
        read_int(root, path, &c->type_vocab_size, "type_vocab_size", NULL) ||
        read_int(root, path, &c->embedding_size, "embedding_size", NULL) ||
        read_int(root, path, &c->num_labels, "num_labels", NULL) ||
        read_float(root, path, &c->layer_norm_eps, "layer_norm_eps", "layer_norm_epsilon") ||
        read_float(root, path, &c->hidden_dropout_prob, "hidden_dropout_prob", "resid_pdrop") ||
        read_float(root, path, &c->attention_probs_dropout_prob, "attention_probs_dropout_prob", "attn_pdrop") ||
        read_float(root, path, &c->initializer_range, "initializer_range", NULL) ||
        read_bool(root, path, &c->is_decoder, "is_decoder") ||
        read_bool(root, path, &c->add_cross_attention, "add_cross_attention") ||
        read_bool(root, path, &c->pre_layernorm, "pre_layernorm") ||
        read_bool(root, path, &c->tie_word_embeddings, "tie_word_embeddings") ||
        read_int(root, path, &c->pad_token_id, "pad_token_id", NULL) ||
        read_int(root, path, &c->bos_token_id, "bos_token_id", NULL) ||
        read_int(root, path, &c->eos_token_id, "eos_token_id", NULL) ||
        read_int(root, path, &c->mask_token_id, "mask_token_id", NULL) ||
        read_int(root, path, &c->cls_token_id, "cls_token_id", NULL) ||
        read_int(root, path, &c->sep_token_id, "sep_token_id", NULL))
        goto done;
    /* 4 x hidden_size, only for a hidden_size that validation can accept (no int overflow) */
    if (c->intermediate_size == -1 && c->hidden_size > 0 && c->hidden_size <= 65536)
        c->intermediate_size = 4 * c->hidden_size;
    if (c->embedding_size == c->hidden_size) c->embedding_size = 0;
    const cJSON *id2label = cJSON_GetObjectItemCaseSensitive(root, "id2label");
    if (id2label) {
        if (!cJSON_IsObject(id2label) || cJSON_GetArraySize(id2label) < 1) {
            plm_error("%s: \"id2label\" must be a non-empty object", path);
            goto done;
        }
        c->num_labels = cJSON_GetArraySize(id2label);
    }
    const char *act_keys[] = {"hidden_act", "activation_function", NULL};
    const cJSON *act = get_any(root, act_keys);
    if (act) {
        if (!cJSON_IsString(act)) {
            plm_error("%s: \"%s\" must be a string", path, act->string);
            goto done;
        }
        if (strcmp(act->valuestring, "gelu") == 0)
            c->hidden_act = PLM_GELU_ERF;
        else if (strcmp(act->valuestring, "gelu_new") == 0 || strcmp(act->valuestring, "gelu_pytorch_tanh") == 0)
            c->hidden_act = PLM_GELU_TANH;
        else {
            plm_error("%s: unsupported %s \"%s\" (expected \"gelu\" or \"gelu_new\")", path, act->string,
                      act->valuestring);
            goto done;
        }
    }
    rc = plm_config_validate(c, path);
done:
    cJSON_Delete(root);
    return rc;
}

int plm_config_load(plm_config *c, const char *path) {
    size_t len;
    char *text = plm_read_file(path, &len);
    if (!text) return -1;
    int rc = plm_config_parse(c, text, path);
    free(text);
    return rc;
}

int plm_config_validate(const plm_config *c, const char *path) {
#define REQUIRE(cond, ...)                                                                                             \
    do {                                                                                                               \
        if (!(cond)) {                                                                                                 \
            plm_error(__VA_ARGS__);                                                                                    \
            return -1;                                                                                                 \
        }                                                                                                              \
    } while (0)
    REQUIRE(c->vocab_size > 0 && c->vocab_size <= (1 << 24), "%s: vocab_size must be in 1..16777216", path);
    REQUIRE(c->hidden_size > 0 && c->hidden_size <= 65536, "%s: hidden_size must be in 1..65536", path);
    REQUIRE(c->embedding_size >= 0 && c->embedding_size <= 65536, "%s: embedding_size must be in 1..65536", path);
    REQUIRE(c->arch != PLM_ARCH_GPT2 || c->embedding_size == 0,
            "%s: gpt2 has no embedding projection (embedding_size must equal n_embd)", path);
    REQUIRE(c->num_labels > 0 && c->num_labels <= 1 << 16, "%s: num_labels must be in 1..65536", path);
    REQUIRE(c->num_hidden_layers > 0 && c->num_hidden_layers <= 1024, "%s: num_hidden_layers must be in 1..1024", path);
    REQUIRE(c->num_attention_heads > 0, "%s: num_attention_heads must be positive", path);
    REQUIRE(c->d_kv >= 0 && c->d_kv <= 65536 && (c->d_kv == 0 || c->arch == PLM_ARCH_T5),
            "%s: d_kv must be in 1..65536 (t5 only)", path);
    REQUIRE(c->d_kv > 0 || c->hidden_size % c->num_attention_heads == 0,
            "%s: hidden_size (%d) is not divisible by num_attention_heads (%d)", path, c->hidden_size,
            c->num_attention_heads);
    REQUIRE(c->intermediate_size > 0 && c->intermediate_size <= 1 << 20, "%s: intermediate_size must be positive",
            path);
    REQUIRE(c->max_position_embeddings > 0 && c->max_position_embeddings <= 1 << 20,
            "%s: max_position_embeddings must be positive", path);
    REQUIRE(c->type_vocab_size >= 0 && c->type_vocab_size <= 1024, "%s: type_vocab_size must be in 0..1024", path);
    REQUIRE(c->layer_norm_eps > 0.0f && c->layer_norm_eps < 1.0f, "%s: layer_norm_eps must be in (0, 1)", path);
    REQUIRE(c->hidden_dropout_prob >= 0.0f && c->hidden_dropout_prob < 1.0f,
            "%s: hidden_dropout_prob must be in [0, 1)", path);
    REQUIRE(c->attention_probs_dropout_prob >= 0.0f && c->attention_probs_dropout_prob < 1.0f,
            "%s: attention_probs_dropout_prob must be in [0, 1)", path);
    REQUIRE(c->initializer_range > 0.0f, "%s: initializer_range must be positive", path);
    REQUIRE(!c->add_cross_attention || c->is_decoder, "%s: add_cross_attention needs is_decoder (as HF's)", path);
    if (c->arch == PLM_ARCH_T5) {
        REQUIRE(c->num_decoder_layers > 0 && c->num_decoder_layers <= 1024, "%s: num_decoder_layers must be in 1..1024",
                path);
        REQUIRE(c->relative_attention_num_buckets >= 2 && c->relative_attention_num_buckets <= 1024,
                "%s: relative_attention_num_buckets must be in 2..1024", path);
        REQUIRE(c->relative_attention_max_distance > c->relative_attention_num_buckets / 2 &&
                    c->relative_attention_max_distance <= 1 << 20,
                "%s: relative_attention_max_distance must exceed relative_attention_num_buckets / 2", path);
        REQUIRE(c->decoder_start_token_id >= 0 && c->decoder_start_token_id < c->vocab_size,
                "%s: decoder_start_token_id is outside the vocabulary (%d)", path, c->vocab_size);
        REQUIRE(c->type_vocab_size == 0 && c->embedding_size == 0, "%s: t5 has no segment or projected embeddings",
                path);
    }
    const int *ids[] = {&c->pad_token_id,  &c->bos_token_id, &c->eos_token_id,
                        &c->mask_token_id, &c->cls_token_id, &c->sep_token_id};
    for (size_t i = 0; i < PLM_ARRAY_LEN(ids); i++)
        REQUIRE(*ids[i] >= -1 && *ids[i] < c->vocab_size, "%s: special token id %d is outside the vocabulary (%d)",
                path, *ids[i], c->vocab_size);
#undef REQUIRE
    return 0;
}

static void add_id(cJSON *o, const char *key, int id) {
    if (id >= 0)
        cJSON_AddNumberToObject(o, key, id);
    else
        cJSON_AddNullToObject(o, key);
}

/* Writes a float as the shortest decimal that reads back as the same float, so 1e-12
 * is "1e-12", not the double expansion of the float (9.99999996004197e-13). Nine
 * significant digits always round-trip. */
static void add_float(cJSON *o, const char *key, float v) {
    if (!isfinite(v)) {
        cJSON_AddNullToObject(o, key); /* JSON has no inf or NaN (cJSON writes null too) */
        return;
    }
    char buf[32];
    for (int digits = 1; digits <= 9; digits++) {
        snprintf(buf, sizeof buf, "%.*g", digits, (double)v);
        if (strtof(buf, NULL) == v) break;
    }
    cJSON_AddRawToObject(o, key, buf);
}

/* T5Config as HF writes it. */
static char *t5_to_json(const plm_config *c, const char *architecture) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "architectures"),
                         cJSON_CreateString(architecture ? architecture : "T5ForConditionalGeneration"));
    cJSON_AddStringToObject(o, "model_type", "t5");
    cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
    cJSON_AddNumberToObject(o, "d_model", c->hidden_size);
    cJSON_AddNumberToObject(o, "d_kv", plm_config_d_kv(c));
    cJSON_AddNumberToObject(o, "d_ff", c->intermediate_size);
    cJSON_AddNumberToObject(o, "num_layers", c->num_hidden_layers);
    cJSON_AddNumberToObject(o, "num_decoder_layers", c->num_decoder_layers);
    cJSON_AddNumberToObject(o, "num_heads", c->num_attention_heads);
    cJSON_AddNumberToObject(o, "relative_attention_num_buckets", c->relative_attention_num_buckets);
    cJSON_AddNumberToObject(o, "relative_attention_max_distance", c->relative_attention_max_distance);
    add_float(o, "dropout_rate", c->hidden_dropout_prob);
    add_float(o, "layer_norm_epsilon", c->layer_norm_eps);
    add_float(o, "initializer_factor", c->initializer_range);
    const char *act = c->hidden_act == PLM_ACT_RELU ? "relu" : "gelu";
    char ff[32];
    snprintf(ff, sizeof ff, "%s%s", c->gated_act ? "gated-" : "", act);
    if (!c->gated_act && c->hidden_act == PLM_GELU_TANH) snprintf(ff, sizeof ff, "gelu_new");
    cJSON_AddStringToObject(o, "feed_forward_proj", ff);
    cJSON_AddBoolToObject(o, "is_encoder_decoder", true);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_word_embeddings);
    cJSON_AddBoolToObject(o, "use_cache", true);
    cJSON_AddNumberToObject(o, "n_positions", c->max_position_embeddings);
    /* numbers even when -1: null would read back as T5's defaults (0, 1) */
    cJSON_AddNumberToObject(o, "pad_token_id", c->pad_token_id);
    cJSON_AddNumberToObject(o, "eos_token_id", c->eos_token_id);
    cJSON_AddNumberToObject(o, "decoder_start_token_id", c->decoder_start_token_id);
    cJSON_AddStringToObject(o, "torch_dtype", "float32");
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

char *plm_config_to_json(const plm_config *c, const char *architecture) {
    if (c->arch == PLM_ARCH_T5) return t5_to_json(c, architecture);
    cJSON *o = cJSON_CreateObject();
    cJSON *archs = cJSON_AddArrayToObject(o, "architectures");
    char model_type[32];
    snprintf(model_type, sizeof model_type, "%s%s", plm_config_is_variant(c) ? "plm_" : "", plm_arch_name(c->arch));
    if (!architecture)
        architecture = c->arch == PLM_ARCH_GPT2      ? "GPT2LMHeadModel"
                       : c->arch == PLM_ARCH_ELECTRA ? "ElectraForMaskedLM"
                                                     : "BertForMaskedLM";
    cJSON_AddItemToArray(archs, cJSON_CreateString(architecture));
    cJSON_AddStringToObject(o, "model_type", model_type);
    if (c->arch != PLM_ARCH_GPT2) {
        cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
        if (c->arch == PLM_ARCH_ELECTRA || c->embedding_size)
            cJSON_AddNumberToObject(o, "embedding_size", c->embedding_size ? c->embedding_size : c->hidden_size);
        cJSON_AddNumberToObject(o, "hidden_size", c->hidden_size);
        cJSON_AddNumberToObject(o, "num_hidden_layers", c->num_hidden_layers);
        cJSON_AddNumberToObject(o, "num_attention_heads", c->num_attention_heads);
        cJSON_AddNumberToObject(o, "intermediate_size", c->intermediate_size);
        cJSON_AddStringToObject(o, "hidden_act", c->hidden_act == PLM_GELU_ERF ? "gelu" : "gelu_new");
        add_float(o, "hidden_dropout_prob", c->hidden_dropout_prob);
        add_float(o, "attention_probs_dropout_prob", c->attention_probs_dropout_prob);
        cJSON_AddNumberToObject(o, "max_position_embeddings", c->max_position_embeddings);
        cJSON_AddNumberToObject(o, "type_vocab_size", c->type_vocab_size);
        add_float(o, "layer_norm_eps", c->layer_norm_eps);
        cJSON_AddStringToObject(o, "position_embedding_type", "absolute");
    } else {
        cJSON_AddNumberToObject(o, "vocab_size", c->vocab_size);
        cJSON_AddNumberToObject(o, "n_embd", c->hidden_size);
        cJSON_AddNumberToObject(o, "n_layer", c->num_hidden_layers);
        cJSON_AddNumberToObject(o, "n_head", c->num_attention_heads);
        cJSON_AddNumberToObject(o, "n_inner", c->intermediate_size);
        cJSON_AddNumberToObject(o, "n_positions", c->max_position_embeddings);
        cJSON_AddNumberToObject(o, "n_ctx", c->max_position_embeddings);
        cJSON_AddStringToObject(o, "activation_function", c->hidden_act == PLM_GELU_ERF ? "gelu" : "gelu_new");
        add_float(o, "resid_pdrop", c->hidden_dropout_prob);
        add_float(o, "embd_pdrop", c->hidden_dropout_prob);
        add_float(o, "attn_pdrop", c->attention_probs_dropout_prob);
        add_float(o, "layer_norm_epsilon", c->layer_norm_eps);
        if (c->type_vocab_size) cJSON_AddNumberToObject(o, "type_vocab_size", c->type_vocab_size);
    }
    add_float(o, "initializer_range", c->initializer_range);
    cJSON_AddBoolToObject(o, "is_decoder", c->is_decoder);
    cJSON_AddBoolToObject(o, "add_cross_attention", c->add_cross_attention);
    cJSON_AddBoolToObject(o, "pre_layernorm", c->pre_layernorm);
    cJSON_AddBoolToObject(o, "tie_word_embeddings", c->tie_word_embeddings);
    /* id2label / label2id, as HF writes them: their size is num_labels */
    cJSON *i2l = cJSON_AddObjectToObject(o, "id2label"), *l2i = cJSON_AddObjectToObject(o, "label2id");
    for (int i = 0; i < c->num_labels; i++) {
        char k[16], v[32];
        snprintf(k, sizeof k, "%d", i);
        snprintf(v, sizeof v, "LABEL_%d", i);
        cJSON_AddStringToObject(i2l, k, v);
        cJSON_AddNumberToObject(l2i, v, i);
    }
    add_id(o, "pad_token_id", c->pad_token_id);
    add_id(o, "bos_token_id", c->bos_token_id);
    add_id(o, "eos_token_id", c->eos_token_id);
    add_id(o, "mask_token_id", c->mask_token_id);
    add_id(o, "cls_token_id", c->cls_token_id);
    add_id(o, "sep_token_id", c->sep_token_id);
    cJSON_AddStringToObject(o, "torch_dtype", "float32");
    char *s = cJSON_Print(o);
    cJSON_Delete(o);
    return s;
}

int plm_config_save(const plm_config *c, const char *architecture, const char *path) {
    char *s = plm_config_to_json(c, architecture);
    size_t n = strlen(s);
    s = plm_realloc(s, n + 2);
    s[n] = '\n';
    s[n + 1] = 0;
    int rc = plm_write_file_atomic(path, s, n + 1);
    free(s);
    return rc;
}
