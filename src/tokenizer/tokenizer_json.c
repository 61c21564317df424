/* tokenizer_json.c - reading and writing Hugging Face tokenizer.json for byte-level
 * BPE (GPT-2 style) and WordPiece (BERT style). Special-token roles are kept as extra
 * "plm.role.NAME" entries of the TemplateProcessing post-processor's special_tokens map
 * (HF rejects unknown top-level fields but accepts unreferenced template tokens). */
#include "tokenizer/internal.h"
#include "tokenizer/bpe.h"
#include "tokenizer/wordpiece.h"
#include "core/common.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static const char *role_names[PLM_SPECIAL_COUNT] = {"pad", "unk", "cls", "sep", "mask", "bos", "eos"};

cJSON *plm_json_parse(const char *path, const char *buf, size_t len); /* bpe.c */

/* Optional boolean member: default when absent or null; -1 when of another type. */
static int get_bool(const cJSON *o, const char *key, bool def, bool *out) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v || cJSON_IsNull(v)) {
        *out = def;
        return 0;
    }
    if (!cJSON_IsBool(v)) return -1;
    *out = cJSON_IsTrue(v);
    return 0;
}

static const char *type_of(const cJSON *o) {
    const cJSON *t = cJSON_GetObjectItemCaseSensitive(o, "type");
    return cJSON_IsString(t) ? t->valuestring : "";
}

static bool valid_id(double d) { return d >= 0 && d <= 16777216 && d == (double)(int32_t)d; }

/* Reads model.vocab (object token -> id) into t->vocab. */
static int read_vocab(plm_tokenizer *t, const char *path, const cJSON *vocab) {
    if (!cJSON_IsObject(vocab)) {
        plm_error("%s: model.vocab must be an object token -> id", path);
        return -1;
    }
    int k = 0;
    for (const cJSON *e = vocab->child; e; e = e->next, k++) {
        if (!cJSON_IsNumber(e) || !valid_id(e->valuedouble)) {
            plm_error("%s: model.vocab entry %d (\"%.100s\"): id must be an integer in 0..16777216", path, k,
                      e->string);
            return -1;
        }
        if (plm_vocab_put(&t->vocab, (int32_t)e->valuedouble, e->string, strlen(e->string)) != 0) {
            plm_error("%s: model.vocab entry %d (\"%.100s\"): duplicate token or id %d", path, k, e->string,
                      (int)e->valuedouble);
            return -1;
        }
    }
    return 0;
}

static int read_merges(plm_tokenizer *t, const char *path, const cJSON *merges) {
    if (!cJSON_IsArray(merges)) {
        plm_error("%s: model.merges must be an array", path);
        return -1;
    }
    int k = 0;
    char *tmp = NULL;
    size_t cap = 0;
    for (const cJSON *m = merges->child; m; m = m->next, k++) {
        const char *a = NULL, *b = NULL;
        size_t la = 0, lb = 0;
        if (cJSON_IsString(m)) { /* "a b" (tokenizers < 0.20) */
            const char *s = m->valuestring, *sp = strchr(s, ' ');
            if (sp && sp != s && sp[1] && !strchr(sp + 1, ' ')) {
                a = s;
                la = (size_t)(sp - s);
                b = sp + 1;
                lb = strlen(b);
            }
        } else if (cJSON_IsArray(m) && cJSON_GetArraySize(m) == 2 && cJSON_IsString(m->child) &&
                   cJSON_IsString(m->child->next)) { /* ["a", "b"] */
            a = m->child->valuestring;
            la = strlen(a);
            b = m->child->next->valuestring;
            lb = strlen(b);
        }
        if (!a || !la || !lb) {
            plm_error("%s: model.merges[%d]: expected \"a b\" or [\"a\", \"b\"]", path, k);
            free(tmp);
            return -1;
        }
        int32_t ia = plm_vocab_find(&t->vocab, a, la), ib = plm_vocab_find(&t->vocab, b, lb);
        if (la + lb + 1 > cap) tmp = plm_realloc(tmp, cap = la + lb + 64);
        memcpy(tmp, a, la);
        memcpy(tmp + la, b, lb);
        int32_t im = plm_vocab_find(&t->vocab, tmp, la + lb);
        if (ia < 0 || ib < 0 || im < 0) {
            plm_error("%s: model.merges[%d]: \"%.100s\" + \"%.100s\": token not in the vocabulary", path, k, a, b);
            free(tmp);
            return -1;
        }
        plm_bpe_add_merge(t->bpe, ia, ib, im, k);
    }
    free(tmp);
    return 0;
}

