#!/usr/bin/env bash
# How much a night's backup of a database adds after 1 % of its rows
# changed. Not a test: a measurement, written up in docs/benchmarks.md
# ("Database dumps deduplicate").
#
#   bench/dump_dedup.sh [LIFEBOAT_BINARY]
#
# Environment:
#   SCALE     pgbench scale (1 = 100 000 accounts)        (default 5)
#   ROWS      rows in the SQLite database                  (default 200000)
#   SCENARIOS which to run (default "pg-range pg-scattered sqlite-uuid")
#
# Needs PostgreSQL on 127.0.0.1:5432 with the `lifeboat_test` login
# (scripts/test-deps.sh), pgbench, python3 and jq.
#
# Each scenario: a fresh repository, a first backup, 1 % of rows changed,
# a second backup; it prints the second backup's added bytes (after dedup
# and compression) as a share of the dump's size and of what the first
# backup stored.
#   pg-range      pgbench database (fillers made non-blank); UPDATE of a contiguous 1 % of accounts
#                 (the rows an application touches are mostly recent ones)
#   pg-scattered  the same, every hundredth account updated
#   sqlite-uuid   items(id, uuid UNIQUE, body ~300 B) filled in batches as
#                 an application would (so index and table pages
#                 interleave); then 1 % more rows inserted, random UUIDs
set -euo pipefail
here=$(cd "$(dirname "$0")/.." && pwd)
lb=${1:-$here/target/debug/lifeboat}
scale=${SCALE:-5}
rows=${ROWS:-200000}
scenarios=${SCENARIOS:-"pg-range pg-scattered sqlite-uuid"}
password_file=$here/tests/fixtures/db-password
export PGPASSWORD=$(head -n1 "$password_file") PGHOST=127.0.0.1 PGUSER=lifeboat_test
work=$(mktemp -d)
trap 'rm -rf "$work"; dropdb --if-exists lb_bench_dedup 2>/dev/null || true' EXIT

setup() {  # setup SOURCE-TOML
    rm -rf "$work/run"; mkdir -p "$work/run"
    cat >"$work/run/lifeboat.toml" <<EOF
state_dir = "$work/run/state"
cache_dir = "$work/run/cache"
[repositories.local]
path = "$work/run/repo"
key_file = "$work/run/admin.key"
[services.db]
tier = "important"
sources = [$1]
EOF
    HOME=$work/run "$lb" init --repo "$work/run/repo" --key-file "$work/run/admin.key" >/dev/null
}

lbr() { HOME=$work/run "$lb" --config "$work/run/lifeboat.toml" "$@"; }

# stat N FIELD: the FIELD of the Nth restore point's stats.
stat() { lbr --json snapshots db | jq -s "flatten | .[$1].stats.$2"; }

report() {  # report NAME
    local size0 added0 size1 added1
    size0=$(stat 0 bytes); added0=$(stat 0 bytes_added)
    size1=$(stat 1 bytes); added1=$(stat 1 bytes_added)
    python3 - "$1" "$size0" "$added0" "$size1" "$added1" <<'EOF'
import sys
name, s0, a0, s1, a1 = sys.argv[1], *map(int, sys.argv[2:])
mib = lambda b: b / 2**20
print(f"{name:13}  dump {mib(s1):7.1f} MiB  first backup stored {mib(a0):6.1f} MiB"
      f"  second added {mib(a1):6.2f} MiB = {100*a1/s1:5.1f} % of the dump,"
      f" {100*a1/a0:5.1f} % of the first backup")
EOF
}

pg_scenario() {  # pg_scenario NAME WHERE
    dropdb --if-exists lb_bench_dedup
    createdb lb_bench_dedup
    pgbench -q -i -s "$scale" lb_bench_dedup >/dev/null 2>&1
    # pgbench's filler is blanks, which compress to nothing: give every
    # account text that compresses as application data does.
    psql -q -d lb_bench_dedup >/dev/null <<'EOF'
UPDATE pgbench_accounts SET filler = md5(aid::text) || ' account ' || aid || ' ' || md5((aid * 7)::text);
CLUSTER pgbench_accounts USING pgbench_accounts_pkey;
EOF
    setup "{ kind = \"postgres\", database = \"lb_bench_dedup\", host = \"127.0.0.1\", user = \"lifeboat_test\", password_file = \"$password_file\" }"
    lbr backup db >/dev/null
    psql -q -d lb_bench_dedup -c "UPDATE pgbench_accounts SET abalance = abalance + 1 WHERE $2" >/dev/null
    lbr backup db >/dev/null
    report "$1"
}

sqlite_scenario() {
    python3 - "$work/app.db" "$rows" <<'EOF'
import os, random, sqlite3, sys, uuid
path, n = sys.argv[1], int(sys.argv[2])
random.seed(20240601)
c = sqlite3.connect(path)
c.execute("PRAGMA journal_mode=WAL")
c.execute("CREATE TABLE items (id INTEGER PRIMARY KEY, uuid TEXT NOT NULL UNIQUE, body TEXT)")
rows = lambda k: [(str(uuid.UUID(int=random.getrandbits(128))), random.randbytes(150).hex()) for _ in range(k)]
for _ in range(n // 10000):
    c.executemany("INSERT INTO items (uuid, body) VALUES (?, ?)", rows(10000))
    c.commit()
c.close()
EOF
    setup "{ kind = \"sqlite\", path = \"$work/app.db\" }"
    lbr backup db >/dev/null
    python3 - "$work/app.db" "$rows" <<'EOF'
import random, sqlite3, sys, uuid
path, n = sys.argv[1], int(sys.argv[2])
random.seed(7)
c = sqlite3.connect(path)
c.executemany("INSERT INTO items (uuid, body) VALUES (?, ?)",
              [(str(uuid.UUID(int=random.getrandbits(128))), random.randbytes(150).hex()) for _ in range(n // 100)])
c.commit()
c.close()
EOF
    lbr backup db >/dev/null
    report sqlite-uuid
    rm -f "$work"/app.db*
}

"$lb" --version
for s in $scenarios; do
    case $s in
        pg-range) pg_scenario pg-range "aid <= $((scale * 1000))" ;;
        pg-scattered) pg_scenario pg-scattered "aid % 100 = 0" ;;
        sqlite-uuid) sqlite_scenario ;;
        *) echo "unknown scenario $s" >&2; exit 2 ;;
    esac
done
