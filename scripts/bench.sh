#!/usr/bin/env bash
# Benchmarks jobd against loopback test servers; see BENCHMARKS.md for what each scenario measures.
#
#   scripts/bench.sh [seed|small|pickup|memory|growth|validate|decode|politeness|ui|all]
#       (default all; BENCH_RUNS=N repeats the seed, decode and politeness runs, default 3;
#       BENCH_SMALL_RUNS the small scenario's rounds, default 5)
#
# politeness (issue 14, scripts/bench-politeness.sh) takes BENCH_POLITE_JOBS (default 5000),
# BENCH_BAD_JOBS (5000), BENCH_BAD_SECS (15), BENCH_PAUSE_JOBS (1000000) and BENCH_PAUSE_SECS (30);
# e.g. BENCH_RUNS=1 BENCH_POLITE_JOBS=500 BENCH_BAD_JOBS=500 BENCH_BAD_SECS=5
# BENCH_PAUSE_JOBS=10000 BENCH_PAUSE_SECS=5 scripts/bench.sh politeness for a quick check.
#
# ui (issue 15, scripts/bench-ui.sh) takes BENCH_UI_JOBS (default 1000000), BENCH_UI_POLL_SECS (30)
# and BENCH_UI_CLIENTS (50); it needs the PostgreSQL server binaries, as the tests do.
#
# Everything happens in a temporary directory on 127.0.0.1 and is removed on exit. Ratios are the
# headline: absolute times depend on the machine, which is printed with the results.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/target/release
RUNS=${BENCH_RUNS:-3}
WORK=$(mktemp -d)
PIDS=()     # background processes (test servers, idle jobd) to stop on exit
CLEANUP_DIRS=() # folders outside WORK to remove on exit (the politeness runs' tmpfs folder)
RESULTS=()  # "label|value|target" rows of the final table
SERVER_URL=""
SERVED=""   # the folder the test server serves, for verify()
BENCH_NAME=bench

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    # A jobd that was killed may still be writing to its folder for a moment.
    for pid in "${PIDS[@]}"; do wait "$pid" 2>/dev/null || true; done
    stop_postgres
    rm -rf "$WORK" "${CLEANUP_DIRS[@]}"
}
trap cleanup EXIT

# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"
# shellcheck source=scripts/bench-politeness.sh
source "$ROOT/scripts/bench-politeness.sh"
# shellcheck source=scripts/bench-ui.sh
source "$ROOT/scripts/bench-ui.sh"

# The 40-image seed set, generated once per run of this script.
seed_images() {
    [[ -d $WORK/seed ]] || "$BIN/jobd-testserver" --seed-dir "$WORK/seed" --count 40
}

# Real photos (Pillow's encoders) in the seed set's mix and sizes, generated once per run.
photos() {
    [[ -d $WORK/photos ]] || python3 "$ROOT/scripts/bench-photos.py" "$WORK/photos" 40 \
        || die "scripts/bench-photos.py needs Python's Pillow: pip install -r tests/corpus/requirements.txt"
}

# Writes a config in DIR for a fresh blob_dir and DATABASE (default a fresh jobd.db); loopback is exempt from the guard.
# JOBD_VALIDATE, when set, is the [fetch] validate level; JOBD_SPLIT_MIN_BYTES, when set, is
# [fetch] split_min_bytes (0 turns splitting off; the default splits bodies of 1 MiB and more).
new_instance() {
    mkdir -p "$1"
    printf '%s\n' "database = \"${2:-jobd.db}\"" 'blob_dir = "blobs"' '[fetch]' 'allow_ips = ["127.0.0.1/32"]' \
        "validate = \"${JOBD_VALIDATE:-structure}\"" \
        ${JOBD_SPLIT_MIN_BYTES:+"split_min_bytes = $JOBD_SPLIT_MIN_BYTES"} >"$1/daemon.toml"
}

