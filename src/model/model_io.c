/* model_io.c - see model_io.h */
#include "model_io.h"

#include <cjson/cJSON.h>
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/digest.h"
#include "gemm.h"
#include "train/safetensors.h"

void plm_load_report_free(plm_load_report *r) {
    if (!r) return;
    free(r->newly_initialized);
    free(r->unused);
    r->newly_initialized = r->unused = NULL;
}

static void transpose(float *dst, const float *src, int rows, int cols) {
    for (int r = 0; r < rows; r++)
        for (int c = 0; c < cols; c++) dst[(size_t)c * rows + r] = src[(size_t)r * cols + c];
}

/* ---------------------------------------------------------------- saving */

int plm_model_save_weights(const plm_model *m, const char *path, const char *const *meta_kv, int n_meta) {
    plm_st_writer w;
    plm_st_writer_init(&w);
    plm_digest sum; /* over the bytes in file order */
    plm_digest_init(&sum, NULL);
    for (int i = 0; i < m->num_tensors; i++) {
        const plm_tensor *t = &m->tensors[i];
        const float *data = m->params + t->offset;
        if (t->nparts > 1) {
            /* a fused block: nparts equal row blocks, each an HF tensor */
            int64_t shape[2] = {t->shape[0] / t->nparts, t->shape[1]};
            size_t n = t->numel / (size_t)t->nparts;
            for (int k = 0; k < t->nparts; k++) {
                plm_st_add(&w, t->parts[k], PLM_DT_F32, t->ndim, shape, data + k * n);
                plm_digest_update(&sum, data + k * n, n * sizeof(float));
            }
        } else if (t->transpose) {
            float *tr = plm_malloc(t->numel * sizeof(float));
            transpose(tr, data, t->shape[0], t->shape[1]);
            int64_t shape[2] = {t->shape[1], t->shape[0]};
            plm_st_add_copy_f32(&w, t->name, 2, shape, tr);
            plm_digest_update(&sum, tr, t->numel * sizeof(float));
            free(tr);
        } else {
            int64_t shape[2] = {t->shape[0], t->shape[1]};
            plm_st_add(&w, t->name, PLM_DT_F32, t->ndim, shape, data);
            plm_digest_update(&sum, data, t->numel * sizeof(float));
        }
    }
    char buf[32];
    plm_digest_final(&sum, buf);
    plm_st_add_meta(&w, "plm_checksum", buf);
    for (int i = 0; i < n_meta; i++) plm_st_add_meta(&w, meta_kv[2 * i], meta_kv[2 * i + 1]);
    int rc = plm_st_write(&w, path);
    plm_st_writer_free(&w);
    return rc;
}

static cJSON *config_json(const plm_config *c, const char *architecture) {
    char *text = plm_config_to_json(c, architecture);
    cJSON *o = cJSON_Parse(text);
    free(text);
    if (!o) plm_die("config: unparsable own JSON");
    return o;
}

