-- activity_audit 0.2 -> 0.3
--
-- Release 0.3 shows what holds the WAL and the stream's head in
-- writer_status(): six more columns (SPEC section 5).  A function's result
-- type cannot change in place, so it is dropped and created again, with the
-- same (default) privileges as in 0.1.  The library of 0.3 fills the old
-- definition too, so writer_status() works between the library's upgrade
-- and ALTER EXTENSION ... UPDATE.  A fresh CREATE EXTENSION runs
-- activity_audit--0.1.sql, then the upgrade scripts up to this one.

\echo Use "ALTER EXTENSION activity_audit UPDATE TO '0.3'" to load this file. \quit

DROP FUNCTION activity_audit.writer_status();

-- The writer's health and lag; the last six: the stream's head, the WAL the
-- writer's slot keeps, and the oldest open transaction with events.
CREATE FUNCTION activity_audit.writer_status()
RETURNS TABLE(pid int, read_lsn pg_lsn, delivered_lsn pg_lsn, lag_bytes bigint,
              events_delivered bigint, bytes_written bigint, current_file text,
              pending_xacts int, spilled_bytes bigint, forged_rejected bigint,
              last_error text, last_seq bigint, last_hash text,
              retained_bytes bigint, oldest_xact xid8, oldest_xact_gid text,
              oldest_xact_age interval)
AS 'MODULE_PATHNAME', 'activity_audit_writer_status'
LANGUAGE C STRICT VOLATILE;
