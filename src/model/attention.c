/* attention.c - see attention.h
 *
 * Flash-attention style (Dao et al. 2022), on the CPU: the T x T score matrix is never
 * stored. Per (batch, head) the queries are cut into blocks of ATT_BQ rows and the keys
 * into blocks of ATT_BK; one BQ x BK tile of scores is computed with a GEMM, masked,
 * turned into probabilities with an online softmax and multiplied into the output
 * while it is in cache. The forward pass saves per query row only
 *     lse_i = m_i + log l_i   (m_i = max_j s_ij, l_i = sum_j exp(s_ij - m_i)),
 * so that the backward pass recomputes every probability exactly as p_ij = exp(s_ij - lse_i),
 * and a copy of the output for D_i = dO_i . O_i (see attention_backward_ex).
 *
 * Online softmax over the key blocks of one query row: with m the running maximum,
 * l the running sum and o the running (unnormalised) output,
 *     m' = max(m, max_j s_j);  a = exp(m - m');  p_j = exp(s_j - m')
 *     l' = a l + sum_j p_j;    o' = a o + sum_j drop(p_j) v_j
 * and at the end out = o / l. Dropout acts on the normalised probabilities, which
 * commutes with the final division, so the kept sum l is of the undropped p.
 *
 * Dropout: the keep decision of probability (b, h, i, j) is the counter-based hash of
 * its global index ((b NH + h) Tq + i) Tk + j, so the backward pass regenerates the
 * same mask without storing it, and the mask does not depend on the blocking or on the
 * number of threads.
 *
 * Causal: a query block [i0, i1) only visits keys j < i1; the tiles above the diagonal
 * are skipped, about half the work of a causal square.
 *
 * Packed documents (seq_idx): key j is visible to query i only when both belong to the
 * same document, so the score matrix is block diagonal. A tile whose query documents and
 * key documents (as ranges [min, max]) do not overlap has only masked entries and is
 * skipped, forward and backward: with rows packed in document order only the tiles
 * near the diagonal blocks are computed. Skipping changes no result, since a masked
 * probability is exactly 0 and the dropout mask is a function of the global index. */
#include "attention.h"

#include <math.h>
#include <stdlib.h>
#include <string.h>

#include "core/common.h"
#include "core/profile.h"
#include "core/rng.h"
#include "attn_bf16.h"
#include "fastmath.h"
#include "gemm.h"

#define ATT_BQ   64  /* query rows per block */
#define ATT_BK   128 /* keys per block */
#define ATT_DOCS 2   /* the flag of documents in the saved state */

/* The range [lo, hi] of the document ids (saved key mask values, 0 = padding left out)
 * of tokens [j0, j0 + n); lo > hi when they are all padding. */
static void doc_range(const float *km, int j0, int n, float *lo, float *hi) {
    float a = INFINITY, b = -INFINITY;
    for (int j = j0; j < j0 + n; j++)
        if (km[j] != 0.0f) {
            a = km[j] < a ? km[j] : a;
            b = km[j] > b ? km[j] : b;
        }
    *lo = a;
    *hi = b;
}

/* Whether a tile of keys [j0, j0 + bk) can hold a key of the query block's documents
 * [qlo, qhi]: without documents always. */
static bool tile_needed(bool docs, const float *km, int j0, int bk, float qlo, float qhi) {
    if (!docs) return true;
    float lo, hi;
    doc_range(km, j0, bk, &lo, &hi);
    return lo <= hi && qlo <= qhi && lo <= qhi && qlo <= hi;
}

/* The saved state (att): lse [B, NH, Tq] | out [B, NH, Tq, hs] | key mask [B, Tk] as
 * 1/0 floats, or with documents seq_idx + 1 (0: padding) | flags (1: causal, 2:
 * documents), so that the fused backward, which has no mask argument, recomputes the
 * same probabilities. The document ids are exact as floats below 2^24. */
