/* chat.c - see chat.h */
#include "chat.h"

#include <cjson/cJSON.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "data/corpus.h"

const char *plm_chat_template_name(plm_chat_template t) { return t == PLM_TEMPLATE_CHATML ? "chatml" : "plain"; }

int plm_chat_template_of(const char *name, plm_chat_template *out) {
    if (!strcmp(name, "plain"))
        *out = PLM_TEMPLATE_PLAIN;
    else if (!strcmp(name, "chatml"))
        *out = PLM_TEMPLATE_CHATML;
    else
        return -1;
    return 0;
}

/* ---------------------------------------------------------------- reading */

static const char *role_names[] = {"system", "user", "assistant"};
#define SFT_FORMAT "{\"prompt\", \"response\"} or {\"messages\": [...]}"
#define DPO_FORMAT "{\"prompt\", \"chosen\", \"rejected\"}"

void plm_chat_set_free(plm_chat_set *s) {
    for (int i = 0; i < s->n; i++) {
        for (int k = 0; k < s->items[i].n; k++) free(s->items[i].msgs[k].content);
        free(s->items[i].msgs);
    }
    free(s->items);
    memset(s, 0, sizeof *s);
}

static void add_chat(plm_chat_set *s, plm_chat *c) {
    if (s->n == s->cap) {
        s->cap = s->cap ? 2 * s->cap : 64;
        s->items = plm_realloc(s->items, (size_t)s->cap * sizeof *s->items);
    }
    s->items[s->n++] = *c;
}

static int line_of(const char *buf, size_t pos) {
    int line = 1;
    for (size_t i = 0; i < pos; i++) line += buf[i] == '\n';
    return line;
}

/* The string field key of o, or NULL with the error set. */
static const char *str_field(const cJSON *o, const char *key, const char *name, int line, const char *where,
                             const char *want) {
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!v) {
        if (where)
            plm_error("%s:%d: %shas no \"%s\"", name, line, where, key);
        else
            plm_error("%s:%d: no field \"%s\" (want %s)", name, line, key, want);
        return NULL;
    }
    if (!cJSON_IsString(v)) {
        plm_error("%s:%d: %s\"%s\" is not a string", name, line, where ? where : "", key);
        return NULL;
    }
    return v->valuestring;
}

/* One line's object as a conversation. Returns 0 or -1 (error set). */
static int parse_object(const cJSON *o, const char *name, int line, plm_chat *c) {
    memset(c, 0, sizeof *c);
    c->line = line;
    const cJSON *ms = cJSON_GetObjectItemCaseSensitive(o, "messages");
    if (ms) {
        int n = cJSON_GetArraySize(ms);
        if (!cJSON_IsArray(ms) || n == 0) {
            plm_error("%s:%d: \"messages\" is not a non-empty array", name, line);
            return -1;
        }
        c->msgs = plm_calloc((size_t)n, sizeof *c->msgs);
        bool answered = false;
        for (int k = 0; k < n; k++) {
            const cJSON *m = cJSON_GetArrayItem(ms, k);
            char where[48];
            snprintf(where, sizeof where, "messages[%d] ", k);
            if (!cJSON_IsObject(m)) {
                plm_error("%s:%d: %sis not an object", name, line, where);
                return -1;
            }
            const char *role = str_field(m, "role", name, line, where, NULL), *content = NULL;
            if (!role || !(content = str_field(m, "content", name, line, where, NULL))) return -1;
            int r = -1;
            for (int i = 0; i < 3; i++)
                if (!strcmp(role, role_names[i])) r = i;
            if (r < 0) {
                plm_error("%s:%d: %shas role \"%.40s\": not system, user or assistant", name, line, where, role);
                return -1;
            }
            if (r == PLM_ROLE_ASSISTANT && !*content) {
                plm_error("%s:%d: %sis an assistant message with empty content", name, line, where);
                return -1;
            }
            answered |= r == PLM_ROLE_ASSISTANT;
            c->msgs[k] = (plm_chat_msg){(plm_chat_role)r, plm_strdup(content)};
            c->n = k + 1;
        }
        if (!answered) {
            plm_error("%s:%d: no assistant message: nothing to learn", name, line);
            return -1;
        }
        return 0;
    }
    const char *prompt = str_field(o, "prompt", name, line, NULL, SFT_FORMAT), *response = NULL;
    if (!prompt || !(response = str_field(o, "response", name, line, NULL, SFT_FORMAT))) return -1;
    if (!*response) {
        plm_error("%s:%d: \"response\" is empty: nothing to learn", name, line);
        return -1;
    }
    c->msgs = plm_calloc(2, sizeof *c->msgs);
    c->msgs[0] = (plm_chat_msg){PLM_ROLE_USER, plm_strdup(prompt)};
    c->msgs[1] = (plm_chat_msg){PLM_ROLE_ASSISTANT, plm_strdup(response)};
    c->n = 2;
    return 0;
}

/* Calls each(o, line, ctx) for every non-blank line's JSON object, after checking the
 * bytes. Returns 0, or -1 with the error set (by each() too). */
