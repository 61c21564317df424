#!/usr/bin/env bash
# tokenizer_train_conformance.sh - plm's BPE trainer against HF tokenizers' BpeTrainer
# (npm, the model's default trainer: vocab 30000, byte-level pre-tokenizer) on
# tinyshakespeare + moby-dick: vocabulary and merges must be identical, and plm must
# load HF's file and give the same ids. The full-corpus comparison is in bench/.
# A missing reference (node, node_modules) or dataset FAILs; PLM_ALLOW_MISSING_REFS=1
# turns a missing reference into a SKIP line.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
DATA=${PLM_DATA:-../shared/data}
if [[ ! -d node_modules/tokenizers ]] || ! command -v node >/dev/null; then
    if [[ ${PLM_ALLOW_MISSING_REFS:-} == 1 ]]; then
        echo "SKIP tokenizer_train_conformance: node or node_modules/tokenizers absent (run npm install) (PLM_ALLOW_MISSING_REFS=1)"
        exit 0
    fi
    echo "FAIL tokenizer_train_conformance: node or node_modules/tokenizers absent (run npm install); set PLM_ALLOW_MISSING_REFS=1 to skip on purpose"
    exit 1
fi
if [[ ! -f $DATA/tinyshakespeare/input.txt || ! -f $DATA/moby-dick/data.txt ]]; then
    echo "FAIL tokenizer_train_conformance: datasets missing under $DATA (\$PLM_DATA, default ../shared/data)"
    exit 1
fi
if [[ -n ${PLM_SANITIZE:-} ]]; then
    echo "SKIP tokenizer_train_conformance: not run under the sanitizer build"
    exit 0
fi
TOOL=$BUILD/tests/tok_train
[[ -x $TOOL ]] || make -s "$TOOL" >/dev/null || { echo "FAIL train_build: cannot build $TOOL"; exit 1; }
W=$BUILD/train-conformance
mkdir -p "$W"
FILES=("$DATA/tinyshakespeare/input.txt" "$DATA/moby-dick/data.txt")
hf=$(node tests/ref/hf_train.js "$W/hf.json" "${FILES[@]}" 2>/dev/null | grep HF_TRAIN_SECONDS)
plm=$("$TOOL" "$W/plm.json" 30000 observed "${FILES[@]}")
res=$(node tests/ref/cmp_train.js "$W/plm.json" "$W/hf.json")
echo "# hf ${hf#HF_TRAIN_SECONDS }s, plm ${plm#PLM_TRAIN_SECONDS }s"
echo "$res" | sed 's/^/# /'
if [[ $res == *EQUAL* && $res != *DIFFERENT* ]]; then echo "PASS bpe_trainer_equals_hf"; else echo "FAIL bpe_trainer_equals_hf: see above"; fi
# HF's file loads in plm and encodes like plm's own
TT=$BUILD/tests/tok_tool
head -c 300000 "$DATA/wikitext-2/wiki.test.tokens" >"$W/heldout.txt"
"$TT" json "$W/hf.json" ids "$W/heldout.txt" >"$W/hf.ids" 2>&1
"$TT" json "$W/plm.json" ids "$W/heldout.txt" >"$W/plm.ids" 2>&1
if cmp -s "$W/hf.ids" "$W/plm.ids" && [[ -s $W/hf.ids ]]; then echo "PASS hf_trained_json_loads_in_plm"; else
    echo "FAIL hf_trained_json_loads_in_plm: $(head -c 200 "$W/hf.ids")"; fi
# and plm's file loads in HF with the same ids
node tests/ref/hf_encode.js "json:$W/plm.json" ids "$W/heldout.txt" >"$W/plm_in_hf.ids" 2>&1
if cmp -s "$W/plm_in_hf.ids" "$W/plm.ids"; then echo "PASS plm_json_loads_in_hf"; else
    echo "FAIL plm_json_loads_in_hf: $(head -c 200 "$W/plm_in_hf.ids")"; fi
