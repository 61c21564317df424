/* checkpoint.c - see checkpoint.h */
#include "checkpoint.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "core/common.h"

int plm_checkpoint_begin(const char *output_dir, long step, char *tmp, size_t tmp_size) {
    snprintf(tmp, tmp_size, "%s/checkpoint-%ld.tmp-%ld", output_dir, step, (long)getpid());
    if (plm_remove_tree(tmp) != 0) return -1;
    if (mkdir(tmp, 0755) != 0) {
        plm_error("%s: %s", tmp, strerror(errno));
        return -1;
    }
    return 0;
}

void plm_checkpoint_abort(const char *tmp) {
    char msg[1024];
    snprintf(msg, sizeof msg, "%s", plm_last_error());
    plm_remove_tree(tmp);
    plm_error("%s", msg);
}

int plm_checkpoint_commit(const char *tmp, const char *output_dir, long step) {
    char dst[4096], old[4300];
    snprintf(dst, sizeof dst, "%s/checkpoint-%ld", output_dir, step);
    if (plm_fsync_dir(tmp) != 0) goto fail;
    if (rename(tmp, dst) != 0) {
        if (errno != EEXIST && errno != ENOTEMPTY) {
            plm_error("%s: rename failed: %s", dst, strerror(errno));
            goto fail;
        }
        /* checkpoint-N exists already (a resume from an older checkpoint passed it again):
         * swap the two in one step, so there is never a moment without checkpoint-N. */
        if (renameat2(AT_FDCWD, tmp, AT_FDCWD, dst, RENAME_EXCHANGE) != 0) {
            /* File systems without RENAME_EXCHANGE: move the old one aside first. */
            snprintf(old, sizeof old, "%s.old", tmp);
            if (rename(dst, old) != 0 || rename(tmp, dst) != 0) {
                plm_error("%s: rename failed: %s", dst, strerror(errno));
                goto fail;
            }
            plm_remove_tree(old);
        }
        plm_remove_tree(tmp); /* now the replaced checkpoint */
    }
    return plm_fsync_dir(output_dir);
fail:
    plm_checkpoint_abort(tmp);
    return -1;
}

/* Step of a "checkpoint-<digits>" name, or -1 (temporary names never match). */
static long checkpoint_step(const char *name) {
    if (strncmp(name, "checkpoint-", 11) != 0 || !name[11]) return -1;
    for (const char *c = name + 11; *c; c++)
        if (*c < '0' || *c > '9') return -1;
    errno = 0;
    long v = strtol(name + 11, NULL, 10);
    return errno ? -1 : v;
}

static int cmp_step(const void *a, const void *b) {
    long x = ((const plm_checkpoint_entry *)a)->step, y = ((const plm_checkpoint_entry *)b)->step;
    return (x > y) - (x < y);
}

int plm_checkpoint_list(const char *dir, plm_checkpoint_entry **out) {
    *out = NULL;
    DIR *d = opendir(dir);
    if (!d) {
        if (errno == ENOENT) return 0;
        plm_error("%s: %s", dir, strerror(errno));
        return -1;
    }
    int n = 0, cap = 0;
    struct dirent *e;
    while ((e = readdir(d))) {
        long step = checkpoint_step(e->d_name);
        if (step < 0) continue;
        char path[4096];
        struct stat st;
        snprintf(path, sizeof path, "%s/%s", dir, e->d_name);
        if (stat(path, &st) != 0 || !S_ISDIR(st.st_mode)) continue;
        if (n == cap) *out = plm_realloc(*out, (size_t)(cap = cap ? 2 * cap : 16) * sizeof **out);
        (*out)[n].step = step;
        memcpy((*out)[n].path, path, sizeof path);
        n++;
    }
    closedir(d);
    if (n) qsort(*out, (size_t)n, sizeof **out, cmp_step);
    return n;
}

void plm_checkpoint_rotate(const char *output_dir, int limit, long keep_step) {
    if (limit <= 0) return;
    plm_checkpoint_entry *c;
    int n = plm_checkpoint_list(output_dir, &c);
    int excess = n - limit;
    for (int i = 0; i < n && excess > 0; i++) {
        if (c[i].step == keep_step) continue;
        char tmp[4200];
        snprintf(tmp, sizeof tmp, "%s.tmp-%ld", c[i].path, (long)getpid());
        if (rename(c[i].path, tmp) != 0 || plm_remove_tree(tmp) != 0)
            fprintf(stderr, "plm: warning: could not delete old checkpoint %s: %s\n", c[i].path, strerror(errno));
        excess--;
    }
    free(c);
    plm_fsync_dir(output_dir);
}

void plm_checkpoint_remove_stale(const char *output_dir) {
    DIR *d = opendir(output_dir);
    if (!d) return;
    struct dirent *e;
    char path[4096];
    while ((e = readdir(d))) {
        const char *t = strstr(e->d_name, ".tmp-");
        if (strncmp(e->d_name, "checkpoint-", 11) != 0 || !t) continue;
        long pid = strtol(t + 5, NULL, 10);
        if (pid > 0 && pid != (long)getpid() && (kill((pid_t)pid, 0) == 0 || errno == EPERM)) continue;
        snprintf(path, sizeof path, "%s/%s", output_dir, e->d_name);
        if (plm_remove_tree(path) != 0) fprintf(stderr, "plm: warning: %s\n", plm_last_error());
    }
    closedir(d);
    /* the files of a final model (pretraining) or fine-tuned model, and the logs */
    const char *names[] = {"tokenizer.json", "config.json",      "model.safetensors", "training_state.safetensors",
                           "metrics.jsonl",  "eval_results.json"};
    for (size_t i = 0; i < PLM_ARRAY_LEN(names); i++) {
        snprintf(path, sizeof path, "%s/%s.tmp", output_dir, names[i]);
        unlink(path);
    }
}
