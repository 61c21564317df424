/* profile.h - per-op wall-time accounting for `bench/run.sh --profile`. Off unless the
 * environment has PLM_PROFILE=1 (read once) or plm_prof_enable() was called; when off an
 * op pays one predictable branch. When on, every op outside an OpenMP parallel region
 * adds its wall time to a slot named (op, phase), phase = forward, backward or
 * optimizer as set by the caller (plm_model_run, the optimizer). Ops nested in a timed
 * op (the GEMMs of attention run inside its parallel region) are not counted twice.
 * Owns the slot table; not thread-safe beyond the master thread, which is the only one
 * that times. */
#ifndef PLM_PROFILE_H
#define PLM_PROFILE_H

#include <stdbool.h>
#include <stdio.h>

typedef enum { PLM_PHASE_FWD = 0, PLM_PHASE_BWD = 1, PLM_PHASE_OPT = 2 } plm_phase;

extern int plm_prof_state; /* -1: not read yet, 0: off, 1: on */
extern plm_phase plm_prof_phase;

void plm_prof_init(void);
void plm_prof_enable(bool on);
static inline bool plm_prof_on(void) {
    if (__builtin_expect(plm_prof_state < 0, 0)) plm_prof_init();
    return plm_prof_state > 0;
}
/* Start of a timed op: 0 when not timed (off, or inside a parallel region). */
double plm_prof_begin(void);
/* Adds the time since t0 (from plm_prof_begin; 0 = ignore) to op's slot in this phase.
 * op must be a string literal (slots are matched by pointer, then by content). */
void plm_prof_end(const char *op, double t0);
/* plm_prof_end for an op that did flops floating-point operations (a GEMM: 2 M N K):
 * the table shows its slot's GFLOP/s, and the GEMMs' rate over all of them. */
void plm_prof_end_flops(const char *op, double t0, double flops);
/* Sets the phase for the ops that follow. */
static inline void plm_prof_set_phase(plm_phase p) { plm_prof_phase = p; }
/* Clears every slot (after warm-up steps). */
void plm_prof_reset(void);
/* Prints the table: per op the mean ms per step in each phase, its share of step_ms
 * (the measured mean step time) and, for ops that count FLOPs, GFLOP/s; then the
 * untimed remainder and the sum over the ops that count FLOPs. */
void plm_prof_report(FILE *f, int steps, double step_ms);

#endif
