/* dataloader.c - see dataloader.h */
#include "dataloader.h"

#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "model/crossentropy.h"
#include "span_corruption.h"

void plm_objective_opts_default(plm_objective_opts *o) {
    memset(o, 0, sizeof *o);
    o->mlm_probability = 0.15f;
    o->mask_replace_prob = 0.8f;
    o->random_replace_prob = 0.1f;
    o->noise_density = 0.15f;
    o->mean_noise_span_length = 3.0f;
}

int plm_vocab_info_init(plm_vocab_info *v, const plm_tokenizer *tok) {
    memset(v, 0, sizeof *v);
    v->vocab_size = plm_tokenizer_vocab_size(tok);
    v->cls = plm_tokenizer_special(tok, PLM_SPECIAL_CLS);
    v->sep = plm_tokenizer_special(tok, PLM_SPECIAL_SEP);
    v->mask = plm_tokenizer_special(tok, PLM_SPECIAL_MASK);
    v->pad = plm_tokenizer_special(tok, PLM_SPECIAL_PAD);
    v->eos = plm_tokenizer_special(tok, PLM_SPECIAL_EOS);
    v->is_special = plm_calloc((size_t)v->vocab_size, 1);
    for (int r = 0; r < PLM_SPECIAL_COUNT; r++) {
        int id = plm_tokenizer_special(tok, (plm_special_role)r);
        if (id >= 0 && id < v->vocab_size) v->is_special[id] = 1;
    }
    v->random_pool = plm_malloc((size_t)v->vocab_size * sizeof(int32_t));
    for (int i = 0; i < v->vocab_size; i++)
        if (!v->is_special[i]) v->random_pool[v->num_random++] = i;
    return 0;
}

void plm_vocab_info_free(plm_vocab_info *v) {
    free(v->is_special);
    free(v->random_pool);
    memset(v, 0, sizeof *v);
}

int plm_mlm_mask(int32_t *ids, int32_t *labels, int T, const plm_vocab_info *v, const plm_objective_opts *o,
                 plm_rng *r) {
    int selected = 0;
    float p_mask = o->mask_replace_prob, p_rand = o->mask_replace_prob + o->random_replace_prob;
    for (int t = 0; t < T; t++) {
        int32_t id = ids[t];
        labels[t] = PLM_IGNORE_INDEX;
        if (id < 0 || id >= v->vocab_size || v->is_special[id]) continue;
        if (plm_rng_uniform(r) >= o->mlm_probability) continue;
        labels[t] = id;
        selected++;
        float u = plm_rng_uniform(r);
        if (u < p_mask)
            ids[t] = v->mask;
        else if (u < p_rand && v->num_random > 0)
            ids[t] = v->random_pool[plm_rng_below(r, (uint32_t)v->num_random)];
    }
    return selected;
}

int plm_dataloader_init(plm_dataloader *d, const plm_token_stream *s, plm_objective obj, const plm_objective_opts *o,
                        const plm_vocab_info *v, int T, uint64_t seed, bool shuffle) {
    memset(d, 0, sizeof *d);
    d->stream = s;
    d->objective = obj;
    d->opts = *o;
    d->vocab = v;
    d->T = T;
    d->seed = seed;
    d->shuffle = shuffle;
    if (obj != PLM_OBJ_CLM && obj != PLM_OBJ_MLM && obj != PLM_OBJ_T5) {
        plm_error("a dataloader is CLM, MLM or T5");
        return -1;
    }
    if (obj == PLM_OBJ_MLM) {
        if (v->mask < 0 || v->cls < 0 || v->sep < 0) {
            plm_error("tokenizer: MLM needs [MASK], [CLS] and [SEP] tokens");
            return -1;
        }
        if (T < 3) {
            plm_error("max_seq_length must be at least 3 for MLM");
            return -1;
        }
        d->num_windows = s->n / (size_t)(T - 2);
    } else if (obj == PLM_OBJ_T5) {
        if (v->eos < 0) {
            plm_error("tokenizer: T5 span corruption needs an EOS token");
            return -1;
        }
        if (!(o->noise_density > 0.0f && o->noise_density < 0.5f) || !(o->mean_noise_span_length >= 1.0f)) {
            plm_error("noise_density must be in (0, 0.5) and mean_noise_span_length >= 1");
            return -1;
        }
        plm_t5_lengths(T, o->noise_density, o->mean_noise_span_length, &d->t5_tokens_length, &d->t5_targets_length);
        /* the counts of noise tokens and spans depend on the length alone: one trial
         * corruption shows whether every window gives exactly T inputs (short T or long
         * spans round to no span at all) */
        int L = d->t5_tokens_length, ni = 0, nt = 0;
        d->t5_noise = plm_malloc((size_t)L + 1);
        if (L >= 2) {
            int32_t *tmp = plm_calloc(3 * (size_t)L + 4, sizeof(int32_t));
            plm_rng r;
            plm_rng_seed(&r, 1, 1);
            plm_t5_noise_mask(d->t5_noise, L, o->noise_density, o->mean_noise_span_length, &r);
            plm_t5_corrupt(tmp, d->t5_noise, L, 1, 0, tmp + L, &ni, tmp + 2 * L + 2, &nt);
            free(tmp);
        }
        if (ni != T || nt != d->t5_targets_length) {
            plm_error("T5 span corruption: max_seq_length %d with noise_density %g and mean_noise_span_length %g "
                      "gives no window of exactly %d inputs (too short)",
                      T, o->noise_density, o->mean_noise_span_length, T);
            free(d->t5_noise);
            d->t5_noise = NULL;
            return -1;
        }
        d->num_windows = s->n / (size_t)L;
    } else {
        d->num_windows = s->n > 1 ? (s->n - 1) / (size_t)T : 0;
    }
    if (d->num_windows == 0) {
        plm_error("corpus too small: %zu tokens give no window of %d tokens", s->n, T);
        return -1;
    }
    if (d->num_windows > UINT32_MAX) {
        plm_error("corpus too large: %zu windows", d->num_windows);
        return -1;
    }
    d->order = plm_malloc(d->num_windows * sizeof(uint32_t));
    plm_dataloader_seek(d, 0, 0);
    return 0;
}

