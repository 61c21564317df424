/* dist.h - data parallelism over MPI: the world (this process's rank among size ranks),
 * the gradient reduction of a training step, ZeRO-1 optimizer-state sharding and the
 * small collectives the trainers need. Owns the gradient-sync state: buckets in flight,
 * the deterministic fold buffers and the ZeRO-1 slice.
 *
 * Built with MPI when the Makefile finds mpicc (PLM_MPI defined); without it every
 * function below is the world of one process (rank 0 of 1) and costs nothing.
 *
 * A training step of N ranks, each running `accum` micro-batches of B sequences, is
 * K = N * accum global micro-batches: micro-batch j = rank * accum + micro takes windows
 * [j B, (j + 1) B) of the step's part of the global data order and dropout stream j, and
 * its loss is scaled by 1/K. So N ranks compute what one process with K accumulation steps
 * computes; only the order in which the K gradients are added differs:
 *   default        MPI_Allreduce (Open MPI picks the algorithm): equal within rounding;
 *                  bucketed MPI_Iallreduce overlapping the backward pass when the model
 *                  has one backbone (layer l's gradient is final once its backward ran);
 *   deterministic  every micro-batch gradient is computed from zero and folded in global
 *                  order j = 0, 1, ..., K-1 (a chain through the ranks, then a broadcast):
 *                  the same bits for every N dividing K, including one process. */
#ifndef PLM_DIST_H
#define PLM_DIST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "adamw.h"
#include "model/model.h"

/* MPI_Init_thread (funneled: only the main thread calls MPI; OpenMP threads compute).
 * Non-root ranks get PLM's errors only; call once, first thing in main. */
void plm_dist_init(int *argc, char ***argv);
/* Ends the process's part in the world: MPI_Finalize when rc == 0, otherwise (world > 1)
 * a line naming the rank and the exit code, then MPI_Abort, which ends every rank.
 * Returns rc. */
int plm_dist_finish(int rc);
int plm_dist_rank(void);
int plm_dist_size(void);
static inline bool plm_dist_is_root(void) { return plm_dist_rank() == 0; }
/* true when built with MPI */
bool plm_dist_built_with_mpi(void);

/* In-place sum over the world. */
void plm_dist_allreduce_f64(double *x, int n);
/* all[size * n]: rank r's n values are at all + r n; afterwards every rank has them all. */
void plm_dist_allgather_f64(double *all, int n);
void plm_dist_barrier(void);
/* Every rank must pass the same value (a hash of the run's settings): returns 0, or -1 with
 * the error set naming the first rank whose value differs from rank 0's. */
int plm_dist_check_same(uint64_t value, const char *what);

typedef struct {
    bool deterministic;  /* fixed-order fold (see above) */
    bool zero1;          /* shard AdamW's moments: reduce-scatter, update a slice, all-gather */
    bool no_overlap;     /* one blocking allreduce after the backward pass */
    float bucket_cap_mb; /* overlap: a bucket is sent once it holds this many MiB (0: 4; DDP's bucket_cap_mb) */
} plm_dist_opts;

typedef struct plm_grad_sync plm_grad_sync;

/* For model m trained with accum micro-batches per rank and step. */
plm_grad_sync *plm_grad_sync_create(plm_model *m, int accum, const plm_dist_opts *o);
void plm_grad_sync_free(plm_grad_sync *s);
/* Around every micro-batch's forward/backward (m->grads zeroed before micro 0). */
void plm_grad_sync_micro_begin(plm_grad_sync *s, int micro);
void plm_grad_sync_micro_end(plm_grad_sync *s, int micro);
/* After the last micro-batch: m->grads holds the sum over every rank's micro-batches
 * (ZeRO-1: at least this rank's slice of it does). */
void plm_grad_sync_finish(plm_grad_sync *s);
/* plm_clip_grad_norm over the world's gradient (ZeRO-1: each rank's slice). */
double plm_grad_sync_clip(plm_grad_sync *s, double max_norm);
/* The optimizer for this rank: the whole model, or its ZeRO-1 slice. */
void plm_grad_sync_adamw_init(const plm_grad_sync *s, plm_adamw *o);
/* plm_adamw_step; ZeRO-1: this rank's slice, then every rank gets every parameter. */
void plm_grad_sync_adamw_step(plm_grad_sync *s, plm_adamw *o, const plm_adamw_hparams *h, float lr);
/* The whole optimizer state on rank 0 for a checkpoint: o itself when it is not sharded,
 * else gathered into *full (allocated; plm_adamw_free it) on rank 0. Collective: every rank
 * calls it. Returns the state to save on rank 0, NULL elsewhere. */
const plm_adamw *plm_grad_sync_full_state(plm_grad_sync *s, const plm_adamw *o, plm_adamw *full);

#endif