static int parse_lines(const char *name, const char *buf, size_t len,
                       int (*each)(const cJSON *o, const char *name, int line, void *ctx), void *ctx) {
    const char *nul = memchr(buf, 0, len);
    if (nul) {
        plm_error("%s:%d: NUL byte", name, line_of(buf, (size_t)(nul - buf)));
        return -1;
    }
    long bad = plm_utf8_check(buf, len);
    if (bad >= 0) {
        plm_error("%s:%d: invalid UTF-8 (byte %ld)", name, line_of(buf, (size_t)bad), bad);
        return -1;
    }
    size_t i = len >= 3 && memcmp(buf, "\xef\xbb\xbf", 3) == 0 ? 3 : 0; /* a UTF-8 BOM */
    int line = 0, seen = 0;
    while (i < len) {
        size_t start = i, end = i;
        while (end < len && buf[end] != '\n') end++;
        i = end + 1;
        line++;
        size_t k = start;
        while (k < end && (buf[k] == ' ' || buf[k] == '\t' || buf[k] == '\r')) k++;
        if (k == end) continue;
        cJSON *o = cJSON_ParseWithLength(buf + start, end - start);
        if (!cJSON_IsObject(o)) {
            plm_error("%s:%d: %s", name, line, o ? "not a JSON object" : "bad JSON");
            cJSON_Delete(o);
            return -1;
        }
        int rc = each(o, name, line, ctx);
        cJSON_Delete(o);
        if (rc != 0) return -1;
        seen++;
    }
    if (seen == 0) {
        plm_error("%s: no examples (an empty file?)", name);
        return -1;
    }
    return 0;
}

static int add_conversation(const cJSON *o, const char *name, int line, void *ctx) {
    plm_chat c;
    int rc = parse_object(o, name, line, &c);
    add_chat(ctx, &c); /* freed with the set, also when it failed half-way */
    return rc;
}

int plm_chat_parse(plm_chat_set *out, const char *name, const char *buf, size_t len) {
    memset(out, 0, sizeof *out);
    if (parse_lines(name, buf, len, add_conversation, out) != 0) {
        plm_chat_set_free(out);
        return -1;
    }
    return 0;
}

/* A preference line: the prompt as a user turn, then each response as the assistant's. */
static int add_preference(const cJSON *o, const char *name, int line, void *ctx) {
    plm_chat_set *sets = ctx;
    const char *prompt = str_field(o, "prompt", name, line, NULL, DPO_FORMAT), *chosen = NULL, *rejected = NULL;
    if (!prompt || !(chosen = str_field(o, "chosen", name, line, NULL, DPO_FORMAT)) ||
        !(rejected = str_field(o, "rejected", name, line, NULL, DPO_FORMAT)))
        return -1;
    if (!*chosen || !*rejected) {
        plm_error("%s:%d: \"%s\" is empty", name, line, *chosen ? "rejected" : "chosen");
        return -1;
    }
    const char *resp[2] = {chosen, rejected};
    for (int k = 0; k < 2; k++) {
        plm_chat c = {.msgs = plm_calloc(2, sizeof(plm_chat_msg)), .n = 2, .line = line};
        c.msgs[0] = (plm_chat_msg){PLM_ROLE_USER, plm_strdup(prompt)};
        c.msgs[1] = (plm_chat_msg){PLM_ROLE_ASSISTANT, plm_strdup(resp[k])};
        add_chat(&sets[k], &c);
    }
    return 0;
}

int plm_chat_parse_preferences(plm_chat_set *chosen, plm_chat_set *rejected, const char *name, const char *buf,
                               size_t len) {
    plm_chat_set sets[2] = {{0}, {0}};
    int rc = parse_lines(name, buf, len, add_preference, sets);
    if (rc != 0) {
        plm_chat_set_free(&sets[0]);
        plm_chat_set_free(&sets[1]);
    }
    *chosen = sets[0];
    *rejected = sets[1];
    return rc;
}

int plm_chat_read_preferences(plm_chat_set *chosen, plm_chat_set *rejected, const char *path) {
    memset(chosen, 0, sizeof *chosen);
    memset(rejected, 0, sizeof *rejected);
    size_t len;
    char *buf = plm_read_file(path, &len);
    if (!buf) return -1;
    int rc = plm_chat_parse_preferences(chosen, rejected, path, buf, len);
    free(buf);
    return rc;
}

/* A prompt line: the prompt as one user turn (other fields, a DPO file's responses, are
 * ignored). */
static int add_prompt(const cJSON *o, const char *name, int line, void *ctx) {
    const char *prompt = str_field(o, "prompt", name, line, NULL, "{\"prompt\": ...} per line");
    if (!prompt) return -1;
    plm_chat c = {.msgs = plm_calloc(1, sizeof(plm_chat_msg)), .n = 1, .line = line};
    c.msgs[0] = (plm_chat_msg){PLM_ROLE_USER, plm_strdup(prompt)};
    add_chat(ctx, &c);
    return 0;
}

int plm_chat_read_prompts(plm_chat_set *out, const char *path) {
    memset(out, 0, sizeof *out);
    size_t len;
    char *buf = plm_read_file(path, &len);
    if (!buf) return -1;
    int rc = parse_lines(path, buf, len, add_prompt, out);
    free(buf);
    if (rc != 0) plm_chat_set_free(out);
    return rc;
}

