/* common.h - error reporting, exit codes, checked allocation and small file helpers
 * shared by every part of plm. Owns the thread-local "last error" message. */
#ifndef PLM_COMMON_H
#define PLM_COMMON_H

#include <stddef.h>
#include <stdint.h>
#include <stdbool.h>

/* Exit codes of the plm binary. */
enum {
    PLM_EXIT_OK = 0,
    PLM_EXIT_FAIL = 1,  /* runtime failure (I/O error, out of memory, diverged) */
    PLM_EXIT_USAGE = 2, /* unknown flag, missing argument */
    PLM_EXIT_INPUT = 3, /* bad input file: config, corpus, checkpoint, vocab */
};

/* Library functions report failure by returning NULL / -1 after setting a one-line
 * message ("path: what is wrong") with plm_error(). The CLI prints it on stderr. */
void plm_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
const char *plm_last_error(void);

/* Abort on programmer errors and out-of-memory: these are not user-recoverable. */
void plm_die(const char *fmt, ...) __attribute__((format(printf, 1, 2), noreturn));
void *plm_malloc(size_t n);
void *plm_calloc(size_t n, size_t size);
void *plm_realloc(void *p, size_t n);
char *plm_strdup(const char *s);
/* 64-byte aligned allocation (AVX-512 lines); free with free(). */
void *plm_aligned_alloc(size_t n);
/* n zero bytes, page aligned, from the kernel: a page costs memory only once written
 * (a model's gradients, which inference never touches). Free with plm_zeroed_free(p, n). */
void *plm_zeroed_alloc(size_t n);
void plm_zeroed_free(void *p, size_t n);

/* A grow-only scratch buffer of this thread (slot 0..7, 64-byte aligned): a reduction's
 * partial sums or a thread's attention tiles. Sized by the call that uses it, so it
 * always fits the team that runs; after the first steps nothing is allocated. The
 * contents are undefined; slots of one thread must not be used by two callers at once. */
float *plm_thread_scratch(int slot, size_t floats);

/* Reads a whole file. Returns NULL and sets the error ("path: No such file") on failure.
 * The buffer is NUL-terminated; *len excludes the NUL. */
char *plm_read_file(const char *path, size_t *len);

/* Atomic write: data goes to path.tmp, is fsync'ed, then renamed over path, and the
 * directory is fsync'ed, so a crash leaves either the old file or the new one. */
int plm_write_file_atomic(const char *path, const void *data, size_t len);
/* Same for several chunks (header + body) without concatenating them first. */
int plm_write_chunks_atomic(const char *path, const void *const *chunks, const size_t *lens, int n);

/* mkdir -p */
int plm_mkdirs(const char *path);

/* fsync a directory, so that renames and new entries in it survive a crash. */
int plm_fsync_dir(const char *dir);

/* rm -rf path (does not follow symlinks). A missing path is not an error. */
int plm_remove_tree(const char *path);

/* Wall-clock seconds (monotonic). */
double plm_now(void);

#define PLM_MIN(a, b)    ((a) < (b) ? (a) : (b))
#define PLM_MAX(a, b)    ((a) > (b) ? (a) : (b))
#define PLM_ARRAY_LEN(a) (sizeof(a) / sizeof((a)[0]))

#endif