size_t attention_saved_floats(int B, int NH, int Tq, int Tk, int hs) {
    return (size_t)B * NH * Tq * (size_t)(hs + 1) + (size_t)B * Tk + 1;
}

static float *saved_mask(const attn_shape *a, const float *att) {
    return (float *)att + (size_t)a->B * a->NH * a->Tq * (size_t)(a->hs + 1);
}

/* One tile of scores -> probabilities in place. s: [bq, bk] (row stride ATT_BK) holds
 * scale Q K^T for rows i0.. and keys j0..; adds the bias, masks (with docs, a key of
 * another document than the query's, and every key of a padding query), and writes
 * p = exp(s - ref_i) where ref_i is lse (backward) or the updated running max
 * (forward); masked entries become exactly 0. Forward (m != NULL): updates m, l and
 * writes alpha_i = exp(m_old - m_new) for rescaling the running output. */
static void tile_probs(const attn_shape *a, bool docs, int h, const float *km, float *s, int i0, int bq, int j0, int bk,
                       const float *lse, float *m, float *l, float *alpha) {
    for (int r = 0; r < bq; r++) {
        int i = i0 + r;
        float *row = s + (size_t)r * ATT_BK;
        int jend = a->causal ? PLM_MIN(bk, i + 1 - j0) : bk; /* keys j0 + c, c < jend, are visible */
        if (jend < 0) jend = 0;
        float qd = docs ? km[i] : 0.0f; /* self-attention: query i's document is key i's */
        if (docs && qd == 0.0f) jend = 0;
        if (a->bias) {
            const float *br = a->bias + ((size_t)h * a->Tq + i) * a->Tk + j0;
            for (int c = 0; c < jend; c++) row[c] += br[c];
        }
        if (docs) {
            for (int c = 0; c < jend; c++)
                if (km[j0 + c] != qd) row[c] = -INFINITY;
        } else {
            for (int c = 0; c < jend; c++)
                if (km[j0 + c] == 0.0f) row[c] = -INFINITY;
        }
        for (int c = jend; c < bk; c++) row[c] = -INFINITY;
        float ref;
        if (m) {
            float mx = m[r];
#pragma omp simd reduction(max : mx)
            for (int c = 0; c < jend; c++) mx = row[c] > mx ? row[c] : mx;
            if (mx == -INFINITY) { /* nothing visible yet: the row stays empty */
                memset(row, 0, (size_t)bk * sizeof(float));
                alpha[r] = 1.0f;
                continue;
            }
            alpha[r] = m[r] == -INFINITY ? 0.0f : plm_expf(m[r] - mx);
            m[r] = mx;
            ref = mx;
        } else {
            ref = lse[r];
            if (ref == INFINITY) { /* a row with no visible key: all probabilities 0 */
                memset(row, 0, (size_t)bk * sizeof(float));
                continue;
            }
        }
        float sum = 0.0f;
#pragma omp simd reduction(+ : sum)
        for (int c = 0; c < bk; c++) {
            float e = row[c] == -INFINITY ? 0.0f : plm_expf(row[c] - ref);
            row[c] = e;
            sum += e;
        }
        if (m) l[r] = l[r] * alpha[r] + sum;
    }
}

/* dst = src * keep / (1 - p) over a tile, keep drawn from the element's global index;
 * keep, when not NULL, receives the draws (1 or 0) for a second tile (tile_keep). */