# Every job of DIR's database done, COUNT of them (default 40, the seed set), and every blob's
# bytes hash to the recorded sha256, which is the served file's (the file in $SERVED named by the
# URL's last segment, query string aside). Hashes are taken in bulk: one sha256sum per folder.
verify() {
    local dir=$1 want=${2:-40} n
    n=$(sqlite3 "$dir/jobd.db" "SELECT count(*) FROM jobs WHERE state = 'done'")
    [[ $n == "$want" ]] || die "$dir: only $n of $want jobs done; see $dir/jobd.log"
    [[ $(sqlite3 "$dir/jobd.db" "SELECT count(*) FROM jobs") == "$want" ]] || die "$dir: holds other jobs than the $want expected"
    sqlite3 -separator ' ' "$dir/jobd.db" "SELECT sha256, blob_path, url FROM jobs" >"$dir/verify.rows"
    (cd "$SERVED" && find . -maxdepth 1 -type f -printf '%f\0' | xargs -0 sha256sum) >"$dir/verify.served"
    (cd "$dir/blobs" && cut -d' ' -f2 "$dir/verify.rows" | xargs sha256sum) >"$dir/verify.blobs"
    awk -v served="$dir/verify.served" -v blobs="$dir/verify.blobs" '
        FILENAME == served { s[$2] = $1; next }
        FILENAME == blobs { b[$2] = $1; next }
        {
            file = $3; sub(/[?].*/, "", file); sub(/.*[/]/, "", file)
            if (b[$2] != $1) { print $2 ": bytes do not match sha256 " $1; exit 1 }
            if (s[file] != $1) { print $3 ": stored sha256 " $1 " is not the served file'"'"'s"; exit 1 }
        }' "$dir/verify.served" "$dir/verify.blobs" "$dir/verify.rows" >&2 || die "$dir: a stored blob is wrong"
}

# Shows the lines of a jobd log other than the routine ones at the default level.
log_oddities() {
    if grep -v -E 'INFO  (jobd [0-9.]+ on|started [0-9]+ workers|job=[0-9]+ host=[^ ]+ done in|queue drained|stop)' "$1" >&2; then
        note "(above: unexpected lines in $1)"
    fi
}

# Times `jobd --drain` with N workers on a fresh database whose jobs were imported beforehand.
time_jobd() {
    local dir=$1 workers=$2 start
    new_instance "$dir"
    "$BIN/jobctl" --config "$dir/daemon.toml" import "$WORK/urls.txt" >/dev/null
    start=$EPOCHREALTIME
    "$BIN/jobd" --config "$dir/daemon.toml" --workers "$workers" --drain 2>"$dir/jobd.log" \
        || die "jobd exited non-zero; see $dir/jobd.log"
    since "$start"
    verify "$dir"
    log_oddities "$dir/jobd.log"
}

# Seed: 40 images over emulated WAN (150 ms to first byte, 20 MB/s per connection), jobd with 10
# workers against the baseline of `xargs -P10 curl`, which has no queue, database or validation.
bench_seed() {
    local f r curl_s jobd_s one_s bound fifo curl_med jobd_med parts
    seed_images
    SERVED=$WORK/seed
    start_server "$WORK/seed" 150 20000000
    for f in "$WORK"/seed/*; do echo "$SERVER_URL/${f##*/}"; done >"$WORK/urls.txt"
    : >"$WORK/curl.times"
    : >"$WORK/jobd10.times"
    # Alternate which goes first, so that drift in machine load hits both alike.
    for ((r = 1; r <= RUNS; r++)); do
        if ((r % 2)); then
            curl_s=$(seed_curl "$r")
            jobd_s=$(time_jobd "$WORK/jobd10-$r" 10)
        else
            jobd_s=$(time_jobd "$WORK/jobd10-$r" 10)
            curl_s=$(seed_curl "$r")
        fi
        note "seed run $r/$RUNS: curl ${curl_s} s, jobd-10 ${jobd_s} s"
        echo "$curl_s" >>"$WORK/curl.times"
        echo "$jobd_s" >>"$WORK/jobd10.times"
    done
    curl_med=$(median <"$WORK/curl.times")
    jobd_med=$(median <"$WORK/jobd10.times")
    # One worker runs the jobs back to back, so its per-job times say what 10 workers would take
    # if they were perfectly packed: sum / 10. Slower than that is scheduling overhead.
    one_s=$(time_jobd "$WORK/jobd1" 1)
    bound=$(sqlite3 "$WORK/jobd1/jobd.db" "SELECT printf('%.3f', sum(total_ms) / 10000.0) FROM attempts")
    # sum / 10 is out of reach when jobs differ in size and start in queue order; this replays the
    # same per-job times through 10 ideal workers taking jobs in id order (what curl and jobd do).
    fifo=$(sqlite3 "$WORK/jobd1/jobd.db" "SELECT total_ms FROM attempts ORDER BY job_id" | awk '
        { b = 1; for (i = 2; i <= 10; i++) if (s[i] < s[b]) b = i; s[b] += $1 }
        END { for (i = 1; i <= 10; i++) if (s[i] > m) m = s[i]; printf "%.3f", m / 1000 }')
    note "seed jobd-1: ${one_s} s, packing bound ${bound} s, in-order bound ${fifo} s"
    result "seed: xargs -P10 curl (median of $RUNS)" "$curl_med s"
    result "seed: jobd 10 workers (median of $RUNS)" "$jobd_med s"
    result "seed: ratio jobd10 / curl" "$(div "$jobd_med" "$curl_med")" "<= 1.0"
    result "seed: jobd 1 worker" "$one_s s"
    result "seed: packing bound (sum total_ms / 10)" "$bound s"
    result "seed: ratio jobd10 / bound" "$(div "$jobd_med" "$bound")"
    result "seed: in-order bound (10 ideal FIFO workers)" "$fifo s"
    result "seed: ratio jobd10 / in-order bound" "$(div "$jobd_med" "$fifo")"
    # Where the time goes, per attempt of the last 10-worker run, for comparing with curl.
    result "seed: jobd10 attempt ttfb/download/total avg" "$(sqlite3 "$WORK/jobd10-$RUNS/jobd.db" \
        "SELECT printf('%.0f / %.0f / %.0f ms', avg(ttfb_ms), avg(download_ms), avg(total_ms)) FROM attempts")"
    # Range requests the server answered with 206 over all the 10-worker runs (split parts).
    parts=$(curl -sS "$SERVER_URL/_stats" | python3 -c 'import json, sys; print(json.load(sys.stdin)["statuses"].get("206", 0))')
    result "seed: split parts (206s) over the jobd10 runs" "$parts (split_min_bytes ${JOBD_SPLIT_MIN_BYTES:-1048576})"
}

# One `xargs -P10 curl` run of the seed scenario into a fresh folder; prints its seconds.
seed_curl() {
    local start
    mkdir "$WORK/curl-$1"
    start=$EPOCHREALTIME
    # shellcheck disable=SC2016 # $1 and $2 belong to the inner sh
    xargs -P10 -n1 sh -c 'curl -sS --fail -o "$1/${2##*/}" "$2"' sh "$WORK/curl-$1" <"$WORK/urls.txt"
    since "$start"
}

# CPU ticks (utime + stime) of PID so far; fields 14 and 15 of /proc/PID/stat, counted after the
# parenthesised command name, which may itself contain spaces.
cpu_ticks() {
    local stat f
    stat=$(<"/proc/$1/stat")
    read -r -a f <<<"${stat##*) }"
    echo $((f[11] + f[12]))
}

# Pickup (issue 16), as a user's program sees it: scripts/bench-pickup.py, with Python's sqlite3
# module and with psycopg on a throwaway PostgreSQL server, measures the idle CPU of a started
# jobd of 10 workers over BENCH_PICKUP_IDLE_SECS (default 30), then adds BENCH_PICKUP_ROWS (50)
# jobs one at a time for a small PNG served at once, polling each row every millisecond until it
# is done. BENCH_RUNS rounds, the backends taking turns going first, each on a fresh database.
# Each round runs twice: with the daemon's folder (the SQLite database and the blob_dir) on disk,
# what a user gets, and on tmpfs, where no fsync waits for the disk (the client's commit nor the
# blob's), which shows the queue's own cost; the idle CPU is measured on disk only.
bench_pickup() {
    local rows=${BENCH_PICKUP_ROWS:-50} idle=${BENCH_PICKUP_IDLE_SECS:-30} png r backend place out key order
    python3 -c 'import psycopg' 2>/dev/null \
        || python3 -m pip install --quiet --disable-pip-version-check -r "$ROOT/scripts/bench-requirements.txt" \
        || die "the pickup client needs psycopg: python3 -m pip install -r scripts/bench-requirements.txt"
    [[ $(stat -f -c %T /dev/shm 2>/dev/null) == tmpfs ]] || die "pickup needs /dev/shm as a tmpfs"
    mkdir -p "$WORK/one"
    "$BIN/jobd-testserver" --small-dir "$WORK/one" --count 1
    png=$(ls "$WORK/one")
    start_server "$WORK/one" 0 0
    start_postgres
    for ((r = 1; r <= RUNS; r++)); do
        order="sqlite postgres"
        ((r % 2)) || order="postgres sqlite"
        for backend in $order; do
            for place in disk tmpfs; do
                pickup_run "$backend" "$place" "$r" "$SERVER_URL/$png" "$rows" \
                    "$([[ $place == disk ]] && echo "$idle" || echo 0)"
                out=$(<"$WORK/pickup-$backend-$place-$r.out")
                note "pickup run $r/$RUNS, $backend on $place: $(tr '\n' ' ' <<<"$out")"
                for key in idle_cpu_percent latency_ms_median latency_ms_p95 latency_ms_max \
                    before_claim_ms_median attempt_ms_median after_ms_median; do
                    awk -v k="$key" '$1 == k { print $2 }' <<<"$out" >>"$WORK/pickup-$backend-$place.$key"
                done
            done
        done
    done
    for backend in sqlite postgres; do
        result "pickup ($backend): idle CPU, 10 workers, $idle s (runs' range)" \
            "$(pickup_figure "$backend-disk" idle_cpu_percent %)" "<= 0.1 %"
        for place in disk tmpfs; do
            result "pickup ($backend, $place): commit to seen done, median of $rows" \
                "$(pickup_figure "$backend-$place" latency_ms_median ms)" "<= 5 ms"
            result "pickup ($backend, $place): p95" "$(pickup_figure "$backend-$place" latency_ms_p95 ms)"
            result "pickup ($backend, $place): max" "$(pickup_figure "$backend-$place" latency_ms_max ms)"
            # Where the time goes, from the row's own times: waiting for a claim, the attempt, and
            # recording it plus the poll that sees it.
            result "pickup ($backend, $place): before claim / attempt / after" \
                "$(for key in before_claim attempt after; do
                    median <"$WORK/pickup-$backend-$place.${key}_ms_median"
                done | paste -sd/) ms"
        done
    done
}

