/* token_tasks.c - token classification and extractive QA features, batches and
 * predictions (see token_tasks.h). Feature sets keep flat arrays that grow by doubling;
 * the tokenizer writes into one scratch encoding per set, so encoding a data set costs a
 * handful of reallocations, not one per word or token. */
#include "tasks/token_tasks.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

/* The capacity to grow to for need elements (doubling), or cap when it already fits. */
static long grown(long cap, long need) {
    if (need <= cap) return cap;
    long c = cap ? cap : 256;
    while (c < need) c *= 2;
    return c;
}

static int32_t pad_token(const plm_tokenizer *tok) {
    int32_t pad = plm_tokenizer_special(tok, PLM_SPECIAL_PAD);
    if (pad < 0) pad = plm_tokenizer_special(tok, PLM_SPECIAL_EOS);
    return pad < 0 ? 0 : pad;
}

/* ---- batches ---- */

void plm_task_batch_init(plm_task_batch *b) { memset(b, 0, sizeof *b); }

void plm_task_batch_free(plm_task_batch *b) {
    free(b->input_ids);
    free(b->token_type_ids);
    free(b->attention_mask);
    free(b->labels);
    free(b->start_positions);
    free(b->end_positions);
    free(b->lengths);
    memset(b, 0, sizeof *b);
}

/* Sizes the batch for B rows of T tokens and fills it with padding. */
static void batch_reset(plm_task_batch *b, int B, int T, int32_t pad_id) {
    size_t n = (size_t)B * (size_t)T;
    if (n > b->cap_tokens) {
        b->input_ids = plm_realloc(b->input_ids, n * sizeof *b->input_ids);
        b->token_type_ids = plm_realloc(b->token_type_ids, n * sizeof *b->token_type_ids);
        b->attention_mask = plm_realloc(b->attention_mask, n);
        b->labels = plm_realloc(b->labels, n * sizeof *b->labels);
        b->cap_tokens = n;
    }
    if (B > b->cap_rows) {
        b->start_positions = plm_realloc(b->start_positions, (size_t)B * sizeof *b->start_positions);
        b->end_positions = plm_realloc(b->end_positions, (size_t)B * sizeof *b->end_positions);
        b->lengths = plm_realloc(b->lengths, (size_t)B * sizeof *b->lengths);
        b->cap_rows = B;
    }
    b->B = B;
    b->T = T;
    for (size_t i = 0; i < n; i++) {
        b->input_ids[i] = pad_id;
        b->token_type_ids[i] = 0;
        b->attention_mask[i] = 0;
        b->labels[i] = PLM_IGNORE_INDEX;
    }
    for (int r = 0; r < B; r++) b->start_positions[r] = b->end_positions[r] = PLM_IGNORE_INDEX;
}

/* T of a batch of rows with the given lengths: the longest, or pad_to when set. */
static int batch_width(int longest, int pad_to, const char *what) {
    if (pad_to <= 0) return longest;
    if (pad_to < longest) {
        plm_error("%s: a feature of %d tokens does not fit pad_to %d", what, longest, pad_to);
        return -1;
    }
    return pad_to;
}

/* ---- token classification ---- */

void plm_tagging_opts_default(plm_tagging_opts *o) {
    memset(o, 0, sizeof *o);
    o->max_seq_length = 128;
}

void plm_tagging_init(plm_tagging_features *f, const plm_tokenizer *tok, const char *const *tag_names, int n_tags,
                      const plm_tagging_opts *opts) {
    memset(f, 0, sizeof *f);
    f->tok = tok;
    if (opts)
        f->opts = *opts;
    else
        plm_tagging_opts_default(&f->opts);
    f->n_tags = n_tags;
    f->pad_id = pad_token(tok);
    f->bert = plm_tokenizer_kind(tok) == PLM_TOK_WORDPIECE;
    f->b_to_i = plm_malloc((size_t)PLM_MAX(n_tags, 1) * sizeof *f->b_to_i);
    for (int k = 0; k < n_tags; k++) {
        f->b_to_i[k] = k;
        const char *name = tag_names ? tag_names[k] : NULL;
        if (!name || strncmp(name, "B-", 2) != 0) continue;
        for (int j = 0; j < n_tags; j++)
            if (strncmp(tag_names[j], "I-", 2) == 0 && strcmp(tag_names[j] + 2, name + 2) == 0) f->b_to_i[k] = j;
    }
    f->tok_start = plm_malloc(sizeof *f->tok_start);
    f->tok_start[0] = 0;
    plm_encoding_init(&f->scratch);
}

