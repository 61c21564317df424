// bench/gemm.c - fp32 GEMM throughput of one BLAS on the shapes of a plm training step.
//
// Built three times, once per library, so that only one BLAS is ever loaded:
//   -DUSE_OPENBLAS  (Debian's OpenMP OpenBLAS, cblas_sgemm, row-major)
//   -DUSE_BLIS      (Debian's OpenMP BLIS, cblas_sgemm, row-major)
//   -DUSE_DNNL      (oneDNN dnnl_sgemm, row-major; plus the matmul primitive in f32 and bf16)
// See bench/README.md for the results and bench/run.sh for how it is invoked.
//
// Usage: gemm_LIB [--peak] [--table] [--attn] [--threads N] [--min-time SEC]
//   --peak   large square GEMMs (NN/NT/TN, n = 2048 and 3072); prints "PEAK <lib> <gflops>"
//   --table  every linear-layer shape of the tiny/small/medium configs, layouts NN, NT, TN,
//            plus TN with the tokens split over the threads (negative = wrong result)
//   --attn   per-head attention GEMMs inside an OpenMP parallel-for over (batch, head)
//   (no mode flag = all three)
// Each measurement: one warm-up call, calibrate a repeat count so a batch lasts >= min-time
// (default 0.03 s), then 9 batches; the FASTEST batch gives GFLOP/s = 2*M*N*K / time.
// Best-of rather than median because this 2-vCPU VM shares its host: the same GEMM runs at
// full speed and then at half speed for seconds at a time (no steal time is reported).
#include <math.h>
#include <omp.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#if defined(USE_DNNL)
#include <oneapi/dnnl/dnnl.h>
#define LIB_NAME "onednn"
#elif defined(USE_BLIS)
#include <blis.h>
#define LIB_NAME "blis"
#elif defined(USE_OPENBLAS)
#include <cblas.h>
#define LIB_NAME "openblas"
#else
#error "define USE_OPENBLAS, USE_BLIS or USE_DNNL"
#endif

// Row-major C[M,N] = op(A)[M,K] * op(B)[K,N], beta = 0.
static void sgemm(char ta, char tb, int M, int N, int K, const float *A, int lda, const float *B, int ldb, float *C,
                  int ldc) {
#if defined(USE_DNNL)
    dnnl_sgemm(ta, tb, M, N, K, 1.0f, A, lda, B, ldb, 0.0f, C, ldc);
#else
    cblas_sgemm(CblasRowMajor, ta == 'T' ? CblasTrans : CblasNoTrans, tb == 'T' ? CblasTrans : CblasNoTrans, M, N, K,
                1.0f, A, lda, B, ldb, 0.0f, C, ldc);
#endif
}

static void set_threads(int n) {
    omp_set_num_threads(n);
#if defined(USE_BLIS)
    bli_thread_set_num_threads(n);
#elif defined(USE_OPENBLAS)
    openblas_set_num_threads(n);
#endif
}

static double now(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + 1e-9 * (double)ts.tv_nsec;
}

static double g_min_time = 0.03;

// CPU seconds used since boot by every process except this one (all CPUs, from /proc/stat
// minus /proc/self/stat).  The difference over an interval divided by its wall time is the
// number of cores other processes kept busy: other sessions share these 2 vCPUs.
static double other_cpu_seconds(void) {
    double hz = 100.0, total = 0, self = 0;
    FILE *f = fopen("/proc/stat", "r");
    if (f) {
        unsigned long long v[8] = {0};
        if (fscanf(f, "cpu %llu %llu %llu %llu %llu %llu %llu %llu", &v[0], &v[1], &v[2], &v[3], &v[4], &v[5], &v[6],
                   &v[7]) == 8)
            total = (double)(v[0] + v[1] + v[2] + v[5] + v[6] + v[7]) / hz; // not idle/iowait
        fclose(f);
    }
    f = fopen("/proc/self/stat", "r");
    if (f) {
        char buf[1024];
        size_t n = fread(buf, 1, sizeof buf - 1, f);
        buf[n] = 0;
        const char *p = strrchr(buf, ')');
        unsigned long long ut = 0, st = 0;
        // fields after the comm: state ppid pgrp session tty tpgid flags minflt cminflt
        // majflt cmajflt utime stime
        if (p && sscanf(p + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) == 2)
            self = (double)(ut + st) / hz;
        fclose(f);
    }
    return total - self;
}

