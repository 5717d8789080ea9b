-- 0009: nothing to do on SQLite; see postgres/0009_notify_how_far_back.sql. SQLite's claims
-- learn what got in ahead of their point from `queue_changes` (migration 0007).
SELECT 1;