void plm_tagging_free(plm_tagging_features *f) {
    free(f->b_to_i);
    free(f->tok_start);
    free(f->input_ids);
    free(f->labels);
    free(f->word_ids);
    free(f->n_words);
    free(f->n_words_kept);
    free(f->text);
    plm_encoding_free(&f->scratch);
    memset(f, 0, sizeof *f);
}

static void tagging_reserve(plm_tagging_features *f, long tokens) {
    long cap = grown(f->cap_tokens, tokens);
    if (cap != f->cap_tokens) {
        f->input_ids = plm_realloc(f->input_ids, (size_t)cap * sizeof *f->input_ids);
        f->labels = plm_realloc(f->labels, (size_t)cap * sizeof *f->labels);
        f->word_ids = plm_realloc(f->word_ids, (size_t)cap * sizeof *f->word_ids);
        f->cap_tokens = cap;
    }
    if (f->n + 1 > f->cap_feats) {
        int c = (int)grown(f->cap_feats, f->n + 1);
        f->tok_start = plm_realloc(f->tok_start, (size_t)(c + 1) * sizeof *f->tok_start);
        f->n_words = plm_realloc(f->n_words, (size_t)c * sizeof *f->n_words);
        f->n_words_kept = plm_realloc(f->n_words_kept, (size_t)c * sizeof *f->n_words_kept);
        f->cap_feats = c;
    }
}

/* Encodes word w into the scratch encoding (appending) and marks its tokens with w. */
static int encode_word(plm_tagging_features *f, const char *word, int w) {
    plm_encoding *e = &f->scratch;
    int before = e->n;
    size_t len = strlen(word);
    const char *text = word;
    if (!f->bert) { /* byte-level BPE: add_prefix_space=True puts a space before each word */
        if (len + 2 > f->cap_text) {
            f->cap_text = (size_t)grown((long)f->cap_text, (long)len + 2);
            f->text = plm_realloc(f->text, f->cap_text);
        }
        f->text[0] = ' ';
        memcpy(f->text + 1, word, len);
        text = f->text;
        len++;
    }
    if (plm_tokenizer_encode(f->tok, text, len, e) != 0) return -1;
    for (int i = before; i < e->n; i++) e->word_ids[i] = w;
    return 0;
}

int plm_tagging_add(plm_tagging_features *f, const char *const *words, const int *tags, int n_words) {
    int nspecial = f->bert ? 2 : 0;
    int32_t cls = plm_tokenizer_special(f->tok, PLM_SPECIAL_CLS), sep = plm_tokenizer_special(f->tok, PLM_SPECIAL_SEP);
    if (f->bert && (cls < 0 || sep < 0)) {
        plm_error("token classification: the vocabulary has no [CLS]/[SEP] token");
        return -1;
    }
    if (f->opts.max_seq_length > 0 && f->opts.max_seq_length <= nspecial) {
        plm_error("token classification: max_seq_length %d leaves no room for tokens", f->opts.max_seq_length);
        return -1;
    }
    plm_encoding *e = &f->scratch;
    plm_encoding_clear(e);
    long empty = 0;
    for (int w = 0; w < n_words; w++) {
        if (tags && (tags[w] < 0 || tags[w] >= f->n_tags)) {
            plm_error("token classification: word %d has tag %d, outside [0, %d)", w, tags[w], f->n_tags);
            return -1;
        }
        int before = e->n;
        if (encode_word(f, words[w], w) != 0) return -1;
        if (e->n == before) empty++;
    }
    int keep = e->n;
    if (f->opts.max_seq_length > 0) keep = PLM_MIN(keep, f->opts.max_seq_length - nspecial);

    long at = f->tok_start[f->n];
    tagging_reserve(f, at + keep + nspecial);
    int32_t *ids = f->input_ids + at, *labels = f->labels + at, *wid = f->word_ids + at;
    int p = 0, kept = 0;
    if (f->bert) {
        ids[p] = cls;
        labels[p] = PLM_IGNORE_INDEX;
        wid[p++] = -1;
    }
    for (int i = 0; i < keep; i++, p++) {
        int w = e->word_ids[i];
        bool first = i == 0 || e->word_ids[i - 1] != w;
        ids[p] = e->ids[i];
        wid[p] = w;
        int32_t label = PLM_IGNORE_INDEX;
        if (tags && first)
            label = tags[w];
        else if (tags && f->opts.label_all_tokens)
            label = f->opts.b_to_i_label ? f->b_to_i[tags[w]] : tags[w];
        labels[p] = label;
        kept += first;
    }
    if (f->bert) {
        ids[p] = sep;
        labels[p] = PLM_IGNORE_INDEX;
        wid[p++] = -1;
    }
    int idx = f->n++;
    f->tok_start[f->n] = at + p;
    f->n_words[idx] = n_words;
    f->n_words_kept[idx] = kept;
    f->max_len = PLM_MAX(f->max_len, p);
    f->n_tokens += p;
    f->n_words_total += n_words;
    f->n_words_empty += empty;
    f->n_words_truncated += n_words - empty - kept;
    return idx;
}

