/* test_sft.c - plm sft's and plm dpo's data, template, labels and learning (tasks/chat.h,
 * train/sft.h, train/dpo.h):
 *   hostile JSONL: each malformed line is one error naming file:line and the problem;
 *   templates: plain and chatml, token for token with GPT-2's tokenizer (the expected
 *     tokens are Hugging Face tokenizers' of each run of text, written out here), and the
 *     generation prompt equal to the training context of the same conversation;
 *   labels: pre-shifted on the response tokens only, -100 on the prompt, the padding
 *     (right) and the last position; truncation counts; the seeded validation split;
 *   the mask on a model: a prompt-only token after the last response (its own target
 *     and the tokens after it) changes nothing in the loss, a response token does;
 *   learning: a tiny GPT trained by plm_sft_train on "reverse: a b c" -> "c b a" scores
 *     far above the best context-free answer on held-out instructions;
 *   DPO: preference JSONL errors, the loss, rewards and weights on hand-computed numbers
 *     (each loss_type: sigmoid, hinge on both sides of its hinge, ipo on mean log-probs),
 *     and a tiny GPT trained by plm_dpo_train with each loss type to prefer the reversed
 *     answer over the unreversed one ranks held-out pairs far better than the reference it
 *     started from.
 * A missing dataset (GPT-2's vocabulary under $PLM_DATA, default ../shared/data) fails. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "core/common.h"
#include "core/rng.h"
#include "model/model.h"
#include "tasks/chat.h"
#include "test.h"
#include "tokenizer/tokenizer.h"
#include "train/dpo.h"
#include "train/sft.h"

static const char *datadir(void) {
    const char *d = getenv("PLM_DATA");
    return d ? d : "../shared/data";
}

static plm_tokenizer *gpt2(void) {
    char e[512], v[512];
    snprintf(e, sizeof e, "%s/tokenizers/gpt2-encoder.json", datadir());
    snprintf(v, sizeof v, "%s/tokenizers/gpt2-vocab.bpe", datadir());
    return plm_tokenizer_load_gpt2(e, v);
}

/* ---------------------------------------------------------------- hostile input */

static void expect_error(const char *name, const char *text, size_t len, const char *want) {
    plm_chat_set s;
    int rc = plm_chat_parse(&s, "x.jsonl", text, len);
    const char *err = plm_last_error();
    char tn[96];
    snprintf(tn, sizeof tn, "sft_input_%s", name);
    TEST_CHECK(rc == -1 && strstr(err, want) && !strchr(err, '\n') && s.n == 0 && s.items == NULL, tn,
               "rc %d, error \"%s\", want \"%s\"", rc, err, want);
    if (rc == 0) plm_chat_set_free(&s);
}

#define EXPECT_ERROR(name, text, want) expect_error(name, text, sizeof(text) - 1, want)

static void test_hostile(void) {
    EXPECT_ERROR("empty", "", "x.jsonl: no examples");
    EXPECT_ERROR("blank", "\n  \n\r\n", "x.jsonl: no examples");
    EXPECT_ERROR("bad_json", "{\"prompt\": \"a\", \"response\": \"b\"}\n{\"prompt\": \"a\",\n", "x.jsonl:2: bad JSON");
    EXPECT_ERROR("not_object", "[1, 2]\n", "x.jsonl:1: not a JSON object");
    EXPECT_ERROR("no_response", "{\"prompt\": \"a\"}\n", "x.jsonl:1: no field \"response\"");
    EXPECT_ERROR("no_prompt", "\n{\"response\": \"a\"}\n", "x.jsonl:2: no field \"prompt\"");
    EXPECT_ERROR("empty_response", "{\"prompt\": \"a\", \"response\": \"\"}", "x.jsonl:1: \"response\" is empty");
    EXPECT_ERROR("prompt_not_string", "{\"prompt\": 3, \"response\": \"b\"}", "x.jsonl:1: \"prompt\" is not a string");
    EXPECT_ERROR("messages_empty", "{\"messages\": []}", "x.jsonl:1: \"messages\" is not a non-empty array");
    EXPECT_ERROR("messages_not_array", "{\"messages\": \"hi\"}", "x.jsonl:1: \"messages\" is not a non-empty array");
    EXPECT_ERROR("bad_role", "{\"messages\": [{\"role\": \"bot\", \"content\": \"x\"}]}",
                 "x.jsonl:1: messages[0] has role \"bot\"");
    EXPECT_ERROR("no_assistant", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}]}",
                 "x.jsonl:1: no assistant message");
    EXPECT_ERROR("no_content", "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\"}]}",
                 "x.jsonl:1: messages[1] has no \"content\"");
    EXPECT_ERROR("content_not_string", "{\"messages\": [{\"role\": \"assistant\", \"content\": [1]}]}",
                 "x.jsonl:1: messages[0] \"content\" is not a string");
    EXPECT_ERROR("message_not_object", "{\"messages\": [\"hi\"]}", "x.jsonl:1: messages[0] is not an object");
    EXPECT_ERROR("empty_assistant",
                 "{\"messages\": [{\"role\": \"user\", \"content\": \"x\"}, {\"role\": \"assistant\", \"content\": "
                 "\"\"}]}",
                 "x.jsonl:1: messages[1] is an assistant message with empty content");
    EXPECT_ERROR("nul", "{\"prompt\": \"a\", \"response\": \"b\"}\n{\"prompt\": \"a\0\"}\n", "x.jsonl:2: NUL byte");
    EXPECT_ERROR("utf8", "{\"prompt\": \"a\", \"response\": \"b\"}\n\n{\"prompt\": \"\xff\"}\n",
                 "x.jsonl:3: invalid UTF-8");

    static const char good[] = "\xef\xbb\xbf{\"prompt\": \"\", \"response\": \"b\"}\n\n"
                               "{\"messages\": [{\"role\": \"system\", \"content\": \"s\"}, {\"role\": \"user\", "
                               "\"content\": \"u\"}, {\"role\": \"assistant\", \"content\": \"a\"}], \"extra\": 1}\r\n";
    plm_chat_set s;
    int rc = plm_chat_parse(&s, "good.jsonl", good, sizeof good - 1);
    TEST_CHECK(rc == 0 && s.n == 2 && s.items[0].line == 1 && s.items[1].line == 3 && s.items[0].n == 2 &&
                   s.items[0].msgs[0].role == PLM_ROLE_USER && !strcmp(s.items[0].msgs[0].content, "") &&
                   s.items[0].msgs[1].role == PLM_ROLE_ASSISTANT && s.items[1].n == 3 &&
                   s.items[1].msgs[0].role == PLM_ROLE_SYSTEM && !strcmp(s.items[1].msgs[2].content, "a"),
               "sft_input_good", "rc %d n %d (%s)", rc, s.n, rc ? plm_last_error() : "");
    if (rc == 0) plm_chat_set_free(&s);
    plm_chat_set missing;
    TEST_CHECK(plm_chat_read(&missing, "/nonexistent/sft.jsonl") == -1 &&
                   strstr(plm_last_error(), "/nonexistent/sft.jsonl"),
               "sft_input_missing_file", "error \"%s\"", plm_last_error());
}

