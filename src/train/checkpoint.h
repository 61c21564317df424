/* checkpoint.h - the checkpoint-N directories of an output directory, for pretraining
 * (trainer.c) and fine-tuning (finetune.c) alike: a checkpoint is written under a
 * temporary name (checkpoint-N.tmp-<pid>), fsync'ed and renamed into place, so a
 * checkpoint-N directory is always complete; old ones are rotated out (--save-total-limit);
 * temporaries left by killed runs are removed; the directories are listed by step. What
 * goes inside a checkpoint, and which one to resume from (plm_find_checkpoint, trainer.h),
 * is the callers' business. */
#ifndef PLM_CHECKPOINT_H
#define PLM_CHECKPOINT_H

#include <stddef.h>

typedef struct {
    long step;
    char path[4096];
} plm_checkpoint_entry;

/* Creates the empty temporary directory output_dir/checkpoint-<step>.tmp-<pid> (removing a
 * leftover of that name first) and writes its path to tmp. Returns 0, or -1 with the error
 * set. The caller fills it, then calls plm_checkpoint_commit, or plm_checkpoint_abort. */
int plm_checkpoint_begin(const char *output_dir, long step, char *tmp, size_t tmp_size);

/* fsyncs tmp and renames it to output_dir/checkpoint-<step>. An existing checkpoint-<step>
 * (a resumed run passing it again) is swapped out in one step where the file system can,
 * else moved aside first, and deleted. fsyncs output_dir. On failure tmp is removed and -1
 * returned with the error set. */
int plm_checkpoint_commit(const char *tmp, const char *output_dir, long step);

/* Removes tmp after a failed write; the error set by the failure is kept. */
void plm_checkpoint_abort(const char *tmp);

/* --save-total-limit: deletes the oldest checkpoint-N directories beyond the newest
 * `limit` (limit <= 0: none), never the one of keep_step. Each is renamed to a temporary
 * name before it is deleted, so a kill mid-delete leaves a stale temporary (removed by
 * plm_checkpoint_remove_stale), not a half checkpoint. Failures are warnings on stderr. */
void plm_checkpoint_rotate(const char *output_dir, int limit, long keep_step);

/* Removes the temporary checkpoint directories of processes that are gone and the
 * leftover temporaries of atomically written files (name.tmp) in output_dir. A live
 * process's temporaries are left alone. */
void plm_checkpoint_remove_stale(const char *output_dir);

/* The checkpoint-N directories in dir, by ascending step, in *out (malloc'ed, NULL when
 * there are none). A missing dir has none. Returns the count, or -1 with the error set. */
int plm_checkpoint_list(const char *dir, plm_checkpoint_entry **out);

#endif