static double g_bg_max; // worst background load (cores) seen in the accepted measurements

typedef void (*bench_fn)(void *ctx);

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

// Returns the best (minimum) seconds per call over 9 batches.
static double time_call_once(bench_fn f, void *ctx, double *bg) {
    f(ctx);
    long reps = 1;
    for (;;) {
        double t0 = now();
        for (long i = 0; i < reps; i++) f(ctx);
        double t = now() - t0;
        if (t >= g_min_time) break;
        reps = t > 0 ? (long)(reps * 1.3 * g_min_time / t) + 1 : reps * 2;
    }
    double ts[9], w0 = now(), o0 = other_cpu_seconds();
    for (int b = 0; b < 9; b++) {
        double t0 = now();
        for (long i = 0; i < reps; i++) f(ctx);
        ts[b] = (now() - t0) / (double)reps;
    }
    *bg = (other_cpu_seconds() - o0) / (now() - w0);
    qsort(ts, 9, sizeof ts[0], cmp_double);
    return ts[0];
}

// Best of up to 4 attempts while other processes keep more than 0.2 cores busy.
static double time_call(bench_fn f, void *ctx) {
    double best = 1e30, bg_best = 0;
    for (int attempt = 0; attempt < 4; attempt++) {
        double bg, t = time_call_once(f, ctx, &bg);
        if (t < best) best = t, bg_best = bg;
        if (bg < 0.2) break;
        struct timespec ts = {0, 200 * 1000 * 1000};
        nanosleep(&ts, NULL);
    }
    if (bg_best > g_bg_max) g_bg_max = bg_best;
    return best;
}

static float *rand_buf(size_t n, unsigned seed) {
    float *p = aligned_alloc(64, ((n * sizeof(float) + 63) / 64) * 64);
    if (!p) {
        fprintf(stderr, "gemm: out of memory\n");
        exit(1);
    }
    for (size_t i = 0; i < n; i++) {
        seed = seed * 1664525u + 1013904223u;
        p[i] = (float)((seed >> 8) & 0xffff) / 65536.0f - 0.5f;
    }
    return p;
}

// ---------------------------------------------------------------- plain GEMM
typedef struct {
    char ta, tb;
    int M, N, K;
    const float *A, *B;
    float *C;
} gemm_ctx;

static void run_gemm(void *p) {
    gemm_ctx *g = p;
    int lda = g->ta == 'T' ? g->M : g->K;
    int ldb = g->tb == 'T' ? g->K : g->N;
    sgemm(g->ta, g->tb, g->M, g->N, g->K, g->A, lda, g->B, ldb, g->C, g->N);
}

static float *g_A, *g_B, *g_C; // big enough for every shape below
static float *g_scratch;       // second partial dW for the K-split TN variant

