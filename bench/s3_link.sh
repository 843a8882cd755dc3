#!/usr/bin/env bash
# Object storage over a real link: backup to and full restore from an S3
# server behind a shaped veth link, Lifeboat vs restic vs rustic.
#
#   sudo bench/s3_link.sh          # as root: it creates a network namespace
#
# Settings (environment):
#   RUNS       runs per tool; the table shows medians          (default 3)
#   TOOLS      tools in order (default "lifeboat restic rustic"); lifeboat
#              runs once per value of LB_TRANSFERS
#   LB_TRANSFERS  Lifeboat's `transfers` (packs in flight; its S3 knob, a
#              repository setting in the config file) to measure (default "4 16")
#   DELAY      one-way delay added on each end (default 20ms: 40 ms RTT)
#   RATE       bandwidth of each direction (default 200mbit)
#   SCALE      homelab dataset scale for the data (default 0.2: ~300 MiB:
#              photos, an SQL dump, a sparse VM image, 5,000 configs)
#   SEED       dataset seed (default 20240601)
#   WORK       scratch directory (default bench/work; this script uses
#              WORK/s3link and shares WORK/base-homelab-* and WORK/tools with
#              bench/run.sh)
#   BUILD      0 to skip `cargo build --release` (default 1)
#   LINK       netem (veth + tc netem), emu (TUN devices + bench/s3_link_emu.py,
#              for kernels without sch_netem) or auto: netem, else emu (default)
#   QUEUE_MS   the emulated bottleneck's drop-tail buffer (default 100)
#
# What it does: a network namespace with one end of a veth pair, the other
# end in the root namespace (addresses 10.201.19.1 and .2/30, on this machine
# only), `tc qdisc netem delay $DELAY rate $RATE` on both ends, s3s-fs inside
# the namespace. For every run and tool (alternating): a fresh bucket
# directory, init (untimed), one backup of the dataset (timed), a full
# restore into an empty directory (timed), `diff -r` against the source
# (which fails the benchmark). Bytes moved are the veth's tx+rx byte counters
# in the root namespace around each timed step; "link allows" is bytes moved
# over the rate, so `time / link allows` is how close a tool comes to what
# the link can do (1.0 = the link is the only limit). The namespace, the
# server and the link are removed on exit, however the script ends.
# Needs root, iproute2 (ip, tc), s3s-fs (scripts/test-deps.sh), restic
# (Debian) and rustic (bench/run.sh installs it into WORK/tools).
set -euo pipefail

log() { printf '[s3link %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
repo_root=$(git -C "$script_dir" rev-parse --show-toplevel 2>/dev/null || (cd "$script_dir/.." && pwd -P))

RUNS=${RUNS:-3}
read -r -a TOOLS <<<"${TOOLS:-lifeboat restic rustic}"
read -r -a LB_TRANSFERS <<<"${LB_TRANSFERS:-4 16}"
DELAY=${DELAY:-20ms}
RATE=${RATE:-200mbit}
SCALE=${SCALE:-0.2}
SEED=${SEED:-20240601}
BUILD=${BUILD:-1}
WORK=${WORK:-$repo_root/bench/work}
DATA_MTIME=1717210800
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, not '$RUNS'"
[[ $(id -u) == 0 ]] || die "needs root (it creates a network namespace and shapes a veth link)"
[[ $RATE =~ ^([0-9]+)(kbit|mbit|gbit)$ ]] || die "RATE must look like 200mbit (kbit, mbit or gbit), not '$RATE'"
declare -A unit_bps=([kbit]=1000 [mbit]=1000000 [gbit]=1000000000)
rate_bps=$((BASH_REMATCH[1] * unit_bps[${BASH_REMATCH[2]}]))
for t in "${TOOLS[@]}"; do
    [[ $t =~ ^(lifeboat|restic|rustic)$ ]] || die "unknown tool '$t' in TOOLS (lifeboat, restic, rustic)"
done
for n in "${LB_TRANSFERS[@]}"; do
    [[ $n =~ ^[0-9]+$ ]] && ((n >= 1 && n <= 32)) || die "LB_TRANSFERS values must be 1..32, not '$n'"
done
for c in ip tc diff python3 /usr/bin/time; do command -v "$c" >/dev/null || die "$c not found (apt-get install iproute2 diffutils python3 time)"; done

S3S_FS=$(command -v s3s-fs || echo "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs")
[[ -x $S3S_FS ]] || die "s3s-fs not found (scripts/test-deps.sh installs it)"
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd -P)
RUSTIC=${RUSTIC:-$WORK/tools/rustic/bin/rustic}
MISSING=()
want() { [[ " ${TOOLS[*]} " == *" $1 "* ]]; }
if want restic && ! command -v restic >/dev/null; then MISSING+=("restic: not installed (apt-get install restic)"); fi
if want rustic && ! [[ -x $RUSTIC ]]; then MISSING+=("rustic: not found at $RUSTIC (bench/run.sh installs it)"); fi
for m in "${MISSING[@]}"; do log "MISSING: $m"; done