# The median over the pickup runs of figure KEY of RUN (backend-place), with UNIT, and its range
# across runs.
pickup_figure() {
    local file=$WORK/pickup-$1.$2
    echo "$(median <"$file") $3 ($(sort -g "$file" | head -1) to $(sort -g "$file" | tail -1))"
}

# One pickup round R on BACKEND (sqlite or postgres) with the daemon's folder on PLACE (disk or
# tmpfs), a fresh database and daemon: writes bench-pickup.py's "key value" lines to
# WORK/pickup-BACKEND-PLACE-R.out, and checks that jobd exits 0 on SIGTERM.
pickup_run() {
    local backend=$1 place=$2 r=$3 url=$4 rows=$5 idle=$6 dir database pid i rc=0
    dir=$WORK/pickup-$backend-$place-$r
    if [[ $place == tmpfs ]]; then
        dir=$(mktemp -d /dev/shm/jobd-pickup.XXXXXX)
        CLEANUP_DIRS+=("$dir")
    fi
    if [[ $backend == postgres ]]; then
        database=$(new_database "pickup_${place}_$r")
        new_instance "$dir" "$database"
    else
        new_instance "$dir"
        database=$dir/jobd.db
    fi
    "$BIN/jobd" --config "$dir/daemon.toml" --workers 10 2>"$dir/jobd.log" &
    pid=$!
    PIDS+=("$pid")
    for ((i = 0; i < 500; i++)); do
        grep -q 'started' "$dir/jobd.log" 2>/dev/null && break
        sleep 0.01
    done
    sleep 1 # let start-up work finish before measuring idle
    python3 "$ROOT/scripts/bench-pickup.py" "$database" "$url" "$pid" --rows "$rows" --idle-secs "$idle" \
        --rows-out "$dir/rows.txt" >"$WORK/pickup-$backend-$place-$r.out" \
        || die "the pickup client failed on $backend; see $dir/jobd.log"
    kill -TERM "$pid"
    wait "$pid" || rc=$?
    [[ $rc == 0 ]] || die "jobd on $backend exited $rc after SIGTERM; see $dir/jobd.log"
    log_oddities "$dir/jobd.log"
}