int plm_chat_read(plm_chat_set *out, const char *path) {
    memset(out, 0, sizeof *out);
    size_t len;
    char *buf = plm_read_file(path, &len);
    if (!buf) return -1;
    int rc = plm_chat_parse(out, path, buf, len);
    free(buf);
    return rc;
}

/* ---------------------------------------------------------------- rendering */

int32_t plm_chat_eos(const plm_tokenizer *tok) {
    int32_t eos = plm_tokenizer_special(tok, PLM_SPECIAL_EOS);
    return eos >= 0 ? eos : plm_tokenizer_special(tok, PLM_SPECIAL_SEP);
}

void plm_chat_tokens_init(plm_chat_tokens *t) { memset(t, 0, sizeof *t); }

void plm_chat_tokens_free(plm_chat_tokens *t) {
    free(t->ids);
    free(t->train);
    memset(t, 0, sizeof *t);
}

static void push(plm_chat_tokens *t, int32_t id, uint8_t train) {
    if (t->n == t->cap) {
        t->cap = t->cap ? 2 * t->cap : 256;
        t->ids = plm_realloc(t->ids, (size_t)t->cap * sizeof *t->ids);
        t->train = plm_realloc(t->train, (size_t)t->cap);
    }
    t->ids[t->n] = id;
    t->train[t->n++] = train;
}

/* The text of the current run (tokens of one mask value), tokenized when the mask changes. */
typedef struct {
    char *s;
    size_t n, cap;
    uint8_t train;
    const plm_tokenizer *tok;
    plm_encoding enc;
    plm_chat_tokens *out;
} renderer;

static int flush(renderer *r) {
    if (r->n == 0) return 0;
    plm_encoding_clear(&r->enc);
    if (plm_tokenizer_encode(r->tok, r->s, r->n, &r->enc) != 0) return -1;
    for (int i = 0; i < r->enc.n; i++) push(r->out, r->enc.ids[i], r->train);
    r->n = 0;
    return 0;
}

/* Appends text to the run of mask value train (tokenizing the run before on a change). */
static int text(renderer *r, uint8_t train, const char *a, const char *b) {
    if (train != r->train && flush(r) != 0) return -1;
    r->train = train;
    size_t la = strlen(a), lb = b ? strlen(b) : 0;
    if (r->n + la + lb + 1 > r->cap) {
        r->cap = 2 * (r->n + la + lb + 1);
        r->s = plm_realloc(r->s, r->cap);
    }
    memcpy(r->s + r->n, a, la);
    if (lb) memcpy(r->s + r->n + la, b, lb);
    r->n += la + lb;
    return 0;
}

static int token(renderer *r, uint8_t train, int32_t id) {
    if (flush(r) != 0) return -1;
    push(r->out, id, train);
    return 0;
}

int plm_chat_encode(const plm_tokenizer *tok, plm_chat_template t, const plm_chat_msg *msgs, int n,
                    bool add_generation_prompt, plm_chat_tokens *out) {
    int32_t eos = plm_chat_eos(tok);
    if (eos < 0) {
        plm_error("the tokenizer has no end-of-sequence token (<|endoftext|> or [SEP]) to end a response with");
        return -1;
    }
    const char *eos_text = plm_tokenizer_id_to_token(tok, eos);
    bool eos_is_im_end = eos_text && !strcmp(eos_text, "<|im_end|>");
    static const char *plain_marker[] = {"System: ", "User: ", "Assistant:"};
    renderer r = {.tok = tok, .out = out};
    plm_encoding_init(&r.enc);
    int rc = 0;
    for (int k = 0; k <= n && rc == 0; k++) {
        bool prompt_only = k == n; /* the generation prompt after the last message */
        if (prompt_only && !add_generation_prompt) break;
        plm_chat_role role = prompt_only ? PLM_ROLE_ASSISTANT : msgs[k].role;
        const char *content = prompt_only ? NULL : msgs[k].content;
        if (t == PLM_TEMPLATE_PLAIN) {
            if (role != PLM_ROLE_ASSISTANT) {
                rc = text(&r, 0, plain_marker[role], content);
                if (rc == 0) rc = text(&r, 0, "\n", NULL);
                continue;
            }
            rc = text(&r, 0, plain_marker[role], NULL);
            if (rc == 0 && content) rc = text(&r, 1, " ", content);
            if (rc == 0 && content) rc = token(&r, 1, eos);
        } else {
            rc = text(&r, 0, k > 0 ? "\n<|im_start|>" : "<|im_start|>", role_names[role]);
            if (rc == 0) rc = text(&r, 0, "\n", NULL);
            uint8_t train = role == PLM_ROLE_ASSISTANT;
            if (rc == 0 && content) rc = text(&r, train, content, "<|im_end|>");
            if (rc == 0 && content && train && !eos_is_im_end) rc = token(&r, 1, eos);
        }
    }
    if (rc == 0) rc = flush(&r);
    free(r.s);
    plm_encoding_free(&r.enc);
    return rc;
}
