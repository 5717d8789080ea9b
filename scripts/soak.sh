#!/usr/bin/env bash
# Soak test for issue 14: jobd on a fresh SQLite database while a client inserts rows at a steady
# rate, for a host that answers 503 (no Retry-After) to the first request for 1 URL in 100.
#
#   scripts/soak.sh      (SOAK_KEEP=1 keeps the work folder; SOAK_SECS=600 long, SOAK_RATE=150 rows/s, SOAK_FILES=2000 distinct small
#                         PNGs, SOAK_EVERY=100: one file in that many fails its URLs' first request,
#                         SOAK_SAMPLE_SECS=10 between samples, SOAK_MAX_BACKLOG=500)
#
# The client is Python's sqlite3 module: one INSERT per transaction, as a web app would, on a
# fixed schedule (row i at i / SOAK_RATE s); it catches up at once if it falls behind, and says
# by how much it did. URLs cycle through the served files with a query string ?n=i that makes
# each one new, so every row is a real download (the server routes by path and ignores the
# query, but fails the first request for each whole URL of every SOAK_EVERY-th file).
#
# Every SOAK_SAMPLE_SECS it prints one line: rows inserted, the backlog (queued + running: rows
# not yet finished, retries waiting out their backoff included), done, failed, and jobd's RSS
# (VmRSS). It passes when
#   - the backlog stays under SOAK_MAX_BACKLOG at every sample (jobd keeps up);
#   - memory is flat: the largest RSS sampled in the last minute of the load is at most 10 %
#     above the largest sampled in its first minute (with SOAK_SECS under 120, its halves);
#   - no job failed (a one-off 503 is retried).
# It exits 1 otherwise. Everything lives in a temporary folder (TMPDIR), removed on exit with the
# processes it started; traffic stays on 127.0.0.1.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/target/release
SECS=${SOAK_SECS:-600}
RATE=${SOAK_RATE:-150}
FILES=${SOAK_FILES:-2000}
EVERY=${SOAK_EVERY:-100}
SAMPLE=${SOAK_SAMPLE_SECS:-10}
MAX_BACKLOG=${SOAK_MAX_BACKLOG:-500}
WORK=$(mktemp -d)
PIDS=() # background processes to stop on exit

die() { echo "soak: $*" >&2; exit 1; }
note() { echo "soak: $*" >&2; }
# Whole seconds elapsed since a start taken from $EPOCHREALTIME.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.0f", b - a }'; }

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    if [[ -n ${SOAK_KEEP:-} ]]; then
        note "kept $WORK (SOAK_KEEP)"
    else
        rm -rf "$WORK"
    fi
}
trap cleanup EXIT
trap 'exit 130' INT
trap 'exit 143' TERM

command -v sqlite3 >/dev/null || die "needs the sqlite3 shell (apt-get install sqlite3)"
command -v python3 >/dev/null || die "needs python3 (its sqlite3 module is the client)"
(cd "$ROOT" && cargo build --release --quiet --workspace)

"$BIN/jobd-testserver" --small-dir "$WORK/small" --count "$FILES"
find "$WORK/small" -maxdepth 1 -type f -printf '%f\n' | sort >"$WORK/names"
"$BIN/jobd-testserver" --serve "$WORK/small" --addr 127.0.0.1:0 --ttfb-ms 0 --rate-bytes 0 \
    --once-status 503 --every "$EVERY" >"$WORK/server.out" &
PIDS+=("$!")
for ((i = 0; i < 500; i++)); do
    url=$(sed -n 's/^listening on //p' "$WORK/server.out")
    [[ -n $url ]] && break
    sleep 0.01
done
[[ -n $url ]] || die "the test server did not start"

# jobd with its defaults, but for the paths and the loopback exemption.
mkdir "$WORK/jobd"
printf '%s\n' 'database = "jobd.db"' 'blob_dir = "blobs"' '[fetch]' 'allow_ips = ["127.0.0.1/32"]' \
    >"$WORK/jobd/daemon.toml"
db=$WORK/jobd/jobd.db
"$BIN/jobd" --config "$WORK/jobd/daemon.toml" 2>"$WORK/jobd/jobd.log" &
jobd=$!
PIDS+=("$jobd")
for ((i = 0; i < 500; i++)); do
    grep -q 'started' "$WORK/jobd/jobd.log" 2>/dev/null && break
    sleep 0.01
done
if ! grep -q 'started' "$WORK/jobd/jobd.log"; then
    cat "$WORK/jobd/jobd.log" >&2
    die "jobd did not start (its log is above)"
fi

python3 - "$db" "$url" "$WORK/names" "$RATE" "$SECS" >"$WORK/client.out" <<'EOF' &
import sqlite3, sys, time

