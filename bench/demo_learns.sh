#!/usr/bin/env bash
# Does the demo's encoder learn? `plm demo` end to end with the demo's own recipe, a 1-step
# GPT and DEMO_BERT_STEPS encoder steps (default 300; DEMO_BERT_STEPS=2000 is the demo
# itself). Run it on a quiet machine from the repository root: bash bench/demo_learns.sh
# It lives in bench/, not tests/, until a quiet machine has shown the step count at which
# it passes (the session that wrote it could not run it to the end: see the comment at
# step 2 of src/cli/cmd_demo.c); then move it to tests/ with that DEMO_BERT_STEPS. Checks:
#  - it runs, shows GPT continuations and fill-mask predictions;
#  - the line it prints for the encoder: accuracy at the [MASK] positions of held-out text
#    next to always answering their most frequent token (the context-free baseline), and
#    the encoder must clearly beat that baseline (by DEMO_MARGIN points), i.e. it has left
#    the unigram plateau and predicts from context.
set -u
cd "$(dirname "$0")/.."
BUILD=${BUILD:-build}
PLM=$PWD/$BUILD/plm
export OMP_WAIT_POLICY=${OMP_WAIT_POLICY:-passive}
t=$(mktemp -d)
trap 'rm -rf "$t"' EXIT
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }
steps=${DEMO_BERT_STEPS:-300}
margin=${DEMO_MARGIN:-2}

if "$PLM" demo --output-dir "$t/d" --gpt-steps 1 --bert-steps "$steps" >"$t/out" 2>"$t/err"; then
    pass demo_runs
else
    fail demo_runs "exit $?: $(tail -3 "$t/err" | tr '\n' ' ')"
fi
if grep -q '== BERT (masked LM): fill-mask ==' "$t/out" && [[ $(grep -c '^  \[MASK\] 1 ' "$t/out") -eq 20 ]]; then
    pass demo_fill_mask
else
    fail demo_fill_mask "no 4 x 5 fill-mask predictions: $(head -c 300 "$t/out")"
fi
# "BERT accuracy at the [MASK] tokens of held-out text: 23.4% (always the most frequent token: 4.6%)"
line=$(grep -a 'BERT accuracy at the \[MASK\] tokens' "$t/out")
acc=$(sed -n 's/.*held-out text: \([0-9.]*\)%.*/\1/p' <<<"$line")
base=$(sed -n 's/.*most frequent token: \([0-9.]*\)%.*/\1/p' <<<"$line")
echo "# demo encoder after $steps steps: [MASK]-only accuracy $acc% vs most frequent token $base%"
if [[ -n $acc && -n $base ]] && awk -v a="$acc" -v b="$base" -v m="$margin" 'BEGIN { exit !(a > b + m && b > 1) }'; then
    pass demo_encoder_beats_context_free
else
    fail demo_encoder_beats_context_free "accuracy '$acc'% vs baseline '$base'% (needs +$margin points): '$line'"
fi