// dW = dY^T X with the token dimension K split across the threads: each OpenMP thread runs a
// single-threaded GEMM on its share of the tokens (thread 0 into C, the others into scratch),
// then the partial sums are added in parallel. An alternative for the long-K, small-M*N
// weight-gradient GEMMs that the libraries' own threading handles poorly.
static void run_tn_ksplit(void *p) {
    gemm_ctx *g = p;
    size_t mn = (size_t)g->M * g->N;
#pragma omp parallel num_threads(2)
    {
        int t = omp_get_thread_num(), nt = omp_get_num_threads();
        int k0 = (int)((long)g->K * t / nt), k1 = (int)((long)g->K * (t + 1) / nt);
        float *C = t == 0 ? g->C : g_scratch + (size_t)(t - 1) * mn;
        sgemm('T', 'N', g->M, g->N, k1 - k0, g->A + (size_t)k0 * g->M, g->M, g->B + (size_t)k0 * g->N, g->N, C, g->N);
#pragma omp barrier
#pragma omp for schedule(static)
        for (size_t i = 0; i < mn; i++)
            for (int u = 1; u < nt; u++) g->C[i] += g_scratch[(size_t)(u - 1) * mn + i];
    }
}

static double gflops_gemm(char ta, char tb, int M, int N, int K) {
    gemm_ctx g = {ta, tb, M, N, K, g_A, g_B, g_C};
    double t = time_call(ta == 'K' ? run_tn_ksplit : run_gemm, &g);
    return 2.0 * M * N * K / t * 1e-9;
}

// -------------------------------------------------- oneDNN matmul primitive
#if defined(USE_DNNL)
typedef struct {
    dnnl_primitive_t prim;
    dnnl_stream_t stream;
    dnnl_exec_arg_t args[3];
} mm_ctx;

static void run_mm(void *p) {
    mm_ctx *m = p;
    dnnl_primitive_execute(m->prim, m->stream, 3, m->args);
    dnnl_stream_wait(m->stream);
}

#define DNNL_CHECK(x)                                                                                                  \
    do {                                                                                                               \
        dnnl_status_t st_ = (x);                                                                                       \
        if (st_ != dnnl_success) {                                                                                     \
            fprintf(stderr, "gemm: %s failed: %d\n", #x, (int)st_);                                                    \
            return -1;                                                                                                 \
        }                                                                                                              \
    } while (0)

// C[M,N] (f32) = A[M,K] * B[K,N] with A, B in dt (f32 or bf16); tb = 'T' means B is
// stored [N,K] (weights as nn.Linear stores them). Returns GFLOP/s, or -1 if unsupported.
static double gflops_matmul(dnnl_data_type_t dt, char tb, int M, int N, int K, char *impl, size_t impl_len) {
    static dnnl_engine_t eng;
    static dnnl_stream_t stream;
    if (!eng) {
        DNNL_CHECK(dnnl_engine_create(&eng, dnnl_cpu, 0));
        DNNL_CHECK(dnnl_stream_create(&stream, eng, dnnl_stream_default_flags));
    }
    dnnl_memory_desc_t a_md, b_md, c_md;
    dnnl_dims_t ad = {M, K}, bd = {K, N}, cd = {M, N};
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&a_md, 2, ad, dt, dnnl_ab));
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&b_md, 2, bd, dt, tb == 'T' ? dnnl_ba : dnnl_ab));
    DNNL_CHECK(dnnl_memory_desc_init_by_tag(&c_md, 2, cd, dnnl_f32, dnnl_ab));
    dnnl_matmul_desc_t md;
    DNNL_CHECK(dnnl_matmul_desc_init(&md, &a_md, &b_md, NULL, &c_md));
    dnnl_primitive_desc_t pd;
    snprintf(impl, impl_len, "unsupported");
    if (dnnl_primitive_desc_create(&pd, &md, NULL, eng, NULL) != dnnl_success) return -1;
    const char *name = "?";
    dnnl_primitive_desc_query(pd, dnnl_query_impl_info_str, 0, &name);
    snprintf(impl, impl_len, "%s", name);
    if (strstr(name, "ref")) { // reference (scalar) kernel: far too slow to time
        dnnl_primitive_desc_destroy(pd);
        return 0;
    }
    mm_ctx m = {.stream = stream};
    DNNL_CHECK(dnnl_primitive_create(&m.prim, pd));
    dnnl_memory_t am, bm, cm;
    // bf16 buffers reuse the f32 ones (half as many bytes are read); the values are garbage
    // for bf16 but that does not change the speed.
    DNNL_CHECK(dnnl_memory_create(&am, &a_md, eng, g_A));
    DNNL_CHECK(dnnl_memory_create(&bm, &b_md, eng, g_B));
    DNNL_CHECK(dnnl_memory_create(&cm, &c_md, eng, g_C));
    if (dt == dnnl_bf16) { // make the bf16 inputs finite: top halves of random floats
        uint16_t *a16 = (uint16_t *)g_A, *b16 = (uint16_t *)g_B;
        for (size_t i = 0; i < (size_t)M * K; i++) a16[i] = 0x3f80 | (uint16_t)(i & 0x7f);
        for (size_t i = 0; i < (size_t)K * N; i++) b16[i] = 0x3f00 | (uint16_t)(i & 0x7f);
    }
    m.args[0] = (dnnl_exec_arg_t){DNNL_ARG_SRC, am};
    m.args[1] = (dnnl_exec_arg_t){DNNL_ARG_WEIGHTS, bm};
    m.args[2] = (dnnl_exec_arg_t){DNNL_ARG_DST, cm};
    double t = time_call(run_mm, &m);
    dnnl_memory_destroy(am);
    dnnl_memory_destroy(bm);
    dnnl_memory_destroy(cm);
    dnnl_primitive_destroy(m.prim);
    dnnl_primitive_desc_destroy(pd);
    return 2.0 * M * N * K / t * 1e-9;
}
#endif

