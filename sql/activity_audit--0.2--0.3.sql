-- activity_audit 0.2 -> 0.3
--
-- Release 0.3: application events (log_event()), digests (digest(),
-- verify(digests)), and what holds the WAL and the stream's head in
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

-- Application events (SPEC section 10): audit.login, audit.request and
-- app.* events in the same signed, transactional, hash-chained stream as
-- the row events.  Executable by PUBLIC: what an application writes is its
-- claim, like the audit.* settings; who wrote it is in db_user and
-- session_user.
CREATE FUNCTION activity_audit.log_event(name text, event_type text,
                                         payload jsonb DEFAULT '{}',
                                         message text DEFAULT NULL)
RETURNS void
AS 'MODULE_PATHNAME', 'activity_audit_log_event'
LANGUAGE C VOLATILE;
GRANT EXECUTE ON FUNCTION activity_audit.log_event(text, text, jsonb, text) TO PUBLIC;

-- Digests of the stream's head (SPEC section 9): digest() for an external
-- job to keep, verify(digests) to expose a stream cut or rewritten since.
-- Like verify(), not executable by PUBLIC: a superuser grants them.
CREATE FUNCTION activity_audit.digest()
RETURNS TABLE(seq bigint, hash text, lsn pg_lsn, committed_at timestamptz, sig text)
AS 'MODULE_PATHNAME', 'activity_audit_digest'
LANGUAGE C STRICT VOLATILE;
CREATE FUNCTION activity_audit.verify(digests jsonb)
RETURNS TABLE(ok boolean, events bigint, first_bad_seq bigint, detail text)
AS 'MODULE_PATHNAME', 'activity_audit_verify_digests'
LANGUAGE C STRICT VOLATILE;
REVOKE ALL ON FUNCTION activity_audit.digest() FROM PUBLIC;
REVOKE ALL ON FUNCTION activity_audit.verify(jsonb) FROM PUBLIC;