void plm_dataloader_free(plm_dataloader *d) {
    free(d->order);
    free(d->t5_noise);
    d->order = NULL;
    d->t5_noise = NULL;
}

static void make_order(plm_dataloader *d) {
    for (size_t i = 0; i < d->num_windows; i++) d->order[i] = (uint32_t)i;
    if (!d->shuffle) return;
    plm_rng r;
    plm_rng_seed(&r, d->seed, 0x5eed0000 + d->epoch);
    for (size_t i = d->num_windows - 1; i > 0; i--) { /* Fisher-Yates */
        size_t j = plm_rng_below(&r, (uint32_t)(i + 1));
        uint32_t t = d->order[i];
        d->order[i] = d->order[j];
        d->order[j] = t;
    }
}

void plm_dataloader_seek(plm_dataloader *d, uint64_t epoch, size_t pos) {
    d->epoch = epoch;
    d->pos = pos;
    make_order(d);
}

static void fill_window(plm_dataloader *d, size_t w, int32_t *ids, int32_t *labels) {
    int T = d->T;
    const int32_t *src = d->stream->ids;
    if (d->objective == PLM_OBJ_CLM) {
        const int32_t *win = src + w * (size_t)T;
        if (!d->opts.right_to_left) {
            memcpy(ids, win, (size_t)T * sizeof(int32_t));
            memcpy(labels, win + 1, (size_t)T * sizeof(int32_t));
        } else { /* reversed window: token t predicts the one before it in the text */
            for (int t = 0; t < T; t++) {
                ids[t] = win[T - t];
                labels[t] = win[T - t - 1];
            }
        }
        return;
    }
    const plm_vocab_info *v = d->vocab;
    const int32_t *win = src + w * (size_t)(T - 2);
    ids[0] = v->cls;
    for (int t = 0; t < T - 2; t++) ids[t + 1] = win[t] == v->eos ? v->sep : win[t];
    ids[T - 1] = v->sep;
    plm_rng r;
    uint64_t mask_epoch = d->opts.static_masking ? 0 : d->epoch + 1;
    plm_rng_seed(&r, plm_hash_combine(d->seed, mask_epoch), 0x3a5c0000ULL + w);
    plm_mlm_mask(ids, labels, T, v, &d->opts, &r);
}

void plm_dataloader_next(plm_dataloader *d, int B, int32_t *ids, int32_t *type_ids, uint8_t *attn_mask,
                         int32_t *labels) {
    int T = d->T;
    for (int b = 0; b < B; b++) {
        if (d->pos >= d->num_windows) plm_dataloader_seek(d, d->epoch + 1, 0);
        fill_window(d, d->order[d->pos++], ids + (size_t)b * T, labels + (size_t)b * T);
    }
    if (type_ids) memset(type_ids, 0, (size_t)B * T * sizeof(int32_t));
    if (attn_mask) memset(attn_mask, 1, (size_t)B * T);
}

void plm_dataloader_next_t5(plm_dataloader *d, int B, int32_t *enc_ids, int32_t *dec_ids, int32_t *labels) {
    int T = d->T, L = d->t5_tokens_length, Tt = d->t5_targets_length, ni, nt;
    const plm_vocab_info *v = d->vocab;
    for (int b = 0; b < B; b++) {
        if (d->pos >= d->num_windows) plm_dataloader_seek(d, d->epoch + 1, 0);
        size_t w = d->order[d->pos++];
        /* a new noise mask per epoch (as the HF collator draws one per batch) */
        plm_rng r;
        plm_rng_seed(&r, plm_hash_combine(d->seed, d->epoch + 1), 0x75c00000ULL + w);
        plm_t5_noise_mask(d->t5_noise, L, d->opts.noise_density, d->opts.mean_noise_span_length, &r);
        int32_t *lab = labels + (size_t)b * Tt;
        plm_t5_corrupt(d->stream->ids + w * (size_t)L, d->t5_noise, L, v->vocab_size - 1, v->eos,
                       enc_ids + (size_t)b * T, &ni, lab, &nt);
        if (ni != T || nt != Tt) plm_die("t5 span corruption: lengths %d/%d, expected %d/%d", ni, nt, T, Tt);
        plm_t5_shift_right(lab, Tt, d->opts.decoder_start_token_id, dec_ids + (size_t)b * Tt);
    }
}
