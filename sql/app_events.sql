--
-- app_events: activity_audit.log_event() writes application events
-- (audit.login, audit.request, app.*) into the same signed, transactional
-- stream as the row events (SPEC section 10).
--
SELECT count(*) >= 0 AS drained FROM audit_raw();

-- The keys in SPEC's order: the Django package's head, event_type, the
-- payload's keys (in jsonb's order), the claims and the provenance.
SELECT activity_audit.log_event('audit.login', 'LOGIN',
         '{"username": "alice", "ip": "10.1.2.3", "detail": {"b": [1, 2], "a": null}, "ok": true, "n": 1.50}');
SELECT string_agg(k, ',' ORDER BY o) AS keys FROM audit_raw() r, audit_members(r) m;
SELECT activity_audit.log_event('audit.login', 'LOGIN',
         '{"username": "alice", "ip": "10.1.2.3", "detail": {"b": [1, 2], "a": null}, "ok": true, "n": 1.50}');
SELECT jsonb_pretty(e - '{db,db_user,session_user,application_name}'::text[]),
       e->>'db' = current_database() AS db_ok,
       e->>'db_user' = current_user AS db_user_ok,
       e->>'session_user' = session_user AS session_user_ok,
       e->>'application_name' = current_setting('application_name') AS application_name_ok
  FROM audit_events() e;
-- the payload's values exactly as written (numbers as given, nested as jsonb prints them)
SELECT activity_audit.log_event('app.export', 'EXPORT', '{"n": 1.50, "s": "a\"b\\c\n", "e": {}}');
SELECT m.k, m.v FROM audit_raw() r, audit_members(r) m WHERE m.k IN ('"n"', '"s"', '"e"') ORDER BY m.o;

-- level by name, message by default or given, the session's context
SET audit.user_id = 'u-42';
SET audit.request_id = 'req-7';
SET audit.service_name = 'shop';
SET audit.user_info = '{"email": "a@example.com"}';
SET audit.extra = '{"tenant": "t1"}';
SELECT activity_audit.log_event('audit.request', 'GET', '{"path": "/orders"}');
SELECT activity_audit.log_event('app.billing', 'INVOICE_SENT', message => 'invoice 17 sent');
SELECT activity_audit.log_event('audit.login', 'LOGOUT');
SELECT e->>'name' AS name, e->>'level' AS level, e->>'event_type' AS event_type, e->>'message' AS message,
       e->>'user_id' AS user_id, e->>'request_id' AS request_id, e->>'service_name' AS service,
       e->'user_info' AS user_info, e->'extra' AS extra
  FROM audit_events() e;
RESET audit.user_id;
RESET audit.request_id;
RESET audit.service_name;
RESET audit.user_info;
RESET audit.extra;

-- transactional: a rollback, or a rolled-back savepoint, takes it back;
-- in a transaction with row changes it sits where it was written
CREATE TABLE app_t (id int PRIMARY KEY);
SELECT activity_audit.track('app_t');
SELECT count(*) >= 0 AS drained FROM audit_raw();
BEGIN;
SELECT activity_audit.log_event('app.x', 'GONE');
ROLLBACK;
BEGIN;
INSERT INTO app_t VALUES (1);
SAVEPOINT s;
SELECT activity_audit.log_event('app.x', 'GONE_TOO');
ROLLBACK TO s;
SELECT activity_audit.log_event('app.x', 'KEPT');
INSERT INTO app_t VALUES (2);
COMMIT;
SELECT e->>'name' AS name, e->>'event_type' AS event_type, e->>'instance_id' AS instance_id
  FROM audit_events() e;

-- refused: the extension's own names and types, payloads that are not an
-- object or that would shadow the event's own keys, missing arguments
SELECT activity_audit.log_event('audit.model', 'CREATE');
SELECT activity_audit.log_event('audit.config', 'TRACK');
SELECT activity_audit.log_event('audit.gap', 'WAL_LOST');
SELECT activity_audit.log_event('myapp.thing', 'X');
SELECT activity_audit.log_event('app.', 'X');
SELECT activity_audit.log_event('audit.login', 'DB_LOGIN');
SELECT activity_audit.log_event('audit.login', 'DB_LOGIN_FAILED');
SELECT activity_audit.log_event('app.x', '');
SELECT activity_audit.log_event('app.x', 'X', '[1, 2]');
SELECT activity_audit.log_event('app.x', 'X', '"text"');
SELECT activity_audit.log_event('app.x', 'X', 'null');
SELECT activity_audit.log_event('app.x', 'X', NULL);
SELECT activity_audit.log_event('app.x', 'X', '{"user_id": "someone else"}');
SELECT activity_audit.log_event('app.x', 'X', '{"ok": 1, "txid": 5}');
SELECT activity_audit.log_event('app.x', 'X', '{"seq": 1}');
SELECT activity_audit.log_event('app.x', 'X', '{"sig": "1:1:0123456789abcdef"}');
SELECT activity_audit.log_event(NULL, 'X');
SELECT activity_audit.log_event('app.x', NULL);
SELECT count(*) AS nothing_written FROM audit_raw();

-- any role may call it (with USAGE on the schema); db_user says who did
CREATE ROLE regress_app_role;
SET ROLE regress_app_role;
SELECT activity_audit.log_event('app.x', 'NO_USAGE');
RESET ROLE;
GRANT USAGE ON SCHEMA activity_audit TO regress_app_role;
SET ROLE regress_app_role;
SELECT activity_audit.log_event('app.x', 'BY_APP_ROLE');
RESET ROLE;
SELECT e->>'event_type' AS event_type, e->>'db_user' AS db_user, e->>'session_user' = session_user AS session_user_kept
  FROM audit_events() e;

-- delivered like row events: with seq and hash, in the one chain
SELECT activity_audit.flush() AS flushed;
SELECT event_type, schema_name, table_name, model, instance_id, user_id,
       event->>'name' AS name, event ? 'seq' AND event ? 'hash' AS chained, event ? 'sig' AS has_sig
  FROM activity_audit.log_stream()
 WHERE regress_new(seq) AND event->>'name' NOT IN ('audit.model', 'audit.config')
 ORDER BY seq;
SELECT ok, first_bad_seq FROM activity_audit.verify();

REVOKE USAGE ON SCHEMA activity_audit FROM regress_app_role;
DROP ROLE regress_app_role;
DROP TABLE app_t;
SELECT count(*) >= 0 AS drained FROM audit_raw();

-- bounded like row events by audit.max_event_size (64MB by default)
DO $$
BEGIN
  PERFORM activity_audit.log_event('app.x', 'HUGE', jsonb_build_object('blob', repeat('x', 64 * 1024 * 1024)));
EXCEPTION WHEN program_limit_exceeded THEN
  -- (the size depends on the database's and the application's names)
  RAISE NOTICE '%', regexp_replace(SQLERRM, '\d+ bytes', 'N bytes');
END
$$;
SELECT count(*) AS nothing_written FROM audit_raw();
