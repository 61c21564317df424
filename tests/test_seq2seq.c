/* test_seq2seq.c - an encoder and a decoder in one run (HF's EncoderDecoderModel):
 *   - the decoder learns to write its input reversed, which it can only do through
 *     cross-attention (teacher forcing shows it the reversed prefix, never the rest):
 *     token accuracy far above the context-free rate;
 *   - one optimizer over both stacks; the encoder learns only from the decoder's
 *     cross-attention gradient;
 *   - the checkpoint is HF's EncoderDecoderModel layout and reloads to the same losses;
 *   - mismatched batches are refused. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/common.h"
#include "core/rng.h"
#include "model/model_io.h"
#include "test.h"
#include "train/adamw.h"

enum { V = 24, L = 6, B = 32, START = 1 };

static plm_config small(plm_arch arch, bool decoder) {
    plm_config c;
    plm_config_default(&c, arch);
    c.vocab_size = V;
    c.hidden_size = 48;
    c.num_hidden_layers = 2;
    c.num_attention_heads = 4;
    c.intermediate_size = 96;
    c.max_position_embeddings = 16;
    c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.0f;
    c.pad_token_id = 0;
    c.cls_token_id = START;
    if (decoder) {
        c.is_decoder = true;
        c.add_cross_attention = true;
    }
    return c;
}

static plm_model *make(plm_arch dec_arch) {
    plm_model_spec s;
    memset(&s, 0, sizeof s);
    s.backbone[0] = small(PLM_ARCH_BERT, false);
    s.backbone[1] = small(dec_arch, true);
    s.prefix[0] = "encoder";
    s.prefix[1] = dec_arch == PLM_ARCH_GPT2 ? "decoder.transformer" : "decoder.bert";
    s.num_backbones = 2;
    int h = plm_model_spec_add_head(&s, PLM_HEAD_LM, 0);
    s.heads[h].backbone = 1;
    return plm_model_create_spec(&s, 5);
}

typedef struct {
    int32_t enc[B * L], dec[B * L], labels[B * L];
    uint8_t emask[B * L], dmask[B * L];
} reverse_batch;

/* encoder: x_1..x_L; decoder input: START, y_1..y_{L-1}; labels y_1..y_L, y = reversed x */
static void make_batch(reverse_batch *rb, plm_rng *r) {
    for (int b = 0; b < B; b++) {
        int32_t *x = rb->enc + b * L;
        for (int t = 0; t < L; t++) x[t] = 3 + (int32_t)plm_rng_below(r, V - 3);
        for (int t = 0; t < L; t++) {
            rb->labels[b * L + t] = x[L - 1 - t];
            rb->dec[b * L + t] = t == 0 ? START : x[L - t];
            rb->emask[b * L + t] = rb->dmask[b * L + t] = 1;
        }
    }
}

static void batches(reverse_batch *rb, plm_batch *e, plm_batch *d, bool training, uint64_t seed) {
    *e = (plm_batch){
        .B = B, .T = L, .input_ids = rb->enc, .attention_mask = rb->emask, .training = training, .dropout_seed = seed};
    *d = (plm_batch){.B = B,
                     .T = L,
                     .input_ids = rb->dec,
                     .attention_mask = rb->dmask,
                     .labels = rb->labels,
                     .causal = true,
                     .training = training,
                     .dropout_seed = seed};
}

