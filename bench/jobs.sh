# bench/jobs.sh - a pool of at most FT_JOBS background jobs, for the bench scripts that
# run many fine-tunes (sourced). job_run CMD ARGS... starts CMD in the background, first
# waiting for a free slot; jobs_wait waits for the rest and fails if any job failed.
jobs_running=0
jobs_failed=0

job_run() {
    "$@" &
    jobs_running=$((jobs_running + 1))
    if ((jobs_running >= ${FT_JOBS:-2})); then
        wait -n || jobs_failed=1
        jobs_running=$((jobs_running - 1))
    fi
}

jobs_wait() {
    while ((jobs_running > 0)); do
        wait -n || jobs_failed=1
        jobs_running=$((jobs_running - 1))
    done
    ((jobs_failed == 0))
}
