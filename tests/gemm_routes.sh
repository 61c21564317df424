#!/usr/bin/env bash
# The GEMM tests of test_ops under both routes of the weight gradient (gemm.c:
# PLM_GEMM_TN), and the few-row products under both of theirs (PLM_GEMM_SKINNY): the
# defaults follow the CPU (OpenBLAS and the AVX2 kernel without AVX-512, oneDNN with
# it), so each route is tested on every machine, whichever it is.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
rc=0
for route in openblas onednn; do
    out=$(PLM_GEMM_TN=$route "$BUILD/tests/test_ops" gemm_ 2>&1) || rc=1
    # each check's line, renamed with its route
    printf '%s\n' "$out" | sed -E "s/^(PASS|FAIL) ([^: ]+)/\1 \2@tn_$route/"
    n=$(printf '%s\n' "$out" | grep -c '^PASS gemm_tn_')
    if ((n == 0)); then
        echo "FAIL gemm_routes@tn_$route: test_ops ran no gemm_tn check"
        rc=1
    fi
done
for route in avx2 onednn; do
    out=$(PLM_GEMM_SKINNY=$route "$BUILD/tests/test_ops" gemm_skinny 2>&1) || rc=1
    printf '%s\n' "$out" | sed -E "s/^(PASS|FAIL) ([^: ]+)/\1 \2@skinny_$route/"
    n=$(printf '%s\n' "$out" | grep -c '^PASS gemm_skinny_')
    if ((n == 0)); then
        echo "FAIL gemm_routes@skinny_$route: test_ops ran no gemm_skinny check"
        rc=1
    fi
done
exit $rc