static void tile_dropout(float *dst, const float *src, const attn_shape *a, int bh, int i0, int bq, int j0, int bk,
                         float *keep) {
    float p = a->dropout_p, sc = 1.0f / (1.0f - p);
    uint32_t thr = plm_keep_threshold(p);
    for (int r = 0; r < bq; r++) {
        size_t base = ((size_t)bh * a->Tq + i0 + r) * a->Tk + j0;
        const float *x = src + (size_t)r * ATT_BK;
        float *y = dst + (size_t)r * ATT_BK, *k = keep ? keep + (size_t)r * ATT_BK : NULL;
        if (k) {
#pragma omp simd
            for (int c = 0; c < bk; c++) {
                bool kept = plm_hash_bits24(a->dropout_key, base + c) >= thr;
                k[c] = kept ? 1.0f : 0.0f;
                y[c] = kept ? x[c] * sc : 0.0f;
            }
        } else {
#pragma omp simd
            for (int c = 0; c < bk; c++) y[c] = plm_hash_bits24(a->dropout_key, base + c) >= thr ? x[c] * sc : 0.0f;
        }
    }
}

/* x = x * keep / (1 - p) in place, with the draws tile_dropout saved: the backward pass
 * drops dP with P's mask without hashing every index again. */
static void tile_keep(float *x, const float *keep, const attn_shape *a, int bq, int bk) {
    float sc = 1.0f / (1.0f - a->dropout_p);
    for (int r = 0; r < bq; r++) {
        float *y = x + (size_t)r * ATT_BK;
        const float *k = keep + (size_t)r * ATT_BK;
#pragma omp simd
        for (int c = 0; c < bk; c++) y[c] = k[c] != 0.0f ? y[c] * sc : 0.0f;
    }
}

/* Keys visible to some query of the block [i0, i1). */
static int keys_for(const attn_shape *a, int i1) { return a->causal ? PLM_MIN(i1, a->Tk) : a->Tk; }

