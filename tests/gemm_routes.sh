#!/usr/bin/env bash
# The GEMM tests of test_ops under both routes of the weight gradient (gemm.c:
# PLM_GEMM_TN), and the few-row products under both of theirs (PLM_GEMM_SKINNY): the
# defaults follow the CPU (OpenBLAS without AVX-512, oneDNN with it; the AVX2 kernel
# wherever there is AVX2), so each route is tested on every machine, whichever it is.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
rc=0
# routes VAR TAG GROUP NEED ROUTE...: test_ops GROUP under VAR=ROUTE for each ROUTE,
# each check's line renamed CHECK@TAG_ROUTE; fails if a route passed no NEED* check
routes() {
    local var=$1 tag=$2 group=$3 need=$4 route out n
    shift 4
    for route in "$@"; do
        out=$(env "$var=$route" "$BUILD/tests/test_ops" "$group" 2>&1) || rc=1
        printf '%s\n' "$out" | sed -E "s/^(PASS|FAIL) ([^: ]+)/\1 \2@${tag}_$route/"
        n=$(printf '%s\n' "$out" | grep -c "^PASS $need")
        if ((n == 0)); then
            echo "FAIL gemm_routes@${tag}_$route: test_ops ran no $need check"
            rc=1
        fi
    done
}
routes PLM_GEMM_TN tn gemm_ gemm_tn_ openblas onednn
routes PLM_GEMM_SKINNY skinny gemm_skinny gemm_skinny_ avx2 onednn
exit $rc