// ------------------------------------------------------------------ --peak
static double run_peak(int nthr) {
    double best = 0;
    printf("# %s: large square fp32 GEMM, %d thread(s), GFLOP/s\n", LIB_NAME, nthr);
    printf("%-10s %6s %8s %8s %8s\n", "lib", "n", "NN", "NT", "TN");
    for (int n = 2048; n <= 3072; n += 1024) {
        double nn = gflops_gemm('N', 'N', n, n, n);
        double nt = gflops_gemm('N', 'T', n, n, n);
        double tn = gflops_gemm('T', 'N', n, n, n);
        printf("%-10s %6d %8.1f %8.1f %8.1f\n", LIB_NAME, n, nn, nt, tn);
        fflush(stdout);
        best = fmax(best, fmax(nn, fmax(nt, tn)));
    }
    return best;
}

static double checksum(const float *x, size_t n) {
    double s = 0;
    for (size_t i = 0; i < n; i++) s += x[i] * (double)((i % 7) + 1);
    return s;
}

// ----------------------------------------------------------------- --table
// The linear layers of a step at M = batch*seq = 4096 tokens for every config.
typedef struct {
    const char *cfg, *layer;
    int in, out, tokens;
} linear_shape;

static const linear_shape LINEARS[] = {
    {"tiny", "q|k|v|o", 128, 128, 4096},     {"tiny", "qkv", 128, 384, 4096},
    {"tiny", "ffn-up", 128, 512, 4096},      {"tiny", "ffn-down", 512, 128, 4096},
    {"tiny", "lm-head", 128, 8192, 4096},    {"tiny", "mlm-head", 128, 8192, 640},
    {"small", "q|k|v|o", 256, 256, 4096},    {"small", "qkv", 256, 768, 4096},
    {"small", "ffn-up", 256, 1024, 4096},    {"small", "ffn-down", 1024, 256, 4096},
    {"small", "lm-head", 256, 8192, 4096},   {"small", "mlm-head", 256, 8192, 640},
    {"medium", "q|k|v|o", 384, 384, 4096},   {"medium", "qkv", 384, 1152, 4096},
    {"medium", "ffn-up", 384, 1536, 4096},   {"medium", "ffn-down", 1536, 384, 4096},
    {"medium", "lm-head", 384, 16384, 4096}, {"medium", "mlm-head", 384, 16384, 640},
};