static int read_added(plm_tokenizer *t, const char *path, const cJSON *added) {
    if (!added || cJSON_IsNull(added)) return 0;
    if (!cJSON_IsArray(added)) {
        plm_error("%s: added_tokens must be an array", path);
        return -1;
    }
    int k = 0;
    for (const cJSON *a = added->child; a; a = a->next, k++) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(a, "id");
        const cJSON *content = cJSON_GetObjectItemCaseSensitive(a, "content");
        bool special, lstrip, rstrip;
        if (!cJSON_IsNumber(id) || !valid_id(id->valuedouble) || !cJSON_IsString(content) || !content->valuestring[0] ||
            get_bool(a, "special", false, &special) != 0 || get_bool(a, "lstrip", false, &lstrip) != 0 ||
            get_bool(a, "rstrip", false, &rstrip) != 0) {
            plm_error("%s: added_tokens[%d]: needs an integer id, a non-empty content and booleans special, lstrip, "
                      "rstrip",
                      path, k);
            return -1;
        }
        int32_t i = (int32_t)id->valuedouble;
        size_t n = strlen(content->valuestring);
        int32_t have = plm_vocab_find(&t->vocab, content->valuestring, n);
        if (have != i) {
            if (have >= 0 || plm_vocab_put(&t->vocab, i, content->valuestring, n) != 0) {
                plm_error("%s: added_tokens[%d]: \"%.100s\" with id %d conflicts with the vocabulary", path, k,
                          content->valuestring, (int)i);
                return -1;
            }
        }
        plm_tokenizer_add_added(t, i, special);
        plm_tokenizer_set_added_strip(t, i, lstrip, rstrip);
    }
    return 0;
}

static int read_roles(plm_tokenizer *t, const char *path, const cJSON *post) {
    const cJSON *st = cJSON_GetObjectItemCaseSensitive(post, "special_tokens");
    if (!cJSON_IsObject(st)) return 0;
    for (int r = 0; r < PLM_SPECIAL_COUNT; r++) {
        char key[32];
        snprintf(key, sizeof key, "plm.role.%s", role_names[r]);
        const cJSON *e = cJSON_GetObjectItemCaseSensitive(st, key);
        if (!e) continue;
        const cJSON *toks = cJSON_GetObjectItemCaseSensitive(e, "tokens");
        const cJSON *tok = cJSON_IsArray(toks) ? toks->child : NULL;
        if (!cJSON_IsString(tok) || plm_tokenizer_set_special(t, (plm_special_role)r, tok->valuestring) < 0) {
            plm_error("%s: post_processor.special_tokens.%s: not a token of the vocabulary", path, key);
            return -1;
        }
    }
    return 0;
}

