#!/usr/bin/env bash
# `jobctl import` against the sqlite3 shell's own `.import`, on the same million URLs, each into a
# fresh database with jobd's schema (and so the same indexes on `jobs`).
#
#   scripts/bench-import.sh            (BENCH_RUNS=N runs each, default 3; BENCH_URLS=N, default 1000000)
#
# The shell cannot `.import` one column straight into `jobs` (it would fill the other columns
# with NULLs, and the first column is the id), so it gets the two fair routes a person would use:
#   view:  .import into a one-column view whose INSTEAD OF trigger inserts into jobs(url);
#   stage: .import into a temporary one-column table, then INSERT INTO jobs(url) SELECT.
# The headline ratio is against the faster of the two. The stage route's INSERT ... SELECT is also
# timed alone: it is SQLite itself writing the rows into `jobs` and its indexes, a floor that no
# client of this schema goes below. Both sides run with their defaults: the
# shell commits once with synchronous=FULL; jobctl commits every 50,000 rows, its last commit
# FULL. Each timing ends when the process has exited, its last checkpoint included.
set -euo pipefail

ROOT=$(cd "$(dirname "${BASH_SOURCE[0]}")/.." && pwd)
RUNS=${BENCH_RUNS:-3}
URLS=${BENCH_URLS:-1000000}
WORK=$(mktemp -d)
trap 'rm -rf "$WORK"' EXIT

die() { echo "bench-import: $*" >&2; exit 1; }
note() { echo "bench-import: $*" >&2; }
since() { awk -v a="$1" -v b="$EPOCHREALTIME" 'BEGIN { printf "%.3f", b - a }'; }
median() { sort -g | awk '{ v[NR] = $1 } END { print (NR % 2) ? v[(NR + 1) / 2] : (v[NR / 2] + v[NR / 2 + 1]) / 2 }'; }

command -v sqlite3 >/dev/null || die "needs the sqlite3 shell (apt-get install sqlite3)"
note "building jobctl (release)"
(cd "$ROOT" && cargo build --release --quiet --bin jobctl)
JOBCTL=$ROOT/target/release/jobctl

note "generating $URLS URLs"
awk -v n="$URLS" 'BEGIN { for (i = 0; i < n; i++)
    printf "https://img%d.example.org/photos/%07d/image-%d.jpg\n", i % 997, i, (i * 7919) % 1000003 }' \
    >"$WORK/urls.txt"
printf '%s\n' 'database = "jobd.db"' 'blob_dir = "blobs"' >"$WORK/daemon.toml"

# A fresh database with jobd's schema, made by jobctl itself.
fresh() {
    rm -f "$WORK"/jobd.db "$WORK"/jobd.db-wal "$WORK"/jobd.db-shm
    "$JOBCTL" --config "$WORK/daemon.toml" stats >/dev/null
}

check_count() {
    local n
    n=$(sqlite3 "$WORK/jobd.db" "SELECT COUNT(*) FROM jobs WHERE state = 'queued'")
    [[ $n == "$URLS" ]] || die "$1 left $n jobs, not $URLS"
}

declare -a T_JOBCTL T_VIEW T_STAGE T_FLOOR
cd "$WORK"
for ((run = 1; run <= RUNS; run++)); do
    fresh
    sqlite3 jobd.db "CREATE VIEW jobs_import_view AS SELECT url FROM jobs;
        CREATE TRIGGER jobs_import_view_insert INSTEAD OF INSERT ON jobs_import_view
        BEGIN INSERT INTO jobs(url) VALUES (NEW.url); END;"
    t=$EPOCHREALTIME
    sqlite3 jobd.db ".import --csv urls.txt jobs_import_view"
    T_VIEW+=("$(since "$t")")
    check_count "sqlite3 .import (view)"

    fresh
    t=$EPOCHREALTIME
    printf '%s\n' "CREATE TEMP TABLE stage(url TEXT);" ".import --csv urls.txt stage" ".timer on" \
        "INSERT INTO jobs(url) SELECT url FROM stage;" | sqlite3 jobd.db >"$WORK/timer.out"
    T_STAGE+=("$(since "$t")")
    # The INSERT ... SELECT alone: SQLite writing these rows into jobs and its indexes.
    T_FLOOR+=("$(sed -n 's/^Run Time: real \([0-9.]*\).*/\1/p' "$WORK/timer.out" | tail -1)")
    check_count "sqlite3 .import (stage)"

    fresh
    t=$EPOCHREALTIME
    "$JOBCTL" --config daemon.toml import urls.txt >/dev/null
    T_JOBCTL+=("$(since "$t")")
    check_count "jobctl import"
    note "run $run: jobctl ${T_JOBCTL[-1]} s, sqlite3 view ${T_VIEW[-1]} s, sqlite3 stage ${T_STAGE[-1]} s"
done

jobctl=$(printf '%s\n' "${T_JOBCTL[@]}" | median)
view=$(printf '%s\n' "${T_VIEW[@]}" | median)
stage=$(printf '%s\n' "${T_STAGE[@]}" | median)
floor=$(printf '%s\n' "${T_FLOOR[@]}" | median)
best=$(awk -v a="$view" -v b="$stage" 'BEGIN { print (a < b) ? a : b }')
ratio() { awk -v a="$1" -v b="$2" 'BEGIN { printf "%.2f", a / b }'; }

echo
echo "import of $URLS URLs, median of $RUNS runs ($(nproc) CPUs, sqlite3 $(sqlite3 --version | cut -d' ' -f1))"
printf '  %-44s %8s s\n' "jobctl import" "$jobctl"
printf '  %-44s %8s s   jobctl/shell %s\n' "sqlite3 .import into a view over jobs" "$view" "$(ratio "$jobctl" "$view")"
printf '  %-44s %8s s   jobctl/shell %s\n' "sqlite3 .import into a stage, INSERT SELECT" "$stage" "$(ratio "$jobctl" "$stage")"
printf '  %-44s %8s s   jobctl/floor %s\n' "  of which INSERT SELECT alone (the floor)" "$floor" "$(ratio "$jobctl" "$floor")"
printf '  %-44s %8s   (target: at most 0.50)\n' "ratio against the faster shell route" "$(ratio "$jobctl" "$best")"
