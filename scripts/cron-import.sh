#!/usr/bin/env bash
# Imports every URL file dropped into a folder, for cron:
#
#   */5 * * * * /opt/jobd/scripts/cron-import.sh /srv/jobd/incoming --config /etc/jobd/daemon.toml >> /var/log/jobd-import.log 2>&1
#
# Each regular file in INCOMING (plain lines, CSV or TSV, as `jobctl import` reads them) is
# imported, then moved, with a timestamp in front of its name, to INCOMING/done/ if jobctl took
# every line, or else to INCOMING/failed/: a file with rejected lines (exit 2: its good lines were
# added all the same), a bad header (nothing was added) or any other failure. The log line says
# what jobctl reported and its own error lines (the rejected lines with their numbers). Files
# whose names start with a dot or end in .part are left alone: write a file under such a name and
# rename it when it is complete.
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
    status=0
    errors=$(mktemp)
    summary=$("$jobctl" "$@" import "$file" 2>"$errors") || status=$?
    summary=$(printf '%s\n' "$summary" | grep -E '^added ' | tail -n 1 || true)
    # jobctl's own words, one log line per file: its error lines joined with "; ".
    said=$(awk 'NF { printf "%s%s", sep, $0; sep = "; " }' "$errors")
    rm -f -- "$errors"
    if [ "$status" -eq 0 ]; then
        mv -- "$file" "$incoming/done/$stamp-$name"
        log "$name: ${summary:-imported}"
    else
        # Exit 2 with a summary: some lines were rejected and the others added. Moved to
        # failed/ all the same, so that someone looks at the rejected lines.
        mv -- "$file" "$incoming/failed/$stamp-$name"
        log "$name: failed (exit $status)${summary:+: $summary}${said:+: $said}"
    fi
done