int plm_tagging_add_set(plm_tagging_features *f, const plm_tagged_set *set, bool pos) {
    for (int s = 0; s < set->n; s++) {
        const plm_tagged_sentence *st = &set->sents[s];
        const int *tags = pos ? st->pos : st->tags;
        if (pos && !tags) {
            plm_error("token classification: the set was read without its POS column");
            return -1;
        }
        if (plm_tagging_add(f, st->words, tags, st->n) < 0) return -1;
    }
    return 0;
}

int plm_tagging_batch(const plm_tagging_features *f, const int *features, int B, int pad_to, plm_task_batch *out) {
    int longest = 0;
    for (int r = 0; r < B; r++) {
        if (features[r] < 0 || features[r] >= f->n) {
            plm_error("token classification batch: feature %d out of range [0, %d)", features[r], f->n);
            return -1;
        }
        longest = PLM_MAX(longest, (int)(f->tok_start[features[r] + 1] - f->tok_start[features[r]]));
    }
    int T = batch_width(longest, pad_to, "token classification batch");
    if (T < 0) return -1;
    batch_reset(out, B, T, f->pad_id);
    for (int r = 0; r < B; r++) {
        long at = f->tok_start[features[r]];
        int len = (int)(f->tok_start[features[r] + 1] - at);
        size_t row = (size_t)r * (size_t)T;
        memcpy(out->input_ids + row, f->input_ids + at, (size_t)len * sizeof(int32_t));
        memcpy(out->labels + row, f->labels + at, (size_t)len * sizeof(int32_t));
        memset(out->attention_mask + row, 1, (size_t)len);
        out->lengths[r] = len;
    }
    return 0;
}

/* Index of the first maximum of x[0..n) (NaN never wins). */
static int argmax(const float *x, int n) {
    int best = 0;
    for (int k = 1; k < n; k++)
        if (x[k] > x[best] || (isnan(x[best]) && !isnan(x[k]))) best = k;
    return best;
}

void plm_tagging_decode(const plm_tagging_features *f, int feature, const float *logits, int default_tag,
                        int *word_tags) {
    int n_words = f->n_words[feature];
    for (int w = 0; w < n_words; w++) word_tags[w] = -1;
    long at = f->tok_start[feature];
    int len = (int)(f->tok_start[feature + 1] - at);
    for (int i = 0; i < len; i++) {
        int w = f->word_ids[at + i];
        if (w >= 0 && word_tags[w] < 0) word_tags[w] = argmax(logits + (size_t)i * (size_t)f->n_tags, f->n_tags);
    }
    for (int w = 0; w < n_words; w++)
        if (word_tags[w] < 0) word_tags[w] = default_tag;
}

/* ---- extractive QA ---- */

void plm_qa_opts_default(plm_qa_opts *o) {
    o->max_seq_length = 384;
    o->doc_stride = 128;
    o->n_best_size = 20;
    o->max_answer_length = 30;
}

enum { QA_MAX_NBEST = 64 };

void plm_qa_init(plm_qa_features *f, const plm_tokenizer *tok, const plm_qa_opts *opts) {
    memset(f, 0, sizeof *f);
    f->tok = tok;
    if (opts)
        f->opts = *opts;
    else
        plm_qa_opts_default(&f->opts);
    f->pad_id = pad_token(tok);
    f->bert = plm_tokenizer_kind(tok) == PLM_TOK_WORDPIECE;
    f->ctx_tok_start = plm_calloc(1, sizeof *f->ctx_tok_start);
    f->ex_q_start = plm_calloc(1, sizeof *f->ex_q_start);
    f->ex_first_feature = plm_calloc(1, sizeof *f->ex_first_feature);
    plm_encoding_init(&f->scratch);
}

