/* params.h - registering tensors in a model's one parameter buffer. Modules name
 * their tensors and pass the addresses of their weight and gradient views; once every
 * module has registered, the buffer is allocated and each view points into it. */
#ifndef PLM_PARAMS_H
#define PLM_PARAMS_H

#include <stdbool.h>
#include <stddef.h>

struct plm_model;

enum {
    PLM_P_TRANSPOSE = 1, /* stored [in, out] in HF files (GPT-2's Conv1D) */
    PLM_P_QKV = 2,       /* a fused [3C, C] / [3C] tensor saved as query, key, value */
    PLM_P_KV = 4,        /* a fused [2C, C] / [2C] tensor saved as key, value */
    PLM_P_SHORT = 8,     /* with QKV / KV: the parts are T5's q, k, v */
    PLM_P_PAIR = 16,     /* a fused [2I, C] tensor saved as two halves "0", "1" (T5's wi_0, wi_1) */
};

typedef struct {
    struct plm_model *m;
    int cap;
    int head; /* owner recorded on each tensor: -1 backbone, else the head's index */
    struct pending {
        int tensor; /* index into m->tensors */
        float **w, **g;
    } * views;
    int num_views, cap_views;
} plm_params;

/* Registers a [rows, cols] tensor (cols 0: a vector) and the views to point at it.
 * Returns the tensor's index. name is the HF name; for PLM_P_QKV, name contains
 * "%s", replaced by query / key / value in the saved names (q / k / v with PLM_P_SHORT,
 * 0 / 1 with PLM_P_PAIR). */
int plm_params_add(plm_params *p, const char *name, int rows, int cols, int flags, float **w, float **g);
/* Points views at an existing tensor and records name as an alias of it (tying). */
void plm_params_alias(plm_params *p, const char *name, int tensor, float **w, float **g);
/* Allocates the buffers (params zeroed; grads too) and resolves every view. */
void plm_params_finish(plm_params *p);

#endif
