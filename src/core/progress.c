/* progress.c - see progress.h */
#include "progress.h"

#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "common.h"

void plm_format_duration(char *buf, int n, double s) {
    if (s < 0 || s > 1e7) {
        snprintf(buf, (size_t)n, "--");
        return;
    }
    long t = (long)(s + 0.5);
    if (t >= 3600)
        snprintf(buf, (size_t)n, "%ldh%02ldm", t / 3600, t % 3600 / 60);
    else if (t >= 60)
        snprintf(buf, (size_t)n, "%ldm%02lds", t / 60, t % 60);
    else
        snprintf(buf, (size_t)n, "%lds", t);
}

void plm_progress_start(plm_progress *p, const char *label, long total, long start_done) {
    p->label = label;
    p->total = total > 0 ? total : 1;
    p->t0 = plm_now();
    p->last_print = 0;
    p->start_done = start_done;
    p->last_pct = -1;
    p->tty = isatty(2);
    p->quiet = getenv("PLM_QUIET") != NULL;
}

static void draw(plm_progress *p, long done, const char *status, bool final) {
    double el = plm_now() - p->t0;
    double frac = (double)done / (double)p->total;
    double rate = (double)(done - p->start_done) / (el > 1e-9 ? el : 1e-9);
    char eta[16], ela[16];
    plm_format_duration(eta, sizeof eta, rate > 0 ? (double)(p->total - done) / rate : -1);
    plm_format_duration(ela, sizeof ela, el);
    if (p->tty) {
        char bar[26];
        int filled = (int)(frac * 24 + 0.5);
        for (int i = 0; i < 24; i++) bar[i] = i < filled ? '#' : '.';
        bar[24] = 0;
        fprintf(stderr, "\r%s [%s] %3d%% %ld/%ld | %s | %s<%s\033[K", p->label, bar, (int)(frac * 100), done, p->total,
                status ? status : "", ela, final ? "done" : eta);
        if (final) fputc('\n', stderr);
    } else {
        fprintf(stderr, "%s %3d%% %ld/%ld | %s | elapsed %s, ETA %s\n", p->label, (int)(frac * 100), done, p->total,
                status ? status : "", ela, final ? "0s" : eta);
    }
    fflush(stderr);
}

void plm_progress_update(plm_progress *p, long done, const char *status) {
    if (p->quiet || done >= p->total) return; /* the last line is plm_progress_finish's */
    double now = plm_now();
    int pct = (int)(100.0 * (double)done / (double)p->total);
    if (p->tty) {
        if (now - p->last_print < 0.1) return;
    } else if (pct / 10 == p->last_pct / 10 && now - p->last_print < 30.0) {
        return; /* logs: every 10% or 30 s */
    }
    p->last_print = now;
    p->last_pct = pct;
    draw(p, done, status, false);
}

void plm_progress_finish(plm_progress *p, const char *status) {
    if (p->quiet) return;
    draw(p, p->total, status, true);
}
