#!/usr/bin/env bash
# Everything CI checks, in the order that fails fastest: formatting, lints, then the tests.
# Run it before every commit. On a fresh Debian machine it installs the sqlite3 shell, which the
# schema tests use to prove that Debian 12's stock shell can read and write jobd's database, and
# PostgreSQL's server binaries, which the tests run a throwaway server from (testkit::postgres).
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

# The same search as src/testkit/postgres/setup.rs: JOBD_PG_BIN, Debian's folders, pg_config, PATH.
have_postgres_server() {
    local dir
    for dir in "${JOBD_PG_BIN:-}" /usr/lib/postgresql/*/bin "$(pg_config --bindir 2>/dev/null)"; do
        [ -n "$dir" ] && [ -x "$dir/initdb" ] && [ -x "$dir/postgres" ] && return 0
    done
    command -v initdb >/dev/null && command -v postgres >/dev/null
}

if ! have_postgres_server; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "check.sh: installing PostgreSQL (the tests run a throwaway server)" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq postgresql >/dev/null
    else
        echo "check.sh: the tests need PostgreSQL's server binaries: sudo apt-get install postgresql" >&2
        exit 1
    fi
fi

cargo fmt --check
cargo clippy --all-targets --locked -- -D warnings
cargo test --locked
