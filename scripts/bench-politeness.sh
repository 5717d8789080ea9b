# shellcheck shell=bash
# The politeness scenario of scripts/bench.sh (issue 14); sourced by it, not run. It uses
# bench.sh's WORK, BIN, RUNS, PIDS and helpers (new_instance, verify, cpu_ticks, start_server).
#
#   a. retry:    N jobs for one host, clean against 1 % one-off 503s: rate and CPU per job.
#   b. bad host: a host that answers 503 to everything, its jobs interleaved with a good host's:
#                the good host's rate with and without them, the bad host's requests in flight
#                and the gaps between them.
#   c. pause:    a million jobs for a host that answers 429 with Retry-After: 60: jobd's CPU and
#                the rows it writes during 30 s of the pause.
#
# Every run is on tmpfs when /dev/shm takes one (see polite_fast_dir), with small PNGs served
# without delay, so the numbers are jobd's CPU and scheduling, not the disk's or the network's.

POLITE_JOBS=${BENCH_POLITE_JOBS:-5000} # a: jobs per run
BAD_JOBS=${BENCH_BAD_JOBS:-5000}       # b: good jobs, and as many bad ones
BAD_SECS=${BENCH_BAD_SECS:-15}         # b: jobd runs at least this long, to show the bad host's gaps
PAUSE_JOBS=${BENCH_PAUSE_JOBS:-1000000} # c: jobs queued for the 429 host
PAUSE_SECS=${BENCH_PAUSE_SECS:-30}     # c: the measured window
FAST=""                                # the folder the runs write to

# A folder for the runs: on /dev/shm when it is a writable tmpfs with 2 GB free (a million jobs
# and their indexes take a few hundred MB), else in WORK. Set in FAST; removed by bench.sh's
# cleanup.
polite_fast_dir() {
    [[ -n $FAST ]] && return 0
    if [[ $(stat -f -c %T /dev/shm 2>/dev/null) == tmpfs ]] \
        && (($(df --output=avail -k /dev/shm | tail -1) > 2 * 1024 * 1024)) \
        && FAST=$(mktemp -d /dev/shm/jobd-bench.XXXXXX 2>/dev/null); then
        CLEANUP_DIRS+=("$FAST")
        note "politeness: runs on tmpfs ($FAST)"
    else
        FAST=$WORK/fast
        mkdir -p "$FAST"
        note "politeness: /dev/shm is not a usable tmpfs; runs in $FAST"
    fi
}

# A field of a test server's /_stats JSON at URL: a Python expression over `s`, the parsed object.
server_stat() {
    curl -sS --fail "$1/_stats" | python3 -c 'import json, sys; s = json.load(sys.stdin); print(eval(sys.argv[1]))' "$2"
}

# The small PNGs, enough for the largest of the runs; SMALL_URLS lists their names.
polite_images() {
    local n=$((POLITE_JOBS > BAD_JOBS ? POLITE_JOBS : BAD_JOBS))
    [[ -d $WORK/polite-small ]] || "$BIN/jobd-testserver" --small-dir "$WORK/polite-small" --count "$n"
    find "$WORK/polite-small" -maxdepth 1 -type f -printf '%f\n' | sort >"$WORK/polite-names"
    # shellcheck disable=SC2034 # read by verify, in bench.sh
    SERVED=$WORK/polite-small
}

# Writes URLS_FILE: the first COUNT served files at BASE, with a query string ?r=ROUND that makes
# each round's URLs new to the one-off-503 server (which fails the first request for each URL).
polite_urls() {
    local base=$1 count=$2 round=$3
    head -n "$count" "$WORK/polite-names" | awk -v b="$base" -v r="$round" '{ print b "/" $0 "?r=" r }'
}