void attention_forward_ex(const attn_shape *a, float *out, float *att) {
    double prof_t0 = plm_prof_begin();
    int B = a->B, Tq = a->Tq, NH = a->NH, hs = a->hs, ldo = NH * hs;
    int nqb = (Tq + ATT_BQ - 1) / ATT_BQ;
    float *lse_all = att, *osave = att + (size_t)B * NH * Tq, *kmask = saved_mask(a, att);
    bool docs = a->seq_idx != NULL;
    if (docs && Tq != a->Tk) plm_die("attention: seq_idx is for self-attention (Tq %d, Tk %d)", Tq, a->Tk);
    for (size_t n = 0; n < (size_t)B * a->Tk; n++)
        kmask[n] = a->key_mask && !a->key_mask[n] ? 0.0f : docs ? (float)a->seq_idx[n] + 1.0f : 1.0f;
    kmask[(size_t)B * a->Tk] = (float)((a->causal ? 1 : 0) + (docs ? ATT_DOCS : 0));
    /* bf16 products (attn_bf16.h): a thread packs K^T and V of a (batch, head) when it
     * starts on its query blocks, which it is then given together */
    bool b16 = attn_bf16_on();
    int kp = (hs + 1) / 2, ldt = attn_bf16_ld(a->Tk), ldh = attn_bf16_ld(hs);
    size_t kt_words = (size_t)kp * ldt, vn_words = (size_t)((a->Tk + 1) / 2) * ldh;
    int chunk = b16 ? nqb : 1;
    double flops = 0.0; /* of the tiles computed, for the profile: 2 products of 2 bq bk hs */
#pragma omp parallel reduction(+ : flops)
    {
        /* this thread's tiles: scores/probabilities, dropped probabilities, running
         * output, m, l, alpha; with bf16 the packed queries, probabilities, K's rows
         * (before their transpose), K^T and V */
        size_t f32 = (size_t)2 * ATT_BQ * ATT_BK + (size_t)ATT_BQ * hs + 3 * ATT_BQ;
        size_t w16 =
            b16 ? (size_t)ATT_BQ * kp + (size_t)ATT_BQ * ATT_BK / 2 + (size_t)a->Tk * kp + kt_words + vn_words : 0;
        float *s = plm_thread_scratch(2, f32 + w16);
        float *pdrop = s + ATT_BQ * ATT_BK, *o = pdrop + ATT_BQ * ATT_BK, *m = o + (size_t)ATT_BQ * hs;
        float *l = m + ATT_BQ, *alpha = l + ATT_BQ;
        uint32_t *qa = NULL, *pa = NULL, *krows = NULL, *kt = NULL, *vn = NULL;
        if (b16) {
            qa = (uint32_t *)(s + f32), pa = qa + (size_t)ATT_BQ * kp, krows = pa + ATT_BQ * ATT_BK / 2;
            kt = krows + (size_t)a->Tk * kp, vn = kt + kt_words;
        }
        /* the (batch, head) whose K^T and V are in kt and vn */
        int packed = -1;
        /* causal blocks further down have more keys: dynamic keeps the threads even; the
         * result of a block does not depend on which thread runs it */
#pragma omp for schedule(dynamic, chunk)
        for (int task = 0; task < B * NH * nqb; task++) {
            int bh = task / nqb, qb = task % nqb, b = bh / NH, h = bh % NH;
            int i0 = qb * ATT_BQ, bq = PLM_MIN(ATT_BQ, Tq - i0);
            const float *q = a->q + ((size_t)b * Tq + i0) * a->ldq + h * hs;
            const float *k = a->k + (size_t)b * a->Tk * a->ldk + h * hs;
            const float *v = a->v + (size_t)b * a->Tk * a->ldv + h * hs;
            const float *km = kmask + (size_t)b * a->Tk;
            if (b16 && packed != bh) {
                attn_bf16_pack_rows(krows, kp, k, a->ldk, a->Tk, hs);
                attn_bf16_transpose(kt, ldt, krows, kp, a->Tk, kp);
                attn_bf16_pack_cols(vn, ldh, v, a->ldv, a->Tk, hs);
                packed = bh;
            }
            for (int r = 0; r < bq; r++) m[r] = -INFINITY, l[r] = 0.0f;
            memset(o, 0, (size_t)bq * hs * sizeof(float));
            if (b16) attn_bf16_pack_rows(qa, kp, q, a->ldq, bq, hs);
            int kend = keys_for(a, i0 + bq);
            float qlo = 0.0f, qhi = 0.0f;
            if (docs) doc_range(km, i0, bq, &qlo, &qhi);
            for (int j0 = 0; j0 < kend; j0 += ATT_BK) {
                int bk = PLM_MIN(ATT_BK, kend - j0);
                if (!tile_needed(docs, km, j0, bk, qlo, qhi)) continue;
                flops += 4.0 * bq * bk * hs;
                if (b16)
                    attn_bf16_gemm(bq, bk, kp, a->scale, qa, kp, 1, kt + j0, ldt, 0.0f, s, ATT_BK);
                else
                    plm_sgemm(false, true, bq, bk, hs, a->scale, q, a->ldq, k + (size_t)j0 * a->ldk, a->ldk, 0.0f, s,
                              ATT_BK);
                tile_probs(a, docs, h, km, s, i0, bq, j0, bk, NULL, m, l, alpha);
                for (int r = 0; r < bq; r++)
                    if (alpha[r] != 1.0f)
                        for (int c = 0; c < hs; c++) o[(size_t)r * hs + c] *= alpha[r];
                const float *pv = s;
                if (a->dropout_p > 0.0f) {
                    tile_dropout(pdrop, s, a, bh, i0, bq, j0, bk, NULL);
                    pv = pdrop;
                }
                if (b16) {
                    attn_bf16_pack_rows(pa, ATT_BK / 2, pv, ATT_BK, bq, bk);
                    attn_bf16_gemm(bq, hs, (bk + 1) / 2, 1.0f, pa, ATT_BK / 2, 1, vn + (size_t)(j0 / 2) * ldh, ldh,
                                   1.0f, o, hs);
                } else {
                    plm_sgemm(false, false, bq, hs, bk, 1.0f, pv, ATT_BK, v + (size_t)j0 * a->ldv, a->ldv, 1.0f, o, hs);
                }
            }
            float *lse = lse_all + (size_t)bh * Tq + i0;
            float *os = osave + ((size_t)bh * Tq + i0) * hs;
            for (int r = 0; r < bq; r++) {
                float *dst = out + ((size_t)b * Tq + i0 + r) * ldo + h * hs;
                if (l[r] > 0.0f) {
                    float inv = 1.0f / l[r];
                    for (int c = 0; c < hs; c++) dst[c] = o[(size_t)r * hs + c] * inv;
                    lse[r] = m[r] + logf(l[r]);
                } else { /* no visible key: the row attends to nothing */
                    memset(dst, 0, (size_t)hs * sizeof(float));
                    lse[r] = INFINITY;
                }
                memcpy(os + (size_t)r * hs, dst, (size_t)hs * sizeof(float));
            }
        }
    }
    plm_prof_end_flops("attention", prof_t0, flops);
}

