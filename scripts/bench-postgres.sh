#!/usr/bin/env bash
# Benchmarks jobd on PostgreSQL against jobd on SQLite, in the same run, on this machine; see
# BENCHMARKS.md for what each scenario measures.
#
#   scripts/bench-postgres.sh [import|growth|fleet|politeness|all]      (default all)
#       (BENCH_RUNS=N repeats the import and politeness runs, default 3; politeness takes
#       BENCH_BAD_JOBS, default 5000, and BENCH_BAD_SECS, default 15, as scripts/bench.sh does)
#
# Pickup on both backends is scripts/bench.sh's: `scripts/bench.sh pickup`.
#
# It starts a throwaway PostgreSQL server of its own (initdb in a temporary folder, 127.0.0.1 and
# a free port, durability settings at their defaults: fsync and synchronous_commit on), and a
# loopback image server. Everything is removed on exit. Needs the PostgreSQL server binaries
# (Debian's `postgresql` package) and the sqlite3 and psql shells.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
BIN=$ROOT/target/release
RUNS=${BENCH_RUNS:-3}
WORK=$(mktemp -d)
PIDS=()
RESULTS=()
SERVER_URL=""
BENCH_NAME=bench-postgres

# shellcheck source=scripts/bench-lib.sh
source "$ROOT/scripts/bench-lib.sh"

cleanup() {
    local pid
    for pid in "${PIDS[@]}"; do kill "$pid" 2>/dev/null || true; done
    stop_postgres
    rm -rf "$WORK"
}
trap cleanup EXIT

# A config in DIR for DATABASE (a path or a URL); loopback is exempt from the guard.
new_instance() {
    mkdir -p "$1"
    printf '%s\n' "database = \"$2\"" 'blob_dir = "blobs"' '[fetch]' 'allow_ips = ["127.0.0.1/32"]' \
        >"$1/daemon.toml"
}