db, base, names_file, rate, secs = sys.argv[1], sys.argv[2], sys.argv[3], float(sys.argv[4]), float(sys.argv[5])
names = open(names_file).read().split()
con = sqlite3.connect(db, timeout=30, isolation_level=None)  # autocommit: one transaction per row
total, late = int(rate * secs), 0.0
start = time.monotonic()
for n in range(total):
    due = start + n / rate
    now = time.monotonic()
    if due > now:
        time.sleep(due - now)
    else:
        late = max(late, now - due)
    con.execute("INSERT INTO jobs(url) VALUES (?)", (f"{base}/{names[n % len(names)]}?n={n}",))
print(f"inserted {total} rows in {time.monotonic() - start:.1f} s; at worst {late * 1000:.0f} ms behind schedule")
EOF
client=$!
PIDS+=("$client")
note "jobd $jobd, client inserting $RATE rows/s for $SECS s into $db; one sample every $SAMPLE s"

# Appends one sample to WORK/samples, "seconds inserted backlog done failed rss_kib phase", and
# prints it; PHASE is "load" while the client inserts, "after" once it has stopped.
sample() {
    local rss counts
    rss=$(awk '/^VmRSS/ { print $2 }' "/proc/$jobd/status" 2>/dev/null) || die "jobd is gone; its log: $(tail -5 "$WORK/jobd/jobd.log")"
    counts=$(sqlite3 -separator ' ' "$db" ".timeout 5000" "SELECT count(*), coalesce(sum(state IN ('queued', 'running')), 0),
        coalesce(sum(state = 'done'), 0), coalesce(sum(state = 'failed'), 0) FROM jobs")
    echo "$(since "$start") $counts $rss $1" >>"$WORK/samples"
    read -r t ins backlog ndone nfailed rss < <(tail -1 "$WORK/samples")
    printf '%8s %9s %8s %9s %7s %9.1f\n' "$t" "$ins" "$backlog" "$ndone" "$nfailed" "$(awk -v k="$rss" 'BEGIN { print k / 1024 }')"
}

start=$EPOCHREALTIME
: >"$WORK/samples"
printf '%8s %9s %8s %9s %7s %9s\n' seconds inserted backlog 'done' failed 'rss MiB'
next=$SAMPLE
while kill -0 "$client" 2>/dev/null; do
    sleep 1
    (($(since "$start") >= next)) || continue
    next=$((next + SAMPLE))
    sample load
done
wait "$client" || die "the client failed: $(cat "$WORK/client.out")"
note "client: $(cat "$WORK/client.out")"

# After the last insert: how long until the backlog is gone (up to a minute), for context.
drained=""
for ((i = 0; i < 600; i++)); do
    [[ $(sqlite3 "$db" ".timeout 5000" "SELECT count(*) FROM jobs WHERE state IN ('queued', 'running')") == 0 ]] \
        && drained="$(awk -v i="$i" 'BEGIN { printf "%.1f", i / 10 }') s" && break
    sleep 0.1
done
sample after # its backlog and failures count too; its RSS is shown, not judged

# The windows for "flat": the first and the last minute, or the halves of a shorter run.
window=$((SECS >= 120 ? 60 : SECS / 2))
awk -v secs="$SECS" -v w="$window" -v max_backlog="$MAX_BACKLOG" -v drained="${drained:-not within 60 s}" '
    { n++; if ($3 > backlog) backlog = $3; failed = $5
      if ($7 == "after") { after = $6; next }
      if (!rss0) rss0 = $6; rss1 = $6
      if ($1 <= w && $6 > first) first = $6
      if ($1 > secs - w && $6 > last) last = $6 }
    END {
        if (n == 0) { print "soak: no samples"; exit 1 }
        ok_backlog = backlog < max_backlog; ok_rss = last <= 1.10 * first; ok_failed = failed == 0
        printf "max backlog:       %d (target: under %d at every sample): %s\n", backlog, max_backlog, ok_backlog ? "PASS" : "FAIL"
        printf "rss first sample:  %.1f MiB; last under load: %.1f MiB; after the load: %.1f MiB\n", rss0 / 1024, rss1 / 1024, after / 1024
        printf "rss max, first %d s: %.1f MiB; last %d s: %.1f MiB (target: at most +10 %%): %s\n", w, first / 1024, w, last / 1024, ok_rss ? "PASS" : "FAIL"
        printf "failed jobs:       %d (target: 0): %s\n", failed, ok_failed ? "PASS" : "FAIL"
        printf "backlog gone:      %s after the last insert\n", drained
        exit !(ok_backlog && ok_rss && ok_failed)
    }' "$WORK/samples" || { echo "soak: FAIL"; exit 1; }
echo "soak: PASS"
