/* chat.h - instruction data and the chat template, for supervised fine-tuning (plm sft)
 * and chat generation (plm generate --chat). Owns the conversations read from a JSONL
 * file (plm_chat_set) and their rendering into token ids with a mask of the tokens the
 * model learns, as TRL's SFTTrainer with completion-only / assistant-only loss.
 *
 * Data. One JSON object per line (blank lines skipped):
 *   {"prompt": "...", "response": "..."}                         one exchange, or
 *   {"messages": [{"role": "system" | "user" | "assistant", "content": "..."}, ...]}
 * A conversation needs an assistant message with non-empty content (a response is the
 * only thing learned); an empty response, a missing field, a non-string, an unknown
 * role, bad JSON, invalid UTF-8 or a NUL byte is an error "file:line: problem". A
 * prompt may be empty.
 *
 * Templates. Plain text role markers, and the tokenizer's end-of-sequence token (EOS:
 * <|endoftext|>, else [SEP]) after every assistant turn, which is what generation stops
 * at. Trained tokens are [marked]; everything else is context (label -100):
 *   plain   "System: {system}\n" "User: {user}\n" "Assistant:" [" {assistant}" EOS]
 *           (the next turn follows the EOS directly)
 *   chatml  "<|im_start|>system\n{system}<|im_end|>" "\n<|im_start|>user\n{user}<|im_end|>"
 *           "\n<|im_start|>assistant\n" ["{assistant}<|im_end|>" EOS]
 *           (no EOS of its own when the tokenizer's EOS is <|im_end|>; the role markers
 *           are plain text unless the tokenizer has them as added tokens)
 * Tokenization: the text between two changes of the mask is tokenized as one piece
 * (plm_tokenizer_encode, no special tokens added), so a context run such as
 * "System: ...\nUser: ...\nAssistant:" is tokenized exactly as generate --chat tokenizes
 * its prompt, and a response never shares a token with its context. */
#ifndef PLM_CHAT_H
#define PLM_CHAT_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "tokenizer/tokenizer.h"

typedef enum { PLM_ROLE_SYSTEM = 0, PLM_ROLE_USER, PLM_ROLE_ASSISTANT } plm_chat_role;

typedef struct {
    plm_chat_role role;
    char *content;
} plm_chat_msg;

/* One conversation (one line of the file). */
typedef struct {
    plm_chat_msg *msgs;
    int n;
    int line; /* of the file, 1-based */
} plm_chat;

typedef struct {
    plm_chat *items;
    int n, cap;
} plm_chat_set;

typedef enum { PLM_TEMPLATE_PLAIN = 0, PLM_TEMPLATE_CHATML } plm_chat_template;

/* "plain", "chatml"; parse returns 0 or -1. */
const char *plm_chat_template_name(plm_chat_template t);
int plm_chat_template_of(const char *name, plm_chat_template *out);

/* Reads / parses a JSONL file of conversations (format above). Returns 0, or -1 with the
 * error set ("name:line: problem"); out is empty then. */
int plm_chat_read(plm_chat_set *out, const char *path);
int plm_chat_parse(plm_chat_set *out, const char *name, const char *buf, size_t len);
void plm_chat_set_free(plm_chat_set *s);
/* Preference data for DPO: {"prompt": ..., "chosen": ..., "rejected": ...} per line (TRL's
 * standard preference format). Conversation i of chosen and of rejected is the prompt as
 * a user turn and that response as the assistant's. Errors as plm_chat_parse (an empty
 * response, a missing or non-string field). */
int plm_chat_read_preferences(plm_chat_set *chosen, plm_chat_set *rejected, const char *path);
int plm_chat_parse_preferences(plm_chat_set *chosen, plm_chat_set *rejected, const char *name, const char *buf,
                               size_t len);

/* Prompts for online RL (plm rloo): {"prompt": ...} per line (a DPO file's other fields are
 * ignored); conversation i is prompt i as one user turn, rendered with
 * add_generation_prompt. Errors as plm_chat_parse. */
int plm_chat_read_prompts(plm_chat_set *out, const char *path);

/* The token the templates end an assistant turn with: EOS, else SEP; -1 if neither. */
int32_t plm_chat_eos(const plm_tokenizer *tok);

/* Token ids and, per token, 1 when it is learned (an assistant's content and its end). */
typedef struct {
    int32_t *ids;
    uint8_t *train;
    int n, cap;
} plm_chat_tokens;

void plm_chat_tokens_init(plm_chat_tokens *t);
void plm_chat_tokens_free(plm_chat_tokens *t);
/* Renders msgs[0..n) with template t and appends their tokens to out (it is not
 * cleared). add_generation_prompt: end with the assistant's header, untrained (the
 * prompt generate --chat feeds the model). Returns 0, or -1 with the error set (no EOS
 * in the vocabulary, a text the tokenizer rejects). */
int plm_chat_encode(const plm_tokenizer *tok, plm_chat_template t, const plm_chat_msg *msgs, int n,
                    bool add_generation_prompt, plm_chat_tokens *out);

#endif
