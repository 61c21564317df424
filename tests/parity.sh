#!/usr/bin/env bash
# Gradient parity against PyTorch (issue 2, "What must be shown"). Runs every op, whole
# BERT (MLM) and GPT-2 (CLM) models and the task heads (NSP, classification, QA, RTD,
# ELECTRA generator + discriminator) in fp32 C ($BUILD/tests/test_parity_dump, built by
# make), dumps inputs, outputs and all gradients into a temporary directory, and has
# tests/ref/parity.py recompute them in float64 PyTorch (Debian's python3-torch):
# relative error <= 1e-4 per tensor. Prints PASS/FAIL lines; builds nothing.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3 # not the pyenv python on PATH: python3-torch lives in Debian's
bin=$BUILD/tests/test_parity_dump
if ! "$PY" -c 'import torch' >/dev/null 2>&1; then
    if [[ ${PLM_ALLOW_MISSING_REFS:-} == 1 ]]; then
        echo "SKIP parity: python3-torch missing (run scripts/setup.sh) (PLM_ALLOW_MISSING_REFS=1)"
        exit 0
    fi
    echo "FAIL parity: python3-torch missing (run scripts/setup.sh); set PLM_ALLOW_MISSING_REFS=1 to skip on purpose"
    exit 1
fi
if [[ ! -x $bin ]]; then
    echo "FAIL parity: $bin is not built (run make)"
    exit 1
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/plm-parity.XXXXXX")
trap 'rm -rf "$dir"' EXIT
rc=0
# Tiny ops make OpenMP's default spin-waiting collapse on a busy machine (20-50x
# slower); sleeping waits change no result.
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
# The default routing (src/model/gemm.c: oneDNN sgemm, its matmul primitive for wide weight gradients),
# then every product forced through each library (PLM_GEMM), each against torch; then
# bf16 (PLM_BF16=1: oneDNN's bf16 matmul, parity.py's bf16 tolerance; on a CPU without
# bf16 this route runs the fp32 fallback, and the dump says so).
for route in auto openblas dnnl bf16; do
    sub=$dir/$route
    mkdir -p "$sub"
    if [[ $route == auto ]]; then
        env -u PLM_GEMM "$bin" "$sub" || rc=1
    elif [[ $route == bf16 ]]; then
        env -u PLM_GEMM PLM_BF16=1 "$bin" "$sub" || rc=1
    else
        PLM_GEMM=$route "$bin" "$sub" || rc=1
    fi
    if ! compgen -G "$sub/*.safetensors" >/dev/null; then
        echo "FAIL parity: $bin wrote no dumps (PLM_GEMM=$route)"
        rc=1
        continue
    fi
    if [[ $route == auto ]]; then
        "$PY" tests/ref/parity.py "$sub" || rc=1
    else
        "$PY" tests/ref/parity.py "$sub" "$route" || rc=1
    fi
done
exit $rc