void plm_qa_free(plm_qa_features *f) {
    free(f->ctx_text);
    free(f->ctx_len);
    free(f->ctx_tok_start);
    free(f->ctx_ids);
    free(f->ctx_offsets);
    free(f->ex_context);
    free(f->ex_q_start);
    free(f->q_ids);
    free(f->ex_first_feature);
    free(f->ex_answer);
    free(f->features);
    plm_encoding_free(&f->scratch);
    memset(f, 0, sizeof *f);
}

int plm_qa_add_context(plm_qa_features *f, const char *text, size_t len) {
    plm_encoding *e = &f->scratch;
    plm_encoding_clear(e);
    if (plm_tokenizer_encode(f->tok, text, len, e) != 0) return -1;
    if (f->n_contexts + 1 > f->cap_contexts) {
        int c = (int)grown(f->cap_contexts, f->n_contexts + 1);
        f->ctx_text = plm_realloc(f->ctx_text, (size_t)c * sizeof *f->ctx_text);
        f->ctx_len = plm_realloc(f->ctx_len, (size_t)c * sizeof *f->ctx_len);
        f->ctx_tok_start = plm_realloc(f->ctx_tok_start, (size_t)(c + 1) * sizeof *f->ctx_tok_start);
        f->cap_contexts = c;
    }
    long at = f->ctx_tok_start[f->n_contexts];
    long cap = grown(f->cap_ctx_tokens, at + e->n);
    if (cap != f->cap_ctx_tokens) {
        f->ctx_ids = plm_realloc(f->ctx_ids, (size_t)cap * sizeof *f->ctx_ids);
        f->ctx_offsets = plm_realloc(f->ctx_offsets, (size_t)cap * 2 * sizeof *f->ctx_offsets);
        f->cap_ctx_tokens = cap;
    }
    memcpy(f->ctx_ids + at, e->ids, (size_t)e->n * sizeof *e->ids);
    memcpy(f->ctx_offsets + 2 * at, e->offsets, (size_t)e->n * 2 * sizeof *e->offsets);
    if (!f->bert) { /* ByteLevel trim_offsets: a token's spaces are not part of the answer */
        int32_t *off = f->ctx_offsets + 2 * at;
        for (int i = 0; i < e->n; i++) {
            while (off[2 * i] < off[2 * i + 1] && text[off[2 * i]] == ' ') off[2 * i]++;
            while (off[2 * i + 1] > off[2 * i] && text[off[2 * i + 1] - 1] == ' ') off[2 * i + 1]--;
        }
    }
    int c = f->n_contexts++;
    f->ctx_text[c] = text;
    f->ctx_len[c] = len;
    f->ctx_tok_start[f->n_contexts] = at + e->n;
    return c;
}

/* The training labels of a window, run_qa's prepare_train_features: the answer's first
 * and last token when the window's context spans the answer, else 0 ([CLS]) for both.
 * run_qa scans the offsets of the whole feature, so an answer starting in the window's
 * last context token walks on over [SEP] and padding (their offsets (0, 0) never exceed
 * the start) and labels the last position; here the scan stays in the context. */
static void qa_label(const plm_qa_features *f, plm_qa_feature *ft, int a_start, int a_end) {
    ft->start_position = ft->end_position = 0;
    if (a_start < 0 || ft->win_len == 0) return;
    const int32_t *off = f->ctx_offsets + 2 * f->ctx_tok_start[f->ex_context[ft->example]];
    int first = ft->win_start, last = ft->win_start + ft->win_len - 1;
    if (!(off[2 * first] <= a_start && off[2 * last + 1] >= a_end)) return;
    int ts = first, te = last;
    while (ts <= last && off[2 * ts] <= a_start) ts++;
    while (te >= first && off[2 * te + 1] >= a_end) te--;
    ft->start_position = ft->ctx_pos + (ts - 1 - first);
    ft->end_position = ft->ctx_pos + (te + 1 - first);
}

