#!/usr/bin/env bash
# T5 parity against PyTorch: $BUILD/tests/test_t5 DIR writes two T5ForConditionalGeneration
# checkpoints (v1.0 ReLU tied, v1.1 gated-GELU untied; odd widths, encoder and decoder
# lengths differ, relative positions past max_distance) with their inputs, outputs and
# gradients; tests/ref/t5_ref.py reads each checkpoint (HF names and T5Config) into its
# own float64 T5 and compares everything (relative error <= 1e-5). PASS/FAIL lines.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PY=/usr/bin/python3 # Debian's python3-torch
bin=$BUILD/tests/test_t5
if ! "$PY" -c 'import torch' >/dev/null 2>&1; then
    if [[ ${PLM_ALLOW_MISSING_REFS:-} == 1 ]]; then
        echo "SKIP t5_parity: python3-torch missing (PLM_ALLOW_MISSING_REFS=1)"
        exit 0
    fi
    echo "FAIL t5_parity: python3-torch missing (run scripts/setup.sh)"
    exit 1
fi
if [[ ! -x $bin ]]; then
    echo "FAIL t5_parity: $bin is not built (run make)"
    exit 1
fi
dir=$(mktemp -d "${TMPDIR:-/tmp}/plm-t5.XXXXXX")
trap 'rm -rf "$dir"' EXIT
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
"$bin" "$dir" || { echo "FAIL t5_parity: $bin could not dump"; exit 1; }
"$PY" tests/ref/t5_ref.py "$dir"