# Counts rows with SQL on either backend.
query() {
    local database=$1 sql=$2
    if [[ $database == postgres://* ]]; then
        psql -X -A -t -d "$database" -c "$sql"
    else
        sqlite3 -cmd ".timeout 5000" "$database" "$sql"
    fi
}

# Import: a million URLs with `jobctl import`, into SQLite (multi-row INSERTs) and into
# PostgreSQL (two COPY streams), fresh each, taking turns, BENCH_RUNS times; the last commit
# durable on both. Prints the medians.
bench_import() {
    local r start url
    awk 'BEGIN { for (i = 0; i < 1000000; i++) printf "https://img.example.org/%d/%08d.jpg\n", i % 97, i }' \
        >"$WORK/million.txt"
    : >"$WORK/import-sqlite.s"
    : >"$WORK/import-pg.s"
    for ((r = 1; r <= RUNS; r++)); do
        new_instance "$WORK/import-sqlite-$r" "jobd.db"
        "$BIN/jobctl" --config "$WORK/import-sqlite-$r/daemon.toml" stats >/dev/null # the schema
        start=$EPOCHREALTIME
        "$BIN/jobctl" --config "$WORK/import-sqlite-$r/daemon.toml" import "$WORK/million.txt" >/dev/null
        since "$start" >>"$WORK/import-sqlite.s"
        echo >>"$WORK/import-sqlite.s"
        url=$(new_database "import_$r")
        new_instance "$WORK/import-pg-$r" "$url"
        "$BIN/jobctl" --config "$WORK/import-pg-$r/daemon.toml" stats >/dev/null
        psql_do -d postgres -c CHECKPOINT >/dev/null
        start=$EPOCHREALTIME
        "$BIN/jobctl" --config "$WORK/import-pg-$r/daemon.toml" import "$WORK/million.txt" >/dev/null
        since "$start" >>"$WORK/import-pg.s"
        echo >>"$WORK/import-pg.s"
        [[ $(query "$url" "SELECT count(*) FROM jobs") == 1000000 ]] || die "PostgreSQL import lost rows"
        note "import run $r/$RUNS: SQLite $(tail -1 "$WORK/import-sqlite.s") s, PostgreSQL $(tail -1 "$WORK/import-pg.s") s"
        rm -rf "$WORK/import-sqlite-$r"
        psql_do -d postgres -c "DROP DATABASE import_$r" >/dev/null
    done
    local sqlite_s pg_s
    sqlite_s=$(median <"$WORK/import-sqlite.s")
    pg_s=$(median <"$WORK/import-pg.s")
    result "import 1M: jobctl on SQLite (median of $RUNS)" "$sqlite_s s"
    result "import 1M: jobctl on PostgreSQL (median of $RUNS)" "$pg_s s"
    result "import: ratio PostgreSQL / SQLite" "$(div "$pg_s" "$sqlite_s")" "<= 1.0"
}

# Growth: claims (each recorded) per second with a million queued rows against 2,000.
bench_growth() {
    local small big
    small=$("$BIN/jobd-bench" claims --db "$(new_database growth_small)" --queued 2000 --claims 2000 | awk '{ print $2 }')
    big=$("$BIN/jobd-bench" claims --db "$(new_database growth_big)" --queued 1000000 --claims 2000 | awk '{ print $2 }')
    result "growth on PostgreSQL: claims/s, 2,000 queued" "$small"
    result "growth on PostgreSQL: claims/s, 1,000,000 queued" "$big"
    result "growth on PostgreSQL: ratio 1M / 2k" "$(div "$big" "$small")" ">= 0.95"
}

# Fleet: 2,000 small PNGs (no latency) drained by one daemon of 16 workers on SQLite, one on
# PostgreSQL, and two of 8 on PostgreSQL sharing the queue and the blob_dir. On a machine of two
# cores this shows the cost of the backend and of sharing, not the gain of more machines.
fleet_run() {
    local name=$1 database=$2 daemons=$3 workers=$4 dir=$WORK/fleet-$1 start i pids=() n
    new_instance "$dir" "$database"
    "$BIN/jobctl" --config "$dir/daemon.toml" import "$WORK/small-urls.txt" >/dev/null
    start=$EPOCHREALTIME
    for ((i = 0; i < daemons; i++)); do
        "$BIN/jobd" --config "$dir/daemon.toml" --workers "$workers" --drain 2>"$dir/jobd-$i.log" &
        pids+=("$!")
    done
    for i in "${pids[@]}"; do wait "$i" || die "a jobd of $name failed; see $dir"; done
    n=$(query "$([[ $database == postgres://* ]] && echo "$database" || echo "$dir/$database")" \
        "SELECT count(*) FROM jobs WHERE state = 'done'")
    [[ $n == 2000 ]] || die "$name: only $n of 2000 jobs done"
    awk -v s="$(since "$start")" 'BEGIN { printf "%.0f", 2000 / s }'
}

bench_fleet() {
    local f sqlite_rate pg_rate pg2_rate
    "$BIN/jobd-testserver" --small-dir "$WORK/small2000" --count 2000
    start_server "$WORK/small2000" 0 0
    for f in "$WORK"/small2000/*; do echo "$SERVER_URL/${f##*/}"; done >"$WORK/small-urls.txt"
    sqlite_rate=$(fleet_run sqlite jobd.db 1 16)
    pg_rate=$(fleet_run postgres "$(new_database fleet_one)" 1 16)
    pg2_rate=$(fleet_run postgres2 "$(new_database fleet_two)" 2 8)
    result "fleet: 1 daemon x 16 on SQLite" "$sqlite_rate jobs/s"
    result "fleet: 1 daemon x 16 on PostgreSQL" "$pg_rate jobs/s"
    result "fleet: 2 daemons x 8 on PostgreSQL" "$pg2_rate jobs/s"
    result "fleet: ratio PostgreSQL / SQLite, 1 daemon" "$(div "$pg_rate" "$sqlite_rate")"
}

# Politeness b on PostgreSQL (issue 14), as scripts/bench.sh runs it on SQLite: jobd (not
# --drain) on the jobs in URLS until the COUNT jobs whose URL starts with GOOD are done and at
# least MIN_SECS have passed; prints their rate over the span from the first one's start to the
# last one's finish.
polite_run() {
    local dir=$WORK/$1 database=$2 urls=$3 good=$4 count=$5 min_secs=$6 pid start done_n span
    new_instance "$dir" "$database"
    "$BIN/jobctl" --config "$dir/daemon.toml" import "$urls" >/dev/null
    start=$EPOCHREALTIME
    "$BIN/jobd" --config "$dir/daemon.toml" 2>"$dir/jobd.log" &
    pid=$!
    PIDS+=("$pid")
    while :; do
        sleep 0.2
        done_n=$(query "$database" "SELECT count(*) FROM jobs WHERE state = 'done' AND starts_with(url, '$good')")
        [[ $done_n == "$count" ]] && (($(since "$start" | cut -d. -f1) >= min_secs)) && break
        (($(since "$start" | cut -d. -f1) < 600)) || die "$dir: $done_n of $count good jobs done after 600 s"
        kill -0 "$pid" 2>/dev/null || die "jobd exited early; see $dir/jobd.log"
    done
    kill -TERM "$pid"
    wait "$pid" || die "jobd did not stop cleanly; see $dir/jobd.log"
    span=$(query "$database" "SELECT max(finished_at) - min(started_at) FROM jobs
        WHERE state = 'done' AND starts_with(url, '$good')")
    awk -v n="$count" -v ms="$span" 'BEGIN { printf "%.0f\n", 1000 * n / ms }'
}

# The good host's rate alone, and with as many jobs of a host that answers 503 to everything
# interleaved (good, bad, good, bad, ...), alternating which goes first; each on a fresh
# database, each mixed run with a new bad server.
bench_politeness() {
    local m=${BENCH_BAD_JOBS:-5000} secs=${BENCH_BAD_SECS:-15} r f kind good bad flight max_flight=0
    "$BIN/jobd-testserver" --small-dir "$WORK/polite" --count "$m"
    start_server "$WORK/polite" 0 0
    good=$SERVER_URL
    : >"$WORK/polite-alone.rates"
    : >"$WORK/polite-mixed.rates"
    for ((r = 1; r <= RUNS; r++)); do
        for f in "$WORK"/polite/*; do echo "$good/${f##*/}?r=$r"; done >"$WORK/polite-good-urls"
        for kind in $( ((r % 2)) && echo alone mixed || echo mixed alone); do
            if [[ $kind == alone ]]; then
                polite_run "polite-alone-$r" "$(new_database "polite_alone_$r")" \
                    "$WORK/polite-good-urls" "$good" "$m" 0 >>"$WORK/polite-alone.rates"
            else
                start_server "$WORK/polite" 0 0 --status 503
                bad=$SERVER_URL
                sed "s|^$good|$bad|" "$WORK/polite-good-urls" | paste -d '\n' "$WORK/polite-good-urls" - \
                    >"$WORK/polite-mixed-urls"
                polite_run "polite-mixed-$r" "$(new_database "polite_mixed_$r")" \
                    "$WORK/polite-mixed-urls" "$good" "$m" "$secs" >>"$WORK/polite-mixed.rates"
                flight=$(curl -sS --fail "$bad/_stats" | python3 -c 'import json, sys; print(json.load(sys.stdin)["max_in_flight"])')
                ((flight > max_flight)) && max_flight=$flight
                kill "$SERVER_PID"
            fi
        done
        polite_b_note "$r"
    done
    polite_b_results "$m" "$max_flight"
}

main() {
    local which=${1:-all}
    case $which in
        import | growth | fleet | politeness | all) ;;
        *) echo "usage: scripts/bench-postgres.sh [import|growth|fleet|politeness|all]" >&2; exit 2 ;;
    esac
    command -v psql >/dev/null || die "psql is needed: apt-get install postgresql-client"
    command -v sqlite3 >/dev/null || die "sqlite3 is needed: apt-get install sqlite3"
    # --workspace: jobd and jobctl, and jobd-testserver and jobd-bench from testkit/.
    (cd "$ROOT" && cargo build --release --quiet --workspace)
    start_postgres
    [[ $which == all || $which == import ]] && bench_import
    [[ $which == all || $which == growth ]] && bench_growth
    [[ $which == all || $which == fleet ]] && bench_fleet
    [[ $which == all || $which == politeness ]] && bench_politeness
    print_results 50
}

main "$@"
