#!/usr/bin/env bash
# The README's first hour, as a new user lives it, from a fresh clone:
#
#   scripts/fresh-machine.sh
#
# 1. clones this repository (what is committed: HEAD) into a temporary folder;
# 2. runs the README's first command there, as written, with a time limit: it must build both
#    binaries, put them on PATH and end with jobd running on the clone's daemon.toml; that
#    install, and a plain `cargo install --path .`, must install jobd and jobctl and nothing else;
# 3. serves two small PNGs from a local server (python3 -m http.server, on 127.0.0.1 only);
# 4. runs `jobctl init`, adds one job with the sqlite3 shell and one with jobctl, as the README
#    shows, and checks that both end `done` with their blobs on disk, byte for byte.
#
# Nothing leaves the machine: the clone is local, cargo runs offline (check.sh has fetched every
# crate already), the binaries are installed into the temporary folder (never ~/.cargo/bin), and
# the only server is on loopback. The one change to the clone is the README's own advice:
# allow_ips under [fetch], so that jobd may fetch from this machine.
#
# Build cache: a fresh clone builds everything in release, several minutes on 2 cores. The
# compiled dependencies are kept between runs in target/fresh-machine/ of this repository, a
# folder of its own: sharing this repository's target/ would let the clone's binaries replace
# the ones built here, under fingerprints that call them fresh. JOBD_FRESH_COLD=1 builds in the
# clone's own target/ instead, as a new user's machine does.
#
# Environment: JOBD_FRESH_SOURCE clones another repository (a path or URL) instead of this one;
# JOBD_FRESH_LIMIT is the time limit in seconds for the first command's build and run
# (default 2400); JOBD_FRESH_KEEP=1 keeps the temporary folder.
# Exit status: 0 when both jobs are done, 1 otherwise (the logs are printed).
set -euo pipefail
repo=$(cd "$(dirname "$0")/.." && pwd)
source=${JOBD_FRESH_SOURCE:-$repo}
limit=${JOBD_FRESH_LIMIT:-2400}

say() { echo "fresh-machine: $*" >&2; }

work=$(mktemp -d "${TMPDIR:-/tmp}/jobd-fresh.XXXXXX")
runner='' server=''
cleanup() {
    local status=$?
    set +e
    # The first command runs under timeout, which leads its own process group: jobd, cargo and
    # the shell between them all get the signal.
    [ -n "$runner" ] && kill -TERM -- "-$runner" 2>/dev/null && wait "$runner" 2>/dev/null
    [ -n "$server" ] && kill "$server" 2>/dev/null && wait "$server" 2>/dev/null
    if [ "$status" -ne 0 ] || [ "${JOBD_FRESH_KEEP:-}" = 1 ]; then
        say "kept $work"
    else
        rm -rf -- "$work"
    fi
    exit "$status"
}
trap cleanup EXIT

fail() {
    say "FAILED: $*"
    for log in "$work/first-command.log" "$work/server.log"; do
        [ -f "$log" ] && { echo "--- $log (last 40 lines)" >&2; tail -n 40 "$log" >&2; }
    done
    exit 1
}

# Polls a condition once a second until it holds or `seconds` pass.
wait_for() {
    local seconds=$1 what=$2
    shift 2
    local deadline=$((SECONDS + seconds))
    until "$@"; do
        [ "$SECONDS" -lt "$deadline" ] || fail "timed out after ${seconds}s waiting for $what"
        if [ -n "$runner" ] && ! kill -0 "$runner" 2>/dev/null; then
            fail "the README's first command ended while waiting for $what"
        fi
        sleep 1
    done
}

# --- 1. The clone.
git clone --quiet "$source" "$work/jobd"
clone=$work/jobd
say "cloned $source ($(git -C "$clone" log -1 --format='%h %s' | cut -c1-60))"