if [[ $BUILD != 0 ]]; then
    log "building lifeboat (cargo build --release)"
    (cd "$repo_root" && cargo build --release) >&2
fi
lb_commit=$(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo unknown)
[[ -z $(git -C "$repo_root" status --porcelain --untracked-files=no -- src Cargo.toml Cargo.lock 2>/dev/null) ]] || lb_commit="$lb_commit+dirty"

S=$WORK/s3link
NS=lbs3link$$
VROOT=lbs3r$$       # veth end in the root namespace (<= 15 chars)
VNS=lbs3n$$         # veth end in the namespace
IP_ROOT=10.201.19.1
IP_NS=10.201.19.2
PORT=9000
S3_KEY=bench
S3_SECRET=bench-secret-key
SRV_PID=

EMU_PID=
cleanup() {
    [[ -z $EMU_PID ]] || { kill "$EMU_PID" 2>/dev/null; wait "$EMU_PID" 2>/dev/null; } || true
    [[ -z $SRV_PID ]] || { kill "$SRV_PID" 2>/dev/null; wait "$SRV_PID" 2>/dev/null; } || true
    ip link del "$VROOT" 2>/dev/null || true
    ip netns del "$NS" 2>/dev/null || true
}
trap cleanup EXIT
trap 'exit 130' INT TERM

rm -rf "$S"
mkdir -p "$S/bin" "$S/logs"
DATA=$S/data
LIFEBOAT=$S/bin/lifeboat
cp -f "${CARGO_TARGET_DIR:-$repo_root/target}/release/lifeboat" "$LIFEBOAT"

# The data: the homelab dataset at SCALE, generated once and shared with bench/run.sh.
HOMELAB_PY=${HOMELAB_PY:-$(cd "$repo_root/../shared/bench" 2>/dev/null && pwd -P)/dataset.py}
[[ -f $HOMELAB_PY ]] || die "dataset.py not found (expected at $repo_root/../shared/bench/dataset.py; or set HOMELAB_PY=)"
BASE=$WORK/base-homelab-seed$SEED-scale$SCALE
gen_id="$(sha256sum "$HOMELAB_PY" | cut -d' ' -f1) $SEED $SCALE mtime=$DATA_MTIME"
if ! [[ -d $BASE && -f $BASE.ok && $(cat "$BASE.ok") == "$gen_id" ]]; then
    log "generating the homelab dataset (seed $SEED, scale $SCALE) into $BASE"
    rm -rf "$BASE" "$BASE.tmp" "$BASE.ok"
    mkdir -p "$BASE.tmp"
    python3 "$HOMELAB_PY" gen "$BASE.tmp" "$SEED" "$SCALE"
    find "$BASE.tmp" -exec touch -h -d "@$DATA_MTIME" {} +
    mv "$BASE.tmp" "$BASE"
    printf '%s\n' "$gen_id" >"$BASE.ok"
fi
cp -a "$BASE" "$DATA"
data_bytes=$(du -sb "$DATA" | cut -f1)
data_files=$(find "$DATA" -type f | wc -l)

