/* common.c - see common.h */
#include "common.h"

#include <errno.h>
#include <fcntl.h>
#include <ftw.h>
#include <libgen.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

static _Thread_local char last_error[1024];

void plm_error(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    vsnprintf(last_error, sizeof last_error, fmt, ap);
    va_end(ap);
}

const char *plm_last_error(void) { return last_error[0] ? last_error : "unknown error"; }

void plm_die(const char *fmt, ...) {
    va_list ap;
    va_start(ap, fmt);
    fputs("plm: fatal: ", stderr);
    vfprintf(stderr, fmt, ap);
    fputc('\n', stderr);
    va_end(ap);
    exit(PLM_EXIT_FAIL);
}

void *plm_malloc(size_t n) {
    void *p = malloc(n ? n : 1);
    if (!p) plm_die("out of memory allocating %zu bytes", n);
    return p;
}

void *plm_calloc(size_t n, size_t size) {
    void *p = calloc(n ? n : 1, size ? size : 1);
    if (!p) plm_die("out of memory allocating %zu x %zu bytes", n, size);
    return p;
}

void *plm_realloc(void *p, size_t n) {
    void *q = realloc(p, n ? n : 1);
    if (!q) plm_die("out of memory reallocating %zu bytes", n);
    return q;
}

char *plm_strdup(const char *s) {
    size_t n = strlen(s) + 1;
    return memcpy(plm_malloc(n), s, n);
}

void *plm_aligned_alloc(size_t n) {
    size_t rounded = (n + 63) & ~(size_t)63;
    void *p = aligned_alloc(64, rounded ? rounded : 64);
    if (!p) plm_die("out of memory allocating %zu bytes", n);
    return p;
}

#ifdef __SANITIZE_ADDRESS__ /* heap memory, whose overflows the sanitizer sees */
void *plm_zeroed_alloc(size_t n) {
    void *p = plm_aligned_alloc(n);
    memset(p, 0, n);
    return p;
}

void plm_zeroed_free(void *p, size_t n) {
    (void)n;
    free(p);
}
#else
void *plm_zeroed_alloc(size_t n) {
    void *p = mmap(NULL, n ? n : 1, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_ANONYMOUS, -1, 0);
    if (p == MAP_FAILED) plm_die("out of memory allocating %zu bytes", n);
    return p;
}

void plm_zeroed_free(void *p, size_t n) {
    if (p) munmap(p, n ? n : 1);
}
#endif

char *plm_read_file(const char *path, size_t *len) {
    FILE *f = fopen(path, "rb");
    if (!f) {
        plm_error("%s: %s", path, strerror(errno));
        return NULL;
    }
    struct stat st;
    if (fstat(fileno(f), &st) != 0 || !S_ISREG(st.st_mode)) {
        plm_error("%s: not a regular file", path);
        fclose(f);
        return NULL;
    }
    size_t n = (size_t)st.st_size;
    char *buf = plm_malloc(n + 1);
    size_t got = fread(buf, 1, n, f);
    int bad = ferror(f);
    fclose(f);
    if (bad || got != n) {
        plm_error("%s: read error", path);
        free(buf);
        return NULL;
    }
    buf[n] = 0;
    if (len) *len = n;
    return buf;
}

static int fsync_dir_of(const char *path) {
    char *copy = plm_strdup(path);
    int fd = open(dirname(copy), O_RDONLY | O_DIRECTORY);
    free(copy);
    if (fd < 0) return 0; /* best effort */
    fsync(fd);
    close(fd);
    return 0;
}