# Small images: 2,000 distinct 3 KB PNGs served at once, jobd with 16 workers against
# `xargs -P16 -n50 curl`, whose processes reuse their connections, and against the bare writer
# (`jobd-bench blobs`: the same files stored in jobd's layout with jobd's durability, without
# HTTP or SQL, the floor for the filesystem). On disk, what a user gets, and on tmpfs, where the
# filesystem costs little: the queue's own cost. Each run writes into new folders, and nothing is
# deleted until the end: ext4 makes file creation slow for a while after many deletions, which
# would punish whichever side ran next. BENCH_SMALL_RUNS rounds (default 5), the sides taking
# turns going first.
bench_small() {
    local runs=${BENCH_SMALL_RUNS:-5} place root r side
    "$BIN/jobd-testserver" --small-dir "$WORK/small2000" --count 2000
    start_server "$WORK/small2000" 0 0
    for f in "$WORK"/small2000/*; do echo "$SERVER_URL/${f##*/}"; done >"$WORK/small-urls.txt"
    for place in disk tmpfs; do
        root=$WORK/small-$place
        if [[ $place == tmpfs ]]; then
            [[ $(stat -f -c %T /dev/shm 2>/dev/null) == tmpfs ]] || { note "small: /dev/shm is no tmpfs; skipped"; continue; }
            root=$(mktemp -d /dev/shm/jobd-small.XXXXXX)
            CLEANUP_DIRS+=("$root")
        fi
        mkdir -p "$root"
        : >"$root/curl.rates"
        : >"$root/jobd.rates"
        : >"$root/bare.rates"
        for ((r = 1; r <= runs; r++)); do
            local order=(curl jobd bare) line=""
            # Rotate who goes first: r=1 curl, jobd, bare; r=2 jobd, bare, curl; ...
            for ((i = 0; i < 3; i++)); do
                side=${order[(i + r - 1) % 3]}
                "small_$side" "$root/$side-$r" >>"$root/$side.rates"
                line+=" $side $(tail -1 "$root/$side.rates")/s"
            done
            note "small on $place, round $r/$runs:$line"
        done
        local curl_rate jobd_rate bare_rate
        curl_rate=$(median <"$root/curl.rates")
        jobd_rate=$(median <"$root/jobd.rates")
        bare_rate=$(median <"$root/bare.rates")
        result "small on $place: xargs -P16 -n50 curl (median of $runs)" "$curl_rate files/s"
        result "small on $place: bare writer, 16 threads" "$bare_rate blobs/s"
        result "small on $place: jobd 16 workers" "$jobd_rate jobs/s"
        result "small on $place: ratio jobd / curl" "$(div "$jobd_rate" "$curl_rate")" ">= 2.0"
        result "small on $place: ratio jobd / bare writer" "$(div "$jobd_rate" "$bare_rate")" ">= 0.8"
    done
}

