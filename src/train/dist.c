/* dist.c - see dist.h */
#include "dist.h"

#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"

#ifdef PLM_MPI
#include <mpi.h>
#endif

static int g_rank = 0, g_size = 1;
#ifdef PLM_MPI
static bool g_active = false; /* MPI initialised and not finalised */
#endif

bool plm_dist_built_with_mpi(void) {
#ifdef PLM_MPI
    return true;
#else
    return false;
#endif
}

int plm_dist_rank(void) { return g_rank; }
int plm_dist_size(void) { return g_size; }

#ifdef PLM_MPI
/* A rank that leaves without plm_dist_finish (plm_die: out of memory, a programming
 * error) must not leave the others waiting in a collective: name it and abort the job. */
static void exit_without_finish(void) {
    if (!g_active || g_size == 1) return;
    fprintf(stderr, "plm: rank %d of %d exited during the run; aborting all ranks\n", g_rank, g_size);
    g_active = false;
    MPI_Abort(MPI_COMM_WORLD, PLM_EXIT_FAIL);
}
#endif

void plm_dist_init(int *argc, char ***argv) {
#ifdef PLM_MPI
    /* Only under a launcher: a plain `plm` run is a world of one without MPI at all
     * (no singleton init, which would start an ORTE daemon for nothing). */
    if (!getenv("OMPI_COMM_WORLD_SIZE") && !getenv("PMI_SIZE") && !getenv("PMIX_RANK")) return;
    int provided;
    if (MPI_Init_thread(argc, argv, MPI_THREAD_FUNNELED, &provided) != MPI_SUCCESS) plm_die("MPI_Init_thread failed");
    g_active = true;
    MPI_Comm_rank(MPI_COMM_WORLD, &g_rank);
    MPI_Comm_size(MPI_COMM_WORLD, &g_size);
    /* errors of MPI calls abort the job (the default), never return half-done */
    MPI_Comm_set_errhandler(MPI_COMM_WORLD, MPI_ERRORS_ARE_FATAL);
    atexit(exit_without_finish);
#else
    (void)argc;
    (void)argv;
#endif
}

int plm_dist_finish(int rc) {
#ifdef PLM_MPI
    if (!g_active) return rc;
    if (rc != 0 && g_size > 1) {
        fprintf(stderr, "plm: rank %d of %d failed (exit code %d); aborting all ranks\n", g_rank, g_size, rc);
        fflush(stderr);
        g_active = false;
        MPI_Abort(MPI_COMM_WORLD, rc);
    }
    g_active = false;
    MPI_Finalize();
#endif
    return rc;
}

void plm_dist_allreduce_f64(double *x, int n) {
#ifdef PLM_MPI
    if (g_size > 1) MPI_Allreduce(MPI_IN_PLACE, x, n, MPI_DOUBLE, MPI_SUM, MPI_COMM_WORLD);
#else
    (void)x;
    (void)n;
#endif
}

void plm_dist_allgather_f64(double *all, int n) {
#ifdef PLM_MPI
    if (g_size > 1) MPI_Allgather(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, all, n, MPI_DOUBLE, MPI_COMM_WORLD);
#else
    (void)all;
    (void)n;
#endif
}

void plm_dist_barrier(void) {
#ifdef PLM_MPI
    if (g_size > 1) MPI_Barrier(MPI_COMM_WORLD);
#endif
}

int plm_dist_check_same(uint64_t value, const char *what) {
#ifdef PLM_MPI
    if (g_size > 1) {
        uint64_t *all = plm_malloc((size_t)g_size * sizeof(uint64_t));
        MPI_Allgather(&value, 1, MPI_UINT64_T, all, 1, MPI_UINT64_T, MPI_COMM_WORLD);
        int bad = -1;
        for (int r = 1; r < g_size && bad < 0; r++)
            if (all[r] != all[0]) bad = r;
        free(all);
        if (bad >= 0) {
            plm_error("rank %d was started with other %s than rank 0: every rank must get the same arguments", bad,
                      what);
            return -1;
        }
    }
#else
    (void)value;
    (void)what;
#endif
    return 0;
}

/* ---------------------------------------------------------------- gradient sync */

#define MAX_BUCKETS 512
#define FOLD_CHUNK  (1 << 20) /* floats per message of the deterministic chain */