int plm_write_chunks_atomic(const char *path, const void *const *chunks, const size_t *lens, int n) {
    size_t plen = strlen(path);
    char *tmp = plm_malloc(plen + 16);
    snprintf(tmp, plen + 16, "%s.tmp", path);
    int fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC, 0644);
    if (fd < 0) {
        plm_error("%s: %s", tmp, strerror(errno));
        free(tmp);
        return -1;
    }
    for (int i = 0; i < n; i++) {
        const char *p = chunks[i];
        size_t left = lens[i];
        while (left > 0) {
            ssize_t w = write(fd, p, left);
            if (w < 0) {
                if (errno == EINTR) continue;
                plm_error("%s: write failed: %s", tmp, strerror(errno));
                close(fd);
                unlink(tmp);
                free(tmp);
                return -1;
            }
            p += w;
            left -= (size_t)w;
        }
    }
    if (fsync(fd) != 0 || close(fd) != 0) {
        plm_error("%s: fsync failed: %s", tmp, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    if (rename(tmp, path) != 0) {
        plm_error("%s: rename failed: %s", path, strerror(errno));
        unlink(tmp);
        free(tmp);
        return -1;
    }
    free(tmp);
    fsync_dir_of(path);
    return 0;
}

int plm_write_file_atomic(const char *path, const void *data, size_t len) {
    const void *chunks[1] = {data};
    return plm_write_chunks_atomic(path, chunks, &len, 1);
}

int plm_mkdirs(const char *path) {
    char *p = plm_strdup(path);
    for (char *s = p + 1; *s; s++) {
        if (*s != '/') continue;
        *s = 0;
        if (mkdir(p, 0755) != 0 && errno != EEXIST) {
            plm_error("%s: %s", p, strerror(errno));
            free(p);
            return -1;
        }
        *s = '/';
    }
    int rc = mkdir(p, 0755);
    if (rc != 0 && errno != EEXIST) {
        plm_error("%s: %s", p, strerror(errno));
        free(p);
        return -1;
    }
    free(p);
    return 0;
}

int plm_fsync_dir(const char *dir) {
    int fd = open(dir, O_RDONLY | O_DIRECTORY);
    if (fd < 0) {
        plm_error("%s: %s", dir, strerror(errno));
        return -1;
    }
    int rc = fsync(fd);
    /* Some file systems refuse fsync on directories; their renames are ordered anyway. */
    if (rc != 0 && errno != EINVAL && errno != EROFS) {
        plm_error("%s: fsync failed: %s", dir, strerror(errno));
        close(fd);
        return -1;
    }
    close(fd);
    return 0;
}

static int remove_entry(const char *path, const struct stat *st, int type, struct FTW *ftw) {
    (void)st;
    (void)type;
    (void)ftw;
    if (remove(path) != 0 && errno != ENOENT) {
        plm_error("%s: cannot remove: %s", path, strerror(errno));
        return -1;
    }
    return 0;
}

int plm_remove_tree(const char *path) {
    struct stat st;
    if (lstat(path, &st) != 0) {
        if (errno == ENOENT) return 0;
        plm_error("%s: %s", path, strerror(errno));
        return -1;
    }
    /* FTW_DEPTH: children before their directory; FTW_PHYS: never follow a symlink out. */
    return nftw(path, remove_entry, 16, FTW_DEPTH | FTW_PHYS) == 0 ? 0 : -1;
}

double plm_now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

/* Every thread's buffers hang off one global list, so that they stay reachable (and
 * reusable in size) after an OpenMP team shrinks and its threads exit. */
typedef struct scratch_node {
    float *buf[8];
    size_t cap[8];
    struct scratch_node *next;
} scratch_node;
static scratch_node *scratch_all;

float *plm_thread_scratch(int slot, size_t floats) {
    static _Thread_local scratch_node *mine;
    if (slot < 0 || slot >= 8) plm_die("plm_thread_scratch: slot %d", slot);
    if (!mine) {
        mine = plm_calloc(1, sizeof *mine);
#pragma omp critical(plm_thread_scratch)
        {
            mine->next = scratch_all;
            scratch_all = mine;
        }
    }
    if (floats > mine->cap[slot]) {
        free(mine->buf[slot]);
        mine->buf[slot] = plm_aligned_alloc(floats * sizeof(float));
        mine->cap[slot] = floats;
    }
    return mine->buf[slot];
}