/* Column sums of one head's gradient rows (n rows of hs, stride ld) into acc[hs]
 * (overwritten), rows in order. */
static void head_colsum(float *acc, const float *g, int n, int hs, int ld) {
    memset(acc, 0, (size_t)hs * sizeof(float));
    for (int i = 0; i < n; i++) {
        const float *r = g + (size_t)i * ld;
#pragma omp simd
        for (int c = 0; c < hs; c++) acc[c] += r[c];
    }
}

/* With P = softmax(S), Pd = dropout(P), O = Pd V and D_i = rowsum(dP * P)_i:
 *   dV = Pd^T dO,  dPd = dO V^T,  dP = dropout(dPd),
 *   dS = P * (dP - D),  dQ = scale dS K,  dK = scale dS^T Q,
 * and the additive bias gets dS itself (summed over the batch by the caller).
 * D_i = sum_j dP_ij P_ij = sum_j dPd_ij Pd_ij = dO_i . O_i, from the saved output, so
 * one sweep over the tiles suffices. Each (batch, head) is one thread's: it owns the
 * rows of dK, dV (accumulated over query blocks) and dQ of that head. */
void attention_backward_bias(const attn_shape *a, const float *dout, const float *att, float *dq, float *dk, float *dv,
                             float *dscores, float *dbq, float *dbk, float *dbv) {
    double prof_t0 = plm_prof_begin();
    int B = a->B, Tq = a->Tq, Tk = a->Tk, NH = a->NH, hs = a->hs, ldo = NH * hs;
    const float *lse_all = att, *osave = att + (size_t)B * NH * Tq, *kmask = saved_mask(a, att);
    bool docs = ((int)kmask[(size_t)B * Tk] & ATT_DOCS) != 0; /* as the forward pass saved it */
    /* the bias gradients: per batch row b, partial column sums [q | k | v] of width ldo,
     * each (b, head) slice written by its task; then summed over b in order */
    bool dbias = dbq || dbk || dbv;
    float *bpart = dbias ? plm_thread_scratch(5, (size_t)B * 3 * ldo) : NULL;
    bool b16 = attn_bf16_on();
    int kp = (hs + 1) / 2, ldt = attn_bf16_ld(Tk), ldh = attn_bf16_ld(hs);
    double flops = 0.0; /* of the tiles computed: S again, dV, dP, dQ, dK */
#pragma omp parallel reduction(+ : flops)
    {
        float *p = plm_thread_scratch(3, (size_t)4 * ATT_BQ * ATT_BK + ATT_BQ);
        float *pd = p + ATT_BQ * ATT_BK, *dp = pd + ATT_BQ * ATT_BK, *keep = dp + ATT_BQ * ATT_BK;
        float *D = keep + ATT_BQ * ATT_BK;
        /* bf16 (attn_bf16.h): one head's operands packed in the layout each product reads,
         * and the tile's Pd^T, dS and dS^T */
        uint32_t *qa = NULL, *doa = NULL, *krows = NULL, *kt = NULL, *vt = NULL, *don = NULL, *kn = NULL, *qn = NULL;
        uint32_t *pdc = NULL, *dsa = NULL, *dsc = NULL;
        if (b16) {
            size_t rows = (size_t)(Tq > Tk ? Tq : Tk) * kp, nat = (size_t)Tq * kp, tr = (size_t)kp * ldt;
            size_t qp = (size_t)((Tq + 1) / 2) * ldh, kpr = (size_t)((Tk + 1) / 2) * ldh, tile = ATT_BQ / 2 * ATT_BK;
            qa = (uint32_t *)plm_thread_scratch(7, 2 * nat + rows + 2 * tr + 2 * qp + kpr + 3 * tile);
            doa = qa + nat, krows = doa + nat, kt = krows + rows, vt = kt + tr, don = vt + tr, qn = don + qp;
            kn = qn + qp, pdc = kn + kpr, dsa = pdc + tile, dsc = dsa + tile;
        }
#pragma omp for schedule(dynamic, 1)
        for (int bh = 0; bh < B * NH; bh++) {
            int b = bh / NH, h = bh % NH;
            const float *q = a->q + (size_t)b * Tq * a->ldq + h * hs;
            const float *k = a->k + (size_t)b * Tk * a->ldk + h * hs, *v = a->v + (size_t)b * Tk * a->ldv + h * hs;
            float *dqh = dq + (size_t)b * Tq * a->ldq + h * hs;
            float *dkh = dk + (size_t)b * Tk * a->ldk + h * hs, *dvh = dv + (size_t)b * Tk * a->ldv + h * hs;
            const float *dO = dout + (size_t)b * Tq * ldo + h * hs;
            const float *km = kmask + (size_t)b * Tk;
            for (int i = 0; i < Tq; i++) memset(dqh + (size_t)i * a->ldq, 0, (size_t)hs * sizeof(float));
            for (int j = 0; j < Tk; j++) {
                memset(dkh + (size_t)j * a->ldk, 0, (size_t)hs * sizeof(float));
                memset(dvh + (size_t)j * a->ldv, 0, (size_t)hs * sizeof(float));
            }
            if (dscores) memset(dscores + (size_t)bh * Tq * Tk, 0, (size_t)Tq * Tk * sizeof(float));
            if (b16) {
                attn_bf16_pack_rows(qa, kp, q, a->ldq, Tq, hs);
                attn_bf16_pack_rows(doa, kp, dO, ldo, Tq, hs);
                attn_bf16_pack_rows(krows, kp, k, a->ldk, Tk, hs);
                attn_bf16_transpose(kt, ldt, krows, kp, Tk, kp);
                attn_bf16_pack_rows(krows, kp, v, a->ldv, Tk, hs);
                attn_bf16_transpose(vt, ldt, krows, kp, Tk, kp);
                attn_bf16_pack_cols(don, ldh, dO, ldo, Tq, hs);
                attn_bf16_pack_cols(qn, ldh, q, a->ldq, Tq, hs);
                attn_bf16_pack_cols(kn, ldh, k, a->ldk, Tk, hs);
            }
            for (int i0 = 0; i0 < Tq; i0 += ATT_BQ) {
                int bq = PLM_MIN(ATT_BQ, Tq - i0);
                const float *qi = q + (size_t)i0 * a->ldq, *dOi = dO + (size_t)i0 * ldo;
                const float *lse = lse_all + (size_t)bh * Tq + i0, *os = osave + ((size_t)bh * Tq + i0) * hs;
                float *dqi = dqh + (size_t)i0 * a->ldq;
                for (int r = 0; r < bq; r++) {
                    const float *x = dOi + (size_t)r * ldo, *y = os + (size_t)r * hs;
                    float d = 0.0f;
#pragma omp simd reduction(+ : d)
                    for (int c = 0; c < hs; c++) d += x[c] * y[c];
                    D[r] = d;
                }
                int kend = keys_for(a, i0 + bq);
                float qlo = 0.0f, qhi = 0.0f;
                if (docs) doc_range(km, i0, bq, &qlo, &qhi);
                for (int j0 = 0; j0 < kend; j0 += ATT_BK) {
                    int bk = PLM_MIN(ATT_BK, kend - j0);
                    if (!tile_needed(docs, km, j0, bk, qlo, qhi)) continue;
                    flops += 10.0 * bq * bk * hs;
                    const float *kj = k + (size_t)j0 * a->ldk, *vj = v + (size_t)j0 * a->ldv;
                    int bqp = (bq + 1) / 2, bkp = (bk + 1) / 2; /* pairs of query rows, of keys */
                    const uint32_t *dOn = b16 ? don + (size_t)(i0 / 2) * ldh : NULL;
                    if (b16)
                        attn_bf16_gemm(bq, bk, kp, a->scale, qa + (size_t)i0 * kp, kp, 1, kt + j0, ldt, 0.0f, p,
                                       ATT_BK);
                    else
                        plm_sgemm(false, true, bq, bk, hs, a->scale, qi, a->ldq, kj, a->ldk, 0.0f, p, ATT_BK);
                    tile_probs(a, docs, h, km, p, i0, bq, j0, bk, lse, NULL, NULL, NULL);
                    const float *pv = p;
                    if (a->dropout_p > 0.0f) {
                        tile_dropout(pd, p, a, bh, i0, bq, j0, bk, keep);
                        pv = pd;
                    }
                    if (b16) {
                        attn_bf16_pack_cols(pdc, ATT_BK, pv, ATT_BK, bq, bk);
                        attn_bf16_gemm(bk, hs, bqp, 1.0f, pdc, 1, ATT_BK, dOn, ldh, 1.0f, dvh + (size_t)j0 * a->ldv,
                                       a->ldv);
                        attn_bf16_gemm(bq, bk, kp, 1.0f, doa + (size_t)i0 * kp, kp, 1, vt + j0, ldt, 0.0f, dp, ATT_BK);
                    } else {
                        plm_sgemm(true, false, bk, hs, bq, 1.0f, pv, ATT_BK, dOi, ldo, 1.0f, dvh + (size_t)j0 * a->ldv,
                                  a->ldv);
                        plm_sgemm(false, true, bq, bk, hs, 1.0f, dOi, ldo, vj, a->ldv, 0.0f, dp, ATT_BK);
                    }
                    if (a->dropout_p > 0.0f) tile_keep(dp, keep, a, bq, bk);
                    for (int r = 0; r < bq; r++) {
                        float *dr = dp + (size_t)r * ATT_BK;
                        const float *pr = p + (size_t)r * ATT_BK;
                        float d = D[r];
#pragma omp simd
                        for (int c = 0; c < bk; c++) dr[c] = pr[c] * (dr[c] - d);
                        if (dscores)
                            memcpy(dscores + ((size_t)bh * Tq + i0 + r) * Tk + j0, dr, (size_t)bk * sizeof(float));
                    }
                    if (b16) {
                        attn_bf16_pack_rows(dsa, ATT_BK / 2, dp, ATT_BK, bq, bk);
                        attn_bf16_pack_cols(dsc, ATT_BK, dp, ATT_BK, bq, bk);
                        attn_bf16_gemm(bq, hs, bkp, a->scale, dsa, ATT_BK / 2, 1, kn + (size_t)(j0 / 2) * ldh, ldh,
                                       1.0f, dqi, a->ldq);
                        attn_bf16_gemm(bk, hs, bqp, a->scale, dsc, 1, ATT_BK, qn + (size_t)(i0 / 2) * ldh, ldh, 1.0f,
                                       dkh + (size_t)j0 * a->ldk, a->ldk);
                    } else {
                        plm_sgemm(false, false, bq, hs, bk, a->scale, dp, ATT_BK, kj, a->ldk, 1.0f, dqi, a->ldq);
                        plm_sgemm(true, false, bk, hs, bq, a->scale, dp, ATT_BK, qi, a->ldq, 1.0f,
                                  dkh + (size_t)j0 * a->ldk, a->ldk);
                    }
                }
            }
            if (dbias) { /* this head's gradients are final and still in cache */
                float *bp = bpart + (size_t)b * 3 * ldo + h * hs;
                head_colsum(bp, dqh, Tq, hs, a->ldq);
                head_colsum(bp + ldo, dkh, Tk, hs, a->ldk);
                head_colsum(bp + 2 * ldo, dvh, Tk, hs, a->ldv);
            }
        }
        if (dbias) {
#pragma omp for schedule(static)
            for (int j = 0; j < 3 * ldo; j++) {
                float *dst = j < ldo ? dbq : j < 2 * ldo ? dbk : dbv;
                if (!dst) continue;
                float acc = bpart[j];
                for (int b = 1; b < B; b++) acc += bpart[(size_t)b * 3 * ldo + j];
                dst[j % ldo] += acc;
            }
        }
    }
    plm_prof_end_flops("attention", prof_t0, flops);
}