# One `xargs curl` run of the small scenario into the fresh folder DIR; prints files/s.
small_curl() {
    local start
    mkdir "$1"
    start=$EPOCHREALTIME
    xargs -P16 -n50 curl -sS --fail --remote-name-all --output-dir "$1" <"$WORK/small-urls.txt"
    awk -v s="$(since "$start")" 'BEGIN { printf "%.0f\n", 2000 / s }'
}

# One jobd run of the small scenario on a fresh database and blob_dir in DIR; prints jobs/s.
small_jobd() {
    local dir=$1 start n seconds
    new_instance "$dir"
    "$BIN/jobctl" --config "$dir/daemon.toml" import "$WORK/small-urls.txt" >/dev/null
    start=$EPOCHREALTIME
    "$BIN/jobd" --config "$dir/daemon.toml" --workers 16 --drain 2>"$dir/jobd.log" \
        || die "jobd exited non-zero; see $dir/jobd.log"
    seconds=$(since "$start")
    n=$(sqlite3 "$dir/jobd.db" "SELECT count(*) FROM jobs WHERE state = 'done'")
    [[ $n == 2000 ]] || die "$dir: only $n of 2000 jobs done"
    awk -v s="$seconds" 'BEGIN { printf "%.0f\n", 2000 / s }'
}