int plm_qa_add_question(plm_qa_features *f, int ctx, const char *question, int answer_start, int answer_len) {
    if (ctx < 0 || ctx >= f->n_contexts) {
        plm_error("qa: context %d out of range [0, %d)", ctx, f->n_contexts);
        return -1;
    }
    while (*question == ' ' || (*question >= '\t' && *question <= '\r')) question++; /* run_qa's lstrip */
    plm_encoding *e = &f->scratch;
    plm_encoding_clear(e);
    if (plm_tokenizer_encode(f->tok, question, strlen(question), e) != 0) return -1;
    int nspecial = f->bert ? 3 : 0;
    int32_t cls = plm_tokenizer_special(f->tok, PLM_SPECIAL_CLS), sep = plm_tokenizer_special(f->tok, PLM_SPECIAL_SEP);
    if (f->bert && (cls < 0 || sep < 0)) {
        plm_error("qa: the vocabulary has no [CLS]/[SEP] token");
        return -1;
    }
    int room = f->opts.max_seq_length - e->n - nspecial; /* context tokens per window */
    if (room <= f->opts.doc_stride || room <= 0) {
        plm_error("qa: a question of %d tokens leaves %d context tokens per window, not more than doc_stride %d", e->n,
                  room, f->opts.doc_stride);
        return -1;
    }
    /* example arrays */
    if (f->n_examples + 1 > f->cap_examples) {
        int c = (int)grown(f->cap_examples, f->n_examples + 1);
        f->ex_context = plm_realloc(f->ex_context, (size_t)c * sizeof *f->ex_context);
        f->ex_q_start = plm_realloc(f->ex_q_start, (size_t)(c + 1) * sizeof *f->ex_q_start);
        f->ex_first_feature = plm_realloc(f->ex_first_feature, (size_t)(c + 1) * sizeof *f->ex_first_feature);
        f->ex_answer = plm_realloc(f->ex_answer, (size_t)c * 2 * sizeof *f->ex_answer);
        f->cap_examples = c;
    }
    long qat = f->ex_q_start[f->n_examples];
    long qcap = grown(f->cap_q_tokens, qat + e->n);
    if (qcap != f->cap_q_tokens) {
        f->q_ids = plm_realloc(f->q_ids, (size_t)qcap * sizeof *f->q_ids);
        f->cap_q_tokens = qcap;
    }
    memcpy(f->q_ids + qat, e->ids, (size_t)e->n * sizeof *e->ids);
    int ex = f->n_examples++;
    f->ex_context[ex] = ctx;
    f->ex_q_start[ex + 1] = qat + e->n;
    bool labelled = answer_start >= 0 && (size_t)answer_start + (size_t)PLM_MAX(answer_len, 0) <= f->ctx_len[ctx];
    int a_start = labelled ? answer_start : -1, a_end = labelled ? answer_start + answer_len : -1;
    f->ex_answer[2 * ex] = a_start;
    f->ex_answer[2 * ex + 1] = a_end;

    /* windows: HF tokenizers' overflow with stride, [0, room), [room - stride, ...) until
     * one reaches the end of the context */
    int n_ctx = (int)(f->ctx_tok_start[ctx + 1] - f->ctx_tok_start[ctx]);
    int step = room - f->opts.doc_stride;
    bool inside = false;
    for (int start = 0;; start += step) {
        int stop = PLM_MIN(start + room, n_ctx);
        if (f->n_features + 1 > f->cap_features) {
            f->cap_features = (int)grown(f->cap_features, f->n_features + 1);
            f->features = plm_realloc(f->features, (size_t)f->cap_features * sizeof *f->features);
        }
        plm_qa_feature *ft = &f->features[f->n_features++];
        ft->example = ex;
        ft->win_start = start;
        ft->win_len = stop - start;
        ft->ctx_pos = e->n + (f->bert ? 2 : 0);
        ft->len = ft->ctx_pos + ft->win_len + (f->bert ? 1 : 0);
        qa_label(f, ft, a_start, a_end);
        inside |= ft->start_position != 0 || ft->end_position != 0;
        f->max_len = PLM_MAX(f->max_len, ft->len);
        if (stop >= n_ctx) break;
    }
    f->ex_first_feature[ex + 1] = f->n_features;
    f->n_answers_labelled += labelled;
    f->n_answers_inside += inside;
    return ex;
}

int plm_qa_add_squad(plm_qa_features *f, const plm_squad_set *set) {
    int base = f->n_contexts;
    for (int c = 0; c < set->n_contexts; c++)
        if (plm_qa_add_context(f, set->contexts[c], strlen(set->contexts[c])) < 0) return -1;
    for (int q = 0; q < set->n; q++) {
        const plm_squad_question *sq = &set->qs[q];
        int start = -1, len = 0;
        if (sq->n_answers > 0 && sq->answer_starts[0] >= 0) {
            start = sq->answer_starts[0];
            len = (int)strlen(sq->answer_texts[0]);
        }
        if (plm_qa_add_question(f, base + sq->context, sq->question, start, len) < 0) return -1;
    }
    return 0;
}

