/* main.c - the plm command: dispatches to a subcommand. */
#include <stdio.h>
#include <string.h>

#include "cli.h"
#include "commands.h"
#include "core/common.h"
#include "train/dist.h"

typedef struct {
    const char *name;
    int (*fn)(int, char **);
    const char *help;
} command;

static const command commands[] = {
    {"demo", cmd_demo, "pretrain a small GPT and BERT on data/demo and show what they learned"},
    {"prepare", cmd_prepare, "tokenize text files, folders or JSONL into shards for pretrain --data"},
    {"pretrain", cmd_pretrain, "pretrain (clm, mlm, mlm+nsp, mlm+sop, clm+mlm, electra, t5) on raw text or shards"},
    {"finetune", cmd_finetune, "fine-tune for sequence classification / regression (GLUE or custom files)"},
    {"evaluate", cmd_evaluate, "score a fine-tuned model on a labelled set (GLUE-style table, JSON)"},
    {"predict", cmd_predict, "predict a test set with a fine-tuned model (GLUE submission TSV)"},
    {"sft", cmd_sft, "supervised fine-tuning of a causal LM on prompt/response or chat JSONL (response-only loss)"},
    {"dpo", cmd_dpo, "Direct Preference Optimization of a causal LM on {prompt, chosen, rejected} JSONL"},
    {"reward", cmd_reward, "train a reward model (score head, Bradley-Terry loss) on preference pairs; --score FILE"},
    {"rloo", cmd_rloo, "online RLHF (RLOO: REINFORCE, leave-one-out baseline) of a causal LM from a reward model"},
    {"ppo", cmd_ppo, "online RLHF (PPO with a value model, GAE, clipping) of a causal LM from a reward model"},
    {"prompt", cmd_prompt, "zero- / few-shot classification with a causal model (verbalizer log-likelihoods)"},
    {"embed", cmd_embed, "sentence embeddings (.npy / safetensors) from any checkpoint"},
    {"retrieval-eval", cmd_retrieval_eval, "SQuAD question -> paragraph retrieval: recall@k, nDCG@10, MRR@10"},
    {"finetune-embed", cmd_finetune_embed, "contrastive fine-tuning of an embedder on SQuAD question-paragraph pairs"},
    {"eval", cmd_eval, "perplexity / masked-token accuracy of a model on held-out text"},
    {"generate", cmd_generate, "generate text from a causal model"},
    {"fill-mask", cmd_fill_mask, "predict masked tokens with an encoder"},
    {"unmask", cmd_unmask, "fill masked spans by iterative unmasking (Mask-Predict) with an encoder"},
    {"tokenizer", cmd_tokenizer, "train a tokenizer (plm tokenizer train --help)"},
    {"tokenize", cmd_tokenize, "text to ids, tokens or offsets"},
    {"detokenize", cmd_detokenize, "ids back to text"},
};

static void usage(FILE *f) {
    fprintf(f, "usage: plm COMMAND [options]   (plm COMMAND --help for its options)\n\ncommands:\n");
    for (size_t i = 0; i < PLM_ARRAY_LEN(commands); i++) fprintf(f, "  %-12s %s\n", commands[i].name, commands[i].help);
}

int main(int argc, char **argv) {
    if (argc < 2 || strcmp(argv[1], "--help") == 0 || strcmp(argv[1], "-h") == 0 || strcmp(argv[1], "help") == 0) {
        usage(argc < 2 ? stderr : stdout);
        return argc < 2 ? PLM_EXIT_USAGE : 0;
    }
    for (size_t i = 0; i < PLM_ARRAY_LEN(commands); i++)
        if (strcmp(argv[1], commands[i].name) == 0) {
            /* under mpirun every rank runs the command; one that fails ends the job. Only
             * the data-parallel trainers may run on several ranks: the others would each
             * do the whole work and write the same files. */
            plm_dist_init(&argc, &argv);
            if (plm_dist_size() > 1 && strcmp(argv[1], "pretrain") != 0 && strcmp(argv[1], "finetune") != 0) {
                if (plm_dist_is_root())
                    fprintf(stderr,
                            "plm %s: error: runs on one process only (pretrain and finetune run under "
                            "mpirun with several ranks)\n",
                            argv[1]);
                return plm_dist_finish(PLM_EXIT_USAGE);
            }
            return plm_dist_finish(commands[i].fn(argc - 1, argv + 1));
        }
    fprintf(stderr, "plm: unknown command '%s' (see plm --help)\n", argv[1]);
    return PLM_EXIT_USAGE;
}
