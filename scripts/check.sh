#!/usr/bin/env bash
# Everything CI checks, in the order that fails fastest: formatting, lints, then the tests.
# Run it before every commit. On a fresh Debian machine it installs the sqlite3 shell, which the
# schema tests use to prove that Debian 12's stock shell can read and write jobd's database.
set -euo pipefail
cd "$(dirname "$0")/.."

if ! command -v sqlite3 >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "check.sh: installing the sqlite3 shell (the schema tests need it)" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq sqlite3 >/dev/null
    else
        echo "check.sh: the tests need the sqlite3 shell: sudo apt-get install sqlite3" >&2
        exit 1
    fi
fi

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
