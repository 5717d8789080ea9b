-- 0008: the daemons working on the queue (issue 15), for `jobctl daemons` and the dashboard.
-- Each daemon writes its row when it starts and every 5 s (its heartbeat), and deletes it when it
-- stops; a daemon that died leaves a row whose seen_at stops moving, and readers take only rows
-- seen within 20 s. Rows silent for a day are deleted by the next heartbeat. `name` is host:pid,
-- the prefix of its workers' names in jobs.worker. Times are Unix ms.
CREATE TABLE daemons (
    name       TEXT PRIMARY KEY,
    host       TEXT NOT NULL,
    pid        INTEGER NOT NULL,
    version    TEXT NOT NULL,
    workers    INTEGER NOT NULL,
    busy       INTEGER NOT NULL,
    started_at INTEGER NOT NULL,
    seen_at    INTEGER NOT NULL
);
