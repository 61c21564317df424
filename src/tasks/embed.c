/* embed.c - see embed.h. tests/embed.sh checks the vectors against a float64 PyTorch
 * forward of the same checkpoint (tests/ref/embed_ref.py) and reads the .npy back with
 * numpy. */
#include "tasks/embed.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "data/collate.h"

int plm_pooling_parse(const char *s, plm_pooling *p) {
    static const char *const names[] = {"mean", "cls", "last"};
    for (int i = 0; i < 3; i++)
        if (!strcmp(s, names[i])) {
            *p = (plm_pooling)i;
            return 0;
        }
    return -1;
}

const char *plm_pooling_name(plm_pooling p) { return p == PLM_POOL_CLS ? "cls" : p == PLM_POOL_LAST ? "last" : "mean"; }

void plm_embed_opts_default(plm_embed_opts *o) {
    o->pooling = PLM_POOL_MEAN;
    o->max_seq_length = 128;
    o->batch_size = 32;
    o->normalize = true;
}

void plm_pool(const float *h, const int *lengths, int B, int T, int C, plm_pooling p, float *out) {
    for (int b = 0; b < B; b++) {
        float *o = out + (size_t)b * C;
        int n = lengths[b];
        if (n <= 0) {
            memset(o, 0, (size_t)C * sizeof *o);
            continue;
        }
        const float *row = h + (size_t)b * T * C;
        if (p == PLM_POOL_CLS || p == PLM_POOL_LAST) {
            memcpy(o, row + (size_t)(p == PLM_POOL_CLS ? 0 : n - 1) * C, (size_t)C * sizeof *o);
            continue;
        }
        /* mean over the n real tokens, summed in double: n * C is small, precision free */
        for (int c = 0; c < C; c++) {
            double s = 0;
            for (int t = 0; t < n; t++) s += row[(size_t)t * C + c];
            o[c] = (float)(s / n);
        }
    }
}

void plm_l2_normalize(float *v, int n, int dim) {
    for (int i = 0; i < n; i++) {
        float *r = v + (size_t)i * dim;
        double s = 0;
        for (int c = 0; c < dim; c++) s += (double)r[c] * r[c];
        if (s <= 0) continue;
        double inv = 1.0 / sqrt(s);
        for (int c = 0; c < dim; c++) r[c] = (float)(r[c] * inv);
    }
}

int plm_embed_texts(plm_model *m, const plm_tokenizer *tok, const char *const *texts, int n, const plm_embed_opts *o,
                    float *out, plm_progress *prog) {
    int C = m->config.hidden_size, B = o->batch_size;
    int T = PLM_MIN(o->max_seq_length, m->config.max_position_embeddings);
    if (B <= 0 || T <= 0) {
        plm_error("batch size and max_seq_length must be positive");
        return -1;
    }
    plm_collate_opts co;
    plm_collate_opts_default(&co);
    co.max_length = T;
    /* GPT-2 has no pad token: pad with eos, which the attention mask hides anyway */
    if (plm_tokenizer_special(tok, PLM_SPECIAL_PAD) < 0) co.pad_id = plm_tokenizer_special(tok, PLM_SPECIAL_EOS);
    if (co.pad_id < 0 && plm_tokenizer_special(tok, PLM_SPECIAL_PAD) < 0) co.pad_id = 0;
    if (plm_model_reserve(m, B, T) != 0) return -1;
    plm_encoded_batch eb;
    plm_encoded_batch_init(&eb);
    int rc = 0;
    for (int start = 0; start < n && rc == 0; start += B) {
        int nb = PLM_MIN(B, n - start);
        if (plm_collate_pairs(tok, texts + start, NULL, NULL, NULL, nb, &co, &eb) != 0) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", plm_last_error());
            plm_error("texts %d..%d: %s", start + 1, start + nb, msg);
            rc = -1;
            break;
        }
        for (int r = 0; r < nb; r++)
            if (eb.lengths[r] == 0) {
                plm_error("text %d: no tokens (an empty text)", start + r + 1);
                rc = -1;
            }
        if (rc) break;
        plm_batch b = {.B = eb.B,
                       .T = eb.T,
                       .input_ids = eb.input_ids,
                       .token_type_ids = m->config.type_vocab_size > 0 ? eb.token_type_ids : NULL,
                       .attention_mask = eb.attention_mask,
                       .causal = m->config.is_decoder};
        if (plm_model_run(m, 0, &b, false, 1.0f) != 0) {
            char msg[1024];
            snprintf(msg, sizeof msg, "%s", plm_last_error());
            plm_error("texts %d..%d: %s", start + 1, start + nb, msg);
            rc = -1;
            break;
        }
        float *dst = out + (size_t)start * C;
        plm_pool(plm_model_hidden(m), eb.lengths, nb, eb.T, C, o->pooling, dst);
        if (o->normalize) plm_l2_normalize(dst, nb, C);
        if (prog) plm_progress_update(prog, start + nb, NULL);
    }
    plm_encoded_batch_free(&eb);
    return rc;
}

int plm_npy_write_f32(const char *path, const float *data, long rows, long cols) {
    char dict[128];
    int dl = snprintf(dict, sizeof dict, "{'descr': '<f4', 'fortran_order': False, 'shape': (%ld, %ld), }", rows, cols);
    /* magic (6) + version (2) + header length (2) + header, a multiple of 64 */
    size_t total = (10 + (size_t)dl + 1 + 63) / 64 * 64, hl = total - 10;
    char *head = plm_malloc(total);
    memcpy(head, "\x93NUMPY\x01\x00", 8);
    head[8] = (char)(hl & 0xff);
    head[9] = (char)(hl >> 8);
    memcpy(head + 10, dict, (size_t)dl);
    memset(head + 10 + dl, ' ', hl - (size_t)dl - 1);
    head[total - 1] = '\n';
    /* the data: little-endian float32, which is the host's order on every machine plm
     * builds for (x86-64, aarch64); checked rather than assumed */
    const uint32_t probe = 1;
    if (*(const uint8_t *)&probe != 1) {
        free(head);
        plm_error("%s: .npy output needs a little-endian host", path);
        return -1;
    }
    const void *chunks[2] = {head, data};
    size_t lens[2] = {total, (size_t)rows * (size_t)cols * sizeof(float)};
    int rc = plm_write_chunks_atomic(path, chunks, lens, 2);
    free(head);
    return rc;
}
