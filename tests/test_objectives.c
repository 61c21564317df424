/* test_objectives.c - the pretraining objectives beyond plain CLM/MLM and their
 * schedules: warmup-stable-decay learning rates against hand-computed values. */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "test.h"
#include "train/adamw.h"

static bool near(double a, double b) { return fabs(a - b) <= 1e-6 * fmax(1.0, fabs(b)); }

/* WSD with warmup 10, 100 steps, decay 20%: warmup 0..9, stable 10..79, decay 80..99. */
static void test_wsd(void) {
    struct {
        long step;
        double sqrt_lr, lin_lr;
    } want[] = {
        {0, 0.0, 0.0},
        {5, 0.5, 0.5},
        {9, 0.9, 0.9},
        {10, 1.0, 1.0},
        {50, 1.0, 1.0},
        {79, 1.0, 1.0},
        {80, 1.0, 1.0},
        {84, 1.0 - sqrt(0.2), 0.8},
        {90, 1.0 - sqrt(0.5), 0.5},
        {99, 1.0 - sqrt(0.95), 0.05},
        {100, 0.0, 0.0},
        {120, 0.0, 0.0},
    };
    bool ok = true;
    char why[200] = "";
    for (size_t i = 0; i < PLM_ARRAY_LEN(want); i++) {
        double s = plm_lr_wsd(2e-3f, want[i].step, 10, 100, 0.2, PLM_DECAY_1SQRT) / 2e-3;
        double l = plm_lr_wsd(2e-3f, want[i].step, 10, 100, 0.2, PLM_DECAY_LINEAR) / 2e-3;
        if (!near(s, want[i].sqrt_lr) || !near(l, want[i].lin_lr)) {
            ok = false;
            snprintf(why, sizeof why, "step %ld: 1-sqrt %g (want %g), linear %g (want %g)", want[i].step, s,
                     want[i].sqrt_lr, l, want[i].lin_lr);
        }
    }
    TEST_CHECK(ok, "wsd_values", "%s", why);
    /* the decay never eats the warmup: 100% decay after 10 warmup steps decays over 90 */
    ok = near(plm_lr_wsd(1.0f, 10, 10, 100, 1.0, PLM_DECAY_LINEAR), 1.0) &&
         near(plm_lr_wsd(1.0f, 55, 10, 100, 1.0, PLM_DECAY_LINEAR), 0.5) &&
         near(plm_lr_wsd(1.0f, 5, 10, 100, 1.0, PLM_DECAY_LINEAR), 0.5);
    TEST_CHECK(ok, "wsd_decay_clipped_to_warmup", "decay fraction 1 overlaps the warmup");
    /* no decay: constant after the warmup */
    ok = near(plm_lr_wsd(1.0f, 99, 10, 100, 0.0, PLM_DECAY_1SQRT), 1.0);
    TEST_CHECK(ok, "wsd_no_decay", "decay fraction 0 is not constant");
    /* monotone: non-increasing after the warmup */
    ok = true;
    for (long s = 11; s <= 100; s++)
        ok &= plm_lr_wsd(1.0f, s, 10, 100, 0.3, PLM_DECAY_1SQRT) <=
              plm_lr_wsd(1.0f, s - 1, 10, 100, 0.3, PLM_DECAY_1SQRT);
    TEST_CHECK(ok, "wsd_monotone", "learning rate rises after the warmup");
    TEST_CHECK(plm_lr_at(PLM_SCHED_WSD, 1.0f, 90, 10, 100) == plm_lr_wsd(1.0f, 90, 10, 100, 0.2, PLM_DECAY_1SQRT),
               "wsd_lr_at_default", "plm_lr_at(WSD) is not 20%% 1-sqrt");
}

int main(void) {
    test_wsd();
    TEST_EXIT();
}
