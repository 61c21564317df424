/* prompting.c - see prompting.h */
#include "tasks/prompting.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/rng.h"
#include "infer/lm_score.h"

/* ---------------------------------------------------------------- built-in prompts */

/* lm-evaluation-harness's GLUE prompts (its tasks/glue/<task>/default.yaml: doc_to_text,
 * and the choices after its " " target delimiter), in the label order of datasets.c. */
static const char *const v_neg_pos[] = {" negative", " positive"};
static const char *const v_no_yes[] = {" no", " yes"};
static const char *const v_entail_tf[] = {" True", " False"};        /* entailment, not_entailment */
static const char *const v_entail_yn[] = {" yes", " no"};            /* QNLI: entailment = the sentence answers */
static const char *const v_false_true[] = {" False", " True"};       /* WNLI: 0, 1 */
static const char *const v_mnli[] = {" False", " True", " Neither"}; /* contradiction, entailment, neutral */

static const plm_prompt_builtin builtins[] = {
    {"cola", "{sentence}\\nQuestion: Does this sentence make sense?\\nAnswer:", v_no_yes, 2},
    {"sst2", "{sentence}\\nQuestion: Is this sentence positive or negative?\\nAnswer:", v_neg_pos, 2},
    {"mrpc", "Sentence 1: {text_a}\\nSentence 2: {text_b}\\nQuestion: Do both sentences mean the same thing?\\nAnswer:",
     v_no_yes, 2},
    {"qqp",
     "Question 1: {question1}\\nQuestion 2: {question2}\\nQuestion: Do both questions ask the same thing?\\nAnswer:",
     v_no_yes, 2},
    {"mnli", "{sentence1}\\nQuestion: {sentence2} True, False or Neither?\\nAnswer:", v_mnli, 3},
    {"mnli-mm", "{sentence1}\\nQuestion: {sentence2} True, False or Neither?\\nAnswer:", v_mnli, 3},
    {"qnli", "{question}\\n{sentence}\\nQuestion: Does this response answer the question?\\nAnswer:", v_entail_yn, 2},
    {"rte", "{sentence1}\\nQuestion: {sentence2} True or False?\\nAnswer:", v_entail_tf, 2},
    {"wnli", "{sentence1}\\nQuestion: {sentence2} True or False?\\nAnswer:", v_false_true, 2},
};

const plm_prompt_builtin *plm_prompt_builtins(int *n) {
    *n = (int)PLM_ARRAY_LEN(builtins);
    return builtins;
}

const plm_prompt_builtin *plm_prompt_builtin_find(const char *task) {
    const plm_glue_task *t = plm_glue_task_find(task);
    if (!t) return NULL;
    for (size_t i = 0; i < PLM_ARRAY_LEN(builtins); i++)
        if (!strcmp(builtins[i].task, t->name)) return &builtins[i];
    return NULL;
}

/* ---------------------------------------------------------------- templates */

/* A growing string. */
typedef struct {
    char *s;
    size_t n, cap;
} sbuf;

static void sb_add(sbuf *b, const char *s, size_t n) {
    if (b->n + n + 1 > b->cap) {
        b->cap = 2 * (b->n + n + 1) + 64;
        b->s = plm_realloc(b->s, b->cap);
    }
    memcpy(b->s + b->n, s, n);
    b->n += n;
    b->s[b->n] = 0;
}

static void sb_str(sbuf *b, const char *s) { sb_add(b, s ? s : "", s ? strlen(s) : 0); }

static char *sb_take(sbuf *b) {
    if (!b->s) return plm_strdup("");
    return b->s;
}

/* Resolves \n, \t, \\ (and \, when comma is set); other backslashes stay as they are. */
static char *unescape(const char *s, size_t n, bool comma) {
    sbuf b = {0};
    for (size_t i = 0; i < n; i++) {
        char c = s[i];
        if (c == '\\' && i + 1 < n) {
            char d = s[i + 1];
            const char *rep = d == 'n' ? "\n" : d == 't' ? "\t" : d == '\\' ? "\\" : comma && d == ',' ? "," : NULL;
            if (rep) {
                sb_str(&b, rep);
                i++;
                continue;
            }
        }
        sb_add(&b, &c, 1);
    }
    return sb_take(&b);
}

