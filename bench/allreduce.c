/* allreduce.c - MPI_Allreduce (float sum, in place) latency and bandwidth over message
 * sizes, for the scaling model of docs/scaling.md.
 *   mpirun -np 2 build/bench/allreduce [--max-mb 64] [--reps N]
 * One line per size: bytes, median microseconds, and the "bus bandwidth" a ring allreduce
 * would need for that time, 2 (N-1)/N x bytes / time (the model's convention, as NCCL's
 * busbw), so it compares directly with a link's speed. Rank 0 prints. */
#include <mpi.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

static int cmp_double(const void *a, const void *b) {
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

int main(int argc, char **argv) {
    MPI_Init(&argc, &argv);
    int rank, size, reps = 20;
    double max_mb = 64;
    MPI_Comm_rank(MPI_COMM_WORLD, &rank);
    MPI_Comm_size(MPI_COMM_WORLD, &size);
    for (int i = 1; i + 1 < argc; i += 2) {
        if (strcmp(argv[i], "--max-mb") == 0)
            max_mb = atof(argv[i + 1]);
        else if (strcmp(argv[i], "--reps") == 0)
            reps = atoi(argv[i + 1]);
    }
    size_t max_n = (size_t)(max_mb * 1048576.0 / sizeof(float));
    float *x = malloc(max_n * sizeof(float));
    double *t = malloc((size_t)reps * sizeof(double));
    if (!x || !t) MPI_Abort(MPI_COMM_WORLD, 1);
    for (size_t i = 0; i < max_n; i++) x[i] = (float)(i % 7) * 0.25f;
    if (rank == 0) printf("# %d ranks; bytes  median_us  min_us  busbw_GBps (2(N-1)/N x bytes / median)\n", size);
    for (size_t n = 1; n <= max_n; n *= 4) {
        int r = n * sizeof(float) >= (16u << 20) ? (reps + 3) / 4 : reps; /* big messages: fewer */
        for (int k = -2; k < r; k++) {
            MPI_Barrier(MPI_COMM_WORLD);
            double t0 = MPI_Wtime();
            MPI_Allreduce(MPI_IN_PLACE, x, (int)n, MPI_FLOAT, MPI_SUM, MPI_COMM_WORLD);
            double dt = MPI_Wtime() - t0;
            MPI_Allreduce(MPI_IN_PLACE, &dt, 1, MPI_DOUBLE, MPI_MAX, MPI_COMM_WORLD); /* the slowest rank */
            if (k >= 0) t[k] = dt;
            for (size_t i = 0; i < n; i++) x[i] *= 1.0f / (float)size; /* keep values bounded */
        }
        qsort(t, (size_t)r, sizeof(double), cmp_double);
        double med = t[r / 2], bytes = (double)n * sizeof(float);
        if (rank == 0)
            printf("%12.0f %10.1f %10.1f %8.3f\n", bytes, med * 1e6, t[0] * 1e6,
                   2.0 * (size - 1) / size * bytes / med * 1e-9);
    }
    free(x);
    free(t);
    MPI_Finalize();
    return 0;
}