plm_tokenizer *plm_tokenizer_load(const char *path) {
    size_t len;
    char *buf = plm_read_file(path, &len);
    if (!buf) return NULL;
    cJSON *j = plm_json_parse(path, buf, len);
    free(buf);
    if (!j) return NULL;
    plm_tokenizer *t = NULL;
    const cJSON *model = cJSON_GetObjectItemCaseSensitive(j, "model");
    if (!cJSON_IsObject(model)) {
        plm_error("%s: no \"model\" object", path);
        goto fail;
    }
    const char *mt = type_of(model);
    if (!mt[0]) mt = cJSON_GetObjectItemCaseSensitive(model, "merges") ? "BPE" : "WordPiece";
    const cJSON *norm = cJSON_GetObjectItemCaseSensitive(j, "normalizer");
    const cJSON *pre = cJSON_GetObjectItemCaseSensitive(j, "pre_tokenizer");
    if (!strcmp(mt, "BPE")) {
        t = plm_tokenizer_new(PLM_TOK_BPE);
        t->bpe = plm_bpe_new();
        if (norm && !cJSON_IsNull(norm)) {
            plm_error("%s: normalizer \"%s\" is not supported with BPE (plm does byte-level BPE)", path, type_of(norm));
            goto fail;
        }
        if (!pre || strcmp(type_of(pre), "ByteLevel") != 0) {
            plm_error("%s: pre_tokenizer must be ByteLevel for BPE", path);
            goto fail;
        }
        bool aps, use_regex;
        if (get_bool(pre, "add_prefix_space", false, &aps) != 0 || get_bool(pre, "use_regex", true, &use_regex)) {
            plm_error("%s: pre_tokenizer: bad add_prefix_space/use_regex", path);
            goto fail;
        }
        if (aps || !use_regex) {
            plm_error("%s: pre_tokenizer ByteLevel with add_prefix_space or without regex is not supported", path);
            goto fail;
        }
        const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
        const cJSON *csp = cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
        const cJSON *eow = cJSON_GetObjectItemCaseSensitive(model, "end_of_word_suffix");
        if ((unk && !cJSON_IsNull(unk)) || (csp && !cJSON_IsNull(csp)) || (eow && !cJSON_IsNull(eow))) {
            plm_error("%s: BPE unk_token/continuing_subword_prefix/end_of_word_suffix are not supported", path);
            goto fail;
        }
        if (read_vocab(t, path, cJSON_GetObjectItemCaseSensitive(model, "vocab")) != 0) goto fail;
        if (read_merges(t, path, cJSON_GetObjectItemCaseSensitive(model, "merges")) != 0) goto fail;
    } else if (!strcmp(mt, "WordPiece")) {
        t = plm_tokenizer_new(PLM_TOK_WORDPIECE);
        if (norm && !cJSON_IsNull(norm)) {
            if (strcmp(type_of(norm), "BertNormalizer") != 0) {
                plm_error("%s: normalizer \"%s\" is not supported with WordPiece (BertNormalizer only)", path,
                          type_of(norm));
                goto fail;
            }
            const cJSON *sa = cJSON_GetObjectItemCaseSensitive(norm, "strip_accents");
            if (get_bool(norm, "clean_text", true, &t->wp_clean_text) != 0 ||
                get_bool(norm, "handle_chinese_chars", true, &t->wp_chinese_chars) != 0 ||
                get_bool(norm, "lowercase", true, &t->wp_lowercase) != 0 ||
                get_bool(norm, "strip_accents", t->wp_lowercase, &t->wp_strip_accents) != 0) {
                plm_error("%s: normalizer: options must be booleans", path);
                goto fail;
            }
            (void)sa; /* null strip_accents follows lowercase, as HF */
        } else {
            t->wp_clean_text = t->wp_chinese_chars = t->wp_lowercase = t->wp_strip_accents = false;
        }
        if (pre && !cJSON_IsNull(pre) && strcmp(type_of(pre), "BertPreTokenizer") != 0) {
            plm_error("%s: pre_tokenizer \"%s\" is not supported with WordPiece (BertPreTokenizer only)", path,
                      type_of(pre));
            goto fail;
        }
        if (read_vocab(t, path, cJSON_GetObjectItemCaseSensitive(model, "vocab")) != 0) goto fail;
        const cJSON *unk = cJSON_GetObjectItemCaseSensitive(model, "unk_token");
        const char *unks = cJSON_IsString(unk) ? unk->valuestring : "[UNK]";
        t->wp_unk_id = plm_vocab_find(&t->vocab, unks, strlen(unks));
        const cJSON *csp = cJSON_GetObjectItemCaseSensitive(model, "continuing_subword_prefix");
        if (cJSON_IsString(csp)) {
            if (strlen(csp->valuestring) >= sizeof t->wp_prefix) {
                plm_error("%s: continuing_subword_prefix too long", path);
                goto fail;
            }
            strcpy(t->wp_prefix, csp->valuestring);
        }
        const cJSON *mx = cJSON_GetObjectItemCaseSensitive(model, "max_input_chars_per_word");
        if (cJSON_IsNumber(mx)) {
            if (!valid_id(mx->valuedouble)) {
                plm_error("%s: bad max_input_chars_per_word", path);
                goto fail;
            }
            t->wp_max_input_chars = (int)mx->valuedouble;
        }
        plm_wordpiece_prepare(t); /* model vocab and prefix are final; added-only tokens come next */
    } else {
        plm_error("%s: model type \"%s\" is not supported (BPE or WordPiece)", path, mt);
        goto fail;
    }
    if (read_added(t, path, cJSON_GetObjectItemCaseSensitive(j, "added_tokens")) != 0) goto fail;
    for (int i = 0; i < t->vocab.n; i++) {
        if (!t->vocab.tok[i]) {
            plm_error("%s: id %d is missing from the vocabulary (ids must be dense)", path, i);
            goto fail;
        }
    }
    if (read_roles(t, path, cJSON_GetObjectItemCaseSensitive(j, "post_processor")) != 0) goto fail;
    plm_tokenizer_map_special_roles(t);
    if (t->kind == PLM_TOK_BPE && plm_bpe_finish(t) != 0) goto fail;
    cJSON_Delete(j);
    return t;
fail:
    cJSON_Delete(j);
    plm_tokenizer_free(t);
    return NULL;
}