struct plm_grad_sync {
    plm_model *m;
    plm_dist_opts o;
    int accum, rank, size;
    size_t n;
    /* ZeRO-1: rank r owns parameters [lo[r], lo[r + 1]) */
    size_t *lo;
    float *slice; /* reduce-scatter result */
    /* deterministic: the gradients of micro-batches 0 .. accum-2 of this rank (the last
     * one stays in m->grads) and the fold */
    float *stash, *fold;
    /* overlap: start offset of every layer of backbone 0 in the buffer; the suffix
     * [pending_hi, n) is in flight */
    size_t *layer_lo;
    size_t pending_hi, bucket_bytes;
    int next_layer; /* the layer the backward hook signals next (counts down) */
    int num_req;
#ifdef PLM_MPI
    MPI_Request req[MAX_BUCKETS];
#endif
};

static bool overlapping(const plm_grad_sync *s) {
    return s->size > 1 && !s->o.no_overlap && !s->o.deterministic && !s->o.zero1 && s->m->num_backbones == 1;
}

/* Lowest offset into m->grads of any gradient view of layer l of backbone 0. */
static size_t layer_offset(const plm_model *m, int l) {
    const plm_layer_weights *g = &m->bb[0].g.layers[l];
    float *const *f = (float *const *)g;
    size_t lo = m->num_params;
    for (size_t k = 0; k < sizeof *g / sizeof(float *); k++)
        if (f[k]) lo = PLM_MIN(lo, (size_t)(f[k] - m->grads));
    return lo;
}

plm_grad_sync *plm_grad_sync_create(plm_model *m, int accum, const plm_dist_opts *o) {
    plm_grad_sync *s = plm_calloc(1, sizeof *s);
    s->m = m;
    s->o = *o;
    s->bucket_bytes = o->bucket_cap_mb > 0 ? (size_t)(o->bucket_cap_mb * 1048576.0) : (size_t)4 << 20;
    s->accum = accum;
    s->rank = g_rank;
    s->size = g_size;
    s->n = m->num_params;
    s->lo = plm_malloc((size_t)(g_size + 1) * sizeof(size_t));
    for (int r = 0; r <= g_size; r++) s->lo[r] = s->n * (size_t)r / (size_t)g_size;
    if (o->zero1) s->slice = plm_aligned_alloc((s->lo[g_rank + 1] - s->lo[g_rank] + 1) * sizeof(float));
    if (o->deterministic) {
        if (accum > 1) s->stash = plm_aligned_alloc((size_t)(accum - 1) * s->n * sizeof(float));
        s->fold = plm_aligned_alloc(PLM_MIN(s->n, (size_t)FOLD_CHUNK) * sizeof(float));
    }
    if (overlapping(s)) {
        int L = m->bb[0].config.num_hidden_layers;
        s->layer_lo = plm_malloc((size_t)(L + 1) * sizeof(size_t));
        for (int l = 0; l < L; l++) s->layer_lo[l] = layer_offset(m, l);
    }
    return s;
}

void plm_grad_sync_free(plm_grad_sync *s) {
    if (!s) return;
    s->m->bb[0].layer_grads_done = NULL;
    free(s->lo);
    free(s->slice);
    free(s->stash);
    free(s->fold);
    free(s->layer_lo);
    free(s);
}

#ifdef PLM_MPI
/* Starts the in-place sum of grads[lo, hi) over the world. */
static void launch(plm_grad_sync *s, size_t lo, size_t hi) {
    float *g = s->m->grads;
    while (lo < hi) {
        size_t k = PLM_MIN(hi - lo, (size_t)1 << 30); /* MPI counts are int */
        if (s->num_req == MAX_BUCKETS) {              /* never with <= 510 layers; stay correct anyway */
            MPI_Waitall(s->num_req, s->req, MPI_STATUSES_IGNORE);
            s->num_req = 0;
        }
        MPI_Iallreduce(MPI_IN_PLACE, g + lo, (int)k, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD, &s->req[s->num_req++]);
        lo += k;
    }
}

/* Backward hook: layer l's gradient and every one after it in the buffer (later layers,
 * ln_f, pooler, heads) are final; send them once they make a bucket. Testing the
 * requests drives Open MPI's progress of the ones in flight. */