# One bare-writer run into a fresh blob_dir in DIR; prints blobs/s (timed by the writer).
small_bare() {
    mkdir "$1"
    "$BIN/jobd-bench" blobs --dir "$WORK/small2000" --blob-dir "$1/blobs" --threads 16 \
        | awk '$1 == "blobs_per_s" { print $2 }'
}

# Memory: peak RSS of jobd with 16 workers downloading 8 MB images as fast as loopback allows.
bench_memory() {
    local dir=$WORK/memory pid peak=0 hwm
    mkdir -p "$WORK/big"
    seed_images
    # The largest seed images, each served several times under distinct names.
    find "$WORK/seed" -size +6M -printf '%p\n' | head -4 | while read -r f; do
        for i in 1 2 3 4 5 6 7 8; do cp "$f" "$WORK/big/$i-${f##*/}"; done
    done
    start_server "$WORK/big" 0 0
    for f in "$WORK"/big/*; do echo "$SERVER_URL/${f##*/}"; done >"$WORK/big-urls.txt"
    new_instance "$dir"
    "$BIN/jobctl" --config "$dir/daemon.toml" import "$WORK/big-urls.txt" >/dev/null
    "$BIN/jobd" --config "$dir/daemon.toml" --workers 16 --drain 2>"$dir/jobd.log" &
    pid=$!
    # VmHWM only grows, so the last reading before exit is the peak.
    while hwm=$(awk '/^VmHWM/ { print $2 }' "/proc/$pid/status" 2>/dev/null); do
        [[ -n $hwm ]] && ((hwm > peak)) && peak=$hwm
        sleep 0.02
    done
    wait "$pid" || die "jobd exited non-zero; see $dir/jobd.log"
    result "memory: peak RSS, 16 workers, $(wc -l <"$WORK/big-urls.txt") x 6-8 MB" \
        "$(awk -v k="$peak" 'BEGIN { printf "%.1f MiB", k / 1024 }')" "<= 32 MiB"
}

# Growth: claims (each recorded, as a daemon does) per second with a million queued rows against
# 2,000, on a fresh database each.
bench_growth() {
    local small big
    small=$("$BIN/jobd-bench" claims --db "$WORK/growth-small.db" --queued 2000 --claims 2000 | awk '{ print $2 }')
    big=$("$BIN/jobd-bench" claims --db "$WORK/growth-big.db" --queued 1000000 --claims 2000 | awk '{ print $2 }')
    result "growth: claims/s with 2,000 queued" "$small"
    result "growth: claims/s with 1,000,000 queued" "$big"
    result "growth: ratio 1M / 2k" "$(div "$big" "$small")" ">= 0.95"
}