static void run_table(void) {
    printf("# %s: linear-layer GEMMs, M = tokens; GFLOP/s (2 threads)\n", LIB_NAME);
    printf("#   NT fwd  Y[tok,out]  = X[tok,in] . W[out,in]^T   (M=tok, N=out, K=in)\n");
    printf("#   NN dX   dX[tok,in]  = dY[tok,out] . W[out,in]   (M=tok, N=in,  K=out)\n");
    printf("#   TN dW   dW[out,in]  = dY[tok,out]^T . X[tok,in] (M=out, N=in,  K=tok)\n");
    printf("#   TN-ksplit: the TN GEMM with the tokens split over 2 threads, 1-thread GEMMs + sum\n");
    printf("#   TN-dWt  dW^T[in,out] = X[tok,in]^T . dY[tok,out] (M=in, N=out, K=tok): the weight\n");
    printf("#           gradient if W were stored [in,out] (GPT-2 Conv1D layout)\n");
    printf("%-10s %-7s %-9s %5s %6s %6s %8s %8s %8s %9s %8s\n", "lib", "config", "layer", "tok", "in", "out", "NT-fwd",
           "NN-dX", "TN-dW", "TN-ksplit", "TN-dWt");
    for (size_t i = 0; i < sizeof LINEARS / sizeof LINEARS[0]; i++) {
        const linear_shape *s = &LINEARS[i];
        double nt = gflops_gemm('N', 'T', s->tokens, s->out, s->in);
        double nn = gflops_gemm('N', 'N', s->tokens, s->in, s->out);
        double tn = gflops_gemm('T', 'N', s->out, s->in, s->tokens);
        double tk = gflops_gemm('K', 'N', s->out, s->in, s->tokens);
        double tt = gflops_gemm('T', 'N', s->in, s->out, s->tokens);
        { // the K-split result must equal the plain TN GEMM's
            gemm_ctx g = {'T', 'N', s->out, s->in, s->tokens, g_A, g_B, g_C};
            size_t mn = (size_t)s->out * s->in;
            run_gemm(&g);
            double ref = checksum(g_C, mn);
            run_tn_ksplit(&g);
            if (fabs(checksum(g_C, mn) - ref) > 1e-3 * fabs(ref) + 1e-2) tk = -tk;
        }
        printf("%-10s %-7s %-9s %5d %6d %6d %8.1f %8.1f %8.1f %9.1f %8.1f\n", LIB_NAME, s->cfg, s->layer, s->tokens,
               s->in, s->out, nt, nn, tn, tk, tt);
        fflush(stdout);
    }
#if defined(USE_DNNL)
    printf("# onednn matmul primitive (weights [out,in] = format 'ba'), fwd only, f32 vs bf16\n");
    printf("%-10s %-7s %-9s %5s %6s %6s %8s %8s  %s\n", "lib", "config", "layer", "tok", "in", "out", "f32", "bf16",
           "impl(f32 / bf16)");
    for (size_t i = 0; i < sizeof LINEARS / sizeof LINEARS[0]; i++) {
        const linear_shape *s = &LINEARS[i];
        char i32[64], i16[64];
        double f = gflops_matmul(dnnl_f32, 'T', s->tokens, s->out, s->in, i32, sizeof i32);
        double b = gflops_matmul(dnnl_bf16, 'T', s->tokens, s->out, s->in, i16, sizeof i16);
        printf("%-10s %-7s %-9s %5d %6d %6d %8.1f %8.1f  %s / %s\n", "dnnl-mm", s->cfg, s->layer, s->tokens, s->in,
               s->out, f, b, i32, i16);
        fflush(stdout);
    }
#endif
}

