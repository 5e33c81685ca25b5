--
-- partition: tracking a partitioned table audits every partition, present
-- and future; events name the parent's model and the leaf partition that
-- actually changed.
--
-- Drain whatever earlier tests left in the slot.
SELECT count(*) >= 0 AS drained FROM audit_raw();

-- Events with the table they came from.
CREATE FUNCTION part_events() RETURNS TABLE(event_type text, model text, "table" text, instance_id text, instance_repr jsonb, message text)
LANGUAGE sql AS $$
  SELECT e->>'event_type', e->>'model', (e->>'schema') || '.' || (e->>'table'),
         e->>'instance_id', e->'instance_repr', e->>'message'
    FROM audit_events() e
$$;
-- The audit triggers on the tables of this test (cloned: made by
-- PostgreSQL from the parent's row trigger).
CREATE FUNCTION part_triggers() RETURNS TABLE(tbl text, tgname name, cloned boolean)
LANGUAGE sql AS $$
  SELECT t.tgrelid::regclass::text, t.tgname, t.tgparentid <> 0
    FROM pg_trigger t
   WHERE t.tgname LIKE 'activity\_audit\_%' AND t.tgrelid::regclass::text LIKE 'part\_%'
   ORDER BY 1, 2
$$;

-- Range partitions, one of them partitioned again.
CREATE TABLE part_m (id int PRIMARY KEY, note text) PARTITION BY RANGE (id);
CREATE TABLE part_m1 PARTITION OF part_m FOR VALUES FROM (1) TO (100);
CREATE TABLE part_m2 PARTITION OF part_m FOR VALUES FROM (100) TO (300) PARTITION BY RANGE (id);
CREATE TABLE part_m2a PARTITION OF part_m2 FOR VALUES FROM (100) TO (150);
CREATE TABLE part_m2b PARTITION OF part_m2 FOR VALUES FROM (150) TO (200);
SELECT activity_audit.track('part_m', 'Measurement');

-- The row trigger is cloned to every partition by PostgreSQL; the TRUNCATE
-- trigger is on the parent and on every leaf.
SELECT * FROM part_triggers();

-- Only the parent is listed as tracked.
SELECT * FROM activity_audit.tracked WHERE table_name::text LIKE 'part\_%';

--
-- Writes through the parent, the sub-partitioned partition and the leaves:
-- model is the parent's, the table is the leaf written, instance_id the key.
--
INSERT INTO part_m VALUES (1, 'a'), (120, 'b'), (160, 'c');
INSERT INTO part_m2 VALUES (121, 'd');
INSERT INTO part_m1 VALUES (2, 'e');
INSERT INTO part_m2b VALUES (161, 'f');
UPDATE part_m SET note = 'a2' WHERE id = 1;
UPDATE part_m2a SET note = 'b2' WHERE id = 120;
DELETE FROM part_m WHERE id = 161;
SELECT * FROM part_events();

--
-- An UPDATE that moves a row to another partition: PostgreSQL runs it as a
-- DELETE from the old partition and an INSERT into the new one, and fires
-- the DELETE and INSERT row triggers there (no UPDATE trigger), so the
-- events are a DELETE (old leaf, old key) then a CREATE (new leaf, new key),
-- without "changes".
--
UPDATE part_m SET id = 170, note = 'moved' WHERE id = 1;
UPDATE part_m2 SET id = 122 WHERE id = 160;
SELECT * FROM part_events();
-- Moving through a leaf is an error in PostgreSQL: no event.
UPDATE part_m1 SET id = 171 WHERE id = 2;
-- A move in a rolled back transaction or subtransaction leaves nothing.
BEGIN;
UPDATE part_m SET id = 3 WHERE id = 170;
ROLLBACK;
BEGIN;
SAVEPOINT s;
UPDATE part_m SET id = 4 WHERE id = 170;
INSERT INTO part_m VALUES (5, 'gone');
ROLLBACK TO SAVEPOINT s;
UPDATE part_m SET note = 'kept' WHERE id = 170;
COMMIT;
SELECT * FROM part_events();
SELECT tableoid::regclass, * FROM part_m ORDER BY id;

--
-- track() and untrack() on a partition of a tracked table are refused: its
-- configuration is the parent's.
--
SELECT activity_audit.track('part_m1', 'Other');
SELECT activity_audit.track('part_m2');
SELECT activity_audit.track('part_m2a');
SELECT activity_audit.untrack('part_m1');
SELECT activity_audit.untrack('part_m2');
SELECT * FROM activity_audit.tracked WHERE table_name::text LIKE 'part\_%';

--
-- Partitions created later (CREATE TABLE ... PARTITION OF, also below the
-- sub-partitioned partition) and attached later (ATTACH PARTITION, also of
-- a partitioned table) are audited: rows and TRUNCATE.  part_m4 has its
-- columns in another order and a dropped column, and a row written before
-- it was attached (not audited: the table was not tracked then).
--
CREATE TABLE part_m3 PARTITION OF part_m FOR VALUES FROM (300) TO (400);
CREATE TABLE part_m2c PARTITION OF part_m2 FOR VALUES FROM (200) TO (300);
CREATE TABLE part_m4 (junk int, note text, id int PRIMARY KEY);
ALTER TABLE part_m4 DROP COLUMN junk;
INSERT INTO part_m4 VALUES ('before attach', 400);
ALTER TABLE part_m ATTACH PARTITION part_m4 FOR VALUES FROM (400) TO (500);
CREATE TABLE part_m6 (id int PRIMARY KEY, note text) PARTITION BY RANGE (id);
CREATE TABLE part_m6a PARTITION OF part_m6 FOR VALUES FROM (600) TO (700);
ALTER TABLE part_m ATTACH PARTITION part_m6 FOR VALUES FROM (600) TO (700);
SELECT * FROM part_triggers();
INSERT INTO part_m VALUES (300, 'g'), (200, 'h'), (401, 'i'), (600, 'j');
INSERT INTO part_m4 VALUES ('k', 402);
UPDATE part_m SET note = 'i2' WHERE id = 401;
UPDATE part_m SET id = 301 WHERE id = 400;
TRUNCATE part_m3;
TRUNCATE part_m2c;
TRUNCATE part_m4;
TRUNCATE part_m6;
SELECT * FROM part_events();

-- A table that is tracked on its own attaches too, and is then audited as
-- a partition only (more below, with part_a).
CREATE TABLE part_m7 (id int PRIMARY KEY, note text);
SELECT activity_audit.track('part_m7', 'Seven');
ALTER TABLE part_m ATTACH PARTITION part_m7 FOR VALUES FROM (700) TO (800);
INSERT INTO part_m VALUES (700, 'l');
TRUNCATE part_m7;
SELECT * FROM part_events();

--
-- A partition attached with a UNIQUE constraint instead of a primary key:
-- PostgreSQL accepts it as the partition's part of the parent's primary key,
-- so the row's key is still id and instance_id must be it.
--
CREATE TABLE part_m5 (id int NOT NULL, note text, UNIQUE (id));
ALTER TABLE part_m ATTACH PARTITION part_m5 FOR VALUES FROM (500) TO (600);
INSERT INTO part_m VALUES (500, 'm');
SELECT * FROM part_events();

--
-- DETACH PARTITION: the detached table is no longer audited.  PostgreSQL
-- drops the cloned row trigger; no audit trigger at all may remain on it
-- (a TRUNCATE of it must not produce an event under the parent's model).
--
ALTER TABLE part_m DETACH PARTITION part_m3;
SELECT * FROM part_triggers() WHERE tbl = 'part_m3';
INSERT INTO part_m3 VALUES (302, 'n');
UPDATE part_m3 SET note = 'n2' WHERE id = 302;
TRUNCATE part_m3;
-- the same with DETACH ... CONCURRENTLY, of a partitioned partition
ALTER TABLE part_m DETACH PARTITION part_m6 CONCURRENTLY;
SELECT * FROM part_triggers() WHERE tbl LIKE 'part\_m6%';
INSERT INTO part_m6 VALUES (601, 'o');
TRUNCATE part_m6;
SELECT * FROM part_events();
-- the partitions still attached are audited as before
INSERT INTO part_m VALUES (3, 'p');
SELECT * FROM part_events();

--
-- ATTACH of tables tracked on their own to a tracked table (pg_partman
-- creates a partition, then attaches it; an event trigger that tracks every
-- new table may have tracked it in between).  Each gives up its own
-- configuration, and that of the tables below it: its own audit triggers
-- are dropped, PostgreSQL clones the parent's row trigger, every leaf gets
-- a TRUNCATE trigger with the parent's configuration, and only the parent
-- is listed as tracked.  Every change gives exactly one event, with the
-- parent's model, exclude, redact and log_noop_updates.  Attached are a
-- plain table (part_a1), a partitioned table tracked itself (part_a2, with
-- part_a2x), and a partitioned table with a tracked partition (part_a3,
-- with part_a3x).
--
CREATE FUNCTION part_a_triggers() RETURNS TABLE(tbl text, tgname name, cloned boolean, config jsonb)
LANGUAGE sql AS $$
  SELECT t.tgrelid::regclass::text, t.tgname, t.tgparentid <> 0,
         activity_audit._trigger_config(t.tgargs, t.tgnargs)
    FROM pg_trigger t
   WHERE t.tgname LIKE 'activity\_audit\_%' AND t.tgrelid::regclass::text LIKE 'part\_a%'
   ORDER BY 1, 2
$$;
CREATE FUNCTION part_a_events() RETURNS TABLE(event_type text, model text, "table" text, instance_id text, instance_repr jsonb, changes jsonb)
LANGUAGE sql AS $$
  SELECT e->>'event_type', e->>'model', e->>'table', e->>'instance_id', e->'instance_repr', e->'changes'
    FROM audit_events() e
$$;
CREATE TABLE part_a (id int PRIMARY KEY, note text, secret text, pin text) PARTITION BY RANGE (id);
SELECT activity_audit.track('part_a', 'Account', exclude => '{secret}', redact => '{pin}');
CREATE TABLE part_a1 (id int PRIMARY KEY, note text, secret text, pin text);
SELECT activity_audit.track('part_a1', 'One', exclude => '{pin}', redact => '{note}',
                            log_noop_updates => true);
CREATE TABLE part_a2 (id int PRIMARY KEY, note text, secret text, pin text) PARTITION BY RANGE (id);
CREATE TABLE part_a2x PARTITION OF part_a2 FOR VALUES FROM (200) TO (300);
SELECT activity_audit.track('part_a2', 'Two');
CREATE TABLE part_a3 (id int PRIMARY KEY, note text, secret text, pin text) PARTITION BY RANGE (id);
CREATE TABLE part_a3x PARTITION OF part_a3 FOR VALUES FROM (300) TO (400);
SELECT activity_audit.track('part_a3x', 'Three');
INSERT INTO part_a1 VALUES (100, 'before', 's0', 'p0');
SELECT * FROM part_a_events();
-- an ATTACH that fails (a row outside the bounds) leaves everything as it was
ALTER TABLE part_a ATTACH PARTITION part_a1 FOR VALUES FROM (0) TO (50);
SELECT * FROM activity_audit.tracked WHERE table_name::text LIKE 'part\_a%' ORDER BY 1::text;
ALTER TABLE part_a ATTACH PARTITION part_a1 FOR VALUES FROM (100) TO (200);
ALTER TABLE part_a ATTACH PARTITION part_a2 FOR VALUES FROM (200) TO (300);
ALTER TABLE part_a ATTACH PARTITION part_a3 FOR VALUES FROM (300) TO (400);
SELECT * FROM part_a_triggers();
SELECT * FROM activity_audit.tracked WHERE table_name::text LIKE 'part\_a%' ORDER BY 1::text;
INSERT INTO part_a VALUES (101, 'n1', 's1', 'p1'), (201, 'n2', 's2', 'p2'), (301, 'n3', 's3', 'p3');
INSERT INTO part_a2x VALUES (202, 'n4', 's4', 'p4');
-- only an excluded column changes, or nothing: no event
UPDATE part_a SET secret = 'changed' WHERE id = 101;
UPDATE part_a1 SET note = note WHERE id = 100;
UPDATE part_a SET note = 'n9', pin = 'p9' WHERE id IN (100, 301);
DELETE FROM part_a WHERE id = 201;
TRUNCATE part_a1, part_a3;
SELECT * FROM part_a_events();

--
-- DETACH: a detached partition is not audited (PostgreSQL drops the cloned
-- row trigger, the hook the TRUNCATE trigger), and the configuration it had
-- of its own before the attach is not restored.  track() audits it again
-- on its own.  A tracked table attached to a table that is not tracked
-- keeps its own configuration.
--
ALTER TABLE part_a DETACH PARTITION part_a1;
ALTER TABLE part_a DETACH PARTITION part_a2;
SELECT * FROM part_a_triggers() WHERE tbl <> 'part_a' AND tbl NOT LIKE 'part\_a3%';
SELECT * FROM activity_audit.tracked WHERE table_name::text LIKE 'part\_a%' ORDER BY 1::text;
INSERT INTO part_a1 VALUES (102, 'n5', 's5', 'p5');
INSERT INTO part_a2 VALUES (203, 'n6', 's6', 'p6');
TRUNCATE part_a1, part_a2;
SELECT * FROM part_a_events();
SELECT activity_audit.track('part_a1', 'One again');
CREATE TABLE part_u (id int PRIMARY KEY, note text, secret text, pin text) PARTITION BY RANGE (id);
ALTER TABLE part_u ATTACH PARTITION part_a1 FOR VALUES FROM (100) TO (200);
SELECT * FROM activity_audit.tracked WHERE table_name::text LIKE 'part\_a%' ORDER BY 1::text;
INSERT INTO part_u VALUES (103, 'n7', 's7', 'p7');
SELECT * FROM part_a_events();
DROP TABLE part_a, part_a2, part_u;
DROP FUNCTION part_a_triggers(), part_a_events();

--
-- track() of a partitioned table some of whose partitions are tracked on
-- their own (the reverse order of the ATTACH above): they give up their own
-- configuration as on ATTACH, PostgreSQL clones the parent's row trigger
-- into them, and every partition is audited once, under the parent's
-- configuration; only the parent is listed as tracked.  A plain partition
-- (part_t1) and a partitioned one (part_t2, with part_t2x) are tracked on
-- their own.  A track() of the parent that fails, or is rolled back, leaves
-- their own tracking as it was.
--
CREATE FUNCTION part_t_triggers() RETURNS TABLE(tbl text, tgname name, cloned boolean, config jsonb)
LANGUAGE sql AS $$
  SELECT t.tgrelid::regclass::text, t.tgname, t.tgparentid <> 0,
         activity_audit._trigger_config(t.tgargs, t.tgnargs)
    FROM pg_trigger t
   WHERE t.tgname LIKE 'activity\_audit\_%' AND t.tgrelid::regclass::text LIKE 'part\_t%'
   ORDER BY 1, 2
$$;
CREATE FUNCTION part_t_events() RETURNS TABLE(event_type text, model text, "table" text, instance_id text, instance_repr jsonb, changes jsonb)
LANGUAGE sql AS $$
  SELECT e->>'event_type', e->>'model', e->>'table', e->>'instance_id', e->'instance_repr', e->'changes'
    FROM audit_events() e
$$;
CREATE TABLE part_t (id int PRIMARY KEY, note text, secret text, pin text) PARTITION BY RANGE (id);
CREATE TABLE part_t1 PARTITION OF part_t FOR VALUES FROM (100) TO (200);
CREATE TABLE part_t2 PARTITION OF part_t FOR VALUES FROM (200) TO (300) PARTITION BY RANGE (id);
CREATE TABLE part_t2x PARTITION OF part_t2 FOR VALUES FROM (200) TO (300);
SELECT activity_audit.track('part_t1', 'TOne', exclude => '{pin}', redact => '{note}');
SELECT activity_audit.track('part_t2', 'TTwo', exclude => '{secret}');
INSERT INTO part_t VALUES (100, 'n0', 's0', 'p0'), (200, 'n0', 's0', 'p0');
SELECT * FROM part_t_events();
-- a track() of the parent that fails (an unknown column) or is rolled back
-- leaves the partitions' own tracking as it was
SELECT activity_audit.track('part_t', 'Tree', exclude => '{nope}');
BEGIN;
SELECT activity_audit.track('part_t', 'Tree');
ROLLBACK;
SELECT * FROM part_t_triggers();
SELECT * FROM activity_audit.tracked WHERE table_name::text LIKE 'part\_t%' ORDER BY 1::text;
SELECT activity_audit.track('part_t', 'Tree', exclude => '{secret}', redact => '{pin}');
SELECT * FROM part_t_triggers();
SELECT * FROM activity_audit.tracked WHERE table_name::text LIKE 'part\_t%' ORDER BY 1::text;
-- one event per changed row, with the parent's model, exclude and redact
INSERT INTO part_t VALUES (101, 'n1', 's1', 'p1'), (201, 'n2', 's2', 'p2');
INSERT INTO part_t1 VALUES (102, 'n3', 's3', 'p3');
INSERT INTO part_t2x VALUES (202, 'n4', 's4', 'p4');
UPDATE part_t SET note = 'n9', pin = 'p9' WHERE id IN (100, 200);
-- only an excluded column changes: no event
UPDATE part_t SET secret = 'changed' WHERE id = 101;
DELETE FROM part_t WHERE id = 201;
TRUNCATE part_t1, part_t2;
SELECT * FROM part_t_events();
DROP TABLE part_t;
DROP FUNCTION part_t_triggers(), part_t_events();

--
-- untrack() of the parent removes every audit trigger of the whole tree,
-- and writes anywhere in it produce no events.
--
SELECT activity_audit.untrack('part_m');
SELECT * FROM part_triggers()
 WHERE tbl::regclass IN (SELECT relid FROM pg_partition_tree('part_m'));
SELECT * FROM activity_audit.tracked WHERE table_name::text LIKE 'part\_%';
INSERT INTO part_m VALUES (6, 'q'), (130, 'r');
UPDATE part_m SET id = 131 WHERE id = 6;
DELETE FROM part_m2a WHERE id = 130;
TRUNCATE part_m4;
TRUNCATE part_m;
SELECT count(*) AS events_after_untrack FROM audit_raw();

-- Nothing left behind for the next test.
DROP TABLE part_m, part_m3, part_m6;
DROP FUNCTION part_events(), part_triggers();
SELECT count(*) AS leftover_events FROM audit_raw();
