-- 0005: job ids are never reused (PostgreSQL); see ../0005_ids_never_reused.sql.
--
-- Nothing to change here: `jobs.id` is an identity column, whose sequence never hands out a
-- number twice, whatever rows are deleted (only `ALTER SEQUENCE ... RESTART` or `TRUNCATE ...
-- RESTART IDENTITY`, typed by hand, would). The import reserves its ids from the same sequence.
-- This migration keeps the numbering paired with SQLite's and says so in the catalog.

COMMENT ON COLUMN jobs.id IS
    'Never reused: drawn from an identity sequence, which never hands out a number twice.';
