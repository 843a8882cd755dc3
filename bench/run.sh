#!/usr/bin/env bash
# Lifeboat vs restic, rustic and borg on two datasets: the shared homelab
# dataset (../shared/bench/dataset.py) and a small-file tree built from files
# every Debian machine has (bench/smallfiles.py).
#
#   bench/run.sh [--scale S] [--runs N] [--work DIR] [--seed N] [--no-build]
#
# The same settings can be given as environment variables:
#   DATASET  homelab, smallfiles or both                 (default both)
#   SCALE  dataset scale: homelab 1.0 = ~1.4 GiB; smallfiles 1.0 = 40,000
#          files (~430 MiB)                           (default 1.0)
#   RUNS   runs per tool; the table shows medians     (default 3)
#   WORK   scratch directory                          (default bench/work, gitignored)
#   SEED   dataset seed                               (default 20240601)
#   BUILD  0 to skip `cargo build --release`          (default 1)
#   SETTLE seconds to let the fresh copy age before backing it up (default 3)
#   TOOLS  which tools, in order (default "lifeboat restic rustic borg limit");
#          `limit` is not a backup tool but the baselines that bound one on
#          this machine (see below)
#   KEEP_BASE 0 to delete the generated datasets at the end (default 1: they
#              are reused by the next invocation with the same SEED and SCALE)
#   TOOLS_DIR where the script keeps the peers it installs (default WORK/tools):
#              rustic (`cargo install --locked rustic-rs --version $RUSTIC_VERSION`,
#              default '~0.11', its own CARGO_TARGET_DIR there; ~25 min on 2
#              cores, once) and borg (a venv with `pip install
#              "borgbackup==$BORG_VERSION"`, default '1.4.*', after the Debian
#              build dependencies). restic is Debian's package.
#   INSTALL 0 to never install a missing peer (it is then reported missing)
#   S3     1 to also back up to and restore from a loopback S3 server (s3s-fs,
#          installed by scripts/test-deps.sh), lifeboat and restic only
#          (default: 1 when s3s-fs is found, else 0). bench/s3_link.sh does
#          the same over a shaped link.
#   FRESH_FS 1 to give every tool's run a freshly made ext4 filesystem on a
#              loop device (default: 1 when root, else 0). Without it, a run
#              pays for the previous run's deletions: ext4 skips inodes freed
#              in the last minutes one by one when creating files, which
#              showed up as ~20 % of a restore in profiles.
#
# A peer that cannot be found or installed is left out of the runs and named
# as missing (with the reason) in the report; it is never dropped silently.
#
# Per dataset and run, the tools go in the order of TOOLS (A B C A B C ...),
# each on a fresh copy of the dataset at the same path (WORK/data), with a
# fresh repository, fresh caches, a fresh HOME and XDG dirs (so no peer finds
# a config or profile of its own), page cache warm. The generated tree is
# given one old mtime (2024-06-01 03:00 UTC) and every copy SETTLE seconds to
# age, so that the initial backup sees a tree last changed well before it,
# like a nightly backup does. Then:
#   init (untimed) -> initial backup -> the dataset's "next night" mutation in
#   place (untimed) -> second backup -> full restore of the latest snapshot
#   into an empty dir -> check the restored tree against the source (content
#   with `diff -r`, which fails the benchmark; file/dir modes, sizes and
#   mtimes, which are reported as a warning and in the `verify` column)
#   -> with S3, for lifeboat and restic: a fresh s3s-fs on a free loopback
#      port, init (untimed), a backup of the mutated tree into a fresh
#      repository in its bucket, a full restore from it, the same check.
# The `limit` column, on the same fresh filesystem and warm cache:
#   backup  = `tar -C / -cSf - DATA | zstd -T$(nproc) -3 | wc -c` (reading and
#             compressing every file, no hashing, no encryption, nothing
#             written; its size is the "repository" row),
#   restore = the mutated tree as one tar of its directories and $(nproc)
#             uncompressed tars of its files balanced by bytes (untimed, page
#             cache warm), then timed: `tar -xf` of the directories, then
#             $(nproc) `tar -xf` in parallel into the same empty dir, then
#             `sync -f` (Lifeboat's restore ends with syncfs too; restic,
#             rustic and borg do not sync),
#   no second backup (the limit of an incremental backup is ~0).
# Times and peak RSS come from `/usr/bin/time -f '%e %M %P'`; sizes from
# `du -sb`. Raw numbers go to WORK/results.tsv, tool output to WORK/logs/,
# and the markdown report (also printed on stdout) to WORK/report.md.
set -euo pipefail

log() { printf '[bench %(%H:%M:%S)T] %s\n' -1 "$*" >&2; }
die() { log "ERROR: $*"; exit 1; }

script_dir=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd -P)
if repo_root=$(git -C "$script_dir" rev-parse --show-toplevel 2>/dev/null); then :; else
    repo_root=$(cd "$script_dir/.." && pwd -P)
fi