static void add_piece(plm_prompt *p, char *text, int slot) {
    p->pieces = plm_realloc(p->pieces, (size_t)(p->n_pieces + 1) * sizeof *p->pieces);
    p->pieces[p->n_pieces++] = (plm_prompt_piece){text, slot};
}

static int parse_template(plm_prompt *p, const char *t, const char *col_a, const char *col_b) {
    char *tpl = unescape(t, strlen(t), false);
    sbuf lit = {0};
    int rc = -1;
    bool any_text = false;
    char names[512];
    if (col_b)
        snprintf(names, sizeof names, "{%s}, {%s}, {text_a}, {text_b}", col_a, col_b);
    else
        snprintf(names, sizeof names, "{%s}, {text_a}", col_a);
    for (size_t i = 0; tpl[i]; i++) {
        char c = tpl[i];
        if ((c == '{' && tpl[i + 1] == '{') || (c == '}' && tpl[i + 1] == '}')) {
            sb_add(&lit, &c, 1);
            i++;
            continue;
        }
        if (c == '}') {
            plm_error("--template: '}' without a '{' at byte %zu (write }} for a literal brace)", i);
            goto out;
        }
        if (c != '{') {
            sb_add(&lit, &c, 1);
            continue;
        }
        const char *end = strchr(tpl + i + 1, '}');
        const char *open = strchr(tpl + i + 1, '{');
        if (!end || (open && open < end)) {
            plm_error("--template: unclosed '{' at byte %zu (write {{ for a literal brace)", i);
            goto out;
        }
        size_t len = (size_t)(end - (tpl + i + 1));
        char name[256];
        snprintf(name, sizeof name, "%.*s", (int)PLM_MIN(len, sizeof name - 1), tpl + i + 1);
        int slot = -1;
        if (!strcmp(name, "text_a") || (col_a && !strcmp(name, col_a))) slot = 0;
        if (!strcmp(name, "text_b") || (col_b && !strcmp(name, col_b))) slot = 1;
        if (slot == 1 && !col_b) {
            plm_error("--template: placeholder {%s} but the task is single-sentence (it has %s)", name, names);
            goto out;
        }
        if (slot < 0) {
            plm_error("--template: unknown placeholder {%s} (this task has %s)", name, names);
            goto out;
        }
        if (lit.n) {
            add_piece(p, sb_take(&lit), -1);
            lit = (sbuf){0};
        }
        add_piece(p, NULL, slot);
        any_text = true;
        i += len + 1;
    }
    if (!any_text) {
        plm_error("--template: no placeholder for the example's text (this task has %s)", names);
        goto out;
    }
    if (lit.n) {
        add_piece(p, sb_take(&lit), -1);
        lit = (sbuf){0};
    }
    rc = 0;
out:
    free(lit.s);
    free(tpl);
    return rc;
}

