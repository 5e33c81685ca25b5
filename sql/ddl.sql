--
-- ddl: schema changes of tracked tables (and re-configuration of the
-- tracking itself) take effect at the very next statement, within one
-- session and within one transaction.
--
-- Drain whatever earlier tests left in the slot.
SELECT count(*) >= 0 AS drained FROM audit_raw();

-- Events with where they came from, for the checks that need it.
CREATE FUNCTION ddl_where() RETURNS TABLE(event_type text, model text, schema text, "table" text, instance_id text, message text)
LANGUAGE sql AS $$
  SELECT e->>'event_type', e->>'model', e->>'schema', e->>'table', e->>'instance_id', e->>'message'
    FROM audit_events() e
$$;

CREATE TABLE ddl_t (id int PRIMARY KEY, name text);
SELECT activity_audit.track('ddl_t');
INSERT INTO ddl_t VALUES (1, 'one');

--
-- ADD COLUMN: the next event has the new key.  A column added with a
-- default is read for old rows from the catalog (attmissingval): an UPDATE
-- of an old row shows its default in instance_repr, not as a change.
--
ALTER TABLE ddl_t ADD COLUMN age int;
INSERT INTO ddl_t VALUES (2, 'two', 20);
UPDATE ddl_t SET age = 10 WHERE id = 1;
ALTER TABLE ddl_t ADD COLUMN active boolean NOT NULL DEFAULT true;
UPDATE ddl_t SET name = 'uno' WHERE id = 1;
SELECT * FROM audit_brief();

-- DROP COLUMN: the column disappears from instance_repr and changes.
ALTER TABLE ddl_t DROP COLUMN name;
UPDATE ddl_t SET age = 11 WHERE id = 1;
DELETE FROM ddl_t WHERE id = 2;
SELECT * FROM audit_brief();

-- RENAME COLUMN: the key follows the new name.
ALTER TABLE ddl_t RENAME COLUMN age TO years;
UPDATE ddl_t SET years = 12 WHERE id = 1;
SELECT * FROM audit_brief();

-- ALTER COLUMN TYPE: int -> text makes the values JSON strings, int ->
-- numeric keeps them numbers; old and new in changes use the new type.
ALTER TABLE ddl_t ALTER COLUMN years TYPE text;
UPDATE ddl_t SET years = years || ' years' WHERE id = 1;
ALTER TABLE ddl_t ALTER COLUMN id TYPE numeric(10,2);
INSERT INTO ddl_t VALUES (3.5, '3');
SELECT * FROM audit_brief();

--
-- The same kinds of change between statements of one transaction: each
-- event shows the table as it was when its statement ran.
--
BEGIN;
INSERT INTO ddl_t VALUES (4, 'four');
ALTER TABLE ddl_t ADD COLUMN note text;
INSERT INTO ddl_t VALUES (5, 'five', true, 'n5');
ALTER TABLE ddl_t RENAME COLUMN note TO remark;
UPDATE ddl_t SET remark = 'r5' WHERE id = 5;
ALTER TABLE ddl_t ALTER COLUMN years TYPE varchar(20);
UPDATE ddl_t SET years = 'y5' WHERE id = 5;
ALTER TABLE ddl_t DROP COLUMN active;
DELETE FROM ddl_t WHERE id = 4;
COMMIT;
SELECT * FROM audit_brief();

--
-- Rolled back DDL and writes: nothing of them appears, and the events after
-- the rollback show the table as it is again.
--
BEGIN;
ALTER TABLE ddl_t ADD COLUMN ghost int;
INSERT INTO ddl_t VALUES (6, 'six', NULL, 6);
ROLLBACK;
INSERT INTO ddl_t VALUES (6, 'six', 'r6');
BEGIN;
UPDATE ddl_t SET remark = 'kept' WHERE id = 6;
SAVEPOINT s1;
ALTER TABLE ddl_t RENAME COLUMN remark TO gone;
UPDATE ddl_t SET gone = 'lost' WHERE id = 6;
ROLLBACK TO SAVEPOINT s1;
SAVEPOINT s2;
ALTER TABLE ddl_t DROP COLUMN years;
DELETE FROM ddl_t WHERE id = 6;
ROLLBACK TO SAVEPOINT s2;
UPDATE ddl_t SET remark = 'after' WHERE id = 6;
COMMIT;
SELECT * FROM audit_brief();
SELECT * FROM ddl_t ORDER BY id;