void attention_backward_ex(const attn_shape *a, const float *dout, const float *att, float *dq, float *dk, float *dv,
                           float *dscores) {
    attention_backward_bias(a, dout, att, dq, dk, dv, dscores, NULL, NULL, NULL);
}

static attn_shape fused_shape(const float *qkv, const uint8_t *attn_mask, int B, int T, int C, int NH, bool causal,
                              float dropout_p, uint64_t dropout_key) {
    int hs = C / NH;
    return (attn_shape){.B = B,
                        .Tq = T,
                        .Tk = T,
                        .NH = NH,
                        .hs = hs,
                        .q = qkv,
                        .k = qkv + C,
                        .v = qkv + 2 * C,
                        .ldq = 3 * C,
                        .ldk = 3 * C,
                        .ldv = 3 * C,
                        .key_mask = attn_mask,
                        .causal = causal,
                        .scale = 1.0f / sqrtf((float)hs),
                        .dropout_p = dropout_p,
                        .dropout_key = dropout_key};
}

void attention_forward(float *out, float *att, const float *qkv, const uint8_t *attn_mask, int B, int T, int C, int NH,
                       bool causal, float dropout_p, uint64_t dropout_key) {
    attention_forward_docs(out, att, qkv, attn_mask, NULL, B, T, C, NH, causal, dropout_p, dropout_key);
}

