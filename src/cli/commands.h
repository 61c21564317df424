/* commands.h - the tokenizer subcommands of the plm binary (cmd_tokenizer.c): each takes
 * argv starting at the subcommand name and returns a PLM_EXIT_* code. */
#ifndef PLM_CLI_COMMANDS_H
#define PLM_CLI_COMMANDS_H

int cmd_tokenizer(int argc, char **argv);      /* plm tokenizer train ... */
int cmd_tokenize(int argc, char **argv);       /* plm tokenize ... */
int cmd_detokenize(int argc, char **argv);     /* plm detokenize ... */
int cmd_embed(int argc, char **argv);          /* plm embed ... (cmd_embed.c) */
int cmd_retrieval_eval(int argc, char **argv); /* plm retrieval-eval ... (cmd_embed.c) */
int cmd_finetune_embed(int argc, char **argv); /* plm finetune-embed ... (cmd_embed.c) */

#endif
