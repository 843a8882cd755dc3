#!/usr/bin/env bash
# Restore-point scale benchmark (issue 19, "Scale"): N restore points in a
# local repository and in an S3 one (s3s-fs on loopback), timing
#   - `lifeboat snapshots` cold (no restore point cache) and warm,
#   - `lifeboat snapshots --json` (warm),
#   - the console's first frame with data (inventory loaded and drawn,
#     bench/scale_snapshots.rs `console`), cold and warm.
# Prints medians of RUNS runs as a Markdown table.
#
#   bench/scale.sh                 # N=50000 RUNS=5
#   N=1000 RUNS=3 bench/scale.sh
#
# Needs a release build (`cargo build --release --example scale_snapshots`
# and `cargo build --release`); s3s-fs from scripts/test-deps.sh.
set -euo pipefail
N=${N:-50000}
RUNS=${RUNS:-5}
# Cold runs read every restore point again: over s3s-fs that takes minutes.
RUNS_COLD=${RUNS_COLD:-1}
# COLD_S3=0 leaves the S3 cold rows out (s3s-fs serves ~100 GETs/s here).
COLD_S3=${COLD_S3:-1}
ROOT=$(cd "$(dirname "$0")/.." && pwd)
LB=$ROOT/target/release/lifeboat
GEN=$ROOT/target/release/examples/scale_snapshots
die() { echo "scale.sh: $*" >&2; exit 1; }
[[ -x $LB && -x $GEN ]] || die "build first: cargo build --release && cargo build --release --example scale_snapshots"
S3S_FS=$(command -v s3s-fs || echo "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs")
[[ -x $S3S_FS ]] || die "the S3 half needs s3s-fs: run scripts/test-deps.sh to install it"

WORK=$(mktemp -d "${TMPDIR:-/tmp}/lifeboat-scale.XXXXXX")
S3_PID=
cleanup() {
    [[ -n $S3_PID ]] && kill "$S3_PID" 2>/dev/null && wait "$S3_PID" 2>/dev/null
    rm -rf "$WORK"
}
trap cleanup EXIT
export LIFEBOAT_KEY_DIR=$WORK/keys LIFEBOAT_CACHE_DIR=$WORK/cache HOME=$WORK/home
unset LIFEBOAT_REPO LIFEBOAT_CONFIG
mkdir -p "$WORK/data/sub" "$HOME"
for i in $(seq 1 200); do head -c $((i * 97)) /dev/urandom >"$WORK/data/sub/f$i"; done
KEY=$WORK/admin.key
export LIFEBOAT_KEY=$KEY

# S3: one s3s-fs on a free loopback port, its objects under $WORK/s3.
mkdir -p "$WORK/s3/bench"
S3_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
"$S3S_FS" --host 127.0.0.1 --port "$S3_PORT" --access-key bench --secret-key bench-secret-key \
    "$WORK/s3" >"$WORK/s3s-fs.log" 2>&1 &
S3_PID=$!
for _ in $(seq 100); do (exec 3<>"/dev/tcp/127.0.0.1/$S3_PORT") 2>/dev/null && break; sleep 0.1; done
export AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT AWS_ACCESS_KEY_ID=bench \
    AWS_SECRET_ACCESS_KEY=bench-secret-key AWS_REGION=us-east-1

LOCAL=$WORK/repo
S3URL=s3://bench/repo
"$LB" init --repo "$LOCAL" --key-file "$KEY" >/dev/null
"$LB" init --repo "$S3URL" --key-file "$KEY" >/dev/null
for loc in "$LOCAL" "$S3URL"; do
    "$LB" --repo "$loc" backup --name svc "$WORK/data" >/dev/null
    "$GEN" gen "$loc" "$KEY" $((N - 1))
done

config() { # config NAME LOCATION-LINES
    cat >"$WORK/$1.toml" <<EOF
state_dir = "$WORK/state"
cache_dir = "$WORK/cache"
[repositories.r]
$2
key_file = "$KEY"
[services.svc]
tier = "important"
repository = "r"
sources = [{ kind = "files", paths = ["$WORK/data"] }]
EOF
}
config local "path = \"$LOCAL\""
config s3 "url = \"$S3URL\"
endpoint = \"$AWS_ENDPOINT_URL\"
region = \"us-east-1\"
path_style = true
access_key_id = \"env:AWS_ACCESS_KEY_ID\"
secret_access_key = \"env:AWS_SECRET_ACCESS_KEY\""

ms() { # ms COMMAND... : wall time in ms, output discarded
    local t0 t1
    t0=$(date +%s%N)
    "$@" >/dev/null
    t1=$(date +%s%N)
    echo $(((t1 - t0) / 1000000))
}
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }
nocache() { rm -rf "$WORK/cache"; }

echo "| $N restore points | local | S3 (s3s-fs, loopback) |"
echo "|---|---:|---:|"
row() { # row LABEL COLD(0/1) ARGS... (ARGS use @LOC@ / @CFG@)
    local label=$1 cold=$2; shift 2
    local out=()
    for kind in local s3; do
        local loc=$LOCAL; [[ $kind == s3 ]] && loc=$S3URL
        local args=("${@//@LOC@/$loc}")
        args=("${args[@]//@CFG@/$WORK/$kind.toml}")
        local runs=$RUNS times=()
        if [[ $cold == 1 && $kind == s3 && $COLD_S3 == 0 ]]; then
            out+=("not run")
            continue
        fi
        if [[ $cold == 1 ]]; then
            runs=$RUNS_COLD
        else
            "${args[@]}" >/dev/null # the cache is written, whatever was there
        fi
        for _ in $(seq "$runs"); do
            [[ $cold == 1 ]] && nocache
            times+=("$(ms "${args[@]}")")
        done
        out+=("$(printf '%s\n' "${times[@]}" | median) ms")
    done
    echo "| $label | ${out[0]} | ${out[1]} |"
}
row "\`lifeboat snapshots\`, no cache (cold)" 1 "$LB" --repo @LOC@ snapshots
row "\`lifeboat snapshots\`, cache up to date (warm)" 0 "$LB" --repo @LOC@ snapshots
row "\`lifeboat snapshots --json\` (warm)" 0 "$LB" --repo @LOC@ --json snapshots
row "console, first frame with data, no cache (cold)" 1 "$GEN" console @CFG@
row "console, first frame with data (warm)" 0 "$GEN" console @CFG@
# One new restore point: the warm path reads just that one.
for loc in "$LOCAL" "$S3URL"; do "$LB" --repo "$loc" backup --name svc "$WORK/data" >/dev/null; done
row "\`lifeboat snapshots\` after one more backup (warm again)" 0 "$LB" --repo @LOC@ snapshots
echo
echo "machine: $(nproc) cores, $(awk '/MemTotal/ {printf "%.0f GiB", $2/1048576}' /proc/meminfo), $(uname -r); N=$N, median of $RUNS (cold: $RUNS_COLD)"