# --- the link ------------------------------------------------------------------
# LINK=netem: a veth pair shaped by `tc qdisc netem` on both ends. LINK=emu:
# two TUN devices joined by bench/s3_link_emu.py, which delays and paces
# every packet in user space (for kernels without sch_netem, such as this
# project's machines). LINK=auto (the default) tries netem first.
LINK=${LINK:-auto}
delay_ms=${DELAY%ms}
[[ $delay_ms =~ ^[0-9]+$ ]] || die "DELAY must be whole milliseconds like 20ms, not '$DELAY'"
QUEUE_MS=${QUEUE_MS:-100}  # the bottleneck's buffer, in ms of the rate (~2.5x the BDP)
ip netns add "$NS"
ip -n "$NS" link set lo up
link_desc=
if [[ $LINK == auto || $LINK == netem ]]; then
    ip link add "$VROOT" type veth peer name "$VNS"
    ip link set "$VNS" netns "$NS"
    # netem's limit is in packets: enough for QUEUE_MS of the rate plus the
    # delay line itself, in full-size (64 KiB GSO) packets and more.
    if tc qdisc add dev "$VROOT" root netem delay "$DELAY" rate "$RATE" limit 10000 2>"$S/logs/tc.err" &&
        tc -n "$NS" qdisc add dev "$VNS" root netem delay "$DELAY" rate "$RATE" limit 10000 2>>"$S/logs/tc.err"; then
        ip addr add "$IP_ROOT/30" dev "$VROOT"
        ip -n "$NS" addr add "$IP_NS/30" dev "$VNS"
        link_desc="veth pair, \`tc qdisc netem delay $DELAY rate $RATE\` on both ends"
    else
        [[ $LINK == auto ]] || die "tc netem failed: $(cat "$S/logs/tc.err") (try LINK=emu)"
        log "tc netem is not available here ($(head -n1 "$S/logs/tc.err")); using bench/s3_link_emu.py"
        ip link del "$VROOT"
    fi
fi
if [[ -z $link_desc ]]; then
    rate_bits=$rate_bps
    # Real-time priority: the compiles sharing this machine must not add
    # scheduling delay to the link (it sleeps in select, it does not spin).
    rt=()
    chrt -f 10 true 2>/dev/null && rt=(chrt -f 10)
    "${rt[@]}" python3 "$script_dir/s3_link_emu.py" "$NS" "$VROOT" "$VNS" "$delay_ms" "$rate_bits" "$QUEUE_MS" \
        >"$S/logs/link-emu.log" 2>&1 &
    EMU_PID=$!
    for _ in $(seq 50); do grep -q ready "$S/logs/link-emu.log" 2>/dev/null && break; sleep 0.1; done
    grep -q ready "$S/logs/link-emu.log" || die "the link emulator did not start: $(cat "$S/logs/link-emu.log")"
    ip addr add "$IP_ROOT" peer "$IP_NS" dev "$VROOT"
    ip -n "$NS" addr add "$IP_NS" peer "$IP_ROOT" dev "$VNS"
    link_desc="two TUN devices joined by bench/s3_link_emu.py (user-space pacing at $RATE and $DELAY delay per direction, GSO packets, a ${QUEUE_MS} ms drop-tail queue), since this kernel has no sch_netem"
fi
ip link set "$VROOT" up
ip -n "$NS" link set "$VNS" up
log "link: $link_desc"

ENDPOINT=http://$IP_NS:$PORT
srv_start() {
    rm -rf "$S/objects"
    mkdir -p "$S/objects/bench"
    ip netns exec "$NS" "$S3S_FS" --host "$IP_NS" --port "$PORT" --access-key "$S3_KEY" \
        --secret-key "$S3_SECRET" "$S/objects" >>"$S/logs/s3s-fs.log" 2>&1 &
    SRV_PID=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/$IP_NS/$PORT") 2>/dev/null && return 0
        sleep 0.1
    done
    die "s3s-fs did not start in the namespace (log: $S/logs/s3s-fs.log)"
}
srv_stop() { kill "$SRV_PID" 2>/dev/null || true; wait "$SRV_PID" 2>/dev/null || true; SRV_PID=; }

link_bytes() { # tx+rx bytes of the root end
    echo $(( $(cat /sys/class/net/$VROOT/statistics/tx_bytes) + $(cat /sys/class/net/$VROOT/statistics/rx_bytes) ))
}

