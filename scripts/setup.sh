#!/usr/bin/env bash
# Installs what plm needs on Debian 12: the C libraries it links (oneDNN for GEMM,
# cJSON, PCRE2, utf8proc, OpenMP via gcc), PyTorch for the reference tests and the
# benchmark, and HF's tokenizers (npm) as the tokenizer conformance reference.
# Idempotent: installs only what is missing.
set -euo pipefail
cd "$(dirname "$0")/.."
pkgs=(build-essential libdnnl-dev libopenblas-dev libopenblas0-openmp libblis-dev libcjson-dev libpcre2-dev
      libutf8proc-dev python3 python3-numpy python3-torch clang libclang-rt-14-dev clang-format)
command -v npm >/dev/null || pkgs+=(nodejs npm)
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
# npm references for the tokenizer conformance tests (pinned in package.json).
if [[ ${PLM_SKIP_NPM:-0} != 1 ]] && command -v npm >/dev/null && [[ ! -d node_modules/tokenizers ]]; then
    npm install --no-audit --no-fund --silent >/dev/null 2>&1 || echo "setup: warning: npm install failed; tokenizer conformance tests will be skipped" >&2
fi
