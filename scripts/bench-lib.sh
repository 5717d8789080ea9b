# shellcheck shell=bash
# Shared by scripts/bench.sh and scripts/bench-postgres.sh; sourced, not run. The caller sets
# BENCH_NAME (for messages), ROOT, BIN and WORK, and the arrays PIDS (background processes to
# stop on exit) and RESULTS ("label|value|target" rows of the final table).

die() { echo "$BENCH_NAME: $*" >&2; exit 1; }
note() { echo "$BENCH_NAME: $*" >&2; }
result() { RESULTS+=("$1|$2|${3:-}"); }
# Seconds elapsed since a start taken from $EPOCHREALTIME.
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }
div() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }
# Median of the numbers on stdin.
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }
# Nearest-rank percentile P of the numbers on stdin.
percentile() { sort -g | awk -v p="$1" '{ v[NR] = $1 } END { i = int(NR * p / 100); if (i < NR * p / 100) i++; print v[i] }'; }

# Starts a test server for DIR with TTFB ms to the first byte and RATE bytes/s (0: unlimited),
# and any further arguments (faults: see jobd-testserver's usage); sets SERVER_URL and
# SERVER_PID. Its first stdout line names the port it bound.
start_server() {
    local dir=$1 ttfb=$2 rate=$3 out="$WORK/server-$RANDOM.out" i
    shift 3
    : >"$out" # before the server's own redirection makes it, which may come after the first look
    "$BIN/jobd-testserver" --serve "$dir" --addr 127.0.0.1:0 --ttfb-ms "$ttfb" --rate-bytes "$rate" "$@" >"$out" &
    SERVER_PID=$!
    PIDS+=("$SERVER_PID")
    for ((i = 0; i < 500; i++)); do
        SERVER_URL=$(sed -n 's/^listening on //p' "$out")
        [[ -n $SERVER_URL ]] && return 0
        sleep 0.01
    done
    die "test server for $dir did not start"
}

# The machine, the commit and the table of RESULTS, with the label column WIDTH wide.
print_results() {
    local width=$1 cpu dirty="" row label value target
    cpu=$(sed -n 's/^model name[[:space:]]*: //p' /proc/cpuinfo | head -1)
    [[ -z $(git -C "$ROOT" status --porcelain 2>/dev/null) ]] || dirty=" (with uncommitted changes)"
    echo
    echo "machine: $(nproc) CPUs, ${cpu:-unknown CPU}, $(uname -sr)"
    echo "commit:  $(git -C "$ROOT" rev-parse --short HEAD 2>/dev/null || echo unknown)$dirty"
    echo "date:    $(date -u '+%Y-%m-%d %H:%M UTC')"
    echo
    printf "%-${width}s %-24s %s\n" scenario result target
    for row in "${RESULTS[@]}"; do
        IFS='|' read -r label value target <<<"$row"
        printf "%-${width}s %-24s %s\n" "$label" "$value" "$target"
    done
}

# PostgreSQL, for scripts/bench-postgres.sh and the pickup scenario of scripts/bench.sh.
PG_DIR=""
PG_PORT=""

# Runs a PostgreSQL program as the postgres account when we are root (initdb refuses root).
as_pg() {
    if [[ $(id -u) == 0 ]]; then runuser -u postgres -- "$@"; else "$@"; fi
}

pg_bin() {
    local dir
    for dir in ${JOBD_PG_BIN:-} $(ls -d /usr/lib/postgresql/*/bin 2>/dev/null | sort -V -r); do
        [[ -x $dir/initdb ]] && { echo "$dir"; return; }
    done
    command -v pg_config >/dev/null && { pg_config --bindir; return; }
    die "no PostgreSQL server binaries: apt-get install postgresql, or set JOBD_PG_BIN"
}

# A throwaway PostgreSQL server in WORK/pg (initdb, 127.0.0.1 and a free port, durability settings
# at their defaults: fsync and synchronous_commit on); sets PG_DIR and PG_PORT. The caller's exit
# trap calls stop_postgres.
start_postgres() {
    local bin
    bin=$(pg_bin)
    PG_DIR=$WORK/pg
    mkdir -p "$PG_DIR"
    if [[ $(id -u) == 0 ]]; then
        chmod o+x "$WORK" # mktemp's folder is private; the postgres account must reach its own
        chown postgres "$PG_DIR"
    fi
    as_pg "$bin/initdb" -D "$PG_DIR/data" -A trust -U postgres -E UTF8 --locale=C >/dev/null
    PG_PORT=$(python3 -c 'import socket; s = socket.socket(); s.bind(("127.0.0.1", 0)); print(s.getsockname()[1])')
    as_pg "$bin/pg_ctl" -D "$PG_DIR/data" -l "$PG_DIR/log" -w \
        -o "-p $PG_PORT -k $PG_DIR -c listen_addresses=127.0.0.1 -c max_connections=200" start >/dev/null \
        || die "PostgreSQL did not start; see $PG_DIR/log"
    note "PostgreSQL $("$bin/postgres" --version | awk '{ print $3 }') on 127.0.0.1:$PG_PORT"
}

psql_do() { psql -q -X -v ON_ERROR_STOP=1 -h 127.0.0.1 -p "$PG_PORT" -U postgres "$@"; }

# A fresh database; prints its URL.
new_database() {
    psql_do -d postgres -c "CREATE DATABASE $1" >/dev/null
    echo "postgres://postgres@127.0.0.1:$PG_PORT/$1"
}

stop_postgres() {
    [[ -n $PG_DIR ]] && as_pg "$(pg_bin)/pg_ctl" -D "$PG_DIR/data" -m immediate stop >/dev/null 2>&1 || true
}

# Politeness b (issue 14; scripts/bench-politeness.sh on SQLite, scripts/bench-postgres.sh on
# PostgreSQL): the good host's rate alone and beside a host that answers 503 to everything, one
# line per run in WORK's polite-alone.rates and polite-mixed.rates. Notes run R's pair.
polite_b_note() {
    note "politeness b, run $1/$RUNS: good host alone $(tail -1 "$WORK/polite-alone.rates") jobs/s," \
        "with the bad host's jobs $(tail -1 "$WORK/polite-mixed.rates") jobs/s"
}

# Politeness b's results: the medians for M jobs each, their ratio, and MAX_FLIGHT, the most
# requests the bad host had in flight.
polite_b_results() {
    local m=$1 max_flight=$2 alone mixed
    alone=$(median <"$WORK/polite-alone.rates")
    mixed=$(median <"$WORK/polite-mixed.rates")
    result "politeness b: good host alone, $m jobs (median of $RUNS)" "$alone jobs/s"
    result "politeness b: good host, $m bad-host jobs interleaved" "$mixed jobs/s"
    result "politeness b: ratio with / without bad host" "$(div "$mixed" "$alone")" "~1.0 (full speed)"
    result "politeness b: bad host: most requests in flight" "$max_flight" "<= 1"
}