SCALE=${SCALE:-1.0}
RUNS=${RUNS:-3}
SEED=${SEED:-20240601}
BUILD=${BUILD:-1}
KEEP_BASE=${KEEP_BASE:-1}
INSTALL=${INSTALL:-1}
RUSTIC_VERSION=${RUSTIC_VERSION:-~0.11}
BORG_VERSION=${BORG_VERSION:-1.4.*}
read -r -a TOOLS <<<"${TOOLS:-lifeboat restic rustic borg limit}"
SETTLE=${SETTLE:-3}        # seconds between copying the dataset and the initial backup
DATA_MTIME=1717210800      # 2024-06-01 03:00 UTC, see the dataset generation below
WORK=${WORK:-$repo_root/bench/work}
DATASET=${DATASET:-both}

while (($#)); do
    case $1 in
        --scale) SCALE=$2; shift 2 ;;
        --runs) RUNS=$2; shift 2 ;;
        --work) WORK=$2; shift 2 ;;
        --seed) SEED=$2; shift 2 ;;
        --no-build) BUILD=0; shift ;;
        -h|--help) sed -n '2,/^set -euo/p' "$0" | sed '$d; s/^# \{0,1\}//'; exit 0 ;;
        *) die "unknown argument: $1 (try --help)" ;;
    esac
