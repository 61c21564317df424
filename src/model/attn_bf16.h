/* attn_bf16.h - attention's tile products in bf16, on CPUs with AVX512_BF16.
 * Under --bf16 (plm_gemm_bf16) attention.c rounds Q, K, V, dO and each tile of
 * probabilities and score gradients to bf16 and multiplies them with vdpbf16ps, which
 * takes two bf16 products per fp32 lane and accumulates in fp32:
 *     c[n] += a[2p] b[2p][n] + a[2p+1] b[2p+1][n]
 * so every operand is stored as 32-bit words holding a pair of bf16 values adjacent in
 * the reduction dimension (low half: the even one), the "pair" layout. Owns the packing
 * of fp32 matrices into that layout and one register-blocked product kernel. Rounding is
 * plm_to_bf16's (to nearest, ties to even), the same as every other bf16 GEMM input.
 * Where the CPU lacks the instruction (AVX2 machines), or PLM_ATTN_BF16=0, attention
 * keeps its fp32 products. */
#ifndef PLM_ATTN_BF16_H
#define PLM_ATTN_BF16_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

/* Whether attention's products run in bf16 now: bf16 GEMMs on (plm_gemm_bf16), the CPU
 * has AVX512_BF16 (checked at run time) and PLM_ATTN_BF16 is not 0 (read once). */
bool attn_bf16_on(void);

/* Columns a B operand's rows are padded to: the kernel reads 64 columns at a time. */
static inline int attn_bf16_ld(int n) { return (n + 63) / 64 * 64; }

/* Pairs along rows: dst[r ldd + p] = (x[r][2p], x[r][2p+1]) for r < n, p < (k + 1) / 2,
 * x [n][k] with row stride ld; an odd k's last pair has 0 in its high half. */
void attn_bf16_pack_rows(uint32_t *dst, int ldd, const float *x, int ld, int n, int k);
/* Pairs across rows: dst[p ldd + c] = (x[2p][c], x[2p+1][c]) for p < (k + 1) / 2,
 * c < n, x [k][n] with row stride ld (a missing row 2p + 1 reads as 0); columns
 * n .. attn_bf16_ld(n) - 1 are 0. */
void attn_bf16_pack_cols(uint32_t *dst, int ldd, const float *x, int ld, int k, int n);
/* The transpose of a pair-rows matrix: dst[p ldd + r] = src[r lds + p] for p < kp,
 * r < n; columns n .. attn_bf16_ld(n) - 1 are 0. K^T as the B operand of Q K^T. */
void attn_bf16_transpose(uint32_t *dst, int ldd, const uint32_t *src, int lds, int n, int kp);

/* C[M,N] = alpha A B + beta C (beta 0 or 1), in fp32 from bf16 pairs: the pair (m, p)
 * of A is A[m a_rs + p a_ks] (pair rows: a_rs = row stride, a_ks = 1; pair columns,
 * i.e. A^T of a pack_cols matrix: a_rs = 1, a_ks = its ldd), B is [kp][ldb] in pairs
 * with ldb >= attn_bf16_ld(N) readable columns. Only C's first N columns are written. */
void attn_bf16_gemm(int M, int N, int kp, float alpha, const uint32_t *A, size_t a_rs, size_t a_ks, const uint32_t *B,
                    int ldb, float beta, float *C, int ldc);

#endif