/* ---- writing ---- */

static cJSON *bytelevel(bool add_prefix_space, bool trim_offsets) {
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "ByteLevel");
    cJSON_AddBoolToObject(o, "add_prefix_space", add_prefix_space);
    cJSON_AddBoolToObject(o, "trim_offsets", trim_offsets);
    cJSON_AddBoolToObject(o, "use_regex", true);
    return o;
}

static cJSON *template_piece(bool special, const char *id, int type_id) {
    cJSON *o = cJSON_CreateObject(), *in = cJSON_CreateObject();
    cJSON_AddStringToObject(in, "id", id);
    cJSON_AddNumberToObject(in, "type_id", type_id);
    cJSON_AddItemToObject(o, special ? "SpecialToken" : "Sequence", in);
    return o;
}

/* TemplateProcessing: BERT's [CLS] A [SEP] (B [SEP]) when bert, else A (B) with type
 * ids 0/1 as HF's ByteLevel processor; plus the plm.role.* entries. */
static cJSON *post_processor(const plm_tokenizer *t, bool bert) {
    int32_t cls = t->special[PLM_SPECIAL_CLS], sep = t->special[PLM_SPECIAL_SEP];
    if (cls < 0 || sep < 0) bert = false;
    const char *c = bert ? t->vocab.tok[cls] : NULL, *s = bert ? t->vocab.tok[sep] : NULL;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "type", "TemplateProcessing");
    cJSON *single = cJSON_AddArrayToObject(o, "single");
    if (bert) cJSON_AddItemToArray(single, template_piece(true, c, 0));
    cJSON_AddItemToArray(single, template_piece(false, "A", 0));
    if (bert) cJSON_AddItemToArray(single, template_piece(true, s, 0));
    cJSON *pair = cJSON_AddArrayToObject(o, "pair");
    if (bert) cJSON_AddItemToArray(pair, template_piece(true, c, 0));
    cJSON_AddItemToArray(pair, template_piece(false, "A", 0));
    if (bert) cJSON_AddItemToArray(pair, template_piece(true, s, 0));
    cJSON_AddItemToArray(pair, template_piece(false, "B", 1));
    if (bert) cJSON_AddItemToArray(pair, template_piece(true, s, 1));
    cJSON *st = cJSON_AddObjectToObject(o, "special_tokens");
    const char *names[2 + PLM_SPECIAL_COUNT];
    int32_t ids[2 + PLM_SPECIAL_COUNT];
    char keys[2 + PLM_SPECIAL_COUNT][32];
    int n = 0;
    if (bert) {
        names[n] = c, ids[n] = cls, snprintf(keys[n], 32, "%s", ""), n++;
        if (sep != cls) names[n] = s, ids[n] = sep, snprintf(keys[n], 32, "%s", ""), n++;
    }
    for (int r = 0; r < PLM_SPECIAL_COUNT; r++) {
        if (t->special[r] < 0) continue;
        names[n] = t->vocab.tok[t->special[r]];
        ids[n] = t->special[r];
        snprintf(keys[n], 32, "plm.role.%s", role_names[r]);
        n++;
    }
    for (int k = 0; k < n; k++) {
        const char *key = keys[k][0] ? keys[k] : names[k];
        cJSON *e = cJSON_AddObjectToObject(st, key);
        cJSON_AddStringToObject(e, "id", key);
        cJSON *idsa = cJSON_AddArrayToObject(e, "ids");
        cJSON_AddItemToArray(idsa, cJSON_CreateNumber(ids[k]));
        cJSON *toks = cJSON_AddArrayToObject(e, "tokens");
        cJSON_AddItemToArray(toks, cJSON_CreateString(names[k]));
    }
    return o;
}