# timed NAME CMD... : sets T_SEC, T_RSS (KiB), T_BYTES (moved over the link)
timed() {
    local name=$1 tf=$S/time.out b0
    shift
    sync
    T_SEC_START=$EPOCHREALTIME
    b0=$(link_bytes)
    # A timeline of the link's byte counter every 0.1 s: when the first and
    # last bytes moved, so a tool's fixed costs show apart from its transfer.
    (while :; do printf '%s %s\n' "${EPOCHREALTIME}" "$(link_bytes)"; sleep 0.1; done) >"$S/logs/$RUN_TAG-$name.timeline" &
    local sampler=$!
    if ! /usr/bin/time -f '%e %M' -o "$tf" "$@" </dev/null >"$S/logs/$RUN_TAG-$name.log" 2>&1; then
        log "FAILED: $name (log: $S/logs/$RUN_TAG-$name.log)"
        tail -n 30 "$S/logs/$RUN_TAG-$name.log" >&2
        exit 1
    fi
    kill "$sampler" 2>/dev/null || true
    wait "$sampler" 2>/dev/null || true
    T_BYTES=$(( $(link_bytes) - b0 ))
    # seconds until 1 % of the bytes had moved, and after 99 % had
    read -r T_HEAD T_TAIL < <(python3 - "$S/logs/$RUN_TAG-$name.timeline" "$T_SEC_START" "$b0" "$T_BYTES" <<'PY'
import sys
pts = [tuple(map(float, l.split())) for l in open(sys.argv[1]) if len(l.split()) == 2]
t0, b0, total = float(sys.argv[2]), float(sys.argv[3]), float(sys.argv[4])
end = pts[-1][0] if pts else t0
head = next((t - t0 for t, b in pts if b - b0 >= 0.01 * total), 0.0)
last = next((t for t, b in pts if b - b0 >= 0.99 * total), end)
print(f"{head:.2f} {max(0.0, end - last):.2f}")
PY
)
    read -r T_SEC T_RSS < <(tail -n 1 "$tf")
}
quiet() {
    local name=$1
    shift
    "$@" </dev/null >"$S/logs/$RUN_TAG-$name.log" 2>&1 || { log "FAILED: $name"; tail -n 30 "$S/logs/$RUN_TAG-$name.log" >&2; exit 1; }
}

# One variant per tool, Lifeboat once per transfers setting.
VARIANTS=()
for t in "${TOOLS[@]}"; do
    case $t in
        lifeboat) for n in "${LB_TRANSFERS[@]}"; do VARIANTS+=("lifeboat:$n"); done ;;
        restic) command -v restic >/dev/null && VARIANTS+=(restic) ;;
        rustic) [[ -x $RUSTIC ]] && VARIANTS+=(rustic) ;;
    esac
done

