/* safetensors.h - reading and writing the safetensors format: an 8-byte little-endian
 * header length, a JSON header {"name": {"dtype", "shape", "data_offsets"}, ...,
 * "__metadata__": {...}} padded with spaces to a multiple of 8, then the raw tensor
 * bytes. The reader validates everything as the spec and the reference implementation
 * do (integer offsets covering the data exactly, sizes matching shapes, no repeated
 * keys, ...) before any tensor is used; a bad file is refused with a message. */
#ifndef PLM_SAFETENSORS_H
#define PLM_SAFETENSORS_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

typedef enum { PLM_DT_F32, PLM_DT_F16, PLM_DT_BF16, PLM_DT_F64, PLM_DT_I32, PLM_DT_I64, PLM_DT_U8 } plm_dtype;

typedef struct {
    char *name;
    plm_dtype dtype;
    int ndim;
    int64_t shape[8];
    const void *data; /* into the file buffer, or st->aligned; aligned for the dtype */
    size_t nbytes;
} plm_st_tensor;

typedef struct {
    char *buf; /* the whole file */
    size_t len;
    plm_st_tensor *tensors;
    int num_tensors;
    char **meta_keys, **meta_values; /* __metadata__ (string -> string) */
    int num_meta;
    char *aligned; /* copies of the tensors the file left misaligned (usually NULL) */
    bool mapped;   /* buf is the file mapped (plm_st_load of 1 MB or more), not malloc'ed */
} plm_safetensors;

/* Parses a file; returns 0, or -1 with "path: problem". A file of 1 MB or more is
 * mapped, not read, so that a loader can let each tensor's pages go once it has copied
 * them (plm_st_release) and a model's weights are never held twice. */
int plm_st_load(plm_safetensors *st, const char *path);
/* Drops the pages wholly inside [p, p + n) of a mapped file from memory (they come
 * back from the page cache if read again); nothing for a read file. */
void plm_st_release(const plm_safetensors *st, const void *p, size_t n);
/* Parses an in-memory buffer (takes ownership of buf, which must be malloc'ed). */
int plm_st_parse(plm_safetensors *st, char *buf, size_t len, const char *path);
void plm_st_free(plm_safetensors *st);
const plm_st_tensor *plm_st_find(const plm_safetensors *st, const char *name);
const char *plm_st_meta(const plm_safetensors *st, const char *key);
size_t plm_dtype_size(plm_dtype d);

/* Writer: collect tensors (data is referenced, not copied), then write atomically. */
typedef struct {
    const char *name;
    plm_dtype dtype;
    int ndim;
    int64_t shape[8];
    const void *data;
} plm_st_entry;

typedef struct {
    plm_st_entry *entries;
    int n, cap;
    char **meta_keys, **meta_values;
    int num_meta;
    void **owned; /* buffers to free with the writer */
    int num_owned;
} plm_st_writer;

void plm_st_writer_init(plm_st_writer *w);
void plm_st_add(plm_st_writer *w, const char *name, plm_dtype dtype, int ndim, const int64_t *shape, const void *data);
/* Adds a float32 tensor, copying the data (for transposed exports). */
void plm_st_add_copy_f32(plm_st_writer *w, const char *name, int ndim, const int64_t *shape, const float *data);
void plm_st_add_meta(plm_st_writer *w, const char *key, const char *value);
int plm_st_write(plm_st_writer *w, const char *path); /* atomic; "format": "pt" is always set */
void plm_st_writer_free(plm_st_writer *w);

#endif