/* ---------------------------------------------------------------- templates */

/* want[k]: the k-th token's string; a leading '+' marks a trained token. */
static void check_tokens(const char *name, const plm_tokenizer *t, const plm_chat_tokens *ct, const char *const *want,
                         int n) {
    bool ok = ct->n == n;
    int bad = -1;
    for (int k = 0; ok && k < n; k++) {
        bool tr = want[k][0] == '+';
        const char *s = plm_tokenizer_id_to_token(t, ct->ids[k]);
        if (!s || strcmp(s, want[k] + tr) != 0 || ct->train[k] != tr) {
            ok = false;
            bad = k;
        }
    }
    TEST_CHECK(ok, name, "%d tokens (want %d); first difference at %d: got %s%s, want %s", ct->n, n, bad,
               bad >= 0 && ct->train[bad] ? "+" : "", bad >= 0 ? plm_tokenizer_id_to_token(t, ct->ids[bad]) : "-",
               bad >= 0 ? want[bad] : "-");
}

static void test_templates(const plm_tokenizer *t) {
    plm_chat_tokens ct;
    plm_chat_tokens_init(&ct);
    /* {"prompt": "reverse: a b c", "response": "c b a"} */
    plm_chat_msg ex[] = {{PLM_ROLE_USER, "reverse: a b c"}, {PLM_ROLE_ASSISTANT, "c b a"}};
    /* "User: reverse: a b c\nAssistant:" | " c b a" <|endoftext|> */
    static const char *plain1[] = {"User", ":",         "Ġreverse", ":",   "Ġa",  "Ġb",  "Ġc",
                                   "Ċ",    "Assistant", ":",        "+Ġc", "+Ġb", "+Ġa", "+<|endoftext|>"};
    TEST_CHECK(plm_chat_encode(t, PLM_TEMPLATE_PLAIN, ex, 2, false, &ct) == 0, "sft_template_plain_encodes", "%s",
               plm_last_error());
    check_tokens("sft_template_plain_tokens", t, &ct, plain1, (int)PLM_ARRAY_LEN(plain1));
    /* the generation prompt is the training context, token for token */
    plm_chat_tokens gp;
    plm_chat_tokens_init(&gp);
    plm_chat_encode(t, PLM_TEMPLATE_PLAIN, ex, 1, true, &gp);
    TEST_CHECK(gp.n == 10 && !memcmp(gp.ids, ct.ids, 10 * sizeof(int32_t)) && !memchr(gp.train, 1, (size_t)gp.n),
               "sft_template_plain_generation_prompt", "%d tokens", gp.n);

    /* system, two exchanges, a last user turn; chatml */
    plm_chat_msg conv[] = {{PLM_ROLE_SYSTEM, "Be brief."},
                           {PLM_ROLE_USER, "Hi"},
                           {PLM_ROLE_ASSISTANT, "Hello!"},
                           {PLM_ROLE_USER, "Bye"},
                           {PLM_ROLE_ASSISTANT, "Bye."}};
    /* "<|im_start|>system\nBe brief.<|im_end|>\n<|im_start|>user\nHi<|im_end|>\n<|im_start|>assistant\n"
     * | "Hello!<|im_end|>" <|endoftext|> | "\n<|im_start|>user\nBye<|im_end|>\n<|im_start|>assistant\n"
     * | "Bye.<|im_end|>" <|endoftext|> */
    static const char *chatml[] = {"<",
                                   "|",
                                   "im",
                                   "_",
                                   "start",
                                   "|",
                                   ">",
                                   "system",
                                   "Ċ",
                                   "Be",
                                   "Ġbrief",
                                   ".<",
                                   "|",
                                   "im",
                                   "_",
                                   "end",
                                   "|",
                                   ">",
                                   "Ċ",
                                   "<",
                                   "|",
                                   "im",
                                   "_",
                                   "start",
                                   "|",
                                   ">",
                                   "user",
                                   "Ċ",
                                   "Hi",
                                   "<",
                                   "|",
                                   "im",
                                   "_",
                                   "end",
                                   "|",
                                   ">",
                                   "Ċ",
                                   "<",
                                   "|",
                                   "im",
                                   "_",
                                   "start",
                                   "|",
                                   ">",
                                   "ass",
                                   "istant",
                                   "Ċ",
                                   "+Hello",
                                   "+!",
                                   "+<",
                                   "+|",
                                   "+im",
                                   "+_",
                                   "+end",
                                   "+|",
                                   "+>",
                                   "+<|endoftext|>",
                                   "Ċ",
                                   "<",
                                   "|",
                                   "im",
                                   "_",
                                   "start",
                                   "|",
                                   ">",
                                   "user",
                                   "Ċ",
                                   "By",
                                   "e",
                                   "<",
                                   "|",
                                   "im",
                                   "_",
                                   "end",
                                   "|",
                                   ">",
                                   "Ċ",
                                   "<",
                                   "|",
                                   "im",
                                   "_",
                                   "start",
                                   "|",
                                   ">",
                                   "ass",
                                   "istant",
                                   "Ċ",
                                   "+By",
                                   "+e",
                                   "+.<",
                                   "+|",
                                   "+im",
                                   "+_",
                                   "+end",
                                   "+|",
                                   "+>",
                                   "+<|endoftext|>"};
    ct.n = 0;
    TEST_CHECK(plm_chat_encode(t, PLM_TEMPLATE_CHATML, conv, 5, false, &ct) == 0, "sft_template_chatml_encodes", "%s",
               plm_last_error());
    check_tokens("sft_template_chatml_tokens", t, &ct, chatml, (int)PLM_ARRAY_LEN(chatml));
    gp.n = 0;
    plm_chat_encode(t, PLM_TEMPLATE_CHATML, conv, 2, true, &gp);
    TEST_CHECK(gp.n == 47 && !memcmp(gp.ids, ct.ids, 47 * sizeof(int32_t)) && !memchr(gp.train, 1, (size_t)gp.n),
               "sft_template_chatml_generation_prompt", "%d tokens", gp.n);
    /* plain with a system message, both exchanges */
    static const char *plain2[] = {"System",  ":",         "ĠBe",
                                   "Ġbrief",  ".",         "Ċ",
                                   "User",    ":",         "ĠHi",
                                   "Ċ",       "Assistant", ":",
                                   "+ĠHello", "+!",        "+<|endoftext|>",
                                   "User",    ":",         "ĠBye",
                                   "Ċ",       "Assistant", ":",
                                   "+ĠBye",   "+.",        "+<|endoftext|>"};
    ct.n = 0;
    plm_chat_encode(t, PLM_TEMPLATE_PLAIN, conv, 5, false, &ct);
    check_tokens("sft_template_plain_multiturn_tokens", t, &ct, plain2, (int)PLM_ARRAY_LEN(plain2));
    plm_chat_tokens_free(&gp);
    plm_chat_tokens_free(&ct);
    plm_chat_template tt;
    TEST_CHECK(plm_chat_template_of("chatml", &tt) == 0 && tt == PLM_TEMPLATE_CHATML &&
                   plm_chat_template_of("plain", &tt) == 0 && tt == PLM_TEMPLATE_PLAIN &&
                   plm_chat_template_of("llama", &tt) == -1,
               "sft_template_names", "parse");
}