int plm_qa_batch(const plm_qa_features *f, const int *features, int B, int pad_to, plm_task_batch *out) {
    int longest = 0;
    for (int r = 0; r < B; r++) {
        if (features[r] < 0 || features[r] >= f->n_features) {
            plm_error("qa batch: feature %d out of range [0, %d)", features[r], f->n_features);
            return -1;
        }
        longest = PLM_MAX(longest, f->features[features[r]].len);
    }
    int T = batch_width(longest, pad_to, "qa batch");
    if (T < 0) return -1;
    batch_reset(out, B, T, f->pad_id);
    int32_t cls = plm_tokenizer_special(f->tok, PLM_SPECIAL_CLS), sep = plm_tokenizer_special(f->tok, PLM_SPECIAL_SEP);
    for (int r = 0; r < B; r++) {
        const plm_qa_feature *ft = &f->features[features[r]];
        int ex = ft->example;
        size_t row = (size_t)r * (size_t)T;
        int32_t *ids = out->input_ids + row, *types = out->token_type_ids + row;
        int nq = (int)(f->ex_q_start[ex + 1] - f->ex_q_start[ex]);
        int p = 0;
        if (f->bert) ids[p++] = cls;
        memcpy(ids + p, f->q_ids + f->ex_q_start[ex], (size_t)nq * sizeof *ids);
        p += nq;
        if (f->bert) ids[p++] = sep;
        memcpy(ids + p, f->ctx_ids + f->ctx_tok_start[f->ex_context[ex]] + ft->win_start,
               (size_t)ft->win_len * sizeof *ids);
        p += ft->win_len;
        if (f->bert) ids[p++] = sep;
        if (f->bert) /* BPE models (GPT-2) take no token types */
            for (int i = ft->ctx_pos; i < p; i++) types[i] = 1;
        memset(out->attention_mask + row, 1, (size_t)p);
        out->lengths[r] = p;
        out->start_positions[r] = ft->start_position;
        out->end_positions[r] = ft->end_position;
    }
    return 0;
}

/* The n highest of x[0..len) (stride 2: one column of the QA logits) into top, best
 * first; ties rank the lower position first. Returns how many (min(n, len)). */
static int top_n(const float *x, int len, int n, int *top) {
    int k = 0;
    for (int i = 0; i < len; i++) {
        float v = x[2 * i];
        if (isnan(v)) continue;
        if (k == n && !(v > x[2 * top[k - 1]])) continue;
        int j = k < n ? k++ : n - 1;
        while (j > 0 && v > x[2 * top[j - 1]]) {
            top[j] = top[j - 1];
            j--;
        }
        top[j] = i;
    }
    return k;
}

plm_qa_answer plm_qa_best_answer(const plm_qa_features *f, int ex, const float *const *logits) {
    plm_qa_answer best = {.found = false, .start = 0, .end = 0, .feature = -1, .start_tok = -1, .end_tok = -1};
    int nb = PLM_MAX(1, PLM_MIN(f->opts.n_best_size, QA_MAX_NBEST));
    int starts[QA_MAX_NBEST], ends[QA_MAX_NBEST];
    const int32_t *off = f->ctx_offsets + 2 * f->ctx_tok_start[f->ex_context[ex]];
    for (int fi = f->ex_first_feature[ex]; fi < f->ex_first_feature[ex + 1]; fi++) {
        const plm_qa_feature *ft = &f->features[fi];
        const float *lg = logits[fi - f->ex_first_feature[ex]];
        int ns = top_n(lg, ft->len, nb, starts), ne = top_n(lg + 1, ft->len, nb, ends);
        int lo = ft->ctx_pos, hi = ft->ctx_pos + ft->win_len; /* context positions [lo, hi) */
        for (int a = 0; a < ns; a++) {
            int s = starts[a];
            if (s < lo || s >= hi) continue;
            for (int b = 0; b < ne; b++) {
                int e = ends[b];
                if (e < lo || e >= hi || e < s || e - s + 1 > f->opts.max_answer_length) continue;
                float score = lg[2 * s] + lg[2 * e + 1];
                if (best.found && !(score > best.score)) continue;
                best.found = true;
                best.score = score;
                best.feature = fi;
                best.start_tok = s;
                best.end_tok = e;
                best.start = off[2 * (ft->win_start + s - lo)];
                best.end = off[2 * (ft->win_start + e - lo) + 1];
            }
        }
    }
    return best;
}