TSV=$S/results.tsv
printf 'run\ttool\tbackup_s\tbackup_rss_kib\tbackup_bytes\tbackup_head_s\tbackup_tail_s\trestore_s\trestore_rss_kib\trestore_bytes\trestore_head_s\trestore_tail_s\tstored_bytes\n' >"$TSV"
started=$(date -u '+%Y-%m-%d %H:%M UTC')
for ((run = 1; run <= RUNS; run++)); do
    for v in "${VARIANTS[@]}"; do
        RUN_TAG=run$run-${v/:/-t}
        E=$S/env
        rm -rf "$E" "$S/restore"
        mkdir -p "$E/home" "$E/cache" "$E/config" "$E/keys" "$S/restore"
        srv_start
        [[ -n ${RTT_MS:-} ]] || RTT_MS=$(python3 -c '
import socket, statistics, sys, time
ts = []
for _ in range(5):
    t = time.monotonic(); socket.create_connection((sys.argv[1], int(sys.argv[2]))).close()
    ts.append((time.monotonic() - t) * 1000)
print(f"{statistics.median(ts):.1f}")' "$IP_NS" "$PORT")
        base=(env HOME="$E/home" XDG_CACHE_HOME="$E/cache" XDG_CONFIG_HOME="$E/config"
              AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET AWS_REGION=us-east-1)
        log "run $run/$RUNS $v: backup of $data_bytes bytes"
        case $v in
            lifeboat:*)
                n=${v#lifeboat:}
                cat >"$E/lifeboat.toml" <<EOF
[repositories.bench]
url = "s3://bench/lifeboat"
endpoint = "$ENDPOINT"
region = "us-east-1"
path_style = true
transfers = $n
key_file = "$E/keys/admin.key"
EOF
                lb=("${base[@]}" LIFEBOAT_KEY_DIR="$E/keys" LIFEBOAT_CACHE_DIR="$E/cache/lifeboat"
                    "$LIFEBOAT" --config "$E/lifeboat.toml")
                quiet init "${lb[@]}" init --repo bench
                timed backup "${lb[@]}" backup --json --repo bench "$DATA"
                bk=("$T_SEC" "$T_RSS" "$T_BYTES" "$T_HEAD" "$T_TAIL")
                timed restore "${lb[@]}" restore --repo bench latest --target "$S/restore" ;;
            restic)
                rs=("${base[@]}" RESTIC_PASSWORD=lifeboat-bench RESTIC_CACHE_DIR="$E/cache/restic"
                    restic --repo "s3:$ENDPOINT/bench/restic")
                quiet init "${rs[@]}" init --repository-version 2
                timed backup "${rs[@]}" backup --compression auto "$DATA"
                bk=("$T_SEC" "$T_RSS" "$T_BYTES" "$T_HEAD" "$T_TAIL")
                timed restore "${rs[@]}" restore latest --target "$S/restore" ;;
            rustic)
                printf 'lifeboat-bench\n' >"$E/rustic.pass"
                ru=("${base[@]}" RUSTIC_PASSWORD_FILE="$E/rustic.pass" RUSTIC_CACHE_DIR="$E/cache/rustic"
                    RUSTIC_NO_PROGRESS=true RUSTIC_REPOSITORY=opendal:s3 OPENDAL_BUCKET=bench
                    OPENDAL_ROOT=/rustic OPENDAL_ENDPOINT=$ENDPOINT OPENDAL_REGION=us-east-1
                    OPENDAL_ACCESS_KEY_ID=$S3_KEY OPENDAL_SECRET_ACCESS_KEY=$S3_SECRET "$RUSTIC")
                quiet init "${ru[@]}" init
                timed backup "${ru[@]}" backup "$DATA"
                bk=("$T_SEC" "$T_RSS" "$T_BYTES" "$T_HEAD" "$T_TAIL")
                timed restore "${ru[@]}" restore latest "$S/restore" ;;
        esac
        stored=$(du -sb "$S/objects" | cut -f1)
        log "run $run/$RUNS $v: backup ${bk[0]} s ($((bk[2] >> 20)) MiB over the link), restore $T_SEC s ($((T_BYTES >> 20)) MiB), stored $((stored >> 20)) MiB; checking"
        diff -r --no-dereference "$DATA" "$S/restore/${DATA#/}" >"$S/logs/$RUN_TAG-verify.diff" 2>&1 ||
            die "CONTENT MISMATCH: $v's restore differs from the source (see $S/logs/$RUN_TAG-verify.diff)"
        (IFS=$'\t'; echo "${run}"$'\t'"$v"$'\t'"${bk[*]}"$'\t'"$T_SEC"$'\t'"$T_RSS"$'\t'"$T_BYTES"$'\t'"$T_HEAD"$'\t'"$T_TAIL"$'\t'"$stored") >>"$TSV"
        srv_stop
    done
done
finished=$(date -u '+%H:%M UTC')

emu_stats=
if [[ -n $EMU_PID ]]; then
    kill "$EMU_PID" 2>/dev/null || true
    wait "$EMU_PID" 2>/dev/null || true
    EMU_PID=
    emu_stats=$(grep '^stats' "$S/logs/link-emu.log" || echo 'no stats')