int plm_prompt_init(plm_prompt *p, const char *template_text, const char *verbalizers, const char *const *verbs,
                    int n_labels, const char *col_a, const char *col_b, const char *separator) {
    memset(p, 0, sizeof *p);
    if (parse_template(p, template_text, col_a, col_b) != 0) {
        plm_prompt_free(p);
        return -1;
    }
    p->separator = separator ? unescape(separator, strlen(separator), false) : plm_strdup("\n\n");
    p->verbalizers = plm_calloc((size_t)PLM_MAX(n_labels, 1), sizeof(char *));
    p->n_labels = n_labels;
    int n = 0;
    if (verbs) {
        for (; n < n_labels; n++) p->verbalizers[n] = plm_strdup(verbs[n]);
    } else {
        /* split on commas not preceded by a backslash */
        const char *s = verbalizers, *start = s;
        for (;; s++) {
            if (*s == '\\' && s[1]) {
                s++;
                continue;
            }
            if (*s == ',' || !*s) {
                if (n < n_labels) p->verbalizers[n] = unescape(start, (size_t)(s - start), true);
                n++;
                if (!*s) break;
                start = s + 1;
            }
        }
        if (n != n_labels) {
            plm_error("--verbalizers: %d given, the task has %d labels (one per label, comma-separated, in label "
                      "order)",
                      n, n_labels);
            plm_prompt_free(p);
            return -1;
        }
    }
    for (int i = 0; i < n_labels; i++)
        for (int j = 0; j < i; j++)
            if (!strcmp(p->verbalizers[i], p->verbalizers[j])) {
                plm_error("--verbalizers: labels %d and %d have the same verbalizer \"%s\"", j, i, p->verbalizers[i]);
                plm_prompt_free(p);
                return -1;
            }
    return 0;
}

void plm_prompt_free(plm_prompt *p) {
    for (int i = 0; i < p->n_pieces; i++) free(p->pieces[i].text);
    free(p->pieces);
    for (int i = 0; i < p->n_labels && p->verbalizers; i++) free(p->verbalizers[i]);
    free(p->verbalizers);
    free(p->separator);
    for (int i = 0; i < p->n_labels && p->verb_ids; i++) free(p->verb_ids[i]);
    free(p->verb_ids);
    free(p->verb_len);
    memset(p, 0, sizeof *p);
}

int plm_prompt_tokenize_verbalizers(plm_prompt *p, const plm_tokenizer *tok) {
    p->verb_ids = plm_calloc((size_t)p->n_labels, sizeof(int32_t *));
    p->verb_len = plm_calloc((size_t)p->n_labels, sizeof(int));
    plm_encoding e;
    plm_encoding_init(&e);
    int rc = 0;
    for (int i = 0; i < p->n_labels && rc == 0; i++) {
        plm_encoding_clear(&e);
        const char *v = p->verbalizers[i];
        if (plm_tokenizer_encode(tok, v, strlen(v), &e) != 0) {
            rc = -1;
        } else if (e.n == 0) {
            plm_error("--verbalizers: the verbalizer of label %d (\"%s\") tokenizes to no token", i, v);
            rc = -1;
        } else {
            p->verb_ids[i] = plm_malloc((size_t)e.n * sizeof(int32_t));
            memcpy(p->verb_ids[i], e.ids, (size_t)e.n * sizeof(int32_t));
            p->verb_len[i] = e.n;
        }
    }
    plm_encoding_free(&e);
    return rc;
}

static void render_into(sbuf *b, const plm_prompt *p, const plm_example *e) {
    for (int i = 0; i < p->n_pieces; i++) {
        const plm_prompt_piece *q = &p->pieces[i];
        sb_str(b, q->text ? q->text : q->slot == 0 ? e->text_a : e->text_b);
    }
}

char *plm_prompt_render(const plm_prompt *p, const plm_example *e) {
    sbuf b = {0};
    render_into(&b, p, e);
    return sb_take(&b);
}

char *plm_prompt_build(const plm_prompt *p, const plm_dataset *train, const int *demos, int k, const plm_example *e) {
    sbuf b = {0};
    for (int j = 0; j < k; j++) {
        const plm_example *d = &train->examples[demos[j]];
        render_into(&b, p, d);
        sb_str(&b, p->verbalizers[d->label]);
        sb_str(&b, p->separator);
    }
    render_into(&b, p, e);
    return sb_take(&b);
}

/* ---------------------------------------------------------------- demonstrations */

