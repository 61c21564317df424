/* gemm.h - the one matrix product every layer goes through, row-major:
 *     C[M,N] = alpha * op(A)[M,K] * op(B)[K,N] + beta * C
 * with op(X) = X or X^T. Routed per layout to the library measured fastest for it
 * (gemm.c, bench/README.md): oneDNN's sgemm for most shapes, OpenBLAS (OpenMP build)
 * for the wide weight gradients of small models. Both thread with the same OpenMP
 * runtime; called inside an OpenMP parallel region the product runs on the calling
 * thread, which attention uses per (batch, head).
 *
 * bf16 mixed precision (plm_gemm_set_bf16): the products outside parallel regions (the
 * linear layers and heads) round A and B to bf16 and run oneDNN's matmul primitive with
 * an f32 destination (fp32 accumulation); master weights, gradients and everything
 * else stay fp32. Attention's per-head products run in bf16 through attn_bf16.h
 * (AVX512_BF16), or in fp32 here. Owns the primitive cache
 * (keyed by shape, transposes, strides, alpha and beta), the bf16 copies, and the table
 * of bf16 mirrors: bf16 copies of fp32 buffers (the weights, written by AdamW; a
 * layer's output gradient, held for its two backward products; the linear inputs, kept
 * from forward for dW), so that a product whose operand lies in a fresh mirror reads it
 * instead of rounding. */
#ifndef PLM_GEMM_H
#define PLM_GEMM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <string.h>

void plm_sgemm(bool trans_a, bool trans_b, int M, int N, int K, float alpha, const float *A, int lda, const float *B,
               int ldb, float beta, float *C, int ldc);

/* C[M,N] = A[M,K] B[N,K]^T + bias[N] (every row): a linear layer's forward product.
 * fp32: oneDNN's matmul primitive with its bias argument (cached per shape; the bias is
 * added as each block of C is written, not copied in first); under bf16, for M <= 2, for
 * M <= 64 where plm_sgemm keeps sgemm, or with PLM_GEMM_BIAS=copy: the bias copied into
 * C and plm_sgemm with beta = 1. */
void plm_sgemm_bias(int M, int N, int K, const float *A, int lda, const float *B, int ldb, const float *bias, float *C,
                    int ldc);

/* Whether OpenBLAS runs a kernel made for this CPU (its core name, openblas_get_corename,
 * is one written for AVX2 and FMA, or the CPU has neither). When it does not, as on CPU
 * models newer than Debian's OpenBLAS, no product goes to it unless PLM_GEMM or
 * PLM_GEMM_TN asks. */
bool plm_openblas_fits_cpu(void);

/* oneDNN generates its sgemm kernels at the first product of a process that is not tiny:
 * 40-60 ms, which the first token of a plm generate used to wait for. _begin starts
 * that generation on a thread of its own (once per process), _end waits for it; loading
 * a model runs between the two, so the generation overlaps reading the weights. The
 * thread never outlives the load: a process that exits right after (a bad input) must
 * not tear oneDNN down under it. PLM_GEMM_WARM_UP=0 turns it off (benchmarks). */
void plm_gemm_warm_up_begin(void);
void plm_gemm_warm_up_end(void);

/* The CPU's bf16 capability as oneDNN sees it at run time: "avx512_core_amx" (AMX-BF16),
 * "avx512_core_bf16" (AVX512_BF16), or NULL when oneDNN has no bf16 matmul here
 * (checked by creating one). */
const char *plm_bf16_isa(void);
/* Turns bf16 GEMMs on or off for this process. Returns true if they are on: asking
 * on a CPU without bf16 prints one line on stderr and keeps fp32. */
bool plm_gemm_set_bf16(bool on);
bool plm_gemm_bf16(void);

/* x rounded to the nearest bf16 (ties to even), back as a float: what the bf16 GEMM
 * inputs hold (tests use it for their reference). */
float plm_round_bf16(float x);

/* x rounded to the nearest bf16 (ties to even), as its 16 bits: the rounding of every
 * bf16 GEMM input, and of the mirrors (AdamW writes the weights' with it). */
static inline uint16_t plm_to_bf16(float x) {
    uint32_t u;
    memcpy(&u, &x, sizeof u);
    u += 0x7fffu + ((u >> 16) & 1u);
    return (uint16_t)(u >> 16);
}

