#!/usr/bin/env bash
# Builds bench/gemm.c once per BLAS into $BUILD/bench/gemm_{openblas,blis,dnnl}; each binary
# loads exactly one BLAS (and libgomp). Rebuilds only when gemm.c is newer than the binary.
set -euo pipefail
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
out=$BUILD/bench
mkdir -p "$out"
CC=${CC:-gcc}
F=(-O3 -march=native -std=c17 -Wall -Wextra -Werror -fopenmp -D_GNU_SOURCE)
L=/usr/lib/x86_64-linux-gnu
build() {  # name, extra args...
    local name=$1
    shift
    if [[ ! -x $out/gemm_$name || bench/gemm.c -nt $out/gemm_$name ]]; then
        "$CC" "${F[@]}" bench/gemm.c -o "$out/gemm_$name" "$@" -lm
    fi
}
build openblas -DUSE_OPENBLAS -L$L/openblas-openmp -Wl,-rpath,$L/openblas-openmp -l:libopenblas.so.0
build blis -DUSE_BLIS -isystem /usr/include/x86_64-linux-gnu/blis-openmp \
    -L$L/blis-openmp -Wl,-rpath,$L/blis-openmp -l:libblis.so.4
build dnnl -DUSE_DNNL -ldnnl