# --- 2. The README's first command: the first line of the first sh block under "On a fresh
# machine", without its comment.
first=$(awk '
    /^## On a fresh machine/ { section = 1; next }
    /^## / { section = 0 }
    section && /^```sh/ { block = 1; next }
    block { print; exit }
' "$clone/README.md" | sed 's/[[:space:]]#.*$//; s/[[:space:]]*$//')
[ -n "$first" ] || fail "README.md has no first command under \"On a fresh machine\""
say "the README's first command: $first"

# The README's advice for fetching from this machine, in the one place it says to put it.
grep -q '^allow_ips = \[\]$' "$clone/daemon.toml" || fail "daemon.toml has no allow_ips = [] line"
sed -i 's|^allow_ips = \[\]$|allow_ips = ["127.0.0.1/32", "::1/128"]|' "$clone/daemon.toml"

export CARGO_INSTALL_ROOT=$work/cargo
export PATH=$CARGO_INSTALL_ROOT/bin:$PATH
export CARGO_NET_OFFLINE=true
if [ "${JOBD_FRESH_COLD:-}" != 1 ]; then
    export CARGO_TARGET_DIR=$repo/target/fresh-machine
fi
hash -r
(cd "$clone" && exec timeout --kill-after=30 "$limit" bash -c "$first") \
    >"$work/first-command.log" 2>&1 &
runner=$!
say "building and starting jobd (up to ${limit}s; log: $work/first-command.log)"
started=$SECONDS
jobd_runs() { grep -q 'started [0-9]* workers' "$work/first-command.log"; }
wait_for "$limit" "jobd to start" jobd_runs
say "jobd runs, $((SECONDS - started))s after the first command"
for binary in jobd jobctl; do
    [ "$(command -v "$binary")" = "$CARGO_INSTALL_ROOT/bin/$binary" ] \
        || fail "the first command did not put $binary on PATH (found: $(command -v "$binary" || echo nothing))"
done
# The product alone is installed: the test support and the benchmark programs (jobd-testserver,
# jobd-bench) are in testkit/, a crate of their own that jobd only dev-depends on. Checked for the
# README's command and for a plain `cargo install --path .`, which names no binary (its build is
# the first command's, already done: it only copies).
installed=$(cd "$CARGO_INSTALL_ROOT/bin" && echo *)
[ "$installed" = "jobctl jobd" ] || fail "the first command installed '$installed', not jobctl and jobd alone"
(cd "$clone" && cargo install --locked --quiet --path . --root "$work/cargo-plain") \
    >"$work/plain-install.log" 2>&1 || fail "cargo install --path .: $(tail -n 20 "$work/plain-install.log")"
installed=$(cd "$work/cargo-plain/bin" && echo *)
[ "$installed" = "jobctl jobd" ] || fail "cargo install --path . installed '$installed', not jobctl and jobd alone"
say "installed: jobctl and jobd alone"

# --- 3. A local server with two images.
mkdir -p "$work/www"
python3 - "$work/www" <<'EOF'
import struct, sys, zlib
def png(rgb):
    def chunk(kind, data):
        body = kind + data
        return struct.pack(">I", len(data)) + body + struct.pack(">I", zlib.crc32(body))
    rows = b"".join(b"\x00" + bytes(rgb) * 4 for _ in range(4))
    return (b"\x89PNG\r\n\x1a\n" + chunk(b"IHDR", struct.pack(">IIBBBBB", 4, 4, 8, 2, 0, 0, 0))
            + chunk(b"IDAT", zlib.compress(rows)) + chunk(b"IEND", b""))
for name, rgb in [("shell.png", (200, 30, 30)), ("jobctl.png", (30, 30, 200))]:
    open(f"{sys.argv[1]}/{name}", "wb").write(png(rgb))
EOF
python3 -u -m http.server --bind 127.0.0.1 --directory "$work/www" 0 >"$work/server.log" 2>&1 &
server=$!
server_port() { grep -o 'port [0-9]*' "$work/server.log" | head -n 1 | cut -d' ' -f2; }
server_up() { [ -n "$(server_port)" ]; }
wait_for 30 "the local server" server_up
base="http://127.0.0.1:$(server_port)"

# --- 4. The README's steps: init, a job from the shell, a job from jobctl.
cd "$clone"
jobctl init >"$work/init.log" || fail "jobctl init: $(cat "$work/init.log")"
sqlite3 jobd.db ".timeout 5000" "INSERT INTO jobs(url) VALUES ('$base/shell.png')" \
    || fail "the sqlite3 shell could not add a job"
jobctl add "$base/jobctl.png" >/dev/null || fail "jobctl add failed"
state_of() { sqlite3 jobd.db ".timeout 5000" "SELECT state FROM jobs WHERE url = '$base/$1'"; }
both_done() { [ "$(state_of shell.png)" = done ] && [ "$(state_of jobctl.png)" = done ]; }
wait_for 120 "both jobs to be done" both_done
for name in shell.png jobctl.png; do
    path=$(sqlite3 jobd.db ".timeout 5000" "SELECT blob_path FROM jobs WHERE url = '$base/$name'")
    cmp -s "blobs/$path" "$work/www/$name" || fail "the blob of $name is not the image served"
done
say "ok: both jobs done, blobs stored byte for byte, $((SECONDS - started))s in all"
