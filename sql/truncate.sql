--
-- truncate: a TRUNCATE of a tracked table is one event per table emptied,
-- with no row in it.
--
-- Drain whatever earlier tests left in the slot.
SELECT count(*) >= 0 AS drained FROM audit_raw();

-- Events with the table they came from, and whether a "changes" key exists.
CREATE FUNCTION trunc_events() RETURNS TABLE(event_type text, model text, "table" text, instance_id text, instance_repr jsonb, message text, has_changes boolean)
LANGUAGE sql AS $$
  SELECT e->>'event_type', e->>'model', (e->>'schema') || '.' || (e->>'table'),
         e->>'instance_id', e->'instance_repr', e->>'message', e ? 'changes'
    FROM audit_events() e
$$;

CREATE TABLE trunc_a (id int PRIMARY KEY, v text);
CREATE TABLE trunc_b (id int PRIMARY KEY, v text);
CREATE TABLE trunc_u (id int PRIMARY KEY, v text);   -- never tracked
SELECT activity_audit.track('trunc_a', 'Alpha', exclude => '{v}');
SELECT activity_audit.track('trunc_b');
INSERT INTO trunc_a SELECT g, 'a' || g FROM generate_series(1, 3) g;
INSERT INTO trunc_b VALUES (1, 'b1');
INSERT INTO trunc_u VALUES (1, 'u1');
SELECT count(*) >= 0 AS drained FROM audit_raw();

--
-- One table with three rows: exactly one event, TRUNCATE, with null
-- instance_id and instance_repr and no "changes" key (no DELETE per row).
--
TRUNCATE trunc_a;
SELECT * FROM trunc_events();
-- The whole event (minus what varies per run, and with the names of the
-- database, role and application compared rather than shown).
INSERT INTO trunc_a VALUES (1, 'x');
SELECT count(*) >= 0 AS drained FROM audit_raw();
TRUNCATE trunc_a;
SELECT jsonb_pretty(e - '{db,db_user,application_name}'::text[]),
       e->>'db' = current_database() AS db_ok,
       e->>'db_user' = current_user AS db_user_ok,
       e->>'application_name' = current_setting('application_name') AS application_name_ok
  FROM audit_events() e;
-- An empty table: still one event (the statement is what is audited).
TRUNCATE trunc_a;
SELECT * FROM trunc_events();

--
-- Several tables in one statement, tracked and untracked: one event per
-- tracked table, in the statement's order, each with its own model.
--
INSERT INTO trunc_a VALUES (1, 'a1');
SELECT count(*) >= 0 AS drained FROM audit_raw();
TRUNCATE trunc_b, trunc_u, trunc_a RESTART IDENTITY;
SELECT * FROM trunc_events();
SELECT (SELECT count(*) FROM trunc_a) AS a, (SELECT count(*) FROM trunc_b) AS b, (SELECT count(*) FROM trunc_u) AS u;

--
-- TRUNCATE ... CASCADE: tables emptied through foreign keys are reported
-- too, if tracked (trunc_c is, trunc_d is not).
--
CREATE TABLE trunc_p (id int PRIMARY KEY);
CREATE TABLE trunc_c (id int PRIMARY KEY, p int REFERENCES trunc_p);
CREATE TABLE trunc_d (id int PRIMARY KEY, c int REFERENCES trunc_c);
SELECT activity_audit.track('trunc_p', 'Parent');
SELECT activity_audit.track('trunc_c', 'Child');
INSERT INTO trunc_p VALUES (1);
INSERT INTO trunc_c VALUES (10, 1);
INSERT INTO trunc_d VALUES (100, 10);
SELECT count(*) >= 0 AS drained FROM audit_raw();
TRUNCATE trunc_p;
TRUNCATE trunc_p CASCADE;
SELECT event_type, model, "table", message FROM trunc_events() ORDER BY "table";
SELECT (SELECT count(*) FROM trunc_c) AS c, (SELECT count(*) FROM trunc_d) AS d;