fi
versions="lifeboat: $("$LIFEBOAT" --version) (commit $lb_commit)"
command -v restic >/dev/null && versions+="; $(restic version | head -n1)"
[[ -x $RUSTIC ]] && versions+="; $("$RUSTIC" --version | head -n1)"
versions+="; s3s-fs $("$S3S_FS" --version 2>/dev/null | head -n1 || echo '?')"
{
    echo "## S3 over a shaped link: $DELAY each way ($((2 * ${DELAY%ms})) ms RTT), $RATE — median of $RUNS run(s)"
    echo
    echo "- machine: $(nproc) CPUs ($(lscpu | sed -n 's/^Model name: *//p' | head -n1)), $(free -g | awk '/^Mem/ {print $2}') GiB RAM, $(uname -sr); load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
    echo "- run: $started to $finished; the link: $link_desc; TCP connect time (1 RTT) to the server, median of 5: ${RTT_MS:-?} ms"
    echo "- $versions"
    echo "- data: homelab dataset SCALE $SCALE, $(awk -v b="$data_bytes" 'BEGIN {printf "%.1f", b/1048576}') MiB (du -sb), $data_files files; one initial backup into a fresh bucket, then a full restore"
    for m in "${MISSING[@]}"; do echo "- **Not measured:** $m"; done
    echo
    python3 - "$TSV" "$rate_bps" "$data_bytes" <<'PY'
import csv, statistics, sys
rows = list(csv.DictReader(open(sys.argv[1]), delimiter="\t"))
rate, data = int(sys.argv[2]) / 8, int(sys.argv[3])
MiB = 1 << 20
tools = []
for r in rows:
    if r["tool"] not in tools:
        tools.append(r["tool"])
def med(t, fn):
    return statistics.median(fn(r) for r in rows if r["tool"] == t)
f = float
metrics = [
    ("backup: time (s)", lambda r: f(r["backup_s"]), 2),
    ("backup: MiB moved over the link", lambda r: f(r["backup_bytes"]) / MiB, 1),
    ("backup: link allows (s) = bytes / rate", lambda r: f(r["backup_bytes"]) / rate, 2),
    ("backup: time / link allows", lambda r: f(r["backup_s"]) / (f(r["backup_bytes"]) / rate), 2),
    ("backup: dataset MiB/s", lambda r: data / MiB / f(r["backup_s"]), 1),
    ("backup: s before 1 % of the bytes moved / after 99 %", None, 2),
    ("backup: peak RSS (MiB)", lambda r: f(r["backup_rss_kib"]) / 1024, 0),
    ("stored in the bucket (MiB)", lambda r: f(r["stored_bytes"]) / MiB, 1),
    ("full restore: time (s)", lambda r: f(r["restore_s"]), 2),
    ("full restore: MiB moved over the link", lambda r: f(r["restore_bytes"]) / MiB, 1),
    ("full restore: link allows (s)", lambda r: f(r["restore_bytes"]) / rate, 2),
    ("full restore: time / link allows", lambda r: f(r["restore_s"]) / (f(r["restore_bytes"]) / rate), 2),
    ("full restore: dataset MiB/s", lambda r: data / MiB / f(r["restore_s"]), 1),
    ("full restore: s before 1 % of the bytes moved / after 99 %", None, 2),
    ("full restore: peak RSS (MiB)", lambda r: f(r["restore_rss_kib"]) / 1024, 0),
]
label = lambda t: f"lifeboat (transfers {t.split(':')[1]})" if t.startswith("lifeboat:") else t
print("| step | " + " | ".join(label(t) for t in tools) + " |")
print("|---|" + "---:|" * len(tools))
M = {}
for name, fn, d in metrics:
    cells = []
    if fn is None:  # a pair: head / tail of the step
        step = "backup" if name.startswith("backup") else "restore"
        for t in tools:
            h = med(t, lambda r: f(r[f"{step}_head_s"]))
            tl = med(t, lambda r: f(r[f"{step}_tail_s"]))
            cells.append(f"{h:.2f} / {tl:.2f}")
        print(f"| {name} | " + " | ".join(cells) + " |")
        continue
    for t in tools:
        M[(name, t)] = med(t, fn)
        cells.append(f"{M[(name, t)]:,.{d}f}")
    print(f"| {name} | " + " | ".join(cells) + " |")
print("| restore check (diff -r) | " + " | ".join("ok" for _ in tools) + " |")
print()
for t in tools:
    if not t.startswith("lifeboat"):
        continue
    for o in ("restic", "rustic"):
        if o in tools:
            b = M[("backup: time (s)", o)] / M[("backup: time (s)", t)]
            r = M[("full restore: time (s)", o)] / M[("full restore: time (s)", t)]
            print(f"- {label(t)} / {o}, speed (inverse time): backup {b:.2f}×, full restore {r:.2f}×"
                  + (" (goal: restore ≥ 2×)" if o == "restic" else "") + ".")
print()
print(f"Medians over {len(rows) // max(1, len(tools))} run(s) per tool; raw numbers in {sys.argv[1]}. "
      "MiB moved: the root end's tx+rx bytes (IP packets: payload, TCP/IP headers, plain HTTP) "
      "during the timed step; link allows = those bytes at the shaped rate (goal: time ≤ 1.2× that).")
PY
    if [[ -n $emu_stats ]]; then
        echo
        echo "The link emulator over the whole run (both directions: packets, bytes, drops at the full queue): ${emu_stats#stats }."
    fi
} | tee "$S/report.md"
log "report: $S/report.md; raw: $TSV; logs: $S/logs"