static void on_layer_done(void *ctx, int l) {
    plm_grad_sync *s = ctx;
    s->next_layer = l - 1;
    size_t lo = s->layer_lo[l];
    if (lo < s->pending_hi && (s->pending_hi - lo) * sizeof(float) >= s->bucket_bytes) {
        launch(s, lo, s->pending_hi);
        s->pending_hi = lo;
    }
    if (s->num_req) {
        int done;
        MPI_Testall(s->num_req, s->req, &done, MPI_STATUSES_IGNORE);
    }
}
#endif

void plm_grad_sync_micro_begin(plm_grad_sync *s, int micro) {
    if (s->o.deterministic && micro > 0) plm_model_zero_grad(s->m);
#ifdef PLM_MPI
    if (overlapping(s) && micro == s->accum - 1) {
        s->pending_hi = s->n;
        s->next_layer = s->m->bb[0].config.num_hidden_layers - 1;
        s->num_req = 0;
        s->m->bb[0].layer_grads_done = on_layer_done;
        s->m->bb[0].layer_grads_ctx = s;
    }
#endif
}

void plm_grad_sync_micro_end(plm_grad_sync *s, int micro) {
    s->m->bb[0].layer_grads_done = NULL;
    if (s->o.deterministic && micro < s->accum - 1)
        memcpy(s->stash + (size_t)micro * s->n, s->m->grads, s->n * sizeof(float));
}

/* Deterministic: fold[i] = (((g_0 + g_1) + g_2) + ... + g_{K-1})[i] in global micro-batch
 * order, chunk by chunk: rank r receives the partial fold of ranks < r, adds its own
 * micro-batches in order and passes it on; the last rank broadcasts the result. Chunks
 * pipeline the chain. One process does the same additions, so the bits match. */
static void deterministic_fold(plm_grad_sync *s) {
    float *g = s->m->grads;
    for (size_t c0 = 0; c0 < s->n; c0 += FOLD_CHUNK) {
        size_t len = PLM_MIN((size_t)FOLD_CHUNK, s->n - c0);
        float *f = s->fold;
        int first = 0; /* local micro-batch the fold continues with */
        if (s->rank == 0) {
            memcpy(f, s->accum > 1 ? s->stash + c0 : g + c0, len * sizeof(float));
            first = 1;
        }
#ifdef PLM_MPI
        else
            MPI_Recv(f, (int)len, MPI_FLOAT, s->rank - 1, 0, MPI_COMM_WORLD, MPI_STATUS_IGNORE);
#endif
        for (int mi = first; mi < s->accum; mi++) {
            const float *src = (mi < s->accum - 1 ? s->stash + (size_t)mi * s->n : g) + c0;
#pragma omp simd
            for (size_t i = 0; i < len; i++) f[i] += src[i];
        }
#ifdef PLM_MPI
        if (s->rank < s->size - 1) MPI_Send(f, (int)len, MPI_FLOAT, s->rank + 1, 0, MPI_COMM_WORLD);
#endif
        memcpy(g + c0, f, len * sizeof(float));
    }
#ifdef PLM_MPI
    /* the sum is complete on the last rank; a broadcast copies bits */
    for (size_t c0 = 0; s->size > 1 && c0 < s->n; c0 += (size_t)1 << 30)
        MPI_Bcast(g + c0, (int)PLM_MIN((size_t)1 << 30, s->n - c0), MPI_FLOAT, s->size - 1, MPI_COMM_WORLD);
#endif
}