int plm_model_save(const plm_model *m, const char *dir, const char *const *meta_kv, int n_meta) {
    if (plm_mkdirs(dir) != 0) return -1;
    char path[4096];
    cJSON *o;
    if (m->config.arch == PLM_ARCH_T5) {
        o = config_json(&m->config, plm_model_architecture(m)); /* one T5Config */
    } else if (plm_model_is_seq2seq(m)) {
        /* HF's EncoderDecoderModel: the two configs nested, tensors "encoder.*" and
         * "decoder.*" (a BertModel / GPT2Model and a *LMHeadModel with cross-attention) */
        o = cJSON_CreateObject();
        cJSON_AddItemToArray(cJSON_AddArrayToObject(o, "architectures"), cJSON_CreateString("EncoderDecoderModel"));
        cJSON_AddStringToObject(o, "model_type", "encoder-decoder");
        cJSON_AddBoolToObject(o, "is_encoder_decoder", true);
        const plm_config *dc = &m->bb[1].config;
        cJSON_AddItemToObject(o, "encoder",
                              config_json(&m->config, m->config.arch == PLM_ARCH_GPT2      ? "GPT2Model"
                                                      : m->config.arch == PLM_ARCH_ELECTRA ? "ElectraModel"
                                                                                           : "BertModel"));
        cJSON_AddItemToObject(o, "decoder",
                              config_json(dc, dc->arch == PLM_ARCH_GPT2      ? "GPT2LMHeadModel"
                                              : dc->arch == PLM_ARCH_ELECTRA ? "ElectraForCausalLM"
                                                                             : "BertLMHeadModel"));
        int start = dc->cls_token_id >= 0 ? dc->cls_token_id : dc->bos_token_id;
        if (start >= 0) cJSON_AddNumberToObject(o, "decoder_start_token_id", start);
        if (dc->pad_token_id >= 0) cJSON_AddNumberToObject(o, "pad_token_id", dc->pad_token_id);
        cJSON_AddNumberToObject(o, "vocab_size", dc->vocab_size);
    } else {
        o = config_json(&m->config, plm_model_architecture(m));
    }
    /* plm's own keys (HF keeps unknown keys as attributes): the heads, and the
     * further backbones of a multi-model run */
    cJSON *heads = cJSON_AddArrayToObject(o, "plm_heads");
    for (int i = 0; i < m->num_heads; i++) {
        const plm_head *h = &m->heads[i];
        cJSON *j = cJSON_CreateObject();
        cJSON_AddStringToObject(j, "kind", head_kind_name(h->spec.kind));
        cJSON_AddNumberToObject(j, "backbone", h->spec.backbone);
        cJSON_AddNumberToObject(j, "num_labels", h->spec.num_labels);
        cJSON_AddNumberToObject(j, "weight", h->spec.weight);
        if (h->spec.pooling != PLM_SEQ_POOL_DEFAULT)
            cJSON_AddStringToObject(j, "pooling", head_pooling_name(h->spec.pooling));
        cJSON_AddItemToArray(heads, j);
    }
    if (m->num_backbones > 1 && !plm_model_is_seq2seq(m) && m->config.arch != PLM_ARCH_T5) {
        cJSON *bbs = cJSON_AddArrayToObject(o, "plm_backbones");
        for (int k = 1; k < m->num_backbones; k++) {
            cJSON *j = cJSON_CreateObject();
            cJSON_AddStringToObject(j, "prefix", m->bb[k].prefix);
            cJSON_AddBoolToObject(j, "share_embeddings", m->bb[k].w.wte == m->bb[0].w.wte);
            cJSON_AddItemToObject(j, "config", config_json(&m->bb[k].config, NULL));
            cJSON_AddItemToArray(bbs, j);
        }
    }
    char *text = cJSON_Print(o);
    cJSON_Delete(o);
    size_t n = strlen(text);
    text = plm_realloc(text, n + 2);
    text[n] = '\n';
    snprintf(path, sizeof path, "%s/config.json", dir);
    int rc = plm_write_file_atomic(path, text, n + 1);
    free(text);
    if (rc != 0) return -1;
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    return plm_model_save_weights(m, path, meta_kv, n_meta);
}

/* ---------------------------------------------------------------- loading */

typedef struct {
    const plm_safetensors *st;
    bool *used;
    const plm_model *m;
} file_index;

/* The file's tensor for one of our names: the name itself, without the backbone prefix
 * (a bare BertModel / GPT2Model, GPT-2's original files), with LayerNorm.gamma/beta. */
