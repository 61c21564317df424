/* skinny.h - the products of decoding, C[M,N] = A[M,K] B[N,K]^T (+ bias[N]) + beta C
 * with few rows M (the running sequences) and a large weight B: in fp32 on AVX2 + FMA,
 * and in bf16 on AVX512_BF16 (under --bf16, from the weight's bf16 copy).
 * Such a product is bound by reading B from memory once: 2 M N K flops for 4 N K bytes
 * (2 N K in bf16). oneDNN's sgemm packs all of B on every call from M = 3 on; its matmul
 * primitive does the same without AVX-512 and, with it, still ran gpt2-mini's decoding
 * 1.25-1.3x slower than this kernel at 4-8 sequences; its GEMV (M = 1) streamed a
 * 50257 x 512 LM head at 15 GB/s on a Zen 3 where the memory gives 22-24. These kernels
 * read each block of 3 (bf16: 4) rows of B once, from memory into L1, and multiply it
 * there with every row of A (bench/README.md, "Zen 3: decoding", "Xeon: decoding").
 * Own those kernels and nothing else; gemm.c decides when they run. Each element of C
 * is one thread's dot product in a fixed order, whatever M, N and the thread count. */
#ifndef PLM_SKINNY_H
#define PLM_SKINNY_H

#include <stdbool.h>
#include <stdint.h>

/* Whether this CPU has AVX2 and FMA (checked once, at run time). */
bool skinny_cpu_ok(void);

/* C[M,N] = A[M,K] B[N,K]^T + bias[N] (NULL: none) + beta C, row-major with row strides
 * lda, ldb, ldc. beta 0 never reads C. Threads over N with OpenMP; call it outside
 * parallel regions, on a CPU where skinny_cpu_ok(). */
void skinny_nt(int M, int N, int K, const float *A, int lda, const float *B, int ldb, float beta, const float *bias,
               float *C, int ldc);

/* Whether this CPU has AVX512_BF16 (and AVX512BW), checked once at run time. */
bool skinny_bf16_cpu_ok(void);

/* The same product on bf16 operands (plm_to_bf16's bits), for decoding under --bf16 from
 * the weights' bf16 copy: half the bytes of B per token. Products are exact in fp32 and
 * summed in fp32. Same contract as skinny_nt; needs skinny_bf16_cpu_ok(). */
void skinny_nt_bf16(int M, int N, int K, const uint16_t *A, int lda, const uint16_t *B, int ldb, float beta,
                    const float *bias, float *C, int ldc);

#endif
