#!/usr/bin/env bash
# Installs what plm needs on Debian 12.
#   scripts/setup.sh          the build: gcc, oneDNN + OpenBLAS (GEMM), cJSON, xxHash, PCRE2, utf8proc, OpenMP
#   scripts/setup.sh --test   also the test references and the other BLASes the benchmark compares: PyTorch (python3-torch) for gradient
#                             parity, scikit-learn + SciPy (metric references), clang for the fuzzers,
#                             HF tokenizers + js-tiktoken (npm), Open MPI (tests/mpi.sh: data-parallel training)
# Idempotent: installs only what is missing. Uses sudo when not root.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(build-essential libdnnl-dev libopenblas-dev libopenblas0-openmp libcjson-dev libxxhash-dev nettle-dev libpcre2-dev libutf8proc-dev)
if [[ ${1:-} == --test || ${1:-} == --bench ]]; then
    pkgs+=(python3 python3-numpy python3-torch python3-sklearn python3-scipy clang libclang-rt-14-dev libomp-dev clang-format
           libblis-dev libopenmpi-dev openmpi-bin)
    command -v npm >/dev/null || pkgs+=(nodejs npm)
fi
missing=()
for p in "${pkgs[@]}"; do
    dpkg-query -W -f='${Status}' "$p" 2>/dev/null | grep -q 'install ok installed' || missing+=("$p")
done
if ((${#missing[@]})); then
    SUDO=""
    [[ $(id -u) -ne 0 ]] && SUDO=sudo
    echo "setup: installing ${missing[*]}"
    $SUDO apt-get update -qq
    DEBIAN_FRONTEND=noninteractive $SUDO apt-get install -y -qq --no-install-recommends "${missing[@]}" >/dev/null
fi
if [[ ${1:-} == --test || ${1:-} == --bench ]] && [[ ! -d node_modules/tokenizers ]]; then
    echo "setup: npm install (tokenizer conformance references)"
    npm install --no-audit --no-fund --silent >/dev/null
fi
echo "setup: ok"