-- Primary key changes: instance_id follows the table's current key (none:
-- null, and the message has no "(id: ...)"; two columns: a JSON array).
ALTER TABLE ddl_t DROP CONSTRAINT ddl_t_pkey;
UPDATE ddl_t SET remark = 'no key' WHERE id = 6;
ALTER TABLE ddl_t ADD PRIMARY KEY (years, id);
UPDATE ddl_t SET remark = 'two keys' WHERE id = 6;
SELECT * FROM ddl_where();

--
-- DROP TABLE and CREATE TABLE of the same name: the new table is not
-- tracked until track() is run for it, and then has its own columns.
--
DROP TABLE ddl_t;
CREATE TABLE ddl_t (code text PRIMARY KEY, qty int, price numeric);
INSERT INTO ddl_t VALUES ('a', 1, 1.5);
SELECT * FROM activity_audit.tracked WHERE table_name = 'ddl_t'::regclass;
SELECT activity_audit.track('ddl_t', 'Item');
INSERT INTO ddl_t VALUES ('b', 2, 2.5);
SELECT * FROM audit_brief();

--
-- Re-running track() with another configuration takes effect at the next
-- statement: model name, exclude, redact, log_noop_updates.
--
SELECT activity_audit.track('ddl_t', 'Article', exclude => '{price}');
UPDATE ddl_t SET qty = 3 WHERE code = 'b';
UPDATE ddl_t SET price = 3.5 WHERE code = 'b';      -- only an excluded column: no event
SELECT activity_audit.track('ddl_t', 'Article', redact => '{price}');
UPDATE ddl_t SET price = 4.5 WHERE code = 'b';
UPDATE ddl_t SET qty = qty WHERE code = 'b';        -- no-op: no event
SELECT activity_audit.track('ddl_t', 'Article', redact => '{price}', log_noop_updates => true);
UPDATE ddl_t SET qty = qty WHERE code = 'b';        -- no-op, now logged
SELECT * FROM audit_brief();
-- ... also inside a transaction, between two statements
BEGIN;
UPDATE ddl_t SET qty = 4 WHERE code = 'b';
SELECT activity_audit.track('ddl_t', 'Stock', exclude => '{qty}');
UPDATE ddl_t SET qty = 5 WHERE code = 'b';          -- excluded now: no event
UPDATE ddl_t SET price = 5.5 WHERE code = 'b';
COMMIT;
SELECT * FROM audit_brief();
SELECT * FROM activity_audit.tracked WHERE table_name = 'ddl_t'::regclass;
-- ... and a re-configuration that is rolled back leaves the old one
BEGIN;
SELECT activity_audit.track('ddl_t', 'Rolledback');
ROLLBACK;
UPDATE ddl_t SET price = 6.5 WHERE code = 'b';
SELECT * FROM audit_brief();

-- untrack stops the events at the next statement; track starts them again.
SELECT activity_audit.untrack('ddl_t');
INSERT INTO ddl_t VALUES ('c', 3, 3);
UPDATE ddl_t SET qty = 30 WHERE code = 'c';
DELETE FROM ddl_t WHERE code = 'c';
SELECT * FROM activity_audit.tracked WHERE table_name = 'ddl_t'::regclass;
SELECT count(*) AS events_after_untrack FROM audit_raw();
SELECT activity_audit.track('ddl_t', 'Item', exclude => '{qty}', redact => '{price}');
INSERT INTO ddl_t VALUES ('d', 4, 4);
SELECT * FROM audit_brief();

--
-- Renaming a column that exclude or redact names fails closed: the next
-- write is refused with an error that names the column (it could otherwise
-- leak the value under its new name), and nothing is written.  Running
-- track() with the new name fixes it.
--
ALTER TABLE ddl_t RENAME COLUMN price TO unit_price;
INSERT INTO ddl_t VALUES ('e', 5, 5);
UPDATE ddl_t SET unit_price = 40 WHERE code = 'd';
DELETE FROM ddl_t WHERE code = 'd';
TRUNCATE ddl_t;
SELECT * FROM ddl_t ORDER BY code;
SELECT activity_audit.track('ddl_t', 'Item', exclude => '{qty}', redact => '{unit_price}');
INSERT INTO ddl_t VALUES ('e', 5, 5);
SELECT * FROM audit_brief();
-- the same for an excluded column, renamed inside a transaction
BEGIN;
ALTER TABLE ddl_t RENAME COLUMN qty TO quantity;
UPDATE ddl_t SET quantity = 6 WHERE code = 'e';
ROLLBACK;
SELECT * FROM ddl_t ORDER BY code;
SELECT count(*) AS events_after_refused_writes FROM audit_raw();
-- Dropping a listed column is refused the same way (the configuration no
-- longer matches the table) until track() is run again.
ALTER TABLE ddl_t DROP COLUMN qty;
UPDATE ddl_t SET unit_price = 8 WHERE code = 'e';
SELECT activity_audit.track('ddl_t', 'Item', redact => '{unit_price}');
UPDATE ddl_t SET unit_price = 8 WHERE code = 'e';
SELECT * FROM audit_brief();

