# lib.bash - the PASS/FAIL helpers every tests/*.sh script sources (not a test itself:
# run.sh runs tests/*.sh). Output convention: "PASS name" / "FAIL name: why" lines.
# expect needs $t (a scratch directory).
pass() { echo "PASS $1"; }
fail() { echo "FAIL $1: $2"; }

# check NAME CMD WHY: CMD (a string, eval'd) succeeds, else FAIL NAME: WHY.
check() { if eval "$2"; then pass "$1"; else fail "$1" "$3"; fi; }

# expect NAME CODE PATTERN -- CMD...: CMD exits with CODE and prints exactly one stderr
# line, matching PATTERN, and no crash report (the house rule for hostile input).
# expect_lines: the same with any number of stderr lines (a usage text).
expect() { expect_ 1 "$@"; }
expect_lines() { expect_ 0 "$@"; }
expect_() {
    local one=$1 name=$2 code=$3 pat=$4
    shift 5
    "$@" >"$t/out" 2>"$t/err"
    local rc=$?
    if [[ $rc -ne $code ]]; then fail "$name" "exit $rc, expected $code; stderr: $(tail -c 300 "$t/err")"; return; fi
    if ! grep -qE -- "$pat" "$t/err"; then fail "$name" "stderr lacks /$pat/: $(tail -c 300 "$t/err")"; return; fi
    if grep -qiE 'sanitizer|segmentation|core dumped' "$t/err"; then fail "$name" "crashed"; return; fi
    if [[ $one == 1 && $(grep -c . "$t/err") -ne 1 ]]; then fail "$name" "not one line: $(head -c 300 "$t/err")"; return; fi
    pass "$name"
}
