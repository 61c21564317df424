#!/usr/bin/env bash
# tokenizer_cli.sh - `plm tokenizer train`, `plm tokenize`, `plm detokenize` end to end:
# --help, exit codes (2 usage, 3 bad input), batch mode over files, exact round trip.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PLM=$BUILD/plm
DATA=${PLM_DATA:-../shared/data}
if [[ ! -x $PLM ]]; then echo "FAIL tokenizer_cli: $PLM not built (run make)"; exit 1; fi
if [[ ! -f $DATA/tinyshakespeare/input.txt || ! -f $DATA/moby-dick/data.txt ]]; then
    echo "FAIL tokenizer_cli: datasets missing under $DATA (\$PLM_DATA, default ../shared/data)"
    exit 1
fi
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
ok() { if eval "$2"; then echo "PASS $1"; else echo "FAIL $1: $3"; fi; }
"$PLM" tokenize --help >"$W/h" 2>&1
ok tokenize_help '[[ $? == 0 ]] && grep -q -- --tokenizer "$W/h"' "no help"
"$PLM" tokenize --bogus 2>"$W/e"
rc=$?
ok tokenize_unknown_flag '[[ $rc == 2 ]] && grep -q -- --bogus "$W/e"' "rc=$rc $(cat "$W/e")"
"$PLM" tokenizer train --quiet --vocab-size 2000 --output "$W/t.json" "$DATA/tinyshakespeare/input.txt"
rc=$?
ok tokenizer_train '[[ $rc == 0 && -s $W/t.json ]]' "rc=$rc"
"$PLM" tokenizer train --quiet --output "$W/x.json" /nonexistent 2>"$W/e"
rc=$?
ok tokenizer_train_bad_input '[[ $rc == 3 ]]' "rc=$rc"
echo '{"model": {' >"$W/bad.json"
"$PLM" tokenize --tokenizer "$W/bad.json" "$DATA/tinyshakespeare/input.txt" 2>"$W/e" >/dev/null
rc=$?
ok tokenize_bad_tokenizer '[[ $rc == 3 ]] && grep -q "bad.json:" "$W/e"' "rc=$rc $(cat "$W/e")"
mkdir -p "$W/ids"
"$PLM" tokenize --quiet --tokenizer "$W/t.json" --threads 2 --output-dir "$W/ids" "$DATA/moby-dick/data.txt" "$DATA/tinyshakespeare/input.txt"
rc=$?
ok tokenize_batch '[[ $rc == 0 && -s $W/ids/data.txt.ids && -s $W/ids/input.txt.ids ]]' "rc=$rc"
"$PLM" detokenize --quiet --tokenizer "$W/t.json" --threads 2 "$W/ids/data.txt.ids" >"$W/rt.txt"
ok detokenize_roundtrip 'cmp -s "$W/rt.txt" "$DATA/moby-dick/data.txt"' "round trip differs"
# --output FILE with FILE inputs: one file, closed once (it was closed per input and again at the end)
"$PLM" tokenize --quiet --tokenizer "$W/t.json" --output "$W/both.ids" "$DATA/moby-dick/data.txt" \
    "$DATA/tinyshakespeare/input.txt" 2>"$W/e"
rc=$?
ok tokenize_output_file '[[ $rc == 0 ]] && cat "$W/ids/data.txt.ids" "$W/ids/input.txt.ids" | cmp -s - "$W/both.ids"' \
    "rc=$rc $(head -c 300 "$W/e")"