/* ---------------------------------------------------------------- labels */

static void test_labels(void) {
    plm_sft_data d;
    plm_sft_data_init(&d);
    /* example 0: 3 prompt + 3 response tokens; 1: 2 + 1; 2: 6 + 3, cut at 7 */
    int32_t a[] = {10, 11, 12, 20, 21, 22}, b[] = {30, 31, 40}, c[] = {50, 51, 52, 53, 54, 55, 60, 61, 62};
    uint8_t ta[] = {0, 0, 0, 1, 1, 1}, tb[] = {0, 0, 1}, tc[] = {0, 0, 0, 0, 0, 0, 1, 1, 1};
    plm_sft_data_add(&d, a, ta, 6, 7, 1);
    plm_sft_data_add(&d, b, tb, 3, 7, 2);
    plm_sft_data_add(&d, c, tc, 9, 7, 3);
    TEST_CHECK(d.n == 3 && d.truncated == 1 && d.no_target == 0 && d.max_len == 7 && d.targets == 3 + 1 + 1,
               "sft_data_counts", "n %d truncated %d no_target %d max_len %d targets %ld", d.n, d.truncated,
               d.no_target, d.max_len, d.targets);
    /* a response cut away entirely */
    int32_t e[] = {1, 2, 3, 4};
    uint8_t te[] = {0, 0, 0, 1};
    plm_sft_data_add(&d, e, te, 4, 3, 4);
    TEST_CHECK(d.truncated == 2 && d.no_target == 1 && d.targets == 5, "sft_data_response_cut_away",
               "truncated %d no_target %d", d.truncated, d.no_target);
    int rows[] = {1, 0, 2};
    plm_sft_batch bb = {0};
    plm_batch out;
    plm_sft_collate(&d, rows, 3, 99, &bb, &out);
    const int T = 7, N = 3 * T;
    static const int32_t want_ids[] = {30, 31, 40, 99, 99, 99, 99, 10, 11, 12, 20,
                                       21, 22, 99, 50, 51, 52, 53, 54, 55, 60};
    static const int32_t want_lab[] = {-100, 40,   -100, -100, -100, -100, -100, -100, -100, 20,  21,
                                       22,   -100, -100, -100, -100, -100, -100, -100, 60,   -100};
    static const uint8_t want_mask[] = {1, 1, 1, 0, 0, 0, 0, 1, 1, 1, 1, 1, 1, 0, 1, 1, 1, 1, 1, 1, 1};
    bool ok = out.B == 3 && out.T == T && out.causal && out.token_type_ids == NULL;
    for (int i = 0; ok && i < N; i++)
        ok = out.input_ids[i] == want_ids[i] && out.labels[i] == want_lab[i] && out.attention_mask[i] == want_mask[i];
    TEST_CHECK(ok, "sft_collate_labels_padding", "batch %dx%d differs from the hand-written one", out.B, out.T);
    /* reserved for [3, max_len] up front (as plm_sft_train does), a short batch then the
     * longest one reuse the same memory: no training step allocates */
    plm_sft_batch rb = {0};
    plm_sft_batch_reserve(&rb, (size_t)3 * d.max_len);
    const int32_t *ids0 = rb.ids;
    size_t cap0 = rb.cap;
    int one = 1;
    plm_sft_collate(&d, &one, 1, 99, &rb, &out);
    plm_sft_collate(&d, rows, 3, 99, &rb, &out);
    TEST_CHECK(rb.ids == ids0 && rb.cap == cap0 && out.input_ids == ids0 && out.T == T, "sft_batch_reserved",
               "the batch buffer moved (cap %zu -> %zu)", cap0, rb.cap);
    plm_sft_batch_free(&rb);
    /* the split: 25% of 4 is one example, drawn by the seed, file order kept */
    plm_sft_data v;
    int moved = plm_sft_split(&d, 0.25, 7, &v);
    bool order = d.n == 3 && v.n == 1;
    for (int i = 1; order && i < d.n; i++) order = d.line[i] > d.line[i - 1];
    long tg = d.targets + v.targets;
    TEST_CHECK(moved == 1 && order && tg == 5 && d.truncated == 2, "sft_split", "moved %d, n %d + %d, targets %ld",
               moved, d.n, v.n, tg);
    plm_sft_data d2, v2;
    plm_sft_data_init(&d2);
    plm_sft_data_add(&d2, a, ta, 6, 7, 1);
    plm_sft_data_add(&d2, b, tb, 3, 7, 2);
    plm_sft_data_add(&d2, c, tc, 9, 7, 3);
    plm_sft_data_add(&d2, e, te, 4, 3, 4);
    plm_sft_split(&d2, 0.25, 7, &v2);
    TEST_CHECK(v2.n == 1 && v2.line[0] == v.line[0], "sft_split_seeded", "line %d vs %d", v2.n ? v2.line[0] : -1,
               v.line[0]);
    plm_sft_data_free(&d2);
    plm_sft_data_free(&v2);
    plm_sft_data_free(&v);
    plm_sft_batch_free(&bb);
    plm_sft_data_free(&d);
}

