--
-- partition_roles: installing the extension does not change what a role
-- may do.  An ordinary role with CREATE on a schema runs partition DDL on
-- its own tables (CREATE TABLE ... PARTITION BY / PARTITION OF, ATTACH,
-- DETACH) in a fresh session, that is with no plan cached by a superuser,
-- both with nothing tracked and with a tracked table of its own, whose new
-- partitions are then audited like the others.  And it still cannot use
-- the extension's internal functions on another role's tables.
--
-- plpgsql line numbers in CONTEXT lines would make this file brittle
\set SHOW_CONTEXT never
SELECT current_user AS admin \gset
SELECT count(*) >= 0 AS drained FROM audit_raw();

CREATE ROLE regress_part_app LOGIN;
CREATE ROLE regress_part_other LOGIN;
CREATE SCHEMA part_roles;
GRANT USAGE, CREATE ON SCHEMA part_roles TO regress_part_app, regress_part_other;

-- The audit triggers of the tables of this test (cloned: made by
-- PostgreSQL from the parent's row trigger), with the model of their
-- configuration.  SECURITY DEFINER: the roles may not read the
-- configuration with activity_audit._trigger_config() themselves.
CREATE FUNCTION part_roles_triggers() RETURNS TABLE(tbl text, tgname name, cloned boolean, model text)
LANGUAGE sql SECURITY DEFINER SET search_path = pg_catalog AS $$
  SELECT c.relname::text, t.tgname, t.tgparentid <> 0,
         activity_audit._trigger_config(t.tgargs, t.tgnargs)->>'model'
    FROM pg_trigger t JOIN pg_class c ON c.oid = t.tgrelid
   WHERE t.tgname LIKE 'activity\_audit\_%'
     AND c.relnamespace = 'part_roles'::regnamespace
   ORDER BY 1, 2
$$;

--
-- Nothing tracked: every kind of partition DDL works.
--
\c - regress_part_app
SET search_path = part_roles, public;
CREATE TABLE pr_free (id int PRIMARY KEY, note text) PARTITION BY LIST (id);
CREATE TABLE pr_free1 PARTITION OF pr_free FOR VALUES IN (1);
CREATE TABLE pr_free2 (id int PRIMARY KEY, note text);
ALTER TABLE pr_free ATTACH PARTITION pr_free2 FOR VALUES IN (2);
ALTER TABLE pr_free DETACH PARTITION pr_free2;
CREATE TABLE pr_free3 PARTITION OF pr_free FOR VALUES IN (3) PARTITION BY LIST (id);
CREATE TABLE pr_free3a PARTITION OF pr_free3 FOR VALUES IN (3);
INSERT INTO pr_free VALUES (1, 'a'), (3, 'b');
DROP TABLE pr_free, pr_free2;

--
-- A tracked partitioned table owned by the role (tracked by a superuser:
-- the role has no USAGE on the schema activity_audit).  Partitions the role
-- creates or attaches get both audit triggers, with the parent's
-- configuration, also pr_m6, which was tracked on its own; the ones it
-- detaches lose both.
--
CREATE TABLE pr_m (id int PRIMARY KEY, note text, pin text) PARTITION BY RANGE (id);
CREATE TABLE pr_m1 PARTITION OF pr_m FOR VALUES FROM (1) TO (100);
CREATE TABLE pr_m6 (id int PRIMARY KEY, note text, pin text);
\c - :admin
SELECT activity_audit.track('part_roles.pr_m', 'RoleOwned', redact => '{pin}');
SELECT activity_audit.track('part_roles.pr_m6', 'Six');
\c - regress_part_app
SET search_path = part_roles, public;
CREATE TABLE pr_m2 PARTITION OF pr_m FOR VALUES FROM (100) TO (200);
CREATE TABLE pr_m3 (id int PRIMARY KEY, note text, pin text);
ALTER TABLE pr_m ATTACH PARTITION pr_m3 FOR VALUES FROM (200) TO (300);
CREATE TABLE pr_m4 PARTITION OF pr_m FOR VALUES FROM (300) TO (400) PARTITION BY RANGE (id);
CREATE TABLE pr_m4a PARTITION OF pr_m4 FOR VALUES FROM (300) TO (400);
CREATE TABLE pr_m5 PARTITION OF pr_m FOR VALUES FROM (500) TO (600);
ALTER TABLE pr_m ATTACH PARTITION pr_m6 FOR VALUES FROM (600) TO (700);
SELECT * FROM part_roles_triggers();
INSERT INTO pr_m VALUES (1, 'a', '1111'), (100, 'b', '2222'), (200, 'c', '3333'),
                        (300, 'd', '4444'), (500, 'e', '5555'), (600, 'f', '6666');
UPDATE pr_m SET note = 'c2' WHERE id = 200;
TRUNCATE pr_m2, pr_m3, pr_m4;
ALTER TABLE pr_m DETACH PARTITION pr_m5;
ALTER TABLE pr_m DETACH PARTITION pr_m4 CONCURRENTLY;
SELECT * FROM part_roles_triggers() WHERE tbl IN ('pr_m4', 'pr_m4a', 'pr_m5');
INSERT INTO pr_m5 VALUES (501, 'f', '6666');
INSERT INTO pr_m4 VALUES (301, 'g', '7777');
TRUNCATE pr_m5, pr_m4;
\c - :admin
SELECT e->>'event_type' AS event_type, e->>'model' AS model, e->>'table' AS "table",
       e->>'instance_id' AS instance_id, e->'instance_repr' AS instance_repr
  FROM audit_events() e;

--
-- Another role's tracked table.  Its leaf pr_o1 lacks the TRUNCATE trigger
-- (dropped by hand), so _sync_partitions() would have something to add.
--
\c - regress_part_other
SET search_path = part_roles, public;
CREATE TABLE pr_o (id int PRIMARY KEY) PARTITION BY LIST (id);
CREATE TABLE pr_o1 PARTITION OF pr_o FOR VALUES IN (1);
CREATE TABLE pr_o2 PARTITION OF pr_o FOR VALUES IN (2);
\c - :admin
SELECT activity_audit.track('part_roles.pr_o', 'Other');
DROP TRIGGER activity_audit_truncate ON part_roles.pr_o1;

-- Without USAGE on the schema (PUBLIC has none) nothing in it can be called.
\c - regress_part_app
SET search_path = part_roles, public;
SELECT activity_audit._sync_partitions('pr_o');
SELECT activity_audit._drop_trigger('pr_o', 'activity_audit_capture');
SELECT activity_audit._partition_detached('pr_o2');
SELECT activity_audit.untrack('pr_o');

-- With USAGE, as an auditor is granted it, the functions still act with
-- the role's own rights only, and the hook's own function is not PUBLIC's.
\c - :admin
GRANT USAGE ON SCHEMA activity_audit TO regress_part_app;
\c - regress_part_app
SET search_path = part_roles, public;
SELECT activity_audit._sync_partitions('pr_o');
SELECT activity_audit._drop_trigger('pr_o', 'activity_audit_capture');
SELECT activity_audit._drop_trigger('pr_o2', 'activity_audit_truncate');
SELECT activity_audit._partition_detached('pr_o2');
SELECT activity_audit.untrack('pr_o');
SELECT activity_audit.track('pr_o', 'Hijacked');
-- partition DDL on it is refused by PostgreSQL, and the hook does nothing
CREATE TABLE pr_o3 PARTITION OF pr_o FOR VALUES IN (3);
CREATE TABLE IF NOT EXISTS pr_o2 PARTITION OF pr_o FOR VALUES IN (2);
ALTER TABLE pr_o DETACH PARTITION pr_o2;
CREATE TABLE pr_mine (id int PRIMARY KEY);
ALTER TABLE pr_o ATTACH PARTITION pr_mine FOR VALUES IN (4);
-- nor can it make pr_o give up its configuration by attaching it
ALTER TABLE pr_m ATTACH PARTITION pr_o FOR VALUES FROM (700) TO (800);
-- pr_o is audited exactly as before, pr_o1 still without TRUNCATE trigger
SELECT * FROM part_roles_triggers() WHERE tbl LIKE 'pr\_o%';

-- Nothing left behind.
\c - :admin
REVOKE USAGE ON SCHEMA activity_audit FROM regress_part_app;
SET client_min_messages = warning;
DROP SCHEMA part_roles CASCADE;
RESET client_min_messages;
DROP FUNCTION part_roles_triggers();
DROP ROLE regress_part_app, regress_part_other;
SELECT count(*) AS leftover_events FROM audit_raw();