--
-- ALTER TABLE ... RENAME: events carry the new table name; the model is
-- the one configured (track() records the table's name at that time when
-- no model_name is given).
--
CREATE TABLE ddl_r (id int PRIMARY KEY, v text);
SELECT activity_audit.track('ddl_r');
INSERT INTO ddl_r VALUES (1, 'a');
ALTER TABLE ddl_r RENAME TO ddl_r2;
INSERT INTO ddl_r2 VALUES (2, 'b');
ALTER TABLE ddl_t RENAME TO ddl_t2;
UPDATE ddl_t2 SET unit_price = 7 WHERE code = 'e';
SELECT * FROM ddl_where();
SELECT table_name, model_name FROM activity_audit.tracked
 WHERE table_name IN ('ddl_r2'::regclass, 'ddl_t2'::regclass) ORDER BY table_name::text;

-- ALTER TABLE ... SET SCHEMA and ALTER SCHEMA ... RENAME show in "schema".
CREATE SCHEMA ddl_s;
ALTER TABLE ddl_r2 SET SCHEMA ddl_s;
INSERT INTO ddl_s.ddl_r2 VALUES (3, 'c');
ALTER SCHEMA ddl_s RENAME TO ddl_s2;
UPDATE ddl_s2.ddl_r2 SET v = 'cc' WHERE id = 3;
BEGIN;
ALTER SCHEMA ddl_s2 RENAME TO ddl_s3;
DELETE FROM ddl_s3.ddl_r2 WHERE id = 3;
ROLLBACK;
DELETE FROM ddl_s2.ddl_r2 WHERE id = 2;
SELECT * FROM ddl_where();

--
-- Composite type columns.  PostgreSQL allows ALTER TYPE ... ADD ATTRIBUTE
-- (and RENAME / DROP ATTRIBUTE) on a type that a table column uses, as no
-- stored value needs rewriting; ALTER ATTRIBUTE ... TYPE it refuses.  The
-- next events must show the type as it is now, as to_jsonb() does (rows
-- written before ADD ATTRIBUTE read the new attribute as null), for a plain
-- and an array column alike.
--
CREATE TYPE ddl_addr AS (street text, city text);
CREATE TABLE ddl_c (id int PRIMARY KEY, home ddl_addr, past ddl_addr[]);
SELECT activity_audit.track('ddl_c');
INSERT INTO ddl_c VALUES (1, ROW('Main St', 'Oslo'), ARRAY[ROW('Old Rd', 'Bergen')::ddl_addr]);
ALTER TYPE ddl_addr ADD ATTRIBUTE zip text;
INSERT INTO ddl_c VALUES (2, ROW('High St', 'Leeds', 'LS1'), ARRAY[ROW('Mill Ln', 'York', 'YO1')::ddl_addr]);
UPDATE ddl_c SET home.zip = '0150' WHERE id = 1;
SELECT * FROM audit_brief();
ALTER TYPE ddl_addr RENAME ATTRIBUTE city TO town;
UPDATE ddl_c SET home.town = 'Kristiania' WHERE id = 1;
ALTER TYPE ddl_addr DROP ATTRIBUTE street;
DELETE FROM ddl_c WHERE id = 2;
SELECT * FROM audit_brief();
-- what to_jsonb() says of the remaining row, for comparison
SELECT to_jsonb(c) FROM ddl_c c ORDER BY id;
ALTER TYPE ddl_addr ALTER ATTRIBUTE zip TYPE int;

-- Nothing left behind for the next test.
SELECT activity_audit.untrack('ddl_t2');
SELECT activity_audit.untrack('ddl_s2.ddl_r2');
SELECT activity_audit.untrack('ddl_c');
DROP TABLE ddl_t2, ddl_s2.ddl_r2, ddl_c;
DROP TYPE ddl_addr;
DROP SCHEMA ddl_s2;
DROP FUNCTION ddl_where();
SELECT count(*) AS leftover_events FROM audit_raw();
