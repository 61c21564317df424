/* test_checkpoint.c - model.safetensors + config.json round trips bit-exactly for both
 * architectures; truncated, corrupted and mismatched files and bad configs are refused
 * with a message naming the file. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "core/common.h"
#include "core/digest.h"
#include "model/model_io.h"
#include "train/safetensors.h"
#include "test.h"

static plm_config small(plm_arch arch) {
    plm_config c;
    plm_config_default(&c, arch);
    c.vocab_size = 101;
    c.hidden_size = 32;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.intermediate_size = 48;
    c.max_position_embeddings = 40;
    return c;
}

/* path's content becomes n bytes of data (a checkpoint with a defect put in) */
static void write_bytes(const char *path, const void *data, size_t n) {
    FILE *f = fopen(path, "wb");
    if (f) fwrite(data, 1, n, f), fclose(f);
}

static int write_text(const char *path, const char *text) {
    FILE *f = fopen(path, "w");
    if (!f) return -1;
    fputs(text, f);
    return fclose(f);
}

int main(void) {
    char dir[] = "/tmp/plm_ckpt_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    char path[1100], cfgp[1100];
    for (int arch = 0; arch < 2; arch++) {
        plm_config c = small((plm_arch)arch);
        const char *an = plm_arch_name((plm_arch)arch);
        char name[64], sub[512];
        plm_model *m = plm_model_create(&c, 5 + arch);
        snprintf(sub, sizeof sub, "%s/%s", dir, an);
        const char *meta[] = {"step", "7"};
        snprintf(name, sizeof name, "save_%s", an);
        TEST_CHECK(plm_model_save(m, sub, meta, 1) == 0, name, "%s", plm_last_error());
        plm_model *r = plm_model_load(sub);
        snprintf(name, sizeof name, "load_%s", an);
        TEST_CHECK(r != NULL, name, "%s", plm_last_error());
        if (!r) continue;
        snprintf(name, sizeof name, "roundtrip_bit_exact_%s", an);
        TEST_CHECK(r->num_params == m->num_params && memcmp(r->params, m->params, m->num_params * sizeof(float)) == 0 &&
                       memcmp(&r->config, &m->config, sizeof(plm_config)) == 0,
                   name, "weights or config differ after save/load");
        /* HF layout: GPT-2 Conv1D is [in, out]; BERT query is [out, in] */
        snprintf(path, sizeof path, "%s/model.safetensors", sub);
        plm_safetensors st;
        plm_st_load(&st, path);
        const plm_st_tensor *t = plm_st_find(&st, arch ? "transformer.h.0.mlp.c_fc.weight"
                                                       : "bert.encoder.layer.0.intermediate.dense.weight");
        snprintf(name, sizeof name, "hf_layout_%s", an);
        TEST_CHECK(t && t->shape[0] == (arch ? 32 : 48) && t->shape[1] == (arch ? 48 : 32) &&
                       strcmp(plm_st_meta(&st, "format"), "pt") == 0,
                   name, "unexpected shape or metadata");
        /* data section starts 8-byte aligned */
        uint64_t hl = 0;
        memcpy(&hl, st.buf, 8);
        snprintf(name, sizeof name, "header_aligned_%s", an);
        TEST_CHECK(hl % 8 == 0, name, "header length %llu", (unsigned long long)hl);
        size_t len = st.len;
        char *copy = plm_malloc(len);
        memcpy(copy, st.buf, len);
        plm_st_free(&st);

        /* truncated */
        write_bytes(path, copy, len - 100);
        snprintf(name, sizeof name, "truncated_refused_%s", an);
        plm_model *bad = plm_model_load(sub);
        TEST_CHECK(!bad && strstr(plm_last_error(), "model.safetensors") && strstr(plm_last_error(), "truncated"), name,
                   "got: %s", bad ? "(loaded)" : plm_last_error());
        plm_model_free(bad);
        /* one flipped byte in the data */
        copy[len - 5] ^= 0x40;
        write_bytes(path, copy, len);
        snprintf(name, sizeof name, "corruption_refused_%s", an);
        bad = plm_model_load(sub);
        TEST_CHECK(!bad && strstr(plm_last_error(), "checksum"), name, "got: %s", bad ? "(loaded)" : plm_last_error());
        plm_model_free(bad);
        /* garbage header length */
        copy[len - 5] ^= 0x40;
        copy[3] = 0x7f;
        write_bytes(path, copy, len);
        snprintf(name, sizeof name, "bad_header_refused_%s", an);
        bad = plm_model_load(sub);
        TEST_CHECK(!bad && strstr(plm_last_error(), "model.safetensors"), name, "got: %s",
                   bad ? "(loaded)" : plm_last_error());
        plm_model_free(bad);
        copy[3] = 0;
        /* a file of an older plm: its checksum is FNV-1a of the data, 16 bare hex digits
         * (put in place of the "xxh3:..." value, padded with JSON spaces); it loads, and
         * a flipped byte in it is still caught */
        char *cs = memmem(copy, 8 + hl, "\"xxh3:", 6), legacy[32];
        snprintf(name, sizeof name, "xxh3_checksum_written_%s", an);
        TEST_CHECK(cs && cs[22] == '"', name, "no \"xxh3:<16 hex>\" in the header");
        if (cs && cs[22] == '"') {
            snprintf(legacy, sizeof legacy, "%016llx",
                     (unsigned long long)plm_fnv1a(copy + 8 + hl, len - 8 - hl, 0)); /* the data, in file order */
            memcpy(cs + 1, legacy, 16);
            memcpy(cs + 17, "\"     ", 6);
            write_bytes(path, copy, len);
            plm_model *old = plm_model_load(sub);
            snprintf(name, sizeof name, "legacy_checksum_loads_%s", an);
            TEST_CHECK(old && !memcmp(old->params, m->params, m->num_params * sizeof(float)), name, "%s",
                       old ? "weights differ" : plm_last_error());
            plm_model_free(old);
            copy[len - 5] ^= 0x40;
            write_bytes(path, copy, len);
            old = plm_model_load(sub);
            snprintf(name, sizeof name, "legacy_checksum_corruption_refused_%s", an);
            TEST_CHECK(!old && strstr(plm_last_error(), "checksum"), name, "got: %s",
                       old ? "(loaded)" : plm_last_error());
            plm_model_free(old);
            copy[len - 5] ^= 0x40;
        }
        write_bytes(path, copy, len);
        /* a config that does not match the weights */
        plm_config c2 = c;
        c2.hidden_size = 64;
        snprintf(cfgp, sizeof cfgp, "%s/config.json", sub);
        plm_config_save(&c2, NULL, cfgp);
        bad = plm_model_load(sub);
        snprintf(name, sizeof name, "mismatch_refused_%s", an);
        TEST_CHECK(!bad && strstr(plm_last_error(), "expected"), name, "got: %s", bad ? "(loaded)" : plm_last_error());
        plm_model_free(bad);
        free(copy);
        plm_model_free(m);
        plm_model_free(r);
    }
    /* configs */
    plm_config c;
    snprintf(cfgp, sizeof cfgp, "%s/bad.json", dir);
    write_text(cfgp, "{\"model_type\": \"bert\", \"hidden_size\": 30, \"num_attention_heads\": 4}");
    TEST_CHECK(plm_config_load(&c, cfgp) != 0 && strstr(plm_last_error(), "not divisible") &&
                   strstr(plm_last_error(), "bad.json"),
               "config_heads_not_divisible", "got: %s", plm_last_error());
    write_text(cfgp, "{\"model_type\": \"bert\",\n \"hidden_size\": 32,,}");
    TEST_CHECK(plm_config_load(&c, cfgp) != 0 && strstr(plm_last_error(), "bad.json:2: invalid JSON"),
               "config_invalid_json", "got: %s", plm_last_error());
    write_text(cfgp, "{\"model_type\": \"llama\"}");
    TEST_CHECK(plm_config_load(&c, cfgp) != 0 && strstr(plm_last_error(), "model_type"), "config_unknown_type",
               "got: %s", plm_last_error());
    write_text(cfgp, "{\"n_embd\": \"big\", \"model_type\": \"gpt2\"}");
    TEST_CHECK(plm_config_load(&c, cfgp) != 0 && strstr(plm_last_error(), "n_embd"), "config_wrong_type", "got: %s",
               plm_last_error());
    write_text(cfgp, "{\"model_type\": \"gpt2\", \"n_embd\": 64, \"n_head\": 4, \"n_layer\": 3, \"n_inner\": null}");
    TEST_CHECK(plm_config_load(&c, cfgp) == 0 && c.hidden_size == 64 && c.intermediate_size == 256 &&
                   c.num_hidden_layers == 3 && c.is_decoder && c.pre_layernorm,
               "config_gpt2_names", "%s", plm_last_error());
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    TEST_EXIT();
}
