#!/usr/bin/env bash
# Scale benchmark (issue 19): a chunk index of 10 M chunks and an unchanged
# tree of 1 M files. Not a test; numbers go to docs/benchmarks.md
# ("Scale: chunk index and a million files").
#
#   bench/scale_index.sh [WORKDIR]      (default /work/scale; ~2 GiB free)
#
# 1. index: `scale_index gen` writes 10 M synthetic chunk entries (1,000
#    index objects, 64 chunks a pack, an empty placeholder file per pack so
#    packs count as present), then `scale_index open` is run RUNS times: it
#    times Repository::open + load_index, prints the index's heap bytes per
#    chunk, RSS and peak RSS, and rebuilds the pre-issue-19 layout from the
#    same files for a before/after in one run.
# 2. files: 1,000,000 tiny files (10,000 directories of 100), an initial
#    backup, then RUNS unchanged backups, each timed with /usr/bin/time.
# Medians are printed. The machine is shared: run when it is quiet.
set -euo pipefail
W=${1:-/work/scale}
RUNS=${RUNS:-3}
CHUNKS=${CHUNKS:-10000000}
FILES=${FILES:-1000000}
cd "$(dirname "$0")/.."
cargo build --release --bins --example scale_index
BIN=$PWD/target/release/lifeboat
IDX=$PWD/target/release/examples/scale_index
mkdir -p "$W"
median() { sort -n | awk '{a[NR]=$1} END {print a[int((NR+1)/2)]}'; }

echo "== index: $CHUNKS chunks"
rm -rf "$W/idx" "$W/idx.key"
HOME=$W/home "$IDX" gen "$W/idx" "$CHUNKS"
for _ in $(seq "$RUNS"); do HOME=$W/home "$IDX" open "$W/idx"; done | tee "$W/index.log"
echo "median open+load: $(grep -o 'open+load [0-9.]*' "$W/index.log" | awk '{print $2}' | median) s"
echo "median before (old layout) load: $(grep -o ', load [0-9.]* s, [0-9.]* B' "$W/index.log" | awk '{print $2}' | median) s"

echo "== files: $FILES files"
if [[ ! -d $W/tree ]]; then
    python3 - "$W/tree" "$FILES" <<'PY'
import os, sys
root, n = sys.argv[1], int(sys.argv[2])
for d in range(n // 100):
    p = os.path.join(root, "d%03d" % (d // 1000), "d%03d" % (d % 1000))
    os.makedirs(p, exist_ok=True)
    for f in range(100):
        with open(os.path.join(p, "f%03d.txt" % f), "wb") as fh:
            fh.write(b"file %d %d\n" % (d, f))
PY
    sleep 3 # older than the files cache's 2 s racy margin
fi
E=(env HOME="$W/e/home" XDG_CACHE_HOME="$W/e/cache" XDG_CONFIG_HOME="$W/e/config")
rm -rf "$W/e" "$W/r"; mkdir -p "$W/e/home" "$W/e/cache" "$W/e/config"
"${E[@]}" "$BIN" init --repo "$W/r" >/dev/null
/usr/bin/time -f "initial backup %e s, max RSS %M KiB" "${E[@]}" "$BIN" backup --json --repo "$W/r" "$W/tree" >/dev/null
for _ in $(seq "$RUNS"); do
    /usr/bin/time -f "%e" -o "$W/t" "${E[@]}" "$BIN" backup --json --repo "$W/r" "$W/tree" >/dev/null
    cat "$W/t"
done | tee "$W/unchanged.log"
echo "median unchanged backup: $(median < "$W/unchanged.log") s (target < 15 s)"
