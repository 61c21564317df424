/* cli.h - the plm subcommands (each returns a process exit code, see core/common.h)
 * and helpers they share for loading a model directory. */
#ifndef PLM_CLI_H
#define PLM_CLI_H

#include "args.h"
#include "model/model.h"
#include "tokenizer/tokenizer.h"

int cmd_pretrain(int argc, char **argv);
int cmd_prepare(int argc, char **argv);
int cmd_eval(int argc, char **argv);
int cmd_generate(int argc, char **argv);
int cmd_fill_mask(int argc, char **argv);
int cmd_unmask(int argc, char **argv); /* cmd_unmask.c */
int cmd_demo(int argc, char **argv);
int cmd_finetune(int argc, char **argv); /* cmd_finetune.c */
int cmd_evaluate(int argc, char **argv);
int cmd_predict(int argc, char **argv);
int cmd_prompt(int argc, char **argv); /* cmd_prompt.c */
int cmd_sft(int argc, char **argv);    /* cmd_sft.c */
int cmd_dpo(int argc, char **argv);    /* cmd_sft.c */
int cmd_reward(int argc, char **argv); /* cmd_sft.c */
int cmd_rloo(int argc, char **argv);   /* cmd_sft.c */
int cmd_ppo(int argc, char **argv);    /* cmd_sft.c */
/* cmd_finetune_tokens.c: runs `plm CMD` (finetune, evaluate, predict) as a token task
 * (NER, POS, SQuAD) when --task / --task-type or --model's config.json names one and
 * returns its exit code; -1 when the command is not a token task. */
int cli_token_task_route(const char *cmd, int argc, char **argv);

/* Loads dir/config.json, dir/model.safetensors and dir/tokenizer.json. Prints the
 * error and returns PLM_EXIT_INPUT on failure, 0 on success. */
int cli_load_model(const char *dir, plm_model **m, plm_tokenizer **tok);
/* The same with heads: the base weights go into a model with those heads (new ones
 * initialised from seed, HF's report on stderr unless quiet); heads NULL: the
 * directory's own model. A tokenizer larger than the model's vocabulary is refused. */
int cli_load_model_heads(const char *dir, const plm_head_spec *heads, int num_heads, uint64_t seed, bool quiet,
                         plm_model **m, plm_tokenizer **tok);
/* --bf16 of the inference commands: bf16 GEMMs (plm_gemm_set_bf16; one line on stderr
 * and fp32 where the CPU has none) reading a bf16 copy of m's weights rounded once. */
void cli_use_bf16(plm_model *m);
#define CLI_BF16_HELP                                                                                                  \
    "bf16 GEMMs (oneDNN, fp32 accumulation) on the weights rounded to bf16 once: half the bytes per token, "           \
    "logits within bf16 rounding of fp32's; fp32 where the CPU has no bf16"
/* cmd_infer.c: loads a masked-language model for CMD (fill-mask, unmask): a directory
 * whose model has an LM head on its one backbone and is not causal; else the error is
 * set (naming dir/config.json) and PLM_EXIT_INPUT returned. */
int cli_load_mlm(const char *dir, const char *cmd, plm_model **m, plm_tokenizer **tok);
/* cmd_infer.c: appends one text per line of path to list (a trailing \r dropped, blank
 * lines skipped; a NUL byte is an error naming the line), each one's line number to
 * (*lines)[its index in list] (the entries before the file's are not set); *owned keeps the text. Returns 0,
 * or -1 with the error set. */
int cli_read_lines(const char *path, arg_list *list, char **owned, int **lines);
/* Prints "plm CMD: error: <last error>" on stderr and returns code. */
int cli_fail(const char *cmd, int code);

#endif