// ------------------------------------------------------------------ --attn
// Per-head attention GEMMs of one layer, fwd + bwd (6 GEMMs per (batch, head)):
//   S  = Q K^T   NT  [T,d]x[T,d]^T     dP = dO V^T  NT
//   O  = P V     NN  [T,T]x[T,d]       dQ = dS K    NN
//   dV = P^T dO  TN                    dK = dS^T Q  TN
// Q, K, V, O, dO, dQ, dK, dV are [B, T, H*d] (heads interleaved, ld = H*d, as a fused
// projection leaves them); P, dS are [B, H, T, T].
typedef struct {
    int B, H, T, d;
    float *q, *k, *v, *o, *dout, *dq, *dk, *dv, *p, *ds;
    int outer_parallel;
} attn_ctx;

static void attn_head(attn_ctx *a, int b, int h) {
    int T = a->T, d = a->d, ld = a->H * d;
    size_t qoff = (size_t)b * T * ld + (size_t)h * d;
    size_t poff = ((size_t)b * a->H + h) * T * T;
    float *P = a->p + poff, *dS = a->ds + poff;
    sgemm('N', 'T', T, T, d, a->q + qoff, ld, a->k + qoff, ld, P, T);
    sgemm('N', 'N', T, d, T, P, T, a->v + qoff, ld, a->o + qoff, ld);
    sgemm('N', 'T', T, T, d, a->dout + qoff, ld, a->v + qoff, ld, dS, T);
    sgemm('T', 'N', T, d, T, P, T, a->dout + qoff, ld, a->dv + qoff, ld);
    sgemm('N', 'N', T, d, T, dS, T, a->k + qoff, ld, a->dq + qoff, ld);
    sgemm('T', 'N', T, d, T, dS, T, a->q + qoff, ld, a->dk + qoff, ld);
}

static void run_attn_layer(void *p) {
    attn_ctx *a = p;
    int n = a->B * a->H;
    if (a->outer_parallel) {
#pragma omp parallel for schedule(static)
        for (int i = 0; i < n; i++) attn_head(a, i / a->H, i % a->H);
    } else {
        for (int i = 0; i < n; i++) attn_head(a, i / a->H, i % a->H);
    }
}

static void run_attn(int nthr) {
    static const struct {
        const char *cfg;
        int B, H, T;
    } cfgs[] = {{"tiny", 32, 2, 128}, {"small", 32, 4, 128}, {"medium", 16, 6, 256}};
    printf("# %s: attention GEMMs (6 per head: fwd QK^T, PV; bwd dO V^T, P^T dO, dS K, dS^T Q), "
           "d=64, GFLOP/s\n",
           LIB_NAME);
    printf("#   omp-for: omp parallel for over (b,h), GEMM called inside the region\n");
    printf("#   omp-for+1t: same, library explicitly set to 1 thread first\n");
    printf("#   serial: loop over (b,h) outside any region, GEMM threaded by the library\n");
    printf("%-10s %-7s %4s %3s %4s %10s %10s %10s %s\n", "lib", "config", "B", "H", "T", "omp-for", "omp-for+1t",
           "serial", "match");
    for (size_t c = 0; c < sizeof cfgs / sizeof cfgs[0]; c++) {
        attn_ctx a = {.B = cfgs[c].B, .H = cfgs[c].H, .T = cfgs[c].T, .d = 64};
        size_t nx = (size_t)a.B * a.T * a.H * a.d, np = (size_t)a.B * a.H * a.T * a.T;
        a.q = rand_buf(nx, 1);
        a.k = rand_buf(nx, 2);
        a.v = rand_buf(nx, 3);
        a.dout = rand_buf(nx, 4);
        a.o = rand_buf(nx, 5);
        a.dq = rand_buf(nx, 6);
        a.dk = rand_buf(nx, 7);
        a.dv = rand_buf(nx, 8);
        a.p = rand_buf(np, 9);
        a.ds = rand_buf(np, 10);
        double flops = 6.0 * 2.0 * a.T * a.T * a.d * a.B * a.H;

        // Reference result: serial loop, library threads = nthr.
        set_threads(nthr);
        a.outer_parallel = 0;
        run_attn_layer(&a);
        double ref = checksum(a.dq, nx) + checksum(a.dk, nx) + checksum(a.o, nx);
        double t_serial = time_call(run_attn_layer, &a);

        a.outer_parallel = 1;
        run_attn_layer(&a);
        double got = checksum(a.dq, nx) + checksum(a.dk, nx) + checksum(a.o, nx);
        double t_omp = time_call(run_attn_layer, &a);

#if defined(USE_BLIS) || defined(USE_OPENBLAS)
        // Library set to 1 thread, OpenMP region still nthr wide.
#if defined(USE_BLIS)
        bli_thread_set_num_threads(1);
#else
        openblas_set_num_threads(1);
#endif
        double t_omp1 = time_call(run_attn_layer, &a);
        set_threads(nthr);
#else
        double t_omp1 = NAN; // dnnl_sgemm has no thread setter; it runs 1 thread in a region
#endif
        int match = fabs(got - ref) <= 1e-3 * fabs(ref) + 1e-3;
        printf("%-10s %-7s %4d %3d %4d %10.1f %10.1f %10.1f %s\n", LIB_NAME, cfgs[c].cfg, a.B, a.H, a.T,
               flops / t_omp * 1e-9, flops / t_omp1 * 1e-9, flops / t_serial * 1e-9, match ? "ok" : "MISMATCH");
        fflush(stdout);
        free(a.q), free(a.k), free(a.v), free(a.dout), free(a.o);
        free(a.dq), free(a.dk), free(a.dv), free(a.p), free(a.ds);
    }
}