static const plm_st_tensor *lookup(file_index *fi, const char *name) {
    char cand[4][200];
    int nc = 0;
    snprintf(cand[nc++], sizeof cand[0], "%s", name);
    for (int k = 0; k < fi->m->num_backbones; k++) {
        const char *p = fi->m->bb[k].prefix;
        size_t pl = strlen(p);
        if (k == 0 && strncmp(name, p, pl) == 0 && name[pl] == '.')
            snprintf(cand[nc++], sizeof cand[0], "%s", name + pl + 1);
    }
    for (int i = 0, n0 = nc; i < n0; i++) {
        const char *ln = strstr(cand[i], "LayerNorm.");
        if (!ln) continue;
        const char *leaf = ln + 10;
        const char *alt = strcmp(leaf, "weight") == 0 ? "gamma" : strcmp(leaf, "bias") == 0 ? "beta" : NULL;
        if (!alt) continue;
        size_t keep = (size_t)(leaf - cand[i]); /* "...LayerNorm." then gamma/beta */
        memcpy(cand[nc], cand[i], keep);
        strcpy(cand[nc++] + keep, alt);
    }
    for (int i = 0; i < nc; i++) {
        const plm_st_tensor *t = plm_st_find(fi->st, cand[i]);
        if (t) {
            fi->used[t - fi->st->tensors] = true;
            return t;
        }
    }
    return NULL;
}

static void format_shape(char *buf, size_t n, const int64_t *shape, int ndim) {
    size_t k = (size_t)snprintf(buf, n, "[");
    for (int d = 0; d < ndim && k < n; d++)
        k += (size_t)snprintf(buf + k, n - k, d ? ", %" PRId64 : "%" PRId64, shape[d]);
    if (k < n) snprintf(buf + k, n - k, "]");
}

static bool shape_ok(const plm_st_tensor *s, int ndim, int64_t d0, int64_t d1) {
    return s->dtype == PLM_DT_F32 && s->ndim == ndim && s->shape[0] == d0 && (ndim == 1 || s->shape[1] == d1);
}

static int shape_error(const char *path, const plm_st_tensor *s, int ndim, int64_t d0, int64_t d1) {
    char got[64], exp[64];
    format_shape(got, sizeof got, s->shape, s->ndim);
    int64_t w[2] = {d0, d1};
    format_shape(exp, sizeof exp, w, ndim);
    plm_error("%s: tensor \"%s\" is %s %s, expected F32 %s", path, s->name, s->dtype == PLM_DT_F32 ? "F32" : "not F32",
              got, exp);
    return -1;
}

static void append(char **list, const char *name) {
    size_t a = *list ? strlen(*list) : 0, b = strlen(name);
    *list = plm_realloc(*list, a + b + 3);
    if (a) memcpy(*list + a, ", ", 2), a += 2;
    memcpy(*list + a, name, b + 1);
}

static int cmp_data(const void *a, const void *b) {
    const plm_st_tensor *x = *(const plm_st_tensor *const *)a, *y = *(const plm_st_tensor *const *)b;
    return (const char *)x->data < (const char *)y->data ? -1 : (const char *)x->data > (const char *)y->data;
}

/* Pieces in which the loader reads a mapped file and lets its pages go (plm_st_release):
 * the file's bytes and the weights are never both in memory. */
#define LOAD_PIECE ((size_t)8 << 20)

static void copy_out(const plm_safetensors *st, void *dst, const void *src, size_t n) {
    for (size_t o = 0; o < n; o += LOAD_PIECE) {
        size_t k = n - o < LOAD_PIECE ? n - o : LOAD_PIECE;
        memcpy((char *)dst + o, (const char *)src + o, k);
        plm_st_release(st, (const char *)src + o, k);
    }
}

