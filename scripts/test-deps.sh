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
