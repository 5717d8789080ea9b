-- 0011: one index fewer for every claim and every record to keep (issue 16).
--
-- jobs_running_host (0006) let the claim count a host's running jobs; claims no longer do (issue
-- 14: each daemon keeps its own part of a host's limit). Only `jobctl hosts` read it, and the
-- running jobs are few (at most the workers of the daemons on the queue): it reads them through
-- jobs_lease. Every job entered and left it, with its host computed from the url each time.
DROP INDEX IF EXISTS jobs_running_host;
