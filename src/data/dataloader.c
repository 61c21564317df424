/* dataloader.c - see dataloader.h */
#include "dataloader.h"

#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "model/crossentropy.h"
#include "span_corruption.h"
#include "pairs.h"

void plm_objective_opts_default(plm_objective_opts *o) {
    memset(o, 0, sizeof *o);
    o->mlm_probability = 0.15f;
    o->mask_replace_prob = 0.8f;
    o->random_replace_prob = 0.1f;
    o->noise_density = 0.15f;
    o->mean_noise_span_length = 3.0f;
    o->dupe_factor = 10;
    o->span_p = 0.2f;
    o->max_span_length = 10;
    o->short_seq_prob = 0.1f;
}

int plm_objective_opts_check(const plm_objective_opts *o) {
    if (!(o->mlm_probability >= 0.05f && o->mlm_probability <= 0.5f)) {
        plm_error("mlm_probability must be in [0.05, 0.5], got %g", o->mlm_probability);
        return -1;
    }
    if (!(o->mask_replace_prob >= 0 && o->random_replace_prob >= 0 &&
          o->mask_replace_prob + o->random_replace_prob <= 1.0f + 1e-6f)) {
        plm_error("masking probabilities: mask_replace_prob and random_replace_prob must be >= 0 with a sum <= 1 "
                  "(got %g and %g)",
                  o->mask_replace_prob, o->random_replace_prob);
        return -1;
    }
    if (o->dupe_factor < 1) {
        plm_error("dupe_factor must be >= 1, got %d", o->dupe_factor);
        return -1;
    }
    if (!(o->span_p > 0 && o->span_p <= 1) || o->max_span_length < 1) {
        plm_error("span masking needs span_p in (0, 1] and max_span_length >= 1 (got %g, %d)", o->span_p,
                  o->max_span_length);
        return -1;
    }
    if (!(o->short_seq_prob >= 0 && o->short_seq_prob <= 1)) {
        plm_error("short_seq_prob must be in [0, 1], got %g", o->short_seq_prob);
        return -1;
    }
    return 0;
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

/* The 80/10/10 choice for the selected tokens [t0, t1): one draw per token, or one for
 * the whole range (a SpanBERT span). */
static void replace(int32_t *ids, int t0, int t1, bool per_span, const plm_vocab_info *v, const plm_objective_opts *o,
                    plm_rng *r) {
    float p_mask = o->mask_replace_prob, p_rand = o->mask_replace_prob + o->random_replace_prob;
    float u = per_span ? plm_rng_uniform(r) : 0.0f;
    for (int t = t0; t < t1; t++) {
        if (!per_span) u = plm_rng_uniform(r);
        if (u < p_mask)
            ids[t] = v->mask;
        else if (u < p_rand && v->num_random > 0)
            ids[t] = v->random_pool[plm_rng_below(r, (uint32_t)v->num_random)];
    }
}

static inline bool eligible(int32_t id, const plm_vocab_info *v) {
    return id >= 0 && id < v->vocab_size && !v->is_special[id];
}

/* SpanBERT: span lengths in words ~ Geometric(span_p) clipped at max_span_length (the
 * distribution renormalised on 1..max, as SpanBERT), start word uniform; spans that
 * overlap a selected word or run out of the eligible words are redrawn; stops when the
 * budget round(mlm_probability * eligible tokens) (stochastically rounded, so the rate is
 * exact in expectation) is met. */
static int span_mask(int32_t *ids, int32_t *labels, const int *ws, const int *we, int nw, int ntok,
                     const plm_vocab_info *v, const plm_objective_opts *o, plm_rng *r, uint8_t *taken) {
    float want = o->mlm_probability * (float)ntok;
    int budget = (int)want + (plm_rng_uniform(r) < want - (float)(int)want);
    int selected = 0;
    memset(taken, 0, (size_t)nw);
    for (int attempt = 0; selected < budget && attempt < 10 * nw + 10; attempt++) {
        int len = 1;
        while (len < o->max_span_length && plm_rng_uniform(r) >= o->span_p) len++;
        int w0 = (int)plm_rng_below(r, (uint32_t)nw);
        if (w0 + len > nw) continue;
        int ntoks = 0, ok = 1;
        for (int k = w0; k < w0 + len && ok; k++) ok = !taken[k], ntoks += we[k] - ws[k];
        if (!ok) continue;
        /* a span longer than what is left of the budget shrinks to fit */
        while (len > 1 && selected + ntoks > budget) {
            len--;
            ntoks -= we[w0 + len] - ws[w0 + len];
        }
        if (selected + ntoks > budget && selected > 0) continue;
        for (int k = w0; k < w0 + len; k++) {
            taken[k] = 1;
            for (int t = ws[k]; t < we[k]; t++) labels[t] = ids[t];
        }
        replace(ids, ws[w0], we[w0 + len - 1], true, v, o, r);
        selected += ntoks;
    }
    return selected;
}

int plm_mlm_mask_words(int32_t *ids, const uint8_t *word_start, int32_t *labels, int T, const plm_vocab_info *v,
                       const plm_objective_opts *o, plm_rng *r) {
    int selected = 0;
    for (int t = 0; t < T; t++) labels[t] = PLM_IGNORE_INDEX;
    if (o->masking == PLM_MASK_TOKEN) {
        for (int t = 0; t < T; t++) {
            if (!eligible(ids[t], v) || plm_rng_uniform(r) >= o->mlm_probability) continue;
            labels[t] = ids[t];
            selected++;
            replace(ids, t, t + 1, false, v, o, r);
        }
        return selected;
    }
    /* words: a run of eligible tokens from a word start (or from the first eligible token
     * after a special token or the window's edge) up to the next one */
    int ws[T + 1], we[T + 1], nw = 0, ntok = 0;
    for (int t = 0; t < T; t++) {
        if (!eligible(ids[t], v)) continue;
        ntok++;
        bool start = nw == 0 || we[nw - 1] != t || !word_start || (word_start[t] & PLM_TOK_WORD_START);
        if (start)
            ws[nw] = t, we[nw++] = t + 1;
        else
            we[nw - 1] = t + 1;
    }
    if (nw == 0) return 0;
    if (o->masking == PLM_MASK_SPAN) {
        uint8_t taken[nw];
        return span_mask(ids, labels, ws, we, nw, ntok, v, o, r, taken);
    }
    for (int k = 0; k < nw; k++) {
        if (plm_rng_uniform(r) >= o->mlm_probability) continue;
        for (int t = ws[k]; t < we[k]; t++) labels[t] = ids[t];
        replace(ids, ws[k], we[k], false, v, o, r);
        selected += we[k] - ws[k];
    }
    return selected;
}

int plm_mlm_mask(int32_t *ids, int32_t *labels, int T, const plm_vocab_info *v, const plm_objective_opts *o,
                 plm_rng *r) {
    plm_objective_opts tok = *o;
    tok.masking = PLM_MASK_TOKEN;
    return plm_mlm_mask_words(ids, NULL, labels, T, v, &tok, r);
}

/* ---------------------------------------------------------------- loader */

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
    if (plm_objective_opts_check(o) != 0) return -1;
    if (obj == PLM_OBJ_MLM) {
        if (v->mask < 0 || v->cls < 0 || v->sep < 0) {
            plm_error("tokenizer: MLM needs [MASK], [CLS] and [SEP] tokens");
            return -1;
        }
        int min_t = o->pair != PLM_PAIR_NONE ? 5 : 3;
        if (T < min_t) {
            plm_error("max_seq_length must be at least %d for MLM%s", min_t, o->pair ? " with a sentence pair" : "");
            return -1;
        }
        if (v->pad < 0) {
            plm_error("tokenizer: MLM needs a [PAD] token (chunks do not cross documents and are padded)");
            return -1;
        }
        if (plm_documents_build(&d->docs, s, v) != 0) return -1;
        if (o->pair == PLM_PAIR_NSP && d->docs.num_docs < 2) {
            plm_error("NSP needs at least 2 documents (a random next segment comes from another document); the "
                      "corpus has %zu",
                      d->docs.num_docs);
            plm_documents_free(&d->docs);
            return -1;
        }
        if (o->pair == PLM_PAIR_NONE) {
            d->num_windows = plm_chunks_build(&d->docs, (uint32_t)(T - 2), &d->windows);
        } else {
            d->windows_key = UINT64_MAX;
            d->num_windows = 1; /* built by seek */
        }
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
        plm_dataloader_free(d);
        return -1;
    }
    if (d->num_windows > UINT32_MAX) {
        plm_error("corpus too large: %zu windows", d->num_windows);
        plm_dataloader_free(d);
        return -1;
    }
    size_t tmp_n = (size_t)PLM_MAX(T + 1, d->t5_tokens_length); /* T5 reads a window of L > T tokens */
    d->tmp_ids = plm_malloc(tmp_n * sizeof(int32_t));
    d->tmp_flags = plm_malloc(tmp_n);
    plm_dataloader_seek(d, 0, 0);
    if (d->num_windows == 0) {
        plm_error("corpus too small: no sentence pair of at least 2 tokens");
        plm_dataloader_free(d);
        return -1;
    }
    return 0;
}