int plm_prompt_sample(const plm_dataset *train, int k, plm_prompt_sampling mode, uint64_t seed, long index, int exclude,
                      int *out) {
    if (k <= 0) return 0;
    int n = train->n, avail = n - (exclude >= 0 && exclude < n ? 1 : 0);
    if (k > avail) {
        plm_error("few-shot: k = %d demonstrations, the training set has %d examples to draw from", k, avail);
        return -1;
    }
    plm_rng r;
    plm_rng_seed(&r, seed, 0x5a4d000000000000ULL + (uint64_t)index); /* one stream per test example */
    if (mode == PLM_PROMPT_SAMPLE_RANDOM) {
        /* k distinct indices, uniformly: redraw on a repeat (k is small) */
        for (int j = 0; j < k; j++) {
            int x;
            bool dup;
            do {
                x = (int)plm_rng_below(&r, (uint32_t)n);
                dup = x == exclude;
                for (int q = 0; q < j && !dup; q++) dup = out[q] == x;
            } while (dup);
            out[j] = x;
        }
        return 0;
    }
    int L = train->n_labels;
    int *count = plm_calloc((size_t)L, sizeof(int)), *perm = plm_malloc((size_t)L * sizeof(int));
    for (int i = 0; i < n; i++)
        if (i != exclude && train->examples[i].label >= 0 && train->examples[i].label < L)
            count[train->examples[i].label]++;
    for (int l = 0; l < L; l++) perm[l] = l;
    for (int l = L - 1; l > 0; l--) { /* the labels in a random order, so none is always first */
        int j = (int)plm_rng_below(&r, (uint32_t)(l + 1));
        int t = perm[l];
        perm[l] = perm[j];
        perm[j] = t;
    }
    int rc = 0;
    for (int q = 0; q < L && q < k && rc == 0; q++) {
        int l = perm[q], need = k / L + (q < k % L ? 1 : 0); /* demonstrations j with j % L == q */
        if (count[l] < need) {
            plm_error("few-shot: balanced sampling needs %d examples of label '%s', the training set has %d", need,
                      train->labels ? train->labels[l] : "?", count[l]);
            rc = -1;
        }
    }
    if (rc == 0) {
        for (int j = 0; j < k; j++) {
            int want = perm[j % L], x;
            bool bad;
            do { /* uniform within the label by rejection */
                x = (int)plm_rng_below(&r, (uint32_t)n);
                bad = x == exclude || train->examples[x].label != want;
                for (int q = 0; q < j && !bad; q++) bad = out[q] == x;
            } while (bad);
            out[j] = x;
        }
        for (int j = k - 1; j > 0; j--) { /* then a random order of the k */
            int q = (int)plm_rng_below(&r, (uint32_t)(j + 1));
            int t = out[j];
            out[j] = out[q];
            out[q] = t;
        }
    }
    free(count);
    free(perm);
    return rc;
}

/* ---------------------------------------------------------------- scoring a set */

void plm_prompt_result_free(plm_prompt_result *r) {
    for (int i = 0; i < r->n; i++) {
        if (r->demos) free(r->demos[i]);
        if (r->prompts) free(r->prompts[i]);
        if (r->ctx_ids) free(r->ctx_ids[i]);
    }
    free(r->demos);
    free(r->prompts);
    free(r->ctx_ids);
    free(r->n_ctx);
    free(r->truncated);
    free(r->pred);
    free(r->logprob);
    free(r->score);
    memset(r, 0, sizeof *r);
}

