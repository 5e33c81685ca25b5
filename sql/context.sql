--
-- context: the audit.* session settings and set_context(), and the
-- provenance keys of the event (db, db_user, application_name, ...).
--
SELECT count(*) AS leftover FROM audit_raw();
CREATE TABLE ctx (id int PRIMARY KEY, v text);
SELECT activity_audit.track('ctx');

-- defaults: everything null, service "default", extra {}
INSERT INTO ctx VALUES (1, 'a');
SELECT e->'user_id' AS user_id, e->'user_info' AS user_info, e->'request_id' AS request_id,
       e->'extra' AS extra, e->'service_name' AS service_name
  FROM audit_events() e;

-- SET LOCAL lasts for one transaction
BEGIN;
SET LOCAL audit.user_id = '42';
SET LOCAL audit.request_id = 'req-7';
INSERT INTO ctx VALUES (2, 'b');
COMMIT;
INSERT INTO ctx VALUES (3, 'c');
SELECT e->>'instance_id' AS id, e->'user_id' AS user_id, e->'request_id' AS request_id
  FROM audit_events() e;

-- plain SET lasts for the session, until RESET
SET audit.user_id = 'session-user';
SET audit.service_name = 'billing';
SET audit.extra = '{"tenant": "acme", "n": [1, 2]}';
INSERT INTO ctx VALUES (4, 'd');
RESET audit.user_id;
RESET audit.service_name;
RESET audit.extra;
INSERT INTO ctx VALUES (5, 'e');
SELECT e->>'instance_id' AS id, e->'user_id' AS user_id, e->'service_name' AS service,
       e->'extra' AS extra FROM audit_events() e;

-- ROLLBACK TO SAVEPOINT restores the context as well as the data
BEGIN;
SET LOCAL audit.user_id = 'outer';
SAVEPOINT s1;
SET LOCAL audit.user_id = 'inner';
INSERT INTO ctx VALUES (6, 'rolled back');
ROLLBACK TO SAVEPOINT s1;
INSERT INTO ctx VALUES (7, 'kept');
COMMIT;
SELECT e->>'instance_id' AS id, e->'user_id' AS user_id FROM audit_events() e;

-- set_context: one call, transaction-local by default
BEGIN;
SELECT activity_audit.set_context('u1', '{"email": "a@b.c", "roles": ["admin"]}', 'r1', '{"ip": "10.0.0.1"}');
SHOW audit.user_info;
INSERT INTO ctx VALUES (8, 'x');
COMMIT;
SHOW audit.user_id;
-- ... or for the session; NULLs clear
SELECT activity_audit.set_context('u2', is_local => false);
INSERT INTO ctx VALUES (9, 'y');
SELECT activity_audit.set_context(NULL, is_local => false);
INSERT INTO ctx VALUES (10, 'z');
SELECT e->>'instance_id' AS id, e->'user_id' AS user_id, e->'user_info' AS user_info,
       e->'request_id' AS request_id, e->'extra' AS extra FROM audit_events() e;

-- JSON settings are validated when set, and stored compactly
SET audit.user_info = '{"a": 1';
SET audit.user_info = '[1, 2]';
SET audit.user_info = '"just a string"';
SET audit.extra = '42';
SET audit.extra = 'not json';
SELECT activity_audit.set_context('u3', '[1]'::jsonb);
SET audit.user_info = E'{\n  "name": "Zo\u00eb",\n  "note": "tab\\there"\n}';
SHOW audit.user_info;
SET audit.user_info = '';
SHOW audit.user_info;

-- text settings are escaped in the event; the event stays one line
SET audit.user_id = E'quote" backslash\\ newline\n é';
SET audit.user_info = E'{"k":\n"日本"}';
INSERT INTO ctx VALUES (11, 'w');
SELECT raw ~ E'\n' AS has_newline, raw ~ '[^\x20-\x7e]' AS has_non_ascii,
       raw::jsonb->>'user_id' = current_setting('audit.user_id') AS user_id_round_trips,
       raw::jsonb->'user_info' AS user_info
  FROM audit_raw() raw;