void plm_grad_sync_finish(plm_grad_sync *s) {
    if (s->o.deterministic) {
        deterministic_fold(s);
        if (s->o.zero1) memcpy(s->slice, s->m->grads + s->lo[s->rank], (s->lo[s->rank + 1] - s->lo[s->rank]) * 4);
        return;
    }
#ifdef PLM_MPI
    if (s->size == 1) return;
    float *g = s->m->grads;
    if (s->o.zero1) {
        /* each rank gets the world's sum of its slice only */
        int *counts = plm_malloc((size_t)s->size * sizeof(int));
        for (int r = 0; r < s->size; r++) counts[r] = (int)(s->lo[r + 1] - s->lo[r]);
        MPI_Reduce_scatter(g, s->slice, counts, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
        free(counts);
        return;
    }
    if (overlapping(s)) {
        /* every rank starts the same buckets in the same order, also one that ran no
         * backward pass (no examples left in a short last batch of fine-tuning) */
        while (s->next_layer >= 0) on_layer_done(s, s->next_layer);
        if (s->pending_hi > 0) launch(s, 0, s->pending_hi);
        MPI_Waitall(s->num_req, s->req, MPI_STATUSES_IGNORE);
        s->num_req = 0;
        return;
    }
    for (size_t lo = 0; lo < s->n; lo += (size_t)1 << 30)
        MPI_Allreduce(MPI_IN_PLACE, g + lo, (int)PLM_MIN((size_t)1 << 30, s->n - lo), MPI_FLOAT, MPI_SUM,
                      MPI_COMM_WORLD);
#endif
}

double plm_grad_sync_clip(plm_grad_sync *s, double max_norm) {
    if (!s->o.zero1) return plm_clip_grad_norm(s->m, max_norm);
    size_t n = s->lo[s->rank + 1] - s->lo[s->rank];
    if (s->o.deterministic) { /* every rank has the whole sum: the norm of one process */
        double norm = plm_clip_grad_norm(s->m, max_norm);
        memcpy(s->slice, s->m->grads + s->lo[s->rank], n * sizeof(float));
        return norm;
    }
    double sq = 0.0;
    for (size_t i = 0; i < n; i++) sq += (double)s->slice[i] * s->slice[i];
    plm_dist_allreduce_f64(&sq, 1);
    double norm = sqrt(sq);
    if (max_norm > 0.0) { /* as plm_clip_grad_norm */
        double coef = max_norm / (norm + 1e-6);
        if (coef < 1.0)
            for (size_t i = 0; i < n; i++) s->slice[i] *= (float)coef;
    }
    return norm;
}

void plm_grad_sync_adamw_init(const plm_grad_sync *s, plm_adamw *o) {
    if (s->o.zero1)
        plm_adamw_init_slice(o, s->lo[s->rank], s->lo[s->rank + 1] - s->lo[s->rank]);
    else
        plm_adamw_init(o, s->n);
}

void plm_grad_sync_adamw_step(plm_grad_sync *s, plm_adamw *o, const plm_adamw_hparams *h, float lr) {
    if (!s->o.zero1) {
        plm_adamw_step(o, s->m, h, lr);
        return;
    }
    /* the update reads the slice's reduced gradient from m->grads */
    memcpy(s->m->grads + o->offset, s->slice, o->n * sizeof(float));
    plm_adamw_step(o, s->m, h, lr);
#ifdef PLM_MPI
    if (s->size > 1) {
        int *counts = plm_malloc((size_t)s->size * 2 * sizeof(int)), *displs = counts + s->size;
        for (int r = 0; r < s->size; r++) {
            counts[r] = (int)(s->lo[r + 1] - s->lo[r]);
            displs[r] = (int)s->lo[r];
        }
        MPI_Allgatherv(MPI_IN_PLACE, 0, MPI_DATATYPE_NULL, s->m->params, counts, displs, MPI_FLOAT, MPI_COMM_WORLD);
        plm_model_params_written(s->m);
        free(counts);
    }
#endif
}

const plm_adamw *plm_grad_sync_full_state(plm_grad_sync *s, const plm_adamw *o, plm_adamw *full) {
    if (!s->o.zero1) return s->rank == 0 ? o : NULL;
    if (s->rank == 0) {
        plm_adamw_init(full, s->n);
        full->step = o->step;
    }
#ifdef PLM_MPI
    if (s->size > 1) {
        int *counts = plm_malloc((size_t)s->size * 2 * sizeof(int)), *displs = counts + s->size;
        for (int r = 0; r < s->size; r++) {
            counts[r] = (int)(s->lo[r + 1] - s->lo[r]);
            displs[r] = (int)s->lo[r];
        }
        MPI_Gatherv(o->m, (int)o->n, MPI_FLOAT, s->rank == 0 ? full->m : NULL, counts, displs, MPI_FLOAT, 0,
                    MPI_COMM_WORLD);
        MPI_Gatherv(o->v, (int)o->n, MPI_FLOAT, s->rank == 0 ? full->v : NULL, counts, displs, MPI_FLOAT, 0,
                    MPI_COMM_WORLD);
        free(counts);
        return s->rank == 0 ? full : NULL;
    }
#endif
    memcpy(full->m, o->m, o->n * sizeof(float));
    memcpy(full->v, o->v, o->n * sizeof(float));
    return full;
}