--
-- Partitioned tables: TRUNCATE of the parent gives one event per leaf
-- partition (none for the parent or the sub-partitioned partition), and
-- TRUNCATE of one partition one event.  TRUNCATE ONLY of a partitioned
-- table is refused by PostgreSQL.
--
CREATE TABLE trunc_m (id int PRIMARY KEY, v text) PARTITION BY RANGE (id);
CREATE TABLE trunc_m1 PARTITION OF trunc_m FOR VALUES FROM (1) TO (100);
CREATE TABLE trunc_m2 PARTITION OF trunc_m FOR VALUES FROM (100) TO (200) PARTITION BY RANGE (id);
CREATE TABLE trunc_m2a PARTITION OF trunc_m2 FOR VALUES FROM (100) TO (150);
CREATE TABLE trunc_m2b PARTITION OF trunc_m2 FOR VALUES FROM (150) TO (200);
SELECT activity_audit.track('trunc_m', 'Meter');
INSERT INTO trunc_m VALUES (1, 'x'), (120, 'y');
SELECT count(*) >= 0 AS drained FROM audit_raw();
TRUNCATE trunc_m;
SELECT event_type, model, "table", instance_id, instance_repr, message FROM trunc_events() ORDER BY "table";
TRUNCATE trunc_m1;
SELECT event_type, model, "table", message FROM trunc_events();
TRUNCATE trunc_m2;
SELECT event_type, model, "table", message FROM trunc_events() ORDER BY "table";
TRUNCATE ONLY trunc_m;
-- together with a plain table in one statement
TRUNCATE trunc_m2a, trunc_b;
SELECT event_type, model, "table", message FROM trunc_events() ORDER BY "table";

--
-- Rolled back TRUNCATEs leave no event, and the rows stay.
--
INSERT INTO trunc_a VALUES (1, 'a1');
INSERT INTO trunc_m VALUES (2, 'z');
SELECT count(*) >= 0 AS drained FROM audit_raw();
BEGIN;
TRUNCATE trunc_a;
TRUNCATE trunc_m;
ROLLBACK;
BEGIN;
INSERT INTO trunc_b VALUES (2, 'b2');
SAVEPOINT s;
TRUNCATE trunc_a, trunc_b;
ROLLBACK TO SAVEPOINT s;
SAVEPOINT s2;
TRUNCATE trunc_m1;
RELEASE SAVEPOINT s2;
COMMIT;
-- a TRUNCATE that fails (foreign key without CASCADE) leaves none either
TRUNCATE trunc_p;
SELECT event_type, model, "table", instance_id, message FROM trunc_events();
SELECT (SELECT count(*) FROM trunc_a) AS a, (SELECT count(*) FROM trunc_b) AS b, (SELECT count(*) FROM trunc_m) AS m;

--
-- TRUNCATE and row changes of one transaction keep their order.
--
BEGIN;
INSERT INTO trunc_a VALUES (5, 'a5');
TRUNCATE trunc_a;
INSERT INTO trunc_a VALUES (6, 'a6');
COMMIT;
SELECT event_type, model, "table", instance_id, message FROM trunc_events();

-- Untracked: no TRUNCATE event.
SELECT activity_audit.untrack('trunc_a');
TRUNCATE trunc_a;
SELECT count(*) AS events_after_untrack FROM audit_raw();

-- Nothing left behind for the next test.
SELECT activity_audit.untrack('trunc_b');
SELECT activity_audit.untrack('trunc_p');
SELECT activity_audit.untrack('trunc_c');
SELECT activity_audit.untrack('trunc_m');
DROP TABLE trunc_a, trunc_b, trunc_u, trunc_d, trunc_c, trunc_p, trunc_m;
DROP FUNCTION trunc_events();
SELECT count(*) AS leftover_events FROM audit_raw();