# a. One `jobd --drain` of the jobs in URLS on a fresh database in DIR; appends
# "seconds cpu_seconds seconds_to_99%" to OUT. The seconds are jobd's wall time from start to
# exit; the CPU its user + system time (bash's `time`, from the kernel's rusage of the child);
# the last, from the jobs table, the span from the first job's start to the finish of the job
# that made 99 % of them done: the rate without the tail of retries waiting out their backoff.
polite_drain() {
    local dir=$1 urls=$2 out=$3 n TIMEFORMAT='%3R %3U %3S' real user sys p99
    new_instance "$dir"
    n=$(wc -l <"$urls")
    "$BIN/jobctl" --config "$dir/daemon.toml" import "$urls" >/dev/null
    { time "$BIN/jobd" --config "$dir/daemon.toml" --drain 2>"$dir/jobd.log"; } 2>"$dir/time" \
        || die "jobd exited non-zero; see $dir/jobd.log"
    verify "$dir" "$n"
    read -r real user sys <"$dir/time"
    p99=$(sqlite3 "$dir/jobd.db" "SELECT printf('%.3f', ((SELECT finished_at FROM jobs ORDER BY finished_at
        LIMIT 1 OFFSET (SELECT (99 * count(*) + 99) / 100 - 1 FROM jobs)) - min(started_at)) / 1000.0) FROM jobs")
    echo "$real $(awk -v u="$user" -v s="$sys" 'BEGIN { printf "%.3f", u + s }') $p99" >>"$out"
}

# a. Clean against 1 % one-off 503s (no Retry-After), alternating which goes first.
polite_retry() {
    local clean=$1 once=$2 r n=$POLITE_JOBS f503 before kind order
    : >"$WORK/polite-clean.runs"
    : >"$WORK/polite-once.runs"
    : >"$WORK/polite-once.503s"
    for ((r = 1; r <= RUNS; r++)); do
        order=(clean once)
        ((r % 2)) || order=(once clean)
        for kind in "${order[@]}"; do
            if [[ $kind == clean ]]; then
                polite_urls "$clean" "$n" "$r" >"$WORK/polite-urls"
                polite_drain "$FAST/retry-clean-$r" "$WORK/polite-urls" "$WORK/polite-clean.runs"
            else
                polite_urls "$once" "$n" "$r" >"$WORK/polite-urls"
                before=$(server_stat "$once" 's["statuses"].get("503", 0)')
                polite_drain "$FAST/retry-once-$r" "$WORK/polite-urls" "$WORK/polite-once.runs"
                f503=$(($(server_stat "$once" 's["statuses"].get("503", 0)') - before))
                echo "$f503" >>"$WORK/polite-once.503s"
            fi
        done
        note "politeness a, run $r/$RUNS: clean $(tail -1 "$WORK/polite-clean.runs") s (wall, cpu, to 99 %);" \
            "1 % 503 $(tail -1 "$WORK/polite-once.runs") s, $(tail -1 "$WORK/polite-once.503s") 503s answered"
    done
    local clean_rate once_rate clean_99 once_99 clean_cpu once_cpu
    clean_rate=$(awk -v n="$n" '{ printf "%.0f\n", n / $1 }' "$WORK/polite-clean.runs" | median)
    once_rate=$(awk -v n="$n" '{ printf "%.0f\n", n / $1 }' "$WORK/polite-once.runs" | median)
    clean_99=$(awk -v n="$n" '{ printf "%.0f\n", int((99 * n + 99) / 100) / $3 }' "$WORK/polite-clean.runs" | median)
    once_99=$(awk -v n="$n" '{ printf "%.0f\n", int((99 * n + 99) / 100) / $3 }' "$WORK/polite-once.runs" | median)
    # CPU per job in ms, to 4 decimals (a few microseconds per job when clean).
    clean_cpu=$(awk -v n="$n" '{ printf "%.4f\n", 1000 * $2 / n }' "$WORK/polite-clean.runs" | median)
    once_cpu=$(awk -v n="$n" '{ printf "%.4f\n", 1000 * $2 / n }' "$WORK/polite-once.runs" | median)
    result "politeness a: clean, $n jobs (median of $RUNS)" "$clean_rate jobs/s"
    result "politeness a: 1 % one-off 503 (no Retry-After)" "$once_rate jobs/s"
    result "politeness a: 503s answered per run (median)" "$(median <"$WORK/polite-once.503s")"
    result "politeness a: ratio rate 503 / clean" "$(div "$once_rate" "$clean_rate")" ">= 0.7"
    # The wall time includes the last retries' backoff (at least half of base_delay_ms after
    # their 503), which a short clean run cannot absorb; to 99 % done leaves that tail out.
    result "politeness a: to 99 % done, clean" "$clean_99 jobs/s"
    result "politeness a: to 99 % done, 1 % 503" "$once_99 jobs/s"
    result "politeness a: ratio to 99 % done, 503 / clean" "$(div "$once_99" "$clean_99")" ">= 0.7 (no retry tail)"
    result "politeness a: CPU per job, clean" "$clean_cpu ms"
    result "politeness a: CPU per job, 1 % 503" "$once_cpu ms"
    result "politeness a: ratio CPU per job 503 / clean" "$(div "$once_cpu" "$clean_cpu")" "<= 1.3"
}