done
[[ $RUNS =~ ^[1-9][0-9]*$ ]] || die "RUNS must be a positive integer, not '$RUNS'"
[[ $SEED =~ ^[0-9]+$ ]] || die "SEED must be a non-negative integer, not '$SEED'"
[[ $SCALE =~ ^[0-9]*\.?[0-9]+$ ]] || die "SCALE must be a positive number, not '$SCALE'"
[[ $SETTLE =~ ^[0-9]+(\.[0-9]+)?$ ]] || die "SETTLE must be a number of seconds, not '$SETTLE'"
((${#TOOLS[@]})) || die "TOOLS is empty"
for t in "${TOOLS[@]}"; do
    [[ $t =~ ^(lifeboat|restic|rustic|borg|limit)$ ]] || die "unknown tool '$t' in TOOLS (lifeboat, restic, rustic, borg, limit)"
done

# --- the dataset generators --------------------------------------------------
# DATASET used to name dataset.py's path; a path still works (homelab only).
HOMELAB_PY=${HOMELAB_PY:-}
if [[ $DATASET == */* || $DATASET == *.py ]]; then
    HOMELAB_PY=$DATASET
    DATASET=homelab
fi
case $DATASET in
    homelab|smallfiles) DATASETS=("$DATASET") ;;
    both) DATASETS=(homelab smallfiles) ;;
    *) die "DATASET must be homelab, smallfiles or both, not '$DATASET'" ;;
esac
if [[ -z $HOMELAB_PY ]]; then
    for c in "$repo_root/../shared/bench/dataset.py" "$script_dir/../../shared/bench/dataset.py"; do
        if [[ -f $c ]]; then HOMELAB_PY=$(cd "$(dirname "$c")" && pwd -P)/dataset.py; break; fi
    done
fi
if [[ " ${DATASETS[*]} " == *" homelab "* ]]; then
    [[ -n $HOMELAB_PY && -f $HOMELAB_PY ]] || die "dataset.py not found (expected at $repo_root/../shared/bench/dataset.py; or set HOMELAB_PY=)"
fi
SMALLFILES_PY=$script_dir/smallfiles.py
gen_py() { [[ $1 == homelab ]] && echo "$HOMELAB_PY" || echo "$SMALLFILES_PY"; }

# --- tools -------------------------------------------------------------------
S3S_FS=$(command -v s3s-fs || echo "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs")
[[ -x $S3S_FS ]] || S3S_FS=
S3=${S3:-$([[ -n $S3S_FS ]] && echo 1 || echo 0)}
[[ $S3 == 0 || -n $S3S_FS ]] || die "S3=1 needs s3s-fs (scripts/test-deps.sh installs it)"
sudo=()
[[ $(id -u) -eq 0 ]] || sudo=(sudo)
apt_install() {
    log "installing $* with apt-get"
    "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get update -qq >&2 &&
        "${sudo[@]}" env DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "$@" >&2
}
need=()
[[ " ${TOOLS[*]} " != *" restic "* ]] || command -v restic >/dev/null 2>&1 || need+=(restic)
[[ -x /usr/bin/time ]] || need+=(time)
command -v python3 >/dev/null 2>&1 || need+=(python3)
command -v diff >/dev/null 2>&1 || need+=(diffutils)
command -v zstd >/dev/null 2>&1 || need+=(zstd)
if ((${#need[@]})); then
    apt_install "${need[@]}" || log "warning: apt-get install ${need[*]} failed"
fi

if [[ $BUILD != 0 ]]; then
    log "building lifeboat (cargo build --release)"
    (cd "$repo_root" && cargo build --release) >&2
fi
# The commit the binary was (most likely) built from; read right after the build.
lb_commit=$(git -C "$repo_root" rev-parse --short HEAD 2>/dev/null || echo unknown)
if [[ $lb_commit != unknown && -n $(git -C "$repo_root" status --porcelain --untracked-files=no -- src Cargo.toml Cargo.lock 2>/dev/null) ]]; then
    lb_commit="$lb_commit+dirty"
fi
lifeboat_built="${CARGO_TARGET_DIR:-$repo_root/target}/release/lifeboat"
[[ -x $lifeboat_built ]] || die "$lifeboat_built not found (build it, or drop --no-build)"

# --- scratch layout ----------------------------------------------------------
mkdir -p "$WORK"
WORK=$(cd "$WORK" && pwd -P)
[[ $WORK != / && $WORK != "${HOME:-}" && $WORK != "$repo_root" ]] || die "refusing WORK=$WORK"
TOOLS_DIR=${TOOLS_DIR:-$WORK/tools}
FRESH_FS=${FRESH_FS:-$([[ $(id -u) == 0 ]] && echo 1 || echo 0)}
FS=$WORK/fs                # mount point of the per-run filesystem (FRESH_FS=1)
if [[ $FRESH_FS != 0 ]]; then
    DATA=$FS/data          # the tree every tool backs up (same absolute path for all)
    RUNDIR=$FS/run
else
    DATA=$WORK/data
    RUNDIR=$WORK/run
fi
LOGS=$WORK/logs
TSV=$WORK/results.tsv
MISSING_TSV=$WORK/missing.tsv
mountpoint -q "$FS" 2>/dev/null && umount "$FS"
rm -rf "$WORK/data" "$WORK/run" "$LOGS" "$WORK/fs.img"
mkdir -p "$WORK/bin" "$LOGS" "$TOOLS_DIR"
: >"$MISSING_TSV"

# A private copy of the binary, so that a concurrent rebuild cannot swap it mid-benchmark.
LIFEBOAT=$WORK/bin/lifeboat
cp -f "$lifeboat_built" "$LIFEBOAT"

# --- peers the script installs -------------------------------------------------
missing() { # missing TOOL REASON : left out of the runs, named in the report
    log "MISSING: $1 will not be measured: $2"
    printf '%s\t%s\n' "$1" "$2" >>"$MISSING_TSV"
}
want() { [[ " ${TOOLS[*]} " == *" $1 "* ]]; }
drop_tool() {
    local t keep=()
    for t in "${TOOLS[@]}"; do [[ $t == "$1" ]] || keep+=("$t"); done
    TOOLS=("${keep[@]}")
}

RESTIC=restic
if want restic && ! command -v restic >/dev/null 2>&1; then
    missing restic "not installed and \`apt-get install restic\` failed"
    drop_tool restic
fi

RUSTIC=$TOOLS_DIR/rustic/bin/rustic
rustic_ok() { [[ -x $RUSTIC ]] && "$RUSTIC" --version 2>/dev/null | grep -q '^rustic v\?0\.11\.'; }
if want rustic && ! rustic_ok; then
    if [[ $INSTALL == 0 ]]; then
        missing rustic "not in $TOOLS_DIR/rustic and INSTALL=0"
    else
        log "installing rustic-rs $RUSTIC_VERSION into $TOOLS_DIR/rustic (cargo install --locked; ~25 min on 2 cores, once; log $TOOLS_DIR/rustic-install.log)"
        if ! CARGO_TARGET_DIR=$TOOLS_DIR/rustic-target nice -n 19 \
            cargo install --locked rustic-rs --version "$RUSTIC_VERSION" --root "$TOOLS_DIR/rustic" \
            >"$TOOLS_DIR/rustic-install.log" 2>&1; then
            tail -n 20 "$TOOLS_DIR/rustic-install.log" >&2
        fi
    fi
    rustic_ok || { [[ $INSTALL == 0 ]] || missing rustic "cargo install --locked rustic-rs --version '$RUSTIC_VERSION' failed (see $TOOLS_DIR/rustic-install.log)"; drop_tool rustic; }
fi

BORG=$TOOLS_DIR/borg-venv/bin/borg
borg_ok() { [[ -x $BORG ]] && "$BORG" --version 2>/dev/null | grep -q '^borg 1\.4\.'; }
if want borg && ! borg_ok; then
    if [[ $INSTALL == 0 ]]; then
        missing borg "no borg 1.4 venv in $TOOLS_DIR/borg-venv and INSTALL=0"
    else
        # borgbackup builds its C extensions against these.
        deps=()
        for p in python3-venv python3-dev libacl1-dev libssl-dev liblz4-dev libzstd-dev libxxhash-dev pkg-config build-essential; do
            dpkg -s "$p" >/dev/null 2>&1 || deps+=("$p")
        done
        ((${#deps[@]} == 0)) || apt_install "${deps[@]}" || log "warning: apt-get install ${deps[*]} failed"
        log "installing borgbackup==$BORG_VERSION into $TOOLS_DIR/borg-venv (log $TOOLS_DIR/borg-install.log)"
        rm -rf "$TOOLS_DIR/borg-venv"
        if ! { /usr/bin/python3 -m venv "$TOOLS_DIR/borg-venv" &&
               nice -n 19 "$TOOLS_DIR/borg-venv/bin/pip" install "borgbackup==$BORG_VERSION"; } \
            >"$TOOLS_DIR/borg-install.log" 2>&1; then
            tail -n 20 "$TOOLS_DIR/borg-install.log" >&2
        fi
    fi
    borg_ok || { [[ $INSTALL == 0 ]] || missing borg "pip install 'borgbackup==$BORG_VERSION' failed (see $TOOLS_DIR/borg-install.log)"; drop_tool borg; }
fi
((${#TOOLS[@]})) || die "no tool left to measure (see the MISSING lines above)"

# Generate a dataset once (reused across invocations while its id matches).
# Sets BASE.
make_base() {
    local ds=$1 py gen_id
    py=$(gen_py "$ds")
    BASE=$WORK/base-$ds-seed$SEED-scale$SCALE
    if [[ $ds == homelab ]]; then
        gen_id="$(sha256sum "$py" | cut -d' ' -f1) $SEED $SCALE mtime=$DATA_MTIME"
    else
        # The small-file tree is a selection of this machine's files: its id
        # covers the list of paths and sizes, so a changed system regenerates it.
        gen_id="$(python3 "$py" id "$SEED" "$SCALE") mtime=$DATA_MTIME"
    fi
    if [[ -d $BASE && -f $BASE.ok && $(cat "$BASE.ok") == "$gen_id" ]]; then
        log "reusing dataset $BASE"
        return
    fi
    log "generating the $ds dataset (seed $SEED, scale $SCALE) into $BASE"
    rm -rf "$BASE" "$BASE.tmp" "$BASE.ok"
    if [[ $ds == homelab ]]; then
        mkdir -p "$BASE.tmp"
        python3 "$py" gen "$BASE.tmp" "$SEED" "$SCALE"
    else
        python3 "$py" gen "$BASE.tmp" "$SEED" "$SCALE" >&2
    fi
    # Give every file and dir the same old mtime, as a real tree backed up
    # "last night" would have: otherwise the first runs back up files written
    # seconds ago, which change-detection caches rightly refuse to trust
    # (Lifeboat does not cache files modified < 2 s before a backup starts).
    find "$BASE.tmp" -exec touch -h -d "@$DATA_MTIME" {} +
    mv "$BASE.tmp" "$BASE"
    printf '%s\n' "$gen_id" >"$BASE.ok"
}

# --- helpers -----------------------------------------------------------------
fresh_fs() { # a new, empty ext4 filesystem at $FS, sized for data + repository + restore
    mountpoint -q "$FS" && umount "$FS"
    rm -f "$WORK/fs.img"
    local bytes
    bytes=$(du -sb "$BASE" | cut -f1)
    truncate -s $((bytes * 5 + (1 << 30))) "$WORK/fs.img"
    mkfs.ext4 -q -F "$WORK/fs.img" || die "mkfs.ext4 failed (run with FRESH_FS=0 to use $WORK directly)"
    mkdir -p "$FS"
    mount -o loop "$WORK/fs.img" "$FS" || die "cannot mount a loop filesystem here (run with FRESH_FS=0)"
}

warm() { # read every file once so the timed step starts with a warm page cache
    sync
    find "$1" -type f -print0 | xargs -0 -r cat >/dev/null
}

# timed NAME CMD... : runs CMD with stdin from /dev/null, stdout+stderr to
# $LOGS/$RUN_TAG-NAME.log; sets T_SEC, T_RSS (KiB) and T_CPU (%).
timed() {
    local name=$1; shift
    local logf=$LOGS/$RUN_TAG-$name.log tf=$RUNDIR/time.out
    # Everything earlier on disk first, unless the step is itself a sync.
    [[ ${NO_PRESYNC:-0} == 1 ]] || sync
    if ! /usr/bin/time -f '%e %M %P' -o "$tf" "$@" </dev/null >"$logf" 2>&1; then
        log "FAILED: $* (log: $logf)"
        tail -n 30 "$logf" >&2 || true
        cat "$tf" >&2 || true
        exit 1
    fi
    read -r T_SEC T_RSS T_CPU < <(tail -n 1 "$tf")
    T_CPU=${T_CPU%\%}
    [[ $T_CPU == "?" ]] && T_CPU=0
    return 0
}

quiet() { # quiet NAME CMD... : untimed step, output to the log
    local name=$1; shift
    local logf=$LOGS/$RUN_TAG-$name.log
    if ! "$@" </dev/null >"$logf" 2>&1; then
        log "FAILED: $* (log: $logf)"
        tail -n 30 "$logf" >&2 || true
        exit 1
    fi
}

dsize() { du -sb "$1" | cut -f1; }

meta_listing() { # modes, sizes, mtimes of files and dirs, relative to $1
    (cd "$1" && find . \( -type f -printf 'f %m %U:%G %s %T@ %P\n' \) -o \
        \( -type d -printf 'd %m %U:%G - %T@ %P\n' \) -o -printf '%y %m %U:%G - %T@ %P -> %l\n' \
        | LC_ALL=C sort -k6)
}

# verify_restore TOOL OUTDIR : sets VERIFY to ok / meta-diff:N
verify_restore() {
    local tool=$1 out=$2 got=$2/${DATA#/}
    [[ -d $got ]] || { log "restore of $tool has no ${DATA#/} under $out:"; ls -la "$out" >&2; exit 1; }
    if ! diff -r --no-dereference "$DATA" "$got" >"$LOGS/$RUN_TAG-verify.diff" 2>&1; then
        log "CONTENT MISMATCH: $tool's restore differs from the source (see $LOGS/$RUN_TAG-verify.diff)"
        head -n 20 "$LOGS/$RUN_TAG-verify.diff" >&2
        exit 1
    fi
    local extra
    extra=$(find "$out" -mindepth 1 -maxdepth 1 ! -name "$(cut -d/ -f2 <<<"$DATA")" | head -n 5)
    [[ -z $extra ]] || log "warning: $tool left other entries in the restore target: $extra"
    meta_listing "$DATA" >"$RUNDIR/meta.src"
    meta_listing "$got" >"$RUNDIR/meta.got"
    if cmp -s "$RUNDIR/meta.src" "$RUNDIR/meta.got"; then
        VERIFY=ok
    else
        local n
        n=$(diff "$RUNDIR/meta.src" "$RUNDIR/meta.got" | grep -c '^>' || true)
        diff "$RUNDIR/meta.src" "$RUNDIR/meta.got" >"$LOGS/$RUN_TAG-verify-meta.diff" || true
        VERIFY=meta-diff:$n
        log "warning: $tool: content identical, but $n entries differ in mode/owner/size/mtime (see $LOGS/$RUN_TAG-verify-meta.diff)"
    fi
}

# Per-tool commands. Each tool gets its own HOME, caches and repository under $RUNDIR.
tool_env() {
    local tool=$1 e=$RUNDIR/env
    mkdir -p "$e/home" "$e/cache" "$e/config" "$e/keys"
    TENV=(env HOME="$e/home" XDG_CACHE_HOME="$e/cache" XDG_CONFIG_HOME="$e/config")
    case $tool in
        lifeboat) TENV+=(LIFEBOAT_KEY_DIR="$e/keys" LIFEBOAT_CACHE_DIR="$e/cache/lifeboat") ;;
        restic) TENV+=(RESTIC_PASSWORD=lifeboat-bench RESTIC_CACHE_DIR="$e/cache/restic") ;;
        rustic) # a password file and no profile: rustic reads rustic.toml from
                # XDG_CONFIG_HOME/rustic, /etc/rustic and the current directory
                printf 'lifeboat-bench\n' >"$e/rustic.pass"
                [[ ! -e /etc/rustic/rustic.toml && ! -e ./rustic.toml ]] || die "a rustic.toml profile in /etc/rustic or $PWD would change rustic's settings"
                TENV+=(RUSTIC_PASSWORD_FILE="$e/rustic.pass" RUSTIC_CACHE_DIR="$e/cache/rustic" RUSTIC_NO_PROGRESS=true) ;;
        borg) TENV+=(BORG_PASSPHRASE=lifeboat-bench BORG_BASE_DIR="$e/borg" BORG_DISPLAY_PASSPHRASE=no
                     BORG_RELOCATED_REPO_ACCESS_IS_OK=yes BORG_UNKNOWN_UNENCRYPTED_REPO_ACCESS_IS_OK=yes) ;;
        limit) ;;
    esac
}

# The limit "tool": tar + zstd reads and compresses everything (backup), and
# NPROC parallel `tar -xf` from uncompressed tars in page cache write it (restore).
NPROC=$(nproc)
limit_backup() { # limit_backup OUT_SIZE_FILE
    set -o pipefail
    tar -C / -cSf - "${DATA#/}" | zstd -q -T"$NPROC" -3 | wc -c >"$1"
}
limit_restore() { # limit_restore OUTDIR DIRS_TAR TAR...
    local out=$1 pids=() p rc=0
    shift
    tar -C "$out" -xf "$1" || return 1   # the directories first
    shift
    for t in "$@"; do tar -C "$out" -xf "$t" & pids+=($!); done
    for p in "${pids[@]}"; do wait "$p" || rc=1; done
    ((rc == 0)) && sync -f "$out"
    return $rc
}
export -f limit_backup limit_restore
export DATA NPROC

do_init() {
    case $1 in
        lifeboat) quiet init "${TENV[@]}" "$LIFEBOAT" init --repo "$REPO" ;;
        restic) quiet init "${TENV[@]}" "$RESTIC" init --repository-version 2 --repo "$REPO" ;;
        rustic) quiet init "${TENV[@]}" "$RUSTIC" init --repository "$REPO" ;;
        borg) quiet init "${TENV[@]}" "$BORG" init --encryption=repokey-blake2 "$REPO" ;;
        limit) mkdir -p "$REPO" ;;
    esac
}

do_backup() { # do_backup TOOL N
    case $1 in
        lifeboat) timed "backup$2" "${TENV[@]}" "$LIFEBOAT" backup --json --repo "$REPO" "$DATA" ;;
        restic) timed "backup$2" "${TENV[@]}" "$RESTIC" backup --repo "$REPO" --compression auto "$DATA" ;;
        rustic) timed "backup$2" "${TENV[@]}" "$RUSTIC" backup --repository "$REPO" "$DATA" ;;
        borg) timed "backup$2" "${TENV[@]}" "$BORG" create --compression zstd,3 "$REPO::b$2" "$DATA" ;;
        limit) timed "backup$2" bash -c 'limit_backup "$1"' _ "$REPO/tar.zst.size" ;;
    esac
}

do_restore() { # do_restore TOOL OUTDIR  (latest snapshot = the second backup)
    case $1 in
        lifeboat) timed restore "${TENV[@]}" "$LIFEBOAT" restore --repo "$REPO" latest --target "$2" ;;
        restic) timed restore "${TENV[@]}" "$RESTIC" restore --repo "$REPO" latest --target "$2" ;;
        rustic) timed restore "${TENV[@]}" "$RUSTIC" restore --repository "$REPO" latest "$2" ;;
        borg) # borg extracts into the current directory
              cd "$2"
              timed restore "${TENV[@]}" "$BORG" extract "$REPO::b2"
              cd "$WORK" ;;
        limit) # untimed: the mutated tree as NPROC uncompressed tars, balanced by bytes
              python3 "$SMALLFILES_PY" split "$DATA" "$NPROC" "$RUNDIR/limit.list"
              tar -C / --no-recursion -H posix -cf "$RUNDIR/limit.dirs.tar" -T "$RUNDIR/limit.list.dirs"
              local tars=("$RUNDIR/limit.dirs.tar") i
              for ((i = 0; i < NPROC; i++)); do
                  tar -C / --no-recursion -H posix -cSf "$RUNDIR/limit.$i.tar" -T "$RUNDIR/limit.list.$i"
                  tars+=("$RUNDIR/limit.$i.tar")
              done
              warm "$RUNDIR"
              timed restore bash -c 'limit_restore "$@"' _ "$2" "${tars[@]}"
              rm -f "${tars[@]}" ;;
    esac
}

repo_size() { # the repository's size; for `limit`, the tar.zst stream's
    if [[ $1 == limit ]]; then cat "$REPO/tar.zst.size"; else dsize "$REPO"; fi
}

# The S3 step: one server per tool and run, its objects on the run's filesystem.
S3_KEY=bench
S3_SECRET=bench-secret-key
s3_start() { # sets S3_PID and S3_PORT
    mkdir -p "$RUNDIR/s3/bench"
    S3_PORT=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    "$S3S_FS" --host 127.0.0.1 --port "$S3_PORT" --access-key "$S3_KEY" --secret-key "$S3_SECRET" \
        "$RUNDIR/s3" >"$LOGS/$RUN_TAG-s3s-fs.log" 2>&1 &
    S3_PID=$!
    for _ in $(seq 100); do
        (exec 3<>"/dev/tcp/127.0.0.1/$S3_PORT") 2>/dev/null && return 0
        sleep 0.1
    done
    die "s3s-fs did not start (log: $LOGS/$RUN_TAG-s3s-fs.log)"
}
s3_stop() { kill "$S3_PID" 2>/dev/null || true; wait "$S3_PID" 2>/dev/null || true; }

# s3_run TOOL : backup of $DATA into a fresh bucket repository, full restore,
# check; sets S3_RES=(backup_s backup_rss restore_s restore_rss verify)
s3_run() {
    local tool=$1 out=$RUNDIR/s3-restore
    s3_start
    local senv=("${TENV[@]}" AWS_ACCESS_KEY_ID=$S3_KEY AWS_SECRET_ACCESS_KEY=$S3_SECRET AWS_REGION=us-east-1
                AWS_ENDPOINT_URL=http://127.0.0.1:$S3_PORT)
    mkdir -p "$out"
    case $tool in
        lifeboat)
            local repo=s3://bench/lifeboat
            quiet s3-init "${senv[@]}" "$LIFEBOAT" init --repo "$repo"
            timed s3-backup "${senv[@]}" "$LIFEBOAT" backup --json --repo "$repo" "$DATA"
            S3_RES=("$T_SEC" "$T_RSS")
            timed s3-restore "${senv[@]}" "$LIFEBOAT" restore --repo "$repo" latest --target "$out" ;;
        restic)
            local repo=s3:http://127.0.0.1:$S3_PORT/bench/restic
            quiet s3-init "${senv[@]}" "$RESTIC" init --repository-version 2 --repo "$repo"
            timed s3-backup "${senv[@]}" "$RESTIC" backup --repo "$repo" --compression auto "$DATA"
            S3_RES=("$T_SEC" "$T_RSS")
            timed s3-restore "${senv[@]}" "$RESTIC" restore --repo "$repo" latest --target "$out" ;;
        rustic) # opendal's S3 service; OPENDAL_* variables become its options
            senv+=(RUSTIC_REPOSITORY=opendal:s3 OPENDAL_BUCKET=bench OPENDAL_ROOT=/rustic
                   OPENDAL_ENDPOINT=http://127.0.0.1:$S3_PORT OPENDAL_REGION=us-east-1
                   OPENDAL_ACCESS_KEY_ID=$S3_KEY OPENDAL_SECRET_ACCESS_KEY=$S3_SECRET)
            quiet s3-init "${senv[@]}" "$RUSTIC" init
            timed s3-backup "${senv[@]}" "$RUSTIC" backup "$DATA"
            S3_RES=("$T_SEC" "$T_RSS")
            timed s3-restore "${senv[@]}" "$RUSTIC" restore latest "$out" ;;
    esac
    S3_RES+=("$T_SEC" "$T_RSS")
    verify_restore "$tool" "$out"
    S3_RES+=("$VERIFY")
    s3_stop
    rm -rf "$out" "$RUNDIR/s3"
}

# --- header ------------------------------------------------------------------
cpu_model=$(grep -m1 -E '^(model name|Model|cpu model)' /proc/cpuinfo | cut -d: -f2- | sed 's/^ *//' || true)
[[ -n $cpu_model ]] || cpu_model=$(lscpu 2>/dev/null | sed -n 's/^Model name: *//p' | head -n1 || true)
mem_gib=$(awk '/^MemTotal/ {printf "%.1f", $2/1048576}' /proc/meminfo)
fs_type=$(df -T "$WORK" | awk 'NR==2 {print $2}')
versions=("lifeboat: $("$LIFEBOAT" --version) (commit $lb_commit)")
want restic && versions+=("$("$RESTIC" version | head -n1)")
want rustic && versions+=("$("$RUSTIC" --version | head -n1)")
want borg && versions+=("$("$BORG" --version) (pip, in $TOOLS_DIR/borg-venv)")
want limit && versions+=("$(tar --version | head -n1), $(zstd --version)")

printf 'dataset\trun\ttool\tdata_bytes\tdata2_bytes\tb1_s\tb1_rss_kib\tb1_cpu_pct\tb2_s\tb2_rss_kib\tb2_cpu_pct\trepo1_bytes\trepo2_bytes\tadded_bytes\tlifeboat_reported_added\tlifeboat_files_unchanged\trestore_s\trestore_rss_kib\trestore_cpu_pct\tverify\ts3_backup_s\ts3_backup_rss_kib\ts3_restore_s\ts3_restore_rss_kib\ts3_verify\trestore_sync_s\n' >"$TSV"
started=$(date -u '+%Y-%m-%d %H:%M UTC')
declare -A DS_DESC

# --- the runs ----------------------------------------------------------------
for ds in "${DATASETS[@]}"; do
    make_base "$ds"
    GEN_PY=$(gen_py "$ds")
    data_bytes=$(dsize "$BASE")
    data_files=$(find "$BASE" -type f | wc -l)
    data_dirs=$(find "$BASE" -type d | wc -l)
    small=$(find "$BASE" -type f -size -64k | wc -l)
    DS_DESC[$ds]="$(awk -v b="$data_bytes" 'BEGIN {printf "%.1f", b/1048576}') MiB (du -sb), $data_files files ($small under 64 KiB), $data_dirs directories"
    log "dataset $ds: $data_bytes bytes, $data_files files; $RUNS run(s) of ${TOOLS[*]}; work dir $WORK"
    for ((run = 1; run <= RUNS; run++)); do
        for tool in "${TOOLS[@]}"; do
            RUN_TAG=$ds-run$run-$tool
            if [[ $FRESH_FS != 0 ]]; then
                fresh_fs
            else
                rm -rf "$RUNDIR" "$DATA"
            fi
            mkdir -p "$RUNDIR"
            REPO=$RUNDIR/repo
            OUT=$RUNDIR/restore
            log "$ds run $run/$RUNS $tool: preparing a fresh copy of the dataset"
            cp -a "$BASE" "$DATA"
            # cp gives every file a fresh ctime; a tree backed up "last night" has
            # old ones. Let them age past the racy-timestamp windows that files
            # caches (Lifeboat's: 2 s) use to refuse trusting just-changed files.
            sleep "$SETTLE"
            tool_env "$tool"
            do_init "$tool"
            warm "$DATA"

            log "$ds run $run/$RUNS $tool: initial backup"
            do_backup "$tool" 1
            b1=("$T_SEC" "$T_RSS" "$T_CPU")
            repo1=$(repo_size "$tool")
            log "$ds run $run/$RUNS $tool: initial backup ${b1[0]} s, ${b1[1]} KiB RSS, ${b1[2]} % CPU, repo $repo1 bytes"

            quiet mutate python3 "$GEN_PY" mutate "$DATA" "$SEED" "$SCALE"
            data2=$(dsize "$DATA")
            if [[ $tool == limit ]]; then
                b2=(NA NA NA); repo2=NA; added=NA
            else
                warm "$DATA"
                log "$ds run $run/$RUNS $tool: second backup (after mutate)"
                do_backup "$tool" 2
                b2=("$T_SEC" "$T_RSS" "$T_CPU")
                repo2=$(repo_size "$tool")
                added=$((repo2 - repo1))
                log "$ds run $run/$RUNS $tool: second backup ${b2[0]} s, +$added bytes on disk"
            fi
            reported=(NA NA)
            if [[ $tool == lifeboat ]]; then
                read -r -a reported < <(python3 -c 'import json,sys; s=json.loads([l for l in sys.stdin if l.startswith("{")][-1])["stats"]; print(s["bytes_added"], s["files_unchanged"])' \
                    <"$LOGS/$RUN_TAG-backup2.log") || die "could not read stats from $LOGS/$RUN_TAG-backup2.log"
                ((${#reported[@]} == 2)) || die "could not read stats from $LOGS/$RUN_TAG-backup2.log"
            fi

            mkdir -p "$OUT"
            warm "$REPO"
            log "$ds run $run/$RUNS $tool: full restore"
            do_restore "$tool" "$OUT"
            rs=("$T_SEC" "$T_RSS" "$T_CPU")
            # What the restore left in the page cache reaches the disk:
            # restic, rustic and borg return before it has, Lifeboat after
            # (its syncfs), so "restore + sync" compares durable restores.
            NO_PRESYNC=1 timed restore-sync sync -f "$OUT"
            sync_s=$T_SEC
            log "$ds run $run/$RUNS $tool: restore ${rs[0]} s, ${rs[1]} KiB RSS; verifying"
            verify_restore "$tool" "$OUT"
            log "$ds run $run/$RUNS $tool: restore verified ($VERIFY)"
            find "$LOGS" -name "$RUN_TAG-verify*.diff" -empty -delete
            local_verify=$VERIFY

            S3_RES=(NA NA NA NA NA)
            if [[ $S3 != 0 && $tool != borg && $tool != limit ]]; then
                rm -rf "$OUT"   # room on the run's filesystem for the S3 copy
                log "$ds run $run/$RUNS $tool: S3 (loopback s3s-fs) backup and restore"
                s3_run "$tool"
                log "$ds run $run/$RUNS $tool: S3 backup ${S3_RES[0]} s, restore ${S3_RES[2]} s (${S3_RES[4]})"
            fi

            printf '%s\t' "$ds" "$run" "$tool" "$data_bytes" "$data2" "${b1[@]}" "${b2[@]}" \
                "$repo1" "$repo2" "$added" "${reported[@]}" "${rs[@]}" "$local_verify" >>"$TSV"
            (IFS=$'\t'; printf '%s\t%s\n' "${S3_RES[*]}" "$sync_s") >>"$TSV"
            if [[ $FRESH_FS != 0 ]]; then
                umount "$FS" && rm -f "$WORK/fs.img"
            else
                rm -rf "$RUNDIR" "$DATA"
            fi
        done
    done
    [[ $KEEP_BASE != 0 ]] || rm -rf "$BASE" "$BASE.ok"
done
finished=$(date -u '+%H:%M UTC')

# --- report ------------------------------------------------------------------
{
    for ds in "${DATASETS[@]}"; do
        echo "## $ds dataset: Lifeboat vs ${TOOLS[*]:1} — SCALE $SCALE, SEED $SEED, median of $RUNS run(s)"
        echo
        echo "- machine: $(nproc) CPUs ($cpu_model), $mem_gib GiB RAM, $(uname -sr), $fs_type at $WORK; load average at the end $(cut -d' ' -f1-3 /proc/loadavg)"
        echo "- run: $started to $finished, DATASET=$DATASET TOOLS=\"${TOOLS[*]}\" S3=$S3"
        for v in "${versions[@]}"; do echo "- $v"; done
        echo "- dataset: ${DS_DESC[$ds]}; fresh repositories, warm page cache, order ${TOOLS[*]} in each run$([[ $FRESH_FS != 0 ]] && echo "; each tool's run on a freshly made ext4 filesystem (loop device)")"
        echo
        python3 "$script_dir/report.py" "$TSV" --dataset "$ds" --missing "$MISSING_TSV"
        echo
    done
} | tee "$WORK/report.md"
log "raw numbers: $TSV; logs: $LOGS; report: $WORK/report.md"