int plm_prompt_evaluate(plm_model *m, const plm_tokenizer *tok, const plm_prompt *p, const plm_dataset *test,
                        const plm_dataset *train, const plm_prompt_opts *o, plm_prompt_result *r) {
    memset(r, 0, sizeof *r);
    int n = test->n, L = p->n_labels, k = o->k;
    if (!p->verb_ids) {
        plm_error("prompt: verbalizers not tokenized");
        return -1;
    }
    if (k > 0 && !train) {
        plm_error("few-shot: k = %d needs a training set to draw demonstrations from", k);
        return -1;
    }
    if (k > 0 && train->n_labels != L) {
        plm_error("few-shot: the training set has %d labels, the prompt %d verbalizers", train->n_labels, L);
        return -1;
    }
    int P = m->config.max_position_embeddings, maxc = 0;
    for (int l = 0; l < L; l++) maxc = PLM_MAX(maxc, p->verb_len[l]);
    int limit = P - maxc; /* context tokens that fit before the longest verbalizer */
    if (limit < 1) {
        plm_error("prompt: a verbalizer of %d tokens leaves no room for a prompt in %d positions", maxc, P);
        return -1;
    }
    int32_t eos = plm_tokenizer_special(tok, PLM_SPECIAL_EOS);
    r->n = n;
    r->pred = plm_calloc((size_t)n, sizeof(int));
    r->logprob = plm_calloc((size_t)n * L, sizeof(double));
    r->score = plm_calloc((size_t)n * L, sizeof(double));
    r->demos = plm_calloc((size_t)n, sizeof(int *));
    r->prompts = plm_calloc((size_t)n, sizeof(char *));
    r->ctx_ids = plm_calloc((size_t)n, sizeof(int32_t *));
    r->n_ctx = plm_calloc((size_t)n, sizeof(int));
    r->truncated = plm_calloc((size_t)n, sizeof(int));
    plm_encoding e;
    plm_encoding_init(&e);
    int rc = 0;
    for (int i = 0; i < n && rc == 0; i++) {
        const plm_example *ex = &test->examples[i];
        if (ex->label < 0 || ex->label >= L) {
            plm_error("prompt: example %d (line %d) has no label among the %d verbalized ones", i, ex->line, L);
            rc = -1;
            break;
        }
        r->demos[i] = plm_calloc((size_t)PLM_MAX(k, 1), sizeof(int));
        if (plm_prompt_sample(train, k, o->sampling, o->seed, i, o->same_set ? i : -1, r->demos[i]) != 0) {
            rc = -1;
            break;
        }
        r->prompts[i] = plm_prompt_build(p, train, r->demos[i], k, ex);
        plm_encoding_clear(&e);
        if (plm_tokenizer_encode(tok, r->prompts[i], strlen(r->prompts[i]), &e) != 0) {
            rc = -1;
            break;
        }
        const int32_t *ids = e.ids;
        int nt = e.n;
        if (nt == 0) { /* condition an empty prompt on end-of-text, as GPT-2 does */
            if (eos < 0) {
                plm_error("prompt: example %d (line %d) gives an empty prompt and the tokenizer has no end-of-text "
                          "token to condition on",
                          i, ex->line);
                rc = -1;
                break;
            }
            ids = &eos;
            nt = 1;
        }
        if (nt > limit) { /* keep the end: the example itself and the nearest demonstrations */
            r->truncated[i] = nt - limit;
            r->n_truncated++;
            ids += nt - limit;
            nt = limit;
        }
        r->ctx_ids[i] = plm_malloc((size_t)nt * sizeof(int32_t));
        memcpy(r->ctx_ids[i], ids, (size_t)nt * sizeof(int32_t));
        r->n_ctx[i] = nt;
    }
    plm_encoding_free(&e);
    if (rc != 0) return -1;
    plm_lm_request *req = plm_calloc((size_t)n * L + 1, sizeof *req);
    for (int i = 0; i < n; i++)
        for (int l = 0; l < L; l++)
            req[(size_t)i * L + l] = (plm_lm_request){r->ctx_ids[i], r->n_ctx[i], p->verb_ids[l], p->verb_len[l], 0, 0};
    rc = plm_lm_score(m, req, n * L, o->batch_size, o->progress);
    if (rc == 0)
        for (int i = 0; i < n; i++) {
            int best = 0;
            for (int l = 0; l < L; l++) {
                double lp = req[(size_t)i * L + l].logprob;
                double s = o->scoring == PLM_PROMPT_SCORE_MEAN ? lp / p->verb_len[l] : lp;
                r->logprob[(size_t)i * L + l] = lp;
                r->score[(size_t)i * L + l] = s;
                if (s > r->score[(size_t)i * L + best]) best = l;
            }
            r->pred[i] = best;
        }
    free(req);
    return rc;
}
