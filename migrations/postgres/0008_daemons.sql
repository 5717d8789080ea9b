-- 0008: the daemons working on the queue (PostgreSQL); see ../0008_daemons.sql. seen_at is the
-- database's clock (jobd_now_ms()), so that daemons whose clocks disagree are judged alike.
CREATE TABLE daemons (
    name       TEXT PRIMARY KEY,
    host       TEXT NOT NULL,
    pid        BIGINT NOT NULL,
    version    TEXT NOT NULL,
    workers    BIGINT NOT NULL,
    busy       BIGINT NOT NULL,
    started_at BIGINT NOT NULL,
    seen_at    BIGINT NOT NULL
);