# Validate: the structural validator's speed on one core, next to a plain SHA-256 pass over the
# same real photos (the download loop does both), and full decoding's CPU per megapixel.
bench_validate() {
    local out
    photos
    out=$("$BIN/jobd-bench" validate --dir "$WORK/photos" --rounds 5)
    result "validate: structure, one core (MB/s)" "$(awk '/validate_mb_s/ { print $2 }' <<<"$out")" ">= 1000"
    result "validate: plain sha256, one core (MB/s)" "$(awk '/sha256_mb_s/ { print $2 }' <<<"$out")"
    out=$("$BIN/jobd-bench" decode --dir "$WORK/photos")
    result "validate: decode CPU per megapixel" "$(awk '/decode_ms_per_mpx/ { print $2 }' <<<"$out") ms"
}

# Decode: the seed scenario on real photos (emulated WAN as in seed), xargs -P10 curl against jobd
# with 10 workers at validate = "structure" and at "decode", alternating, medians of BENCH_RUNS.
bench_decode() {
    local f r start curl_s structure_s decode_s
    photos
    SERVED=$WORK/photos
    start_server "$WORK/photos" 150 20000000
    for f in "$WORK"/photos/*; do echo "$SERVER_URL/${f##*/}"; done >"$WORK/urls.txt"
    : >"$WORK/dcurl.times"
    : >"$WORK/dstructure.times"
    : >"$WORK/ddecode.times"
    for ((r = 1; r <= RUNS; r++)); do
        mkdir "$WORK/dcurl-$r"
        start=$EPOCHREALTIME
        # shellcheck disable=SC2016 # $1 and $2 belong to the inner sh
        xargs -P10 -n1 sh -c 'curl -sS --fail -o "$1/${2##*/}" "$2"' sh "$WORK/dcurl-$r" <"$WORK/urls.txt"
        curl_s=$(since "$start")
        structure_s=$(JOBD_VALIDATE=structure time_jobd "$WORK/dstructure-$r" 10)
        decode_s=$(JOBD_VALIDATE=decode time_jobd "$WORK/ddecode-$r" 10)
        [[ $(sqlite3 "$WORK/ddecode-$r/jobd.db" "SELECT count(*) FROM jobs WHERE validation = 'decode'") == 40 ]] \
            || die "decode run $r: not every job was decoded; see $WORK/ddecode-$r/jobd.db"
        note "decode run $r/$RUNS: curl ${curl_s} s, structure ${structure_s} s, decode ${decode_s} s"
        echo "$curl_s" >>"$WORK/dcurl.times"
        echo "$structure_s" >>"$WORK/dstructure.times"
        echo "$decode_s" >>"$WORK/ddecode.times"
    done
    curl_s=$(median <"$WORK/dcurl.times")
    structure_s=$(median <"$WORK/dstructure.times")
    decode_s=$(median <"$WORK/ddecode.times")
    result "decode: xargs -P10 curl, real photos (median of $RUNS)" "$curl_s s"
    result "decode: jobd 10, validate=structure" "$structure_s s"
    result "decode: jobd 10, validate=decode" "$decode_s s"
    result "decode: ratio structure / curl" "$(div "$structure_s" "$curl_s")" "<= 1.0"
    result "decode: ratio decode / curl" "$(div "$decode_s" "$curl_s")" "<= 1.15"
}

main() {
    local which=${1:-all}
    case $which in
        seed | small | pickup | memory | growth | validate | decode | politeness | ui | all) ;;
        *) echo "usage: scripts/bench.sh [seed|small|pickup|memory|growth|validate|decode|politeness|ui|all]" >&2; exit 2 ;;
    esac
    # --workspace: jobd and jobctl, and jobd-testserver and jobd-bench from testkit/.
    (cd "$ROOT" && cargo build --release --quiet --workspace)
    [[ $which == all || $which == seed ]] && bench_seed
    [[ $which == all || $which == small ]] && bench_small
    [[ $which == all || $which == pickup ]] && bench_pickup
    [[ $which == all || $which == memory ]] && bench_memory
    [[ $which == all || $which == growth ]] && bench_growth
    [[ $which == all || $which == validate ]] && bench_validate
    [[ $which == all || $which == decode ]] && bench_decode
    [[ $which == all || $which == politeness ]] && bench_politeness
    [[ $which == all || $which == ui ]] && bench_ui
    print_results 58
}

main "$@"
