#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain, on a fresh
# Debian machine of the kind CI runs on. Safe to run again: it only installs
# what is missing.
set -euo pipefail

need=()
command -v python3 >/dev/null || need+=(python3)   # the shared dataset generator
python3 -m pip --version >/dev/null 2>&1 || need+=(python3-pip)   # tests/format_reader.py's packages
command -v tmux >/dev/null || need+=(tmux)         # TUI end-to-end tests
command -v man >/dev/null || need+=(man-db)        # the man page renders with man -l
command -v promtool >/dev/null || need+=(prometheus)   # checks `lifeboat metrics` output
command -v systemd-analyze >/dev/null || need+=(systemd)  # checks `lifeboat schedule systemd` units
# Source adapters are tested against real servers and tools.
command -v pg_dump >/dev/null || need+=(postgresql postgresql-client)
command -v pgbench >/dev/null || need+=(postgresql-contrib)
command -v mariadb-dump >/dev/null || need+=(mariadb-server mariadb-client)
command -v redis-server >/dev/null || need+=(redis-server)
command -v redis-cli >/dev/null || need+=(redis-tools)
command -v qemu-img >/dev/null || need+=(qemu-utils)
command -v mkfs.btrfs >/dev/null || need+=(btrfs-progs)   # snapshot = "btrfs" on a loop-mounted image

if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}" >&2
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: ${need[*]} missing and not running as root; install them with apt-get" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

# tests/format_reader.py, the independent reader of docs/format.md.
if ! python3 -c "import pyrage, zstandard, blake3" >/dev/null 2>&1; then
    echo "installing the Python packages pyrage, zstandard and blake3 (pip)" >&2
    python3 -m pip install --quiet pyrage zstandard blake3 \
        || python3 -m pip install --quiet --break-system-packages pyrage zstandard blake3
fi

for c in "cargo fmt" "cargo clippy"; do
    if ! $c --version >/dev/null 2>&1; then
        echo "installing the rustfmt and clippy components" >&2
        rustup component add rustfmt clippy
        break
    fi
done

# The database servers the source tests talk to, on loopback. Started if
# they are not answering; each gets a `lifeboat_test` login with a password
# (read by the tests from tests/fixtures/db-password), so the tests go
# through the same password path users configure.
root() { if [ "$(id -u)" -eq 0 ]; then "$@"; else sudo "$@"; fi; }
as_postgres() { if [ "$(id -u)" -eq 0 ]; then runuser -u postgres -- "$@"; else sudo -u postgres "$@"; fi; }
password=$(head -n1 "$(dirname "$0")/../tests/fixtures/db-password")

start() {  # start NAME CHECK-COMMAND
    local name=$1; shift
    "$@" >/dev/null 2>&1 && return 0
    echo "starting $name" >&2
    root service "$name" start >/dev/null 2>&1 || true
    for _ in $(seq 1 30); do "$@" >/dev/null 2>&1 && return 0; sleep 1; done
    echo "error: $name is not answering on loopback; start it (service $name start) and rerun" >&2
    exit 1
}

start postgresql pg_isready -q -h 127.0.0.1 -p 5432
as_postgres psql -q -v ON_ERROR_STOP=1 -d postgres >/dev/null <<SQL
DO \$\$ BEGIN
  IF NOT EXISTS (SELECT FROM pg_roles WHERE rolname = 'lifeboat_test') THEN
    CREATE ROLE lifeboat_test LOGIN SUPERUSER PASSWORD '$password';
  ELSE
    ALTER ROLE lifeboat_test LOGIN SUPERUSER PASSWORD '$password';
  END IF;
END \$\$;
SQL

# The login must need its password even where loopback is trusted, so a
# wrong password is really refused.
hba=$(as_postgres psql -Atqc "SHOW hba_file")
if ! grep -q "lifeboat_test" "$hba"; then
    root sed -i '1i host all lifeboat_test 127.0.0.1/32 scram-sha-256' "$hba"
    as_postgres psql -q -c "SELECT pg_reload_conf()" >/dev/null
fi

start mariadb mariadb-admin --protocol=socket ping
root mariadb --protocol=socket -u root >/dev/null <<SQL
CREATE USER IF NOT EXISTS 'lifeboat_test'@'localhost' IDENTIFIED BY '$password';
CREATE USER IF NOT EXISTS 'lifeboat_test'@'127.0.0.1' IDENTIFIED BY '$password';
ALTER USER 'lifeboat_test'@'localhost' IDENTIFIED BY '$password';
ALTER USER 'lifeboat_test'@'127.0.0.1' IDENTIFIED BY '$password';
GRANT ALL PRIVILEGES ON *.* TO 'lifeboat_test'@'localhost' WITH GRANT OPTION;
GRANT ALL PRIVILEGES ON *.* TO 'lifeboat_test'@'127.0.0.1' WITH GRANT OPTION;
SQL
# A real S3-compatible server for the off-site tests (tests/s3.rs), built
# from crates.io, pinned so every machine tests against the same server (0.17
# needs a newer Rust than this toolchain). About a minute and a half on 2 cores.
S3S_FS_VERSION=0.14.1
if ! command -v s3s-fs >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs" ]; then
    echo "installing s3s-fs $S3S_FS_VERSION (cargo install)" >&2
    cargo install --locked --quiet "s3s-fs@$S3S_FS_VERSION" --features binary
fi

# An S3 server that enforces Object Lock, and boto3 to attack it with, for
# tests/object_lock.rs: moto's server mode (pinned to the tested version).
if ! python3 -c "import moto.server, boto3, flask" >/dev/null 2>&1; then
    echo "installing moto[server] (pip)" >&2
    python3 -m pip install --quiet 'moto[server]==5.2.1' \
        || python3 -m pip install --quiet --break-system-packages 'moto[server]==5.2.1'
fi
