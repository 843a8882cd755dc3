#!/usr/bin/env bash
# Installs what the test suite needs beyond the Rust toolchain, on a fresh
# Debian machine of the kind CI runs on. Safe to run again: it only installs
# what is missing.
set -euo pipefail

need=()
command -v python3 >/dev/null || need+=(python3)   # the shared dataset generator
command -v tmux >/dev/null || need+=(tmux)         # TUI end-to-end tests
command -v promtool >/dev/null || need+=(prometheus)   # checks `lifeboat metrics` output
command -v systemd-analyze >/dev/null || need+=(systemd)  # checks `lifeboat schedule systemd` units

if [ ${#need[@]} -gt 0 ]; then
    echo "installing: ${need[*]}" >&2
    if [ "$(id -u)" -ne 0 ]; then
        echo "error: ${need[*]} missing and not running as root; install them with apt-get" >&2
        exit 1
    fi
    apt-get update -qq
    DEBIAN_FRONTEND=noninteractive apt-get install -y -qq "${need[@]}" >/dev/null
fi

for c in "cargo fmt" "cargo clippy"; do
    if ! $c --version >/dev/null 2>&1; then
        echo "installing the rustfmt and clippy components" >&2
        rustup component add rustfmt clippy
        break
    fi
done

# A real S3-compatible server for the off-site tests (tests/s3.rs), built
# from crates.io, pinned so every machine tests against the same server (0.17
# needs a newer Rust than this toolchain). About a minute and a half on 2 cores.
S3S_FS_VERSION=0.14.1
if ! command -v s3s-fs >/dev/null 2>&1 && [ ! -x "${CARGO_HOME:-$HOME/.cargo}/bin/s3s-fs" ]; then
    echo "installing s3s-fs $S3S_FS_VERSION (cargo install)" >&2
    cargo install --locked --quiet "s3s-fs@$S3S_FS_VERSION" --features binary
fi
