#!/usr/bin/env bash
# Everything CI checks, in the order that fails fastest: formatting, lints, then the tests.
# Run it before every commit. On a fresh Debian machine it installs the sqlite3 shell, which the
# schema tests use to prove that Debian 12's stock shell can read and write jobd's database,
# PostgreSQL's server binaries, which the tests run a throwaway server from (testkit::postgres),
# Chromium and chromedriver, which the dashboard's browser test drives, the Python packages the
# image corpus is made and judged with (tests/corpus/make.py), and
# cargo-modules, which the module graph's check reads the crate with (scripts/module-graph.py).
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

# The same search as testkit/src/postgres/setup.rs: JOBD_PG_BIN, Debian's folders, pg_config, PATH.
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

# The dashboard's browser test (tests/e2e/dashboard/browser.rs) drives Debian's headless Chromium
# through chromedriver, both from Debian's packages.
if ! command -v chromium >/dev/null || ! command -v chromedriver >/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "check.sh: installing chromium and chromium-driver (the dashboard's browser test)" >&2
        apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq chromium chromium-driver >/dev/null
    else
        echo "check.sh: the dashboard's browser test needs Chromium: sudo apt-get install chromium chromium-driver" >&2
        exit 1
    fi
fi

# The corpus test (tests/corpus.rs) writes its images with reference encoders in Python, pinned
# in tests/corpus/requirements.txt; `make.py --check` says whether they are there, at those pins.
if ! python3 tests/corpus/make.py --check 2>/dev/null; then
    if [ "$(id -u)" = 0 ] && command -v apt-get >/dev/null; then
        echo "check.sh: installing the corpus test's Python packages (tests/corpus/requirements.txt)" >&2
        if ! command -v python3 >/dev/null || ! python3 -m pip --version >/dev/null 2>&1; then
            apt-get update -qq && DEBIAN_FRONTEND=noninteractive apt-get install -y -qq python3 python3-pip >/dev/null
        fi
        # Debian's own python3 refuses pip outside a virtualenv (PEP 668) unless told.
        pep668=()
        if python3 -c 'import os, sys, sysconfig; sys.exit(not os.path.exists(os.path.join(sysconfig.get_path("stdlib"), "EXTERNALLY-MANAGED")))'; then
            pep668=(--break-system-packages)
        fi
        python3 -m pip install -q --disable-pip-version-check --root-user-action=ignore "${pep668[@]}" \
            -r tests/corpus/requirements.txt
        python3 tests/corpus/make.py --check
    else
        echo "check.sh: the corpus test needs Python 3 with its packages: python3 -m pip install -r tests/corpus/requirements.txt" >&2
        exit 1
    fi
fi

# The module graph's check (scripts/module-graph.py) reads the crate through cargo-modules, at the
# last version this toolchain (1.95) can build; it takes minutes to build, once.
if ! cargo modules --version >/dev/null 2>&1; then
    echo "check.sh: installing cargo-modules (the module graph check needs it)" >&2
    cargo install --locked --quiet cargo-modules --version 0.27.0
fi

scripts/check-docs.py  # figures only from BENCHMARKS.md, links that resolve (it self-tests first)
scripts/module-graph.py >/dev/null  # no cycle among the modules (needs cargo-modules, above)
# --all and --workspace: jobd and testkit/ (the test support and benchmark programs), whose own
# tests run here too.
cargo fmt --all --check
cargo clippy --workspace --all-targets --locked -- -D warnings
# The library as the binaries see it (src/lib.rs, `product_only`): code only tests reach is dead.
cargo rustc --lib --profile check --locked --quiet -- --cfg product_only -D dead_code -D unused
# The suite's totals on one closing line (cargo prints one line per test binary, the doc tests'
# last); CHECK_SUMMARY names a file to keep that line in for .ci/run.
log=$(mktemp)
trap 'rm -f "$log"' EXIT
cargo test --workspace --locked 2>&1 | tee "$log"
summary=$(awk '/^test result:/ { p += $4; f += $6 } END { printf "tests: %d passed, %d failed", p, f }' "$log")
echo "$summary"
[[ -z ${CHECK_SUMMARY:-} ]] || echo "$summary" >"$CHECK_SUMMARY"
