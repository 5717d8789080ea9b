# shellcheck shell=bash
# The dashboard's targets (issue 15), sourced by scripts/bench.sh: `scripts/bench.sh ui`.
#
# On each backend (SQLite, then a throwaway PostgreSQL server), jobd-bench-ui fills a database
# with BENCH_UI_JOBS jobs (default 1000000: 89 % queued, 10 % done, 1 % failed) and one 8 MB photo,
# starts the release `jobctl serve` on it and times over loopback: the overview read afresh (on
# PostgreSQL again once autovacuum has been through the new rows, as it is a minute or so after
# any bulk change), the photo's thumbnail made and cached, and BENCH_UI_CLIENTS clients (default
# 50) polling the overview every second for BENCH_UI_POLL_SECS (default 30), with the CPU the
# server used.
# E.g. BENCH_UI_JOBS=100000 BENCH_UI_POLL_SECS=5 scripts/bench.sh ui for a quick check.

# A photo of 6000x4000 pixels, about 8 MB as JPEG (quality 89), from bench-photos.py's generator.
ui_photo() {
    python3 - "$ROOT/scripts/bench-photos.py" "$1" <<'PY' || die "the photo needs Python's Pillow: pip install -r tests/corpus/requirements.txt"
import importlib.util, sys
spec = importlib.util.spec_from_file_location("photos", sys.argv[1])
photos = importlib.util.module_from_spec(spec)
spec.loader.exec_module(photos)
photos.photo(6000, 4000, 7).save(sys.argv[2], quality=89)
PY
}

bench_ui() {
    local jobs=${BENCH_UI_JOBS:-1000000} secs=${BENCH_UI_POLL_SECS:-30} clients=${BENCH_UI_CLIENTS:-50}
    local backend out value
    ui_photo "$WORK/photo.jpg"
    for backend in sqlite postgres; do
        note "ui ($backend): seeding $jobs jobs, then timing the dashboard"
        out=$("$BIN/jobd-bench-ui" --backend "$backend" --jobs "$jobs" --photo "$WORK/photo.jpg" \
            --poll-secs "$secs" --clients "$clients") || die "jobd-bench-ui --backend $backend failed"
        value() { awk -v k="$1" '$1 == k { print $2 }' <<<"$out"; }
        [[ $(value poll_failures) == 0 ]] || die "ui ($backend): $(value poll_failures) polls failed"
        result "ui ($backend): overview with $jobs jobs, median (max) of 10" \
            "$(value overview_ms_median) ms ($(value overview_ms_max) ms)" "<= 100 ms"
        result "ui ($backend): first overview right after the seeding, median (max) of 5" \
            "$(value overview_cold_fresh_ms_median) ms ($(value overview_cold_fresh_ms_max) ms)"
        if [[ $backend == postgres ]]; then
            [[ $(value autovacuum_done) == 1 ]] || note "ui (postgres): autovacuum did not come within 10 minutes"
            result "ui (postgres): waited for autovacuum's first pass" "$(value autovacuum_wait_s) s"
        fi
        result "ui ($backend): first overview, figures read, median (max) of 5" \
            "$(value overview_cold_ms_median) ms ($(value overview_cold_ms_max) ms)" "<= 100 ms"
        result "ui ($backend): thumbnail of a $(value photo_mb) MB photo, median of 5" \
            "$(value thumbnail_ms_median) ms" "<= 150 ms"
        result "ui ($backend): cached thumbnail, median of 50" "$(value thumbnail_cached_ms_median) ms" "<= 2 ms"
        result "ui ($backend): $clients clients polling every 1 s for $secs s: CPU" \
            "$(value poll_cpu_percent_of_one_core) % of one core" "< 5 %"
    done
}