/* ---------------------------------------------------------------- the mask on a model */

static double conv_loss(plm_model *m, const plm_tokenizer *t, const plm_chat_msg *msgs, int n, int *targets) {
    plm_chat_tokens ct;
    plm_chat_tokens_init(&ct);
    plm_chat_encode(t, PLM_TEMPLATE_PLAIN, msgs, n, false, &ct);
    plm_sft_data d;
    plm_sft_data_init(&d);
    plm_sft_data_add(&d, ct.ids, ct.train, ct.n, 64, 1);
    int row = 0;
    plm_sft_batch bb = {0};
    plm_batch b;
    plm_sft_collate(&d, &row, 1, 0, &bb, &b);
    plm_ce_result r = plm_model_forward(m, &b, false, 1.0f);
    *targets = r.count;
    plm_sft_batch_free(&bb);
    plm_sft_data_free(&d);
    plm_chat_tokens_free(&ct);
    return r.loss_sum / r.count;
}

static void test_mask_on_model(const plm_tokenizer *t) {
    plm_config c;
    plm_config_default(&c, PLM_ARCH_GPT2);
    c.vocab_size = plm_tokenizer_vocab_size(t);
    c.hidden_size = 16;
    c.num_attention_heads = 2;
    c.num_hidden_layers = 1;
    c.intermediate_size = 32;
    c.max_position_embeddings = 64;
    c.eos_token_id = plm_tokenizer_special(t, PLM_SPECIAL_EOS);
    plm_model *m = plm_model_create(&c, 7);
    if (!m || plm_model_reserve(m, 1, 64) != 0) {
        TEST_CHECK(false, "sft_mask_model", "%s", plm_last_error());
        plm_model_free(m);
        return;
    }
    /* a last user turn is context only: its tokens (and the targets they are) cannot
     * change the loss of the responses before them; a response token does */
    plm_chat_msg base[] = {{PLM_ROLE_USER, "reverse: a b c"}, {PLM_ROLE_ASSISTANT, "c b a"}, {PLM_ROLE_USER, "yes"}};
    plm_chat_msg other[] = {{PLM_ROLE_USER, "reverse: a b c"}, {PLM_ROLE_ASSISTANT, "c b a"}, {PLM_ROLE_USER, "no"}};
    plm_chat_msg resp[] = {{PLM_ROLE_USER, "reverse: a b c"}, {PLM_ROLE_ASSISTANT, "c b b"}, {PLM_ROLE_USER, "yes"}};
    int n0, n1, n2;
    double l0 = conv_loss(m, t, base, 3, &n0), l1 = conv_loss(m, t, other, 3, &n1), l2 = conv_loss(m, t, resp, 3, &n2);
    TEST_CHECK(n0 == 4 && n1 == 4 && n2 == 4, "sft_mask_target_count", "%d %d %d labelled tokens, want 4 (3 + EOS)", n0,
               n1, n2);
    TEST_CHECK(l0 == l1, "sft_mask_prompt_token_changes_nothing", "loss %.9g vs %.9g", l0, l1);
    TEST_CHECK(fabs(l0 - l2) > 1e-4, "sft_mask_response_token_counts", "loss %.9g vs %.9g", l0, l2);
    plm_model_free(m);
}