void attention_forward_docs(float *out, float *att, const float *qkv, const uint8_t *attn_mask, const int32_t *seq_idx,
                            int B, int T, int C, int NH, bool causal, float dropout_p, uint64_t dropout_key) {
    attn_shape a = fused_shape(qkv, attn_mask, B, T, C, NH, causal, dropout_p, dropout_key);
    a.seq_idx = seq_idx;
    attention_forward_ex(&a, out, att);
}

void attention_backward(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T, int C, int NH,
                        float dropout_p, uint64_t dropout_key) {
    attention_backward_qkv_bias(dqkv, dout, qkv, att, B, T, C, NH, dropout_p, dropout_key, NULL);
}

void attention_backward_qkv_bias(float *dqkv, const float *dout, const float *qkv, const float *att, int B, int T,
                                 int C, int NH, float dropout_p, uint64_t dropout_key, float *dqkv_bias) {
    attn_shape a = fused_shape(qkv, NULL, B, T, C, NH, false, dropout_p, dropout_key);
    /* the mask and the documents are read from att too */
    a.causal = ((int)saved_mask(&a, att)[(size_t)B * T] & 1) != 0;
    attention_backward_bias(&a, dout, att, dqkv, dqkv + C, dqkv + 2 * C, NULL, dqkv_bias,
                            dqkv_bias ? dqkv_bias + C : NULL, dqkv_bias ? dqkv_bias + 2 * C : NULL);
}
