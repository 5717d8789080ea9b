#!/usr/bin/env python3
"""The pickup client of scripts/bench.sh (issue 16): a user's program that adds jobs one at a time.

    bench-pickup.py DATABASE URL PID [--rows N] [--pause-ms MS] [--idle-secs S] [--rows-out FILE]

DATABASE is the daemon's SQLite file (Python's built-in sqlite3 module) or a postgres:// URL
(psycopg 3). First the CPU that the daemon PID uses while nothing happens, over --idle-secs (none
if 0), from /proc/PID/stat (utime + stime). Then --rows times: INSERT one job for URL (a distinct
query string each), commit, and poll the row every millisecond until it is `done`; the latency
is from the commit's return to the poll that sees `done`. A pause between rows makes each a
fresh pickup, with the daemon idle. The row's own times (epoch ms) split it: before the claim
(started_at minus the commit), the attempt (finished_at minus started_at), and the rest
(recording it, and the poll). --rows-out writes these four figures for each row.

Prints "key value" lines: idle_cpu_percent, then for latency_ms, before_claim_ms, attempt_ms and
after_ms the median, p95 and max (e.g. latency_ms_median 3.1).
"""

import argparse
import os
import statistics
import sys
import time

POLL = 0.001  # the protocol: the row is polled every millisecond


def connect(database):
    """A connection and the placeholder its driver uses."""
    if database.startswith("postgres://") or database.startswith("postgresql://"):
        try:
            import psycopg
        except ImportError:
            sys.exit("bench-pickup.py: PostgreSQL needs psycopg: "
                     "python3 -m pip install -r scripts/bench-requirements.txt")
        return psycopg.connect(database), "%s"
    import sqlite3

    # As the FIELD_NOTES advise a user's program: wait for a lock rather than fail at once.
    return sqlite3.connect(database, timeout=5.0), "?"


def cpu_seconds(pid):
    with open(f"/proc/{pid}/stat") as f:
        fields = f.read().rsplit(")", 1)[1].split()
    # utime and stime are fields 14 and 15; after the ")" the first field is the 3rd.
    return (int(fields[11]) + int(fields[12])) / os.sysconf("SC_CLK_TCK")


def idle_cpu(pid, secs):
    start, cpu = time.monotonic(), cpu_seconds(pid)
    time.sleep(secs)
    return 100 * (cpu_seconds(pid) - cpu) / (time.monotonic() - start)


def one_row(conn, ph, url, deadline_s=10.0):
    """Inserts URL, waits for it to be done; (latency, before claim, attempt, after) in ms."""
    cur = conn.cursor()
    cur.execute(f"INSERT INTO jobs (url) VALUES ({ph}) RETURNING id", (url,))
    job_id = cur.fetchone()[0]
    conn.commit()
    committed, committed_ms = time.perf_counter(), time.time() * 1000
    tick = committed
    while True:
        cur.execute(f"SELECT state, started_at, finished_at FROM jobs WHERE id = {ph}", (job_id,))
        state, started_at, finished_at = cur.fetchone()
        # End the read transaction that the driver opened, so the next poll sees a new snapshot.
        conn.commit()
        if state == "done":
            seen = time.perf_counter()
            break
        if state == "failed":
            sys.exit(f"bench-pickup.py: job {job_id} failed; see the daemon's log")
        if time.perf_counter() - committed > deadline_s:
            sys.exit(f"bench-pickup.py: job {job_id} not done after {deadline_s:.0f} s")
        tick += POLL
        time.sleep(max(0.0, tick - time.perf_counter()))
    latency = (seen - committed) * 1000
    seen_ms = committed_ms + latency
    return latency, started_at - committed_ms, finished_at - started_at, seen_ms - finished_at


def summary(name, values):
    values = sorted(values)
    p95 = values[max(0, -(-len(values) * 95 // 100) - 1)]  # nearest rank
    print(f"{name}_median {statistics.median(values):.1f}")
    print(f"{name}_p95 {p95:.1f}")
    print(f"{name}_max {values[-1]:.1f}")


def main():
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("database")
    parser.add_argument("url")
    parser.add_argument("pid", type=int)
    parser.add_argument("--rows", type=int, default=50)
    parser.add_argument("--pause-ms", type=int, default=300)
    parser.add_argument("--idle-secs", type=float, default=30)
    parser.add_argument("--rows-out", help="a file for each row's figures, one line each")
    args = parser.parse_args()

    conn, ph = connect(args.database)
    if args.idle_secs > 0:
        print(f"idle_cpu_percent {idle_cpu(args.pid, args.idle_secs):.3f}", flush=True)
    rows = []
    for i in range(args.rows):
        time.sleep(args.pause_ms / 1000)
        rows.append(one_row(conn, ph, f"{args.url}?pickup={i}"))
    if args.rows_out:
        with open(args.rows_out, "w") as f:
            f.write("latency_ms before_claim_ms attempt_ms after_ms\n")
            f.writelines(" ".join(f"{v:.1f}" for v in row) + "\n" for row in rows)
    names = ("latency_ms", "before_claim_ms", "attempt_ms", "after_ms")
    for name, column in zip(names, zip(*rows)):
        summary(name, column)
    conn.close()


if __name__ == "__main__":
    main()