int plm_tokenizer_save(const plm_tokenizer *t, const char *path) {
    cJSON *j = cJSON_CreateObject();
    cJSON_AddStringToObject(j, "version", "1.0");
    cJSON_AddNullToObject(j, "truncation");
    cJSON_AddNullToObject(j, "padding");
    cJSON *added = cJSON_AddArrayToObject(j, "added_tokens");
    for (int i = 0; i < t->n_added; i++) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", t->added[i].id);
        cJSON_AddStringToObject(a, "content", t->vocab.tok[t->added[i].id]);
        cJSON_AddBoolToObject(a, "single_word", false);
        cJSON_AddBoolToObject(a, "lstrip", t->added[i].lstrip);
        cJSON_AddBoolToObject(a, "rstrip", t->added[i].rstrip);
        cJSON_AddBoolToObject(a, "normalized", false);
        cJSON_AddBoolToObject(a, "special", t->added[i].special);
        cJSON_AddItemToArray(added, a);
    }
    cJSON *model = cJSON_CreateObject();
    if (t->kind == PLM_TOK_BPE) {
        cJSON_AddNullToObject(j, "normalizer");
        cJSON_AddItemToObject(j, "pre_tokenizer", bytelevel(false, true));
        cJSON_AddItemToObject(j, "post_processor", post_processor(t, false));
        cJSON_AddItemToObject(j, "decoder", bytelevel(true, true));
        cJSON_AddStringToObject(model, "type", "BPE");
        cJSON_AddNullToObject(model, "dropout");
        cJSON_AddNullToObject(model, "unk_token");
        cJSON_AddNullToObject(model, "continuing_subword_prefix");
        cJSON_AddNullToObject(model, "end_of_word_suffix");
        cJSON_AddBoolToObject(model, "fuse_unk", false);
        cJSON_AddBoolToObject(model, "byte_fallback", false);
        cJSON_AddBoolToObject(model, "ignore_merges", false);
    } else {
        cJSON *n = cJSON_CreateObject();
        cJSON_AddStringToObject(n, "type", "BertNormalizer");
        cJSON_AddBoolToObject(n, "clean_text", t->wp_clean_text);
        cJSON_AddBoolToObject(n, "handle_chinese_chars", t->wp_chinese_chars);
        cJSON_AddBoolToObject(n, "strip_accents", t->wp_strip_accents);
        cJSON_AddBoolToObject(n, "lowercase", t->wp_lowercase);
        cJSON_AddItemToObject(j, "normalizer", n);
        cJSON *p = cJSON_AddObjectToObject(j, "pre_tokenizer");
        cJSON_AddStringToObject(p, "type", "BertPreTokenizer");
        cJSON_AddItemToObject(j, "post_processor", post_processor(t, true));
        cJSON *d = cJSON_AddObjectToObject(j, "decoder");
        cJSON_AddStringToObject(d, "type", "WordPiece");
        cJSON_AddStringToObject(d, "prefix", t->wp_prefix);
        cJSON_AddBoolToObject(d, "cleanup", true);
        cJSON_AddStringToObject(model, "type", "WordPiece");
        int32_t unk = t->wp_unk_id >= 0 ? t->wp_unk_id : t->special[PLM_SPECIAL_UNK];
        cJSON_AddStringToObject(model, "unk_token", unk >= 0 ? t->vocab.tok[unk] : "[UNK]");
        cJSON_AddStringToObject(model, "continuing_subword_prefix", t->wp_prefix);
        cJSON_AddNumberToObject(model, "max_input_chars_per_word", t->wp_max_input_chars);
    }
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (int i = 0; i < t->vocab.n; i++)
        if (t->vocab.tok[i]) cJSON_AddItemToObject(vocab, t->vocab.tok[i], cJSON_CreateNumber(i));
    if (t->kind == PLM_TOK_BPE) {
        cJSON *merges = cJSON_AddArrayToObject(model, "merges");
        char *tmp = NULL;
        size_t cap = 0;
        for (int k = 0; k < t->bpe->nlist; k++) {
            const char *a = t->vocab.tok[t->bpe->mleft[k]], *b = t->vocab.tok[t->bpe->mright[k]];
            size_t la = strlen(a), lb = strlen(b);
            if (la + lb + 2 > cap) tmp = plm_realloc(tmp, cap = la + lb + 64);
            memcpy(tmp, a, la);
            tmp[la] = ' ';
            memcpy(tmp + la + 1, b, lb + 1);
            cJSON_AddItemToArray(merges, cJSON_CreateString(tmp));
        }
        free(tmp);
    }
    cJSON_AddItemToObject(j, "model", model);
    char *s = cJSON_Print(j);
    cJSON_Delete(j);
    if (!s) {
        plm_error("%s: cannot serialise the tokenizer", path);
        return -1;
    }
    int rc = plm_write_file_atomic(path, s, strlen(s));
    free(s);
    return rc;
}