RESET audit.user_id;
RESET audit.user_info;

-- the audit prefix is reserved
SET audit.no_such_setting = 'x';
SELECT set_config('audit.typo_user_id', '1', false);

-- provenance: database, current_user (after SET ROLE), application_name;
-- client_addr is null over a Unix socket
CREATE ROLE regress_audit_app;
GRANT INSERT, SELECT ON ctx TO regress_audit_app;
SET application_name = 'context-test';
SET ROLE regress_audit_app;
INSERT INTO ctx VALUES (12, 'as app');
RESET ROLE;
RESET application_name;
SELECT e->>'db' = current_database() AS db_ok, e->>'db_user' AS db_user,
       e->>'session_user' = session_user AS session_user_ok,
       e->>'application_name' AS application_name, e->'client_addr' AS client_addr,
       e->>'schema' AS schema, e->>'table' AS "table"
  FROM audit_events() e;

-- session_user: the role that logged in, which neither SET ROLE nor a
-- SECURITY DEFINER function hides; in one transaction, so each row's
-- roles are the ones it was written under (the compact header follows
-- them), also when only the session user changes (SET SESSION
-- AUTHORIZATION under the same SET ROLE)
CREATE ROLE regress_audit_login1 IN ROLE regress_audit_app;
CREATE ROLE regress_audit_login2 IN ROLE regress_audit_app;
CREATE FUNCTION ctx_definer_insert(k int) RETURNS void
LANGUAGE sql SECURITY DEFINER AS $$ INSERT INTO ctx VALUES (k, 'definer') $$;
ALTER FUNCTION ctx_definer_insert(int) OWNER TO regress_audit_app;
GRANT EXECUTE ON FUNCTION ctx_definer_insert(int) TO regress_audit_login1;
BEGIN;
SET LOCAL SESSION AUTHORIZATION regress_audit_login1;
SELECT ctx_definer_insert(113);
SET LOCAL ROLE regress_audit_app;
INSERT INTO ctx VALUES (114, 'login1 as app');
SET LOCAL SESSION AUTHORIZATION regress_audit_login2;
SET LOCAL ROLE regress_audit_app;
INSERT INTO ctx VALUES (115, 'login2 as app');
RESET SESSION AUTHORIZATION;
RESET ROLE;
INSERT INTO ctx VALUES (116, 'superuser');
COMMIT;
SELECT e->'instance_repr'->>'id' AS id,
       CASE WHEN e->>'db_user' = current_user THEN '(the superuser)'
            ELSE e->>'db_user' END AS db_user,
       CASE WHEN e->>'session_user' = session_user THEN '(the superuser)'
            ELSE e->>'session_user' END AS session_user
  FROM audit_events() e;
DROP FUNCTION ctx_definer_insert(int);
DELETE FROM ctx WHERE id > 100;
SELECT count(*) AS deleted FROM audit_events();
DROP ROLE regress_audit_login1, regress_audit_login2;

-- audit.enabled: only a superuser may turn auditing off
SET ROLE regress_audit_app;
SET audit.enabled = off;
SET audit.user_id = 'app users may set context';
RESET audit.user_id;
RESET ROLE;
SET audit.enabled = off;
INSERT INTO ctx VALUES (13, 'not audited');
RESET audit.enabled;
INSERT INTO ctx VALUES (14, 'audited');
-- (one AUDIT_SUPPRESSED says that the table's changes were not audited)
SELECT e->>'name' AS name, e->>'event_type' AS event_type, e->>'instance_id' AS id FROM audit_events() e;

SELECT activity_audit.untrack('ctx');
REVOKE ALL ON ctx FROM regress_audit_app;
DROP ROLE regress_audit_app;
SELECT count(*) AS leftover FROM audit_raw();