/* Loads one tensor (possibly fused from parts); 1 if absent, 0 loaded, -1 error. */
static int load_tensor(file_index *fi, const plm_tensor *t, float *dst, const char *path) {
    if (t->nparts > 1) {
        int64_t rows = t->shape[0] / t->nparts;
        size_t n = t->numel / (size_t)t->nparts;
        const plm_st_tensor *s[3];
        int found = 0;
        for (int k = 0; k < t->nparts; k++) found += (s[k] = lookup(fi, t->parts[k])) != NULL;
        if (found == 0) return 1;
        for (int k = 0; k < t->nparts; k++) {
            if (!s[k]) {
                plm_error("%s: missing tensor \"%s\"", path, t->parts[k]);
                return -1;
            }
            if (!shape_ok(s[k], t->ndim, rows, t->shape[1])) return shape_error(path, s[k], t->ndim, rows, t->shape[1]);
        }
        for (int k = 0; k < t->nparts; k++) copy_out(fi->st, dst + k * n, s[k]->data, n * sizeof(float));
        return 0;
    }
    const plm_st_tensor *s = lookup(fi, t->name);
    if (!s) return 1;
    int64_t d0 = t->transpose ? t->shape[1] : t->shape[0], d1 = t->transpose ? t->shape[0] : t->shape[1];
    if (!shape_ok(s, t->ndim, d0, d1)) return shape_error(path, s, t->ndim, d0, d1);
    if (t->transpose) {
        transpose(dst, s->data, t->shape[1], t->shape[0]);
        plm_st_release(fi->st, s->data, s->nbytes);
    } else {
        copy_out(fi->st, dst, s->data, t->numel * sizeof(float));
    }
    return 0;
}

int plm_model_load_weights_ex(plm_model *m, const char *path, bool strict, plm_load_report *report) {
    plm_safetensors st;
    if (plm_st_load(&st, path) != 0) return -1;
    int rc = -1;
    file_index fi = {&st, plm_calloc((size_t)st.num_tensors + 1, sizeof(bool)), m};
    char *fresh = NULL, *unused = NULL;
    /* the checksum covers the file's bytes in file order */
    const char *want = plm_st_meta(&st, "plm_checksum");
    if (want) {
        const plm_st_tensor **order = plm_malloc(((size_t)st.num_tensors + 1) * sizeof *order);
        for (int i = 0; i < st.num_tensors; i++) order[i] = &st.tensors[i];
        qsort(order, (size_t)st.num_tensors, sizeof *order, cmp_data);
        plm_digest sum;
        plm_digest_init(&sum, want);
        for (int i = 0; i < st.num_tensors; i++)
            for (size_t o = 0; o < order[i]->nbytes; o += LOAD_PIECE) {
                const char *d = (const char *)order[i]->data + o;
                size_t k = order[i]->nbytes - o < LOAD_PIECE ? order[i]->nbytes - o : LOAD_PIECE;
                plm_digest_update(&sum, d, k);
                plm_st_release(&st, d, k);
            }
        free(order);
        if (!plm_digest_matches(&sum, want)) {
            plm_error("%s: checksum mismatch (file corrupted)", path);
            goto done;
        }
    }
    for (int i = 0; i < m->num_tensors; i++) {
        const plm_tensor *t = &m->tensors[i];
        int r = load_tensor(&fi, t, m->params + t->offset, path);
        if (r < 0) goto done;
        if (r == 1) {
            const char *nm = t->nparts > 1 ? t->parts[0] : t->name;
            if (strict || t->head == PLM_TENSOR_BACKBONE) {
                plm_error("%s: missing tensor \"%s\" (checkpoint does not match config.json)", path, nm);
                goto done;
            }
            if (t->nparts > 1)
                for (int k = 0; k < t->nparts; k++) append(&fresh, t->parts[k]);
            else
                append(&fresh, nm);
        }
    }
    /* aliases (a tied decoder) and HF's non-parameter buffers are not "unused" */
    for (int i = 0; i < st.num_tensors; i++) {
        if (fi.used[i]) continue;
        const char *nm = st.tensors[i].name;
        bool known = strstr(nm, "position_ids") || strstr(nm, ".attn.bias") || strstr(nm, ".attn.masked_bias");
        /* HF's EncoderDecoderModel builds its encoder as BertModel with its pooler, which
         * its forward never reads: present in HF's files, absent from plm's */
        if (!known && plm_model_is_seq2seq(m) && !m->bb[0].pooler) {
            size_t pl = strlen(m->bb[0].prefix);
            known = strncmp(nm, m->bb[0].prefix, pl) == 0 && strncmp(nm + pl, ".pooler.", 8) == 0;
        }
        for (int a = 0; a < m->num_aliases && !known; a++) known = strcmp(m->aliases[a].name, nm) == 0;
        if (!known) append(&unused, nm);
    }
    if (strict && unused) {
        plm_error("%s: tensors the model has no place for: %s", path, unused);
        goto done;
    }
    rc = 0;
done:
    plm_model_params_written(m); /* even on failure: some tensors may have been written */
    if (report && rc == 0) {
        report->newly_initialized = fresh ? fresh : plm_strdup("");
        report->unused = unused ? unused : plm_strdup("");
    } else {
        free(fresh);
        free(unused);
    }
    free(fi.used);
    plm_st_free(&st);
    return rc;
}

