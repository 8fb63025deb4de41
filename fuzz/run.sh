#!/usr/bin/env bash
# Builds every cargo-fuzz target and runs each for SECONDS; prints executions per target
# and exits non-zero when any target crashed (the input is kept in fuzz/artifacts/<target>/).
#
#   fuzz/run.sh 600                # every target, 10 minutes each, one after the other
#   JOBS=2 fuzz/run.sh 600         # two targets at a time (the machine has 2 cores)
#   TARGETS="host config" fuzz/run.sh 60
#   SANITIZER=address fuzz/run.sh 60
#
# Needs the nightly toolchain and cargo-fuzz (`cargo install cargo-fuzz`). New inputs the
# fuzzer finds go to fuzz/work/corpus/<target>/ (ignored by git); the committed seeds in
# fuzz/corpus/<target>/ are only read.
set -euo pipefail

seconds=${1:?usage: fuzz/run.sh SECONDS}
[[ $seconds =~ ^[0-9]+$ && $seconds -gt 0 ]] || { echo "SECONDS must be a positive integer" >&2; exit 2; }
jobs=${JOBS:-1}
# certfront forbids unsafe code and its C dependency (aws-lc) is not instrumented by
# RUSTFLAGS anyway, so AddressSanitizer mostly costs speed; panics are what we look for.
sanitizer=${SANITIZER:-none}
cd "$(dirname "$0")"
targets=${TARGETS:-$(cargo +nightly fuzz list)}

for t in $targets; do
    cargo +nightly fuzz build --sanitizer "$sanitizer" "$t"
done

mkdir -p work/logs
run_one() {
    local t=$1
    mkdir -p "work/corpus/$t"
    local args=(-max_total_time="$seconds" -timeout=10 -rss_limit_mb=2048 -print_final_stats=1)
    [[ -f dict/$t.dict ]] && args+=(-dict="dict/$t.dict")
    # A hard bound on top of libFuzzer's own: a hung target cannot hold the script.
    timeout --signal=KILL $((seconds + 300)) \
        cargo +nightly fuzz run --sanitizer "$sanitizer" "$t" "work/corpus/$t" "corpus/$t" \
        -- "${args[@]}" > "work/logs/$t.log" 2>&1
}

pids=()
names=()
status=0
for t in $targets; do
    run_one "$t" &
    pids+=($!)
    names+=("$t")
    if (( ${#pids[@]} >= jobs )); then
        wait "${pids[0]}" || true
        pids=("${pids[@]:1}")
    fi
done
wait || true
# cert_load's input files (libFuzzer exits without running destructors).
rm -rf /dev/shm/certfront-fuzz-* "${TMPDIR:-/tmp}"/certfront-fuzz-*

printf '%-10s %8s %14s %10s %8s  %s\n' target seconds executions exec/s corpus result
for t in $targets; do
    log=work/logs/$t.log
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
    took=$(grep -oE 'Done [0-9]+ runs in [0-9]+ second' "$log" | grep -oE '[0-9]+ second' | grep -oE '[0-9]+' | tail -1 || true)
    rate=$(grep -o 'stat::average_exec_per_sec: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1 || true)
    corpus=$(find "work/corpus/$t" -type f | wc -l)
    if grep -qE '^==[0-9]+== ERROR: libFuzzer|^SUMMARY: libFuzzer|panicked at|deadly signal|Test unit written' "$log"; then
        result="CRASH (see fuzz/$log and fuzz/artifacts/$t/)"
        status=1
    elif [[ -z $runs ]]; then
        result="DID NOT RUN (see fuzz/$log)"
        status=1
    else
        result=ok
    fi
    printf '%-10s %8s %14s %10s %8s  %s\n' "$t" "${took:-?}" "${runs:-0}" "${rate:-?}" "$corpus" "$result"
done
exit $status
