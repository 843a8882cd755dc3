#!/usr/bin/env bash
# Runs every fuzz target for a while and prints how many inputs each ran.
# Not part of CI: a campaign takes 10 minutes per target by default.
#
#   bench/fuzz.sh            # 600 s per target
#   SECS=60 bench/fuzz.sh config tree
#
# Needs cargo-fuzz (`cargo install cargo-fuzz`) and a nightly compiler, or
# the stable one with RUSTC_BOOTSTRAP=1 (set here). A crash leaves its input
# in bench/fuzz/artifacts/TARGET/; turn it into a regression test.
set -euo pipefail
cd "$(dirname "$0")/fuzz"
export RUSTC_BOOTSTRAP=1
SECS=${SECS:-600}
targets=("$@")
[ ${#targets[@]} -gt 0 ] || targets=(config runbook tree pack_index)
# The shipped configs and runbooks are the seeds: the fuzzer starts from
# inputs that parse and mutates them into ones that almost do.
mkdir -p corpus/config corpus/runbook corpus/tree corpus/pack_index
cp ../../config/*.toml ../../assets/*.toml corpus/config/ 2>/dev/null || true
cp ../../runbooks/*.md corpus/runbook/
cargo fuzz build --fuzz-dir . -O >&2
for t in "${targets[@]}"; do
    log=$(mktemp)
    cargo fuzz run --fuzz-dir . -O "$t" "corpus/$t" -- -max_total_time="$SECS" -print_final_stats=1 -rss_limit_mb=1024 -timeout=10 >"$log" 2>&1 || {
        echo "$t: FAILED (see $log and artifacts/$t/)"
        tail -30 "$log"
        continue
    }
    runs=$(grep -o 'stat::number_of_executed_units: *[0-9]*' "$log" | grep -o '[0-9]*$' | tail -1)
    cov=$(grep -o 'cov: [0-9]*' "$log" | tail -1 | grep -o '[0-9]*')
    echo "$t: ${runs:-?} executions in ${SECS} s, coverage ${cov:-?} edges, no crash"
    rm -f "$log"
done