int plm_model_load_weights(plm_model *m, const char *path) { return plm_model_load_weights_ex(m, path, true, NULL); }

static int head_kind_of(const char *s, plm_head_kind *k) {
    for (int i = 0; i <= PLM_HEAD_RTD; i++)
        if (strcmp(s, head_kind_name((plm_head_kind)i)) == 0) {
            *k = (plm_head_kind)i;
            return 0;
        }
    return -1;
}

/* Heads from HF's "architectures" name, for configs that plm did not write. */
static void heads_from_architecture(plm_model_spec *s, const char *arch, int num_labels) {
    s->num_heads = 0;
    if (strstr(arch, "ForSequenceClassification"))
        plm_model_spec_add_head(s, PLM_HEAD_SEQ_CLS, num_labels);
    else if (strstr(arch, "ForTokenClassification"))
        plm_model_spec_add_head(s, PLM_HEAD_TOKEN_CLS, num_labels);
    else if (strstr(arch, "ForQuestionAnswering"))
        plm_model_spec_add_head(s, PLM_HEAD_QA, 2);
    else if (strstr(arch, "ForNextSentencePrediction"))
        plm_model_spec_add_head(s, PLM_HEAD_NSP, 2);
    else if (strstr(arch, "ElectraForPreTraining"))
        plm_model_spec_add_head(s, PLM_HEAD_RTD, 1);
    else if (strstr(arch, "BertForPreTraining")) {
        plm_model_spec_add_head(s, PLM_HEAD_LM, 0);
        plm_model_spec_add_head(s, PLM_HEAD_NSP, 2);
    } else
        plm_model_spec_add_head(s, PLM_HEAD_LM, 0);
}

/* HF's EncoderDecoderModel config: "encoder" and "decoder" objects. */
static int spec_encoder_decoder(plm_model_spec *s, const cJSON *root, const char *path) {
    const cJSON *parts[2] = {cJSON_GetObjectItemCaseSensitive(root, "encoder"),
                             cJSON_GetObjectItemCaseSensitive(root, "decoder")};
    static _Thread_local char prefixes[2][48];
    memset(s, 0, sizeof *s);
    for (int k = 0; k < 2; k++) {
        if (!cJSON_IsObject(parts[k])) {
            plm_error("%s: an encoder-decoder config needs \"encoder\" and \"decoder\" objects", path);
            return -1;
        }
        char *sub = cJSON_PrintUnformatted(parts[k]);
        int r = plm_config_parse(&s->backbone[k], sub, path);
        free(sub);
        if (r != 0) return -1;
    }
    if (!s->backbone[1].add_cross_attention) {
        plm_error("%s: the decoder of an encoder-decoder needs \"add_cross_attention\": true", path);
        return -1;
    }
    snprintf(prefixes[0], sizeof prefixes[0], "encoder");
    snprintf(prefixes[1], sizeof prefixes[1], "decoder.%s",
             s->backbone[1].arch == PLM_ARCH_GPT2      ? "transformer"
             : s->backbone[1].arch == PLM_ARCH_ELECTRA ? "electra"
                                                       : "bert");
    s->prefix[0] = prefixes[0];
    s->prefix[1] = prefixes[1];
    s->num_backbones = 2;
    int h = plm_model_spec_add_head(s, PLM_HEAD_LM, 0);
    s->heads[h].backbone = 1;
    return 0;
}

