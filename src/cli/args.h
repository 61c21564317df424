/* args.h - declarative command-line options for the plm subcommands: each command
 * lists its flags once (name, kind, target, help) and gets parsing, validation,
 * --help text and one-line errors ("plm pretrain: unknown option --foo") for free. */
#ifndef PLM_ARGS_H
#define PLM_ARGS_H

#include <stdbool.h>

typedef enum { ARG_INT, ARG_LONG, ARG_FLOAT, ARG_STR, ARG_FLAG, ARG_LIST, ARG_U64 } arg_kind;

typedef struct {
    const char *name; /* "--max-steps" */
    arg_kind kind;
    void *target; /* int*, long*, float*, const char**, bool*, arg_list*, uint64_t* */
    const char *help;
} arg_spec;

/* A repeated or multi-valued option: --train a.txt b.txt --train c.txt */
typedef struct {
    const char **items;
    int n;
} arg_list;

/* Parses argv (argv[0] is the subcommand name). Returns 0, 1 when --help was printed,
 * or 2 (PLM_EXIT_USAGE) after printing an error. */
int args_parse(const char *cmd, const char *summary, const arg_spec *specs, int nspecs, int argc, char **argv);
void args_list_free(arg_list *l);

#endif
