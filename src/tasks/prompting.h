/* prompting.h - zero- and few-shot classification with a causal language model, as
 * GPT-2 and GPT-3 did it: each label has a verbalizer (" negative" / " positive"), the
 * example is written into a template ("{sentence}\nQuestion: Is this sentence positive
 * or negative?\nAnswer:"), and the label whose verbalizer continuation is most likely
 * after the prompt wins. With k > 0 the prompt starts with k solved training examples
 * (template + their verbalizer), separated by a blank line. Owns the parsed template
 * (its text and verbalizers) and the prompts it builds; the scoring is infer/lm_score.h.
 *
 * Templates. Placeholders are {text_a} and {text_b}, or the task's column names
 * ({sentence}, {sentence1}, {question}, ...); "{{" and "}}" are literal braces; "\n",
 * "\t" and "\\" are escapes (so a shell argument can hold a newline). An unknown
 * placeholder, an unclosed brace, {text_b} on a single-sentence task and a template
 * without any text placeholder are errors naming the problem.
 *
 * Verbalizers are one string per label in the task's label order, comma-separated on
 * the command line (" negative, positive": leading spaces are kept, "\," is a comma).
 * The verbalizer is tokenized on its own and appended to the tokenized prompt, as
 * lm-evaluation-harness does (context and continuation encoded separately). A
 * verbalizer that tokenizes to no token is an error.
 *
 * Scores. The default is the summed log-likelihood of the verbalizer's tokens (GPT-2's,
 * and lm-evaluation-harness's "acc"); PLM_PROMPT_SCORE_MEAN divides it by the token count
 * (GPT-3's per-token normalisation, which it used for most tasks). They rank the labels
 * the same when every verbalizer is one token.
 *
 * Demonstrations. For test example i the k demonstrations are drawn from the training
 * set with an RNG seeded by (seed, i): the same seed gives the same prompts whatever the
 * batch size or the subset scored. RANDOM (GPT-3's choice, the default) draws k distinct
 * examples uniformly; BALANCED cycles through the labels in a random order (label counts
 * differ by at most one) and picks uniformly within each label, then shuffles the k.
 *
 * Length. A prompt longer than the model's context loses tokens from its left (the
 * oldest demonstrations first), keeping room for the longest verbalizer; every label is
 * scored after the same context. An empty prompt is conditioned on the end-of-text
 * token, as GPT-2 and lm-evaluation-harness do. */
#ifndef PLM_PROMPTING_H
#define PLM_PROMPTING_H

#include <stdbool.h>
#include <stdint.h>

#include "core/progress.h"
#include "model/model.h"
#include "tasks/datasets.h"
#include "tokenizer/tokenizer.h"

typedef enum { PLM_PROMPT_SCORE_SUM, PLM_PROMPT_SCORE_MEAN } plm_prompt_scoring;
typedef enum { PLM_PROMPT_SAMPLE_RANDOM, PLM_PROMPT_SAMPLE_BALANCED } plm_prompt_sampling;

/* A built-in prompt of a GLUE task (lm-evaluation-harness's GLUE prompts, which follow
 * GPT-3's). Verbalizers are in the task's label order (datasets.h). */
typedef struct {
    const char *task;
    const char *template_text;
    const char *const *verbalizers;
    int n_labels;
} plm_prompt_builtin;

/* The built-in prompt of a task (name as plm_glue_task_find), or NULL (STS-B: a
 * regression task has no label to verbalize). */
const plm_prompt_builtin *plm_prompt_builtin_find(const char *task);
const plm_prompt_builtin *plm_prompt_builtins(int *n);

/* One piece of a parsed template: literal text, or a placeholder (0: text_a, 1: text_b). */
typedef struct {
    char *text; /* literal piece, or NULL for a placeholder */
    int slot;
} plm_prompt_piece;

typedef struct {
    plm_prompt_piece *pieces;
    int n_pieces;
    char **verbalizers; /* n_labels strings */
    int n_labels;
    char *separator; /* between demonstrations; default "\n\n" */
    /* filled by plm_prompt_tokenize_verbalizers */
    int32_t **verb_ids;
    int *verb_len;
} plm_prompt;

/* Parses a template (escapes resolved) and the verbalizers for a task whose text
 * columns are named col_a and col_b (col_b NULL: single sentence). verbalizers is the
 * comma-separated list (with escapes), or NULL when verbs gives them as an array.
 * separator NULL: "\n\n". Returns 0, or -1 with the error set ("--template: ..."). */
int plm_prompt_init(plm_prompt *p, const char *template_text, const char *verbalizers, const char *const *verbs,
                    int n_labels, const char *col_a, const char *col_b, const char *separator);
void plm_prompt_free(plm_prompt *p);

/* Tokenizes each verbalizer; -1 with the error set when one gives no token. */
int plm_prompt_tokenize_verbalizers(plm_prompt *p, const plm_tokenizer *tok);

/* Writes the template filled with example e to out (malloc'd, NUL-terminated). */
char *plm_prompt_render(const plm_prompt *p, const plm_example *e);

/* The k demonstration indices (into train) for test example index, see above. Labels
 * of train must be >= 0. exclude >= 0 is never drawn (the example itself when the test
 * set is the training set). Returns 0, or -1 with the error set (k larger than the
 * training set, or BALANCED with a label that has no example). */
int plm_prompt_sample(const plm_dataset *train, int k, plm_prompt_sampling mode, uint64_t seed, long index, int exclude,
                      int *out);

/* The full prompt text: demonstrations (rendered + their verbalizer + separator), then
 * the rendered example. malloc'd. */
char *plm_prompt_build(const plm_prompt *p, const plm_dataset *train, const int *demos, int k, const plm_example *e);

/* Options and results of scoring a labelled set. */
typedef struct {
    int k;
    plm_prompt_sampling sampling;
    plm_prompt_scoring scoring;
    uint64_t seed;
    int batch_size;         /* sequences per forward pass */
    bool same_set;          /* the test set is the training set: never show an example itself */
    plm_progress *progress; /* NULL: none */
} plm_prompt_opts;

typedef struct {
    int n;
    int *pred;         /* [n] argmax label */
    double *logprob;   /* [n * n_labels] summed log-likelihood of each verbalizer */
    double *score;     /* [n * n_labels] what pred maximises (sum or mean) */
    int **demos;       /* [n][k] demonstration indices into train */
    char **prompts;    /* [n] prompt text */
    int32_t **ctx_ids; /* [n] tokenized prompt after truncation */
    int *n_ctx;
    int *truncated; /* [n] tokens cut from the left */
    long n_truncated;
} plm_prompt_result;

/* Scores every example of test (k = 0: train may be NULL). Returns 0, or -1 with the
 * error set. Ties go to the lower label id. */
int plm_prompt_evaluate(plm_model *m, const plm_tokenizer *tok, const plm_prompt *p, const plm_dataset *test,
                        const plm_dataset *train, const plm_prompt_opts *o, plm_prompt_result *r);
void plm_prompt_result_free(plm_prompt_result *r);

#endif