int plm_model_spec_load(plm_model_spec *s, const char *dir) {
    char path[4096];
    snprintf(path, sizeof path, "%s/config.json", dir);
    size_t len;
    char *text = plm_read_file(path, &len);
    if (!text) return -1;
    cJSON *root = cJSON_Parse(text);
    free(text);
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    bool encdec = cJSON_IsString(mt) && strcmp(mt->valuestring, "encoder-decoder") == 0;
    plm_config c;
    if (encdec ? spec_encoder_decoder(s, root, path) != 0 : plm_config_load(&c, path) != 0) {
        cJSON_Delete(root);
        return -1;
    }
    if (encdec)
        c = s->backbone[0];
    else
        plm_model_spec_default(s, &c);
    int rc = -1;
    const cJSON *heads = cJSON_GetObjectItemCaseSensitive(root, "plm_heads");
    const cJSON *archs = cJSON_GetObjectItemCaseSensitive(root, "architectures");
    const cJSON *bbs = cJSON_GetObjectItemCaseSensitive(root, "plm_backbones");
    if (bbs && !encdec) {
        const cJSON *it;
        if (!cJSON_IsArray(bbs) || cJSON_GetArraySize(bbs) > PLM_MAX_BACKBONES - 1) {
            plm_error("%s: \"plm_backbones\" must be an array of at most %d objects", path, PLM_MAX_BACKBONES - 1);
            goto done;
        }
        cJSON_ArrayForEach(it, bbs) {
            const cJSON *pre = cJSON_GetObjectItemCaseSensitive(it, "prefix");
            const cJSON *cfg = cJSON_GetObjectItemCaseSensitive(it, "config");
            const cJSON *share = cJSON_GetObjectItemCaseSensitive(it, "share_embeddings");
            if (!cJSON_IsString(pre) || !cJSON_IsObject(cfg) || strlen(pre->valuestring) >= 48) {
                plm_error("%s: each of \"plm_backbones\" needs a \"prefix\" and a \"config\"", path);
                goto done;
            }
            char *sub = cJSON_PrintUnformatted(cfg);
            int k = s->num_backbones;
            int r = plm_config_parse(&s->backbone[k], sub, path);
            free(sub);
            if (r != 0) goto done;
            static _Thread_local char prefixes[PLM_MAX_BACKBONES][48];
            snprintf(prefixes[k], sizeof prefixes[k], "%s", pre->valuestring);
            s->prefix[k] = prefixes[k];
            s->share_embeddings = cJSON_IsTrue(share);
            s->num_backbones++;
        }
    }
    if (heads) {
        const cJSON *it;
        if (!cJSON_IsArray(heads) || cJSON_GetArraySize(heads) > PLM_MAX_HEADS) {
            plm_error("%s: \"plm_heads\" must be an array of at most %d heads", path, PLM_MAX_HEADS);
            goto done;
        }
        s->num_heads = 0;
        cJSON_ArrayForEach(it, heads) {
            const cJSON *kind = cJSON_GetObjectItemCaseSensitive(it, "kind");
            const cJSON *bb = cJSON_GetObjectItemCaseSensitive(it, "backbone");
            const cJSON *nl = cJSON_GetObjectItemCaseSensitive(it, "num_labels");
            const cJSON *w = cJSON_GetObjectItemCaseSensitive(it, "weight");
            const cJSON *pool = cJSON_GetObjectItemCaseSensitive(it, "pooling");
            plm_head_kind k;
            plm_seq_pooling pl = PLM_SEQ_POOL_DEFAULT;
            if (pool && (!cJSON_IsString(pool) || head_pooling_of(pool->valuestring, &pl) != 0)) {
                plm_error("%s: a head's \"pooling\" must be \"pooler\", \"cls\" or \"mean\"", path);
                goto done;
            }
            if (!cJSON_IsString(kind) || head_kind_of(kind->valuestring, &k) != 0) {
                plm_error("%s: unknown head kind in \"plm_heads\"", path);
                goto done;
            }
            int b = cJSON_IsNumber(bb) ? bb->valueint : 0;
            if (b < 0 || b >= s->num_backbones) {
                plm_error("%s: a head in \"plm_heads\" reads backbone %d, which does not exist", path, b);
                goto done;
            }
            int i = plm_model_spec_add_head(s, k, cJSON_IsNumber(nl) ? nl->valueint : c.num_labels);
            s->heads[i].backbone = b;
            if (cJSON_IsNumber(w)) s->heads[i].weight = (float)w->valuedouble;
            s->heads[i].pooling = pl;
        }
    } else if (!encdec && c.arch != PLM_ARCH_T5 && cJSON_IsArray(archs) &&
               cJSON_IsString(cJSON_GetArrayItem(archs, 0))) {
        heads_from_architecture(s, cJSON_GetArrayItem(archs, 0)->valuestring, c.num_labels);
    }
    rc = 0;
done:
    cJSON_Delete(root);
    return rc;
}