static void learn_reversal(plm_arch dec_arch, const char *name, const char *dir) {
    plm_model *m = make(dec_arch);
    if (!m || plm_model_reserve(m, B, L) != 0) {
        TEST_CHECK(0, "seq2seq.create", "%s", plm_last_error());
        plm_model_free(m);
        return;
    }
    char tn[96];
    snprintf(tn, sizeof tn, "seq2seq.%s.architecture", name);
    TEST_CHECK(strcmp(plm_model_architecture(m), "EncoderDecoderModel") == 0, tn, "%s", plm_model_architecture(m));
    plm_adamw opt;
    plm_adamw_init(&opt, m->num_params);
    plm_adamw_hparams h = {.learning_rate = 3e-3f, .beta1 = 0.9f, .beta2 = 0.999f, .eps = 1e-8f};
    plm_rng r;
    plm_rng_seed(&r, 3, 0);
    reverse_batch rb;
    plm_batch e, d;
    double first = NAN, last = NAN, enc_grad = 0.0;
    const plm_tensor *ew = plm_model_find(m, "encoder.encoder.layer.0.intermediate.dense.weight");
    int steps = test_sanitized() ? 30 : 200; /* the sanitizer build checks the plumbing */
    for (int step = 0; step < steps; step++) {
        make_batch(&rb, &r);
        batches(&rb, &e, &d, true, (uint64_t)step);
        plm_model_zero_grad(m);
        if (plm_model_run_seq2seq(m, &e, &d, true, 1.0f) != 0) {
            TEST_CHECK(0, "seq2seq.run", "%s", plm_last_error());
            break;
        }
        if (step == 0) {
            first = m->loss;
            for (size_t k = 0; ew && k < ew->numel; k++) enc_grad += fabs(m->grads[ew->offset + k]);
        }
        last = m->loss;
        float lr = step < 30 ? 3e-3f * (float)(step + 1) / 30.0f : 3e-3f;
        plm_adamw_step(&opt, m, &h, lr);
    }
    snprintf(tn, sizeof tn, "seq2seq.%s.encoder_gets_gradient", name);
    TEST_CHECK(ew && enc_grad > 0.0, tn, "encoder weight gradient sum %g", enc_grad);
    /* held out */
    plm_rng_seed(&r, 77, 0);
    make_batch(&rb, &r);
    batches(&rb, &e, &d, false, 0);
    plm_model_run_seq2seq(m, &e, &d, false, 1.0f);
    const plm_ce_result *res = &m->heads[0].result;
    double acc = (double)res->correct / res->count, chance = 1.0 / (V - 3);
    printf("# %s: reversal token accuracy %.3f (context-free %.3f), loss %.3f -> %.3f\n", name, acc, chance, first,
           last);
    snprintf(tn, sizeof tn, "seq2seq.%s.learns_through_cross_attention", name);
    TEST_CHECK(test_sanitized() ? last < first : acc > 0.9 && last < 0.2 * first, tn,
               "accuracy %.3f (chance %.3f), loss %.3f -> %.3f", acc, chance, first, last);
    double loss = m->loss;

    /* the checkpoint: HF's EncoderDecoderModel, reloads to the same loss */
    char sub[600];
    snprintf(sub, sizeof sub, "%s/%s", dir, name);
    snprintf(tn, sizeof tn, "seq2seq.%s.save", name);
    TEST_CHECK(plm_model_save(m, sub, NULL, 0) == 0, tn, "%s", plm_last_error());
    char path[700];
    snprintf(path, sizeof path, "%s/config.json", sub);
    size_t len;
    char *cfg = plm_read_file(path, &len);
    snprintf(tn, sizeof tn, "seq2seq.%s.config_is_hf_encoder_decoder", name);
    cJSON *root = cfg ? cJSON_Parse(cfg) : NULL;
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(root, "model_type");
    const cJSON *dec = cJSON_GetObjectItemCaseSensitive(root, "decoder");
    TEST_CHECK(cJSON_IsString(mt) && strcmp(mt->valuestring, "encoder-decoder") == 0 &&
                   cJSON_IsObject(cJSON_GetObjectItemCaseSensitive(root, "encoder")) &&
                   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(dec, "add_cross_attention")) &&
                   cJSON_IsTrue(cJSON_GetObjectItemCaseSensitive(dec, "is_decoder")),
               tn, "config.json lacks HF's encoder-decoder keys");
    cJSON_Delete(root);
    free(cfg);
    plm_model *back = plm_model_load(sub);
    snprintf(tn, sizeof tn, "seq2seq.%s.reload", name);
    TEST_CHECK(back != NULL, tn, "%s", plm_last_error());
    if (back) {
        plm_model_reserve(back, B, L);
        plm_model_run_seq2seq(back, &e, &d, false, 1.0f);
        snprintf(tn, sizeof tn, "seq2seq.%s.reload_same_loss", name);
        TEST_CHECK(back->loss == loss && plm_model_is_seq2seq(back), tn, "loss %.9g vs %.9g", back->loss, loss);
        const plm_tensor *t = plm_model_find(back, dec_arch == PLM_ARCH_GPT2
                                                       ? "decoder.transformer.h.1.crossattention.c_attn.weight"
                                                       : "decoder.bert.encoder.layer.1.crossattention.self.kv.weight");
        snprintf(tn, sizeof tn, "seq2seq.%s.hf_names", name);
        TEST_CHECK(t != NULL, tn, "cross-attention tensor not found by its name");
        plm_model_free(back);
    }
    /* mismatched batches */
    e.B = B - 1;
    snprintf(tn, sizeof tn, "seq2seq.%s.batch_mismatch_refused", name);
    TEST_CHECK(plm_model_run_seq2seq(m, &e, &d, false, 1.0f) != 0 && strstr(plm_last_error(), "sequences"), tn, "%s",
               plm_last_error());
    plm_adamw_free(&opt);
    plm_model_free(m);
}

int main(void) {
    char dir[] = "/tmp/plm_seq2seq_XXXXXX";
    if (!mkdtemp(dir)) return 1;
    learn_reversal(PLM_ARCH_BERT, "bert2bert", dir);
    learn_reversal(PLM_ARCH_GPT2, "bert2gpt2", dir);
    char cmd[600];
    snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd) != 0) return 1;
    TEST_EXIT();
}