# b. Runs jobd (not --drain: the bad jobs would keep it for minutes) on the jobs in URLS until
# the COUNT jobs whose URL starts with GOOD are done and at least MIN_SECS have passed, then stops
# it with SIGTERM. Appends the good jobs' rate to OUT: COUNT over the span from the first one's
# start to the last one's finish (jobs.started_at, jobs.finished_at), which polling cannot skew.
polite_until_good() {
    local dir=$1 urls=$2 good=$3 count=$4 min_secs=$5 out=$6 pid start done_n=0 rc span
    new_instance "$dir"
    "$BIN/jobctl" --config "$dir/daemon.toml" import "$urls" >/dev/null
    start=$EPOCHREALTIME
    "$BIN/jobd" --config "$dir/daemon.toml" 2>"$dir/jobd.log" &
    pid=$!
    PIDS+=("$pid")
    while :; do
        sleep 0.2
        done_n=$(sqlite3 "$dir/jobd.db" ".timeout 5000" \
            "SELECT count(*) FROM jobs WHERE state = 'done' AND substr(url, 1, length('$good')) = '$good'")
        [[ $done_n == "$count" ]] && (($(since "$start" | cut -d. -f1) >= min_secs)) && break
        (($(since "$start" | cut -d. -f1) < 600)) || die "$dir: $done_n of $count good jobs done after 600 s"
        kill -0 "$pid" 2>/dev/null || die "jobd exited early; see $dir/jobd.log"
    done
    kill -TERM "$pid"
    rc=0
    wait "$pid" || rc=$?
    [[ $rc == 0 ]] || die "jobd exited $rc after SIGTERM; see $dir/jobd.log"
    span=$(sqlite3 "$dir/jobd.db" "SELECT max(finished_at) - min(started_at) FROM jobs
        WHERE state = 'done' AND substr(url, 1, length('$good')) = '$good'")
    awk -v n="$count" -v ms="$span" 'BEGIN { printf "%.0f\n", 1000 * n / ms }' >>"$out"
}

# b. Prints the gaps (ms) between the requests a server at URL saw, one per line.
server_gaps() {
    curl -sS --fail "$1/_stats" | python3 -c '
import json, sys
t = json.load(sys.stdin)["arrivals_ms"]
for a, b in zip(t, t[1:]):
    print(f"{b - a:.0f}")'
}

# b. The good host alone, then with as many jobs for a host that answers 503 to everything
# interleaved (good, bad, good, bad, ...), alternating which goes first. Each mixed run gets a
# new bad server, so its counts are that run's.
polite_bad_host() {
    local good=$1 r m=$BAD_JOBS bad kind order max_flight=0 flight gaps
    : >"$WORK/polite-alone.rates"
    : >"$WORK/polite-mixed.rates"
    for ((r = 1; r <= RUNS; r++)); do
        order=(alone mixed)
        ((r % 2)) || order=(mixed alone)
        for kind in "${order[@]}"; do
            polite_urls "$good" "$m" "$r" >"$WORK/polite-good-urls"
            if [[ $kind == alone ]]; then
                polite_until_good "$FAST/bad-alone-$r" "$WORK/polite-good-urls" "$good" "$m" 0 \
                    "$WORK/polite-alone.rates"
            else
                start_server "$WORK/polite-small" 0 0 --status 503
                bad=$SERVER_URL
                polite_urls "$bad" "$m" "$r" | paste -d '\n' "$WORK/polite-good-urls" - >"$WORK/polite-mixed-urls"
                polite_until_good "$FAST/bad-mixed-$r" "$WORK/polite-mixed-urls" "$good" "$m" "$BAD_SECS" \
                    "$WORK/polite-mixed.rates"
                flight=$(server_stat "$bad" 's["max_in_flight"]')
                ((flight > max_flight)) && max_flight=$flight
                server_gaps "$bad" >"$WORK/polite-gaps"
                note "politeness b, run $r: bad host: $(server_stat "$bad" 's["requests"]') requests," \
                    "at most $flight in flight; gaps (ms): $(head -20 "$WORK/polite-gaps" | paste -sd ' ')"
                kill "$SERVER_PID"
            fi
        done
        polite_b_note "$r"
    done
    polite_b_results "$m" "$max_flight"
    # The last mixed run's gaps. "Growing": no gap is shorter than half the longest before it
    # (equal-jitter backoff takes away at most half of each wait, which doubles).
    gaps=$(awk 'NR > 1 && $1 < m / 2 { bad++ } $1 > m { m = $1 } END { print (NR < 2) ? "too few requests" : (bad ? "no (" bad " of " NR " gaps shrink)" : "yes") }' \
        "$WORK/polite-gaps")
    result "politeness b: bad host: requests in the last run" "$(($(wc -l <"$WORK/polite-gaps") + 1))"
    result "politeness b: bad host: first gaps (ms)" "$(head -8 "$WORK/polite-gaps" | paste -sd ' ')"
    result "politeness b: bad host: longest gap" "$(sort -g "$WORK/polite-gaps" | tail -1) ms"
    result "politeness b: bad host: gaps grow" "$gaps" "yes"
}

# c. Copies the columns of jobs and attempts that jobd writes into the database SNAP, in one
# read transaction, so two copies can be compared row by row.
polite_snapshot() {
    sqlite3 "$1" ".timeout 10000" "ATTACH '$2' AS s;
        CREATE TABLE s.jobs (id INTEGER PRIMARY KEY, state, run_at, attempts, started_at,
                             finished_at, error, lease_until);
        CREATE TABLE s.attempts (id INTEGER PRIMARY KEY, job_id, attempt, outcome, started_at,
                                 finished_at, error);
        BEGIN;
        INSERT INTO s.jobs SELECT id, state, run_at, attempts, started_at, finished_at, error,
                                  lease_until FROM main.jobs;
        INSERT INTO s.attempts SELECT id, job_id, attempt, outcome, started_at, finished_at,
                                      error FROM main.attempts;
        COMMIT;"
}

# c. A million jobs for a host that answers 429 with Retry-After: 60. Once jobd has had its
# first 429, it should rest: its CPU and the rows it writes over PAUSE_SECS.
#
# Rows written: the rows of `jobs` whose state, run_at, attempts, started_at, finished_at, error
# or lease_until differ between a copy taken before the window and one taken after it, plus the
# rows of `attempts` added, deleted or changed between the two. A row written several times
# counts once, and an attempt row added and deleted within the window (a claim given back)
# counts nothing but its job's row: a lower bound of the row writes, exact when each row is
# written at most once.
polite_pause() {
    local dir=$FAST/pause base pid start first c0 c1 t0 secs r0 r1 cpu jobs_rows attempt_rows i
    start_server "$WORK/polite-small" 0 0 --status 429 --retry-after 60
    base=$SERVER_URL
    # The import benchmark's generator (scripts/bench-import.sh), on the 429 server.
    awk -v n="$PAUSE_JOBS" -v b="$base" 'BEGIN { for (i = 0; i < n; i++)
        printf "%s/photos/%07d/image-%d.jpg\n", b, i, (i * 7919) % 1000003 }' >"$WORK/pause-urls.txt"
    new_instance "$dir"
    start=$EPOCHREALTIME
    "$BIN/jobctl" --config "$dir/daemon.toml" import "$WORK/pause-urls.txt" >/dev/null
    note "politeness c: imported $PAUSE_JOBS jobs in $(since "$start") s"
    "$BIN/jobd" --config "$dir/daemon.toml" 2>"$dir/jobd.log" &
    pid=$!
    PIDS+=("$pid")
    start=$EPOCHREALTIME
    for ((i = 0; ; i++)); do
        (($(server_stat "$base" 's["statuses"].get("429", 0)') > 0)) && break
        ((i < 600)) || die "no request reached the 429 server within 60 s; see $dir/jobd.log"
        sleep 0.1
    done
    first=$EPOCHREALTIME
    note "politeness c: first 429 answered $(since "$start") s after jobd started"
    polite_snapshot "$dir/jobd.db" "$dir/before.db"
    r0=$(server_stat "$base" 's["requests"]')
    t0=$EPOCHREALTIME
    c0=$(cpu_ticks "$pid")
    sleep "$PAUSE_SECS"
    c1=$(cpu_ticks "$pid")
    secs=$(since "$t0")
    r1=$(server_stat "$base" 's["requests"]')
    polite_snapshot "$dir/jobd.db" "$dir/after.db"
    (($(since "$first" | cut -d. -f1) < 60)) \
        || note "politeness c: WARNING: the window ended $(since "$first") s after the first 429, past the 60 s pause"
    kill -TERM "$pid"
    wait "$pid" || die "jobd exited non-zero after SIGTERM; see $dir/jobd.log"
    cpu=$(awk -v t="$((c1 - c0))" -v hz="$(getconf CLK_TCK)" -v s="$secs" 'BEGIN { printf "%.2f", 100 * t / hz / s }')
    jobs_rows=$(sqlite3 "$dir/before.db" "ATTACH '$dir/after.db' AS b;
        SELECT count(*) FROM b.jobs AS y LEFT JOIN main.jobs AS x ON x.id = y.id
        WHERE x.id IS NULL OR x.state IS NOT y.state OR x.run_at IS NOT y.run_at
           OR x.attempts IS NOT y.attempts OR x.started_at IS NOT y.started_at
           OR x.finished_at IS NOT y.finished_at OR x.error IS NOT y.error
           OR x.lease_until IS NOT y.lease_until")
    attempt_rows=$(sqlite3 "$dir/before.db" "ATTACH '$dir/after.db' AS b;
        SELECT (SELECT count(*) FROM b.attempts AS y LEFT JOIN main.attempts AS x ON x.id = y.id
                WHERE x.id IS NULL OR x.job_id IS NOT y.job_id OR x.attempt IS NOT y.attempt
                   OR x.outcome IS NOT y.outcome OR x.started_at IS NOT y.started_at
                   OR x.finished_at IS NOT y.finished_at OR x.error IS NOT y.error)
             + (SELECT count(*) FROM main.attempts WHERE id NOT IN (SELECT id FROM b.attempts))")
    note "politeness c: ${cpu}% of a core over ${secs} s; rows changed: $jobs_rows jobs, $attempt_rows attempts;" \
        "$((r1 - r0)) requests to the host"
    result "politeness c: jobs queued for a 429 (Retry-After 60) host" "$PAUSE_JOBS"
    result "politeness c: jobd CPU during the pause, ${PAUSE_SECS} s" "$cpu % of a core" "<= 1 %"
    result "politeness c: rows written during the pause" "$((jobs_rows + attempt_rows))" "<= 100"
    result "politeness c: of which jobs; attempts" "$jobs_rows; $attempt_rows"
    result "politeness c: requests to the host during the pause" "$((r1 - r0))"
}

bench_politeness() {
    local clean once
    polite_fast_dir
    polite_images
    start_server "$WORK/polite-small" 0 0
    clean=$SERVER_URL
    start_server "$WORK/polite-small" 0 0 --once-status 503 --every 100
    once=$SERVER_URL
    # BENCH_POLITE_PARTS picks the parts to run (default all three).
    local parts=" ${BENCH_POLITE_PARTS:-retry bad pause} "
    [[ $parts == *" retry "* ]] && polite_retry "$clean" "$once"
    [[ $parts == *" bad "* ]] && polite_bad_host "$clean"
    [[ $parts == *" pause "* ]] && polite_pause
    return 0
}
