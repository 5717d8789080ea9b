#!/usr/bin/env bash
# Imports every URL file dropped into a folder, for cron:
#
#   */5 * * * * /opt/jobd/scripts/cron-import.sh /srv/jobd/incoming --config /etc/jobd/daemon.toml >> /var/log/jobd-import.log 2>&1
#
# Each regular file in INCOMING (plain lines, CSV or TSV, as `jobctl import` reads them) is
# imported, then moved to INCOMING/done/ or, if jobctl failed outright, to INCOMING/failed/, with
# a timestamp in front of its name. Files whose names start with a dot or end in .part are left
# alone: write a file under such a name and rename it when it is complete.
# A lock (flock on INCOMING/.cron-import.lock) makes an overlapping run exit at once, so a slow
# import is never run twice. One log line per file. Extra arguments go to jobctl (e.g. --config).
# JOBCTL names the jobctl binary (default: jobctl on PATH, else next to this script's repo build).
set -euo pipefail

usage() { echo "usage: $0 INCOMING_DIR [jobctl options...]" >&2; exit 2; }
[ $# -ge 1 ] || usage
incoming=$1
shift
[ -d "$incoming" ] || { echo "$0: $incoming is not a folder" >&2; exit 2; }

log() { echo "$(date -u +%Y-%m-%dT%H:%M:%SZ) cron-import: $*"; }

jobctl=${JOBCTL:-}
if [ -z "$jobctl" ]; then
    jobctl=$(command -v jobctl || true)
    here=$(cd "$(dirname "$0")/.." && pwd)
    for candidate in "$here/target/release/jobctl" "$here/target/debug/jobctl"; do
        [ -n "$jobctl" ] || { [ -x "$candidate" ] && jobctl=$candidate; }
    done
    [ -n "$jobctl" ] || { log "jobctl not found (set JOBCTL)"; exit 1; }
fi

exec 9>"$incoming/.cron-import.lock"
if ! flock --nonblock 9; then
    log "another run holds $incoming/.cron-import.lock; exiting"
    exit 0
fi

mkdir -p "$incoming/done" "$incoming/failed"
for file in "$incoming"/*; do
    [ -f "$file" ] || continue
    name=$(basename "$file")
    case $name in .* | *.part) continue ;; esac
    stamp=$(date -u +%Y%m%dT%H%M%SZ)
    # jobctl exits 2 when some lines were rejected: the rest were added, so the file is done.
    status=0
    output=$("$jobctl" "$@" import "$file" 2>&1) || status=$?
    summary=$(printf '%s\n' "$output" | grep -E '^added ' | tail -n 1 || true)
    if [ "$status" -eq 0 ] || [ "$status" -eq 2 ]; then
        mv -- "$file" "$incoming/done/$stamp-$name"
        log "$name: ${summary:-imported} (exit $status)"
    else
        mv -- "$file" "$incoming/failed/$stamp-$name"
        log "$name: failed (exit $status): $(printf '%s' "$output" | tr '\n' ' ')"
    fi
done
