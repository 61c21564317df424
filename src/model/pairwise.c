/* pairwise.c - see pairwise.h */
#include "pairwise.h"

#include <math.h>
#include <string.h>

/* -log sigmoid(d) and sigmoid(-d) without overflow */
static double neg_log_sigmoid(double d) { return d >= 0 ? log1p(exp(-d)) : -d + log1p(exp(d)); }
static double sigmoid_neg(double d) { return d >= 0 ? exp(-d) / (1.0 + exp(-d)) : 1.0 / (1.0 + exp(d)); }

void pairwise_forward(const float *r, int n, float center, plm_pairwise_stats *st) {
    memset(st, 0, sizeof *st);
    st->pairs = n;
    st->min_reward = n > 0 ? INFINITY : NAN;
    st->max_reward = n > 0 ? -INFINITY : NAN;
    for (int i = 0; i < n; i++) {
        double rc = r[2 * i], rr = r[2 * i + 1], d = rc - rr, s = rc + rr;
        st->loss_sum += neg_log_sigmoid(d) + (double)center * s * s;
        st->margin_sum += d;
        st->chosen_sum += rc;
        st->rejected_sum += rr;
        st->correct += rc > rr;
        st->min_reward = fmin(st->min_reward, fmin(rc, rr));
        st->max_reward = fmax(st->max_reward, fmax(rc, rr));
    }
}

void pairwise_backward(float *dr, const float *r, int n, float center, float grad_scale) {
    for (int i = 0; i < n; i++) {
        double rc = r[2 * i], rr = r[2 * i + 1], p = sigmoid_neg(rc - rr), q = 2.0 * center * (rc + rr);
        dr[2 * i] = (float)((q - p) * grad_scale);
        dr[2 * i + 1] = (float)((q + p) * grad_scale);
    }
}
