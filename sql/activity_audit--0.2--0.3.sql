-- activity_audit 0.2 -> 0.3
--
-- A fresh CREATE EXTENSION runs activity_audit--0.1.sql, then the upgrade
-- scripts up to this one.

\echo Use "ALTER EXTENSION activity_audit UPDATE TO '0.3'" to load this file. \quit

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
