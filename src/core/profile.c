/* profile.c - see profile.h */
#include "profile.h"

#include <omp.h>
#include <stdlib.h>
#include <string.h>

#include "common.h"

int plm_prof_state = -1;
plm_phase plm_prof_phase = PLM_PHASE_FWD;

#define PROF_SLOTS 64
static struct {
    const char *op;
    double t[3];
    double flops;
    long calls;
} slots[PROF_SLOTS];
static int num_slots;

void plm_prof_init(void) {
    const char *e = getenv("PLM_PROFILE");
    plm_prof_state = e && *e && strcmp(e, "0") != 0;
}

void plm_prof_enable(bool on) { plm_prof_state = on; }

/* Nested timed ops: child[d] collects the time of ops that ended at depth d + 1, so a
 * parent's slot gets its exclusive time and the table sums to the step. */
#define PROF_DEPTH 16
static double child[PROF_DEPTH + 1];
static int depth;

double plm_prof_begin(void) {
    if (!plm_prof_on() || omp_in_parallel() || depth == PROF_DEPTH) return 0.0;
    child[++depth] = 0.0;
    return plm_now();
}

void plm_prof_end(const char *op, double t0) { plm_prof_end_flops(op, t0, 0.0); }

void plm_prof_end_flops(const char *op, double t0, double flops) {
    if (t0 == 0.0) return;
    double total = plm_now() - t0, dt = total - child[depth];
    child[--depth] += total;
    int i = 0;
    while (i < num_slots && slots[i].op != op && strcmp(slots[i].op, op) != 0) i++;
    if (i == num_slots) {
        if (num_slots == PROF_SLOTS) return;
        slots[num_slots++].op = op;
    }
    slots[i].t[plm_prof_phase] += dt;
    slots[i].flops += flops;
    slots[i].calls++;
}

void plm_prof_reset(void) {
    for (int i = 0; i < num_slots; i++)
        memset(slots[i].t, 0, sizeof slots[i].t), slots[i].flops = 0.0, slots[i].calls = 0;
}

static int by_total(const void *a, const void *b) {
    const double *x = ((const __typeof__(slots[0]) *)a)->t, *y = ((const __typeof__(slots[0]) *)b)->t;
    double sx = x[0] + x[1] + x[2], sy = y[0] + y[1] + y[2];
    return sx < sy ? 1 : sx > sy ? -1 : 0;
}

/* "| 123.4 |", or "| |" when the slot counted no FLOPs */
static void print_rate(FILE *f, double flops, double seconds) {
    if (flops > 0.0 && seconds > 0.0)
        fprintf(f, " %.1f |\n", flops / seconds * 1e-9);
    else
        fprintf(f, " |\n");
}

void plm_prof_report(FILE *f, int steps, double step_ms) {
    qsort(slots, (size_t)num_slots, sizeof slots[0], by_total);
    double k = 1e3 / (steps > 0 ? steps : 1), sum = 0.0, ph[3] = {0, 0, 0}, gph[3] = {0, 0, 0}, gflops = 0.0;
    fprintf(f, "| op | forward ms | backward ms | optimizer ms | total ms | %% of step | GFLOP/s |\n");
    fprintf(f, "|---|---|---|---|---|---|---|\n");
    for (int i = 0; i < num_slots; i++) {
        double tot = (slots[i].t[0] + slots[i].t[1] + slots[i].t[2]) * k;
        for (int p = 0; p < 3; p++) ph[p] += slots[i].t[p] * k;
        if (slots[i].flops > 0.0) {
            for (int p = 0; p < 3; p++) gph[p] += slots[i].t[p] * k;
            gflops += slots[i].flops;
        }
        sum += tot;
        fprintf(f, "| %s | %.2f | %.2f | %.2f | %.2f | %.1f%% |", slots[i].op, slots[i].t[0] * k, slots[i].t[1] * k,
                slots[i].t[2] * k, tot, 100.0 * tot / step_ms);
        print_rate(f, slots[i].flops, tot / k);
    }
    fprintf(f, "| (untimed: glue, heads' gathers, zeroing) | | | | %.2f | %.1f%% | |\n", step_ms - sum,
            100.0 * (step_ms - sum) / step_ms);
    double gtot = gph[0] + gph[1] + gph[2];
    fprintf(f, "| (the ops with a rate, together) | %.2f | %.2f | %.2f | %.2f | %.1f%% |", gph[0], gph[1], gph[2], gtot,
            100.0 * gtot / step_ms);
    print_rate(f, gflops, gtot / k);
    fprintf(f, "| **step** | %.2f | %.2f | %.2f | %.2f | 100%% | |\n", ph[0], ph[1], ph[2], step_ms);
}