int main(int argc, char **argv) {
    int peak = 0, table = 0, attn = 0, nthr = 2;
    for (int i = 1; i < argc; i++) {
        if (!strcmp(argv[i], "--peak")) {
            peak = 1;
        } else if (!strcmp(argv[i], "--table")) {
            table = 1;
        } else if (!strcmp(argv[i], "--attn")) {
            attn = 1;
        } else if (!strcmp(argv[i], "--threads") && i + 1 < argc) {
            nthr = atoi(argv[++i]);
        } else if (!strcmp(argv[i], "--min-time") && i + 1 < argc) {
            g_min_time = atof(argv[++i]);
        } else {
            fprintf(stderr, "usage: %s [--peak] [--table] [--attn] [--threads N] [--min-time SEC]\n", argv[0]);
            return 2;
        }
    }
    if (!peak && !table && !attn) peak = table = attn = 1;
    set_threads(nthr);
    size_t big = (size_t)4096 * 16384;
    g_A = rand_buf(big, 11);
    g_B = rand_buf(big, 12);
    g_C = rand_buf(big, 13);
    g_scratch = rand_buf((size_t)16384 * 384, 14);
    if (peak) {
        double best = run_peak(nthr);
        printf("PEAK %s %.1f\n", LIB_NAME, best);
        printf("# background load during the accepted measurements: up to %.2f cores\n", g_bg_max);
        fflush(stdout);
    }
    if (table) run_table();
    if (attn) run_attn(nthr);
    if (table || attn) printf("# background load during the accepted measurements: up to %.2f cores\n", g_bg_max);
#if defined(USE_DNNL)
    if (peak) {
        char impl[64];
        double f = gflops_matmul(dnnl_f32, 'T', 2048, 2048, 2048, impl, sizeof impl);
        printf("MATMUL %s f32 2048^3 %.1f GFLOP/s (%s)\n", LIB_NAME, f, impl);
        double b = gflops_matmul(dnnl_bf16, 'T', 2048, 2048, 2048, impl, sizeof impl);
        printf("MATMUL %s bf16 2048^3 %.1f GFLOP/s (%s)  [<= 0: no bf16 kernel on this CPU]\n", LIB_NAME, b, impl);
    }
#endif
    free(g_A), free(g_B), free(g_C), free(g_scratch);
    return 0;
}
