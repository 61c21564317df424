/* contrastive_tool.c - one forward and backward pass of the contrastive objective
 * (src/train/contrastive.c) for tests/retrieval.sh, which has tests/ref/retrieval_ref.py
 * recompute it in float64 PyTorch:
 *   contrastive_tool MODEL_DIR TEXTS N POOLING TAU OUT_DIR
 * takes the first 2N lines of TEXTS as N queries and their N passages (pair 2 is told it
 * shares pair 0's passage, so the in-batch mask is exercised), runs backbone 0 without
 * dropout on one padded batch of 2N rows (max 48 tokens), and writes
 *   OUT_DIR/batch.safetensors  input_ids, attention_mask, group, loss, hidden (final states)
 *                              and dhidden (the objective's gradient of them); meta pooling, tau
 *   OUT_DIR/grads.safetensors  every parameter's gradient under its HF name
 * The model itself is MODEL_DIR (loaded without heads). */
#include "core/common.h"
#include "data/collate.h"
#include "model/model_io.h"
#include "train/contrastive.h"
#include "train/finetune.h"
#include "train/safetensors.h"

#include <stdio.h>
#include <stdlib.h>
#include <string.h>

int main(int argc, char **argv) {
    if (argc != 7) {
        fprintf(stderr, "usage: contrastive_tool MODEL_DIR TEXTS N POOLING TAU OUT_DIR\n");
        return 2;
    }
    const char *dir = argv[1], *out = argv[6];
    int n = atoi(argv[3]);
    float tau = (float)atof(argv[5]);
    plm_pooling pool;
    if (n < 3 || plm_pooling_parse(argv[4], &pool) != 0) {
        fprintf(stderr, "contrastive_tool: N >= 3 and a pooling\n");
        return 2;
    }
    char path[4200];
    snprintf(path, sizeof path, "%s/tokenizer.json", dir);
    plm_tokenizer *tok = plm_tokenizer_load(path);
    plm_head_spec none = {0};
    plm_model *m = tok ? plm_model_load_with_heads(dir, &none, 0, 0, true, NULL) : NULL;
    size_t len;
    char *buf = plm_read_file(argv[2], &len);
    if (!m || !buf) {
        fprintf(stderr, "contrastive_tool: %s\n", plm_last_error());
        return 1;
    }
    const char **texts = plm_malloc((size_t)2 * n * sizeof *texts);
    int k = 0;
    for (char *s = buf; k < 2 * n && *s;) {
        char *nl = strchr(s, '\n');
        if (nl) *nl = 0;
        texts[k++] = s;
        s = nl ? nl + 1 : s + strlen(s);
    }
    if (k < 2 * n) {
        fprintf(stderr, "contrastive_tool: %s has fewer than %d lines\n", argv[2], 2 * n);
        return 1;
    }
    int *group = plm_malloc((size_t)n * sizeof *group);
    for (int i = 0; i < n; i++) group[i] = i;
    group[2] = 0;
    plm_collate_opts co;
    plm_ft_collate_opts(&co, tok, 48);
    plm_encoded_batch eb;
    plm_encoded_batch_init(&eb);
    if (plm_collate_pairs(tok, texts, NULL, NULL, NULL, 2 * n, &co, &eb) != 0 || plm_model_reserve(m, 2 * n, eb.T)) {
        fprintf(stderr, "contrastive_tool: %s\n", plm_last_error());
        return 1;
    }
    plm_backbone *bb = &m->bb[0];
    plm_model_zero_grad(m);
    const float *h =
        backbone_forward(bb, eb.B, eb.T, eb.input_ids, m->config.type_vocab_size > 0 ? eb.token_type_ids : NULL,
                         eb.attention_mask, m->config.is_decoder, false, 0);
    backbone_zero_dhidden(bb);
    plm_contrastive c;
    plm_contrastive_init(&c, n, m->config.hidden_size);
    double loss = plm_contrastive_forward(&c, h, eb.lengths, n, eb.T, group, tau, pool);
    plm_contrastive_backward(&c, eb.lengths, eb.T, tau, pool, bb->dhidden);
    size_t nh = (size_t)eb.B * eb.T * m->config.hidden_size;
    float *dh = plm_malloc(nh * sizeof *dh), *hs = plm_malloc(nh * sizeof *hs);
    memcpy(dh, bb->dhidden, nh * sizeof *dh); /* the objective's gradient, before the backbone's pass */
    memcpy(hs, h, nh * sizeof *hs);
    backbone_backward(bb);

    plm_mkdirs(out);
    /* the gradients under the parameters' HF names: the writer reads m->params */
    float *params = m->params;
    m->params = m->grads;
    snprintf(path, sizeof path, "%s/grads.safetensors", out);
    int rc = plm_model_save_weights(m, path, NULL, 0);
    m->params = params;
    plm_st_writer w;
    plm_st_writer_init(&w);
    int64_t shape[2] = {eb.B, eb.T}, gs[1] = {n}, ls[1] = {1};
    plm_st_add(&w, "input_ids", PLM_DT_I32, 2, shape, eb.input_ids);
    plm_st_add(&w, "attention_mask", PLM_DT_U8, 2, shape, eb.attention_mask);
    plm_st_add(&w, "group", PLM_DT_I32, 1, gs, group);
    plm_st_add(&w, "loss", PLM_DT_F64, 1, ls, &loss);
    int64_t hshape[3] = {eb.B, eb.T, m->config.hidden_size};
    plm_st_add(&w, "hidden", PLM_DT_F32, 3, hshape, hs);
    plm_st_add(&w, "dhidden", PLM_DT_F32, 3, hshape, dh);
    plm_st_add_meta(&w, "pooling", argv[4]);
    plm_st_add_meta(&w, "tau", argv[5]);
    snprintf(path, sizeof path, "%s/batch.safetensors", out);
    rc |= plm_st_write(&w, path);
    plm_st_writer_free(&w);
    if (rc) fprintf(stderr, "contrastive_tool: %s\n", plm_last_error());
    printf("loss %.9g, %d pairs, T %d\n", loss, n, eb.T);
    plm_contrastive_free(&c);
    plm_encoded_batch_free(&eb);
    free(group);
    free(dh);
    free(hs);
    free(texts);
    free(buf);
    plm_model_free(m);
    plm_tokenizer_free(tok);
    return rc ? 1 : 0;
}
