#!/usr/bin/env bash
# wal-push under pgbench load: time per segment (as archive_command sees
# it) and repository growth per GB of WAL. Not in CI.
#
#   bench/wal_push.sh            # 60 s of pgbench, scale 20, 16 MiB segments
#   SECS=120 SCALE=50 bench/wal_push.sh
#   LIFEBOAT_BIN=target/debug/lifeboat SECS=30 bench/wal_push.sh
#
# Builds the release binary, starts a private cluster (initdb into a
# temporary directory, a free port), archives with `lifeboat wal-push`
# through a wrapper that timestamps every call, then packs the spool and
# measures the repository.
set -euo pipefail
SECS=${SECS:-60}
SCALE=${SCALE:-20}
root=$(cd "$(dirname "$0")/.." && pwd)
bin=$(ls -d /usr/lib/postgresql/*/bin | sort -V | tail -n1)
export PATH="$bin:$PATH"
# LIFEBOAT_BIN=target/debug/lifeboat measures a binary already built.
if [ -z "${LIFEBOAT_BIN:-}" ]; then
    cargo build --release --quiet --manifest-path "$root/Cargo.toml"
    LIFEBOAT_BIN="$root/target/release/lifeboat"
fi
work=$(mktemp -d /tmp/lifeboat-walbench.XXXXXX)
trap 'as_pg pg_ctl -D "$work/data" -m immediate stop >/dev/null 2>&1 || true; rm -rf "$work"' EXIT
cp "$LIFEBOAT_BIN" "$work/lifeboat"
if [ "$(id -u)" -eq 0 ]; then as_pg() { runuser -u postgres -- env PATH="$PATH" HOME="$work/home" "$@"; }; else as_pg() { env HOME="$work/home" "$@"; }; fi
mkdir -p "$work/home" "$work/keys"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$work"
port=$(python3 -c 'import socket; s=socket.socket(); s.bind(("127.0.0.1",0)); print(s.getsockname()[1])')
cat > "$work/lifeboat.toml" <<TOML
state_dir = "$work/state"
cache_dir = "$work/cache"
[repositories.local]
path = "$work/repo"
key_file = "$work/admin.key"
[services.db]
tier = "critical"
[[services.db.sources]]
kind = "postgres-cluster"
host = "127.0.0.1"
port = $port
user = "postgres"
spool = "$work/spool"
TOML
lb() { as_pg env LIFEBOAT_KEY_DIR="$work/keys" "$work/lifeboat" --config "$work/lifeboat.toml" "$@"; }
lb init --repo "$work/repo" --key-file "$work/admin.key" >/dev/null
cat > "$work/push.sh" <<SH
#!/bin/sh
s=\$(date +%s%N)
LIFEBOAT_KEY_DIR="$work/keys" "$work/lifeboat" --config "$work/lifeboat.toml" wal-push "\$1" || exit 1
echo "\$(( \$(date +%s%N) - s )) \$(stat -c %s "\$1")" >> "$work/times"
SH
chmod 755 "$work/push.sh"
[ "$(id -u)" -eq 0 ] && chown -R postgres: "$work"
as_pg initdb -D "$work/data" -U postgres --auth=trust -N >/dev/null
cat >> "$work/data/postgresql.conf" <<CONF
port = $port
listen_addresses = '127.0.0.1'
unix_socket_directories = '$work'
wal_level = replica
archive_mode = on
archive_command = '$work/push.sh %p'
max_wal_senders = 4
CONF
as_pg pg_ctl -D "$work/data" -l "$work/pg.log" -w start >/dev/null
psql_() { as_pg psql -h 127.0.0.1 -p "$port" -U postgres -Atqc "$1" postgres; }
as_pg pgbench -h 127.0.0.1 -p "$port" -U postgres -i -s "$SCALE" -q postgres >/dev/null 2>&1
lb backup db >/dev/null
as_pg pgbench -h 127.0.0.1 -p "$port" -U postgres -n -c 4 -T "$SECS" postgres >"$work/pgbench.out" 2>&1
seg=$(psql_ "SELECT pg_walfile_name(pg_switch_wal())")
until [ "$(psql_ "SELECT coalesce(last_archived_wal,'') >= '$seg' FROM pg_stat_archiver")" = t ]; do sleep 0.2; done
lb wal-flush >/dev/null
wal_bytes=$(awk '{b+=$2} END {print b}' "$work/times")
pushes=$(wc -l < "$work/times")
repo_bytes=$(du -sb "$work/repo" | cut -f1)
base_bytes=$(lb --json snapshots db | python3 -c 'import json,sys; v=json.load(sys.stdin); v=v if isinstance(v,list) else [v]; print(sum(s.get("stats",{}).get("bytes_added",0) for s in v))' 2>/dev/null || echo 0)
sort -n "$work/times" | awk -v n="$pushes" -v wal="$wal_bytes" -v repo="$repo_bytes" -v base="$base_bytes" -v tps="$(grep -m1 '^tps' "$work/pgbench.out" | awk '{print $3}')" '
  {t[NR]=$1/1e6; s+=$1/1e6}
  END {
    printf "pgbench tps               %s\n", tps
    printf "segments pushed           %d (%.2f GiB of WAL)\n", n, wal/2^30
    printf "wal-push per segment      mean %.1f ms, median %.1f ms, p95 %.1f ms, max %.1f ms\n", s/n, t[int(n/2)+1], t[int(n*0.95)+1], t[n]
    printf "repository                %.1f MiB total, %.1f MiB of it base backup\n", repo/2^20, base/2^20
    printf "repository growth per GiB of WAL: %.1f MiB\n", (repo-base)/2^20/(wal/2^30)
  }'