/* ---------------------------------------------------------------- learning */

/* "reverse: w1 .. wk" -> "wk .. w1", letters a..h, k in 3..4. */
static void write_reversal(const char *path, int n, uint64_t seed, FILE *text) {
    FILE *f = fopen(path, "w");
    plm_rng r;
    plm_rng_seed(&r, seed, 1);
    for (int i = 0; i < n; i++) {
        int k = 3 + (int)plm_rng_below(&r, 2);
        char w[8];
        for (int j = 0; j < k; j++) w[j] = (char)('a' + plm_rng_below(&r, 8));
        char p[64] = "reverse:", a[64] = "";
        for (int j = 0; j < k; j++) {
            size_t lp = strlen(p), la = strlen(a);
            snprintf(p + lp, sizeof p - lp, " %c", w[j]);
            snprintf(a + la, sizeof a - la, "%s%c", j ? " " : "", w[k - 1 - j]);
        }
        fprintf(f, "{\"prompt\": \"%s\", \"response\": \"%s\"}\n", p, a);
        if (text) fprintf(text, "User: %s\nAssistant: %s\n", p, a);
    }
    fclose(f);
}

static void test_learning(void) {
    char dir[] = "/tmp/plm-sft-XXXXXX";
    if (!mkdtemp(dir)) {
        TEST_CHECK(false, "sft_learns", "mkdtemp failed");
        return;
    }
    char trp[256], vap[256], txp[256], out[256];
    snprintf(trp, sizeof trp, "%s/train.jsonl", dir);
    snprintf(vap, sizeof vap, "%s/valid.jsonl", dir);
    snprintf(txp, sizeof txp, "%s/text.txt", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    FILE *text = fopen(txp, "w");
    write_reversal(trp, 3000, 1, text);
    write_reversal(vap, 300, 2, NULL);
    fclose(text);
    /* a byte-level BPE of this text, <|endoftext|> its EOS */
    plm_tokenizer_train_opts to;
    plm_tokenizer_train_opts_default(&to);
    const char *special[] = {"<|endoftext|>"};
    to.vocab_size = 300;
    to.special_tokens = special;
    to.n_special = 1;
    to.num_threads = 1;
    const char *files[] = {txp};
    plm_tokenizer *tok = plm_tokenizer_train_bpe(files, 1, &to);
    plm_chat_set trs, vas;
    plm_sft_data tr, va;
    int rc = plm_chat_read(&trs, trp) | plm_chat_read(&vas, vap);
    rc |= plm_sft_encode(&tr, &trs, trp, tok, PLM_TEMPLATE_PLAIN, 32) |
          plm_sft_encode(&va, &vas, vap, tok, PLM_TEMPLATE_PLAIN, 32);
    TEST_CHECK(rc == 0 && tr.n == 3000 && va.n == 300 && tr.truncated == 0, "sft_learning_data", "rc %d: %s", rc,
               plm_last_error());
    plm_config c;
    plm_config_default(&c, PLM_ARCH_GPT2);
    c.vocab_size = plm_tokenizer_vocab_size(tok);
    c.hidden_size = 64;
    c.num_attention_heads = 4;
    c.num_hidden_layers = 2;
    c.intermediate_size = 128;
    c.max_position_embeddings = 32;
    c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.0f;
    c.eos_token_id = plm_tokenizer_special(tok, PLM_SPECIAL_EOS);
    plm_model *m = plm_model_create(&c, 3);
    plm_ft_args a;
    plm_ft_args_default(&a);
    a.output_dir = out;
    a.train_batch_size = 32;
    a.eval_batch_size = 64;
    a.max_steps = test_sanitized() ? 20 : 300;
    a.opt = plm_adamw_defaults(3e-3f);
    a.opt.weight_decay = 0.0f;
    a.warmup_ratio = 0.05f;
    a.eval_steps = a.max_steps;
    a.max_seq_length = 32;
    a.quiet = true;
    plm_ft_scores best = {0};
    double t0 = plm_now();
    int trc = plm_sft_train(m, tok, &tr, &va, PLM_TEMPLATE_PLAIN, &a, &best);
    double dt = plm_now() - t0;
    /* the best context-free answer on the held-out responses themselves (an oracle
     * unigram: their most frequent token) */
    int V = c.vocab_size;
    long *count = plm_calloc((size_t)V, sizeof(long)), total = 0, top = 0;
    for (int i = 0; i < va.n; i++)
        for (size_t k = va.off[i] + 1; k < va.off[i + 1]; k++)
            if (va.train[k]) {
                count[va.ids[k]]++;
                total++;
            }
    for (int v = 0; v < V; v++) top = PLM_MAX(top, count[v]);
    double unigram = (double)top / (double)total, acc = best.value[1];
    printf("# sft reversal: %ld steps in %.1f s: held-out response-token accuracy %.4f, perplexity %.3f; best "
           "context-free %.4f, training majority token %.4f\n",
           a.max_steps, dt, acc, best.value[0], unigram, best.value[2]);
    TEST_CHECK(trc == 0, "sft_learning_runs", "%s", plm_last_error());
    if (!test_sanitized())
        TEST_CHECK(acc > unigram + 0.3 && acc > 2 * unigram, "sft_learns_beats_unigram",
                   "accuracy %.4f vs best context-free %.4f", acc, unigram);
    char path[300];
    snprintf(path, sizeof path, "%s/config.json", out);
    TEST_CHECK(access(path, R_OK) == 0, "sft_learning_saves_model", "%s missing", path);
    free(count);
    plm_model_free(m);
    plm_sft_data_free(&tr);
    plm_sft_data_free(&va);
    plm_chat_set_free(&trs);
    plm_chat_set_free(&vas);
    plm_tokenizer_free(tok);
    plm_remove_tree(dir);
}

/* ---------------------------------------------------------------- DPO */

static void expect_pref_error(const char *name, const char *text, size_t len, const char *want) {
    plm_chat_set c, r;
    int rc = plm_chat_parse_preferences(&c, &r, "p.jsonl", text, len);
    const char *err = plm_last_error();
    char tn[96];
    snprintf(tn, sizeof tn, "dpo_input_%s", name);
    TEST_CHECK(rc == -1 && strstr(err, want) && !strchr(err, '\n') && c.n == 0 && r.n == 0, tn,
               "rc %d, error \"%s\", want \"%s\"", rc, err, want);
    if (rc == 0) {
        plm_chat_set_free(&c);
        plm_chat_set_free(&r);
    }
}

#define EXPECT_PREF_ERROR(name, text, want) expect_pref_error(name, text, sizeof(text) - 1, want)

static void test_dpo_input_and_loss(void) {
    EXPECT_PREF_ERROR("empty", "", "p.jsonl: no examples");
    EXPECT_PREF_ERROR("bad_json", "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": \"c\"}\n{",
                      "p.jsonl:2: bad JSON");
    EXPECT_PREF_ERROR("no_rejected", "{\"prompt\": \"a\", \"chosen\": \"b\"}",
                      "p.jsonl:1: no field \"rejected\" (want {\"prompt\", \"chosen\", \"rejected\"})");
    EXPECT_PREF_ERROR("empty_chosen", "{\"prompt\": \"a\", \"chosen\": \"\", \"rejected\": \"c\"}",
                      "p.jsonl:1: \"chosen\" is empty");
    EXPECT_PREF_ERROR("rejected_not_string", "{\"prompt\": \"a\", \"chosen\": \"b\", \"rejected\": 1}",
                      "p.jsonl:1: \"rejected\" is not a string");
    static const char good[] = "{\"prompt\": \"p\", \"chosen\": \"c\", \"rejected\": \"r\"}\n\n"
                               "{\"prompt\": \"q\", \"chosen\": \"d\", \"rejected\": \"s\"}\n";
    plm_chat_set c, r;
    int rc = plm_chat_parse_preferences(&c, &r, "p.jsonl", good, sizeof good - 1);
    TEST_CHECK(rc == 0 && c.n == 2 && r.n == 2 && c.items[1].line == 3 && !strcmp(c.items[1].msgs[0].content, "q") &&
                   c.items[1].msgs[0].role == PLM_ROLE_USER && !strcmp(c.items[1].msgs[1].content, "d") &&
                   c.items[1].msgs[1].role == PLM_ROLE_ASSISTANT && !strcmp(r.items[1].msgs[1].content, "s"),
               "dpo_input_good", "rc %d", rc);
    if (rc == 0) {
        plm_chat_set_free(&c);
        plm_chat_set_free(&r);
    }
    /* logp (-1, -3), ref (-2, -2), beta 0.5: rewards 0.5 and -0.5, z = 1,
     * loss log(1 + e^-1) = 0.31326168751822286, weights +-0.5 sigmoid(-1) */
    double logp[4] = {-1, -3, -2, -2}, ref[4] = {-2, -2, -2, -2};
    plm_dpo_stats st;
    float w[4];
    plm_dpo_loss(logp, ref, NULL, 1, 0.5f, PLM_DPO_SIGMOID, &st, w);
    TEST_CHECK(fabs(st.loss - 0.31326168751822286) < 1e-12 && st.chosen == 0.5 && st.rejected == -0.5 &&
                   st.accuracy == 1.0 && st.margin == 1.0 && st.logp_chosen == -1 && st.logp_rejected == -3 &&
                   fabsf(w[0] - 0.13447071068499755f) < 1e-7f && w[1] == -w[0],
               "dpo_loss_hand_computed", "loss %.17g weights %g %g", st.loss, w[0], w[1]);
    /* two pairs: means; the second pair (policy = reference) has z = 0, loss log 2 */
    plm_dpo_loss(logp, ref, NULL, 2, 0.5f, PLM_DPO_SIGMOID, &st, w);
    TEST_CHECK(fabs(st.loss - 0.5 * (0.31326168751822286 + log(2.0))) < 1e-12 && st.accuracy == 0.5 &&
                   fabsf(w[2] - 0.125f) < 1e-7f && fabsf(w[0] - 0.5f * 0.13447071068499755f) < 1e-7f,
               "dpo_loss_mean_over_pairs", "loss %.17g, accuracy %g, w %g %g", st.loss, st.accuracy, w[0], w[2]);
    /* hinge, z = 2: beta 0.25 -> loss 1 - 0.5, weights +-beta; beta 0.5 -> exactly at the
     * hinge, loss 0 and no gradient (torch.relu's gradient at 0) */
    plm_dpo_loss(logp, ref, NULL, 1, 0.25f, PLM_DPO_HINGE, &st, w);
    TEST_CHECK(st.loss == 0.5 && w[0] == 0.25f && w[1] == -0.25f && st.margin == 0.5, "dpo_hinge_hand_computed",
               "loss %.17g weights %g %g", st.loss, w[0], w[1]);
    plm_dpo_loss(logp, ref, NULL, 1, 0.5f, PLM_DPO_HINGE, &st, w);
    TEST_CHECK(st.loss == 0.0 && w[0] == 0.0f && w[1] == 0.0f, "dpo_hinge_at_the_hinge", "loss %.17g weights %g %g",
               st.loss, w[0], w[1]);
    /* ipo on the mean log-probs (responses of 2 and 4 tokens): (-1 + 2) / 2 - (-3 + 2) / 4,
     * z = 0.75; beta 0.5: loss (0.75 - 1)^2, d/dz = -0.5, weights 0.5 / 2 and -0.5 / 4 */
    int ntok[2] = {2, 4};
    plm_dpo_loss(logp, ref, ntok, 1, 0.5f, PLM_DPO_IPO, &st, w);
    TEST_CHECK(st.loss == 0.0625 && w[0] == 0.25f && w[1] == -0.125f && st.chosen == 0.25 && st.rejected == -0.125 &&
                   st.logp_chosen == -0.5 && st.logp_rejected == -0.75,
               "dpo_ipo_hand_computed", "loss %.17g weights %g %g rewards %g %g", st.loss, w[0], w[1], st.chosen,
               st.rejected);
    plm_dpo_loss_type lt;
    TEST_CHECK(plm_dpo_loss_of("ipo", &lt) == 0 && lt == PLM_DPO_IPO && plm_dpo_loss_of("kto", &lt) == -1 &&
                   !strcmp(plm_dpo_loss_name(PLM_DPO_HINGE), "hinge"),
               "dpo_loss_type_names", "parse failed");
}

/* reversal preferences: chosen the reversed letters, rejected them unreversed */
static void write_preferences(const char *path, int n, uint64_t seed) {
    FILE *f = fopen(path, "w");
    plm_rng r;
    plm_rng_seed(&r, seed, 1);
    for (int i = 0; i < n;) {
        int k = 3 + (int)plm_rng_below(&r, 2);
        char w[8];
        for (int j = 0; j < k; j++) w[j] = (char)('a' + plm_rng_below(&r, 8));
        bool pal = true;
        for (int j = 0; j < k; j++) pal &= w[j] == w[k - 1 - j];
        if (pal) continue;
        char p[64] = "reverse:", a[64] = "", b[64] = "";
        for (int j = 0; j < k; j++) {
            size_t lp = strlen(p), la = strlen(a), lb = strlen(b);
            snprintf(p + lp, sizeof p - lp, " %c", w[j]);
            snprintf(a + la, sizeof a - la, "%s%c", j ? " " : "", w[k - 1 - j]);
            snprintf(b + lb, sizeof b - lb, "%s%c", j ? " " : "", w[j]);
        }
        fprintf(f, "{\"prompt\": \"%s\", \"chosen\": \"%s\", \"rejected\": \"%s\"}\n", p, a, b);
        i++;
    }
    fclose(f);
}

/* The share of pairs whose chosen response is more likely under m than the rejected one. */
static double preference_accuracy(plm_model *m, const plm_dpo_data *d, int32_t pad) {
    double *lp = plm_malloc((size_t)d->seqs.n * sizeof(double));
    plm_dpo_logps(m, &d->seqs, 64, pad, lp);
    int ok = 0;
    for (int i = 0; i < d->n; i++) ok += lp[2 * i] > lp[2 * i + 1];
    free(lp);
    return (double)ok / d->n;
}

static void test_dpo_learning(plm_dpo_loss_type type, float beta) {
    const char *sfx = type == PLM_DPO_SIGMOID ? "" : type == PLM_DPO_HINGE ? "_hinge" : "_ipo";
    char tn[3][64];
    snprintf(tn[0], sizeof tn[0], "dpo_learning_runs%s", sfx);
    snprintf(tn[1], sizeof tn[1], "dpo_learns_preference%s", sfx);
    snprintf(tn[2], sizeof tn[2], "dpo_eval_rewards%s", sfx);
    char dir[] = "/tmp/plm-dpo-XXXXXX";
    if (!mkdtemp(dir)) {
        TEST_CHECK(false, "dpo_learns", "mkdtemp failed");
        return;
    }
    char trp[256], vap[256], txp[256], out[256];
    snprintf(trp, sizeof trp, "%s/train.jsonl", dir);
    snprintf(vap, sizeof vap, "%s/valid.jsonl", dir);
    snprintf(txp, sizeof txp, "%s/text.txt", dir);
    snprintf(out, sizeof out, "%s/out", dir);
    FILE *text = fopen(txp, "w");
    fprintf(text, "User: reverse: a b c d e f g h\nAssistant: h g f e d c b a\n");
    fclose(text);
    write_preferences(trp, 1000, 3);
    write_preferences(vap, 200, 4);
    plm_tokenizer_train_opts to;
    plm_tokenizer_train_opts_default(&to);
    const char *special[] = {"<|endoftext|>"};
    to.vocab_size = 300;
    to.special_tokens = special;
    to.n_special = 1;
    to.num_threads = 1;
    const char *files[] = {txp};
    plm_tokenizer *tok = plm_tokenizer_train_bpe(files, 1, &to);
    plm_chat_set tc, tr, vc, vr;
    plm_dpo_data train, valid;
    int rc = plm_chat_read_preferences(&tc, &tr, trp) | plm_chat_read_preferences(&vc, &vr, vap);
    rc |= plm_dpo_encode(&train, &tc, &tr, trp, tok, PLM_TEMPLATE_PLAIN, 32);
    rc |= plm_dpo_encode(&valid, &vc, &vr, vap, tok, PLM_TEMPLATE_PLAIN, 32);
    TEST_CHECK(rc == 0 && train.n == 1000 && valid.n == 200 && train.seqs.n == 2000, "dpo_learning_data", "rc %d: %s",
               rc, plm_last_error());
    plm_config c;
    plm_config_default(&c, PLM_ARCH_GPT2);
    c.vocab_size = plm_tokenizer_vocab_size(tok);
    c.hidden_size = 64;
    c.num_attention_heads = 4;
    c.num_hidden_layers = 2;
    c.intermediate_size = 128;
    c.max_position_embeddings = 32;
    c.hidden_dropout_prob = c.attention_probs_dropout_prob = 0.0f;
    c.eos_token_id = plm_tokenizer_special(tok, PLM_SPECIAL_EOS);
    plm_model *m = plm_model_create(&c, 5);
    plm_model_reserve(m, 64, 32);
    int32_t pad = plm_sft_pad_id(m, tok);
    /* the reference: the starting model itself */
    train.ref_logp = plm_malloc((size_t)train.seqs.n * sizeof(double));
    valid.ref_logp = plm_malloc((size_t)valid.seqs.n * sizeof(double));
    plm_dpo_logps(m, &train.seqs, 64, pad, train.ref_logp);
    plm_dpo_logps(m, &valid.seqs, 64, pad, valid.ref_logp);
    double before = preference_accuracy(m, &valid, pad);
    plm_ft_args a;
    plm_ft_args_default(&a);
    a.output_dir = out;
    a.train_batch_size = 16;
    a.eval_batch_size = 32;
    a.max_steps = test_sanitized() ? 10 : 150;
    a.opt = plm_adamw_defaults(1e-3f);
    a.opt.weight_decay = 0.0f;
    a.warmup_ratio = 0.0f;
    a.eval_steps = a.max_steps;
    a.max_seq_length = 32;
    a.quiet = true;
    plm_ft_scores best = {0};
    double t0 = plm_now();
    int trc = plm_dpo_train(m, tok, &train, &valid, beta, type, PLM_TEMPLATE_PLAIN, &a, &best);
    double dt = plm_now() - t0, after = preference_accuracy(m, &valid, pad);
    printf("# dpo reversal, %s loss, beta %g: %ld steps in %.1f s: held-out pairs ranked right %.3f (reference "
           "%.3f); eval reward accuracy %.3f, margin %.3f\n",
           plm_dpo_loss_name(type), beta, a.max_steps, dt, after, before, best.value[0], best.value[1]);
    TEST_CHECK(trc == 0, tn[0], "%s", plm_last_error());
    if (!test_sanitized()) {
        TEST_CHECK(after > before + 0.3 && after > 0.9, tn[1],
                   "held-out pairs ranked right %.3f, by the reference %.3f", after, before);
        TEST_CHECK(best.value[0] > 0.9 && best.value[1] > 0, tn[2], "reward accuracy %.3f margin %.3f", best.value[0],
                   best.value[1]);
    }
    plm_model_free(m);
    plm_dpo_data_free(&train);
    plm_dpo_data_free(&valid);
    plm_chat_set_free(&tc);
    plm_chat_set_free(&tr);
    plm_chat_set_free(&vc);
    plm_chat_set_free(&vr);
    plm_tokenizer_free(tok);
    plm_remove_tree(dir);
}

/* An evaluation without a counted token has NaN scores: metrics.jsonl must stay JSON
 * (null, not printf's "nan"). */
static void test_log_nan(void) {
    FILE *f = tmpfile();
    const char *names[3] = {"perplexity", "token_accuracy", "majority_token_accuracy"};
    double v[3] = {NAN, 0.5, INFINITY};
    plm_ft_log_scores(f, 7, 0.5, &(plm_ft_named_scores){NAN, 3, names, v, 4});
    char line[512] = "";
    rewind(f);
    if (!fgets(line, sizeof line, f)) line[0] = 0;
    fclose(f);
    cJSON *o = cJSON_Parse(line);
    TEST_CHECK(o && cJSON_IsNull(cJSON_GetObjectItem(o, "eval_loss")) &&
                   cJSON_IsNull(cJSON_GetObjectItem(o, "eval_perplexity")) &&
                   cJSON_GetObjectItem(o, "eval_token_accuracy")->valuedouble == 0.5 &&
                   cJSON_IsNull(cJSON_GetObjectItem(o, "eval_majority_token_accuracy")) &&
                   cJSON_GetObjectItem(o, "eval_samples")->valueint == 4,
               "sft_metrics_nan_is_json_null", "line %s", line);
    cJSON_Delete(o);
}

int main(void) {
    test_log_nan();
    test_hostile();
    test_labels();
    plm_tokenizer *t = gpt2();
    TEST_CHECK(t != NULL, "sft_gpt2_tokenizer", "%s (set PLM_DATA)", plm_last_error());
    if (t) {
        test_templates(t);
        test_mask_on_model(t);
        plm_tokenizer_free(t);
    }
    test_learning();
    test_dpo_input_and_loss();
    test_dpo_learning(PLM_DPO_SIGMOID, 0.1f);
    test_dpo_learning(PLM_DPO_HINGE, 0.1f);
    test_dpo_learning(PLM_DPO_IPO, 0.1f);
    TEST_EXIT();
}