static plm_model *load(const char *dir) {
    plm_model_spec s;
    if (plm_model_spec_load(&s, dir) != 0) return NULL;
    plm_model *m = plm_model_create_spec_ex(&s, 0, PLM_INIT_NONE); /* every weight is loaded below */
    if (!m) return NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    if (plm_model_load_weights(m, path) != 0) {
        plm_model_free(m);
        return NULL;
    }
    return m;
}

plm_model *plm_model_load(const char *dir) {
    plm_gemm_warm_up_begin(); /* overlaps the load (gemm.h) */
    plm_model *m = load(dir);
    plm_gemm_warm_up_end();
    return m;
}

static plm_model *load_with_heads(const char *dir, const plm_head_spec *heads, int num_heads, uint64_t seed, bool quiet,
                                  plm_load_report *report) {
    plm_model_spec s;
    if (plm_model_spec_load(&s, dir) != 0) return NULL;
    s.num_heads = 0;
    for (int i = 0; i < num_heads; i++) {
        s.heads[s.num_heads++] = heads[i];
        if (heads[i].kind == PLM_HEAD_SEQ_CLS || heads[i].kind == PLM_HEAD_TOKEN_CLS)
            s.backbone[0].num_labels = heads[i].num_labels;
    }
    /* the backbone's weights must all be in the file: only the heads may start fresh */
    plm_model *m = plm_model_create_spec_ex(&s, seed, PLM_INIT_BUT_BACKBONE);
    if (!m) return NULL;
    char path[4096];
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    plm_load_report rep = {0};
    if (plm_model_load_weights_ex(m, path, false, &rep) != 0) {
        plm_model_free(m);
        return NULL;
    }
    const char *arch = plm_model_architecture(m);
    if (!quiet && *rep.newly_initialized)
        fprintf(stderr,
                "Some weights of %s were not initialized from the checkpoint at %s and are newly initialized: [%s]\n",
                arch, dir, rep.newly_initialized);
    if (!quiet && *rep.unused)
        fprintf(stderr, "Some weights of the checkpoint at %s were not used when initializing %s: [%s]\n", dir, arch,
                rep.unused);
    if (report)
        *report = rep;
    else
        plm_load_report_free(&rep);
    return m;
}

plm_model *plm_model_load_with_heads(const char *dir, const plm_head_spec *heads, int num_heads, uint64_t seed,
                                     bool quiet, plm_load_report *report) {
    plm_gemm_warm_up_begin(); /* overlaps the load (gemm.h) */
    plm_model *m = load_with_heads(dir, heads, num_heads, seed, quiet, report);
    plm_gemm_warm_up_end();
    return m;
}
