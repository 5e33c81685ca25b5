--
-- track: choosing what is audited (track, untrack, the tracked view) and
-- the exclude / redact / no-op update rules.
--
-- plpgsql line numbers in CONTEXT lines would make this file brittle
\set SHOW_CONTEXT never
SELECT count(*) AS leftover FROM audit_raw();

CREATE TABLE patients (id int PRIMARY KEY, name text, email text, ssn text, score int);
SELECT activity_audit.track('public.patients', model_name => 'Patient',
                            exclude => '{ssn}', redact => '{email}');
SELECT * FROM activity_audit.tracked ORDER BY table_name::text;

-- the example of the contract
INSERT INTO patients VALUES (42, 'Ann', 'a@b.c', '123-45', 12);
BEGIN;
SELECT activity_audit.set_context('14ab1197', '{"email": "a@b.c"}', 'req-1');
UPDATE patients SET email = 'new@b.c', score = 13 WHERE id = 42;
COMMIT;
SELECT e->>'event_type' AS type, e->>'instance_id' AS id, e->'instance_repr' AS repr,
       e->'changes' AS changes, e->>'user_id' AS user_id, e->'user_info' AS user_info,
       e->>'request_id' AS request_id, e->>'message' AS message
  FROM audit_events() e;

-- instance_repr is to_jsonb(row) minus excluded, with redacted replaced
INSERT INTO patients VALUES (43, 'Bob', 'b@b.c', '999', 7);
SELECT (SELECT e->'instance_repr' FROM audit_events() e)
       = (SELECT to_jsonb(p) - 'ssn' || '{"email": "[REDACTED]"}' FROM patients p WHERE id = 43) AS oracle_holds;

-- an UPDATE that changes only excluded columns produces no event
UPDATE patients SET ssn = '000' WHERE id = 43;
-- an UPDATE that changes nothing produces no event
UPDATE patients SET score = score WHERE id = 43;
-- a changed redacted column still shows up in changes
UPDATE patients SET email = 'c@b.c' WHERE id = 43;
SELECT * FROM audit_brief();

-- track is idempotent and re-configures
SELECT activity_audit.track('patients', model_name => 'Patient', log_noop_updates => true);
SELECT activity_audit.track('patients', model_name => 'Patient', log_noop_updates => true);
SELECT * FROM activity_audit.tracked;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'patients'::regclass ORDER BY tgname;
-- with log_noop_updates every UPDATE is an event, with empty changes
UPDATE patients SET score = score WHERE id = 43;
SELECT * FROM audit_brief();

-- untrack stops auditing; untracking again only notices
SELECT activity_audit.untrack('patients');
SELECT activity_audit.untrack('patients');
INSERT INTO patients VALUES (44, 'Cy', 'c@c.c', '1', 1);
SELECT count(*) AS events_after_untrack FROM audit_raw();
SELECT count(*) AS tracked FROM activity_audit.tracked;
SELECT count(*) AS triggers_left FROM pg_trigger WHERE tgrelid = 'patients'::regclass;

-- model defaults to the table's name
SELECT activity_audit.track('patients');
SELECT model_name FROM activity_audit.tracked;
DELETE FROM patients WHERE id = 44;
SELECT * FROM audit_brief();
SELECT activity_audit.untrack('patients');

-- composite primary key: instance_id is a JSON array text, in key order
CREATE TABLE line_items (order_id int, sku text, qty int, PRIMARY KEY (sku, order_id));
SELECT activity_audit.track('line_items');
INSERT INTO line_items VALUES (1, 'a"b', 2);
UPDATE line_items SET qty = 3;
SELECT e->>'instance_id' AS instance_id, e->>'message' AS message,
       (e->>'instance_id')::jsonb AS parsed FROM audit_events() e;

-- no primary key: instance_id is null
CREATE TABLE notes (body text);
SELECT activity_audit.track('notes');
INSERT INTO notes VALUES ('hello');
SELECT e->'instance_id' AS instance_id, e->>'message' AS message FROM audit_events() e;

-- a primary key change: the event carries the new key, changes show both
UPDATE line_items SET order_id = 2;
SELECT * FROM audit_brief();

-- identifiers with quotes, spaces and capitals; no SQL injection through
-- any argument of track()
CREATE SCHEMA "Odd Schema";
CREATE TABLE "Odd Schema"."My ""Table""" ("Id" int PRIMARY KEY, "Full Name" text, "we'ird" text, "x); DROP TABLE notes; --" text);
SELECT activity_audit.track('"Odd Schema"."My ""Table"""',
                            model_name => 'M''); DROP TABLE notes; --',
                            exclude => ARRAY['x); DROP TABLE notes; --'],
                            redact => ARRAY['we''ird']);
SELECT * FROM activity_audit.tracked WHERE table_name::text LIKE '%Odd%';
INSERT INTO "Odd Schema"."My ""Table""" VALUES (1, 'Q "R" S', 'secret', 'gone');
SELECT e->>'model' AS model, e->>'schema' AS schema, e->>'table' AS "table",
       e->'instance_repr' AS repr, e->>'message' AS message FROM audit_events() e;
SELECT count(*) AS notes_still_there FROM notes;

-- errors name the offending thing; nothing is half-applied: a failed
-- re-configuration leaves the previous one in force
SELECT activity_audit.track('patients', model_name => 'Before', redact => '{email}');
SELECT activity_audit.track(NULL);
SELECT activity_audit.track('patients', exclude => '{nope}');
SELECT activity_audit.track('patients', redact => '{"Name"}');
SELECT activity_audit.track('patients', exclude => '{ssn}', redact => '{ssn}');
SELECT activity_audit.track('patients', exclude => ARRAY[NULL]);
SELECT activity_audit.track('patients', model_name => '');
CREATE VIEW patients_v AS SELECT * FROM patients;
SELECT activity_audit.track('patients_v');
CREATE SEQUENCE some_seq;
SELECT activity_audit.track('some_seq');
SELECT activity_audit.track('no_such_table');
SELECT * FROM activity_audit.tracked WHERE table_name = 'patients'::regclass;
SELECT tgname FROM pg_trigger WHERE tgrelid = 'patients'::regclass ORDER BY 1;
SELECT activity_audit.untrack(NULL);
SELECT activity_audit.untrack('patients');

-- dropping a tracked table takes its configuration with it
DROP TABLE notes;
SELECT table_name FROM activity_audit.tracked ORDER BY 1::text;

SELECT activity_audit.untrack('line_items');
SELECT activity_audit.untrack('"Odd Schema"."My ""Table"""');
SELECT count(*) AS leftover FROM audit_raw();