/* A bf16 mirror of an fp32 buffer [base, base + n): w[i] == plm_to_bf16(base[i]) while
 * fresh, i.e. while w_gen == gen. Whoever writes base through any other path than the
 * mirror's writer bumps gen (plm_bf16_mirror_stale), which makes the mirror unusable
 * until its writer refreshes all of it and sets w_gen = gen again; a GEMM operand inside
 * a registered fresh mirror reads w at the same offset with the same strides, so views
 * (a tensor, a block of rows) need nothing of their own. The GEMM also spot-checks the
 * first and last element of every row it reads against the fp32 values and stops the
 * program when they disagree: a write that forgot to bump gen is a loud bug, never a
 * silently wrong product. */
typedef struct plm_bf16_mirror {
    const float *base;
    size_t n;
    uint16_t *w;         /* NULL until the writer first fills it */
    unsigned long gen;   /* bumped by every write of base outside the mirror's writer */
    unsigned long w_gen; /* the gen w was filled at */
} plm_bf16_mirror;

static inline void plm_bf16_mirror_stale(plm_bf16_mirror *s) { s->gen++; }
/* Registers s (base, n set; w may still be NULL) / removes it (before freeing base). */
void plm_gemm_mirror_add(plm_bf16_mirror *s);
void plm_gemm_mirror_remove(plm_bf16_mirror *s);
bool plm_gemm_mirror_registered(const plm_bf16_mirror *s);

/* Whether bf16 GEMMs may reuse bf16 copies (mirrors, held operands): on unless the
 * environment has PLM_BF16_REUSE=0 (read once) or a test turned it off. Off, every bf16
 * GEMM rounds both its inputs itself, as before the mirrors; the results are the same
 * bits either way (tests/test_bf16.c, tests/bf16.sh). */
bool plm_gemm_bf16_reuse(void);
void plm_gemm_set_bf16_reuse(bool on);

/* Holds a bf16 copy of x[0, n) for the bf16 GEMMs that follow until
 * plm_gemm_bf16_release: a layer's backward rounds its output gradient once for both
 * dX = dY W and dW = dY^T x. No-op (returns false) unless bf16 and reuse are on. One
 * hold at a time; x must not change while held. */
bool plm_gemm_bf16_hold(const float *x, size_t n);
void plm_gemm_bf16_release(void);
/* The hold's buffer for a pass that is about to compute x[0, n) and can round it on the
 * way (GELU's backward writing the gradient the next linear layer holds): the caller
 * writes w[i] = plm_to_bf16(x[i]) for every i, and the next plm_gemm_bf16_hold(x, n)
 * takes it without a pass of its own. NULL when hold would not hold. */
uint16_t *plm_gemm_bf16_hold_begin(const float *x, size_t n);

/* Keeps of a forward's linear inputs for the same pass's dW = dY^T x. Between
 * plm_gemm_bf16_keep_inputs(true) and (false) (plm_model_run around a forward pass that a
 * backward pass follows), plm_gemm_bf16_keep(x, n) rounds x[0, n) into a bf16 buffer of
 * its own, kept until (false), which makes every keep stale: the forward product reads
 * it, and so does the weight gradient in backward, where x must still hold what it held
 * (it is the saved activation dW reads anyway). No-op (false) unless bf16 and reuse are
 * on. The buffers (one per input pointer, grow-only) live as long as the process. */
void plm_gemm_bf16_keep_inputs(bool on);
bool plm_gemm_bf16_keep(const float *x, size_t n);
/* The keep's buffer for a pass that computes x[0, n) (GELU's forward writing the next
 * linear layer's input), filled by the caller as for plm_gemm_bf16_hold_begin; the next
 * plm_gemm_bf16_keep(x, n) then has nothing to round. NULL when keep would not keep. */
uint16_t *plm_gemm_bf16_keep_begin(const float *x, size_t n);

/* Counters since the start: bf16 GEMM operands read from a mirror or a hold, and operands
 * rounded by the GEMM itself (tests check that the mirrors are really used). */
void plm_gemm_bf16_counts(long *reused, long *converted);

#endif
