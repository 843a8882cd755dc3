#!/usr/bin/env bash
# The whole test suite: formatting, lints, and every test. README's second
# command, and what CI runs.
set -euo pipefail
cd "$(dirname "$0")/.."

scripts/test-deps.sh

echo "== cargo fmt --check" >&2
cargo fmt --check
echo "== cargo clippy --all-targets -- -D warnings" >&2
cargo clippy --all-targets -- -D warnings
echo "== the engine builds without the console" >&2
cargo check --quiet --lib --no-default-features
echo "== cargo test" >&2
cargo test --all-targets