void plm_dataloader_free(plm_dataloader *d) {
    free(d->order);
    free(d->t5_noise);
    d->t5_noise = NULL;
    free(d->windows);
    free(d->tmp_ids);
    free(d->tmp_flags);
    plm_documents_free(&d->docs);
    d->order = NULL;
    d->windows = NULL;
    d->tmp_ids = NULL;
    d->tmp_flags = NULL;
}

/* The epoch key of masks and pair instances: static masking reuses dupe_factor keys. */
static uint64_t data_key(const plm_dataloader *d) {
    return d->opts.static_masking ? d->epoch % (uint64_t)d->opts.dupe_factor : d->epoch + 1;
}

static void make_order(plm_dataloader *d) {
    if (d->objective == PLM_OBJ_MLM && d->opts.pair != PLM_PAIR_NONE) {
        uint64_t key = data_key(d);
        if (key != d->windows_key) {
            d->num_windows = plm_pairs_build(&d->docs, d->opts.pair, d->T, d->opts.short_seq_prob,
                                             plm_hash_combine(d->seed, key), &d->windows, &d->windows_cap);
            d->windows_key = key;
            free(d->order);
            d->order = NULL;
        }
    }
    if (!d->order) d->order = plm_malloc((d->num_windows ? d->num_windows : 1) * sizeof(uint32_t));
    for (size_t i = 0; i < d->num_windows; i++) d->order[i] = (uint32_t)i;
    if (!d->shuffle || d->num_windows == 0) return;
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

const plm_window *plm_dataloader_window(const plm_dataloader *d, size_t w) {
    return d->windows && w < d->num_windows ? &d->windows[w] : NULL;
}

static void fill_window(plm_dataloader *d, size_t w, int32_t *ids, int32_t *type_ids, uint8_t *attn, int32_t *labels,
                        int32_t *seq_label) {
    int T = d->T;
    *seq_label = PLM_IGNORE_INDEX;
    if (d->objective == PLM_OBJ_CLM) {
        int32_t *win = d->tmp_ids;
        plm_stream_read(d->stream, w * (size_t)T, (size_t)T + 1, win, NULL);
        if (!d->opts.right_to_left) {
            memcpy(ids, win, (size_t)T * sizeof(int32_t));
            memcpy(labels, win + 1, (size_t)T * sizeof(int32_t));
        } else { /* reversed window: token t predicts the one before it in the text */
            for (int t = 0; t < T; t++) {
                ids[t] = win[T - t];
                labels[t] = win[T - t - 1];
            }
        }
        memset(type_ids, 0, (size_t)T * sizeof(int32_t));
        memset(attn, 1, (size_t)T);
        return;
    }
    const plm_vocab_info *v = d->vocab;
    const plm_window *x = &d->windows[w];
    uint8_t *fl = d->tmp_flags;
    /* [CLS] A [SEP] (B [SEP]) [PAD]...; a segment's first token starts a word (a word cut
     * by the segment's edge is masked as the part inside) */
    int n = 0;
    ids[n] = v->cls, fl[n] = 0, type_ids[n++] = 0;
    plm_stream_read(d->stream, x->a_start, x->a_len, ids + n, fl + n);
    fl[n] |= PLM_TOK_WORD_START;
    for (uint32_t k = 0; k < x->a_len; k++) type_ids[n++] = 0;
    ids[n] = v->sep, fl[n] = 0, type_ids[n++] = 0;
    if (x->b_len) {
        plm_stream_read(d->stream, x->b_start, x->b_len, ids + n, fl + n);
        fl[n] |= PLM_TOK_WORD_START;
        for (uint32_t k = 0; k < x->b_len; k++) type_ids[n++] = 1;
        ids[n] = v->sep, fl[n] = 0, type_ids[n++] = 1;
        *seq_label = x->label;
    }
    memset(attn, 1, (size_t)n);
    memset(attn + n, 0, (size_t)(T - n));
    for (int t = n; t < T; t++) ids[t] = v->pad, type_ids[t] = 0;
    plm_rng r;
    plm_rng_seed(&r, plm_hash_combine(d->seed, data_key(d)), 0x3a5c0000ULL + w);
    plm_mlm_mask_words(ids, fl, labels, n, v, &d->opts, &r);
    for (int t = n; t < T; t++) labels[t] = PLM_IGNORE_INDEX;
}

void plm_dataloader_next_seq(plm_dataloader *d, int B, int32_t *ids, int32_t *type_ids, uint8_t *attn_mask,
                             int32_t *labels, int32_t *seq_labels) {
    int T = d->T;
    int32_t tt[T];
    uint8_t am[T];
    for (int b = 0; b < B; b++) {
        if (d->pos >= d->num_windows) plm_dataloader_seek(d, d->epoch + 1, 0);
        size_t o = (size_t)b * T;
        int32_t sl;
        fill_window(d, d->order[d->pos++], ids + o, type_ids ? type_ids + o : tt, attn_mask ? attn_mask + o : am,
                    labels + o, &sl);
        if (seq_labels) seq_labels[b] = sl;
    }
}

void plm_dataloader_next(plm_dataloader *d, int B, int32_t *ids, int32_t *type_ids, uint8_t *attn_mask,
                         int32_t *labels) {
    plm_dataloader_next_seq(d, B, ids, type_ids, attn_mask, labels, NULL);
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
        plm_stream_read(d->stream, w * (size_t)L, (size_t)L, d->tmp_ids, NULL); /* text in memory or mmapped shards */
        plm_t5_corrupt(d->tmp_ids, d->t5_noise, L, v->vocab_size - 1, v->eos, enc_ids + (size_t)b * T, &ni, lab, &nt);
        if (ni != T || nt != Tt) plm_die("t5 span corruption: lengths %d/%d, expected %d/%d", ni, nt, T, Tt);
        plm_t5_shift_right(lab, Tt, d->opts.decoder_start_token_id, dec_ids + (size_t)b * Tt);
    }
}
