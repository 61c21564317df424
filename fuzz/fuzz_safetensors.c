/* fuzz_safetensors.c - libFuzzer target for the safetensors reader: the input is a whole
 * file for plm_st_parse. A refused file must say why; an accepted one must hold tensors
 * that are in bounds (ASan), aligned for their dtype (UBSan, on direct reads), sized by
 * their shape and covering the data exactly, each found by its name, and metadata found
 * by its key. */
#include "core/common.h"
#include "train/safetensors.h"

#include <stdlib.h>
#include <string.h>

static volatile double sink;

/* Reads every element the way the loaders do: as an array of its type. */
static void read_all(const plm_st_tensor *t) {
    size_t n = t->nbytes / plm_dtype_size(t->dtype);
    double s = 0;
    for (size_t i = 0; i < n; i++) {
        switch (t->dtype) {
        case PLM_DT_F32:
            s += ((const float *)t->data)[i];
            break;
        case PLM_DT_F64:
            s += ((const double *)t->data)[i];
            break;
        case PLM_DT_I32:
            s += ((const int32_t *)t->data)[i];
            break;
        case PLM_DT_I64:
            s += (double)((const int64_t *)t->data)[i];
            break;
        case PLM_DT_F16:
        case PLM_DT_BF16:
            s += ((const uint16_t *)t->data)[i];
            break;
        case PLM_DT_U8:
            s += ((const uint8_t *)t->data)[i];
            break;
        }
    }
    sink = s;
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size) {
    char *buf = malloc(size ? size : 1); /* plm_st_parse takes it */
    if (!buf) return 0;
    memcpy(buf, data, size);
    plm_error("%s", "");
    plm_safetensors st;
    if (plm_st_parse(&st, buf, size, "fuzz.safetensors") != 0) {
        if (!strstr(plm_last_error(), "fuzz.safetensors")) abort(); /* failure must say why */
        return 0;
    }
    uint64_t hlen = 0;
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | (uint8_t)st.buf[i];
    size_t total = 0;
    for (int i = 0; i < st.num_tensors; i++) {
        const plm_st_tensor *t = &st.tensors[i];
        size_t numel = 1;
        for (int d = 0; d < t->ndim; d++) numel *= (size_t)t->shape[d];
        if (t->ndim < 0 || t->ndim > 8 || t->nbytes != numel * plm_dtype_size(t->dtype)) abort();
        if ((uintptr_t)t->data % plm_dtype_size(t->dtype) != 0) abort();
        if (plm_st_find(&st, t->name) != t) abort(); /* names are unique */
        read_all(t);
        total += t->nbytes;
    }
    if (total != st.len - 8 - hlen) abort(); /* no gap, no overlap */
    if (plm_st_find(&st, "__metadata__")) abort();
    for (int i = 0; i < st.num_meta; i++)
        if (plm_st_meta(&st, st.meta_keys[i]) != st.meta_values[i]) abort(); /* keys are unique */
    plm_st_free(&st);
    return 0;
}
