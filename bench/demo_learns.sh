#!/usr/bin/env bash
# Does the demo's encoder learn? Runs `plm demo` as shipped (extra demo arguments in
# DEMO_ARGS, e.g. DEMO_ARGS="--gpt-steps 1" for the encoder alone, 13.8 of the demo's 22.3
# TFLOP; DEMO_ARGS="--bert-init gpt" for the encoder continued from the GPT) from the
# repository root: bash bench/demo_learns.sh
# It is the whole demo (several minutes on 2 cores), so it lives in bench/, not tests/
# (the measurements are in the comment at step 2 of src/cli/cmd_demo.c). Checks:
#  - it runs, shows GPT continuations and 4 x 5 fill-mask predictions;
#  - the fill-mask answers change with the context: the top predictions of the 4
#    sentences are at least DEMO_DISTINCT (3) different tokens;
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
margin=${DEMO_MARGIN:-5}
distinct=${DEMO_DISTINCT:-3}

# shellcheck disable=SC2086 # DEMO_ARGS is a list of words
if "$PLM" demo --output-dir "$t/d" ${DEMO_ARGS:-} >"$t/out" 2>"$t/err"; then
    pass demo_runs
else
    fail demo_runs "exit $?: $(tail -3 "$t/err" | tr '\n' ' ')"
fi
if grep -q '(masked LM): fill-mask ==' "$t/out" && [[ $(grep -c '^  \[MASK\] 1 ' "$t/out") -eq 20 ]]; then
    pass demo_fill_mask
else
    fail demo_fill_mask "no 4 x 5 fill-mask predictions: $(head -c 300 "$t/out")"
fi
# the first prediction under each sentence is its top one
top=$(awk '/fill-mask ==/ { on = 1; next } on && /^[^ ]/ { want = 1; next } on && want && /^  \[MASK\] 1 / { sub(/^  \[MASK\] 1 +[0-9.]+% +/, ""); print; want = 0 }' "$t/out")
n=$(sort -u <<<"$top" | grep -c .)
echo "# top fill-mask answers: $(tr '\n' ' ' <<<"$top")"
if ((n >= distinct)); then
    pass demo_fill_mask_uses_context
else
    fail demo_fill_mask_uses_context "$n different top answers for 4 sentences (needs $distinct): $(tr '\n' ' ' <<<"$top")"
fi
# "Encoder accuracy at the [MASK] tokens of held-out text: 23.4% (always the most frequent token: 4.6%)"
line=$(grep -a 'accuracy at the \[MASK\] tokens' "$t/out")
acc=$(sed -n 's/.*held-out text: \([0-9.]*\)%.*/\1/p' <<<"$line")
base=$(sed -n 's/.*most frequent token: \([0-9.]*\)%.*/\1/p' <<<"$line")
echo "# demo encoder: [MASK]-only accuracy $acc% vs most frequent token $base%"
if [[ -n $acc && -n $base ]] && awk -v a="$acc" -v b="$base" -v m="$margin" 'BEGIN { exit !(a > b + m && b > 1) }'; then
    pass demo_encoder_beats_context_free
else
    fail demo_encoder_beats_context_free "accuracy '$acc'% vs baseline '$base'% (needs +$margin points): '$line'"
fi
