/* progress.h - progress bars on stderr for long work: percent, ETA, rate and a
 * caller-supplied status (loss, tokens/s). On a terminal it redraws one line; in a
 * log (CI) it prints a line every few percent instead. */
#ifndef PLM_PROGRESS_H
#define PLM_PROGRESS_H

#include <stdbool.h>

typedef struct {
    const char *label;
    long total;
    double t0, last_print;
    long start_done; /* progress at start (a resumed run), excluded from the rate */
    int last_pct;
    bool tty, quiet;
} plm_progress;

void plm_progress_start(plm_progress *p, const char *label, long total, long start_done);
/* status: a short already-formatted string, e.g. "loss 3.21 | 12.3k tok/s". */
void plm_progress_update(plm_progress *p, long done, const char *status);
void plm_progress_finish(plm_progress *p, const char *status);
/* "1h02m", "3m05s", "12s" */
void plm_format_duration(char *buf, int n, double seconds);

#endif
